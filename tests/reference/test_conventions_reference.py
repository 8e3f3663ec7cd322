"""Every convention against its real reference on skimage.data photographs.

The references are those of ``benchmarks/agreement.py`` (PyPI packages, the ports in
tests/reference/ports.py, the ``ffmpeg`` binary, TensorFlow): each row runs here on its own
crops (odd sides, RGB and gray, every distortion) in float64 — tight, unless the reference
itself computes in float32 — and float32 (float32 precision). Then the cases a preset alone
does not reach: the sizes where the downsampling rules differ, per-axis windows, uniform
windows, 3-D volumes, the padding modes, odd sides at every MS-SSIM scale, the PSNR caps,
rgb_to_y's range and rounding. A reference that cannot run here (ffmpeg, TensorFlow) skips
with the reason.
"""

from __future__ import annotations

import numpy as np
import piq
import pytest
import torch
import torchmetrics.functional.image as tmf
from monai.metrics import MultiScaleSSIMMetric, SSIMMetric
from scipy import ndimage
from skimage.metrics import structural_similarity
from skimage.transform import resize

import torchsim
from benchmarks import agreement as A
from tests.helpers import ALL_DISTORTIONS, TOL, crop, to_nchw
from tests.reference import ports

REF_TOL = TOL["reference"]


def _photo(photos, name, h, w, top=11, left=23, distortions=("jpeg", "blur", "noise", "resize", "color_shift")):
    """An agreement Photo: a crop and its distortions (8-bit values, float64 in [0, 1])."""
    a = np.round(crop(photos[name], h, w, top, left) * 255) / 255
    dist = [np.round(ALL_DISTORTIONS[d](a) * 255) / 255 for d in distortions]
    return A.Photo(name, to_nchw(a), torch.cat([to_nchw(d) for d in dist]), tuple(distortions))


@pytest.fixture(scope="module")
def crops(photos):
    """Odd-sided crops: RGB (astronaut, coffee) and gray (camera), large enough for MS-SSIM's 176 px."""
    return [
        _photo(photos, "astronaut", 181, 197, distortions=("jpeg", "resize", "noise")),
        _photo(photos, "coffee", 177, 183, 40, 90, distortions=("blur", "color_shift", "jpeg")),
        _photo(photos, "camera", 189, 176, distortions=("noise", "blur", "color_shift")),
    ]


def _rows(*families):
    return [pytest.param(r, d, id=f"{r.family}-{r.convention}-{d}-{i}") for i, r in enumerate(A.rows()) if r.family in families for d in r.dtypes]


@pytest.mark.parametrize("row, dtype", _rows("ssim", "ms_ssim", "psnr"))
def test_preset_equals_its_reference(row, dtype, crops):
    res = A.run_row(row, dtype, crops)
    if res.skipped:
        pytest.skip(res.skipped)
    assert res.images > 0
    assert res.passed, f"{row.reference}: max abs {res.max_abs:.3e}, max rel {res.max_rel:.3e}, tolerance {res.tolerance}"


# --------------------------------------------------------------------------- downsampling: ssim.m and piq


def _big(photos, name, h, w):
    return resize(photos[name], (h, w), order=1, anti_aliasing=False)


@pytest.mark.parametrize(
    "h, w, f_matlab, f_piq",
    [(640, 700, 3, 2), (384, 500, 2, 2), (520, 410, 2, 2), (900, 896, 4, 4), (300, 451, 1, 1)],
)
def test_downsample_rules_equal_ssim_m_and_piq(photos, h, w, f_matlab, f_piq):
    """640 px: MATLAB rounds 2.5 up (f = 3), piq's Python rounds it to even (f = 2)."""
    a = _big(photos, "coffee", h, w)
    b = np.clip(ALL_DISTORTIONS["noise"](a), 0, 1)
    x, y = to_nchw(a), to_nchw(b)
    assert max(1, ports.matlab_round(min(h, w) / 256)) == f_matlab and max(1, round(min(h, w) / 256)) == f_piq
    m = torchsim.ssim(x, y, data_range=1.0, convention="matlab")
    torch.testing.assert_close(m, torch.tensor(ports.ssim_m_channels(a, b, 1.0), dtype=torch.float64), **REF_TOL[torch.float64])
    p = torchsim.ssim(x, y, data_range=1.0, convention="piq")
    torch.testing.assert_close(p, piq.ssim(x, y, data_range=1.0), **REF_TOL[torch.float64])
    if f_matlab != f_piq:
        assert abs(float(m) - float(p)) > 1e-4  # the two "MATLAB-style" downsamplings disagree here


