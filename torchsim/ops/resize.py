"""Pillow-exact resizing of 8-bit images (Lanczos and box), as two matrix products.

Pillow's ``Image.resize(size, filter)`` on an 8-bit image (``Resample.c``) is separable:
for each output pixel it sums the input pixels under the filter with coefficients in
22-bit fixed point, adds half and shifts back, clipping to 0..255 (``clip8``) after each
of its two passes. Here each pass is one matrix product with a ``(out, in)`` matrix of
Pillow's integer coefficients, built once per ``(in, out, filter)`` with the same double
precision arithmetic as ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` and cached.
Integer-valued float64 carries the fixed-point sums, which is exact (every partial sum
is an integer far below 2**53), so the result does not depend on the summation order of
the device's matmul and equals Pillow's bytes.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Dict, Tuple

import numpy as np
import torch

from .._common import no_autocast

PRECISION_BITS = 22  # Resample.c: 32 - 8 - 2
_ROUND_HALF = float(1 << (PRECISION_BITS - 1))
_FIXED_ONE = float(1 << PRECISION_BITS)


def _sinc(x: float) -> float:
    if x == 0.0:
        return 1.0
    x = x * math.pi
    return math.sin(x) / x


def _lanczos(x: float) -> float:
    """Pillow's ``lanczos_filter``: truncated sinc, ``sinc(x) sinc(x / 3)`` on ``[-3, 3)``."""
    if -3.0 <= x < 3.0:
        return _sinc(x) * _sinc(x / 3)
    return 0.0


def _box(x: float) -> float:
    """Pillow's ``box_filter``: 1 on ``(-0.5, 0.5]`` (the closed side decides a pixel on the box's edge)."""
    return 1.0 if -0.5 < x <= 0.5 else 0.0


# name -> (filter, support), as Resample.c's LANCZOS and BOX
_FILTERS: Dict[str, Tuple[Callable[[float], float], float]] = {"lanczos": (_lanczos, 3.0), "box": (_box, 0.5)}
FILTERS = tuple(_FILTERS)


