"""SSIM and MS-SSIM against the real references on skimage.data photographs.

Every expected number is computed by the reference at test time:

* scikit-image ``structural_similarity`` (Gaussian convention and its own default);
* ``pytorch_msssim.ssim`` / ``ms_ssim`` (2-D and 3-D);
* BasicSR's ``calculate_ssim`` ("same as MATLAB") and Wang's ``ssim.m`` with its automatic
  downsampling, ported in tests/reference/ports.py.

Tolerances: float64 against a float64 reference ~1e-10 relative; float32 ~1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_msssim
import torch
from skimage.metrics import structural_similarity
from skimage.transform import resize

import torchsim
from tests.helpers import DISTORTIONS, PHOTOS, TOL, crop, photo_pair, to_nchw, u8
from tests.reference.ports import basicsr_calculate_ssim, matlab_round, ssim_m_channels

DTYPES = (torch.float32, torch.float64)
REF_TOL = TOL["reference"]  # by dtype
TOP, LEFT = 37, 53  # where the crops start


def _pair(photos, name, distortion, h=97, w=131, gray=False):
    """A (reference, distorted) crop of a photo as float64 numpy arrays in [0, 1]."""
    return photo_pair(photos[name], distortion, h, w, TOP, LEFT, gray=gray)


def _t(a: np.ndarray, dtype: torch.dtype, device=None) -> torch.Tensor:
    return to_nchw(a, dtype, device)


def _ref_input(a: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """The float64 values the torch input of ``dtype`` actually holds."""
    return a.astype(np.float32).astype(np.float64) if dtype == torch.float32 else a


def _skimage(a, b, **kw):
    return structural_similarity(a, b, channel_axis=-1 if a.ndim == 3 else None, **kw)


def _close(actual: torch.Tensor, expected, dtype: torch.dtype) -> None:
    expected = torch.as_tensor(np.asarray(expected, dtype=np.float64))
    torch.testing.assert_close(actual.double(), expected.reshape(actual.shape), **REF_TOL[dtype])


def _win64(kernel_size: int = 11, sigma: float = 1.5, channels: int = 1, dims: int = 2) -> torch.Tensor:
    """pytorch_msssim's window argument, built in float64 (its own window is float32)."""
    t = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = (g / g.sum()).reshape(1, 1, kernel_size)
    return g.repeat([channels] + [1] * (dims + 1))


def _pm_exact(fn, x, y, kernel_size=11, sigma=1.5, **kw):
    """pytorch_msssim ``fn`` on the float64 values of ``x, y`` with an exact float64 window.

    pytorch_msssim builds its window in float32, which by itself moves float32 results by
    ~1.5e-5 on real photos; the float64 run is the reference's exact value.
    """
    dims = x.dim() - 2
    win = _win64(kernel_size, sigma, channels=x.shape[1], dims=dims)
    return getattr(pytorch_msssim, fn)(x.double(), y.double(), size_average=False, win=win, **kw)


# pytorch_msssim's own float32 error (float32 window and arithmetic) on top of ours
PM32 = dict(rtol=5e-5, atol=5e-5)


