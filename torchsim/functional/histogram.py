"""Histograms, exact and soft, and OpenCV's histogram comparisons.

Exact histograms bin every value the way ``numpy.histogram`` does (equal-width
bins, last bin closed, values outside the range not counted) and count with one
row-wise ``scatter_add_`` of ``(image · channel, bin)`` indices for the whole
batch (a sync-free ``bincount``); uint8 images count their 256 levels first and
move each level's count to its bin, as OpenCV's ``calcHist`` does. Soft
histograms (``bandwidth > 0``) spread each value over the few bins its compact
kernel reaches, so memory stays proportional to the number of values (never
values × bins), and their backward, hand-written, gathers the upstream
gradient at those same few bins. The joint histogram used by
:mod:`torchsim.functional.information` lives here too, built the same way.
"""

from __future__ import annotations

import math
from typing import Tuple, Union

import torch
from torch.autograd.function import once_differentiable

from .. import _validation as V
from .._common import compute_dtype, no_autocast, reduce, to_compute

ValueRange = Union[None, str, Tuple[float, float]]

HISTOGRAM_METHODS = ("correlation", "chi_square", "chi_square_alt", "intersection", "bhattacharyya", "kl_div", "overlap")

_DBL_EPSILON = 2.220446049250313e-16  # OpenCV's DBL_EPSILON / FLT_EPSILON guards in compareHist
_FLT_EPSILON = 1.1920928955078125e-07


# --------------------------------------------------------------------------- binning


def _precise(t: torch.Tensor) -> torch.Tensor:
    """Histogram post-processing (normalising, comparing, entropies) runs in float64 where the device has it.

    It touches ``bins`` (or ``bins²``) numbers per image, not pixels, so this costs nothing and
    matches the double accumulation of OpenCV, NumPy and scikit-learn.
    """
    return t if t.device.type == "mps" else t.double()


def _bounds(v: torch.Tensor, value_range: ValueRange, is_uint8: bool):
    """``(lo, hi)`` as Python floats, or as ``(N, 1, ...)`` tensors for ``"minmax"``.

    ``v`` is ``(N, ...)`` in the compute dtype. ``"minmax"`` takes each image's min and max
    over all its values; a constant image gets ``(v - 0.5, v + 0.5)`` as NumPy does.
    """
    if value_range is None:
        return (0.0, 255.0) if is_uint8 else (0.0, 1.0)
    if isinstance(value_range, str):  # "minmax"
        flat = v.flatten(1)
        lo, hi = flat.amin(1), flat.amax(1)  # soft histograms also differentiate through these
        same = lo == hi
        lo = torch.where(same, lo - 0.5, lo)
        hi = torch.where(same, hi + 0.5, hi)
        shape = (-1,) + (1,) * (v.dim() - 1)
        return lo.reshape(shape), hi.reshape(shape)
    return value_range


