"""Files the command line must decode, or refuse with one line (issue 9, items 7-8): 16-bit PNG
and TIFF, BMP, animated GIF, JPEG for pixelmatch, EXIF orientation, decompression bombs, FIFOs,
devices and symlink loops. Every file is written by the test; subprocesses run under a timeout."""

import csv
import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import torchsim
from torchsim.cli import main
from torchsim.cli._files import IMAGE_EXTENSIONS, decode
from torchsim.io import ImageReadError

from tests.helpers import photo_u8

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
TIMEOUT = 240


def _cli(*argv):
    return subprocess.run([sys.executable, "-m", "torchsim", *map(str, argv)], env=ENV, capture_output=True,
                          text=True, timeout=TIMEOUT)


def _dirs(tmp_path):
    for d in ("ref", "test"):
        (tmp_path / d).mkdir()
    return tmp_path / "ref", tmp_path / "test"


def _score_one(ref, test, tmp_path, capsys):
    """``score --metrics psnr,ssim`` on folders of one pair: the CSV row."""
    out = tmp_path / "s.csv"
    code = main(["score", str(ref), str(test), "--metrics", "psnr,ssim", "--csv", str(out), "--workers", "0",
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    return next(csv.DictReader(out.open()))


def _photo16(name="astronaut", size=96):
    """A real photo crop at 16 bits (8-bit values times 257 plus a smooth ramp, so the low byte carries detail)."""
    x = photo_u8(name)[100 : 100 + size, 100 : 100 + size].astype(np.uint16) * 257
    ramp = (np.arange(size, dtype=np.uint16)[None, :, None] * 3) % 256
    return (x + ramp).clip(0, 65535).astype(np.uint16)  # (H, W, 3)


def _noisy16(x, seed=0):
    g = np.random.default_rng(seed)
    return (x.astype(np.float64) + g.normal(0, 900, x.shape)).round().clip(0, 65535).astype(np.uint16)


# ----------------------------------------------------------------------------------------------
# 7. decoding
# ----------------------------------------------------------------------------------------------


def test_16bit_png_and_tiff_decode_to_uint16(tmp_path):
    import tifffile

    x = _photo16()
    cv2.imwrite(str(tmp_path / "rgb.png"), x[..., ::-1])  # cv2 writes 16-bit colour PNG (BGR order)
    Image.fromarray(x[..., 0]).save(tmp_path / "gray.png")  # Pillow: mode I;16
    Image.fromarray(x[..., 0]).save(tmp_path / "gray.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", x)
    for name, want in [("rgb.png", x), ("rgb.tif", x), ("gray.png", x[..., [0, 0, 0]]), ("gray.tif", x[..., [0, 0, 0]])]:
        got = decode(str(tmp_path / name))
        assert got.dtype == torch.uint16, name
        assert np.array_equal(got.to(torch.int32).permute(1, 2, 0).numpy(), want.astype(np.int32)), name
        low = decode(str(tmp_path / name), keep16=False)  # at 8 bits: the top byte, as Pillow converts
        assert low.dtype == torch.uint8 and np.array_equal(low.permute(1, 2, 0).numpy(), (want >> 8).astype(np.uint8))


def test_score_16bit_pairs_at_16bit(tmp_path, capsys):
    ref, test = _dirs(tmp_path)
    x = _photo16()
    y = _noisy16(x)
    cv2.imwrite(str(ref / "a.png"), x[..., ::-1])
    cv2.imwrite(str(test / "a.png"), y[..., ::-1])
    row = _score_one(ref, test, tmp_path, capsys)
    # the reference: scikit-image on the 16-bit arrays, data_range 65535
    assert float(row["psnr"]) == pytest.approx(peak_signal_noise_ratio(x, y, data_range=65535), rel=1e-5)
    want_ssim = torchsim.ssim(torch.from_numpy(x.astype(np.float64)).permute(2, 0, 1)[None],
                              torch.from_numpy(y.astype(np.float64)).permute(2, 0, 1)[None], data_range=65535.0).item()
    assert float(row["ssim"]) == pytest.approx(want_ssim, rel=1e-4)
    eight = peak_signal_noise_ratio((x >> 8).astype(np.uint8), (y >> 8).astype(np.uint8), data_range=255)
    assert abs(float(row["psnr"]) - eight) > 0.05  # not the 8-bit score


def test_mixed_8_and_16_bit_pair_is_one_line(tmp_path, capsys):
    ref, test = _dirs(tmp_path)
    x = _photo16()
    cv2.imwrite(str(ref / "a.png"), x[..., ::-1])
    cv2.imwrite(str(test / "a.png"), (x >> 8).astype(np.uint8)[..., ::-1])
    code = main(["score", str(ref), str(test), "--workers", "0", "--no-progress"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[0] == (f"torchsim score: {test / 'a.png'}: 8-bit image, the reference {ref / 'a.png'} is 16-bit; "
                      "convert one so both have the same depth")


@pytest.mark.parametrize("ext", IMAGE_EXTENSIONS)
def test_every_listed_extension_decodes(tmp_path, ext):
    from PIL import features

    if ext == ".avif" and not features.check("avif"):
        pytest.skip("this Pillow build writes no AVIF")
    x = photo_u8("coffee")[:64, :80]
    Image.fromarray(x).save(tmp_path / f"a{ext}", **({"lossless": True} if ext == ".webp" else {}))
    with Image.open(tmp_path / f"a{ext}") as im:  # what Pillow reads back (lossy formats differ from x)
        want = np.asarray(im.convert("RGB"))
    got = decode(str(tmp_path / f"a{ext}"))
    assert np.array_equal(got.permute(1, 2, 0).numpy(), want)
    if ext in (".png", ".bmp", ".tif", ".tiff", ".webp"):
        assert np.array_equal(want, x)  # lossless


def _animated_gif(path, frames):
    ims = [Image.fromarray(f).convert("P", palette=Image.Palette.ADAPTIVE) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=100, loop=0)


def test_animated_gifs_use_their_first_frame(tmp_path, capsys):
    ref, test = _dirs(tmp_path)
    a = photo_u8("chelsea")[:64, :64]
    b = photo_u8("coffee")[:64, :64]
    _animated_gif(ref / "m.gif", [a, b, a])
    _animated_gif(test / "m.gif", [b, a, b])
    with Image.open(ref / "m.gif") as im:
        assert im.n_frames == 3
        first_ref = np.asarray(im.convert("RGB"))
    with Image.open(test / "m.gif") as im:
        first_test = np.asarray(im.convert("RGB"))
    row = _score_one(ref, test, tmp_path, capsys)
    assert float(row["psnr"]) == pytest.approx(peak_signal_noise_ratio(first_ref, first_test, data_range=255), rel=1e-5)
    assert row["ssim"] != ""


def test_pixelmatch_diff_accepts_jpeg(tmp_path, capsys):
    x = photo_u8("astronaut")[:96, :96]
    y = x.copy()
    y[20:40, 20:40] = 255 - y[20:40, 20:40]
    Image.fromarray(x).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(y).save(tmp_path / "b.jpg", quality=95)
    out = tmp_path / "d.png"
    code = main(["diff", str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg"), "-o", str(out), "--method", "pixelmatch"])
    text = capsys.readouterr()
    assert code == 1, text.err  # decoded and compared: exit 1 says the two images differ
    n = int(text.out.split()[0])
    assert 300 <= n <= 96 * 96 and out.exists()


def test_exif_orientation_only_with_flag(tmp_path):
    x = photo_u8("astronaut")[:40, :64]  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(x).save(tmp_path / "r.jpg", exif=exif, quality=95)
    assert tuple(decode(str(tmp_path / "r.jpg")).shape) == (3, 40, 64)
    assert tuple(decode(str(tmp_path / "r.jpg"), exif=True).shape) == (3, 64, 40)


# ----------------------------------------------------------------------------------------------
# 8. hostile files
# ----------------------------------------------------------------------------------------------


def _bomb(path, width=20000, height=20000):
    """A small valid-looking PNG whose IHDR claims ``width x height`` (the data is a few rows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    idat = zlib.compress(b"\x00" * (1 + 3 * width) * 4, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_decompression_bomb_refused_from_its_header(tmp_path, capsys):
    ref, test = _dirs(tmp_path)
    _bomb(ref / "bomb.png")
    _bomb(test / "bomb.png")
    x = photo_u8("coffee")[:48, :48]
    for d in (ref, test):
        Image.fromarray(x).save(d / "ok.png")
    assert (ref / "bomb.png").stat().st_size < 100_000
    r = _cli("score", ref, test, "--workers", 0, "--no-progress", "--max-pixels", 100_000_000)
    assert r.returncode == 1
    lines = [line for line in r.stderr.splitlines() if "bomb.png" in line]
    assert lines == [f"torchsim score: {ref / 'bomb.png'}: header claims 20000x20000 = 400000000 pixels, more than "
                     "--max-pixels 100000000; refused before decoding"]
    assert "ok.png" in r.stdout  # the other pair was scored
    small = _cli("compare", ref / "ok.png", test / "ok.png", "--max-pixels", 1000)
    assert small.returncode == 1 and "more than --max-pixels 1000" in small.stderr
    with pytest.raises(ImageReadError, match="more than --max-pixels"):  # the default is Pillow's limit
        decode(str(ref / "bomb.png"))


@pytest.fixture
def hostile(tmp_path):
    """A folder with a good image and *.png entries that must never be opened: a FIFO, a symlink
    to a device, a symlink loop."""
    d = tmp_path / "d"
    d.mkdir()
    Image.fromarray(photo_u8("coffee")[:48, :48]).save(d / "good.png")
    os.mkfifo(d / "fifo.png")
    os.symlink("/dev/zero", d / "zero.png")
    os.symlink(d / "loop.png", d / "loop.png")
    return d


EXPECTED = {
    "fifo.png": "a FIFO, not an image file; skipped without reading",
    "zero.png": "a device, not an image file; skipped without reading",
    "loop.png": "symlink loop; skipped",
}


def test_dedup_skips_fifos_devices_and_loops(hostile):
    r = _cli("dedup", hostile, "--no-progress")  # hung on the FIFO before
    assert r.returncode == 1
    for name, why in EXPECTED.items():
        assert f"torchsim dedup: {hostile / name}: {why}" in r.stderr.splitlines()
    assert "1 hashed" in r.stdout


def test_score_and_compare_skip_fifos_devices_and_loops(hostile, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ["good.png", *EXPECTED]:
        Image.fromarray(photo_u8("coffee")[:48, :48]).save(other / name)
    r = _cli("score", other, hostile, "--workers", 0, "--no-progress")
    assert r.returncode == 1
    for name, why in EXPECTED.items():
        assert f"torchsim score: {hostile / name}: {why}" in r.stderr.splitlines()
    assert "good.png" in r.stdout
    r = _cli("compare", other / "good.png", hostile / "fifo.png")  # hung before
    assert r.returncode == 1 and r.stderr.splitlines() == [f"torchsim compare: {hostile / 'fifo.png'}: {EXPECTED['fifo.png']}"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root lists folders without permission")
def test_unreadable_folder_is_one_line(tmp_path):
    d = tmp_path / "d"
    (d / "locked").mkdir(parents=True)
    Image.fromarray(photo_u8("coffee")[:48, :48]).save(d / "a.png")
    (d / "locked").chmod(0)
    try:
        r = _cli("dedup", d, "-r", "--no-progress")
    finally:
        (d / "locked").chmod(0o700)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert f"torchsim: {d / 'locked'}: cannot list the folder (Permission denied); skipped" in r.stderr.splitlines()