# --------------------------------------------------------------------------- skimage, Gaussian convention


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
@pytest.mark.parametrize("name", PHOTOS)
def test_default_equals_skimage_gaussian(photos, name, distortion, dtype, device):
    a, b = _pair(photos, name, distortion)
    expected = _skimage(
        _ref_input(a, dtype), _ref_input(b, dtype), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0,
    )
    actual = torchsim.ssim(_t(a, dtype, device), _t(b, dtype, device), data_range=1.0)
    assert actual.dtype == dtype and actual.device.type == device.type
    _close(actual.cpu(), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_gray_equals_skimage_gaussian(photos, name, dtype):
    a, b = _pair(photos, name, "noise", h=128, w=101, gray=True)
    expected = _skimage(
        _ref_input(a, dtype), _ref_input(b, dtype), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=1.0,
    )
    _close(torchsim.ssim(_t(a, dtype), _t(b, dtype), data_range=1.0), expected, dtype)


@pytest.mark.parametrize("size", [(11, 11), (12, 40), (64, 17), (256, 200)])
def test_sizes_equal_skimage_gaussian(photos, size):
    """Sizes from exactly one window to a larger non-square crop."""
    a, b = _pair(photos, "chelsea", "jpeg", *size)
    expected = _skimage(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    _close(torchsim.ssim(_t(a, torch.float64), _t(b, torch.float64), data_range=1.0), expected, torch.float64)


@pytest.mark.parametrize("data_range", [1.0, 2.0, 0.5])
def test_data_range_equals_skimage(photos, data_range):
    a, b = _pair(photos, "coffee", "blur")
    expected = _skimage(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=data_range)
    actual = torchsim.ssim(_t(a, torch.float64), _t(b, torch.float64), data_range=data_range)
    _close(actual, expected, torch.float64)


def test_k1_k2_sigma_kernel_equal_skimage(photos):
    a, b = _pair(photos, "astronaut", "noise")
    expected = _skimage(
        a, b, gaussian_weights=True, sigma=1.0, use_sample_covariance=False, data_range=1.0, K1=0.02, K2=0.05,
    )
    # skimage's Gaussian window has radius int(3.5 * sigma + 0.5) = 4 -> 9 taps for sigma = 1.
    actual = torchsim.ssim(
        _t(a, torch.float64), _t(b, torch.float64), data_range=1.0, sigma=1.0, kernel_size=9, k1=0.02, k2=0.05,
    )
    _close(actual, expected, torch.float64)


# --------------------------------------------------------------------------- skimage, its own default


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
@pytest.mark.parametrize("name", PHOTOS)
def test_uniform_sample_covariance_equals_skimage_default(photos, name, distortion, dtype, device):
    a, b = _pair(photos, name, distortion)
    expected = _skimage(_ref_input(a, dtype), _ref_input(b, dtype), data_range=1.0)
    actual = torchsim.ssim(
        _t(a, dtype, device), _t(b, dtype, device), data_range=1.0, gaussian=False, kernel_size=7,
        sample_covariance=True,
    )
    _close(actual.cpu(), expected, dtype)


@pytest.mark.parametrize("win", [3, 5, 9])
def test_uniform_other_windows_equal_skimage(photos, win):
    a, b = _pair(photos, "camera", "jpeg")
    expected = _skimage(a, b, data_range=1.0, win_size=win)
    actual = torchsim.ssim(
        _t(a, torch.float64), _t(b, torch.float64), data_range=1.0, gaussian=False, kernel_size=win,
        sample_covariance=True,
    )
    _close(actual, expected, torch.float64)


# --------------------------------------------------------------------------- pytorch_msssim


@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
@pytest.mark.parametrize("name", PHOTOS)
def test_default_equals_pytorch_msssim_float32(photos, name, distortion):
    a, b = _pair(photos, name, distortion)
    x, y = _t(a, torch.float32), _t(b, torch.float32)
    actual = torchsim.ssim(x, y, data_range=1.0, reduction="none")
    assert actual.shape == (1,) and actual.dtype == torch.float32
    torch.testing.assert_close(actual.double(), _pm_exact("ssim", x, y, data_range=1.0), **REF_TOL[torch.float32])
    expected = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False)
    torch.testing.assert_close(actual, expected, **PM32)


@pytest.mark.parametrize("name", PHOTOS)
def test_default_equals_pytorch_msssim_float64(photos, name):
    """In float64, with pytorch_msssim given the exact (float64) window."""
    a, b = _pair(photos, name, "noise")
    x, y = _t(a, torch.float64), _t(b, torch.float64)
    expected = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False, win=_win64(channels=x.shape[1]))
    torch.testing.assert_close(torchsim.ssim(x, y, data_range=1.0, reduction="none"), expected, rtol=1e-10, atol=1e-12)
    # and with its own float32-built window, at that window's precision
    loose = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False)
    torch.testing.assert_close(torchsim.ssim(x, y, data_range=1.0, reduction="none"), loose, **PM32)


def test_batch_equals_pytorch_msssim(photos):
    pairs = [_pair(photos, n, d, gray=False) for n, d in [("astronaut", "noise"), ("coffee", "blur"), ("chelsea", "jpeg")]]
    x = torch.cat([_t(a, torch.float32) for a, _ in pairs])
    y = torch.cat([_t(b, torch.float32) for _, b in pairs])
    expected = _pm_exact("ssim", x, y, data_range=1.0)
    actual = torchsim.ssim(x, y, data_range=1.0, reduction="none")
    torch.testing.assert_close(actual.double(), expected, **REF_TOL[torch.float32])
    torch.testing.assert_close(torchsim.ssim(x, y, data_range=1.0).double(), expected.mean(), **REF_TOL[torch.float32])
    loose = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False)
    torch.testing.assert_close(actual, loose, **PM32)


