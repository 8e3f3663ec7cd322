"""SSIM and MS-SSIM: one kernel, with a hand-written backward.

The kernel filters the five moment maps ``x, y, x², y², xy`` in one separable
call, forms the SSIM and contrast-structure maps elementwise, and returns
their per-channel means. Its backward needs no autograd graph of the
intermediates: with the upstream gradients folded into four valid-size maps,
one "full" (adjoint) filter of those four maps and three multiply-adds give
both input gradients. MS-SSIM calls the same kernel once per scale.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .. import _validation as V
from .._common import no_autocast, range_tensor, reduce, to_compute
from ..filters import box_window, gaussian_window, matlab_downsample, matlab_round, separable_filter

Scalar = Union[float, torch.Tensor]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _maps(m: torch.Tensor, c: int, c1: Scalar, c2: Scalar, cov_norm: float):
    """Elementwise SSIM terms from the filtered moments ``m = [mx, my, Exx, Eyy, Exy]``."""
    mx, my, exx, eyy, exy = m.split(c, dim=1)
    mx2 = mx * mx
    my2 = my * my
    mxy = mx * my
    a1 = 2 * mxy + c1
    b1 = mx2 + my2 + c1
    a2 = (exy - mxy) * (2 * cov_norm) + c2
    b2 = (exx + eyy - mx2 - my2) * cov_norm + c2
    return mx, my, a1, b1, a2, b2


class _SSIMKernel(torch.autograd.Function):
    """``(x, y) -> (mean SSIM per (N, C), mean CS per (N, C), SSIM map or empty)``."""

    @staticmethod
    def forward(ctx, x, y, window, c1, c2, cov_norm: float, want_map: bool):
        c = x.shape[1]
        m = separable_filter(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
        _, _, a1, b1, a2, b2 = _maps(m, c, c1, c2, cov_norm)
        cs_map = a2.div_(b2)
        ssim_map = a1.div_(b1).mul_(cs_map)
        dims = tuple(range(2, x.dim()))
        ssim_nc = ssim_map.mean(dims)
        cs_nc = cs_map.mean(dims)
        ctx.save_for_backward(x, y, window, m, *(t for t in (c1, c2) if isinstance(t, torch.Tensor)))
        ctx.consts = (c1 if not isinstance(c1, torch.Tensor) else None, c2 if not isinstance(c2, torch.Tensor) else None, cov_norm)
        ctx.mark_non_differentiable(window)
        out_map = ssim_map if want_map else ssim_map.new_empty(0)
        return ssim_nc, cs_nc, out_map

    @staticmethod
    @once_differentiable
    def backward(ctx, g_ssim, g_cs, g_map):
        x, y, window, m, *cts = ctx.saved_tensors
        c1, c2, cov = ctx.consts
        cts = list(cts)
        if c1 is None:
            c1 = cts.pop(0)
        if c2 is None:
            c2 = cts.pop(0)
        c = x.shape[1]
        mx, my, a1, b1, a2, b2 = _maps(m, c, c1, c2, cov)
        count = mx[0, 0].numel()
        view = g_ssim.shape + (1,) * (x.dim() - 2)
        gs = (g_ssim / count).reshape(view)
        gc = (g_cs / count).reshape(view)
        if g_map is not None and g_map.numel() > 0:
            gs = gs + g_map
        inv_b2 = b2.reciprocal()
        cs = a2 * inv_b2
        s_over_b = a1 / b1 * cs  # the SSIM map
        # dS/dA1 = A2/(B1 B2); dS/dA2 = A1/(B1 B2); dS/dB1 = -S/B1; dS/dB2 = -S/B2;
        # dCS/dA2 = 1/B2; dCS/dB2 = -CS/B2.
        a = gs * cs / b1
        b = (gs * a1 / b1 + gc) * inv_b2
        q = -(gs * s_over_b + gc * cs) * inv_b2
        p = -gs * s_over_b / b1
        u = a - cov * b  # coefficient of the cross mean
        v = p - cov * q  # coefficient of the own mean
        d_mx = (my * u + mx * v) * 2
        d_my = (mx * u + my * v) * 2
        g = separable_filter(torch.cat([d_mx, d_my, q * cov, b * (2 * cov)], dim=1), window, mode="full")
        gmx, gmy, gq, gb = g.split(c, dim=1)
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_x = gmx + 2 * x * gq + y * gb
        if ctx.needs_input_grad[1]:
            grad_y = gmy + 2 * y * gq + x * gb
        return grad_x, grad_y, None, None, None, None, None


def _window(kernel_size: int, sigma: float, gaussian: bool, like: torch.Tensor) -> torch.Tensor:
    if gaussian:
        return gaussian_window(kernel_size, sigma, dtype=like.dtype, device=like.device)
    return box_window(kernel_size, dtype=like.dtype, device=like.device)


def _constants(data_range, like: torch.Tensor, k1: float, k2: float) -> Tuple[Scalar, Scalar]:
    r = range_tensor(data_range, like)
    return (k1 * r) ** 2, (k2 * r) ** 2


def _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction):
    x, y = V.check_pair(fn, x, y, (4, 5))
    V.check_kernel(fn, kernel_size, sigma)
    V.check_reduction(fn, reduction)
    V.check_positive(fn, "k1", k1)
    V.check_positive(fn, "k2", k2)
    dr = V.check_data_range(fn, data_range, x)
    return x, y, dr


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    kernel_size: int = 11,
    sigma: float = 1.5,
    gaussian: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
    downsample: bool = False,
    return_map: bool = False,
    reduction: str = "mean",
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    r"""Structural similarity (Wang et al. 2004), mean over the valid region.

    With local means :math:`\mu`, variances :math:`\sigma^2` and covariance
    :math:`\sigma_{xy}` taken under a window ``w`` (Gaussian or uniform)::

        SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))

    with ``C1 = (k1 L)²``, ``C2 = (k2 L)²`` and ``L = data_range``. The map is
    computed where the window lies fully inside the image ("valid") and
    averaged; channels are scored separately and averaged.

    Convention:
        The defaults equal ``skimage.metrics.structural_similarity(x, y,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=L, channel_axis=...)``, ``pytorch_msssim.ssim(x, y,
        data_range=L, size_average=False)`` and BasicSR's ``calculate_ssim``
        (pass ``data_range=255`` on 0..255 images). ``gaussian=False,
        kernel_size=7, sample_covariance=True`` equals scikit-image's default.
        ``downsample=True`` adds the automatic ``f = round(min(H, W) / 256)``
        box-filter-and-subsample step of Wang's ``ssim.m``.

    Args:
        x, y: ``(N, C, H, W)`` images or ``(N, C, D, H, W)`` volumes, same shape,
            dtype family and device.
        data_range: span of valid values (``1.0`` for [0, 1], ``255.0`` for 0..255),
            a float or an ``(N,)`` tensor. Defaults to 255 for uint8; required otherwise.
        kernel_size: odd window length (per axis).
        sigma: Gaussian standard deviation (ignored when ``gaussian=False``).
        gaussian: Gaussian window if True, uniform window otherwise.
        k1, k2: stabilising constants.
        sample_covariance: scale (co)variances by ``n / (n - 1)``, ``n = kernel_size**d``.
        downsample: apply ``ssim.m``'s automatic downsampling first.
        return_map: also return the SSIM map ``(N, C, *valid)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per image).

    Returns:
        The SSIM (scalar, or ``(N,)`` for ``reduction="none"``), float32
        (float64 for float64 input); with ``return_map`` a tuple ``(value, map)``.

    Raises:
        TypeError: missing ``data_range`` for floating input, unsupported dtype.
        ValueError: rank/shape/device mismatch, even kernel_size, image smaller
            than the window, bad ``reduction``/``data_range``.

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> torchsim.ssim(x, x, data_range=1.0).item()
        1.0

    References:
        Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
        assessment: from error visibility to structural similarity", IEEE TIP
        13(4), 2004. doi:10.1109/TIP.2003.819861
    """
    fn = "ssim"
    x, y, dr = _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction)
    with no_autocast(x.device):
        xc, yc = to_compute(x), to_compute(y)
        if downsample:
            f = max(1, matlab_round(min(xc.shape[2:]) / 256))
            xc, yc = matlab_downsample(xc, f), matlab_downsample(yc, f)
        V.check_window_fits(fn, xc.shape, kernel_size)
        window = _window(kernel_size, sigma, gaussian, xc)
        c1, c2 = _constants(dr, xc, k1, k2)
        n = kernel_size ** (xc.dim() - 2)
        cov_norm = n / (n - 1) if sample_covariance else 1.0
        s_nc, _, smap = _SSIMKernel.apply(xc, yc, window, c1, c2, cov_norm, return_map)
        value = reduce(s_nc.mean(1), reduction)
    if return_map:
        return value, smap
    return value


def _ms_pool(t: torch.Tensor) -> torch.Tensor:
    pad = [s % 2 for s in t.shape[2:]]
    if t.dim() == 4:
        return F.avg_pool2d(t, kernel_size=2, padding=pad)
    return F.avg_pool3d(t, kernel_size=2, padding=pad)


def _safe_pow(v: torch.Tensor, w: float) -> torch.Tensor:
    """``v ** w`` for ``v >= 0`` whose gradient is 0 (not NaN) where ``v == 0``."""
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, torch.ones_like(v)) ** w, torch.zeros_like(v))


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    kernel_size: int = 11,
    sigma: float = 1.5,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Multi-scale SSIM (Wang, Simoncelli, Bovik 2003).

    .. math::

        \mathrm{MS\text{-}SSIM} = \mathrm{SSIM}_M^{\,w_M} \prod_{j=1}^{M-1} \mathrm{cs}_j^{\,w_j}

    per channel, where ``cs_j`` is the mean contrast-structure term at scale
    ``j`` and each coarser scale is a 2×2 average pooling of the previous one
    (with one pixel of zero padding, counted, on odd sides). Negative ``cs`` /
    SSIM terms are clamped to zero, so the product is defined and its
    gradient is finite (zero on clamped terms). Channels are averaged.

    Convention:
        Equals ``pytorch_msssim.ms_ssim(x, y, data_range=L, size_average=False,
        win_size=kernel_size, win_sigma=sigma, weights=weights, K=(k1, k2))``.

    Args:
        x, y: ``(N, C, H, W)`` or ``(N, C, D, H, W)``; every spatial side must be at
            least ``(kernel_size - 1) * 2**(M-1) + 1`` (161 for the defaults).
        data_range: as in :func:`ssim`.
        kernel_size, sigma, k1, k2: as in :func:`ssim` (Gaussian window).
        weights: per-scale exponents; their count ``M`` is the number of scales.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.

    Returns:
        MS-SSIM as a scalar or ``(N,)`` tensor (float32, float64 for float64 input).

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(1, 1, 161, 161, generator=torch.Generator().manual_seed(0))
        >>> torchsim.ms_ssim(x, x, data_range=1.0).item()
        1.0

    References:
        Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity
        for image quality assessment", Asilomar 2003. doi:10.1109/ACSSC.2003.1292216
    """
    fn = "ms_ssim"
    x, y, dr = _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction)
    try:
        w_list = [float(w) for w in weights]
    except TypeError:
        raise TypeError(f"{fn}: weights must be a sequence of numbers, got {weights!r}") from None
    if len(w_list) < 1:
        raise ValueError(f"{fn}: weights must hold at least one scale weight, got {weights!r}")
    levels = len(w_list)
    min_side = (kernel_size - 1) * 2 ** (levels - 1) + 1
    if min(x.shape[2:]) < min_side:
        raise ValueError(
            f"{fn}: every spatial dimension must be at least {min_side} for kernel_size={kernel_size} "
            f"and {levels} scales ((kernel_size - 1) * 2**{levels - 1} + 1), got spatial size "
            f"{tuple(x.shape[2:])}; use a smaller kernel_size, fewer weights, or ssim()"
        )
    with no_autocast(x.device):
        xc, yc = to_compute(x), to_compute(y)
        window = _window(kernel_size, sigma, True, xc)
        c1, c2 = _constants(dr, xc, k1, k2)
        terms = []
        for level in range(levels):
            s_nc, cs_nc, _ = _SSIMKernel.apply(xc, yc, window, c1, c2, 1.0, False)
            if level < levels - 1:
                terms.append(torch.relu(cs_nc))
                xc, yc = _ms_pool(xc), _ms_pool(yc)
        terms.append(torch.relu(s_nc))
        value = _safe_pow(terms[0], w_list[0])
        for term, w in zip(terms[1:], w_list[1:]):
            value = value * _safe_pow(term, w)
        return reduce(value.mean(dim=1), reduction)
