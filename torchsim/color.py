"""Colour conversions: the one place where channels are mixed."""

from __future__ import annotations

from typing import Optional, Union

import torch

from . import _validation as V
from ._common import range_tensor, to_compute

# MATLAB rgb2ycbcr / ITU-R BT.601 luma, coefficients for r, g, b in [0, 1], result on 0..255
_Y_OFFSET = 16.0
_Y_COEFFS = (65.481, 128.553, 24.966)


# full-range (JPEG / JFIF, ITU-R BT.601 without headroom) luma coefficients
_Y_FULL_COEFFS = (0.299, 0.587, 0.114)
_Y_RANGES = ("limited", "full")


def rgb_to_y(
    x: torch.Tensor,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    *,
    y_range: str = "limited",
    y_round: bool = False,
) -> torch.Tensor:
    r"""BT.601 luma ``Y`` as MATLAB's ``rgb2ycbcr`` computes it, on the input's scale.

    .. math::

        Y = \frac{16\,L + 65.481\,R + 128.553\,G + 24.966\,B}{255}

    i.e. with ``R, G, B`` divided by the data range ``L`` to ``[0, 1]``:
    ``Y = (16 + 65.481 r + 128.553 g + 24.966 b) / 255 * L`` (``y_range="limited"``,
    16..235 on the 8-bit scale), or the full-range (JPEG / JFIF) luma
    ``Y = (0.299 r + 0.587 g + 0.114 b) * L`` (``y_range="full"``, 0..255).
    By default nothing is rounded: the result is floating (float32, or float64 for
    float64 input).

    Convention:
        ``y_range="limited"`` equals BasicSR's ``to_y_channel`` (``bgr2ycbcr(img / 255,
        y_only=True) * 255``) for images on 0..255 and MATLAB's
        ``rgb2ycbcr(im2double(img))(:,:,1)`` scaled by ``L`` — the Y channel on which
        super-resolution papers report PSNR/SSIM. ``y_round=True`` rounds Y on the
        0..255 scale half away from zero, as MATLAB's ``rgb2ycbcr`` on a **uint8** image
        returns it (0.02–0.35 dB of PSNR apart from the float Y). ``y_range="full"``
        equals ``cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)[..., 0]`` on float images and
        scikit-image's ``rgb2yuv`` Y. Channels are in **RGB** order (torchvision's), not
        OpenCV's BGR.

    Args:
        x: ``(N, 3, H, W)`` RGB image (any accepted dtype).
        data_range: the span of valid values, e.g. ``1.0`` or ``255.0`` (a float or an
            ``(N,)`` tensor). Defaults to 255 for ``uint8``; required for floating input.
        y_range: ``"limited"`` (studio swing, MATLAB / BasicSR) or ``"full"`` (JPEG).
        y_round: round Y to an integer on the 0..255 scale (MATLAB's uint8 path); not
            differentiable (zero gradient).

    Returns:
        ``(N, 1, H, W)`` luma on the same scale as ``x`` (16/255·L .. 235/255·L limited,
        0 .. L full).

    Raises:
        TypeError / ValueError: bad rank, dtype, channel count, data_range or y_range.

    Example:
        >>> import torch, torchsim
        >>> x = torch.ones(1, 3, 4, 4)                  # white, in [0, 1]
        >>> round(torchsim.rgb_to_y(x, data_range=1.0)[0, 0, 0, 0].item(), 4)
        0.9216
        >>> u8 = torch.tensor([200, 100, 50], dtype=torch.uint8).reshape(1, 3, 1, 1)
        >>> [round(torchsim.rgb_to_y(u8, y_round=r).item(), 3) for r in (False, True)]
        [122.666, 123.0]
    """
    fn = "rgb_to_y"
    V.check_image(fn, "x", x, (4,))
    V.check_channels(fn, "x", x, (3,))
    dr = V.check_data_range(fn, data_range, x)
    y_range = V.check_choice(fn, "y_range", y_range, _Y_RANGES)
    y_round = V.check_bool(fn, "y_round", y_round)
    xc = to_compute(x)
    r = range_tensor(dr, xc)
    full = y_range == "full"
    c = torch.tensor(_Y_FULL_COEFFS if full else _Y_COEFFS, dtype=xc.dtype, device=xc.device).reshape(1, 3, 1, 1)
    y = (xc * c).sum(dim=1, keepdim=True)
    y = y if full else y / 255.0 + (_Y_OFFSET / 255.0) * r
    if y_round:  # MATLAB's uint8 cast: half away from zero on the 0..255 scale
        y8 = (y / r * 255.0).detach()
        y = y8.sign() * torch.floor(y8.abs() + 0.5) * r / 255.0
    return y


