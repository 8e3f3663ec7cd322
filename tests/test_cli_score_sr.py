"""``torchsim score`` on super-resolution result folders: pairing by stem and pattern, modcrop,
shave, SSIM conventions, the decoding pool, ``--worst`` and the contact sheet.

The folders are written by the tests: skimage.data photographs as ground truth (``0801.png``),
bicubic x4 down-and-up copies as the SR results (``0801_x4_SR.png``, their sides cut to multiples
of 4 as an SR network's output is). Expected values come from BasicSR's ``calculate_psnr`` /
``calculate_ssim`` (ported in tests/reference/ports.py) on the ground truth mod-cropped as
BasicSR's ``mod_crop`` does (``img[:h - h % s, :w - w % s]``, written out below), from
scikit-image and from torchmetrics, all evaluated at test time.
"""

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

import torchsim
from torchsim.cli import main
from torchsim.cli._decode_pool import decoded_batches
from torchsim.cli._files import batches, modcrop, pair_files

from tests.helpers import photo_u8
from tests.reference.ports import basicsr_calculate_psnr, basicsr_calculate_ssim

PHOTOS = {"0801": "astronaut", "0802": "coffee", "0803": "chelsea"}  # 512x512, 400x600, 300x451


def _mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """BasicSR ``basicsr/data/transforms.py: mod_crop``: the top-left part with sides multiple of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale, ...]


def _sr(hr: np.ndarray, scale: int = 4) -> np.ndarray:
    """An x4 "SR result": Pillow bicubic down to floor(H/4) x floor(W/4) and back up by 4."""
    im = Image.fromarray(hr)
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    return np.asarray(im.resize((w, h), Image.BICUBIC).resize((w * scale, h * scale), Image.BICUBIC))


@pytest.fixture(scope="module")
def sr_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sr")
    hr, sr = root / "HR", root / "SR"
    hr.mkdir()
    sr.mkdir()
    for stem, name in PHOTOS.items():
        img = photo_u8(name)
        Image.fromarray(img).save(hr / f"{stem}.png")
        Image.fromarray(_sr(img)).save(sr / f"{stem}_x4_SR.png")
    return hr, sr


def _run(capsys, *argv):
    code = main(["score", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _csv(path):
    with open(path, newline="") as fh:
        return {r["name"]: r for r in csv.DictReader(fh)}


# ----------------------------------------------------------------------------------------------
# SR folders against BasicSR
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("naming", [["--suffix", "_x4_SR"], ["--match", "{stem}_x4_SR"]], ids=["suffix", "match"])
@pytest.mark.parametrize("shave", ["--crop-border", "--shave"])
def test_sr_folder_equals_basicsr(sr_dirs, tmp_path, capsys, naming, shave):
    hr, sr = sr_dirs
    out = tmp_path / "s.csv"
    code, _, err = _run(capsys, hr, sr, *naming, "--modcrop", 4, shave, 4, "--y-channel", "--metrics", "psnr,ssim",
                        "--csv", out, "--no-progress")
    assert code == 0, err
    rows = _csv(out)
    assert set(rows) == {f"{stem}.png" for stem in PHOTOS}  # rows named after the ground truth
    for stem in PHOTOS:
        gt = _mod_crop(cv2.imread(str(hr / f"{stem}.png"), cv2.IMREAD_COLOR), 4)
        result = cv2.imread(str(sr / f"{stem}_x4_SR.png"), cv2.IMREAD_COLOR)
        assert gt.shape == result.shape
        row = rows[f"{stem}.png"]
        assert float(row["psnr"]) == pytest.approx(basicsr_calculate_psnr(result, gt, 4, test_y_channel=True), abs=1e-4)
        assert float(row["ssim"]) == pytest.approx(basicsr_calculate_ssim(result, gt, 4, test_y_channel=True), abs=2e-6)


def test_without_modcrop_the_sizes_differ(sr_dirs, capsys):
    hr, sr = sr_dirs
    code, _, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--no-progress")
    assert code == 1
    lines = err.strip().splitlines()
    # 512x512 is a multiple of 4; 600x400 too; 451x300 is not: one size-mismatch line for 0803
    assert sum("size mismatch" in line for line in lines) == 1
    assert any(str(sr / "0803_x4_SR.png") in line and "448x300 differs from 451x300" in line for line in lines)
    assert "1 file(s) failed, 2 pair(s) scored" in lines[-1]


def test_modcrop_is_basicsr_mod_crop():
    g = torch.Generator().manual_seed(0)
    for h, w, s in [(451, 300, 4), (13, 17, 3), (8, 8, 4), (5, 7, 1)]:
        img = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        want = _mod_crop(img.permute(1, 2, 0).numpy(), s)
        np.testing.assert_array_equal(modcrop(img, s).permute(1, 2, 0).numpy(), want)
    assert modcrop(img, 0) is img


def test_psnr_pooled_mean_is_torchmetrics_over_the_folder(sr_dirs, tmp_path, capsys):
    from torchmetrics.image import PeakSignalNoiseRatio

    hr, sr = sr_dirs
    code, _, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--metrics", "psnr,psnr_pooled",
                        "--json", tmp_path / "s.json", "--no-progress")
    assert code == 0, err
    doc = json.loads((tmp_path / "s.json").read_text())
    reference = PeakSignalNoiseRatio(data_range=255.0)
    for stem in PHOTOS:
        gt = torch.from_numpy(_mod_crop(photo_u8(PHOTOS[stem]), 4)).permute(2, 0, 1)[None].float()
        result = torch.from_numpy(np.array(Image.open(sr / f"{stem}_x4_SR.png"))).permute(2, 0, 1)[None].float()
        reference.update(result, gt)
    assert doc["means"]["psnr_pooled"] == pytest.approx(reference.compute().item(), rel=1e-5)
    # per-image rows are each image's PSNR; the mean of PSNRs is not the pooled number
    assert all(r["psnr_pooled"] == pytest.approx(r["psnr"], abs=1e-9) for r in doc["images"])
    assert doc["means"]["psnr"] > doc["means"]["psnr_pooled"]


# ----------------------------------------------------------------------------------------------
# pairing: extensions, patterns, one line per unpaired file
# ----------------------------------------------------------------------------------------------


def _touch_images(folder, names, size=(24, 20)):
    folder.mkdir(parents=True, exist_ok=True)
    g = np.random.default_rng(0)
    for name in names:
        Image.fromarray(g.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / name, quality=95)


def test_pairing_by_stem_is_extension_insensitive(tmp_path):
    ref, test = tmp_path / "ref", tmp_path / "test"
    _touch_images(ref, ["a.png", "b.png", "c.png", "d.png", "e.png"])
    _touch_images(test, ["a.jpg", "b.PNG", "c.webp", "d.png", "d.jpg", "x.png"])
    pairs, unpaired = pair_files(str(ref), str(test))
    assert [(i, name, tuple(p.split("/")[-1] for p in files)) for i, name, files in pairs] == [
        (0, "a.png", ("a.png", "a.jpg")), (1, "b.png", ("b.png", "b.PNG")), (2, "c.png", ("c.png", "c.webp"))]
    lines = dict(unpaired)
    assert set(lines) == {"d.png", "d.jpg", "e.png", "x.png"}  # one line per unpaired file
    assert "ambiguous, d.png has the same stem" in lines["d.jpg"]
    assert lines["e.png"] == f"{ref / 'e.png'}: unpaired: no file named e.* in {test}"
    assert lines["x.png"] == f"{test / 'x.png'}: unpaired: no reference named x.* in {ref}"
    # the reference d.png is unpaired too (its test stem is ambiguous): one line for each of the three
    assert sum(name == "d.png" for name, _ in unpaired) == 2


def test_pairing_with_a_pattern(tmp_path):
    ref, test = tmp_path / "HR", tmp_path / "SR"
    _touch_images(ref, ["0801.png", "0802.png", "0803.png"])
    _touch_images(test, ["0801_x4_SR.png", "0802_x4_SR.jpg", "0804_x4_SR.png", "0803.png"])
    pairs, unpaired = pair_files(str(ref), str(test), "{stem}_x4_SR")
    assert [(name, files[1].split("/")[-1]) for _, name, files in pairs] == [
        ("0801.png", "0801_x4_SR.png"), ("0802.png", "0802_x4_SR.jpg")]
    assert sorted(line for _, line in unpaired) == sorted([
        f"{ref / '0803.png'}: unpaired: no file named 0803_x4_SR.* in {test}",
        f"{test / '0803.png'}: unpaired: its name does not match --match '{{stem}}_x4_SR'",
        f"{test / '0804_x4_SR.png'}: unpaired: no reference named 0804.* in {ref}",
    ])


@pytest.mark.parametrize("argv, message", [
    (["--match", "x4_SR"], "--match must contain {stem} once"),
    (["--match", "{stem}_{stem}"], "--match must contain {stem} once"),
    (["--match", "{name}_SR"], "--match must contain {stem} once"),
    (["--modcrop", "-1"], "--modcrop must be >= 0"),
    (["--worst", "2", "--worst-by", "mse"], "--worst-by mse: not one of --metrics psnr, ssim"),
])
def test_bad_sr_arguments(sr_dirs, capsys, argv, message):
    hr, sr = sr_dirs
    code, _, err = _run(capsys, hr, sr, *argv)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.parametrize("argv, message", [
    (["--suffix", "_SR", "--match", "{stem}_SR"], "not allowed with argument"),
    (["--ssim-convention", "nope"], "invalid choice: 'nope'"),
])
def test_bad_sr_arguments_argparse(sr_dirs, capsys, argv, message):
    hr, sr = sr_dirs
    with pytest.raises(SystemExit):
        main(["score", str(hr), str(sr), *argv])
    assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# SSIM conventions by name
# ----------------------------------------------------------------------------------------------


def test_ssim_convention_skimage_equals_structural_similarity(sr_dirs, tmp_path, capsys):
    hr, sr = sr_dirs
    out = tmp_path / "s.csv"
    code, _, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--ssim-convention", "skimage",
                        "--metrics", "ssim", "--csv", out, "--no-progress")
    assert code == 0, err
    rows = _csv(out)
    for stem, name in PHOTOS.items():
        gt = _mod_crop(photo_u8(name), 4)
        result = np.asarray(Image.open(sr / f"{stem}_x4_SR.png"))
        want = structural_similarity(result, gt, data_range=255, channel_axis=-1)  # skimage's own default
        assert float(rows[f"{stem}.png"]["ssim"]) == pytest.approx(want, abs=2e-6)
    wang = tmp_path / "w.csv"
    _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--ssim-convention", "basicsr", "--metrics", "ssim",
         "--csv", wang, "--no-progress")
    assert all(abs(float(_csv(wang)[k]["ssim"]) - float(r["ssim"])) > 1e-3 for k, r in rows.items())


# ----------------------------------------------------------------------------------------------
# the decoding pool
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_entries(tmp_path_factory):
    """Pairs of PNG and JPEG files of three sizes (one with an odd size), a corrupt file and a size mismatch."""
    root = tmp_path_factory.mktemp("pool")
    entries = []
    for k in range(11):
        name = ["astronaut", "coffee", "chelsea"][k % 3]
        img = photo_u8(name, size=(40 + 8 * (k % 3), 33 + 4 * (k % 3)))
        ext = ".jpg" if k % 2 else ".png"
        a, b = root / f"r{k}{ext}", root / f"t{k}{ext}"
        Image.fromarray(img).save(a, quality=90)
        Image.fromarray(np.ascontiguousarray(img[::-1])).save(b, quality=90)
        entries.append((k, f"n{k}", (str(a), str(b))))
    (root / "t3.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    Image.fromarray(photo_u8("camera", size=(20, 20), rgb=True)).save(root / "t5.jpg")
    return entries


def _flatten(batch_iter):
    rows, errors = {}, {}
    for groups, errs in batch_iter:
        for indices, names, (x, y) in groups:
            for k, i in enumerate(indices):
                rows[i] = (x[k].cpu(), y[k].cpu())
        for i, name, line in errs:
            errors[i] = line
    return rows, errors


@pytest.mark.parametrize("workers", [0, 1, 3])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_thread_pool_equals_the_dataloader(mixed_entries, workers, batch_size):
    want_rows, want_errors = _flatten(batches(mixed_entries, batch_size=batch_size))
    got = list(decoded_batches(mixed_entries, batch_size, workers=workers))
    assert len(got) == -(-len(mixed_entries) // batch_size)  # one batch per batch_size entries, in order
    order = [i for groups, errs in got for i in sorted([i for g in groups for i in g[0]] + [e[0] for e in errs])]
    assert order == list(range(len(mixed_entries)))
    rows, errors = _flatten(got)
    assert set(rows) == set(want_rows) and errors == want_errors
    assert set(errors) == {3, 5} and "t3.jpg" in errors[3] and "size mismatch" in errors[5]
    for i in rows:
        assert torch.equal(rows[i][0], want_rows[i][0]) and torch.equal(rows[i][1], want_rows[i][1])


def test_batched_jpeg_path_equals_pillow(mixed_entries):
    # The path the GPU takes (JPEGs read by the threads, decoded per batch by torchvision's
    # decode_jpeg), run with device="cpu": libjpeg-turbo's pixels, the same as Pillow's; a corrupt
    # JPEG makes the batch fall back to the CPU path, which names the file.
    want_rows, want_errors = _flatten(decoded_batches(mixed_entries, 4, workers=2))
    rows, errors = _flatten(decoded_batches(mixed_entries, 4, workers=2, jpeg_device="cpu"))
    assert errors == want_errors
    for i in want_rows:
        assert torch.equal(rows[i][0], want_rows[i][0]) and torch.equal(rows[i][1], want_rows[i][1])


def test_modcrop_before_the_size_check(tmp_path):
    _touch_images(tmp_path / "r", ["a.png"], size=(23, 18))
    _touch_images(tmp_path / "t", ["a.png"], size=(20, 16))
    entries, _ = pair_files(str(tmp_path / "r"), str(tmp_path / "t"))
    (_, errors), = decoded_batches(entries, 2)
    assert "size mismatch" in errors[0][2]
    (groups, errors), = decoded_batches(entries, 2, workers=2, modcrop=4)
    assert not errors and groups[0][2][0].shape == (1, 3, 16, 20)


@pytest.mark.cuda
def test_cuda_decodes_jpegs_on_the_gpu(sr_dirs, tmp_path, capsys):
    hr, sr = sr_dirs
    jpg = tmp_path / "SR"
    jpg.mkdir()
    for stem in PHOTOS:
        Image.open(sr / f"{stem}_x4_SR.png").save(jpg / f"{stem}_x4_SR.jpg", quality=95)
    results = {}
    for decode in ("auto", "cpu"):
        out = tmp_path / f"{decode}.csv"
        code, _, err = _run(capsys, hr, jpg, "--suffix", "_x4_SR", "--modcrop", 4, "--device", "cuda", "--decode", decode,
                            "--csv", out, "--no-progress")
        assert code == 0, err
        results[decode] = _csv(out)
    for name, row in results["cpu"].items():  # nvJPEG differs from libjpeg by a level here and there
        assert float(results["auto"][name]["psnr"]) == pytest.approx(float(row["psnr"]), abs=0.05)
        assert float(results["auto"][name]["ssim"]) == pytest.approx(float(row["ssim"]), abs=2e-3)


# ----------------------------------------------------------------------------------------------
# --worst and the contact sheet
# ----------------------------------------------------------------------------------------------


def test_worst_k_report(sr_dirs, tmp_path, capsys):
    hr, sr = sr_dirs
    code, out, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--metrics", "psnr,ssim,mse",
                          "--worst", 2, "--json", tmp_path / "s.json", "--no-progress")
    assert code == 0, err
    doc = json.loads((tmp_path / "s.json").read_text())
    by_ssim = sorted(doc["images"], key=lambda r: r["ssim"])
    assert doc["worst"] == {"by": "ssim", "names": [r["name"] for r in by_ssim[:2]]}
    lines = out.splitlines()
    k = lines.index("worst 2 by SSIM:")
    assert [line.split()[1] for line in lines[k + 1 : k + 3]] == doc["worst"]["names"]
    # a distance ranks its largest values first
    code, out, _ = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--metrics", "psnr,ssim,mse",
                        "--worst", 1, "--worst-by", "mse", "--json", tmp_path / "m.json", "--no-progress")
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["worst"]["names"] == [max(doc["images"], key=lambda r: r["mse"])["name"]]
    # any per-image score of the registry ranks too, in its own direction
    code, out, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--metrics", "psnr,gmsd",
                          "--worst", 1, "--json", tmp_path / "g.json", "--no-progress")
    assert code == 0, err
    doc = json.loads((tmp_path / "g.json").read_text())
    pick = max if torchsim.registry.get("gmsd").higher_is_better is False else min
    assert doc["worst"] == {"by": "psnr", "names": [min(doc["images"], key=lambda r: r["psnr"])["name"]]}
    code, out, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--metrics", "psnr,gmsd",
                          "--worst", 1, "--worst-by", "gmsd", "--json", tmp_path / "g.json", "--no-progress")
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["worst"]["names"] == [pick(doc["images"], key=lambda r: r["gmsd"])["name"]]


def test_contact_sheet(sr_dirs, tmp_path, capsys):
    hr, sr = sr_dirs
    sizes = {}
    for k in (1, 3):
        sheet = tmp_path / f"sheet{k}.png"
        code, _, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--y-channel", "--shave", 4,
                            "--worst", k, "--sheet", sheet, "--no-progress")
        assert code == 0, err
        with Image.open(sheet) as im:
            assert im.format == "PNG" and im.mode == "RGB"
            sizes[k] = im.size
            pixels = np.asarray(im)
        # the SSIM map panels are drawn with the colormap's dark end (low SSIM at the edges)
        assert (np.abs(pixels.astype(int) - [68, 1, 84]).sum(-1) < 40).any()
    assert sizes[3][0] == sizes[1][0] and sizes[3][1] > sizes[1][1] + 2 * 200  # two more rows of panels
    # --sheet alone draws the 8 worst (here: all 3), and an unwritable path is one line, exit 1
    code, _, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--sheet", tmp_path / "all.png", "--no-progress")
    assert code == 0 and Image.open(tmp_path / "all.png").size == sizes[3]
    (tmp_path / "file").write_text("x")
    code, _, err = _run(capsys, hr, sr, "--suffix", "_x4_SR", "--modcrop", 4, "--sheet", tmp_path / "file" / "s.png",
                        "--no-progress")
    assert code == 1 and "s.png: cannot write" in err and len(err.strip().splitlines()) == 1
