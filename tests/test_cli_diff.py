"""``torchsim diff``: writes a decodable PNG; bad files and size mismatches get one line and a non-zero exit."""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torchvision.io import decode_png, read_file

from tests.helpers import photo_u8
from torchsim.cli import main


@pytest.fixture()
def pair(tmp_path):
    a = Image.fromarray(photo_u8("astronaut")).resize((96, 80))
    b = a.copy()
    ImageDraw.Draw(b).ellipse([10, 10, 40, 35], fill=(0, 200, 0))
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    a.save(pa)
    b.save(pb)
    return str(pa), str(pb)


def _decode(path):
    return decode_png(read_file(str(path)))


def test_ssim_picture(pair, tmp_path, capsys):
    out = tmp_path / "sub" / "diff.png"
    assert main(["diff", *pair, "-o", str(out)]) == 0
    img = _decode(out)
    assert img.shape[0] == 3 and img.shape[1] == 80 and img.shape[2] > 3 * 96  # A | B | SSIM map
    line = capsys.readouterr().out.strip()
    assert "1 difference region" in line and str(out) in line
    assert (img[0] == 255).any()  # the red boxes are drawn


def test_pixelmatch_picture(pair, tmp_path, capsys):
    out = tmp_path / "pm.png"
    assert main(["diff", *pair, "-o", str(out), "--method", "pixelmatch", "--threshold", "0.2"]) == 0
    img = _decode(out)
    assert img.shape == (3, 80, 96)
    assert "mismatched pixels" in capsys.readouterr().out
    red = (img[0] == 255) & (img[1] == 0) & (img[2] == 0)
    assert red.any()


def test_missing_file(pair, tmp_path, capsys):
    missing = str(tmp_path / "nope.png")
    assert main(["diff", pair[0], missing, "-o", str(tmp_path / "o.png")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and missing in err[0] and "no such file" in err[0]
    assert not (tmp_path / "o.png").exists()


def test_corrupt_file(pair, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["diff", str(bad), pair[1], "-o", str(tmp_path / "o.png"), "--method", "pixelmatch"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]


def test_size_mismatch(pair, tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(small)
    assert main(["diff", pair[0], str(small), "-o", str(tmp_path / "o.png")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "size" in err[0] and str(small) in err[0]


def test_bad_threshold_is_one_line(pair, tmp_path, capsys):
    assert main(["diff", *pair, "-o", str(tmp_path / "o.png"), "--method", "pixelmatch", "--threshold", "2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "threshold" in err[0]
