"""Difference regions: SSIM map -> Otsu threshold -> 8-connected regions -> boxes, in torch.

The recipe people use with scikit-image and OpenCV (SPEC, "Difference
regions"), batched and on any device: the full-size SSIM map comes from the
one SSIM kernel (:func:`torchsim.functional.ssim.ssim` with ``convention="skimage"`` and
``padding="symmetric"``); Otsu's threshold, connected components and boxes are the batched
operators of :mod:`torchsim.ops.components` (no OpenCV or scipy at run time).
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch

from .. import _validation as V
from ..ops.color import opencv_gray
from ..ops.components import component_boxes, otsu_threshold
from .ssim import ssim


def _gray(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1|3, H, W)`` -> ``(N, 1, H, W)`` float64 gray.

    uint8 RGB: OpenCV 5's ``cvtColor(..., COLOR_RGB2GRAY)`` fixed point,
    ``(9798 R + 19235 G + 3735 B + 2**14) >> 15`` (BT.601 0.299/0.587/0.114,
    rounded to uint8). Floating RGB: ``0.299 R + 0.587 G + 0.114 B``, not rounded.
    """
    return opencv_gray(x if x.dtype == torch.uint8 else x.to(torch.float64)).to(torch.float64)


def diff_regions(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    kernel_size: int = 7,
    min_area: int = 0,
    return_map: bool = False,
) -> Union[List[torch.Tensor], Tuple[List[torch.Tensor], torch.Tensor]]:
    r"""Bounding boxes of the regions where two images differ (SSIM + Otsu + connected components).

    Steps, per image pair:

    1. gray images (RGB -> BT.601 luma, see Convention);
    2. the full-size SSIM map under scikit-image's default convention: uniform
       ``kernel_size`` window, sample covariance, symmetric (scipy ``reflect``)
       boundary — :func:`ssim` on the images padded by ``(kernel_size - 1) // 2``;
    3. ``u = trunc(map · 255) mod 256`` (numpy's ``astype(uint8)``);
    4. Otsu's threshold ``t`` on the 256-bin histogram of ``u``; the difference
       mask is ``u <= t`` (``THRESH_BINARY_INV``: low SSIM is a difference);
    5. 8-connected regions of the mask; regions nested inside a hole of another
       region are dropped; one box per remaining region.

    Convention:
        Equals the scikit-image + OpenCV recipe
        ``gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)``;
        ``_, m = structural_similarity(g1, g2, full=True)``;
        ``u = (m * 255).astype("uint8")``;
        ``t = cv2.threshold(u, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]``;
        ``cv2.boundingRect(c)`` for ``c`` in ``cv2.findContours(t, cv2.RETR_EXTERNAL,
        cv2.CHAIN_APPROX_SIMPLE)`` — with ``(x, y, w, h)`` reported as
        ``(x, y, x + w, y + h)``. uint8 RGB is converted with OpenCV 5's integer
        formula ``(9798 R + 19235 G + 3735 B + 2**14) >> 15``; floating RGB with
        ``0.299 R + 0.587 G + 0.114 B`` unrounded. The SSIM map is computed in
        float64. The uint8 cast is numpy's on x86-64, where the recipe is
        almost always run: truncation toward zero, then the low byte, so a
        negative SSIM wraps around (``-0.1 · 255 = -25.5 -> 231``) exactly as
        there (on ARM numpy saturates such values to 0 instead). Regions nested
        inside a hole of another region are dropped exactly as ``RETR_EXTERNAL``
        drops them (not by box containment). Boxes equal the recipe's except where
        float64 rounding differs at an integer boundary of ``map · 255`` — within a
        pixel or two.

    Args:
        x, y: ``(N, C, H, W)`` images, ``C`` = 1 (gray) or 3 (RGB), same shape, both
            sides at least ``kernel_size``.
        data_range: span of valid values; 255 for uint8 when omitted, required for
            floating input (e.g. ``1.0`` for [0, 1]).
        kernel_size: odd side of the uniform SSIM window (scikit-image's ``win_size``).
        min_area: drop regions of fewer pixels than this.
        return_map: also return the full-size SSIM map.

    Returns:
        A list of ``N`` int64 tensors of shape ``(K_n, 4)``, boxes ``x0, y0, x1, y1``
        (``x1``, ``y1`` exclusive) in raster order of each region's first pixel, on
        the input's device; with ``return_map`` a tuple ``(boxes, map)``, ``map``
        ``(N, 1, H, W)`` float64. The number of boxes is data-dependent, so this
        function synchronises with the device (once per labelling round).

    Raises:
        TypeError: unsupported dtype, missing ``data_range`` for floating input.
        ValueError: rank/shape/device mismatch, channel count not 1 or 3, even
            ``kernel_size``, image smaller than the window, negative ``min_area``.

    Example:
        >>> import torch, torchsim
        >>> x = torch.full((1, 3, 64, 64), 128, dtype=torch.uint8)
        >>> y = x.clone(); y[:, :, 20:30, 40:50] = 0
        >>> torchsim.diff_regions(x, y)
        [tensor([[37, 17, 53, 33]])]

    References:
        Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
        assessment: from error visibility to structural similarity", IEEE TIP
        13(4), 2004. N. Otsu, "A threshold selection method from gray-level
        histograms", IEEE TSMC 9(1), 1979. S. Suzuki, K. Abe, "Topological
        structural analysis of digitized binary images by border following",
        CVGIP 30(1), 1985 (the border following behind ``cv2.findContours``).
    """
    fn = "diff_regions"
    x, y = V.check_pair(fn, x, y)
    V.check_channels(fn, "x", x, (1, 3))
    V.check_kernel(fn, kernel_size)
    if kernel_size < 3:
        raise ValueError(
            f"{fn}: kernel_size must be at least 3 (the SSIM map uses the sample covariance, "
            f"which divides by n - 1), got {kernel_size}"
        )
    V.check_window_fits(fn, x.shape, kernel_size)
    V.check_positive(fn, "min_area", min_area, integer=True, allow_zero=True)
    dr = V.check_data_range(fn, data_range, x)
    if isinstance(dr, torch.Tensor):
        dr = dr.to(torch.float64)
    with torch.no_grad():
        gx, gy = _gray(x.detach()), _gray(y.detach())
        _, smap = ssim(  # scikit-image's full=True map
            gx, gy, data_range=dr, convention="skimage", kernel_size=kernel_size, padding="symmetric", return_map=True
        )
        # numpy's float -> uint8 cast on x86: truncate toward zero, keep the low byte.
        u8 = torch.remainder(torch.trunc(smap[:, 0] * 255).to(torch.int64), 256)
        t = otsu_threshold(u8)
        mask = u8 <= t.reshape(-1, 1, 1)
        boxes = component_boxes(mask, min_area)
    if return_map:
        return boxes, smap
    return boxes
