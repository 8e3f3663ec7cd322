"""``torchsim diff`` as a CI step, on real files written by the tests: exit codes (0 match, 1 differ,
2 bad input), JSON, pictures in three modes and three formats, ignore regions and masks, the SSIM
floor, pixelmatch's options; bad files and size mismatches get one line and exit 2."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from torchvision.io import decode_png, read_file

import torchsim
from tests.helpers import photo_u8
from torchsim.cli import main
from torchsim.cli._picture import encode_png


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
    assert main(["diff", *pair, "-o", str(out)]) == 1  # 1: the images differ
    img = _decode(out)
    assert img.shape[0] == 3 and img.shape[1] == 80 and img.shape[2] > 3 * 96  # A | B | SSIM map
    line = capsys.readouterr().out.strip()
    assert "1 difference region" in line and str(out) in line
    assert (img[0] == 255).any()  # the red boxes are drawn


def test_pixelmatch_picture(pair, tmp_path, capsys):
    out = tmp_path / "pm.png"
    assert main(["diff", *pair, "-o", str(out), "--method", "pixelmatch", "--threshold", "0.2"]) == 1
    img = _decode(out)
    assert img.shape == (3, 80, 96)
    assert "mismatched pixels" in capsys.readouterr().out
    red = (img[0] == 255) & (img[1] == 0) & (img[2] == 0)
    assert red.any()


def test_missing_file(pair, tmp_path, capsys):
    missing = str(tmp_path / "nope.png")
    assert main(["diff", pair[0], missing, "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and missing in err[0] and "no such file" in err[0]
    assert not (tmp_path / "o.png").exists()


def test_corrupt_file(pair, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["diff", str(bad), pair[1], "-o", str(tmp_path / "o.png"), "--method", "pixelmatch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0]


def test_size_mismatch(pair, tmp_path, capsys):
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(small)
    assert main(["diff", pair[0], str(small), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "size" in err[0] and str(small) in err[0]


def test_bad_threshold_is_one_line(pair, tmp_path, capsys):
    assert main(["diff", *pair, "-o", str(tmp_path / "o.png"), "--method", "pixelmatch", "--threshold", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "threshold" in err[0]


# ---- the CI contract ------------------------------------------------------------------------------


@pytest.fixture()
def page(tmp_path):
    """A small "screenshot": a photo and text on white, and a copy with a changed word and a red box."""
    base = Image.new("RGB", (160, 120), (255, 255, 255))
    base.paste(Image.fromarray(photo_u8("chelsea")).resize((70, 50)), (80, 10))
    d = ImageDraw.Draw(base)
    d.text((8, 12), "Price: 10 EUR", fill=(0, 0, 0))
    d.text((8, 70), "Checkout", fill=(20, 20, 120))
    edited = base.copy()
    d2 = ImageDraw.Draw(edited)
    d2.rectangle([8, 12, 75, 24], fill=(255, 255, 255))
    d2.text((8, 12), "Price: 12 EUR", fill=(0, 0, 0))
    d2.rectangle([100, 80, 130, 100], fill=(200, 30, 30))
    pa, pb = tmp_path / "base.png", tmp_path / "edited.png"
    base.save(pa)
    edited.save(pb)
    return str(pa), str(pb), np.array(base), np.array(edited)


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_identical_files_exit_0_and_differing_files_exit_1(page, capsys):
    a, b, _, _ = page
    for method in ("ssim", "pixelmatch"):
        assert main(["diff", a, a, "--method", method]) == 0
        assert "identical" in capsys.readouterr().out
        assert main(["diff", a, b, "--method", method]) == 1
        assert "different" in capsys.readouterr().out


def test_json_report_to_stdout_and_to_a_file(page, tmp_path, capsys):
    a, b, x, y = page
    assert main(["diff", a, b, "--method", "pixelmatch", "--json"]) == 1
    doc = _json(capsys)  # stdout holds the JSON document only
    expected = int(torchsim.pixelmatch(torch.from_numpy(x).permute(2, 0, 1)[None], torch.from_numpy(y).permute(2, 0, 1)[None]))
    assert doc["count"] == expected > 0 and doc["match"] is False and doc["identical"] is False
    assert doc["percentage"] == pytest.approx(100 * expected / (160 * 120))
    assert doc["width"] == 160 and doc["height"] == 120 and doc["method"] == "pixelmatch"
    assert sum(r["pixels"] for r in doc["regions"]) == expected
    for r in doc["regions"]:
        x0, y0, x1, y1 = r["box"]
        assert 0 <= x0 < x1 <= 160 and 0 <= y0 < y1 <= 120 and -1 <= r["mean_ssim"] < 1
    red = [r for r in doc["regions"] if r["box"] == [100, 80, 131, 101]]  # the filled box, inclusive corners 130, 100
    assert red and red[0]["pixels"] == 31 * 21
    s = doc["settings"]
    assert s["threshold"] == 0.1 and s["include_aa"] is False and s["fail_threshold"] == {"count": 0} and s["a"] == a
    report = tmp_path / "out" / "report.json"
    assert main(["diff", a, b, "--json", str(report)]) == 1
    doc = json.loads(report.read_text())
    assert doc["method"] == "ssim" and doc["settings"]["min_ssim"] == 0.9 and len(doc["regions"]) >= 2
    assert doc["count"] == sum(r["pixels"] for r in doc["regions"])
    assert "difference region" in capsys.readouterr().out  # the summary line still goes to stdout


def test_fail_threshold_as_a_count_and_a_percentage(page, capsys):
    a, b, _, _ = page
    main(["diff", a, b, "--method", "pixelmatch", "--json"])
    count, percent = (lambda d: (d["count"], d["percentage"]))(_json(capsys))
    for limit, code in ((count, 0), (count - 1, 1), (f"{percent + 0.01}%", 0), (f"{percent - 0.01}%", 1)):
        assert main(["diff", a, b, "--method", "pixelmatch", "--fail-threshold", str(limit)]) == code
        assert ("within --fail-threshold" if code == 0 else "different") in capsys.readouterr().out
    assert main(["diff", a, b, "--fail-threshold", "lots"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "torchsim diff: --fail-threshold must be a pixel count (500) or a percentage (0.5%), got 'lots'"
    ]


def test_a_size_mismatch_is_never_identical(page, tmp_path, capsys):
    a, _, x, _ = page
    small = tmp_path / "crop.png"
    Image.fromarray(x[:100, :150]).save(small)
    for method in ("ssim", "pixelmatch"):
        assert main(["diff", a, str(small), "--method", method, "--fail-threshold", "100%"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "size mismatch: 150x100 differs from 160x120" in err[0]


@pytest.mark.parametrize("method", ["ssim", "pixelmatch"])
def test_output_modes(page, tmp_path, method, capsys):
    a, b, x, _ = page
    shapes = {}
    for mode in ("overlay", "mask", "side-by-side"):
        out = tmp_path / f"{method}-{mode}.png"
        assert main(["diff", a, b, str(out), "--method", method, "--output-mode", mode]) == 1
        with Image.open(out) as im:
            im.load()
            shapes[mode] = (im.mode, im.size)
            pic = np.asarray(im)
        if mode == "mask":
            assert pic[..., 3].any() and (pic[..., 3] == 0).mean() > 0.8  # differing pixels on transparent
            assert (pic[pic[..., 3] == 255][:, :3] == (255, 0, 0)).all()
        if mode == "overlay":  # a faded copy of A: lighter than A, with red pixels
            assert pic.mean() > x.mean() and ((pic == (255, 0, 0)).all(-1)).any()
    assert shapes["overlay"] == ("RGB", (160, 120)) and shapes["mask"] == ("RGBA", (160, 120))
    assert shapes["side-by-side"][0] == "RGB" and shapes["side-by-side"][1][0] > 3 * 160


def test_picture_formats_follow_the_extension(page, tmp_path, capsys):
    a, b, _, _ = page
    for name, fmt in (("d.png", "PNG"), ("d.PNG", "PNG"), ("d.jpg", "JPEG"), ("d.jpeg", "JPEG"), ("d.webp", "WEBP")):
        out = tmp_path / name
        assert main(["diff", a, b, "-o", str(out), "--method", "pixelmatch", "--output-mode", "mask"]) == 1
        with Image.open(out) as im:
            assert im.format == fmt and im.size == (160, 120)
    capsys.readouterr()
    for bad in ("d.gif", "d.bmp", "d"):
        assert main(["diff", a, b, str(tmp_path / bad)]) == 2
        assert capsys.readouterr().err.strip().splitlines() == [
            f"torchsim diff: {tmp_path / bad}: cannot write this format; use .png, .jpg, .jpeg or .webp"
        ]
        assert not (tmp_path / bad).exists()
    assert main(["diff", a, b, str(tmp_path / "p.png"), "-o", str(tmp_path / "q.png")]) == 2
    assert main(["diff", a, b, "--method", "pixelmatch", "--json", str(tmp_path / "d.png")]) == 2
    assert "that is an image name" in capsys.readouterr().err


def test_positional_output_after_options(page, tmp_path, capsys):
    a, b, _, _ = page
    out = tmp_path / "late.png"
    assert main(["diff", a, b, "--method", "pixelmatch", "--threshold", "0.2", str(out)]) == 1
    assert out.exists()


def test_diff_lines_and_columns_as_odiff_reports_them(page, tmp_path, capsys):
    a, b, _, _ = page
    assert main(["diff", a, b, "--method", "pixelmatch", "--ignore", "0,0,80,40", "--output-diff-lines",
                 "--output-diff-cols"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[1] == "Different lines: " + ", ".join(str(r) for r in range(80, 101))  # the red box only
    assert out[2] == "Different columns: " + ", ".join(str(c) for c in range(100, 131))
    assert main(["diff", a, b, "--method", "pixelmatch", "--output-diff-lines", "--json"]) == 1
    doc = _json(capsys)
    assert set(range(80, 101)) <= set(doc["diff_lines"]) and doc["diff_lines"] == sorted(set(doc["diff_lines"]))
    assert "diff_cols" not in doc


@pytest.mark.parametrize("method", ["ssim", "pixelmatch"])
def test_ignore_rectangles_and_mask_files(page, tmp_path, method, capsys):
    a, b, _, _ = page
    both = ["--ignore", "0,0,80,40", "--ignore", "95,75,136,106"]
    assert main(["diff", a, b, "--method", method, *both]) == 0
    assert main(["diff", a, b, "--method", method, "--ignore", "0,0,80,40"]) == 1  # the red box still differs
    m = np.zeros((120, 160), np.uint8)
    m[0:40, 0:80] = 255
    m[75:106, 95:136] = 1  # any non-zero value ignores
    mask = tmp_path / "mask.png"
    Image.fromarray(m).save(mask)
    capsys.readouterr()
    assert main(["diff", a, b, "--method", method, "--mask", str(mask), "--json"]) == 0
    doc = _json(capsys)
    assert doc["count"] == 0 and doc["regions"] == [] and doc["settings"]["mask"] == str(mask)
    Image.fromarray(m[:60]).save(mask)
    assert main(["diff", a, b, "--method", method, "--mask", str(mask)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"torchsim diff: --mask {mask}: size 160x60 differs from the 160x120 images"
    ]
    assert main(["diff", a, b, "--ignore", "0,0,161,10"]) == 2
    assert "outside the 160x120 images" in capsys.readouterr().err
    assert main(["diff", a, b, "--ignore", "5,5,5,10"]) == 2


def test_near_identical_images_have_no_ssim_regions(tmp_path, capsys):
    """±1 level of noise (PSNR ~50 dB): the SSIM floor leaves no region (the bare Otsu split finds many)."""
    a = photo_u8("coffee", size=(200, 150))
    noisy = np.clip(a.astype(np.int16) + np.random.default_rng(0).integers(-1, 2, a.shape), 0, 255).astype(np.uint8)
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(a).save(pa)
    Image.fromarray(noisy).save(pb)
    assert main(["diff", str(pa), str(pb), "--json"]) == 0
    assert _json(capsys)["regions"] == []
    assert main(["diff", str(pa), str(pb), "--min-ssim", "none", "--json"]) == 1
    assert len(_json(capsys)["regions"]) > 20
    assert main(["diff", str(pa), str(pb), "--method", "pixelmatch"]) == 0  # pixelmatch's 0.1 threshold agrees
    assert main(["diff", str(pa), str(pb), "--method", "pixelmatch", "--threshold", "0"]) == 1  # zero tolerance
    capsys.readouterr()
    assert main(["diff", str(pa), str(pb), "--min-ssim", "2"]) == 2
    assert capsys.readouterr().err.strip() == "torchsim diff: --min-ssim must be a number in [-1, 1] or none, got '2'"


def test_antialiasing_options_as_pixelmatch_and_odiff_name_them(page, capsys):
    a, b, x, y = page
    xt, yt = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (x, y))
    counts = {}
    for flag, include in (("--antialiasing", False), ("--include-aa", True)):
        main(["diff", a, b, "--method", "pixelmatch", flag, "--json"])
        counts[flag] = _json(capsys)["count"]
        assert counts[flag] == int(torchsim.pixelmatch(xt, yt, include_aa=include))
    assert counts["--include-aa"] > counts["--antialiasing"]  # the text's anti-aliased edges count
    main(["diff", a, b, "--method", "pixelmatch", "--json"])
    assert _json(capsys)["count"] == counts["--antialiasing"]  # pixelmatch's default


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("size", [(1, 1), (37, 53), (300, 7001)])  # (300, 7001): several bands
def test_png_encoder_round_trips_through_pillow_and_torchvision(channels, size):
    h, w = size
    img = torch.from_numpy(photo_u8("astronaut", size=(512, 512))).permute(2, 0, 1)
    img = img.repeat(1, 1 + h // 512, 1 + w // 512)[:, :h, :w]
    img = img[:1] if channels == 1 else img if channels == 3 else torch.cat([img, img[:1].flip(-1)])
    data = encode_png(img.contiguous(), threads=3)
    assert torch.equal(decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8)), img)
    import io

    with Image.open(io.BytesIO(data)) as im:
        got = np.asarray(im)
    assert np.array_equal(got if channels > 1 else got[..., None], img.permute(1, 2, 0).numpy())


def test_semi_transparent_files_are_compared_as_rgba(tmp_path, capsys):
    """A change of transparency only: mapbox v7 sees it over its checkerboard; an opaque RGBA file
    counts as its RGB copy does."""
    rgb = photo_u8("astronaut", size=(64, 48))
    a = np.concatenate([rgb, np.full((48, 64, 1), 255, np.uint8)], -1)
    b = a.copy()
    b[10:20, 10:30, 3] = 60  # the same colours, now translucent
    for name, img in (("a.png", a), ("b.png", b), ("a_rgb.png", rgb)):
        Image.fromarray(img).save(tmp_path / name)
    expected = int(torchsim.pixelmatch(torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None]))
    assert expected > 0
    assert main(["diff", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--method", "pixelmatch", "--json"]) == 1
    assert _json(capsys)["count"] == expected
    assert main(["diff", str(tmp_path / "a.png"), str(tmp_path / "a_rgb.png"), "--method", "pixelmatch"]) == 0


def test_compare_takes_the_same_ignore_options(page, tmp_path, capsys):
    """``compare --ignore/--mask``: MSE, PSNR, SSIM and pixelmatch leave the pixels out (equal to the
    library with the mask); the other rows say they use the whole image."""
    a, b, x, y = page
    assert main(["compare", a, b, "--ignore", "0,0,80,40", "--ignore", "95,75,136,106"]) == 0
    out = capsys.readouterr().out
    assert "pixels ignored" in out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "0 px (0.00%)" in rows["pixelmatch"] and " inf dB" in rows["PSNR"]
    assert "whole image (no ignore mask)" in rows["cosine similarity"] and "whole image" not in rows["MSE"]
    m = torch.zeros(1, 1, 120, 160, dtype=torch.bool)
    m[..., 0:40, 0:80] = True
    xt, yt = (torch.from_numpy(v).permute(2, 0, 1)[None] for v in (x, y))
    assert main(["compare", a, b, "--ignore", "0,0,80,40"]) == 0
    rows = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert f"{float(torchsim.mse(xt, yt, mask=m)):.2f}" in rows["MSE"]
    assert f"{float(torchsim.ssim(xt, yt, mask=m)):.4f}" in rows["SSIM"]
    assert main(["compare", a, b, "--ignore", "0,0,10"]) == 2
    assert capsys.readouterr().err.startswith("torchsim compare: --ignore must be x0,y0,x1,y1")


@pytest.mark.parametrize("method", ["ssim", "pixelmatch"])
def test_16_bit_files_are_compared_and_drawn(tmp_path, method, capsys):
    """16-bit PNGs (written by OpenCV): compared at 16 bits (pixelmatch: their high byte, as the
    library reads uint16), drawn from their high byte."""
    import cv2

    rgb = photo_u8("coffee", size=(80, 60)).astype(np.uint16) * 257
    edited = rgb.copy()
    edited[10:30, 20:50] = 65535 - edited[10:30, 20:50]
    cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1])
    cv2.imwrite(str(tmp_path / "b.png"), edited[..., ::-1])
    out = tmp_path / "d.png"
    assert main(["diff", str(tmp_path / "a.png"), str(tmp_path / "b.png"), str(out), "--method", method, "--json"]) == 1
    doc = _json(capsys)
    xt, yt = (torch.from_numpy(v.astype(np.int32)).permute(2, 0, 1)[None].to(torch.uint16) for v in (rgb, edited))
    if method == "pixelmatch":
        assert doc["count"] == int(torchsim.pixelmatch(xt, yt)) > 0
    else:
        assert [r["box"] for r in doc["regions"]] == torchsim.diff_regions(xt, yt)[0].tolist()
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size[1] == 60


def test_threshold_zero_counts_every_pixel_that_differs_at_all(tmp_path, capsys):
    """``--threshold 0 --include-aa`` counts exactly the pixels whose RGB differ (numpy's count), even
    by one level; with the default 0.1 none of those counts."""
    a = photo_u8("coffee", size=(200, 150))
    rng = np.random.default_rng(3)
    b = a.copy()
    touched = rng.random(a.shape[:2]) < 0.01
    b[touched, rng.integers(0, 3)] ^= 1  # one level in one channel of 1 % of the pixels
    pa, pb = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(a).save(pa)
    Image.fromarray(b).save(pb)
    expected = int((a != b).any(-1).sum())
    assert expected > 100
    assert main(["diff", str(pa), str(pb), "--method", "pixelmatch", "--threshold", "0", "--include-aa", "--json"]) == 1
    assert _json(capsys)["count"] == expected
    assert main(["diff", str(pa), str(pb), "--method", "pixelmatch", "--json"]) == 0
    doc = _json(capsys)
    assert doc["count"] == 0 and doc["identical"] is True


def test_size_mismatch_by_one_pixel_is_never_identical(page, tmp_path, capsys):
    """One column fewer, the rest equal: exit 2 for every method and limit, and the API raises."""
    a, _, x, _ = page
    cropped = tmp_path / "cropped.png"
    Image.fromarray(x[:, :-1]).save(cropped)
    for extra in ([], ["--method", "pixelmatch", "--fail-threshold", "100%"], ["--json"]):
        assert main(["diff", a, str(cropped), *extra]) == 2
        captured = capsys.readouterr()
        assert "identical" not in captured.out and "size mismatch" in captured.err
    xt = torch.from_numpy(x).permute(2, 0, 1)[None]
    with pytest.raises(ValueError, match="same shape"):
        torchsim.pixelmatch(xt, xt[..., :-1])


@pytest.mark.parametrize("mode", ["overlay", "side-by-side"])
def test_json_regions_and_lines_agree_with_the_mask_picture(page, tmp_path, mode, capsys):
    """With an overlay picture the JSON's mismatches come from its red pixels: the same count, regions,
    rows and columns as with the mask picture (drawn from the counted mismatches themselves)."""
    a, b, _, _ = page
    docs = []
    for m in (mode, "mask"):
        out = tmp_path / f"{m}.png"
        argv = ["diff", a, b, str(out), "--method", "pixelmatch", "--output-mode", m, "--output-diff-lines",
                "--output-diff-cols", "--json"]
        assert main(argv) == 1
        doc = _json(capsys)
        docs.append({k: doc[k] for k in ("count", "regions", "diff_lines", "diff_cols")})
    assert docs[0] == docs[1] and docs[0]["count"] > 0 and docs[0]["regions"]
    assert sum(r["pixels"] for r in docs[0]["regions"]) == docs[0]["count"]


# ---- pixelmatch without torch ---------------------------------------------------------------------


_NO_TORCH = """
import sys
from torchsim.cli import main
code = main(sys.argv[1:])
assert "torch" not in sys.modules, "torch was imported"
sys.exit(code)
"""


@pytest.mark.parametrize("extra", [[], ["--output-mode", "mask"], ["--ignore", "90,75,140,110", "--output-diff-lines"],
                                   ["--include-aa", "--threshold", "0"]], ids=["overlay", "mask", "ignore", "include-aa"])
def test_pixelmatch_runs_without_torch_and_equals_the_library(page, tmp_path, extra):
    """``diff --method pixelmatch`` on the CPU (no --json, --mask or side-by-side) runs the CPU kernel
    on the decoded arrays in a process that never imports torch (a CI step starts in a fraction of
    a second); its count, exit code and picture are those of :func:`torchsim.pixelmatch` on the
    same pixels, and of the command run through torch (``--json`` needs SSIM, so it imports torch)."""
    import subprocess
    import sys

    a, b, base, edited = page
    out = tmp_path / "fast.png"
    args = ["diff", a, b, str(out), "--method", "pixelmatch", *extra]
    done = subprocess.run([sys.executable, "-c", _NO_TORCH, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    count = int(done.stdout.split()[0])
    ignore = [(90, 75, 140, 110)] if "--ignore" in extra else None
    kw = {"threshold": 0.0, "include_aa": True} if "--include-aa" in extra else {}
    x, y = (torch.from_numpy(v).permute(2, 0, 1)[None].contiguous() for v in (base, edited))
    want_count, want = torchsim.pixelmatch(x, y, return_diff=True, diff_mask="mask" in extra, mask=ignore, **kw)
    assert count == int(want_count) > 0
    got = _decode(out) if "mask" not in extra else torch.from_numpy(np.array(Image.open(out).convert("RGBA"))).permute(2, 0, 1)
    assert torch.equal(got, want[0] if "mask" in extra else want[0, :3])
    if "--output-diff-lines" in extra:
        rows = done.stdout.splitlines()[1]
        assert rows.startswith("Different lines: ")
        want_rows = torch.nonzero(((want[0, 0] == 255) & (want[0, 1] == 0)).any(1)).reshape(-1).tolist()
        assert [int(v) for v in rows.split(": ")[1].split(", ")] == want_rows
    out2 = tmp_path / "torch.png"
    assert main(["diff", a, b, str(out2), "--method", "pixelmatch", *extra, "--json", str(tmp_path / "r.json")]) == 1
    assert json.loads((tmp_path / "r.json").read_text())["count"] == count
    assert torch.equal(_decode(out2) if "mask" not in extra else torch.from_numpy(np.array(Image.open(out2).convert("RGBA"))).permute(2, 0, 1), got)