# --------------------------------------------------------------------------- windows: per axis, uniform, 3-D


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_per_axis_gaussian_equals_torchmetrics(crops, dtype):
    """torchmetrics sizes each axis's Gaussian from its sigma: 1.5 -> 11 taps, 1.0 -> 9, 0.7 -> 5
    (``2 int(3.5 sigma + 0.5) + 1``). float32 against the reference on the same values in float64."""
    x, y = crops[0].pair(dtype)
    for sigma, ks in (((1.5, 1.0), (11, 9)), ((0.7, 1.5), (5, 11))):
        ours = torchsim.ssim(x, y, data_range=1.0, convention="torchmetrics", kernel_size=ks, sigma=sigma, reduction="none")
        ref = tmf.structural_similarity_index_measure(x.double(), y.double(), data_range=1.0, sigma=sigma, reduction="none")
        torch.testing.assert_close(ours.double(), ref, **REF_TOL[dtype])


@pytest.mark.parametrize("ks", [7, (7, 5), (3, 9)])
def test_uniform_per_axis_equals_torchmetrics(crops, ks):
    x, y = crops[2].pair(torch.float64)
    ours = torchsim.ssim(x, y, data_range=1.0, convention="torchmetrics", gaussian=False, kernel_size=ks, reduction="none")
    ref = tmf.structural_similarity_index_measure(x, y, data_range=1.0, gaussian_kernel=False, kernel_size=ks, reduction="none")
    torch.testing.assert_close(ours, ref, **REF_TOL[torch.float64])


def test_per_axis_valid_equals_monai_2d_and_3d(photos):
    a = crop(photos["chelsea"], 60, 71, 100, 150).transpose(2, 0, 1)  # (3, 60, 71): channels as depth
    v = np.stack([a, np.clip(a + 0.03 * np.sin(np.arange(71) / 3), 0, 1)])[:, None]  # (2, 1, 3, 60, 71)
    x, y = torch.from_numpy(v[:1].copy()).expand(2, -1, -1, -1, -1).contiguous(), torch.from_numpy(v.copy())
    ks, sig = (3, 7, 9), (0.8, 1.2, 1.5)
    ours = torchsim.ssim(x, y, data_range=1.0, kernel_size=ks, sigma=sig, convention="monai", reduction="none")
    ref = SSIMMetric(spatial_dims=3, data_range=1.0, win_size=ks, kernel_sigma=sig, reduction="none")(x, y).flatten()
    torch.testing.assert_close(ours, ref.double(), rtol=0, atol=3e-4)  # MONAI computes in float32
    x2, y2 = x[:, :, 1], y[:, :, 1]
    ours2 = torchsim.ssim(x2, y2, data_range=1.0, kernel_size=(11, 5), sigma=(1.5, 0.9), reduction="none")
    ref2 = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=(11, 5), kernel_sigma=(1.5, 0.9), reduction="none")(x2, y2)
    torch.testing.assert_close(ours2, ref2.flatten().double(), rtol=0, atol=3e-4)


# --------------------------------------------------------------------------- padding modes and full maps


@pytest.mark.parametrize("gaussian", [True, False])
def test_symmetric_padding_is_skimage_full_map(crops, gaussian):
    x, y = crops[0].pair(torch.float64)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False) if gaussian else {}
    conv = None if gaussian else "skimage"
    _, smap = torchsim.ssim(x[:1], y[:1], data_range=1.0, convention=conv, padding="symmetric", return_map=True)
    a, b = x[0].permute(1, 2, 0).numpy(), y[0].permute(1, 2, 0).numpy()
    mssim, full = structural_similarity(a, b, data_range=1.0, channel_axis=-1, full=True, **kw)
    torch.testing.assert_close(smap[0].permute(1, 2, 0), torch.from_numpy(full), **REF_TOL[torch.float64])
    # scikit-image's mean is the valid crop's: the default (valid) value, not the full map's mean
    torch.testing.assert_close(torchsim.ssim(x[:1], y[:1], data_range=1.0, convention=conv), torch.tensor(mssim, dtype=torch.float64))


def _scipy_ssim_map(a: np.ndarray, b: np.ndarray, mode: str, k: int = 11, sigma: float = 1.5) -> np.ndarray:
    """SSIM map of 2-D float64 images with scipy's Gaussian correlation in boundary ``mode`` (same size)."""
    t = np.arange(k) - (k - 1) / 2
    w = np.exp(-(t**2) / (2 * sigma**2))
    w /= w.sum()

    def f(img):
        return ndimage.correlate1d(ndimage.correlate1d(img, w, axis=0, mode=mode), w, axis=1, mode=mode)

    mx, my = f(a), f(b)
    sxx, syy, sxy = f(a * a) - mx * mx, f(b * b) - my * my, f(a * b) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