def _positions(v: torch.Tensor, lo, hi, bins: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Position ``u = (v - lo) / (hi - lo) * bins`` in bin units (as NumPy computes it) and the in-range mask."""
    u = (v - lo) / (hi - lo) * bins
    inside = (v >= lo) & (v <= hi)  # False for NaN
    return u, inside


def _edges(lo, hi, bins: int, like: torch.Tensor) -> torch.Tensor:
    """Bin edges as ``numpy.linspace(lo, hi, bins + 1)`` makes them: ``arange * step + lo``, last = ``hi``.

    Fixed ranges are computed in float64 and cast (NumPy's ``histogram``); ``"minmax"``
    edges are computed in the compute dtype, shape ``(N, bins + 1)``.
    """
    if isinstance(lo, torch.Tensor):
        lo2, hi2 = lo.reshape(-1, 1), hi.reshape(-1, 1)
        j = torch.arange(bins + 1, device=like.device, dtype=like.dtype)
        e = j * ((hi2 - lo2) / bins) + lo2
        return torch.cat([e[:, :-1], hi2], dim=1)
    j = torch.arange(bins + 1, device=like.device, dtype=torch.float64)
    e = j * ((hi - lo) / bins) + lo
    e[-1] = hi
    return e.to(like.dtype)


def _bin_index(v: torch.Tensor, lo, hi, bins: int) -> torch.Tensor:
    """Exact bin of every value of ``v`` (``(N, ...)``); values not counted get the dump bin ``bins``.

    The arithmetic guess ``floor(u)`` is corrected against the edges exactly as
    ``numpy.histogram`` corrects it, so values on (or within an ulp of) an edge land in the
    same bin as with NumPy / ``numpy.histogramdd``. Values outside ``[lo, hi]`` and NaN go to
    index ``bins``, which the callers allocate and drop.
    """
    u, inside = _positions(v, lo, hi, bins)
    f = torch.where(inside, u, torch.zeros_like(u)).floor_().clamp_(0, bins - 1)
    idx = f.long()
    edges = _edges(lo, hi, bins, v)
    if edges.dim() == 1:
        lower, upper = edges.take(idx), edges[1:].take(idx)
    else:
        flat = idx.reshape(v.shape[0], -1)
        lower = edges.gather(1, flat).view_as(v)
        upper = edges[:, 1:].gather(1, flat).view_as(v)
    idx.sub_((v < lower).long()).add_(((v >= upper) & (f < bins - 1)).long())
    return idx.masked_fill_(~inside, bins)


def _level_bins(x: torch.Tensor, value_range: ValueRange, bins: int) -> torch.Tensor:
    """For uint8 ``x``: the bin of each of the 256 levels, ``(1, 256)`` or ``(N, 256)`` for ``"minmax"``.

    Binned with :func:`_bin_index` on the levels themselves (float32), so the result is the
    same as binning every pixel, at the cost of 256 values (OpenCV's calcHist does the same).
    """
    levels = torch.arange(256, device=x.device, dtype=torch.float32).unsqueeze(0)
    if value_range == "minmax":
        flat = x.reshape(x.shape[0], -1)
        # each image's (min, max) pair has the image's min and max: its "minmax" bounds are the image's
        lo, hi = _bounds(torch.stack([flat.amin(1), flat.amax(1)], 1).float(), "minmax", True)
        levels = levels.expand(x.shape[0], 256)
    else:
        lo, hi = _bounds(levels, value_range, True)
    return _bin_index(levels, lo, hi, bins)


def _is_identity(value_range: ValueRange, bins: int) -> bool:
    """uint8 levels are their own bins: 256 bins over the default (0, 255)."""
    return bins == 256 and value_range in (None, (0.0, 255.0))


def _count_rows(index: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """Row-wise ``bincount`` without a host sync: ``(R, P)`` int64 indices -> ``(R, size)`` counts."""
    out = torch.zeros(index.shape[0], size, dtype=dtype, device=index.device)
    return out.scatter_add_(1, index, torch.ones(index.shape, dtype=dtype, device=index.device))


def _count_dtype(values_per_row: int, dtype: torch.dtype) -> torch.dtype:
    """float32 counts are exact up to 2**24 per bin; beyond that count in float64."""
    return torch.float64 if values_per_row > 2**24 else dtype


# --------------------------------------------------------------------------- soft kernel


def _taps(u: torch.Tensor, bins: int, h: float) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The bins a soft value reaches, its weights there and their derivatives in ``u``.

    Each value at position ``u`` is spread as a triangular density of half-width ``h`` bins
    (a linear B-spline); a bin receives the mass of that density between its edges, and the
    mass beyond the first / last edge is kept in the first / last bin. With ``s`` the clamped,
    scaled distance ``(edge - u) / h`` in ``[-1, 1]`` (-1 at edge 0, +1 at edge ``bins``), the
    CDF is ``G(s) = 1/2 + s - s|s|/2``, so the weight of a bin is ``G(s_hi) - G(s_lo)`` and its
    ``u``-derivative ``(|s_hi| - |s_lo|) / h``. At most ``K = ceil(2h) + 1`` bins are touched;
    the window of ``K`` bins starting at ``j0`` is clamped inside ``[0, bins)``, so every tap
    is a valid bin (weights outside the support are exactly zero).

    Returns ``j0`` (long, shape of ``u``) and the weights and derivatives, ``(K, *u.shape)``,
    for bins ``j0 + t``.
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


class _SoftHistogram(torch.autograd.Function):
    """``(u (R, P), mask (R, P)) -> (R, bins)`` soft counts; backward touches only the tapped bins."""

    @staticmethod
    def forward(ctx, u, mask, bins: int, h: float, count_dtype: torch.dtype):
        r = u.shape[0]
        j0, w, dw = _taps(u, bins, h)
        idx = (torch.arange(r, device=u.device).unsqueeze(1) * bins + j0).view(-1)
        w = w * mask
        out = torch.zeros(r * bins, dtype=count_dtype, device=u.device)
        for t in range(w.shape[0]):
            _shifted(out, t).scatter_add_(0, idx, w[t].reshape(-1).to(count_dtype))
        ctx.save_for_backward(idx, dw.mul_(mask))
        return out.view(r, bins).to(u.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        idx, dw = ctx.saved_tensors
        g = grad.contiguous().view(-1).to(dw.dtype)
        gu = torch.zeros_like(dw[0])
        for t in range(dw.shape[0]):
            gu.view(-1).addcmul_(_shifted(g, t).take(idx), dw[t].reshape(-1))
        return gu, None, None, None, None


class _SoftJointHistogram(torch.autograd.Function):
    """``(ux, uy, mask) (N, P) -> (N, bins, bins)`` soft joint counts (rows: x, columns: y).

    Each value pair adds the outer product of its (at most ``K``) x-weights and y-weights:
    ``K²`` scatter-adds of ``N·P`` values into shifted views of the output, one index tensor
    for all of them. The taps are kept for the backward (``4K + 2`` values per pair, nothing
    of size ``P × bins``); the backward gathers the upstream gradient at the same ``K²`` bins.
    """

    @staticmethod
    def forward(ctx, ux, uy, mask, bins: int, h: float, count_dtype: torch.dtype):
        n = ux.shape[0]
        jx, wx, dwx = _taps(ux, bins, h)
        jy, wy, dwy = _taps(uy, bins, h)
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
        ctx.save_for_backward(idx, wx, dwx, wy, dwy)
        ctx.bins = bins
        return out.view(n, bins, bins).to(ux.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        idx, wx, dwx, wy, dwy = ctx.saved_tensors
        bins = ctx.bins
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
        return (acc_x * dwx).sum(0), (acc_y * dwy).sum(0), None, None, None, None


# --------------------------------------------------------------------------- kernels shared with information.py


def _histograms(x: torch.Tensor, bins: int, value_range: ValueRange, bandwidth: float) -> torch.Tensor:
    """``(N, C, ...)`` image -> ``(N, C, bins)`` counts in the compute dtype (no validation)."""
    n, c = x.shape[:2]
    r = n * c
    cdt = _count_dtype(x[0, 0].numel(), compute_dtype(x.dtype))
    if bandwidth == 0 and x.dtype == torch.uint8:
        # count the 256 levels, then move each level's count to its bin
        counts = _count_rows(x.reshape(r, -1).long(), 256, cdt)
        if _is_identity(value_range, bins):
            return counts.view(n, c, bins).to(compute_dtype(x.dtype))
        lut = _level_bins(x, value_range, bins)  # (1 or N, 256)
        lut = lut.unsqueeze(1).expand(-1, c, 256).reshape(-1, 256).expand(r, 256)
        out = torch.zeros(r, bins + 1, dtype=cdt, device=x.device).scatter_add_(1, lut, counts)
        return out[:, :bins].reshape(n, c, bins).to(compute_dtype(x.dtype))
    v = to_compute(x).reshape(n, c, -1)
    if bandwidth == 0:
        v = v.detach()
    lo, hi = _bounds(v, value_range, x.dtype == torch.uint8)
    if bandwidth == 0:
        out = _count_rows(_bin_index(v, lo, hi, bins).reshape(r, -1), bins + 1, cdt)
        return out[:, :bins].reshape(n, c, bins).to(v.dtype)
    u, inside = _positions(v, lo, hi, bins)
    u = torch.where(inside, u, torch.zeros_like(u))
    out = _SoftHistogram.apply(u.reshape(r, -1), inside.reshape(r, -1).to(v.dtype), bins, float(bandwidth), cdt)
    return out.view(n, c, bins)


def _joint_histogram(x: torch.Tensor, y: torch.Tensor, bins: int, value_range: ValueRange, bandwidth: float) -> torch.Tensor:
    """Joint histogram ``(N, bins, bins)`` of corresponding values over C·H·W (rows: ``x``).

    A pair is counted only when both values are inside their range.
    """
    n = x.shape[0]
    cdt = _count_dtype(x[0].numel(), compute_dtype(x.dtype))
    b1 = bins + 1
    if bandwidth == 0 and x.dtype == torch.uint8:
        # count the 256 x 256 level pairs, then move each pair's count to its bins
        pairs = x.reshape(n, -1).long().mul_(256).add_(y.reshape(n, -1))
        counts = _count_rows(pairs, 256 * 256, cdt).view(n, 256, 256)
        if _is_identity(value_range, bins):
            return counts.to(compute_dtype(x.dtype))
        lx = _level_bins(x, value_range, bins).expand(n, 256)
        ly = _level_bins(y, value_range, bins).expand(n, 256)
        rows = torch.zeros(n, b1, 256, dtype=cdt, device=x.device).scatter_add_(1, lx.unsqueeze(2).expand(n, 256, 256), counts)
        out = torch.zeros(n, b1, b1, dtype=cdt, device=x.device).scatter_add_(2, ly.unsqueeze(1).expand(n, b1, 256), rows)
        return out[:, :bins, :bins].to(compute_dtype(x.dtype))
    vx = to_compute(x).reshape(n, -1)
    vy = to_compute(y).reshape(n, -1)
    u8 = x.dtype == torch.uint8
    if bandwidth == 0:
        vx, vy = vx.detach(), vy.detach()
    lox, hix = _bounds(vx, value_range, u8)
    loy, hiy = _bounds(vy, value_range, u8)
    if bandwidth == 0:
        ix = _bin_index(vx, lox, hix, bins)
        iy = _bin_index(vy, loy, hiy, bins)
        out = _count_rows(ix.mul_(b1).add_(iy), b1 * b1, cdt).view(n, b1, b1)
        return out[:, :bins, :bins].to(vx.dtype)
    ux, inx = _positions(vx, lox, hix, bins)
    uy, iny = _positions(vy, loy, hiy, bins)
    mask = inx & iny
    zero = torch.zeros_like(ux)
    ux = torch.where(mask, ux, zero)
    uy = torch.where(mask, uy, zero)
    return _SoftJointHistogram.apply(ux, uy, mask.to(vx.dtype), bins, float(bandwidth), cdt)


def _check_histogram_args(fn: str, bins: object, value_range: object, bandwidth: object) -> Tuple[int, ValueRange, float]:
    b = V.check_bins(fn, bins)
    vr = V.check_value_range(fn, value_range)
    V.check_positive(fn, "bandwidth", bandwidth, allow_zero=True)
    return b, vr, float(bandwidth)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- public


def histogram(
    x: torch.Tensor,
    *,
    bins: int = 256,
    value_range: ValueRange = None,
    bandwidth: float = 0.0,
) -> torch.Tensor:
    r"""Per-image, per-channel histogram, exact or soft (differentiable).

    ``bins`` equal-width bins over ``[lo, hi]``; value ``v`` falls in bin
    ``floor((v - lo) / (hi - lo) · bins)``, the last bin is closed (``v = hi`` is
    counted in it) and values outside ``[lo, hi]`` (or NaN) are not counted.

    With ``bandwidth = b > 0`` the histogram is soft: each value is spread as a
    triangular density of half-width ``b`` bins (a linear B-spline, i.e. the value
    plus the difference of two uniform variables) and each bin receives the mass of
    that density between its edges; mass beyond the first or last edge stays in the
    first or last bin, so every counted value still contributes exactly 1:

    .. math::

        h_j = \sum_i \big[G((e_{j+1} - u_i)/b) - G((e_j - u_i)/b)\big], \qquad
        G(s) = \tfrac12 + s - \tfrac12 s|s| \ \text{ on } [-1, 1],

    with ``u_i`` the position of value ``i`` in bin units and ``e_j = j`` the edges
    (``e_0 = -∞``, ``e_bins = +∞``). Why this kernel: its support is compact
    (``ceil(2b) + 1`` bins per value, so memory and time grow with the number of
    values, not values × bins), the weights are piecewise quadratic and continuously
    differentiable in the value, they sum to 1 exactly for any ``b``, and as ``b → 0``
    they tend to the exact bin indicator, so the soft histogram converges to the
    exact one. The backward pass is hand-written and touches only those bins.

    Convention:
        ``bandwidth=0`` equals ``numpy.histogram(x[i, c], bins, range=(lo, hi))[0]``
        (same edge arithmetic, same handling of values on an edge) and, for uint8
        with the default range, ``cv2.calcHist([img], [c], None, [256], [0, 256])``:
        256 bins on uint8 (or on ``uint8 / 255``) count each level on its own.
        ``value_range="minmax"`` bins each image over its own min..max taken over all
        its channels (a constant image over ``v ± 0.5``), as ``numpy.histogramdd``
        does inside ``skimage.metrics.normalized_mutual_information``.

    Args:
        x: ``(N, C, H, W)`` image (float16/bfloat16/float32/float64 or uint8).
        bins: number of bins, a positive integer.
        value_range: ``None`` (``(0, 1)`` for floating input, ``(0, 255)`` for uint8),
            a ``(lo, hi)`` pair with ``lo < hi``, or ``"minmax"``.
        bandwidth: kernel half-width in bins; ``0`` counts exactly (the result then
            carries no gradient), ``> 0`` gives a differentiable soft histogram.

    Returns:
        ``(N, C, bins)`` counts, float32 (float64 for float64 input).

    Raises:
        TypeError: ``x`` not a tensor or of an unsupported dtype.
        ValueError: wrong rank, empty ``x``, ``bins < 1``, a bad ``value_range``
            (``lo >= hi``, non-finite, unknown string) or a negative ``bandwidth``.

    Example:
        >>> import torch, torchsim
        >>> x = torch.tensor([0, 0, 128, 255], dtype=torch.uint8).view(1, 1, 2, 2)
        >>> torchsim.histogram(x, bins=4).tolist()
        [[[2.0, 0.0, 1.0, 1.0]]]

    References:
        OpenCV ``calcHist``; NumPy ``histogram``. For soft histograms: P. Thévenaz,
        M. Unser, "Optimization of mutual information for multiresolution image
        registration", IEEE TIP 9(12), 2000. doi:10.1109/83.887976
    """
    fn = "histogram"
    x = V.check_image(fn, "x", x)
    bins, value_range, bandwidth = _check_histogram_args(fn, bins, value_range, bandwidth)
    with no_autocast(x.device):
        return _histograms(x, bins, value_range, bandwidth)


def _safe_sqrt(t: torch.Tensor) -> torch.Tensor:
    """``sqrt`` with a zero (not infinite) gradient at 0."""
    pos = t > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, t, torch.ones_like(t))), torch.zeros_like(t))


def _compare(h1: torch.Tensor, h2: torch.Tensor, method: str) -> torch.Tensor:
    """OpenCV ``compareHist`` of ``(..., bins)`` histograms normalised to sum 1 -> ``(...)``."""
    p = h1 / h1.sum(-1, keepdim=True).clamp_min(torch.finfo(h1.dtype).tiny)
    q = h2 / h2.sum(-1, keepdim=True).clamp_min(torch.finfo(h2.dtype).tiny)
    zero = torch.zeros_like(p)
    if method == "correlation":
        pc = p - p.mean(-1, keepdim=True)
        qc = q - q.mean(-1, keepdim=True)
        num = (pc * qc).sum(-1)
        den2 = (pc * pc).sum(-1) * (qc * qc).sum(-1)
        ok = den2.abs() > _DBL_EPSILON
        return torch.where(ok, num / torch.sqrt(torch.where(ok, den2, torch.ones_like(den2))), torch.ones_like(num))
    if method in ("chi_square", "chi_square_alt"):
        d = p - q
        b = p if method == "chi_square" else p + q
        ok = b.abs() > _DBL_EPSILON
        terms = torch.where(ok, d * d / torch.where(ok, b, torch.ones_like(b)), zero).sum(-1)
        return terms if method == "chi_square" else 2.0 * terms
    if method == "intersection":
        return torch.minimum(p, q).sum(-1)
    if method == "bhattacharyya":
        # OpenCV: sqrt(max(1 - sum(sqrt(p q)) / sqrt(s1 s2), 0)). The same number is formed as
        # (sum (√p - √q)² - (√s1 - √s2)²) / (2 sqrt(s1 s2)) so that identical histograms give
        # exactly 0 and no cancellation of 1 - (1 - ε) amplifies rounding through the sqrt.
        s1, s2 = p.sum(-1), q.sum(-1)
        sp, sq = _safe_sqrt(p), _safe_sqrt(q)
        s12 = s1 * s2
        ok = s12.abs() > _FLT_EPSILON
        gap = 0.5 * ((sp - sq) ** 2).sum(-1) - 0.5 * (_safe_sqrt(s1) - _safe_sqrt(s2)) ** 2
        v = torch.where(ok, gap / _safe_sqrt(torch.where(ok, s12, torch.ones_like(s12))), 1.0 - (sp * sq).sum(-1))
        return _safe_sqrt(v)
    if method == "kl_div":
        okp = p > _DBL_EPSILON
        qq = torch.where(q > _DBL_EPSILON, q, torch.full_like(q, 1e-10))
        pp = torch.where(okp, p, torch.ones_like(p))
        return torch.where(okp, p * (torch.log(pp) - torch.log(qq)), zero).sum(-1)
    # "overlap": mean over bins of 1 - |p - q| / max(p, q), 1 where both are equal (also both 0)
    mx = torch.maximum(p, q)
    ok = mx > 0
    return torch.where(ok, 1.0 - (p - q).abs() / torch.where(ok, mx, torch.ones_like(mx)), torch.ones_like(mx)).mean(-1)


def histogram_similarity(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    bins: int = 256,
    value_range: ValueRange = None,
    method: str = "correlation",
    bandwidth: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Compare per-channel histograms of two images, averaged over channels.

    Each channel's histogram (see :func:`histogram`) is normalised to sum 1
    (``p = h_x / Σ h_x``, ``q = h_y / Σ h_y``), compared with OpenCV's formula for
    ``method``, and the per-channel values are averaged:

    - ``"correlation"``: :math:`\frac{\sum (p-\bar p)(q-\bar q)}{\sqrt{\sum (p-\bar p)^2 \sum (q-\bar q)^2}}`
      (1 if the denominator is ``<= DBL_EPSILON``); 1 = same.
    - ``"chi_square"``: :math:`\sum (p-q)^2 / p` over bins with ``p > DBL_EPSILON``; 0 = same.
    - ``"chi_square_alt"``: :math:`2 \sum (p-q)^2 / (p+q)` over bins with ``p + q > DBL_EPSILON``.
    - ``"intersection"``: :math:`\sum \min(p, q)`; 1 = same.
    - ``"bhattacharyya"`` (OpenCV's Hellinger):
      :math:`\sqrt{1 - \sum \sqrt{p q} / \sqrt{\sum p \sum q}}`; 0 = same.
    - ``"kl_div"``: :math:`\sum p \log(p / q)` over bins with ``p > DBL_EPSILON``,
      ``q`` replaced by ``1e-10`` where ``q <= DBL_EPSILON``; 0 = same.
    - ``"overlap"``: mean over bins of :math:`1 - |p - q| / \max(p, q)`, 1 where both
      are equal (also where both are 0); 1 = same.

    Convention:
        Per channel equals ``cv2.compareHist(h1 / h1.sum(), h2 / h2.sum(), M)`` on the
        float32 ``cv2.calcHist`` histograms, with ``M`` = ``HISTCMP_CORREL``,
        ``HISTCMP_CHISQR``, ``HISTCMP_CHISQR_ALT``, ``HISTCMP_INTERSECT``,
        ``HISTCMP_BHATTACHARYYA``, ``HISTCMP_KL_DIV``; the comparison runs in float64
        as OpenCV's does.

    Args:
        x, y: ``(N, C, H, W)`` images, same shape, dtype family and device.
        bins, value_range, bandwidth: as in :func:`histogram`; ``bandwidth > 0`` makes
            the result differentiable.
        method: one of the methods above.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (shape ``(N,)``).

    Returns:
        float32 (float64 for float64 input) scalar or ``(N,)`` tensor.

    Raises:
        TypeError / ValueError: as :func:`histogram`, plus shape / device / dtype
            mismatch of ``x`` and ``y``, unknown ``method`` or ``reduction``.

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(2, 3, 16, 16)
        >>> torchsim.histogram_similarity(x, x, bins=32).item()
        1.0

    References:
        OpenCV ``compareHist`` (imgproc/src/histogram.cpp). M. Swain, D. Ballard,
        "Color indexing", IJCV 7(1), 1991 (intersection). doi:10.1007/BF00130487
    """
    fn = "histogram_similarity"
    x, y = V.check_pair(fn, x, y)
    bins, value_range, bandwidth = _check_histogram_args(fn, bins, value_range, bandwidth)
    V.check_choice(fn, "method", method, HISTOGRAM_METHODS)
    V.check_reduction(fn, reduction)
    with no_autocast(x.device):
        hx = _histograms(x, bins, value_range, bandwidth)
        hy = _histograms(y, bins, value_range, bandwidth)
        dtype = hx.dtype
        value = _compare(_precise(hx), _precise(hy), method).mean(1).to(dtype)
        return reduce(value, reduction)
