"""Colour operators: every channel mix and 8-bit rule of the library, each written once.

Pure tensor math without validation (the public functions in :mod:`torchsim.functional`
validate, then call these). Images carry their channels on dim 1 (``(N, C, ...)``); the
YIQ functions take separate planes of any shape, because pixelmatch applies them to
gathered pixels as well as to whole images. Every function states the exact arithmetic
(and rounding) of the reference it reproduces, since that is what makes it bit-exact.

=========================  =================================================================
operator                   reference
=========================  =================================================================
:func:`quantize_u8`        ``skimage.util.img_as_ubyte`` of ``[0, 1]`` floats
:func:`matlab_y`           MATLAB ``rgb2ycbcr`` luma (BT.601, offset 16), BasicSR ``to_y_channel``
:func:`matlab_uint8`       MATLAB's ``uint8()`` rounding (``rgb2ycbcr`` of a uint8 image)
:func:`pil_luma`           Pillow ``Image.convert("L")``
:func:`opencv_gray`        OpenCV ``cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)``
:func:`blend_white`,       pixelmatch's ``blend``, ``rgb2y`` / ``rgb2i`` / ``rgb2q`` and the
:func:`yiq`, :func:`yiq_y`, YIQ colour distance of ``color_delta`` (Kotsarenko & Ramos)
:func:`yiq_distance`
=========================  =================================================================

The four YIQ operators are plain arithmetic on planes, defined in :mod:`torchsim.ops.yiq_color`
(importable without torch, for the NumPy pixelmatch kernel) and re-exported here.
"""

from __future__ import annotations

from typing import Union

import torch

from .._common import to_compute
from .yiq_color import blend_white, yiq, yiq_distance, yiq_y  # noqa: F401  (pixelmatch's YIQ: plain arithmetic, torch-free)

# MATLAB rgb2ycbcr / ITU-R BT.601 luma: coefficients for r, g, b in [0, 1], result on 0..255.
_MATLAB_Y_OFFSET = 16.0
_MATLAB_Y = (65.481, 128.553, 24.966)
# Pillow's Convert.c (rgb2l): 0.299 / 0.587 / 0.114 in 16-bit fixed point.
_PIL_LUMA = (19595, 38470, 7471)
# OpenCV's cvtColor RGB2GRAY for 8-bit images: 0.299 / 0.587 / 0.114 in 15-bit fixed point.
_CV_GRAY_SHIFT = 15
_CV_GRAY_U8 = (9798, 19235, 3735)
_CV_GRAY = (0.299, 0.587, 0.114)


def quantize_u8(x: torch.Tensor) -> torch.Tensor:
    r"""8-bit values of an image: ``uint8`` as is, floats in ``[0, 1]`` rounded to 0..255.

    .. math::

        q = \operatorname{round\_half\_even}(\operatorname{clamp}(x, 0, 1) \cdot 255)

    computed in the compute dtype (float32 for float16 / bfloat16 / float32 input, float64
    for float64), then cast to ``uint8``.

    Convention:
        Equals ``skimage.util.img_as_ubyte(x)`` bit for bit for float32 and float64 in
        ``[0, 1]`` (skimage also multiplies in the input's dtype and rounds with
        ``np.rint``). For float16 / bfloat16 the float32 product is exact, so the result is
        the exact ``round(x · 255)`` (skimage multiplies float16 in float16, which can round
        first). Values outside ``[0, 1]`` are clamped. NaNs are not checked (their byte is
        unspecified).

    Args:
        x: a tensor of any shape, ``uint8`` or floating.

    Returns:
        ``uint8`` tensor of x's shape (``x`` itself for ``uint8``).

    Example:
        >>> import torch
        >>> from torchsim.ops import quantize_u8
        >>> quantize_u8(torch.tensor([0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.2])).tolist()
        [0, 0, 2, 128, 255]
    """
    if x.dtype == torch.uint8:
        return x
    return torch.round(to_compute(x).clamp(0.0, 1.0).mul(255.0)).to(torch.uint8)


def matlab_y(x: torch.Tensor, scale: Union[float, torch.Tensor]) -> torch.Tensor:
    r"""BT.601 luma ``Y`` as MATLAB's ``rgb2ycbcr`` computes it, on the scale ``L`` of the input.

    .. math::

        Y = \frac{65.481\,R + 128.553\,G + 24.966\,B}{255} + \frac{16}{255} L

    i.e. ``(16 + 65.481 r + 128.553 g + 24.966 b) / 255 · L`` for ``r, g, b = R/L, G/L, B/L``.
    Nothing is rounded; the sum runs in x's dtype.

    Convention:
        For images on 0..255 (``L = 255``) equals BasicSR's ``to_y_channel``
        (``bgr2ycbcr(img / 255, y_only=True) * 255``); channels are in RGB order.

    Args:
        x: ``(N, 3, ...)`` floating RGB image.
        scale: the data range ``L``: a float, or a tensor broadcasting against ``(N, 1, ...)``.

    Returns:
        ``(N, 1, ...)`` luma in x's dtype.

    Example:
        >>> import torch
        >>> from torchsim.ops import matlab_y
        >>> matlab_y(torch.full((1, 3, 1, 1), 255.0), 255.0).flatten().tolist()
        [235.0]
    """
    c = torch.tensor(_MATLAB_Y, dtype=x.dtype, device=x.device).reshape(1, 3, *([1] * (x.dim() - 2)))
    y = (x * c).sum(dim=1, keepdim=True)
    return y / 255.0 + (_MATLAB_Y_OFFSET / 255.0) * scale


