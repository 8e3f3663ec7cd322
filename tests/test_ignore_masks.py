"""Ignore masks (``mask=``) of mse, psnr and ssim: forms, gradients, NaN rules, errors.

The comparisons with scikit-image on photographs are in tests/reference/test_masks_reference.py;
pixelmatch's and diff_regions' masks are tested with those functions.
"""

from __future__ import annotations

import pytest
import torch

import torchsim
from torchsim.ops import matlab_downsample

FUNCS = {
    "mse": (torchsim.mse, {}),
    "psnr": (torchsim.psnr, {"data_range": 1.0}),
    "ssim": (torchsim.ssim, {"data_range": 1.0, "kernel_size": 5}),
}


def _pair(n=2, c=3, h=20, w=24, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h, w, generator=g, dtype=dtype)
    y = (x + 0.2 * torch.rand(n, c, h, w, generator=g, dtype=dtype)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_rectangles_equal_the_bool_mask_and_an_empty_mask_equals_none(name):
    fn, kw = FUNCS[name]
    x, y = _pair()
    rects = [(2, 3, 9, 11), (15, 0, 24, 6)]
    m = torch.zeros(2, 1, 20, 24, dtype=torch.bool)
    for x0, y0, x1, y1 in rects:
        m[:, :, y0:y1, x0:x1] = True
    by_rects = fn(x, y, mask=rects, reduction="none", **kw)
    torch.testing.assert_close(by_rects, fn(x, y, mask=m, reduction="none", **kw), rtol=0, atol=0)
    torch.testing.assert_close(fn(x, y, mask=torch.tensor(rects), reduction="none", **kw), by_rects, rtol=0, atol=0)
    plain = fn(x, y, reduction="none", **kw)
    assert not torch.allclose(by_rects, plain)
    torch.testing.assert_close(fn(x, y, mask=torch.zeros_like(m), reduction="none", **kw), plain, rtol=1e-12, atol=0)
    torch.testing.assert_close(fn(x, y, mask=[], reduction="none", **kw), plain, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_changes_inside_the_mask_do_not_count(name):
    fn, kw = FUNCS[name]
    x, _ = _pair()
    y = x.clone()
    y[:, :, 8:12, 8:14] = 1 - y[:, :, 8:12, 8:14]
    rect = [(8, 8, 14, 12)]
    if name == "ssim":  # windows around the mask still read it: ignore every centre that sees it
        rect = [(6, 6, 16, 14)]
    same = fn(x, x, reduction="none", **kw)
    torch.testing.assert_close(fn(x, y, mask=rect, reduction="none", **kw), same)
    assert not torch.allclose(fn(x, y, reduction="none", **kw), same)


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_all_ignored_is_nan_with_a_zero_gradient(name):
    fn, kw = FUNCS[name]
    x, y = _pair()
    x.requires_grad_(True)
    m = torch.zeros(2, 1, 20, 24, dtype=torch.bool)
    m[1] = True
    v = fn(x, y, mask=m, reduction="none", **kw)
    assert torch.isfinite(v[0]) and torch.isnan(v[1])
    (g,) = torch.autograd.grad(v[0] + torch.nan_to_num(v[1]), x)
    assert torch.isfinite(g).all() and (g[1] == 0).all() and (g[0] != 0).any()


def test_nan_pixels_inside_the_mask_do_not_count():
    x, y = _pair()
    y[:, :, 4, 4] = float("nan")
    m = torch.zeros(2, 1, 20, 24, dtype=torch.bool)
    m[:, :, 4, 4] = True
    assert torch.isnan(torchsim.mse(x, y, reduction="none")).all()
    assert torch.isfinite(torchsim.mse(x, y, mask=m, reduction="none")).all()
    assert torch.isfinite(torchsim.psnr(x, y, data_range=1.0, mask=m, reduction="none")).all()


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_gradcheck_with_a_mask(name):
    fn, kw = FUNCS[name]
    x, y = _pair(n=1, c=2, h=9, w=10, seed=3)
    m = torch.zeros(1, 1, 9, 10, dtype=torch.bool)
    m[:, :, 2:5, 3:7] = True
    x.requires_grad_(True)
    y.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, mask=m, **kw), (x, y))


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize("kind", ["identical", "constant"])
def test_finite_gradients_on_degenerate_inputs_with_a_mask(name, kind):
    fn, kw = FUNCS[name]
    x, y = _pair()
    if kind == "constant":
        x, y = torch.full_like(x, 0.5), torch.full_like(y, 0.25)
    else:
        y = x.clone()
    x.requires_grad_(True)
    v = fn(x, y, mask=[(0, 0, 6, 6)], **kw)
    v = torch.where(torch.isinf(v), torch.zeros_like(v), v)  # psnr of identical images: +inf, gradient 0
    (g,) = torch.autograd.grad(v, x)
    assert torch.isfinite(g).all()


