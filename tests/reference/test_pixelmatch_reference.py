"""pixelmatch(compat="pixelmatch-py") vs pixelmatch-py 0.4.0: equal counts and byte-identical diff images.

The reference is ``pixelmatch.contrib.PIL.pixelmatch`` with ``output =
Image.new("RGBA", size)`` (pure Python, so the images are kept at 128 px).
mapbox pixelmatch v7, the default generation, is checked in test_pixelmatch_mapbox.py.
"""

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from pixelmatch.contrib.PIL import pixelmatch as pm_ref

import torchsim
from tests.helpers import photo_u8, to_nchw

SIZE = 128


def _t(img: Image.Image) -> torch.Tensor:
    return to_nchw(np.asarray(img))


def _reference(i1, i2, **kw):
    out = Image.new("RGBA", i1.size)
    count = pm_ref(
        i1,
        i2,
        out,
        threshold=kw.get("threshold", 0.1),
        includeAA=kw.get("include_aa", False),
        alpha=kw.get("alpha", 0.1),
        aa_color=kw.get("aa_color", (255, 255, 0)),
        diff_color=kw.get("diff_color", (255, 0, 0)),
        diff_mask=kw.get("diff_mask", False),
    )
    return count, _t(out)


def _check(i1, i2, **kw):
    count, diff = _reference(i1, i2, **kw)
    got, got_diff = torchsim.pixelmatch(_t(i1), _t(i2), return_diff=True, compat="pixelmatch-py", **kw)
    assert got.tolist() == [count]
    assert torch.equal(got_diff, diff), f"{int((got_diff != diff).any(1).sum())} pixels differ"
    return count


def _photo(name):
    return Image.fromarray(photo_u8(name, size=(SIZE, SIZE), rgb=True))


def _edited(img):
    out = img.copy()
    d = ImageDraw.Draw(out)
    d.rectangle([20, 30, 60, 55], fill=(20, 180, 40))
    d.text((50, 90), "torchsim", fill=(255, 255, 255))
    d.line([0, 127, 127, 64], fill=(0, 0, 0), width=2)
    return out


def _shapes(shift):
    """Anti-aliased shapes: drawn at 4x and downscaled with a filter."""
    big = Image.new("RGB", (4 * SIZE, 4 * SIZE), "white")
    d = ImageDraw.Draw(big)
    d.ellipse([40 + shift, 40, 400 + shift, 300], outline="black", width=12)
    d.polygon([(300, 60), (480, 200 + shift), (260, 420)], fill=(30, 60, 200))
    d.line([0, 500, 500, shift], fill=(200, 0, 0), width=8)
    return big.resize((SIZE, SIZE), Image.LANCZOS)


def _text(msg, dx=0):
    img = Image.new("RGB", (SIZE, SIZE // 2), "white")
    d = ImageDraw.Draw(img)
    d.text((4 + dx, 4), msg, fill="black")
    d.text((4, 30), "pixelmatch 0.4.0", fill=(40, 40, 160))
    return img


def _rgba_pair(seed=0):
    rng = np.random.default_rng(seed)
    base = np.asarray(_photo("coffee").convert("RGBA")).copy()
    base[..., 3] = np.clip(np.linspace(0, 255, SIZE)[None, :] + rng.normal(0, 10, (SIZE, SIZE)), 0, 255).astype(np.uint8)
    other = base.copy()
    other[40:70, 30:90, 3] = 128
    other[80:100, 10:50, :3] = 255 - other[80:100, 10:50, :3]
    other[100:120, 60:120, 3] = 0
    return Image.fromarray(base, "RGBA"), Image.fromarray(other, "RGBA")


OPTIONS = [
    {},
    {"include_aa": True},
    {"diff_mask": True},
    {"threshold": 0.05, "alpha": 0.5},
    {"threshold": 0.3, "aa_color": (0, 128, 255), "diff_color": (10, 20, 30), "alpha": 1.0},
]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(o) or "default")
def test_photo_with_edits(opts):
    img = _photo("astronaut")
    assert _check(img, _edited(img), **opts) > 0


def test_photo_jpeg_round_trip():
    import io

    img = _photo("chelsea")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=30)
    _check(img, Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), threshold=0.05)


@pytest.mark.parametrize("opts", OPTIONS[:3], ids=lambda o: ",".join(o) or "default")
def test_antialiased_shapes(opts):
    _check(_shapes(0), _shapes(6), **opts)


def test_antialiasing_is_detected_on_shapes():
    a, b = _shapes(0), _shapes(6)
    assert _check(a, b) < _check(a, b, include_aa=True)


@pytest.mark.parametrize("opts", OPTIONS[:2], ids=lambda o: ",".join(o) or "default")
def test_text(opts):
    _check(_text("Hello, world"), _text("Hello, world", dx=1), **opts)


@pytest.mark.parametrize("opts", [{}, {"alpha": 0.7}, {"diff_mask": True, "threshold": 0.02}], ids=str)
def test_semi_transparent_rgba(opts):
    a, b = _rgba_pair()
    _check(a, b, **opts)