def pil_luma(x: torch.Tensor) -> torch.Tensor:
    r"""8-bit luma exactly as Pillow's ``Image.convert("L")`` computes it.

    .. math::

        L = \lfloor (19595\,R + 38470\,G + 7471\,B + 2^{15}) / 2^{16} \rfloor

    on the 8-bit values (:func:`quantize_u8`), Pillow's 16-bit fixed-point form of
    ``round(0.299 R + 0.587 G + 0.114 B)``. Computed in float32, which is exact: every
    partial sum is an integer below ``255 · 65536 + 2^15 < 2^24`` (elementwise only, so
    TF32 cannot touch it), hence bit-exact on any device.

    Convention:
        Equals ``numpy.asarray(PIL.Image.fromarray(img).convert("L"))`` for ``"L"``,
        ``"RGB"`` and ``"RGBA"`` images; as in Pillow the alpha channel of RGBA input is
        ignored (not composited). A one-channel image is returned quantised.

    Args:
        x: ``(N, C, ...)`` image, C = 1, 3 or 4; ``uint8`` or floating in ``[0, 1]``.

    Returns:
        ``(N, 1, ...)`` float32 holding the integers 0..255 (``.to(torch.uint8)`` gives
        Pillow's bytes; the float form feeds the resize kernels without another cast).

    Example:
        >>> import torch
        >>> from torchsim.ops import pil_luma
        >>> pil_luma(torch.tensor([255, 128, 0], dtype=torch.uint8).reshape(1, 3, 1, 1)).flatten().tolist()
        [151.0]

    References:
        Pillow, ``src/libImaging/Convert.c`` (``rgb2l``); ITU-R BT.601.
    """
    q = quantize_u8(x[:, :3]).to(torch.float32)  # alpha (RGBA) is ignored, as in Pillow
    if q.shape[1] == 1:
        return q
    r, g, b = _PIL_LUMA
    y = q[:, 0:1] * float(r)
    y.add_(q[:, 1:2], alpha=float(g)).add_(q[:, 2:3], alpha=float(b))
    return y.add_(32768.0).mul_(1.0 / 65536.0).floor_()


def matlab_uint8(y: torch.Tensor, scale: Union[float, torch.Tensor]) -> torch.Tensor:
    r"""Values on the scale ``L`` rounded to the 8-bit levels ``k L / 255``, as MATLAB's ``uint8()`` rounds.

    .. math::

        \operatorname{sign}(v) \lfloor |v| + 0.5 \rfloor \cdot L / 255, \qquad v = 255\,y / L

    (half away from zero, no clamping): what MATLAB's ``rgb2ycbcr`` returns for a ``uint8``
    image, whose Y it computes in double and casts back. The rounding has no gradient (the
    result is detached from ``y``).

    Example:
        >>> import torch
        >>> from torchsim.ops import matlab_uint8
        >>> matlab_uint8(torch.tensor([122.5, 122.49, 0.5 / 255]), 255.0).tolist()
        [123.0, 122.0, 0.0]
    """
    v = (y / scale * 255.0).detach()
    return v.sign() * torch.floor(v.abs() + 0.5) * scale / 255.0


def opencv_gray(x: torch.Tensor) -> torch.Tensor:
    r"""Grey image as OpenCV's ``cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)`` computes it.

    .. math::

        \text{uint8:}\quad G = (9798\,R + 19235\,G + 3735\,B + 2^{14}) \gg 15
        \qquad \text{floating:}\quad G = 0.299\,R + 0.587\,G + 0.114\,B

    The 8-bit rule is OpenCV's 15-bit fixed point (BT.601 weights, rounded half up), in
    int32 arithmetic; floating input is mixed in its own dtype and not rounded.

    Convention:
        uint8: equals ``cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)`` bit for bit (OpenCV >= 4.x
        fixed point). float32: equals OpenCV's float result to float32 rounding (OpenCV may
        fuse the multiply-adds); float64 input gives the float64 mix. A one-channel image is
        returned as is.

    Args:
        x: ``(N, 1|3, ...)`` RGB (or grey) image, ``uint8`` or floating.

    Returns:
        ``(N, 1, ...)``: ``uint8`` for ``uint8`` input, otherwise x's dtype.

    Example:
        >>> import torch
        >>> from torchsim.ops import opencv_gray
        >>> opencv_gray(torch.tensor([255, 128, 0], dtype=torch.uint8).reshape(1, 3, 1, 1)).flatten().tolist()
        [151]
    """
    if x.shape[1] == 1:
        return x
    if x.dtype == torch.uint8:
        v = x.to(torch.int32)
        r, g, b = _CV_GRAY_U8
        s = v[:, 0:1] * r + v[:, 1:2] * g + v[:, 2:3] * b + (1 << (_CV_GRAY_SHIFT - 1))
        return (s >> _CV_GRAY_SHIFT).to(torch.uint8)
    r, g, b = _CV_GRAY
    return x[:, 0:1] * r + x[:, 1:2] * g + x[:, 2:3] * b


__all__ = [
    "quantize_u8",
    "matlab_y",
    "pil_luma",
    "opencv_gray",
    "blend_white",
    "yiq_y",
    "yiq",
    "yiq_distance",
]