@functools.lru_cache(maxsize=256)
def _pil_matrix_cpu(in_size: int, out_size: int, filter: str) -> torch.Tensor:
    fn, base_support = _FILTERS[filter]
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = base_support * filterscale
    ss = 1.0 / filterscale
    w = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = 0.0 + (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        ks = [fn((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = 0.0
        for k in ks:
            ww += k
        if ww != 0.0:
            ks = [k / ww for k in ks]
        row = [int(-0.5 + k * _FIXED_ONE) if k < 0 else int(0.5 + k * _FIXED_ONE) for k in ks]
        w[xx, xmin : xmin + xmax] = row
    return torch.from_numpy(w)


def pil_matrix(in_size: int, out_size: int, filter: str = "lanczos", device: torch.device = torch.device("cpu")) -> torch.Tensor:
    r"""``(out_size, in_size)`` float64 matrix of Pillow's fixed-point resampling coefficients.

    Row ``o`` holds the integer coefficients ``round(k_i / Σ k · 2^22)`` (rounded half away
    from zero, as ``normalize_coeffs_8bpc``) of the filter ``k`` centred on
    ``(o + 0.5) · in / out`` and stretched by ``max(in / out, 1)``, over the input pixels
    Pillow visits. Built in double precision operation by operation as ``precompute_coeffs``
    does for the default box ``(0, 0, in, ...)`` (Python floats and ``math.sin`` are C
    doubles and libm), so the integers are Pillow's. Cached per arguments.

    Args:
        in_size: input length (pixels along the resized axis).
        out_size: output length.
        filter: ``"lanczos"`` (``Image.LANCZOS``, support 3) or ``"box"`` (``Image.BOX``,
            support 0.5).
        device: where the matrix lives.

    Returns:
        ``(out_size, in_size)`` float64 tensor of integers; each row sums to about ``2^22``.

    Example:
        >>> from torchsim.ops import pil_matrix
        >>> pil_matrix(4, 2, "box").tolist()
        [[2097152.0, 2097152.0, 0.0, 0.0], [0.0, 0.0, 2097152.0, 2097152.0]]
    """
    return _pil_matrix(in_size, out_size, filter, torch.device(device))


@functools.lru_cache(maxsize=256)
def _pil_matrix(in_size: int, out_size: int, filter: str, device: torch.device) -> torch.Tensor:
    return _pil_matrix_cpu(in_size, out_size, filter).to(device)


@functools.lru_cache(maxsize=64)
def _pil_bands(in_size: int, out_size: int, filter: str) -> Tuple[Tuple[int, int, int, int, torch.Tensor], ...]:
    """``pil_matrix(...).T`` on the CPU as column bands ``(lo, hi, c0, c1, band)``: output columns
    ``c0:c1`` are ``rows[:, lo:hi] @ band``, ``band`` the contiguous nonzero rows of those columns.

    A strong reduction leaves most of the matrix zero (640 -> 32: 120 taps an output): two bands,
    each the inputs under half of the outputs, are ~35 % faster than the dense product (measured,
    float64 BLAS on one core). The sums skip only exact zeros, so the result is identical. One dense
    band where that saves less than 30 % of the work or a band would be narrower than 8 columns.
    """
    wt = _pil_matrix_cpu(in_size, out_size, filter).T.contiguous()  # (in, out)
    nonzero = wt != 0
    half = out_size // 2
    if half >= 8:
        spans = []
        for c0, c1 in ((0, half), (half, out_size)):
            rows = nonzero[:, c0:c1].any(1).nonzero().flatten()
            spans.append((int(rows[0]), int(rows[-1]) + 1, c0, c1) if rows.numel() else (0, 1, c0, c1))
        if sum((hi - lo) * (c1 - c0) for lo, hi, c0, c1 in spans) <= 0.7 * in_size * out_size:
            return tuple((lo, hi, c0, c1, wt[lo:hi, c0:c1].contiguous()) for lo, hi, c0, c1 in spans)
    return ((0, in_size, 0, out_size, wt),)


def clip8(s: torch.Tensor) -> torch.Tensor:
    r"""Pillow's ``clip8`` of fixed-point sums: ``clamp(floor((s + 2^{21}) / 2^{22}), 0, 255)``.

    ``s`` holds the integer sums ``Σ pixel · coefficient`` (without Pillow's initial half,
    which is added here); exact on integer-valued float64. Returns the 8-bit values as
    float64.

    Example:
        >>> import torch
        >>> from torchsim.ops import clip8
        >>> clip8(torch.tensor([-5.0, 2.0 ** 21, 300 * 2.0 ** 22], dtype=torch.float64)).tolist()
        [0.0, 1.0, 255.0]
    """
    return _clip8_(s + _ROUND_HALF, half_added=True)


def _clip8_(s: torch.Tensor, half_added: bool = False) -> torch.Tensor:
    """:func:`clip8` in place (for sums the caller owns): four passes, no temporaries. The
    scaling by ``2^-22`` is exact (a power of two), so it equals the division."""
    if not half_added:
        s.add_(_ROUND_HALF)
    return s.mul_(1.0 / _FIXED_ONE).floor_().clamp_(0.0, 255.0)


def _vertical_first(h: int, w: int, height: int, width: int) -> bool:
    """Pillow >= 13's pass order: vertical first where both passes run and the height shrinks
    by more than twice as many pixels as the width (python-pillow PR #9549)."""
    return w != width and height < h and (h - height) > 2 * (w - width)


def pil_resize(y: torch.Tensor, width: int, height: int, filter: str = "lanczos") -> torch.Tensor:
    r"""Pillow's ``Image.resize((width, height), filter)`` of 8-bit single-band images.

    .. math::

        Y' = \mathrm{clip8}(W_h\, \mathrm{clip8}(Y\, W_w^\top))

    with :func:`pil_matrix` ``W_w`` (``(width, W)``) and ``W_h`` (``(height, H)``). As Pillow
    does, a pass whose size is unchanged is skipped (no pass at all for an unchanged size);
    there is no ``reduce()`` pre-step (``reducing_gap=None``, Pillow's default). The
    horizontal pass runs first, except where Pillow >= 13 runs the vertical pass first
    (python-pillow PR #9549: both passes needed and the height shrinks by more than twice
    as many pixels as the width, ``H - height > 2 (W - width)``). Each pass rounds to
    8 bits, so the order matters in the last bit of some pixels.

    Convention:
        Equals ``numpy.asarray(PIL.Image.fromarray(img).resize((width, height), f))`` for
        ``"L"`` images with ``f = Image.LANCZOS`` or ``Image.BOX``, bit for bit (Pillow 13).

    Args:
        y: ``(..., H, W)`` float64 holding integers 0..255.
        width, height: output size.
        filter: ``"lanczos"`` or ``"box"``.

    Returns:
        ``(..., height, width)`` float64 holding integers 0..255.

    Example:
        >>> import torch
        >>> from torchsim.ops import pil_resize
        >>> y = torch.tensor([[0.0, 10.0, 20.0, 31.0]], dtype=torch.float64)
        >>> pil_resize(y, 2, 1, "box").tolist()
        [[5.0, 26.0]]
    """
    h, w = y.shape[-2:]
    vertical_first = _vertical_first(h, w, height, width)
    if vertical_first:
        y = _clip8_(torch.matmul(pil_matrix(h, height, filter, y.device), y))
    if w != width:
        y = _clip8_(torch.matmul(y, pil_matrix(w, width, filter, y.device).T))
    if h != height and not vertical_first:
        y = _clip8_(torch.matmul(pil_matrix(h, height, filter, y.device), y))
    return y


_BLOCK_PIXELS = 1 << 17  # pixels per block of rows in pil_luma_resize: 1 MiB of float64, cache-resident
_GROUP_PIXELS = 1 << 20  # pixels per group of whole small images in pil_luma_resize


def pil_luma_resize(x: torch.Tensor, width: int, height: int, filter: str = "lanczos") -> torch.Tensor:
    r""":func:`pil_resize` of Pillow's 8-bit luma, ``pil_resize(pil_luma(x)[:, 0].double(), width, height)``.

    The thumbnail the perceptual hashes start from. On the CPU the full-size luma of a large
    image is never made in float64: it goes through in blocks of rows (about 128 K pixels),
    whose luma is copied into one reused float64 buffer and multiplied at once -- the first
    pass by ``W_w^T`` block by block, or, where the vertical pass comes first, ``W_h`` summed
    over the blocks. The products are the same integers as in :func:`pil_resize` (exact
    float64), so the result is identical; what goes is a full-size float64 temporary per
    image (for a 640x480 photograph, converting to it cost more than the matrix product).
    Small images (up to 64 K pixels) go through whole, about a million pixels at a time, where
    a few large operations cost less than many small ones. On other devices it is the
    one-batch expression above.

    Args:
        x: ``(N, C, H, W)`` image, C = 1, 3 or 4, as :func:`torchsim.ops.pil_luma` takes it.
        width, height: thumbnail size.
        filter: ``"lanczos"`` or ``"box"``.

    Returns:
        ``(N, height, width)`` float64 holding integers 0..255.

    Example:
        >>> import torch
        >>> from torchsim.ops import pil_luma_resize
        >>> x = torch.full((2, 3, 40, 30), 200, dtype=torch.uint8)
        >>> pil_luma_resize(x, 3, 4).unique().tolist()
        [200.0]
    """
    from .color import pil_luma

    def whole(images: torch.Tensor) -> torch.Tensor:  # the expression above, in one batch
        return pil_resize(pil_luma(images)[:, 0].to(torch.float64), width, height, filter)

    n, _, h, w = x.shape
    if x.device.type != "cpu" or (w == width and h == height):
        return whole(x)
    if 0 < h * w <= _BLOCK_PIXELS // 2:  # small images: whole ones in groups, fewer and larger ops
        parts = [whole(part) for part in x.split(max(1, _GROUP_PIXELS // (h * w)))]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
    rows = max(1, min(h, _BLOCK_PIXELS // max(1, w)))
    buf = torch.empty(rows, w, dtype=torch.float64)
    direct = x.shape[1] == 1 and x.dtype == torch.uint8  # the luma is the image itself

    def blocks(i: int):
        for s in range(0, h, rows):
            part = buf[: min(rows, h - s)]
            part.copy_(x[i, 0, s : s + rows] if direct else pil_luma(x[i : i + 1, :, s : s + rows])[0, 0])
            yield s, part

    with no_autocast(x.device):
        if w != width and not _vertical_first(h, w, height, width):
            bands = _pil_bands(w, width, filter)
            mid = torch.empty(n, h, width, dtype=torch.float64)
            for i in range(n):
                for s, part in blocks(i):
                    for lo, hi, c0, c1, band in bands:
                        torch.mm(part[:, lo:hi], band, out=mid[i, s : s + part.shape[0], c0:c1])
            return pil_resize(_clip8_(mid), width, height, filter)  # the vertical pass (if any)
        wh = pil_matrix(h, height, filter)
        mid = torch.zeros(n, height, w, dtype=torch.float64)
        for i in range(n):
            for s, part in blocks(i):
                mid[i].addmm_(wh[:, s : s + part.shape[0]], part)
        return pil_resize(_clip8_(mid), width, height, filter)  # the horizontal pass (if any)


def pil_resize_u8(img: torch.Tensor, width: int, height: int, filter: str = "lanczos") -> torch.Tensor:
    r""":func:`pil_resize` of ``uint8`` images: ``(..., H, W)`` uint8 -> ``(..., height, width)`` uint8.

    Runs with autocast off (the float64 products must stay float64).

    Example:
        >>> import torch
        >>> from torchsim.ops import pil_resize_u8
        >>> pil_resize_u8(torch.full((1, 6, 6), 77, dtype=torch.uint8), 4, 3).unique().tolist()
        [77]
    """
    with no_autocast(img.device):
        return pil_resize(img.to(torch.float64), width, height, filter).to(torch.uint8)


__all__ = ["PRECISION_BITS", "FILTERS", "pil_matrix", "clip8", "pil_resize", "pil_luma_resize", "pil_resize_u8"]
