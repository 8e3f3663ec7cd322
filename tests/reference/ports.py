"""Reference implementations that exist only as other projects' code, ported once, with provenance.

The tests compare torchsim with these ports on real photographs. Each port follows its
source line by line; every change from the source is listed in its docstring. Nothing
here imports torchsim.

BasicSR (https://github.com/XPixelGroup/BasicSR, v1.4.2, Apache-2.0)
    ``calculate_psnr``, ``calculate_ssim`` and ``_ssim`` from ``basicsr/metrics/psnr_ssim.py``;
    ``to_y_channel`` from ``basicsr/metrics/metric_util.py`` with ``bgr2ycbcr`` and its
    dtype helpers from ``basicsr/utils/color_util.py``. Images are HWC (or HW), BGR, on
    0..255, as ``cv2.imread`` gives them.

Zhou Wang's ``ssim.m`` ("SSIM Index with automatic downsampling, Version 1.0", 2009;
https://ece.uwaterloo.ca/~z70wang/research/ssim/)
    The MATLAB reference SSIM: downsampling by ``f = max(1, round(min(M, N) / 256))`` with
    an ``f`` x ``f`` box filter (``imfilter(..., 'symmetric', 'same')``) and ``(1:f:end)``
    subsampling, then ``fspecial('gaussian', 11, 1.5)``, ``filter2(w, img, 'valid')``,
    ``K = [0.01 0.03]``, ``mean2(ssim_map)``. Ported to NumPy (float64); MATLAB's
    ``round`` (half away from zero) kept.

MATLAB ``rgb2ycbcr`` (Image Processing Toolbox) on a ``uint8`` image
    The luma row of the BT.601 matrix (``[65.481 128.553 24.966] / 255``, offset 16) applied
    in double to the 0..255 values, then the cast back to ``uint8``, which rounds half away
    from zero. Only Y is ported.

FFmpeg's ``ssim`` filter (libavfilter/vf_ssim.c, FFmpeg 5.x; the x264 algorithm)
    ``ssim_plane`` for 8-bit planes: integer sums over 4x4 blocks (``ssim_4x4xn``), each 8x8
    window made of 2x2 neighbouring blocks (``ssim_endn``), ``ssim_end1`` with the integer
    constants ``ssim_c1 = (int)(.01*.01*255*255*64 + .5)`` and ``ssim_c2 = (int)(.03*.03*255*255
    *64*63 + .5)``, averaged over the ``(H/4 - 1) (W/4 - 1)`` windows. Ported to NumPy: the
    sums in int64 (exact), the final ratio in float64 where FFmpeg uses float32 (and sums the
    per-window values in float32): the port is the exact value FFmpeg approximates to ~1e-6.

libvmaf's ``psnr`` feature (libvmaf/src/feature/integer_psnr.c, VMAF 3.x; BSD+Patent)
    ``psnr()`` for 8-bit planes: the integer sum of squared errors per plane, ``mse = sse /
    (w h)``, ``min(10 log10(peak^2 / max(mse, 1e-16)), psnr_max)`` with ``peak = 255`` and,
    without its ``min_sse`` option, ``psnr_max = 6 bpc + 12`` (60 dB at 8 bits). Ported to
    NumPy (int64 sums, float64 ratio), as libvmaf computes it.
"""

from __future__ import annotations

import cv2
import numpy as np

# --------------------------------------------------------------------------- BasicSR v1.4.2


def basicsr_to_y_channel(img: np.ndarray, dtype=np.float32) -> np.ndarray:
    """``to_y_channel``: ``bgr2ycbcr(img / 255, y_only=True) * 255``, HxWx1 for a BGR image.

    ``bgr2ycbcr(y_only=True)`` on a float image in [0, 1] is
    ``dot(img, [24.966, 128.553, 65.481]) + 16`` (a float64 dot), divided by 255 and cast back
    to the input's float type. Change: ``dtype`` — BasicSR works in float32 (the default
    here); ``np.float64`` gives the exact value, for tolerances tighter than float32's.
    """
    img = img.astype(dtype) / 255.0
    if img.ndim == 3 and img.shape[2] == 3:
        out = np.dot(img, [24.966, 128.553, 65.481]) + 16.0
        img = (out / 255.0).astype(dtype)[..., None]
    return img * 255.0