def test_ssim_map_is_one_at_ignored_centres_and_the_mean_is_over_the_others():
    x, y = _pair()
    m = torch.rand(2, 1, 20, 24, generator=torch.Generator().manual_seed(1)) < 0.4
    value, smap = torchsim.ssim(x, y, data_range=1.0, mask=m, return_map=True, reduction="none")
    _, plain = torchsim.ssim(x, y, data_range=1.0, return_map=True, reduction="none")
    keep = ~m[:, :, 5:-5, 5:-5]  # 11-tap window: centres 5 pixels in
    assert smap.shape == plain.shape == (2, 3, 10, 14)
    torch.testing.assert_close(smap, torch.where(keep, plain, torch.ones_like(plain)), rtol=0, atol=0)
    expected = (plain * keep).sum((1, 2, 3)) / (keep.sum((1, 2, 3)) * 3)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=0)


def test_ssim_downsample_subsamples_the_mask():
    x, y = _pair(n=1, h=600, w=520, c=1)
    m = torch.zeros(1, 1, 600, 520, dtype=torch.bool)
    m[:, :, 100:300, 50:200] = True
    f = 2  # round(520 / 256)
    got = torchsim.ssim(x, y, data_range=1.0, downsample=True, mask=m)
    expected = torchsim.ssim(matlab_downsample(x, f), matlab_downsample(y, f), data_range=1.0, mask=m[:, :, ::f, ::f])
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_volumes_take_a_5d_bool_mask():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 12, 13, 14, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.rand(1, 1, 12, 13, 14, generator=g, dtype=torch.float64)).clamp(0, 1)
    m = torch.zeros(1, 1, 12, 13, 14, dtype=torch.bool)
    m[..., :6, :, :] = True
    torch.testing.assert_close(torchsim.mse(x, y, mask=m), torchsim.mse(x[:, :, 6:], y[:, :, 6:]))
    v = torchsim.ssim(x, y, data_range=1.0, kernel_size=3, mask=m)
    _, smap = torchsim.ssim(x, y, data_range=1.0, kernel_size=3, return_map=True)
    torch.testing.assert_close(v, smap[:, :, 5:].mean())  # valid centres 1..10, kept: 6..10
    with pytest.raises(TypeError, match=r"^ssim: mask of volumes must be a bool tensor \(N, 1, D, H, W\)"):
        torchsim.ssim(x, y, data_range=1.0, kernel_size=3, mask=[(0, 0, 2, 2)])


def test_half_input_with_a_mask_is_computed_in_float32():
    x, y = _pair(dtype=torch.float32)
    m = [(0, 0, 10, 10)]
    for name, (fn, kw) in FUNCS.items():
        got = fn(x.half(), y.half(), mask=m, **kw)
        assert got.dtype == torch.float32, name
        torch.testing.assert_close(got, fn(x.half().float(), y.half().float(), mask=m, **kw), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(FUNCS))
@pytest.mark.parametrize(
    "mask, exc, text",
    [
        (torch.zeros(2, 3, 20, 24, dtype=torch.bool), ValueError, r"mask must have shape \(N, 1, H, W\) = \(2, 1, 20, 24\) like the images, got \(2, 3, 20, 24\)"),
        (torch.zeros(2, 1, 20, 24), TypeError, r"mask must be a bool tensor \(N, 1, H, W\) \(True = ignore\) or a list of rectangles"),
        ([(0, 0, 30, 5)], ValueError, r"mask rectangle 0 must satisfy 0 <= x0 < x1 <= 24 and 0 <= y0 < y1 <= 20"),
        ((1, 2, 3, 4), ValueError, r"mask rectangle 0 must be four integers \(x0, y0, x1, y1\), got 1; wrap a single rectangle"),
        ("all", TypeError, r"mask must be a bool tensor"),
    ],
)
def test_bad_masks_are_refused_with_the_function_name(name, mask, exc, text):
    fn, kw = FUNCS[name]
    x, y = _pair()
    with pytest.raises(exc, match=f"^{name}: {text}"):
        fn(x, y, mask=mask, **kw)
