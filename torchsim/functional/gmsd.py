"""GMSD: gradient magnitude similarity deviation (Xue, Zhang, Mou, Bovik 2014)."""

from __future__ import annotations

from typing import Optional, Union

import torch

from .. import _validation as V
from .._common import no_autocast, range_tensor, reduce, to_compute_pair
from ..ops import box_window, opencv_gray, safe_sqrt, separable_filter


def gmsd(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    c: float = 170 / 255**2,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Gradient magnitude similarity deviation: the spread of local gradient similarity.

    On the luma ``r`` of ``x`` and ``d`` of ``y`` (divided by ``L = data_range``),
    each averaged over 2×2 blocks, with the Prewitt filters
    :math:`h_x = \frac{1}{3}[1, 1, 1]^T [1, 0, -1]` and :math:`h_y = h_x^T`:

    .. math::

        m_r = \sqrt{(h_x * r)^2 + (h_y * r)^2}, \qquad
        \mathrm{GMS} = \frac{2\,m_r m_d + c}{m_r^2 + m_d^2 + c}, \qquad
        \mathrm{GMSD} = \sqrt{\operatorname{mean}\big((\mathrm{GMS} - \operatorname{mean}\mathrm{GMS})^2\big)}

    per image, over the half-size map. ``c = 170 / 255²`` is the paper's
    ``T = 170`` for 8-bit images on the [0, 1] scale (``c · L²`` on the data's own
    scale). Lower is better: identical images give 0. GMSD is already a distance,
    so :class:`torchsim.GMSDLoss` is the value itself.

    Convention:
        Equals ``piq.gmsd(x, y, data_range=L, reduction="none")`` and the authors'
        ``GMSD.m`` on the same luma: RGB input becomes ``0.299 R + 0.587 G + 0.114 B``
        (the Y of piq's ``rgb2yiq``, :func:`torchsim.ops.opencv_gray` on floats; one-channel
        input is used as is), the 2×2 mean is
        ``conv2(Y, ones(2)/4, 'same')`` sampled at ``(1:2:end, 1:2:end)`` (zero beyond
        the last row and column of an odd side, as piq's zero padding), the Prewitt
        filters are ``conv2(..., 'same')`` with zero padding, and the deviation is the
        population standard deviation, as piq computes it. MATLAB's ``std2`` divides by
        ``n - 1``: ``GMSD.m`` returns this value times ``sqrt(n / (n - 1))`` for ``n``
        half-size pixels (a relative ``1 / (2n)``: 3e-5 for a 256×256 image).
        Gradients differ from piq's where it has none: a zero gradient magnitude or a
        zero deviation (constant or identical images) has a zero derivative here, where
        piq's plain ``sqrt`` gives NaN. Values outside ``[0, L]`` are neither refused
        (piq refuses them) nor clamped.

    Args:
        x, y: ``(N, C, H, W)`` images with C = 1 (grey) or 3 (RGB), any size.
        data_range: ``L``, the span of valid values (a float or an ``(N,)`` tensor);
            defaults to 255 for uint8 and 65535 for uint16, required for floating input.
        c: the stabilising constant on the [0, 1] scale (> 0), ``170 / 255**2`` as in
            the paper.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per image).

    Returns:
        GMSD in ``[0, 1)``, scalar or ``(N,)`` (float32, float64 for float64 input).

    Raises:
        TypeError: missing ``data_range`` for floating input, unsupported dtype.
        ValueError: rank other than 4, shape or device mismatch, C not 1 or 3, an
            empty image, bad ``data_range``, ``c`` not positive, unknown ``reduction``.

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> torchsim.gmsd(x, x, data_range=1.0).item()
        0.0
        >>> bool(torchsim.gmsd(x, x.flip(-1), data_range=1.0) > 0.1)
        True

    References:
        W. Xue, L. Zhang, X. Mou, A. C. Bovik, "Gradient Magnitude Similarity Deviation:
        A Highly Efficient Perceptual Image Quality Index", IEEE TIP 23(2), 2014.
        doi:10.1109/TIP.2013.2293423
    """
    fn = "gmsd"
    x, y = V.check_pair(fn, x, y, (4,))
    V.check_channels(fn, "x", x, (1, 3))
    V.check_reduction(fn, reduction)
    dr = V.check_data_range(fn, data_range, x)
    V.check_positive(fn, "c", c)
    with no_autocast(x.device):
        xc, yc = to_compute_pair(x, y)
        # the luma of both images as one (N, 2, H, W) tensor, so every filter runs once
        luma = torch.cat([opencv_gray(xc), opencv_gray(yc)], dim=1)
        luma = luma / range_tensor(dr, luma)
        half = separable_filter(luma, box_window(2, dtype=luma.dtype, device=luma.device), mode="zero")
        half = half[..., ::2, ::2]
        m = _gradient_magnitude(half)
        mx, my = m[:, 0], m[:, 1]
        gms = (2.0 * mx * my + c) / (mx * mx + my * my + c)
        dev = gms - gms.mean(dim=(-2, -1), keepdim=True)
        value = safe_sqrt((dev * dev).mean(dim=(-2, -1)))
        finite = torch.isfinite(luma).flatten(1).all(1)  # safe_sqrt maps NaN to 0: a NaN pixel is NaN here
        return reduce(torch.where(finite, value, torch.full_like(value, float("nan"))), reduction)


def _gradient_magnitude(v: torch.Tensor) -> torch.Tensor:
    """Prewitt gradient magnitude of every channel, same size, zero padding (``conv2(..., 'same')``).

    ``safe_sqrt``: a flat region (zero gradient) back-propagates zeros, not NaN.
    """
    smooth = torch.full((3,), 1.0 / 3.0, dtype=v.dtype, device=v.device)
    diff = torch.tensor([1.0, 0.0, -1.0], dtype=v.dtype, device=v.device)
    gx = separable_filter(v, (smooth, diff), mode="zero")
    gy = separable_filter(v, (diff, smooth), mode="zero")
    return safe_sqrt(gx * gx + gy * gy)
