"""The CLI's image files (torchsim/cli/_files.py): decoding equals torchvision.io, listing, pairing, batching.

The CLI decodes 8-bit RGB with Pillow (it imports in milliseconds; torchvision.io takes
seconds) and everything else with ``torchsim.io.read_image`` (torchvision.io). The
reference here is torchvision.io's ``decode_image`` on the same bytes: the two must agree
bit for bit on real photographs in every format and pixel mode the fast path takes.
"""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

import torchsim.io
from torchsim.cli._files import FileDataset, batches, decode, list_images, pair_files
from torchsim.io import ImageReadError, read_image


def _torchvision(path, mode="RGB"):
    raw = open(path, "rb").read()
    return decode_image(torch.frombuffer(bytearray(raw), dtype=torch.uint8), mode=getattr(ImageReadMode, mode))


@pytest.fixture(scope="module")
def photo():
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((96, 72), Image.LANCZOS)


def _alpha(img):
    out = img.copy()
    out.putalpha(Image.fromarray((np.arange(img.width * img.height) % 256).reshape(img.height, img.width).astype(np.uint8)))
    return out


# (pixel mode of the saved file, format, save options)
FILES = {
    "png-rgb": ("RGB", "PNG", {}),
    "png-rgba": ("RGBA", "PNG", {}),
    "png-gray": ("L", "PNG", {}),
    "png-gray-alpha": ("LA", "PNG", {}),
    "png-palette": ("P", "PNG", {}),
    "png-palette-trns": ("P", "PNG", {"transparency": 3}),
    "png-1bit": ("1", "PNG", {}),
    "png-4bit": ("L", "PNG", {"bits": 4}),
    "jpeg-q15-420": ("RGB", "JPEG", {"quality": 15, "subsampling": 2}),
    "jpeg-q90-444": ("RGB", "JPEG", {"quality": 90, "subsampling": 0}),
    "jpeg-q75-422-progressive": ("RGB", "JPEG", {"quality": 75, "subsampling": 1, "progressive": True}),
    "jpeg-gray": ("L", "JPEG", {}),
    "jpeg-cmyk": ("CMYK", "JPEG", {}),
    "webp-lossy": ("RGB", "WEBP", {"quality": 60}),
    "webp-lossless-alpha": ("RGBA", "WEBP", {"lossless": True}),
    "gif": ("P", "GIF", {}),
    "gif-trns": ("P", "GIF", {"transparency": 3}),
}


@pytest.mark.parametrize("kind", FILES)
def test_rgb_equals_torchvision(photo, tmp_path, monkeypatch, kind):
    pixel_mode, fmt, options = FILES[kind]
    img = _alpha(photo) if pixel_mode in ("RGBA", "LA") else photo
    path = tmp_path / f"{kind}.{fmt.lower()}"
    img.convert(pixel_mode).save(path, fmt, **options)
    want = _torchvision(path)

    def not_here(*args, **kwargs):
        raise AssertionError("decoded by torchsim.io.read_image, not by Pillow")

    monkeypatch.setattr(torchsim.io, "read_image", not_here)
    got = decode(str(path))
    assert got.dtype == torch.uint8 and got.is_contiguous()
    assert torch.equal(got, want), kind


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_pillow_array_equals_numpy_asarray(photo, mode):
    """``pillow_array`` (Pillow's core copies an ``L`` image's rows into a NumPy buffer) gives
    ``np.asarray``'s array; other modes are ``np.asarray`` itself."""
    from torchsim.cli._files import pillow_array

    img = _alpha(photo).convert(mode) if mode == "RGBA" else photo.convert(mode)
    got = pillow_array(img)
    np.testing.assert_array_equal(got, np.asarray(img))
    assert got.flags.c_contiguous and (got.flags.writeable or mode != "L")  # L: a fresh buffer torch can own


def test_rgb_decoded_by_pillow_when_it_will_not_decode_into_numpy(photo, tmp_path, monkeypatch):
    """``read_pixels`` lets Pillow decode RGB straight into a NumPy buffer; a Pillow whose ``load``
    makes its own buffer (older versions do when the modes differ) is detected and read with
    ``np.asarray``: the same pixels either way."""
    from PIL import ImageFile

    from torchsim.cli._files import read_pixels

    path = tmp_path / "p.png"
    photo.save(path)
    want = read_pixels(str(path))
    real = ImageFile.ImageFile.load_prepare

    def fresh(self):  # Pillow < 10.1: a new buffer whenever the image's is of another mode
        self.im = Image.core.new(self.mode, self.size)
        real(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load_prepare", fresh)
    got = read_pixels(str(path))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, np.asarray(photo).transpose(2, 0, 1))


