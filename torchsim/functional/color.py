"""Colour conversions of the public API: validate, then call :mod:`torchsim.ops.color`."""

from __future__ import annotations

from typing import Optional, Union

import torch

from .. import _validation as V
from .._common import range_tensor, to_compute
from ..ops import color as C


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
    if y_round and xc.device.type != "mps":
        xc = xc.double()  # MATLAB rounds the double-precision Y: a float32 Y can land on the wrong side of .5
    scale = range_tensor(dr, xc)
    y = C.opencv_gray(xc) if y_range == "full" else C.matlab_y(xc, scale)
    return C.matlab_uint8(y, scale).to(to_compute(x).dtype) if y_round else y


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
    return C.pil_luma(x).to(torch.uint8)


__all__ = ["rgb_to_y", "pil_luma"]
