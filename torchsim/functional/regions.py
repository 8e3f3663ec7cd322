"""Difference regions: SSIM map -> Otsu threshold -> 8-connected regions -> boxes, in torch.

The recipe people use with scikit-image and OpenCV (SPEC, "Difference
regions"), batched and on any device: the full-size SSIM map comes from the
one SSIM kernel (:func:`torchsim.functional.ssim.ssim` on symmetrically padded
images), Otsu's threshold is computed from a batched 256-bin histogram, and
connected components are labelled by min-label propagation with hooking and
pointer jumping (no OpenCV or scipy at run time).
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from .. import _validation as V
from ..ops.color import opencv_gray
from ..filters import symmetric_pad
from .ssim import ssim

_FLT_EPSILON = 1.1920928955078125e-07  # C's FLT_EPSILON, as cv2's Otsu uses it

_N8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
_N4 = [(-1, 0), (0, -1), (0, 1), (1, 0)]


def _gray(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1|3, H, W)`` -> ``(N, 1, H, W)`` float64 gray.

    uint8 RGB: OpenCV 5's ``cvtColor(..., COLOR_RGB2GRAY)`` fixed point,
    ``(9798 R + 19235 G + 3735 B + 2**14) >> 15`` (BT.601 0.299/0.587/0.114,
    rounded to uint8). Floating RGB: ``0.299 R + 0.587 G + 0.114 B``, not rounded.
    """
    return opencv_gray(x if x.dtype == torch.uint8 else x.to(torch.float64)).to(torch.float64)