# --------------------------------------------------------------------------- BasicSR calculate_ssim


@pytest.mark.parametrize("distortion", sorted(DISTORTIONS))
@pytest.mark.parametrize("name", PHOTOS)
def test_default_equals_basicsr(photos, name, distortion):
    a, b = _pair(photos, name, distortion)
    a255, b255 = np.round(a * 255), np.round(b * 255)  # what BasicSR reads from 8-bit files
    expected = basicsr_calculate_ssim(a255, b255, crop_border=0)
    actual = torchsim.ssim(_t(a255, torch.float64), _t(b255, torch.float64), data_range=255)
    # cv2.filter2D filters 11x11 kernels through the DFT: agreement to ~1e-10.
    torch.testing.assert_close(actual, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-10)
    # uint8 input (data_range defaults to 255) gives the same number at float32 precision
    u8 = torchsim.ssim(_t(a255, torch.uint8), _t(b255, torch.uint8))
    torch.testing.assert_close(u8.double(), actual, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- MS-SSIM vs pytorch_msssim


MS_CASES = [("astronaut", "noise"), ("coffee", "blur"), ("chelsea", "jpeg"), ("camera", "noise"), ("camera", "blur")]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name, distortion", MS_CASES)
def test_ms_ssim_equals_pytorch_msssim(photos, name, distortion, dtype, device):
    a, b = _pair(photos, name, distortion, h=170, w=201)
    x, y = _t(a, dtype), _t(b, dtype)
    actual = torchsim.ms_ssim(x.to(device), y.to(device), data_range=1.0, reduction="none").cpu()
    assert actual.dtype == dtype and actual.shape == (1,)
    torch.testing.assert_close(actual.double(), _pm_exact("ms_ssim", x, y, data_range=1.0), **REF_TOL[dtype])
    expected = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False)
    torch.testing.assert_close(actual, expected, **PM32)


@pytest.mark.parametrize("size", [(161, 161), (161, 300), (203, 167)])
def test_ms_ssim_sizes_gray(photos, size):
    a, b = _pair(photos, "astronaut", "jpeg", *size, gray=True)
    x, y = _t(a, torch.float64), _t(b, torch.float64)
    expected = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, win=_win64())
    torch.testing.assert_close(torchsim.ms_ssim(x, y, data_range=1.0, reduction="none"), expected, rtol=1e-10, atol=1e-12)


def test_ms_ssim_negative_cs_equals_pytorch_msssim(photos):
    """x against 1 - x: contrast-structure terms go negative and are clamped to 0 by both."""
    a = crop(photos["coffee"], 170, 201, TOP, LEFT)
    x, y = _t(a, torch.float64), _t(1.0 - a, torch.float64)
    expected = pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False, win=_win64(channels=3))
    actual = torchsim.ms_ssim(x, y, data_range=1.0, reduction="none")
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)
    assert torch.isfinite(actual).all()


def test_ms_ssim_options_equal_pytorch_msssim(photos, device):
    a, b = _pair(photos, "chelsea", "noise", h=100, w=120)
    x, y = _t(a, torch.float64), _t(b, torch.float64)
    weights = [0.2, 0.3, 0.5]
    # pytorch_msssim asserts min side > (win_size - 1) * 16 whatever the number of weights: 100 > 80.
    expected = pytorch_msssim.ms_ssim(
        x, y, data_range=2.0, size_average=False, win=_win64(5, 1.2, channels=3), weights=weights, K=(0.02, 0.04),
    )
    actual = torchsim.ms_ssim(
        x.to(device), y.to(device), data_range=2.0, kernel_size=5, sigma=1.2, weights=weights, k1=0.02, k2=0.04,
        reduction="none",
    )
    torch.testing.assert_close(actual.cpu(), expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- 5-D volumes


def _volume(img: np.ndarray, depth: int, h: int, w: int, step: int = 3) -> np.ndarray:
    """(D, H, W[, C]) stack of crops shifted down by ``step`` rows: a smoothly varying volume."""
    return np.stack([img[d * step : d * step + h, 20 : 20 + w] for d in range(depth)])


def _to_ncdhw(v: np.ndarray, dtype) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(v))
    t = t[None] if t.dim() == 3 else t.permute(3, 0, 1, 2)
    return t[None].to(dtype).contiguous()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_volume_ssim_equals_pytorch_msssim(photos, name, dtype, device):
    vol = _volume(photos[name], 15, 40, 47)
    x = _to_ncdhw(vol, dtype)
    y = _to_ncdhw(DISTORTIONS["noise"](vol), dtype)
    actual = torchsim.ssim(x.to(device), y.to(device), data_range=1.0, reduction="none").cpu()
    torch.testing.assert_close(actual.double(), _pm_exact("ssim", x, y, data_range=1.0), **REF_TOL[dtype])
    expected = pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False)
    torch.testing.assert_close(actual, expected, **PM32)
    value, smap = torchsim.ssim(x.to(device), y.to(device), data_range=1.0, return_map=True, reduction="none")
    assert smap.shape == (1, x.shape[1], 15 - 10, 40 - 10, 47 - 10) and smap.device.type == device.type
    torch.testing.assert_close(smap.mean(dim=(1, 2, 3, 4)), value, **REF_TOL[dtype])


