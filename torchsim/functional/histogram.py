"""Histograms, exact and soft, and OpenCV's histogram comparisons.

The binning itself (edges, indices, exact counts and the soft histogram with its
hand-written backward) is :mod:`torchsim.ops.binning`; this file validates, calls it,
and compares normalised histograms with OpenCV's ``compareHist`` formulas.
"""

from __future__ import annotations

import torch

from .. import _validation as V
from .._common import nan_where_nonfinite, no_autocast, reduce
from ..ops.binning import ValueRange, histograms, precise, safe_sqrt

HISTOGRAM_METHODS = ("correlation", "chi_square", "chi_square_alt", "intersection", "bhattacharyya", "kl_div", "overlap")

_DBL_EPSILON = 2.220446049250313e-16  # OpenCV's DBL_EPSILON / FLT_EPSILON guards in compareHist
_FLT_EPSILON = 1.1920928955078125e-07


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
        256 bins on uint8 (or on ``uint8 / 255``) count each level on its own. The
        edges of a fixed range are float64 for every dtype, as OpenCV's: a float32
        value one float32 step from an edge lands where ``cv2.calcHist`` puts it
        (NumPy, which rounds the edges to float32, may put it in the next bin), i.e.
        float32 input is binned as ``numpy.histogram`` bins it after ``astype(float64)``.
        (OpenCV's range is half-open: unlike here, it does not count a value equal to ``hi``.)
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
    bins, value_range, bandwidth = V.check_histogram_args(fn, bins, value_range, bandwidth)
    V.check_allocation(fn, "bins", f"bins={bins}", 8.0 * x.shape[0] * x.shape[1] * (bins + 1), x.device)
    with no_autocast(x.device):
        h = histograms(x, bins, value_range, bandwidth)
        if value_range == "minmax":  # an image with a NaN/inf pixel has no min..max: a NaN row
            h = nan_where_nonfinite(h.flatten(1), x).view_as(h)
        return h


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
        sp, sq = safe_sqrt(p), safe_sqrt(q)
        s12 = s1 * s2
        ok = s12.abs() > _FLT_EPSILON
        gap = 0.5 * ((sp - sq) ** 2).sum(-1) - 0.5 * (safe_sqrt(s1) - safe_sqrt(s2)) ** 2
        v = torch.where(ok, gap / safe_sqrt(torch.where(ok, s12, torch.ones_like(s12))), 1.0 - (sp * sq).sum(-1))
        return safe_sqrt(v)
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
    bins, value_range, bandwidth = V.check_histogram_args(fn, bins, value_range, bandwidth)
    V.check_allocation(fn, "bins", f"bins={bins}", 8.0 * x.shape[0] * x.shape[1] * (bins + 1), x.device)
    V.check_choice(fn, "method", method, HISTOGRAM_METHODS)
    V.check_reduction(fn, reduction)
    with no_autocast(x.device):
        hx = histograms(x, bins, value_range, bandwidth)
        hy = histograms(y, bins, value_range, bandwidth)
        dtype = hx.dtype
        value = _compare(precise(hx), precise(hy), method).mean(1).to(dtype)
        return reduce(nan_where_nonfinite(value, x, y), reduction)