# Pillow's convert("L"): L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16  (Convert.c, L24),
# i.e. round(0.299 R + 0.587 G + 0.114 B) in 16-bit fixed point.
_PIL_LUMA_COEFFS = (19595, 38470, 7471)


def _quantized(x: torch.Tensor) -> torch.Tensor:
    """8-bit values as integer-valued float32: ``uint8`` as is, floats in ``[0, 1]`` as
    ``round(clamp(x, 0, 1) · 255)`` (half to even)."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32)
    return torch.round(to_compute(x).clamp(0.0, 1.0) * 255.0).to(torch.float32)


def pil_luma(x: torch.Tensor) -> torch.Tensor:
    r"""8-bit luma exactly as Pillow's ``Image.convert("L")`` computes it.

    .. math::

        L = \lfloor (19595\,R + 38470\,G + 7471\,B + 2^{15}) / 2^{16} \rfloor

    the 16-bit fixed-point form of ``round(R·299/1000 + G·587/1000 + B·114/1000)``
    that Pillow's ``Convert.c`` uses, computed exactly (every partial sum is an integer
    below 2^24, held exactly in float32), so it is bit-exact on any device.

    Convention:
        Equals ``numpy.asarray(PIL.Image.fromarray(img).convert("L"))`` bit for bit for
        ``"L"``, ``"RGB"`` and ``"RGBA"`` images (checked on all 2^24 RGB colours). As in
        Pillow, the alpha channel of RGBA input is **ignored** (not composited). Float
        input in ``[0, 1]`` is first quantised as ``round(clamp(x, 0, 1) · 255)`` (half to
        even, like ``skimage.util.img_as_ubyte``); NaNs are not checked.

    Args:
        x: ``(N, C, H, W)`` image with C = 1 (gray, returned quantised), 3 (RGB) or
            4 (RGBA); ``uint8`` (0..255) or floating (``[0, 1]``).

    Returns:
        ``(N, 1, H, W)`` uint8 luma on x's device.

    Raises:
        TypeError / ValueError: not a 4-D uint8/float tensor, or C not in 1, 3, 4.

    Example:
        >>> import torch, torchsim
        >>> x = torch.tensor([255, 128, 0], dtype=torch.uint8).reshape(1, 3, 1, 1)
        >>> torchsim.pil_luma(x).flatten().tolist()
        [151]

    References:
        Pillow, ``src/libImaging/Convert.c`` (``rgb2l``); ITU-R BT.601.
    """
    fn = "pil_luma"
    V.check_image(fn, "x", x, (4,))
    V.check_channels(fn, "x", x, (1, 3, 4))
    return _pil_luma(x).to(torch.uint8)


def _pil_luma(x: torch.Tensor) -> torch.Tensor:
    """Kernel of :func:`pil_luma` without validation: ``(N, C, H, W)`` -> ``(N, 1, H, W)``
    float32 holding the 8-bit luma. Float32 is exact here: every partial sum is an integer
    below 255 · 65536 + 2^15 < 2^24. Elementwise only (no matmul, so TF32 cannot touch it)."""
    q = _quantized(x[:, :3])  # alpha (RGBA) is ignored, as in Pillow
    if q.shape[1] == 1:
        return q
    r, g, b = _PIL_LUMA_COEFFS
    y = q[:, 0:1] * float(r)
    y.add_(q[:, 1:2], alpha=float(g)).add_(q[:, 2:3], alpha=float(b))
    return y.add_(32768.0).mul_(1.0 / 65536.0).floor_()