def _basicsr_prepare(img, img2, crop_border: int, test_y_channel: bool, y_dtype):
    """The common start of ``calculate_psnr`` / ``calculate_ssim`` (``input_order='HWC'``)."""
    assert img.shape == img2.shape, f"Image shapes are different: {img.shape}, {img2.shape}."
    if img.ndim == 2:  # reorder_image: HW -> HW1
        img, img2 = img[..., None], img2[..., None]
    if crop_border != 0:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    if test_y_channel:
        img, img2 = basicsr_to_y_channel(img, y_dtype), basicsr_to_y_channel(img2, y_dtype)
    return img.astype(np.float64), img2.astype(np.float64)


def basicsr_calculate_psnr(img, img2, crop_border: int, test_y_channel: bool = False, y_dtype=np.float32) -> float:
    """``calculate_psnr``: ``10 log10(255² / mean((img - img2)²))``, +inf for equal images.

    Change: ``y_dtype`` is passed to ``basicsr_to_y_channel`` (BasicSR: float32).
    """
    img, img2 = _basicsr_prepare(img, img2, crop_border, test_y_channel, y_dtype)
    mse = np.mean((img - img2) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0 * 255.0 / mse))


def basicsr_ssim_channel(img: np.ndarray, img2: np.ndarray) -> float:
    """``_ssim``: SSIM of one channel (float64 on 0..255), ``cv2.filter2D`` with the 11x11
    Gaussian (sigma 1.5), the valid region ``[5:-5, 5:-5]``, L = 255."""
    c1 = (0.01 * 255) ** 2
    c2 = (0.03 * 255) ** 2
    kernel = cv2.getGaussianKernel(11, 1.5)
    window = np.outer(kernel, kernel.transpose())
    mu1 = cv2.filter2D(img, -1, window)[5:-5, 5:-5]
    mu2 = cv2.filter2D(img2, -1, window)[5:-5, 5:-5]
    mu1_sq = mu1**2
    mu2_sq = mu2**2
    mu1_mu2 = mu1 * mu2
    sigma1_sq = cv2.filter2D(img**2, -1, window)[5:-5, 5:-5] - mu1_sq
    sigma2_sq = cv2.filter2D(img2**2, -1, window)[5:-5, 5:-5] - mu2_sq
    sigma12 = cv2.filter2D(img * img2, -1, window)[5:-5, 5:-5] - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def basicsr_calculate_ssim(img, img2, crop_border: int, test_y_channel: bool = False, y_dtype=np.float32) -> float:
    """``calculate_ssim``: the mean over channels of ``_ssim``.

    Change: ``y_dtype`` is passed to ``basicsr_to_y_channel`` (BasicSR: float32).
    """
    img, img2 = _basicsr_prepare(img, img2, crop_border, test_y_channel, y_dtype)
    return float(np.array([basicsr_ssim_channel(img[..., i], img2[..., i]) for i in range(img.shape[2])]).mean())


# --------------------------------------------------------------------------- Wang's ssim.m


