"""Binning: bin edges and indices, exact and soft histograms (with their autograd), joint histograms.

Exact histograms bin every value into ``bins`` equal-width bins over ``[lo, hi]`` (last
bin closed, values outside the range and NaN not counted) and count with one row-wise
``scatter_add_`` of ``(row, bin)`` indices for the whole batch (a sync-free
``bincount``); uint8 images count their 256 levels first and move each level's count to
its bin, as OpenCV's ``calcHist`` does. For a fixed range the bin edges are float64 for
every input dtype, as OpenCV's (a float32 value one float32 step from an edge lands where
OpenCV puts it); ``"minmax"`` edges are computed in the compute dtype from each image's
own min and max, as ``numpy.histogramdd`` does inside scikit-image.

Soft histograms (``bandwidth > 0``) spread each value over the few bins its compact
kernel reaches (:func:`soft_taps`), so memory stays proportional to the number of values
(never values × bins, nor values × bins² for a joint histogram), and their hand-written
backward gathers the upstream gradient at those same few bins.

Everything here is pure tensor math without validation; :mod:`torchsim.functional.histogram`
and :mod:`torchsim.functional.information` validate and call it.
"""

from __future__ import annotations

import math
from typing import Tuple, Union

import torch
from torch.autograd.function import once_differentiable

from .._common import compute_dtype, full_scale, to_compute
from ..kernels import histogram_op  # noqa: F401  (registers the torchsim::soft_*histogram ops)

ValueRange = Union[None, str, Tuple[float, float]]
Bound = Union[float, torch.Tensor]


# --------------------------------------------------------------------------- helpers for the histograms' consumers


def precise(t: torch.Tensor) -> torch.Tensor:
    """Histogram post-processing (normalising, comparing, entropies) runs in float64 where the device has it.

    It touches ``bins`` (or ``bins²``) numbers per image, not pixels, so this costs nothing and
    matches the double accumulation of OpenCV, NumPy and scikit-learn.

    Example:
        >>> import torch
        >>> from torchsim.ops import precise
        >>> precise(torch.ones(2)).dtype
        torch.float64
    """
    return t if t.device.type == "mps" else t.double()


def safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """``sqrt`` with a zero (not infinite) gradient at 0, for histogram comparisons and normalisations.

    Example:
        >>> import torch
        >>> from torchsim.ops import safe_sqrt
        >>> t = torch.tensor([0.0, 4.0], requires_grad=True)
        >>> safe_sqrt(t).sum().backward(); t.grad.tolist()
        [0.0, 0.25]
    """
    pos = t > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, t, torch.ones_like(t))), torch.zeros_like(t))


# --------------------------------------------------------------------------- edges and indices


def bin_bounds(v: torch.Tensor, value_range: ValueRange, full_scale: Union[bool, float]) -> Tuple[Bound, Bound]:
    """``(lo, hi)`` of the binned range: Python floats, or ``(N, 1, ...)`` tensors for ``"minmax"``.

    ``None`` is ``(0, full_scale)``: 255 for uint8 (``full_scale=True`` also means 255), 65535
    for uint16, ``(0, 1)`` for floating input (``full_scale`` false or 1.0). ``v`` is ``(N, ...)``
    in the compute dtype; ``"minmax"`` takes each image's min and max over all its values (a
    constant image gets ``(v - 0.5, v + 0.5)``, as NumPy does), differentiably. An image with a
    NaN or infinite value has no range: its bounds are NaN, so none of its values is counted
    (the metrics then report NaN for it, :func:`histogram` a NaN row).

    Example:
        >>> import torch
        >>> from torchsim.ops import bin_bounds
        >>> bin_bounds(torch.zeros(1, 4), None, True)
        (0.0, 255.0)
        >>> [t.flatten().tolist() for t in bin_bounds(torch.tensor([[2.0, 2.0]]), "minmax", False)]
        [[1.5], [2.5]]
    """
    if value_range is None:
        hi = 255.0 if full_scale is True else float(full_scale or 1.0)
        return (0.0, hi)
    if isinstance(value_range, str):  # "minmax"
        flat = v.flatten(1)
        lo, hi = flat.amin(1), flat.amax(1)  # soft histograms also differentiate through these
        no_range = ~(torch.isfinite(lo) & torch.isfinite(hi))  # NaN or inf: never index with it
        nan = torch.full_like(lo, math.nan)
        lo, hi = torch.where(no_range, nan, lo), torch.where(no_range, nan, hi)
        same = lo == hi
        lo = torch.where(same, lo - 0.5, lo)
        hi = torch.where(same, hi + 0.5, hi)
        shape = (-1,) + (1,) * (v.dim() - 1)
        return lo.reshape(shape), hi.reshape(shape)
    return value_range