@pytest.mark.parametrize("padding, mode", [("zero", "constant"), ("replicate", "nearest"), ("reflect", "mirror"), ("symmetric", "reflect")])
def test_padding_modes_equal_scipy_boundaries(crops, padding, mode):
    x, y = crops[2].pair(torch.float64)
    v, smap = torchsim.ssim(x, y, data_range=1.0, padding=padding, return_map=True, reduction="none")
    for i in range(x.shape[0]):
        ref = _scipy_ssim_map(x[i, 0].numpy(), y[i, 0].numpy(), mode)
        torch.testing.assert_close(smap[i, 0], torch.from_numpy(ref), **REF_TOL[torch.float64])
        torch.testing.assert_close(v[i], torch.tensor(ref.mean(), dtype=torch.float64), **REF_TOL[torch.float64])


# --------------------------------------------------------------------------- MS-SSIM: odd sides at every scale


@pytest.mark.parametrize("h, w", [(181, 197), (180, 197), (193, 186), (176, 176)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ms_ssim_halving_on_odd_sides(photos, h, w, dtype):
    """piq pads every axis when one is odd (180 x 197); torchmetrics / MONAI drop the odd row.

    float32 against the references on the same values in float64 (MONAI computes in float32
    anyway: its own rounding sets that tolerance; torchmetrics' scale weights are float32)."""
    p = _photo(photos, "astronaut", h, w, distortions=("jpeg", "noise"))
    x, y = p.pair(dtype)
    xd, yd = x.double(), y.double()
    tol = REF_TOL[dtype]
    cases = [
        ("piq", piq.multi_scale_ssim(xd, yd, data_range=1.0, reduction="none"), tol),
        ("torchmetrics", tmf.multiscale_structural_similarity_index_measure(xd, yd, data_range=1.0, reduction="none"), REF_TOL[torch.float32]),
        ("monai", MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, reduction="none")(xd, yd).flatten(), dict(rtol=0, atol=3e-4)),
    ]
    for name, ref, t in cases:
        ours = torchsim.ms_ssim(x, y, data_range=1.0, convention=name, reduction="none")
        torch.testing.assert_close(ours.double(), ref.double(), **t, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("h, w", [(181, 197), (177, 200)])
def test_ms_ssim_tensorflow_on_odd_sides(photos, h, w):
    p = _photo(photos, "coffee", h, w, distortions=("jpeg", "blur"))
    x, y = p.pair(torch.float32)
    try:
        ref = A.TF("ms_ssim", x, y, 1.0)
    except A.Skip as exc:
        pytest.skip(str(exc))
    ours = torchsim.ms_ssim(x, y, data_range=1.0, convention="tensorflow", reduction="none")
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=5e-5)
    # and TF's halving is not pytorch-msssim's: the default differs from TF here
    assert np.abs(torchsim.ms_ssim(x, y, data_range=1.0, reduction="none").numpy() - ref).max() > 1e-5


# --------------------------------------------------------------------------- PSNR caps and pooling


def test_psnr_piq_cap_and_pooled_batches(crops):
    x, y = crops[0].pair(torch.float64)
    torch.testing.assert_close(torchsim.psnr(x, x, data_range=1.0, convention="piq", reduction="none"), piq.psnr(x, x, data_range=1.0, reduction="none"))
    torch.testing.assert_close(torchsim.psnr(x, y, data_range=1.0, convention="piq", reduction="none"), piq.psnr(x, y, data_range=1.0, reduction="none"), rtol=1e-12, atol=1e-12)
    import kornia

    pooled = torchsim.psnr(x, y, data_range=1.0, convention="torchmetrics")
    torch.testing.assert_close(pooled, tmf.peak_signal_noise_ratio(x, y, data_range=1.0).double(), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(torchsim.psnr(x, y, data_range=1.0, convention="kornia"), kornia.metrics.psnr(x, y, max_val=1.0), rtol=1e-12, atol=1e-12)
    assert abs(float(pooled) - float(torchsim.psnr(x, y, data_range=1.0))) > 1e-3  # pooling moves the mean


# --------------------------------------------------------------------------- ffmpeg


@pytest.mark.parametrize("h, w", [(181, 197), (64, 64), (35, 50), (130, 8)])
def test_ffmpeg_preset_equals_the_vf_ssim_port(photos, h, w):
    g = np.round(crop(photos["camera"], h, w, 30, 40) * 255)
    d = np.round(np.clip(ALL_DISTORTIONS["noise"](g / 255), 0, 1) * 255)
    expected = ports.ffmpeg_ssim_plane(g.astype(np.uint8), d.astype(np.uint8))
    x, y = to_nchw(g), to_nchw(d)
    torch.testing.assert_close(torchsim.ssim(x, y, data_range=255.0, convention="ffmpeg"), torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    u8 = torchsim.ssim(x.to(torch.uint8), y.to(torch.uint8), convention="ffmpeg")
    assert abs(float(u8) - expected) < 1e-5  # uint8 is computed in float32


def test_vf_ssim_port_equals_the_ffmpeg_binary(photos):
    g = np.round(crop(photos["camera"], 181, 197, 30, 40) * 255).astype(np.uint8)
    for name in ("jpeg", "blur", "resize"):
        d = np.round(ALL_DISTORTIONS[name](g / 255.0) * 255).astype(np.uint8)
        try:
            got = A.ffmpeg_score(g, d, "ssim")
        except A.Skip as exc:
            pytest.skip(str(exc))
        assert abs(got - ports.ffmpeg_ssim_plane(g, d)) < 3e-6  # ffmpeg prints 6 decimals, sums in float32


# --------------------------------------------------------------------------- rgb_to_y


def test_rgb_to_y_full_range_equals_opencv_and_skimage(crops):
    import cv2
    from skimage.color import rgb2yuv

    x, _ = crops[1].pair(torch.float64)
    a = x[0].permute(1, 2, 0).numpy()
    ours64 = torchsim.rgb_to_y(x[:1], data_range=1.0, y_range="full")[0, 0]
    torch.testing.assert_close(ours64, torch.from_numpy(rgb2yuv(a)[..., 0]), rtol=1e-12, atol=1e-12)
    ours32 = torchsim.rgb_to_y(x[:1].float(), data_range=1.0, y_range="full")[0, 0]
    ref32 = cv2.cvtColor(a.astype(np.float32), cv2.COLOR_RGB2YCrCb)[..., 0]
    torch.testing.assert_close(ours32, torch.from_numpy(ref32), rtol=1e-6, atol=1e-6)


def test_rgb_to_y_rounded_equals_matlab_uint8(photos):
    for name in ("astronaut", "coffee", "chelsea"):
        img = np.round(photos[name] * 255).astype(np.uint8)
        ours = torchsim.rgb_to_y(to_nchw(img), y_round=True)[0, 0].double()
        torch.testing.assert_close(ours, torch.from_numpy(ports.matlab_rgb2ycbcr_y_uint8(img)), rtol=0, atol=0)


def test_rounded_y_moves_psnr_by_hundredths_of_a_db(photos):
    """The issue's claim: MATLAB's rounded Y is 0.02-0.35 dB away from the float Y on real pairs."""
    gaps = []
    for name in ("astronaut", "coffee", "chelsea"):
        for dist in ("jpeg", "blur", "noise"):
            a = np.round(photos[name] * 255).astype(np.uint8)
            b = np.round(ALL_DISTORTIONS[dist](photos[name]) * 255).astype(np.uint8)
            x, y = to_nchw(a), to_nchw(b)
            p = [float(torchsim.psnr(torchsim.rgb_to_y(x, y_round=r), torchsim.rgb_to_y(y, y_round=r), data_range=255)) for r in (False, True)]
            gaps.append(abs(p[0] - p[1]))
    assert 0.005 < max(gaps) < 0.5 and min(gaps) > 0, gaps


def test_ffmpeg_simd_differs_from_its_c_code_where_the_preset_follows_the_c_code(photos):
    """FFmpeg 5.1's x86 SIMD ssim differs from the filter's C code when W / 4 is 2 mod 4 (600 px here);
    the preset equals the C code (and the port), as the SIMD code does on other widths (592 px)."""
    g = np.round(crop(photos["coffee"], 64, 600, 30, 0)[..., 1] * 255).astype(np.uint8)  # coffee: 400 x 600
    d = np.round(ALL_DISTORTIONS["noise"](g / 255.0) * 255).astype(np.uint8)
    try:
        c_code, simd = A.ffmpeg_score(g, d, "ssim"), A.ffmpeg_score(g, d, "ssim", simd=True)
        c592, simd592 = A.ffmpeg_score(g[:, :592], d[:, :592], "ssim"), A.ffmpeg_score(g[:, :592], d[:, :592], "ssim", simd=True)
    except A.Skip as exc:
        pytest.skip(str(exc))
    ours = float(torchsim.ssim(to_nchw(g), to_nchw(d), convention="ffmpeg", data_range=255.0))
    assert abs(ours - c_code) < 3e-6 and abs(c592 - simd592) < 3e-6
    if abs(simd - c_code) < 1e-4:
        pytest.skip(f"this ffmpeg ({A.ffmpeg_version()}) or CPU computes the same SSIM with and without SIMD")
    assert abs(simd - c_code) > 1e-4
