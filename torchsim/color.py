"""Colour conversions: the one place where channels are mixed."""

from __future__ import annotations

from typing import Optional, Union

import torch

from . import _validation as V
from ._common import range_tensor, to_compute

# MATLAB rgb2ycbcr / ITU-R BT.601 luma, coefficients for r, g, b in [0, 1], result on 0..255
_Y_OFFSET = 16.0
_Y_COEFFS = (65.481, 128.553, 24.966)


def rgb_to_y(x: torch.Tensor, data_range: Optional[Union[float, torch.Tensor]] = None) -> torch.Tensor:
    r"""BT.601 luma ``Y`` as MATLAB's ``rgb2ycbcr`` computes it, on the input's scale.

    .. math::

        Y = \frac{16\,L + 65.481\,R + 128.553\,G + 24.966\,B}{255}

    i.e. with ``R, G, B`` divided by the data range ``L`` to ``[0, 1]``:
    ``Y = (16 + 65.481 r + 128.553 g + 24.966 b) / 255 * L``. Nothing is
    rounded: the result is floating (float32, or float64 for float64 input).

    Convention:
        Equals BasicSR's ``to_y_channel`` (``bgr2ycbcr(img / 255, y_only=True) * 255``)
        for images on 0..255 and MATLAB's ``rgb2ycbcr(im2double(img))(:,:,1)`` scaled
        by ``L`` — the Y channel on which super-resolution papers report PSNR/SSIM.
        Channels are in **RGB** order (torchvision's), not OpenCV's BGR.

    Args:
        x: ``(N, 3, H, W)`` RGB image (any accepted dtype).
        data_range: the span of valid values, e.g. ``1.0`` or ``255.0`` (a float or an
            ``(N,)`` tensor). Defaults to 255 for ``uint8``; required for floating input.

    Returns:
        ``(N, 1, H, W)`` luma on the same scale as ``x`` (16/255·L .. 235/255·L).

    Raises:
        TypeError / ValueError: bad rank, dtype, channel count or data_range.

    Example:
        >>> import torch, torchsim
        >>> x = torch.ones(1, 3, 4, 4)                  # white, in [0, 1]
        >>> round(torchsim.rgb_to_y(x, data_range=1.0)[0, 0, 0, 0].item(), 4)
        0.9216
    """
    fn = "rgb_to_y"
    V.check_image(fn, "x", x, (4,))
    V.check_channels(fn, "x", x, (3,))
    dr = V.check_data_range(fn, data_range, x)
    xc = to_compute(x)
    c = torch.tensor(_Y_COEFFS, dtype=xc.dtype, device=xc.device).reshape(1, 3, 1, 1)
    y = (xc * c).sum(dim=1, keepdim=True)
    r = range_tensor(dr, xc)
    return y / 255.0 + (_Y_OFFSET / 255.0) * r