def bin_positions(v: torch.Tensor, lo: Bound, hi: Bound, bins: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Position ``u = (v - lo) / (hi - lo) · bins`` in bin units (NumPy's arithmetic) and the in-range mask.

    The mask is ``lo <= v <= hi`` (False for NaN).

    Example:
        >>> import torch
        >>> from torchsim.ops import bin_positions
        >>> u, inside = bin_positions(torch.tensor([0.25, 1.5]), 0.0, 1.0, 4)
        >>> u.tolist(), inside.tolist()
        ([1.0, 6.0], [True, False])
    """
    u = (v - lo) / (hi - lo) * bins
    inside = (v >= lo) & (v <= hi)
    return u, inside


def bin_edges(lo: Bound, hi: Bound, bins: int, like: torch.Tensor) -> torch.Tensor:
    """The ``bins + 1`` bin edges as ``numpy.linspace(lo, hi, bins + 1)`` makes them: ``j · step + lo``, last = ``hi``.

    Fixed ranges give float64 edges ``(bins + 1,)`` for every input dtype (OpenCV's
    ``calcHist`` bins in double precision); ``"minmax"`` bounds (tensors) give edges in
    ``like``'s dtype, ``(N, bins + 1)`` (``numpy.histogramdd`` on the image's dtype).

    Example:
        >>> import torch
        >>> from torchsim.ops import bin_edges
        >>> bin_edges(0.0, 1.0, 4, torch.zeros(1)).tolist()
        [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if isinstance(lo, torch.Tensor):
        lo2, hi2 = lo.reshape(-1, 1), hi.reshape(-1, 1)
        j = torch.arange(bins + 1, device=like.device, dtype=like.dtype)
        e = j * ((hi2 - lo2) / bins) + lo2
        return torch.cat([e[:, :-1], hi2], dim=1)
    j = torch.arange(bins + 1, device=like.device, dtype=torch.float64)
    e = j * ((hi - lo) / bins) + lo
    e[-1] = hi
    return e


def _edges_as(edges: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Edges in ``dtype`` that order every ``dtype`` value exactly as the float64 edges do.

    Each edge is rounded *up* to ``dtype`` (to the smallest ``dtype`` number ``>= e``): for
    any ``v`` of that dtype, ``v < e`` holds exactly when ``v < round_up(e)``, so the
    comparisons stay in the input's precision and give the float64 answer.
    """
    if edges.dtype == dtype:
        return edges
    e = edges.to(dtype)
    return torch.where(e.to(edges.dtype) < edges, torch.nextafter(e, torch.full_like(e, math.inf)), e)


def bin_index(v: torch.Tensor, lo: Bound, hi: Bound, bins: int) -> torch.Tensor:
    """Exact bin of every value of ``v`` (``(N, ...)``); values not counted get the dump bin ``bins``.

    The arithmetic guess ``floor(u)`` (:func:`bin_positions`) is corrected by one against the
    edges (:func:`bin_edges`) as ``numpy.histogram`` corrects it, so a value on an edge lands
    in the bin that starts there (the last bin is closed). The edges of a fixed range are
    float64 for every dtype, so a value is binned as ``numpy.histogram`` bins it in float64,
    and a float32 value one float32 step from an edge lands where ``cv2.calcHist`` puts it
    (for bounds that are float32 numbers, as OpenCV's ranges are), even where NumPy's
    float32 edges would put it in the neighbouring bin. Values outside ``[lo, hi]`` and NaN
    go to index ``bins``, which the callers allocate and drop.

    Example:
        >>> import torch
        >>> from torchsim.ops import bin_index
        >>> bin_index(torch.tensor([[0.0, 0.25, 0.99, 1.0, 1.5]]), 0.0, 1.0, 4).tolist()
        [[0, 1, 3, 3, 4]]
    """
    u, inside = bin_positions(v, lo, hi, bins)
    f = torch.where(inside, u, torch.zeros_like(u)).floor_().clamp_(0, bins - 1)
    idx = f.long()
    edges = bin_edges(lo, hi, bins, v)
    if edges.dim() == 1:
        edges = _edges_as(edges, v.dtype)
        lower, upper = edges.take(idx), edges[1:].take(idx)
    else:
        flat = idx.reshape(v.shape[0], -1)
        lower = edges.gather(1, flat).view_as(v)
        upper = edges[:, 1:].gather(1, flat).view_as(v)
    idx.sub_((v < lower).long()).add_(((v >= upper) & (f < bins - 1)).long())
    return idx.masked_fill_(~inside, bins)


def level_bins(x: torch.Tensor, value_range: ValueRange, bins: int) -> torch.Tensor:
    """For uint8 ``x``: the bin of each of the 256 levels, ``(1, 256)``, or ``(N, 256)`` for ``"minmax"``.

    Binned with :func:`bin_index` on the levels themselves, so the result is the same as
    binning every pixel, at the cost of 256 values (OpenCV's ``calcHist`` does the same).
    Levels outside the range get the dump bin ``bins``.

    Example:
        >>> import torch
        >>> from torchsim.ops import level_bins
        >>> level_bins(torch.zeros(1, 1, 2, 2, dtype=torch.uint8), None, 2)[0, [0, 127, 128, 255]].tolist()
        [0, 0, 1, 1]
    """
    levels = torch.arange(256, device=x.device, dtype=torch.float32).unsqueeze(0)
    if value_range == "minmax":
        flat = x.reshape(x.shape[0], -1)
        # each image's (min, max) pair has the image's min and max: its "minmax" bounds are the image's
        lo, hi = bin_bounds(torch.stack([flat.amin(1), flat.amax(1)], 1).float(), "minmax", True)
        levels = levels.expand(x.shape[0], 256)
    else:
        lo, hi = bin_bounds(levels, value_range, True)
    return bin_index(levels, lo, hi, bins)


def _is_identity(value_range: ValueRange, bins: int) -> bool:
    """uint8 levels are their own bins: 256 bins over the default (0, 255)."""
    return bins == 256 and value_range in (None, (0.0, 255.0))


def count_rows(index: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """Row-wise ``bincount`` without a host sync: ``(R, P)`` int64 indices in ``[0, size)`` -> ``(R, size)`` counts.

    Example:
        >>> import torch
        >>> from torchsim.ops import count_rows
        >>> count_rows(torch.tensor([[0, 2, 2], [1, 1, 1]]), 3, torch.float32).tolist()
        [[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]
    """
    out = torch.zeros(index.shape[0], size, dtype=dtype, device=index.device)
    return out.scatter_add_(1, index, torch.ones(index.shape, dtype=dtype, device=index.device))


def count_dtype(values_per_row: int, dtype: torch.dtype) -> torch.dtype:
    """The dtype to count in: ``dtype``, or float64 beyond 2**24 values per row (float32 counts are exact up to there).

    Example:
        >>> import torch
        >>> from torchsim.ops import count_dtype
        >>> count_dtype(100, torch.float32), count_dtype(2**25, torch.float32)
        (torch.float32, torch.float64)
    """
    return torch.float64 if values_per_row > 2**24 else dtype


# --------------------------------------------------------------------------- soft kernel


def soft_taps(u: torch.Tensor, bins: int, h: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The bins a soft value reaches, its weights there and their derivatives in ``u``.

    Each value at position ``u`` (bin units) is spread as a triangular density of half-width
    ``h`` bins (a linear B-spline); a bin receives the mass of that density between its
    edges, and the mass beyond the first / last edge is kept in the first / last bin. With
    ``s`` the clamped, scaled distance ``(edge - u) / h`` in ``[-1, 1]`` (-1 at edge 0, +1 at
    edge ``bins``), the CDF is

    .. math::

        G(s) = \tfrac12 + s - \tfrac12 s|s|,

    so the weight of a bin is ``G(s_hi) - G(s_lo)`` and its ``u``-derivative
    ``(|s_hi| - |s_lo|) / h``. At most ``K = ceil(2h) + 1`` bins are touched; the window of
    ``K`` bins starting at ``j0`` is clamped inside ``[0, bins)``, so every tap is a valid
    bin (weights outside the support are exactly zero).

    Returns:
        ``j0`` (long, shape of ``u``), and the weights and derivatives ``(K, *u.shape)`` for
        bins ``j0 + t``.

    Example:
        >>> import torch
        >>> from torchsim.ops import soft_taps
        >>> j0, w, dw = soft_taps(torch.tensor([1.25]), 4, 0.5)  # spread over [0.75, 1.75]
        >>> j0.tolist(), w.flatten().tolist()  # bins 0 and 1
        ([0], [0.125, 0.875])
    """
    k = min(math.ceil(2.0 * h) + 1, bins)
    j0 = (u - h).floor_().clamp_(0, bins - k)
    inv_h = 1.0 / h
    d = (j0 - u).mul_(inv_h)  # scaled distance to the window's first edge
    steps = torch.arange(k + 1, device=u.device, dtype=u.dtype).mul_(inv_h).view(-1, *([1] * u.dim()))
    s = (d.unsqueeze(0) + steps).clamp_(-1.0, 1.0)
    s[0].masked_fill_(j0 == 0, -1.0)  # mass below the range stays in bin 0
    s[k].masked_fill_(j0 == bins - k, 1.0)  # mass above the range stays in the last bin
    a = s.abs()
    g = torch.addcmul(s, s, a, value=-0.5)
    w = g[1:] - g[:-1]
    dw = (a[1:] - a[:-1]).mul_(inv_h)
    return j0.long(), w, dw


def _shifted(flat: torch.Tensor, offset: int) -> torch.Tensor:
    """``flat[offset:]``: scattering ``idx`` into it scatters ``idx + offset`` into ``flat``, with no index arithmetic."""
    return flat.narrow(0, offset, flat.numel() - offset)


def _soft_counts(u: torch.Tensor, mask: torch.Tensor, bins: int, h: float, count_dtype: torch.dtype):
    """The soft-histogram kernel's forward: ``(R, bins)`` counts and what its backward needs.

    ``u`` ``(R, P)`` positions in bin units, ``mask`` ``(R, P)`` weights (1 counted, 0 not).
    Returns ``(counts in u's dtype, idx (R·P,) long, dw (K, R, P))``: ``K`` scatter-adds of the
    :func:`soft_taps` weights into shifted views of the output, one index tensor for all.
    :class:`SoftHistogram` and the custom op ``torchsim::soft_histogram`` both run this.
    """
    r = u.shape[0]
    j0, w, dw = soft_taps(u, bins, h)
    idx = (torch.arange(r, device=u.device).unsqueeze(1) * bins + j0).view(-1)
    w = w * mask
    out = torch.zeros(r * bins, dtype=count_dtype, device=u.device)
    for t in range(w.shape[0]):
        _shifted(out, t).scatter_add_(0, idx, w[t].reshape(-1).to(count_dtype))
    return out.view(r, bins).to(u.dtype), idx, dw.mul_(mask)


def _soft_counts_backward(grad: torch.Tensor, idx: torch.Tensor, dw: torch.Tensor) -> torch.Tensor:
    """Gradient in ``u`` of :func:`_soft_counts` from its ``idx`` and ``dw``: the upstream gradient at the ``K`` taps."""
    g = grad.contiguous().view(-1).to(dw.dtype)
    gu = torch.zeros_like(dw[0])
    for t in range(dw.shape[0]):
        gu.view(-1).addcmul_(_shifted(g, t).take(idx), dw[t].reshape(-1))
    return gu


def _soft_joint_counts(ux: torch.Tensor, uy: torch.Tensor, mask: torch.Tensor, bins: int, h: float, count_dtype: torch.dtype):
    """The soft joint-histogram kernel's forward: ``(N, bins, bins)`` counts and what its backward needs.

    Returns ``(counts in ux's dtype, idx (N·P,) long, wx, dwx, wy, dwy (K, N, P))`` (the y taps
    already weighted by ``mask``). :class:`SoftJointHistogram` and the custom op
    ``torchsim::soft_joint_histogram`` both run this.
    """
    n = ux.shape[0]
    jx, wx, dwx = soft_taps(ux, bins, h)
    jy, wy, dwy = soft_taps(uy, bins, h)
    wy.mul_(mask)
    dwy.mul_(mask)
    idx = (torch.arange(n, device=ux.device).unsqueeze(1) * (bins * bins) + jx * bins + jy).view(-1)
    out = torch.zeros(n * bins * bins, dtype=count_dtype, device=ux.device)
    buf = torch.empty_like(wx[0])
    k = wx.shape[0]
    for a in range(k):
        for b in range(k):
            torch.mul(wx[a], wy[b], out=buf)
            _shifted(out, a * bins + b).scatter_add_(0, idx, buf.view(-1).to(count_dtype))
    return out.view(n, bins, bins).to(ux.dtype), idx, wx, dwx, wy, dwy


def _soft_joint_counts_backward(grad, idx, wx, dwx, wy, dwy, bins: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gradients in ``ux`` and ``uy`` of :func:`_soft_joint_counts`: the upstream gradient at the ``K²`` taps."""
    g = grad.contiguous().view(-1).to(wx.dtype)
    k = wx.shape[0]
    # d/dux = sum_a dwx_a sum_b G[a, b] wy_b ;  d/duy = sum_b dwy_b sum_a G[a, b] wx_a
    acc_x = torch.zeros_like(wx)
    acc_y = torch.zeros_like(wy)
    for a in range(k):
        for b in range(k):
            gv = _shifted(g, a * bins + b).take(idx).view_as(wx[0])
            acc_x[a].addcmul_(gv, wy[b])
            acc_y[b].addcmul_(gv, wx[a])
    return (acc_x * dwx).sum(0), (acc_y * dwy).sum(0)


class SoftHistogram(torch.autograd.Function):
    """``(u (R, P), mask (R, P), bins, h, count_dtype) -> (R, bins)`` soft counts (:func:`soft_taps` kernel).

    ``u`` are positions in bin units, ``mask`` the weight of each value (1 counted, 0 not).
    The backward is hand-written and touches only the ``K`` tapped bins of each value
    (:func:`_soft_counts`, :func:`_soft_counts_backward`; under ``torch.compile`` the same kernel
    runs as the custom op ``torchsim::soft_histogram``, see :func:`soft_histogram`).

    Example:
        >>> import torch
        >>> from torchsim.ops import SoftHistogram
        >>> u = torch.tensor([[0.5, 2.5]], requires_grad=True)
        >>> SoftHistogram.apply(u, torch.ones(1, 2), 4, 0.5, torch.float32).tolist()
        [[1.0, 0.0, 1.0, 0.0]]
    """

    @staticmethod
    def forward(ctx, u, mask, bins: int, h: float, count_dtype: torch.dtype):
        out, idx, dw = _soft_counts(u, mask, bins, h, count_dtype)
        ctx.save_for_backward(idx, dw)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        idx, dw = ctx.saved_tensors
        return _soft_counts_backward(grad, idx, dw), None, None, None, None


class SoftJointHistogram(torch.autograd.Function):
    """``(ux, uy, mask) (N, P), bins, h, count_dtype -> (N, bins, bins)`` soft joint counts (rows: x, columns: y).

    Each value pair adds the outer product of its (at most ``K``) x-weights and y-weights:
    ``K²`` scatter-adds of ``N·P`` values into shifted views of the output, one index tensor
    for all of them. The taps are kept for the backward (``4K + 2`` values per pair, nothing
    of size ``P × bins``); the backward gathers the upstream gradient at the same ``K²`` bins
    (:func:`_soft_joint_counts`, :func:`_soft_joint_counts_backward`; under ``torch.compile``
    the custom op ``torchsim::soft_joint_histogram``, see :func:`soft_joint_histogram`).

    Example:
        >>> import torch
        >>> from torchsim.ops import SoftJointHistogram
        >>> u = torch.tensor([[0.5, 1.5]])
        >>> SoftJointHistogram.apply(u, u.flip(1), torch.ones(1, 2), 2, 0.5, torch.float32).tolist()
        [[[0.0, 1.0], [1.0, 0.0]]]
    """

    @staticmethod
    def forward(ctx, ux, uy, mask, bins: int, h: float, count_dtype: torch.dtype):
        out, idx, wx, dwx, wy, dwy = _soft_joint_counts(ux, uy, mask, bins, h, count_dtype)
        ctx.save_for_backward(idx, wx, dwx, wy, dwy)
        ctx.bins = bins
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        gx, gy = _soft_joint_counts_backward(grad, *ctx.saved_tensors, ctx.bins)
        return gx, gy, None, None, None, None


def soft_histogram(u: torch.Tensor, mask: torch.Tensor, bins: int, h: float, count_dtype: torch.dtype) -> torch.Tensor:
    """:class:`SoftHistogram` in eager mode; under ``torch.compile`` / ``torch.export`` the opaque custom op
    ``torchsim::soft_histogram`` (:mod:`torchsim.kernels.histogram_op`), the same kernel.

    Example:
        >>> import torch
        >>> from torchsim.ops import soft_histogram
        >>> soft_histogram(torch.tensor([[0.5, 2.5]]), torch.ones(1, 2), 4, 0.5, torch.float32).tolist()
        [[1.0, 0.0, 1.0, 0.0]]
    """
    if torch.compiler.is_compiling():
        return torch.ops.torchsim.soft_histogram(u, mask, bins, h, count_dtype)[0]
    return SoftHistogram.apply(u, mask, bins, h, count_dtype)


def soft_joint_histogram(
    ux: torch.Tensor, uy: torch.Tensor, mask: torch.Tensor, bins: int, h: float, count_dtype: torch.dtype
) -> torch.Tensor:
    """:class:`SoftJointHistogram` in eager mode; under ``torch.compile`` / ``torch.export`` the opaque custom op
    ``torchsim::soft_joint_histogram`` (:mod:`torchsim.kernels.histogram_op`), the same kernel.

    Example:
        >>> import torch
        >>> from torchsim.ops import soft_joint_histogram
        >>> u = torch.tensor([[0.5, 1.5]])
        >>> soft_joint_histogram(u, u.flip(1), torch.ones(1, 2), 2, 0.5, torch.float32).tolist()
        [[[0.0, 1.0], [1.0, 0.0]]]
    """
    if torch.compiler.is_compiling():
        return torch.ops.torchsim.soft_joint_histogram(ux, uy, mask, bins, h, count_dtype)[0]
    return SoftJointHistogram.apply(ux, uy, mask, bins, h, count_dtype)


# --------------------------------------------------------------------------- histograms


def histograms(x: torch.Tensor, bins: int, value_range: ValueRange, bandwidth: float) -> torch.Tensor:
    """Per-image, per-channel histograms: ``(N, C, ...)`` image -> ``(N, C, bins)`` counts in the compute dtype.

    ``bandwidth == 0`` counts exactly (:func:`bin_index`; uint8 through its 256 levels) and
    carries no gradient; ``bandwidth > 0`` is the differentiable :class:`SoftHistogram`.
    Arguments are not validated (see :func:`torchsim.histogram`).

    Example:
        >>> import torch
        >>> from torchsim.ops import histograms
        >>> x = torch.tensor([0, 0, 128, 255], dtype=torch.uint8).view(1, 1, 2, 2)
        >>> histograms(x, 4, None, 0.0).tolist()
        [[[2.0, 0.0, 1.0, 1.0]]]
    """
    n, c = x.shape[:2]
    r = n * c
    cdt = count_dtype(x[0, 0].numel(), compute_dtype(x.dtype))
    if bandwidth == 0 and x.dtype == torch.uint8:
        # count the 256 levels, then move each level's count to its bin
        counts = count_rows(x.reshape(r, -1).long(), 256, cdt)
        if _is_identity(value_range, bins):
            return counts.view(n, c, bins).to(compute_dtype(x.dtype))
        lut = level_bins(x, value_range, bins)  # (1 or N, 256): the same for every channel of an image
        lut = lut.unsqueeze(1).expand(n, c, 256).reshape(r, 256)
        out = torch.zeros(r, bins + 1, dtype=cdt, device=x.device).scatter_add_(1, lut, counts)
        return out[:, :bins].reshape(n, c, bins).to(compute_dtype(x.dtype))
    v = to_compute(x).reshape(n, c, -1)
    if bandwidth == 0:
        v = v.detach()
    lo, hi = bin_bounds(v, value_range, full_scale(x.dtype))
    if bandwidth == 0:
        out = count_rows(bin_index(v, lo, hi, bins).reshape(r, -1), bins + 1, cdt)
        return out[:, :bins].reshape(n, c, bins).to(v.dtype)
    u, inside = bin_positions(v, lo, hi, bins)
    u = torch.where(inside, u, torch.zeros_like(u))
    out = soft_histogram(u.reshape(r, -1), inside.reshape(r, -1).to(v.dtype), bins, float(bandwidth), cdt)
    return out.view(n, c, bins)


def joint_histogram(x: torch.Tensor, y: torch.Tensor, bins: int, value_range: ValueRange, bandwidth: float) -> torch.Tensor:
    """Joint histogram ``(N, bins, bins)`` of corresponding values over C·H·W (rows: ``x``, columns: ``y``).

    A pair is counted only when both values are inside their range (``"minmax"`` bins ``x``
    and ``y`` each over its own min..max). ``bandwidth == 0`` counts exactly (uint8 through
    its 256 × 256 level pairs); ``bandwidth > 0`` is the differentiable
    :class:`SoftJointHistogram`, whose memory is proportional to the number of values.
    Counts are in the compute dtype. Arguments are not validated.

    Example:
        >>> import torch
        >>> from torchsim.ops import joint_histogram
        >>> x = torch.tensor([0, 0, 255, 255], dtype=torch.uint8).view(1, 1, 2, 2)
        >>> joint_histogram(x, 255 - x, 2, None, 0.0).tolist()
        [[[0.0, 2.0], [2.0, 0.0]]]
    """
    n = x.shape[0]
    cdt = count_dtype(x[0].numel(), compute_dtype(x.dtype))
    b1 = bins + 1
    if bandwidth == 0 and x.dtype == torch.uint8:
        # count the 256 x 256 level pairs, then move each pair's count to its bins
        pairs = x.reshape(n, -1).long().mul_(256).add_(y.reshape(n, -1))
        counts = count_rows(pairs, 256 * 256, cdt).view(n, 256, 256)
        if _is_identity(value_range, bins):
            return counts.to(compute_dtype(x.dtype))
        lx = level_bins(x, value_range, bins).expand(n, 256)
        ly = level_bins(y, value_range, bins).expand(n, 256)
        rows = torch.zeros(n, b1, 256, dtype=cdt, device=x.device).scatter_add_(1, lx.unsqueeze(2).expand(n, 256, 256), counts)
        out = torch.zeros(n, b1, b1, dtype=cdt, device=x.device).scatter_add_(2, ly.unsqueeze(1).expand(n, b1, 256), rows)
        return out[:, :bins, :bins].to(compute_dtype(x.dtype))
    vx = to_compute(x).reshape(n, -1)
    vy = to_compute(y).reshape(n, -1)
    if bandwidth == 0:
        vx, vy = vx.detach(), vy.detach()
    lox, hix = bin_bounds(vx, value_range, full_scale(x.dtype))
    loy, hiy = bin_bounds(vy, value_range, full_scale(y.dtype))
    if bandwidth == 0:
        ix = bin_index(vx, lox, hix, bins)
        iy = bin_index(vy, loy, hiy, bins)
        out = count_rows(ix.mul_(b1).add_(iy), b1 * b1, cdt).view(n, b1, b1)
        return out[:, :bins, :bins].to(vx.dtype)
    ux, inx = bin_positions(vx, lox, hix, bins)
    uy, iny = bin_positions(vy, loy, hiy, bins)
    mask = inx & iny
    zero = torch.zeros_like(ux)
    ux = torch.where(mask, ux, zero)
    uy = torch.where(mask, uy, zero)
    return soft_joint_histogram(ux, uy, mask.to(vx.dtype), bins, float(bandwidth), cdt)


__all__ = [
    "ValueRange",
    "precise",
    "safe_sqrt",
    "bin_bounds",
    "bin_positions",
    "bin_edges",
    "bin_index",
    "level_bins",
    "count_rows",
    "count_dtype",
    "soft_taps",
    "SoftHistogram",
    "SoftJointHistogram",
    "soft_histogram",
    "soft_joint_histogram",
    "histograms",
    "joint_histogram",
]
