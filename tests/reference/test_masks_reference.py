"""Ignore masks of mse, psnr and ssim against their references on real photographs.

References, evaluated at test time on the pixels that are not ignored:
``skimage.metrics.mean_squared_error(a[~m], b[~m])`` and
``peak_signal_noise_ratio(a[~m], b[~m], data_range=...)`` (numpy's boolean indexing
keeps each kept pixel's channels), and for SSIM the mean of
``structural_similarity(..., full=True)``'s map over the valid region (the window
inside the image) at the window centres that are not ignored.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

import torchsim
from tests.helpers import DISTORTIONS, to_nchw

PHOTOS = ("astronaut", "coffee", "chelsea", "camera")


def _crop(img: np.ndarray, h: int = 96, w: int = 128) -> np.ndarray:
    return np.ascontiguousarray(img[60 : 60 + h, 90 : 90 + w])


def _masks(a: np.ndarray):
    """Ignore masks of the kinds users draw: two rectangles (a clock, an ad) and a shape that follows
    the picture (its brightest third, as a mask of a moving highlight would)."""
    h, w = a.shape[:2]
    rects = [(5, 7, 40, 30), (70, 50, 120, 90)]
    boxes = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in rects:
        boxes[y0:y1, x0:x1] = True
    gray = a if a.ndim == 2 else a.mean(-1)
    bright = gray > np.quantile(gray, 2 / 3)
    return {"rectangles": (rects, boxes), "bright": (torch.from_numpy(bright)[None, None], bright)}


CASES = [(n, d, k) for n in PHOTOS for d in sorted(DISTORTIONS) for k in ("rectangles", "bright")]


@pytest.mark.parametrize("name, distortion, kind", CASES)
def test_mse_and_psnr_over_kept_pixels_equal_skimage(photos, name, distortion, kind):
    a = _crop(photos[name])
    b = DISTORTIONS[distortion](a)
    mask, m = _masks(a)[kind]
    keep = ~m
    expected_mse = mean_squared_error(a[keep], b[keep])
    expected_psnr = peak_signal_noise_ratio(a[keep], b[keep], data_range=1.0)
    x, y = to_nchw(a), to_nchw(b)
    torch.testing.assert_close(torchsim.mse(x, y, mask=mask), torch.tensor(expected_mse, dtype=torch.float64), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        torchsim.psnr(x, y, data_range=1.0, mask=mask), torch.tensor(expected_psnr, dtype=torch.float64), rtol=1e-12, atol=0
    )
    # uint8 photos, 0..255
    au, bu = (np.round(v * 255).astype(np.uint8) for v in (a, b))
    got = torchsim.psnr(to_nchw(au), to_nchw(bu), mask=mask)
    torch.testing.assert_close(got.double(), torch.tensor(peak_signal_noise_ratio(au[keep], bu[keep], data_range=255)), rtol=1e-5, atol=0)
    # the mask changes the answer (the test could fail)
    assert not torch.isclose(torchsim.mse(x, y), torchsim.mse(x, y, mask=mask), rtol=1e-6)


def _skimage_masked_ssim(a, b, m, **kw):
    """Mean of skimage's full SSIM map over the valid region's centres that are not ignored."""
    win = kw.pop("win", 11)
    channel = {"channel_axis": -1} if a.ndim == 3 else {}
    _, full = structural_similarity(a, b, data_range=1.0, full=True, win_size=win, **channel, **kw)
    r = (win - 1) // 2
    valid = full[r:-r, r:-r]
    keep = ~m[r:-r, r:-r]
    return valid[keep].mean(), valid, keep


@pytest.mark.parametrize("name, distortion, kind", CASES)
def test_ssim_over_kept_centres_equals_skimage(photos, name, distortion, kind):
    a = _crop(photos[name])
    b = DISTORTIONS[distortion](a)
    mask, m = _masks(a)[kind]
    x, y = to_nchw(a), to_nchw(b)
    # torchsim's default = skimage's Gaussian convention
    expected, valid, keep = _skimage_masked_ssim(a, b, m, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    value, smap = torchsim.ssim(x, y, data_range=1.0, mask=mask, return_map=True)
    torch.testing.assert_close(value, torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    got_map = smap[0].permute(1, 2, 0).numpy() if a.ndim == 3 else smap[0, 0].numpy()
    np.testing.assert_allclose(got_map[keep], valid[keep], rtol=0, atol=1e-10)
    assert (got_map[~keep] == 1).all()  # ignored centres neither count nor differ
    # scikit-image's default convention (uniform 7x7, sample covariance)
    expected7, _, _ = _skimage_masked_ssim(a, b, m, win=7)
    got7 = torchsim.ssim(x, y, data_range=1.0, gaussian=False, kernel_size=7, sample_covariance=True, mask=mask)
    torch.testing.assert_close(got7, torch.tensor(expected7, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    assert abs(float(torchsim.ssim(x, y, data_range=1.0)) - expected) > 1e-6  # the mask matters here


def test_batched_per_image_masks_equal_one_by_one(photos):
    names = ("astronaut", "coffee", "chelsea")
    a = np.stack([_crop(photos[n]) for n in names])
    b = np.stack([DISTORTIONS["jpeg"](v) for v in a])
    m = np.stack([_masks(v)["bright"][1] for v in a])
    x, y = torch.from_numpy(a).permute(0, 3, 1, 2), torch.from_numpy(b).permute(0, 3, 1, 2)
    mask = torch.from_numpy(m)[:, None]
    for fn, kw in ((torchsim.mse, {}), (torchsim.psnr, {"data_range": 1.0}), (torchsim.ssim, {"data_range": 1.0})):
        batched = fn(x, y, mask=mask, reduction="none", **kw)
        one = torch.stack([fn(x[i : i + 1], y[i : i + 1], mask=mask[i : i + 1], **kw) for i in range(3)])
        torch.testing.assert_close(batched, one, rtol=1e-12, atol=0)