def test_volume_ms_ssim_equals_pytorch_msssim(photos):
    vol = _volume(photos["coffee"], 12, 40, 45)
    x = _to_ncdhw(vol, torch.float64)
    y = _to_ncdhw(np.stack([DISTORTIONS["blur"](s) for s in vol]), torch.float64)
    weights = [0.3, 0.3, 0.4]
    expected = pytorch_msssim.ms_ssim(
        x, y, data_range=1.0, size_average=False, win=_win64(3, 1.5, channels=3, dims=3), weights=weights,
    )
    actual = torchsim.ms_ssim(x, y, data_range=1.0, kernel_size=3, weights=weights, reduction="none")
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["chelsea", "camera"])
def test_volume_constant_along_depth_equals_2d(photos, name):
    """A volume that does not vary along D filters to the same moments as its slice: 3-D SSIM == 2-D SSIM."""
    a, b = _pair(photos, name, "jpeg", h=50, w=61)
    x2, y2 = _t(a, torch.float64), _t(b, torch.float64)
    depth = 13
    x3 = x2.unsqueeze(2).expand(-1, -1, depth, -1, -1).contiguous()
    y3 = y2.unsqueeze(2).expand(-1, -1, depth, -1, -1).contiguous()
    v2, m2 = torchsim.ssim(x2, y2, data_range=1.0, return_map=True)
    v3, m3 = torchsim.ssim(x3, y3, data_range=1.0, return_map=True)
    torch.testing.assert_close(v3, v2, rtol=1e-10, atol=1e-12)
    for d in range(m3.shape[2]):
        torch.testing.assert_close(m3[:, :, d], m2, rtol=1e-10, atol=1e-12)
    # also against scikit-image's 2-D Gaussian convention for the slice
    expected = _skimage(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    _close(v3, expected, torch.float64)


# --------------------------------------------------------------------------- Wang's ssim.m downsampling


def _big(photos, name: str, h: int, w: int) -> np.ndarray:
    return resize(photos[name], (h, w), order=1, anti_aliasing=False)


@pytest.mark.parametrize(
    "name, h, w, factor",
    [
        ("astronaut", 640, 700, 3),  # 640 / 256 = 2.5 -> 3 (MATLAB rounds half away from zero)
        ("camera", 640, 643, 3),
        ("astronaut", 512, 512, 2),
        ("camera", 512, 512, 2),
        ("coffee", 400, 600, 2),  # 1.5625 -> 2, odd sizes after downsampling
        ("chelsea", 300, 451, 1),  # 1.17 -> 1: no downsampling
        ("coffee", 385, 389, 2),  # odd sides with f = 2
    ],
)
def test_downsample_equals_ssim_m(photos, name, h, w, factor, device):
    img = photos[name] if photos[name].shape[:2] == (h, w) else _big(photos, name, h, w)
    dist = DISTORTIONS["noise"](img)
    assert max(1, matlab_round(min(h, w) / 256)) == factor
    expected = ssim_m_channels(img * 255, dist * 255, 255.0)
    x, y = _t(img * 255, torch.float64, device), _t(dist * 255, torch.float64, device)
    value, smap = torchsim.ssim(x, y, data_range=255.0, downsample=True, return_map=True)
    torch.testing.assert_close(value.cpu(), torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    hd, wd = -(-h // factor), -(-w // factor)
    assert smap.shape == (1, x.shape[1], hd - 10, wd - 10)
    if factor == 1:
        torch.testing.assert_close(value, torchsim.ssim(x, y, data_range=255.0), rtol=0, atol=0)


def test_downsample_float32_and_uint8(photos):
    img = photos["astronaut"]
    a8, b8 = u8(img), u8(DISTORTIONS["jpeg"](img))
    expected = ssim_m_channels(a8.astype(np.float64), b8.astype(np.float64), 255.0)
    v8 = torchsim.ssim(to_nchw(a8), to_nchw(b8), downsample=True)
    v32 = torchsim.ssim(_t(a8 / 255.0, torch.float32), _t(b8 / 255.0, torch.float32), data_range=1.0, downsample=True)
    for v in (v8, v32):
        assert v.dtype == torch.float32
        torch.testing.assert_close(v.double(), torch.tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-5)


def test_downsample_reference_is_not_python_rounding():
    """Guard on the test's own reference: 2.5 rounds to 3 (MATLAB), not 2 (Python)."""
    assert matlab_round(2.5) == 3 and matlab_round(1.5) == 2 and matlab_round(3.5) == 4 and round(2.5) == 2


# --------------------------------------------------------------------------- return_map


@pytest.mark.parametrize("name", ["astronaut", "camera"])
def test_return_map_equals_skimage_full_map(photos, name):
    a, b = _pair(photos, name, "blur")
    x, y = _t(a, torch.float64), _t(b, torch.float64)
    value, smap = torchsim.ssim(x, y, data_range=1.0, return_map=True)
    c = x.shape[1]
    assert smap.shape == (1, c, 97 - 10, 131 - 10)
    assert smap.dtype == torch.float64
    mssim, full = _skimage(
        a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, full=True,
    )
    full = full[5:-5, 5:-5]
    full = full[None, None] if full.ndim == 2 else full.transpose(2, 0, 1)[None]
    torch.testing.assert_close(smap, torch.from_numpy(np.ascontiguousarray(full)), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(smap.mean(), value, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(value, torch.tensor(mssim, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    # the value returned alongside the map is the same as without it
    torch.testing.assert_close(value, torchsim.ssim(x, y, data_range=1.0), rtol=0, atol=0)


def test_return_map_skimage_default_convention(photos):
    a, b = _pair(photos, "coffee", "noise")
    x, y = _t(a, torch.float64), _t(b, torch.float64)
    value, smap = torchsim.ssim(
        x, y, data_range=1.0, gaussian=False, kernel_size=7, sample_covariance=True, return_map=True,
    )
    _, full = _skimage(a, b, data_range=1.0, full=True)
    full = full[3:-3, 3:-3].transpose(2, 0, 1)[None]
    torch.testing.assert_close(smap, torch.from_numpy(np.ascontiguousarray(full)), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- per-image data_range


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_per_image_data_range_equals_scalar_calls(photos, fn):
    ranges = [1.0, 255.0, 2.5]
    h, w = (97, 131) if fn == "ssim" else (170, 201)
    pairs = [_pair(photos, n, d, h=h, w=w) for n, d in [("astronaut", "noise"), ("coffee", "jpeg"), ("chelsea", "blur")]]
    x = torch.cat([_t(a * r, torch.float64) for (a, _), r in zip(pairs, ranges)])
    y = torch.cat([_t(b * r, torch.float64) for (_, b), r in zip(pairs, ranges)])
    f = getattr(torchsim, fn)
    batched = f(x, y, data_range=torch.tensor(ranges, dtype=torch.float64), reduction="none")
    single = torch.cat([f(x[i : i + 1], y[i : i + 1], data_range=r, reduction="none") for i, r in enumerate(ranges)])
    torch.testing.assert_close(batched, single, rtol=1e-12, atol=1e-14)
    # a float32 range tensor with float64 images works too
    torch.testing.assert_close(f(x, y, data_range=torch.tensor(ranges), reduction="none"), single, rtol=1e-10, atol=1e-12)
    # and each number equals the reference at its own scale
    if fn == "ssim":
        for i, ((a, b), r) in enumerate(zip(pairs, ranges)):
            expected = _skimage(a * r, b * r, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=r)
            _close(batched[i], expected, torch.float64)
