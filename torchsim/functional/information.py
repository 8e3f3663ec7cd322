"""Mutual information and normalised mutual information of two images.

Both are functions of one joint histogram per image pair, built over all C·H·W
corresponding values by :func:`torchsim.ops.joint_histogram`
(exact counts, or a soft joint histogram whose memory is proportional to the
number of values, not values × bins²). Entropies are taken in float64 (the
joint histogram has only ``bins²`` entries per image) and returned in the
compute dtype.
"""

from __future__ import annotations

from typing import Tuple

import torch

from .. import _validation as V
from .._common import nan_where_nonfinite, no_autocast, reduce
from ..ops.binning import ValueRange, joint_histogram, precise, safe_sqrt

NMI_NORMALIZATIONS = ("arithmetic", "geometric", "min", "max", "studholme")


def _xlogx(p: torch.Tensor) -> torch.Tensor:
    """``p · log p`` with ``0 log 0 = 0`` and a finite gradient at 0."""
    pos = p > 0
    return torch.where(pos, p * torch.log(torch.where(pos, p, torch.ones_like(p))), torch.zeros_like(p))


def _entropies(joint: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``H(x), H(y), H(x, y)`` in nats from ``(N, bins, bins)`` counts; an empty histogram gives zeros."""
    total = joint.sum((1, 2), keepdim=True)
    p = joint / total.clamp_min(torch.finfo(joint.dtype).tiny)
    hxy = -_xlogx(p).sum((1, 2))
    hx = -_xlogx(p.sum(2)).sum(1)
    hy = -_xlogx(p.sum(1)).sum(1)
    return hx, hy, hxy


def _mi(hx: torch.Tensor, hy: torch.Tensor, hxy: torch.Tensor) -> torch.Tensor:
    """``H(x) + H(y) - H(x, y)``, clipped at 0 as scikit-learn clips it (rounding only)."""
    return (hx + hy - hxy).clamp_min(0.0)


def mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    bins: int = 256,
    value_range: ValueRange = None,
    bandwidth: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Mutual information (nats) of the joint histogram of corresponding values.

    One joint histogram per image over all C·H·W value pairs ``(x_i, y_i)`` (binned
    as :func:`torchsim.histogram` bins; a pair counts only when both values are
    inside their range), normalised to probabilities:

    .. math::

        I(x; y) = \sum_{a, b} p_{ab} \log \frac{p_{ab}}{p_a\, p_b} = H(x) + H(y) - H(x, y).

    ``bandwidth > 0`` uses the soft joint histogram (triangular kernel of half-width
    ``bandwidth`` bins per axis, see :func:`torchsim.histogram`) and makes the result
    differentiable; its memory is proportional to the number of values.

    Convention:
        With ``bandwidth=0`` equals ``sklearn.metrics.mutual_info_score(a, b)`` on the
        flattened bin labels of ``x[i]`` and ``y[i]`` (for uint8 images with the
        default 256 bins: the raw values), natural log, clipped at 0 as sklearn does.

    Args:
        x, y: ``(N, C, H, W)`` images, same shape, dtype family and device.
        bins: bins per axis of the joint histogram.
        value_range: ``None`` (``(0, 1)`` floating, ``(0, 255)`` uint8), ``(lo, hi)``, or
            ``"minmax"`` (each image over its own min..max, ``x`` and ``y`` separately).
        bandwidth: soft-histogram kernel half-width in bins; 0 = exact (no gradient).
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (shape ``(N,)``).

    Returns:
        MI in nats, ``>= 0``; float32 (float64 for float64 input), scalar or ``(N,)``.
        An image pair with no pair inside the range gives 0.

    Raises:
        TypeError / ValueError: wrong type, rank, shape, device or dtype family,
            ``bins < 1``, a bad ``value_range``, negative ``bandwidth``, unknown
            ``reduction``; each message names the function and the argument.

    Example:
        >>> import torch, torchsim
        >>> x = torch.tensor([0, 0, 255, 255], dtype=torch.uint8).view(1, 1, 2, 2)
        >>> round(torchsim.mutual_information(x, x).item(), 6)  # log 2
        0.693147

    References:
        T. Cover, J. Thomas, "Elements of Information Theory", 2nd ed., Wiley, 2006,
        ch. 2. P. Viola, W. Wells, "Alignment by maximization of mutual information",
        IJCV 24(2), 1997. doi:10.1023/A:1007958904918
    """
    fn = "mutual_information"
    x, y = V.check_pair(fn, x, y)
    bins, value_range, bandwidth = V.check_histogram_args(fn, bins, value_range, bandwidth)
    V.check_allocation(fn, "bins", f"bins={bins}", 8.0 * x.shape[0] * (bins + 1) ** 2, x.device)
    V.check_reduction(fn, reduction)
    with no_autocast(x.device):
        joint = joint_histogram(x, y, bins, value_range, bandwidth)
        value = _mi(*_entropies(precise(joint))).to(joint.dtype)
        return reduce(nan_where_nonfinite(value, x, y), reduction)


def normalized_mutual_information(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    bins: int = 256,
    value_range: ValueRange = None,
    normalization: str = "arithmetic",
    bandwidth: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Normalised mutual information of the joint histogram of corresponding values.

    With ``I = H(x) + H(y) - H(x, y)`` (see :func:`mutual_information`):

    - ``"arithmetic"`` (default): :math:`I / \tfrac12 (H(x) + H(y))`
    - ``"geometric"``: :math:`I / \sqrt{H(x) H(y)}`
    - ``"min"``: :math:`I / \min(H(x), H(y))`; ``"max"``: :math:`I / \max(H(x), H(y))`
    - ``"studholme"``: :math:`(H(x) + H(y)) / H(x, y)`, in ``[1, 2]``.

    The first four lie in ``[0, 1]``, 1 for images that determine each other.
    Edge cases follow scikit-learn: two constant images (both entropies 0, also an
    empty joint histogram) give 1.0; otherwise ``I = 0`` gives 0 (e.g. one constant
    image, where ``"min"`` would divide 0 by 0). For ``"studholme"`` two constant
    images give 2.0, the value of identical images (scikit-image returns NaN there).

    Convention:
        ``bandwidth=0``: the first four equal
        ``sklearn.metrics.normalized_mutual_info_score(a, b, average_method=...)`` on the
        flattened bin labels (for uint8 with the default 256 bins: the raw values);
        ``"studholme"`` with ``value_range="minmax"`` equals
        ``skimage.metrics.normalized_mutual_information(x[i], y[i], bins=bins)``.

    Args:
        x, y: ``(N, C, H, W)`` images, same shape, dtype family and device.
        bins, value_range, bandwidth: as in :func:`mutual_information`.
        normalization: ``"arithmetic"``, ``"geometric"``, ``"min"``, ``"max"`` or
            ``"studholme"``.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (shape ``(N,)``).

    Returns:
        NMI, float32 (float64 for float64 input), scalar or ``(N,)``.

    Raises:
        TypeError / ValueError: as :func:`mutual_information`, plus an unknown
            ``normalization``.

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(2, 1, 16, 16)
        >>> torchsim.normalized_mutual_information(x, x, bins=32).item()
        1.0

    References:
        A. Strehl, J. Ghosh, "Cluster ensembles", JMLR 3, 2002 (sklearn's NMI).
        C. Studholme, D. Hill, D. Hawkes, "An overlap invariant entropy measure of 3D
        medical image alignment", Pattern Recognition 32(1), 1999.
        doi:10.1016/S0031-3203(98)00091-0
    """
    fn = "normalized_mutual_information"
    x, y = V.check_pair(fn, x, y)
    bins, value_range, bandwidth = V.check_histogram_args(fn, bins, value_range, bandwidth)
    V.check_allocation(fn, "bins", f"bins={bins}", 8.0 * x.shape[0] * (bins + 1) ** 2, x.device)
    V.check_choice(fn, "normalization", normalization, NMI_NORMALIZATIONS)
    V.check_reduction(fn, reduction)
    with no_autocast(x.device):
        joint = joint_histogram(x, y, bins, value_range, bandwidth)
        hx, hy, hxy = _entropies(precise(joint))
        one = torch.ones_like(hx)
        if normalization == "studholme":
            ok = hxy > 0
            value = torch.where(ok, (hx + hy) / torch.where(ok, hxy, one), 2.0 * one)
        else:
            mi = _mi(hx, hy, hxy)
            if normalization == "arithmetic":
                norm = 0.5 * (hx + hy)
            elif normalization == "geometric":
                norm = safe_sqrt(hx * hy)
            elif normalization == "min":
                norm = torch.minimum(hx, hy)
            else:
                norm = torch.maximum(hx, hy)
            ok = (norm > 0) & (mi > 0)
            both_constant = (hx <= 0) & (hy <= 0)
            value = torch.where(ok, mi / torch.where(ok, norm, one), torch.zeros_like(mi))
            value = torch.where(both_constant, one, value)
        return reduce(nan_where_nonfinite(value.to(joint.dtype), x, y), reduction)