def test_16_bit_png_is_read_as_torchvision_reads_it(tmp_path):
    import cv2

    rgb16 = np.random.default_rng(0).integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), rgb16)
    got = decode(str(path))
    assert got.dtype == torch.uint16 and torch.equal(got.int(), _torchvision(path).int())


@pytest.mark.parametrize("mode", ["GRAY", "RGBA"])
def test_other_modes_are_read_image(photo, tmp_path, mode):
    path = tmp_path / "p.png"
    photo.save(path)
    assert torch.equal(decode(str(path), mode), read_image(path, mode=mode))


def test_animated_gif_gives_its_first_frame_as_torchvision_reads_it(tmp_path):
    frames = [Image.fromarray(np.full((10, 12, 3), v, np.uint8)) for v in (10, 200)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    volume = _torchvision(path)  # torchvision: every frame, (N, C, H, W)
    assert volume.shape[0] == 2 and torch.equal(decode(str(path)), volume[0])  # the CLI: the first (issue 9)


@pytest.mark.parametrize("problem", ["missing", "empty", "truncated", "text", "folder"])
def test_errors_are_read_image_errors(photo, tmp_path, problem):
    path = tmp_path / f"{problem}.png"
    if problem == "empty":
        path.write_bytes(b"")
    elif problem == "truncated":
        buf = io.BytesIO()
        photo.save(buf, "PNG")
        path.write_bytes(buf.getvalue()[:300])
    elif problem == "text":
        path.write_text("hello")
    elif problem == "folder":
        path.mkdir()
    with pytest.raises(ImageReadError) as ours:
        decode(str(path))
    with pytest.raises(ImageReadError) as library:
        read_image(path)
    assert str(ours.value) == str(library.value) and str(path) in str(ours.value)


def test_listing_and_pairing(tmp_path):
    ref, test = tmp_path / "ref", tmp_path / "test"
    (ref / "sub").mkdir(parents=True)
    test.mkdir()
    for folder, names in ((ref, ["b.png", "a.jpg", "only_ref.png", ".hidden.png", "notes.txt", "sub/c.png"]),
                          (test, ["a.jpg", "b.png", "only_test.webp"])):
        for name in names:
            (folder / name).write_bytes(b"x")
    assert [p.split("/")[-1] for p in list_images(str(ref))] == ["a.jpg", "b.png", "only_ref.png"]
    assert [p.split("/")[-1] for p in list_images(str(ref), recursive=True)][-1] == "c.png"
    pairs, unpaired = pair_files(str(ref), str(test))
    assert [(i, name) for i, name, _ in pairs] == [(0, "a.jpg"), (1, "b.png")]
    assert pairs[1][2] == (str(ref / "b.png"), str(test / "b.png"))
    assert [name for name, _ in unpaired] == ["only_ref.png", "only_test.webp"]
    assert "unpaired" in unpaired[0][1] and str(test) in unpaired[0][1]


def test_batches_group_by_size_and_report_failures(photo, tmp_path):
    small = photo.resize((40, 30))
    paths = []
    for k, img in enumerate([photo, small, photo, None]):
        path = tmp_path / f"{k}.png"
        if img is None:
            path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
        else:
            img.save(path)
        paths.append(str(path))
    entries = [(k, f"n{k}", (p,)) for k, p in enumerate(paths)]
    (groups, errors), = list(batches(entries, batch_size=4))
    assert [(indices, x.shape) for indices, _, (x,) in groups] == [([0, 2], (2, 3, 72, 96)), ([1], (1, 3, 30, 40))]
    assert len(errors) == 1 and errors[0][:2] == (3, "n3") and paths[3] in errors[0][2]
    # a pair whose sizes differ is one error naming the test file
    item = FileDataset([(0, "pair", (paths[0], paths[1]))])[0]
    assert item.images == () and paths[1] in item.error and "size mismatch: 40x30 differs from 96x72" in item.error