def matlab_round(v: float) -> int:
    """MATLAB ``round``: half away from zero (Python's ``round`` rounds half to even)."""
    return int(np.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def ssim_m_downsample(img: np.ndarray) -> np.ndarray:
    """ssim.m: ``f = max(1, round(min(M, N) / 256))``; ``imfilter(img, ones(f) / f^2, 'symmetric',
    'same')``; ``img(1:f:end, 1:f:end)`` (HxW or HxWxC: each channel alike)."""
    f = max(1, matlab_round(min(img.shape[:2]) / 256))
    if f == 1:
        return img
    h, w = img.shape[:2]
    # 'same' with an f-tap kernel: output i covers inputs i - (f - 1) // 2 ... i + f // 2
    lo, hi = (f - 1) // 2, f // 2
    pad = ((lo, hi), (lo, hi)) + (((0, 0),) if img.ndim == 3 else ())
    p = np.pad(img, pad, mode="symmetric")
    out = np.zeros_like(img)
    for i in range(f):
        for j in range(f):
            out += p[i : i + h, j : j + w]
    out /= f * f
    return out[::f, ::f]


def _filter2_valid(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(w, a, 'valid')`` for the separable window ``w = outer(g, g)`` (2-D ``a``)."""
    from numpy.lib.stride_tricks import sliding_window_view

    t = sliding_window_view(a, len(g), axis=0) @ g
    return sliding_window_view(t, len(g), axis=1) @ g


def ssim_m(img1: np.ndarray, img2: np.ndarray, L: float) -> float:
    """ssim.m for one channel (float64 HxW on 0..L), downsampling included."""
    img1, img2 = ssim_m_downsample(img1), ssim_m_downsample(img2)
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    g /= g.sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    mu1, mu2 = _filter2_valid(img1, g), _filter2_valid(img2, g)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = _filter2_valid(img1 * img1, g) - mu1_sq
    sigma2_sq = _filter2_valid(img2 * img2, g) - mu2_sq
    sigma12 = _filter2_valid(img1 * img2, g) - mu1_mu2
    ssim_map = ((2 * mu1_mu2 + c1) * (2 * sigma12 + c2)) / ((mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return float(ssim_map.mean())


def ssim_m_channels(a: np.ndarray, b: np.ndarray, L: float) -> float:
    """``ssim_m`` of each channel of HxWxC images, averaged (ssim.m itself takes one gray image)."""
    if a.ndim == 2:
        return ssim_m(a, b, L)
    return float(np.mean([ssim_m(a[..., c], b[..., c], L) for c in range(a.shape[2])]))


# --------------------------------------------------------------------------- MATLAB rgb2ycbcr (uint8)


def matlab_rgb2ycbcr_y_uint8(rgb: np.ndarray) -> np.ndarray:
    """Y of ``rgb2ycbcr(uint8 HxWx3 RGB)``: ``16 + (65.481 R + 128.553 G + 24.966 B) / 255`` in
    double, cast to uint8 (half away from zero); returned as float64 0..255."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    return np.floor(y + 0.5)


# --------------------------------------------------------------------------- FFmpeg vf_ssim.c


def ffmpeg_ssim_plane(main: np.ndarray, ref: np.ndarray) -> float:
    """``ssim_plane`` of two 8-bit HxW planes (see the module docstring)."""
    a, b = main.astype(np.int64), ref.astype(np.int64)
    h4, w4 = a.shape[0] >> 2, a.shape[1] >> 2

    def blocks(t: np.ndarray) -> np.ndarray:  # ssim_4x4xn: sums over 4x4 blocks
        return t[: 4 * h4, : 4 * w4].reshape(h4, 4, w4, 4).sum(axis=(1, 3))

    def windows(t: np.ndarray) -> np.ndarray:  # ssim_endn: 2x2 neighbouring blocks = one 8x8 window
        return t[:-1, :-1] + t[1:, :-1] + t[:-1, 1:] + t[1:, 1:]

    s1, s2 = windows(blocks(a)), windows(blocks(b))
    ss = windows(blocks(a * a) + blocks(b * b))
    s12 = windows(blocks(a * b))
    c1 = int(0.01 * 0.01 * 255 * 255 * 64 + 0.5)
    c2 = int(0.03 * 0.03 * 255 * 255 * 64 * 63 + 0.5)
    var = ss * 64 - s1 * s1 - s2 * s2
    covar = s12 * 64 - s1 * s2
    num = (2 * s1 * s2 + c1).astype(np.float64) * (2 * covar + c2)
    den = (s1 * s1 + s2 * s2 + c1).astype(np.float64) * (var + c2)
    return float((num / den).sum() / ((h4 - 1) * (w4 - 1)))


# --------------------------------------------------------------------------- libvmaf integer_psnr.c


def libvmaf_psnr_plane(ref: np.ndarray, dist: np.ndarray, bpc: int = 8) -> float:
    """libvmaf's ``psnr_y`` (or ``psnr_cb`` / ``psnr_cr``) of two integer HxW planes (see the module docstring)."""
    e = ref.astype(np.int64) - dist.astype(np.int64)
    mse = float((e * e).sum()) / e.size
    peak = (1 << bpc) - 1
    return min(10.0 * np.log10(peak * peak / max(mse, 1e-16)), 6.0 * bpc + 12.0)