def _otsu(u8: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold per image of an ``(N, H, W)`` int64 map with values 0..255, as ``cv2.threshold``.

    Between-class variance ``q1 q2 (mu1 - mu2)^2`` for every split ``<= t | > t``,
    bins where ``min(q1, q2) < FLT_EPSILON`` or ``max(q1, q2) > 1 - FLT_EPSILON``
    skipped, the first maximum wins (0 when none is positive). Returns ``(N,)`` int64.
    """
    n = u8.shape[0]
    offs = (torch.arange(n, device=u8.device) * 256).reshape(n, 1)
    hist = torch.bincount((u8.reshape(n, -1) + offs).reshape(-1), minlength=256 * n).reshape(n, 256)
    p = hist.to(torch.float64) / u8[0].numel()
    i = torch.arange(256, dtype=torch.float64, device=u8.device)
    mu = (p * i).sum(1, keepdim=True)
    q1 = torch.cumsum(p, 1)
    q2 = 1.0 - q1
    mu1 = torch.cumsum(p * i, 1) / q1
    mu2 = (mu - q1 * mu1) / q2
    sigma = q1 * q2 * (mu2 - mu1) ** 2
    ok = (torch.minimum(q1, q2) >= _FLT_EPSILON) & (torch.maximum(q1, q2) <= 1.0 - _FLT_EPSILON)
    sigma = torch.where(ok, sigma, torch.zeros_like(sigma))
    best = sigma.max(1, keepdim=True).values
    first = torch.where((sigma == best) & (best > 0), i.to(torch.int64), torch.full_like(hist, 256)).min(1).values
    return torch.where(first == 256, torch.zeros_like(first), first)


def _label(mask: torch.Tensor, neighbours: List[Tuple[int, int]]) -> torch.Tensor:
    """Connected components of an ``(N, H, W)`` bool mask; returns ``(N, H, W)`` int64 roots.

    Each foreground pixel gets the flat index (over the batch) of the first
    pixel of its component in raster order; background pixels get ``N*H*W``.
    Every round takes the minimum label over the neighbourhood, hooks each
    pixel's current root onto that minimum (``scatter_reduce amin``) and
    compresses paths by pointer jumping, until nothing changes (one host sync
    per round; rounds grow with the log of the component diameter in practice).
    """
    n, h, w = mask.shape
    total = n * h * w
    big = total
    idx = torch.arange(total, device=mask.device).reshape(n, h, w)
    lab = torch.where(mask, idx, torch.full_like(idx, big))
    padded = lab.new_full((n, h + 2, w + 2), big)
    while True:
        padded[:, 1:-1, 1:-1] = lab
        m = lab
        for dy, dx in neighbours:
            m = torch.minimum(m, padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w])
        m = torch.where(mask, m, lab)
        parent = torch.cat([m.reshape(-1), m.new_full((1,), big)])
        parent.scatter_reduce_(0, lab.reshape(-1), m.reshape(-1), reduce="amin")
        for _ in range(4):
            parent = parent.index_select(0, parent)
        new = parent[:total].reshape(n, h, w)
        if torch.equal(new, lab):
            return lab
        lab = new


def _boxes(fg: torch.Tensor, min_area: int) -> List[torch.Tensor]:
    """One box per external 8-connected region of an ``(N, H, W)`` bool mask.

    A region is external (kept, as ``cv2.findContours(RETR_EXTERNAL)`` keeps it)
    when it touches the image border or is 4-adjacent to the background
    4-connected to the border; regions inside a hole of another are dropped.
    """
    n, h, w = fg.shape
    dev = fg.device
    pf = F.pad(fg.to(torch.uint8), (1, 1, 1, 1), value=0).bool()  # a virtual background frame
    hp, wp = h + 2, w + 2
    total = n * hp * wp
    lab = _label(pf, _N8)
    bg = _label(~pf, _N4)
    outer = (~pf) & (bg == bg[:, :1, :1])  # the frame's background component
    po = F.pad(outer.to(torch.uint8), (1, 1, 1, 1), value=0).bool()
    touch = torch.zeros_like(pf)
    for dy, dx in _N4:
        touch |= po[:, 1 + dy : 1 + dy + hp, 1 + dx : 1 + dx + wp]
    touch &= pf
    flat = lab.reshape(-1)
    sel = pf.reshape(-1)
    roots = flat[sel]
    ys = torch.arange(hp, device=dev).reshape(1, hp, 1).expand(n, hp, wp).reshape(-1)[sel] - 1
    xs = torch.arange(wp, device=dev).reshape(1, 1, wp).expand(n, hp, wp).reshape(-1)[sel] - 1
    big = torch.iinfo(torch.int64).max
    x0 = torch.full((total,), big, dtype=torch.int64, device=dev).scatter_reduce_(0, roots, xs, "amin")
    y0 = torch.full((total,), big, dtype=torch.int64, device=dev).scatter_reduce_(0, roots, ys, "amin")
    x1 = torch.full((total,), -1, dtype=torch.int64, device=dev).scatter_reduce_(0, roots, xs, "amax")
    y1 = torch.full((total,), -1, dtype=torch.int64, device=dev).scatter_reduce_(0, roots, ys, "amax")
    area = torch.zeros(total, dtype=torch.int64, device=dev).scatter_add_(0, roots, torch.ones_like(roots))
    touching = touch.reshape(-1)[sel].to(torch.uint8)
    ext = torch.zeros(total, dtype=torch.uint8, device=dev).scatter_reduce_(0, roots, touching, "amax").bool()
    is_root = (flat == torch.arange(total, device=dev)) & sel & ext & (area >= max(min_area, 1))
    ids = torch.nonzero(is_root).reshape(-1)  # data-dependent size: one host sync, by nature
    boxes = torch.stack([x0[ids], y0[ids], x1[ids] + 1, y1[ids] + 1], dim=1)
    image = ids // (hp * wp)
    counts = torch.bincount(image, minlength=n).tolist()
    return list(torch.split(boxes, counts))


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
    V.check_window_fits(fn, x.shape, kernel_size)
    V.check_positive(fn, "min_area", min_area, integer=True, allow_zero=True)
    dr = V.check_data_range(fn, data_range, x)
    if isinstance(dr, torch.Tensor):
        dr = dr.to(torch.float64)
    with torch.no_grad():
        gx, gy = _gray(x.detach()), _gray(y.detach())
        r = (kernel_size - 1) // 2
        _, smap = ssim(
            symmetric_pad(gx, r, r),
            symmetric_pad(gy, r, r),
            data_range=dr,
            gaussian=False,
            kernel_size=kernel_size,
            sample_covariance=True,
            return_map=True,
            reduction="none",
        )
        # numpy's float -> uint8 cast on x86: truncate toward zero, keep the low byte.
        u8 = torch.remainder(torch.trunc(smap[:, 0] * 255).to(torch.int64), 256)
        t = _otsu(u8)
        mask = u8 <= t.reshape(-1, 1, 1)
        boxes = _boxes(mask, min_area)
    if return_map:
        return boxes, smap
    return boxes