@pytest.mark.parametrize("opts", [{}, {"alpha": 0.37}, {"diff_mask": True}], ids=str)
def test_identical_images_fast_path(opts):
    a, _ = _rgba_pair()
    assert _check(a, a.copy(), **opts) == 0


def test_small_palette_images_exercise_every_rule():
    rng = np.random.default_rng(7)
    for trial in range(40):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        pal = rng.integers(0, 256, (int(rng.integers(2, 5)), 4), dtype=np.uint8)
        if trial % 2:
            pal[:, 3] = 255
        a = pal[rng.integers(0, len(pal), (h, w))]
        b = a.copy()
        m = rng.random((h, w)) < 0.3
        b[m] = pal[rng.integers(0, len(pal), int(m.sum()))]
        opts = {"threshold": float(rng.choice([0.0, 0.05, 0.1])), "include_aa": bool(trial % 5 == 0), "diff_mask": bool(trial % 3 == 0)}
        _check(Image.fromarray(a, "RGBA"), Image.fromarray(b, "RGBA"), **opts)


def _blended_y(img: Image.Image) -> np.ndarray:
    """pixelmatch's brightness of the colour blended with white, float64."""
    v = np.asarray(img.convert("RGBA")).astype(np.float64)
    a = v[..., 3] / 255
    r, g, b = (255 + (v[..., k] - 255) * a for k in range(3))
    return r * 0.29889531 + g * 0.58662247 + b * 0.11448223


@pytest.mark.parametrize("pair", ["photo", "rgba"])
def test_diff_color_alt_follows_mapbox_definition(pair):
    """mapbox: ``diffColorAlt`` where ``y1 - y2 > 0`` (the second image is darker), ``diffColor`` elsewhere."""
    if pair == "photo":
        a = _photo("astronaut")
        b = _edited(a)
    else:
        a, b = _rgba_pair(1)
    count, ref_diff = _reference(a, b, diff_color=(255, 0, 0))
    got, diff = torchsim.pixelmatch(_t(a), _t(b), diff_color_alt=(0, 255, 0), return_diff=True, compat="pixelmatch-py")
    assert got.tolist() == [count]
    mismatch = (ref_diff[0, :3] == torch.tensor([255, 0, 0]).reshape(3, 1, 1)).all(0)
    darker = torch.from_numpy(_blended_y(a) - _blended_y(b) > 0)
    alt = (diff[0, :3] == torch.tensor([0, 255, 0]).reshape(3, 1, 1)).all(0)
    red = (diff[0, :3] == torch.tensor([255, 0, 0]).reshape(3, 1, 1)).all(0)
    assert torch.equal(alt, mismatch & darker) and torch.equal(red, mismatch & ~darker)
    assert 0 < int(alt.sum()) < count
    other = ~mismatch
    assert torch.equal(diff[0][:, other], ref_diff[0][:, other])


@pytest.mark.parametrize("opts", [{}, {"diff_mask": True}, {"alpha": 0.6, "threshold": 0.05}], ids=str)
def test_mask_reference_verdicts_outside_background_inside(opts):
    """``mask`` with ``compat="pixelmatch-py"``: outside the mask every pixel as pixelmatch-py draws the
    pair, inside its per-pixel background (``draw_gray_pixel``, from its core on ``(a, a)``, or
    transparent with ``diff_mask``); the count drops by the mismatches inside."""
    from pixelmatch.core import pixelmatch as pm_core

    a, b = _rgba_pair(2)
    count, diff = _reference(a, b, **opts)
    _, only = _reference(a, b, **dict(opts, diff_mask=True))
    raw = np.asarray(a).tobytes()
    out = bytearray(len(raw))
    pm_core(raw, raw, SIZE, SIZE, out, alpha=opts.get("alpha", 0.1), diff_mask=opts.get("diff_mask", False))
    background = torch.frombuffer(out, dtype=torch.uint8).reshape(SIZE, SIZE, 4).permute(2, 0, 1)[None]
    mask = torch.zeros(1, 1, SIZE, SIZE, dtype=torch.bool)
    mask[..., 30:75, 20:60] = True
    mask[..., ::7, :] = True
    got, got_diff = torchsim.pixelmatch(_t(a), _t(b), mask=mask, return_diff=True, compat="pixelmatch-py", **opts)
    assert got.tolist() == [count - int((only[0, 3] == 255)[mask[0, 0]].sum())]
    assert torch.equal(got_diff, torch.where(mask, background, diff))
    # a pair that differs only under the mask is identical: pixelmatch-py's Pillow drawing of (a, a)
    changed = torch.from_numpy((np.asarray(a) != np.asarray(b)).any(-1))[None, None]
    got, got_diff = torchsim.pixelmatch(_t(a), _t(b), mask=changed, return_diff=True, compat="pixelmatch-py", **opts)
    assert got.tolist() == [0] and torch.equal(got_diff, _reference(a, a.copy(), **opts)[1])
