"""``torchsim demo`` and ``torchsim compare``: the report, the picture, and one-line errors."""

import pytest
import torch

import torchsim
from torchsim.cli import main
from torchsim.cli.demo import load_sample
from torchsim.io import read_image, write_png

METRICS = ["MSE", "PSNR", "cosine similarity", "SSIM", "MS-SSIM", "PSNR (Y channel)", "histogram correlation",
           "NMI", "MD5 equal", "ahash distance", "dhash distance", "phash distance", "pixelmatch"]


def test_demo_prints_every_metric_and_writes_a_picture(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert main(["demo", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    for name in METRICS:
        assert name in text, name
    for column in ("noise", "blur", "jpeg"):
        assert column in text
    picture = read_image(out)
    h, w = load_sample().shape[2:]
    assert picture.shape[0] == 3 and picture.shape[1] >= 3 * h and picture.shape[2] >= 4 * w


@pytest.fixture
def two_files(tmp_path):
    x = load_sample()[0]
    y = torch.flip(x, dims=[-1]).contiguous()
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_png(x, a)
    write_png(y, b)
    return x, y, a, b


def test_compare_reports_the_library_values(two_files, capsys):
    x, y, a, b = two_files
    assert main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    for name in METRICS:
        assert name in text, name
    psnr = torchsim.psnr(x[None], y[None]).item()
    ssim = torchsim.ssim(x[None], y[None]).item()
    assert f"{psnr:.2f} dB" in text
    assert f"{ssim:.4f}" in text


def test_compare_identical_files(two_files, capsys):
    _, _, a, _ = two_files
    assert main(["compare", str(a), str(a)]) == 0
    text = capsys.readouterr().out
    assert "inf" in text  # PSNR of identical images
    md5_row = next(line for line in text.splitlines() if line.startswith("MD5 equal"))
    assert "yes" in md5_row


@pytest.mark.parametrize("problem", ["missing", "corrupt", "not-an-image"])
def test_compare_bad_file_gets_one_line_and_nonzero_exit(two_files, tmp_path, capsys, problem):
    _, _, a, _ = two_files
    bad = tmp_path / f"{problem}.png"
    if problem == "corrupt":
        bad.write_bytes(a.read_bytes()[:200])  # truncated PNG
    elif problem == "not-an-image":
        bad.write_text("hello")
    assert main(["compare", str(a), str(bad)]) == 1
    captured = capsys.readouterr()
    ours = [line for line in captured.err.splitlines() if line.startswith("torchsim compare:")]
    assert len(ours) == 1 and str(bad) in ours[0]
    assert "SSIM" not in captured.out


def test_compare_size_mismatch(two_files, tmp_path, capsys):
    x, _, a, _ = two_files
    small = tmp_path / "small.png"
    write_png(x[:, :100, :120].contiguous(), small)
    assert main(["compare", str(a), str(small)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differs" in err[0] and str(small) in err[0]
