"""Inputs from the field (issue 9, items 1, 3, 4 and 6): 16-bit images, NaN and inf pixels,
extreme magnitudes, NumPy scalars and arrays, and the options that used to crash.

References: scikit-image's metrics read uint16 arrays on 0..65535 themselves (their default
``data_range`` for an integer dtype is the dtype's range), so the 16-bit numbers below come
from the reference at test time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

import torchsim

from .helpers import blur, noise, to_nchw


def _u16(img: np.ndarray) -> np.ndarray:
    """[0, 1] float photo -> uint16 on the full 0..65535 scale (as a 16-bit PNG holds it)."""
    return np.round(np.clip(img, 0, 1) * 65535).astype(np.uint16)


# --------------------------------------------------------------------------- uint16 (item 1)


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_uint16_equals_skimage(photos, name):
    ref = _u16(photos[name])
    test = _u16(noise(photos[name], 0.03))
    x, y = to_nchw(ref), to_nchw(test)
    assert x.dtype == torch.uint16
    channel_axis = 2 if ref.ndim == 3 else None
    assert torchsim.mse(x, y).item() == pytest.approx(mean_squared_error(ref, test), rel=1e-5)
    assert torchsim.psnr(x, y).item() == pytest.approx(peak_signal_noise_ratio(ref, test), abs=1e-4)
    expected = structural_similarity(ref, test, channel_axis=channel_axis)  # data_range 65535 from the dtype
    got = torchsim.ssim(x, y, gaussian=False, kernel_size=7, sample_covariance=True)
    assert got.item() == pytest.approx(expected, abs=1e-5)


def test_uint16_default_range_is_65535():
    x = torch.full((1, 1, 16, 16), 65535, dtype=torch.uint16)
    y = torch.zeros_like(x)
    assert torchsim.psnr(x, y).item() == pytest.approx(0.0, abs=1e-6)
    # the same picture as float with the explicit range gives the same numbers
    xf, yf = x.double(), y.double()
    assert torchsim.ssim(x, y).item() == pytest.approx(torchsim.ssim(xf, yf, data_range=65535.0).item(), abs=1e-6)
    assert torchsim.cosine_similarity(x, x).item() == pytest.approx(1.0)


def test_mixed_uint8_uint16_is_an_error():
    a = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    b = torch.zeros(1, 1, 16, 16, dtype=torch.uint16)
    with pytest.raises(TypeError, match=r"^psnr: x and y must both be floating, both uint8 or both uint16, got torch\.uint8 and torch\.uint16"):
        torchsim.psnr(a, b)


# --------------------------------------------------------------------------- NaN / inf (item 3)

PAIR_FNS = {
    "mse": lambda x, y: torchsim.mse(x, y, reduction="none"),
    "psnr": lambda x, y: torchsim.psnr(x, y, data_range=1.0, reduction="none"),
    "ssim": lambda x, y: torchsim.ssim(x, y, data_range=1.0, reduction="none"),
    "ms_ssim": lambda x, y: torchsim.ms_ssim(x, y, data_range=1.0, reduction="none"),
    "cosine_similarity": lambda x, y: torchsim.cosine_similarity(x, y, reduction="none"),
}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("name", list(PAIR_FNS))
def test_non_finite_pixel_gives_nan_for_that_image_only(photos, name, bad):
    img = torch.from_numpy(photos["camera"][:161, :161]).float()
    x = torch.stack([img, img.flip(0)])[:, None]
    y = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    y[0, 0, 80, 80] = bad
    v = PAIR_FNS[name](x, y)
    assert math.isnan(v[0].item()), f"{name} laundered a non-finite pixel into {v[0].item()}"
    assert math.isfinite(v[1].item())


def test_ms_ssim_nan_pixel_in_loss_and_streaming():
    x = torch.rand(1, 1, 161, 161, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[0, 0, 3, 3] = float("nan")
    assert math.isnan(torchsim.MSSSIMLoss(data_range=1.0)(x, y).item())
    metric = torchsim.MSSSIM(data_range=1.0)
    metric.update(x, y)
    metric.update(x, x)
    assert math.isnan(metric.compute().item())


# --------------------------------------------------------------------------- magnitudes (item 4)


@pytest.mark.parametrize("scale", [1e30, 1e-30])
@pytest.mark.parametrize("name", ["psnr", "ssim", "ms_ssim", "cosine_similarity"])
def test_units_do_not_change_the_result(photos, name, scale):
    ref = photos["astronaut"][:200, :200]
    x64, y64 = to_nchw(ref), to_nchw(blur(ref, 1.0))
    fn = getattr(torchsim, name)
    kw = {} if name == "cosine_similarity" else {"data_range": 1.0}
    expected = fn(x64, y64, **kw).item()
    kw_s = {} if name == "cosine_similarity" else {"data_range": scale}
    got = fn((x64 * scale).float(), (y64 * scale).float(), **kw_s).item()
    assert math.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_per_image_tensor_range_at_extreme_units():
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    y = (x + 0.1).clamp(0, 1)
    expected = torchsim.ssim(x.double(), y.double(), data_range=1.0, reduction="none")
    scale = torch.tensor([1e30, 1e-30])
    got = torchsim.ssim(x * scale.view(2, 1, 1, 1), y * scale.view(2, 1, 1, 1), data_range=scale, reduction="none")
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- clear errors (item 6)


def _img(*shape):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def test_kernel_size_one_with_sample_covariance():
    x = _img(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"^ssim: kernel_size must be at least 3 with sample_covariance=True.*got 1"):
        torchsim.ssim(x, x, data_range=1.0, kernel_size=1, sample_covariance=True)
    with pytest.raises(ValueError, match=r"^diff_regions: kernel_size must be at least 3.*got 1"):
        torchsim.diff_regions(x, x, data_range=1.0, kernel_size=1)


@pytest.mark.parametrize("sigma", [None, 1e-300, "1.5", float("nan")])
def test_bad_sigma(sigma):
    x = _img(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"^ssim: sigma must be"):
        torchsim.ssim(x, x, data_range=1.0, sigma=sigma)


def test_gaussian_must_be_a_bool():
    x = _img(1, 1, 16, 16)
    with pytest.raises(TypeError, match=r"^ssim: gaussian must be True or False, got str 'no'"):
        torchsim.ssim(x, x, data_range=1.0, gaussian="no")


@pytest.mark.parametrize(
    "weights, exc, text",
    [
        ("abc", TypeError, "sequence of numbers, got str"),
        (torch.ones(2, 2), ValueError, "must be 1-D"),
        ((0.5, float("nan")), ValueError, "finite numbers >= 0"),
        ((0.5, float("inf")), ValueError, "finite numbers >= 0"),
        ((0.5, -0.1), ValueError, "finite numbers >= 0"),
    ],
)
def test_bad_ms_ssim_weights_in_function_and_when_loss_is_built(weights, exc, text):
    x = _img(1, 1, 40, 40)
    with pytest.raises(exc, match=rf"^ms_ssim: weights .*{text}"):
        torchsim.ms_ssim(x, x, data_range=1.0, kernel_size=3, weights=weights)
    with pytest.raises(exc, match=rf"^MSSSIMLoss: weights .*{text}"):
        torchsim.MSSSIMLoss(data_range=1.0, weights=weights)


def test_module_options_checked_when_built():
    with pytest.raises(TypeError, match=r"^SSIM: gaussian must be True or False"):
        torchsim.SSIM(data_range=1.0, gaussian="no")
    with pytest.raises(ValueError, match=r"^SSIM: sigma must be a positive finite number"):
        torchsim.SSIM(data_range=1.0, sigma=None)


def test_value_range_of_infinite_width():
    x = _img(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"^histogram: value_range must have a finite width"):
        torchsim.histogram(x, value_range=(-1e308, 1e308))


def test_numpy_scalars_are_numbers():
    x, y = _img(1, 1, 32, 32), _img(1, 1, 32, 32).flip(-1)
    expected = torchsim.ssim(x, y, data_range=1.0, kernel_size=7, sigma=1.5)
    got = torchsim.ssim(x, y, data_range=np.float32(1.0), kernel_size=np.int64(7), sigma=np.float32(1.5))
    torch.testing.assert_close(got, expected)
    assert torchsim.psnr(x, y, data_range=np.float32(1.0)).item() == pytest.approx(
        torchsim.psnr(x, y, data_range=1.0).item()
    )
    torchsim.SSIM(data_range=np.float32(1.0), k1=np.float32(0.01))


def test_numpy_array_named_by_type_and_shape_not_repr():
    a = np.zeros((1, 3, 300, 300), dtype=np.float32)
    with pytest.raises(TypeError) as info:
        torchsim.mse(a, a)
    msg = str(info.value)
    assert "ndarray of shape (1, 3, 300, 300), dtype float32" in msg
    assert len(msg) < 200


# --------------------------------------------------------------------------- autocast (item 5)


def test_ms_ssim_l1_loss_under_cpu_autocast_runs_in_float32():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 161, 161, generator=g).bfloat16()
    y = (x.float() + 0.05 * torch.randn(1, 3, 161, 161, generator=g)).clamp(0, 1).bfloat16()
    loss = torchsim.MSSSIML1Loss(data_range=1.0)
    expected = loss(x.float(), y.float())
    xg = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss(xg, y)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    got.backward()
    assert torch.isfinite(xg.grad.float()).all()


def test_huge_l1_sigma_is_refused_with_the_size_it_needs():
    x = torch.rand(1, 1, 161, 161)
    with pytest.raises(ValueError, match=r"^ms_ssim_l1: l1_sigma=10000000.0 would need [0-9.]+ GiB"):
        torchsim.ms_ssim_l1(x, x, data_range=1.0, l1_sigma=1e7)
    with pytest.raises(ValueError, match=r"^MSSSIML1Loss: l1_sigma must be a positive finite number"):
        torchsim.MSSSIML1Loss(data_range=1.0, l1_sigma=float("nan"))


# --------------------------------------------------------------------------- histograms, MI, NMI, hashes (items 1, 3, 6)

HIST_FNS = {
    "histogram_similarity": lambda x, y, **kw: torchsim.histogram_similarity(x, y, reduction="none", **kw),
    "mutual_information": lambda x, y, **kw: torchsim.mutual_information(x, y, reduction="none", **kw),
    "normalized_mutual_information": lambda x, y, **kw: torchsim.normalized_mutual_information(
        x, y, reduction="none", **kw
    ),
}


@pytest.mark.parametrize("value_range", [None, "minmax"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("name", list(HIST_FNS))
def test_histogram_metrics_non_finite_pixel_gives_nan(photos, name, bad, value_range):
    img = torch.from_numpy(photos["camera"][:64, :64]).float()
    x = torch.stack([img, img.T])[:, None]
    y = (x + 0.05).clamp(0, 1)
    x[0, 0, 5, 5] = bad
    v = HIST_FNS[name](x, y, bins=32, value_range=value_range)
    assert math.isnan(v[0].item())
    assert math.isfinite(v[1].item())


def test_minmax_histogram_of_an_image_with_nan_is_a_nan_row():
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0, 0] = float("inf")
    h = torchsim.histogram(x, bins=4, value_range="minmax")
    assert torch.isnan(h[0]).all()
    assert h[1].sum().item() == 64


def test_uint16_histogram_equals_numpy(photos):
    a = _u16(photos["astronaut"])
    got = torchsim.histogram(to_nchw(a), bins=64)[0]
    for c in range(3):
        expected, _ = np.histogram(a[..., c], bins=64, range=(0, 65535))
        np.testing.assert_array_equal(got[c].numpy(), expected)


def test_uint16_nmi_equals_sklearn(photos):
    from sklearn.metrics import normalized_mutual_info_score

    a = _u16(photos["camera"])
    b = _u16(blur(photos["camera"], 2.0))
    edges = np.linspace(0, 65535, 33)
    la = np.clip(np.searchsorted(edges, a.ravel(), side="right") - 1, 0, 31)
    lb = np.clip(np.searchsorted(edges, b.ravel(), side="right") - 1, 0, 31)
    expected = normalized_mutual_info_score(la, lb)
    got = torchsim.normalized_mutual_information(to_nchw(a), to_nchw(b), bins=32).item()
    assert got == pytest.approx(expected, abs=1e-6)  # float32 result, as for uint8 input


@pytest.mark.parametrize("hash_fn", ["average_hash", "dhash", "phash"])
def test_uint16_png_hashes_equal_imagehash_of_the_high_byte(tmp_path, photos, hash_fn):
    """A real 16-bit PNG read back by Pillow (mode I;16), hashed by imagehash after taking its high
    byte, against the uint16 tensor. (Pillow's own ``convert("L")`` of an I;16 image clips every
    value above 255 to white instead, so imagehash on the raw I;16 image hashes an almost white
    picture; torchsim follows SPEC and reads the high byte, ``v >> 8``.)"""
    import imagehash
    from PIL import Image

    a = _u16(photos["camera"])
    path = tmp_path / "camera16.png"
    Image.fromarray(a).save(path)  # Pillow writes a 16-bit grayscale PNG from uint16
    with Image.open(path) as im:
        assert im.mode in ("I;16", "I;16B", "I")
        high = Image.fromarray((np.asarray(im).astype(np.uint16) >> 8).astype(np.uint8))
    expected = str(getattr(imagehash, hash_fn)(high))
    ours = {"average_hash": torchsim.ahash, "dhash": torchsim.dhash, "phash": torchsim.phash}[hash_fn]
    assert torchsim.hash_to_hex(ours(to_nchw(a)))[0] == expected


def test_hopeless_sizes_are_refused_with_the_size_they_need():
    u = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"^histogram: bins=10000000000 would need [0-9.]+ GiB"):
        torchsim.histogram(u, bins=10**10)
    with pytest.raises(ValueError, match=r"^mutual_information: bins=1000000 would need [0-9.]+ GiB"):
        torchsim.mutual_information(u, u, bins=10**6)
    with pytest.raises(ValueError, match=r"^ahash: a 200000x200000 thumbnail would need [0-9.]+ GiB"):
        torchsim.ahash(u, hash_size=200000)
    with pytest.raises(ValueError, match=r"^pairwise_hamming: the 1000000 x 1000000 distance matrix would need"):
        torchsim.pairwise_hamming(torch.zeros(10**6, 64, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"^pairwise_hamming: hashes must have fewer than 8388608 bits"):
        torchsim.pairwise_hamming(torch.zeros(2, 1 << 23, dtype=torch.bool))


def test_uint16_pixelmatch_reads_the_high_byte(photos):
    a16 = _u16(photos["astronaut"][:96, :96])
    b16 = _u16(noise(photos["astronaut"][:96, :96], 0.05))
    x16, y16 = to_nchw(a16), to_nchw(b16)
    x8, y8 = to_nchw((a16 >> 8).astype(np.uint8)), to_nchw((b16 >> 8).astype(np.uint8))
    c16, d16 = torchsim.pixelmatch(x16, y16, return_diff=True)
    c8, d8 = torchsim.pixelmatch(x8, y8, return_diff=True)
    assert c16.item() == c8.item() > 0
    assert torch.equal(d16, d8)
