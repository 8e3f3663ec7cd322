"""Pixel-wise metrics: MSE, PSNR and cosine similarity."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from .. import _validation as V
from .. import conventions
from .._common import no_autocast, pooled_sums, range_tensor, reduce, to_compute

Mask = Union[None, torch.Tensor, Sequence[Sequence[int]]]


def _mse_per_image(x: torch.Tensor, y: torch.Tensor, scale=None, ignore: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``mean(((x - y) / scale)²)`` per image; NaN for an image with a NaN or infinite pixel.

    Dividing by ``scale`` (the data range) before squaring keeps float32 finite for any units
    (1e30 or 1e-30 images give the numbers 1.0-range images give). ``ignore`` ``(N, 1, ...)``
    bool: those pixels (all their channels) are left out of the mean and the finiteness check;
    an image with no pixel left is NaN, with a zero gradient.
    """
    d = to_compute(x) - to_compute(y)
    if scale is not None:
        d = d / range_tensor(scale, d)
    if ignore is not None:
        d = torch.where(ignore, torch.zeros((), dtype=d.dtype, device=d.device), d)
        count = (~ignore).flatten(1).sum(1) * d.shape[1]
        d = d.flatten(1)
        value = (d * d).sum(1) / count.clamp(min=1).to(d.dtype)
        value = torch.where(count > 0, value, torch.full_like(value, float("nan")))
    else:
        d = d.flatten(1)
        value = (d * d).mean(1)
    # A NaN or infinite difference (inf - inf, inf - 1, NaN) makes the row sum non-finite: never
    # a plausible number. One reduction, where isfinite(d).all(1) took four passes and half the
    # time of mse. (A sum that overflows with finite terms, |d| ~ 1e33 in float32, is flagged
    # too: its squares overflowed long before.)
    finite = torch.isfinite(d.sum(1))
    return torch.where(finite, value, torch.full_like(value, float("nan")))


def mse(x: torch.Tensor, y: torch.Tensor, *, reduction: str = "mean", mask: Mask = None) -> torch.Tensor:
    r"""Mean squared error per image, ``mean((x - y)²)`` over C·H·W.

    Convention:
        Equals ``skimage.metrics.mean_squared_error(x, y)`` per image (values
        are compared on their own scale; ``uint8`` as 0..255, ``uint16`` as 0..65535).
        An image with a NaN or infinite pixel gives NaN.

        With ``mask``, the mean is over the pixels that are not ignored (all their
        channels), ``mean_squared_error(x[~m], y[~m])`` per image: ignored pixels
        neither count nor differ (a NaN there does not matter). An image whose pixels
        are all ignored gives NaN (with a zero gradient).

    Args:
        x, y: ``(N, C, H, W)`` images, same shape, dtype family and device.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (shape ``(N,)``).
        mask: pixels to ignore: a bool tensor ``(N, 1, H, W)``, True = ignore (``(N, 1,
            D, H, W)`` for volumes), or rectangles ``[(x0, y0, x1, y1), ...]`` (``x1``,
            ``y1`` exclusive) ignored in every image — as :func:`torchsim.pixelmatch`.

    Returns:
        float32 (float64 for float64 input) scalar or ``(N,)`` tensor.

    Example:
        >>> import torch, torchsim
        >>> torchsim.mse(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)).item()
        1.0
    """
    fn = "mse"
    x, y = V.check_pair(fn, x, y, (4, 5))
    V.check_reduction(fn, reduction)
    ignore = V.check_mask(fn, mask, x)
    with no_autocast(x.device):
        return reduce(_mse_per_image(x, y, ignore=ignore), reduction)


@conventions.presets("psnr")
def psnr(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    max_db: Optional[float] = None,
    eps: float = 0.0,
    pooled: bool = False,
    convention: Optional[str] = None,
    reduction: str = "mean",
    mask: Mask = None,
) -> torch.Tensor:
    r"""Peak signal-to-noise ratio in dB, ``10 · log10(L² / MSE)`` per image.

    Identical images give ``+inf`` (and a zero, finite gradient). With
    ``reduction="mean"`` the per-image PSNRs are averaged, as super-resolution
    papers report them (not the PSNR of the pooled MSE, which torchmetrics reports:
    that is :func:`psnr_pooled`, and ``pooled=True`` here).

    .. math::

        \mathrm{PSNR} = \min\big(-10 \log_{10}(\mathrm{MSE} / L^2 + \varepsilon),\ \mathrm{max\_db}\big)

    Convention:
        The defaults equal ``skimage.metrics.peak_signal_noise_ratio(x, y, data_range=L)``
        per image (computed as ``-10 log10(mean(((x - y) / L)²))`` so the result does
        not depend on the units; a NaN or infinite pixel gives NaN), and BasicSR's ``calculate_psnr`` with ``data_range=255`` (on the
        Y channel: ``psnr(rgb_to_y(x, 255), rgb_to_y(y, 255), data_range=255)``).
        Presets (``convention=``): ``"piq"`` sets ``eps=1e-8`` (piq adds it to the MSE
        of images scaled to [0, 1]: identical images score 80 dB); ``"libvmaf"`` sets
        ``max_db=60.0`` (libvmaf clamps at ``6N + 12`` dB for N-bit video: 60 for 8-bit,
        72 for 10-bit); ``"torchmetrics"`` and ``"kornia"`` set ``pooled=True`` (their
        PSNR of a batch is that of the batch's mean MSE); ``"wang"``, ``"skimage"``,
        ``"matlab"``, ``"basicsr"``, ``"monai"``, ``"tensorflow"`` and ``"ffmpeg"`` are the defaults.
        With ``mask``, the MSE is :func:`mse`'s over the pixels that are not ignored
        (``peak_signal_noise_ratio(x[~m], y[~m], data_range=L)`` per image); all
        ignored gives NaN. ``pooled=True`` with ``mask`` pools every kept value of the
        batch (each image's MSE weighted by its kept pixels; an image with none adds nothing).

    Args:
        x, y: ``(N, C, H, W)`` images.
        data_range: ``L``, the span of valid values (a float or an ``(N,)`` tensor);
            defaults to 255 for uint8 and 65535 for uint16, required for floating input.
        max_db: the largest value reported: PSNRs above it (identical images) are
            clamped to it (libvmaf); ``None``: no cap.
        eps: added to ``MSE / L²`` before the logarithm (piq's 1e-8, a cap of
            ``-10 log10(eps)`` dB that also lowers every other value slightly).
        pooled: with ``reduction="mean"``, one PSNR of the mean ``MSE / L²`` over the
            batch (torchmetrics, kornia): :func:`psnr_pooled`'s value, instead of the mean
            of per-image PSNRs; ``reduction="none"`` still gives per-image values. (The
            module :class:`torchsim.PSNRPooled` streams the pooled form over a data set.)
        convention: a published convention by name; ``None`` keeps the defaults.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        mask: pixels to ignore, as in :func:`mse`.

    Returns:
        PSNR in dB, scalar or ``(N,)``.

    Raises:
        TypeError / ValueError: bad images or ``data_range``; ``max_db`` not positive,
            ``eps`` negative, ``pooled=True`` with ``reduction="sum"``, unknown ``convention``.

    Example:
        >>> import torch, torchsim
        >>> x = torch.zeros(1, 1, 4, 4); y = torch.full((1, 1, 4, 4), 0.1)
        >>> round(torchsim.psnr(x, y, data_range=1.0).item(), 4)
        20.0
        >>> [torchsim.psnr(x, x, data_range=1.0, convention=c).item() for c in ("piq", "libvmaf")]
        [80.0, 60.0]
    """
    fn = "psnr"
    x, y = V.check_pair(fn, x, y, (4, 5))
    V.check_reduction(fn, reduction)
    dr = V.check_data_range(fn, data_range, x)
    if max_db is not None:
        V.check_positive(fn, "max_db", max_db)
    V.check_positive(fn, "eps", eps, allow_zero=True)
    pooled = V.check_bool(fn, "pooled", pooled)
    if pooled and reduction == "sum":
        raise ValueError(f"{fn}: pooled=True gives one PSNR of the batch and needs reduction 'mean' or 'none', got 'sum'")
    ignore = V.check_mask(fn, mask, x)
    with no_autocast(x.device):
        err = _mse_per_image(x, y, dr, ignore)  # in units of data_range: 1e30 and 1e-30 ranges stay finite
        if pooled and reduction == "mean" and ignore is not None:  # every kept value of the batch
            kept = (~ignore).flatten(1).sum(1).to(torch.float64)
            total, count = torch.where(kept > 0, err.to(torch.float64) * kept, 0.0).sum(), kept.sum()
            err = (total / count).to(err.dtype).reshape(1)
        elif pooled and reduction == "mean":
            total, count = pooled_sums(err, 1)
            err = (total / count).to(err.dtype).reshape(1)  # = psnr_pooled (images of one size)
        value = psnr_from_mse(err + eps if eps else err)
        if max_db is not None:
            value = value.clamp(max=float(max_db))
        return reduce(value, reduction)


def psnr_from_mse(err: torch.Tensor) -> torch.Tensor:
    """``-10 log10(err)`` for an MSE in units of ``L²``: ``+inf`` (zero, finite gradient) where it is 0.

    NaN errors stay NaN (a diverged output is not a perfect score). The one PSNR formula of
    :func:`psnr`, :func:`psnr_pooled` and the ``compute()`` of :class:`torchsim.PSNRPooled`.
    """
    identical = err == 0
    safe = torch.where(identical, torch.ones_like(err), err)
    return torch.where(identical, torch.full_like(err, float("inf")), -10.0 * torch.log10(safe))


def psnr_pooled_terms(
    x: torch.Tensor, y: torch.Tensor, *, data_range: Optional[Union[float, torch.Tensor]] = None
) -> Tuple[torch.Tensor, int]:
    """What :func:`psnr_pooled` pools: per-image MSE in units of ``L²`` ``(N,)``, and the values per image.

    The streaming decomposition of :func:`psnr_pooled` (and of the state of
    :class:`torchsim.PSNRPooled`): ``psnr_pooled = psnr_from_mse(Σ_i n·mse_i / Σ_i n)``,
    summed over every image of every batch. Validated as :func:`psnr_pooled`.
    """
    fn = "psnr_pooled"
    x, y = V.check_pair(fn, x, y, (4, 5))
    dr = V.check_data_range(fn, data_range, x)
    with no_autocast(x.device):
        return _mse_per_image(x, y, dr), x[0].numel()


def psnr_pooled(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
) -> torch.Tensor:
    r"""PSNR of the MSE pooled over every value of every image: ``10 · log10(L² / MSE_pooled)``, one number.

    :func:`psnr` scores each image and averages the PSNRs (what super-resolution papers
    report); this pools the squared errors of the whole batch first, as
    ``torchmetrics.image.PeakSignalNoiseRatio`` does. The two differ whenever the
    images' errors differ: the pooled MSE is dominated by the worst images, and the log
    of a mean is not the mean of the logs. For images of one size the pooled PSNR is
    never above the mean PSNR (Jensen), equal only when every image has the same MSE;
    on a super-resolution folder the gap is often several dB. The module
    :class:`torchsim.PSNRPooled` streams the pooled squared error and the value count,
    so its ``compute()`` over a data set equals one call on all of it, whatever the
    batches and image sizes.

    Convention:
        Equals ``torchmetrics.functional.image.peak_signal_noise_ratio(x, y,
        data_range=L)`` (its default ``reduction``, ``dim=None``) and the
        ``compute()`` of ``torchmetrics.image.PeakSignalNoiseRatio(data_range=L)``
        streamed over the same images. Pooled in float64. Errors are taken in units
        of ``L`` before pooling, so a per-image ``data_range`` tensor weighs each image's
        error by its own range (torchmetrics has one range). Identical batches give
        ``+inf``; a NaN or infinite pixel anywhere gives NaN.

    Args:
        x, y: ``(N, C, H, W)`` images.
        data_range: ``L``, the span of valid values (a float or an ``(N,)`` tensor);
            defaults to 255 for uint8 and 65535 for uint16, required for floating input.

    Returns:
        PSNR in dB, a scalar (float32; float64 for float64 input).

    Example:
        >>> import torch, torchsim
        >>> x = torch.zeros(2, 1, 4, 4)
        >>> y = torch.stack([torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 0.01)])
        >>> round(torchsim.psnr(x, y, data_range=1.0).item(), 2)  # (20 + 40) / 2
        30.0
        >>> round(torchsim.psnr_pooled(x, y, data_range=1.0).item(), 2)  # 10 log10(1 / 0.00505)
        22.97
    """
    err, n = psnr_pooled_terms(x, y, data_range=data_range)
    total, count = pooled_sums(err, n)
    return psnr_from_mse(total / count).to(err.dtype)


def cosine_similarity(x: torch.Tensor, y: torch.Tensor, *, reduction: str = "mean", eps: float = 1e-12) -> torch.Tensor:
    r"""Cosine of the angle between the flattened images, per image.

    ``cos = <x, y> / max(‖x‖ ‖y‖, eps)`` over all C·H·W values, each image first
    scaled by its largest magnitude (the cosine does not change), so float32 images of
    1e30 or 1e-30 give the numbers 1.0-scale images give instead of overflowing or
    underflowing. An all-zero image gives 0 (not NaN) and a finite gradient; an image
    with a NaN or infinite value gives NaN.

    Convention:
        Equals ``numpy.dot(a, b) / (numpy.linalg.norm(a) * numpy.linalg.norm(b))`` on
        ``a = x[i].ravel(), b = y[i].ravel()`` (uint8 read as 0..255).

    Args:
        x, y: ``(N, C, H, W)`` images.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        eps: lower bound on the product of the norms (of the scaled images).

    Returns:
        Cosine similarity in ``[-1, 1]``, scalar or ``(N,)``.

    Example:
        >>> import torch, torchsim
        >>> torchsim.cosine_similarity(torch.ones(1, 3, 2, 2), 2 * torch.ones(1, 3, 2, 2)).item()
        1.0
    """
    fn = "cosine_similarity"
    x, y = V.check_pair(fn, x, y, (4, 5))
    V.check_reduction(fn, reduction)
    with no_autocast(x.device):
        a = _unit_scaled(to_compute(x).flatten(1))
        b = _unit_scaled(to_compute(y).flatten(1))
        dot = (a * b).sum(1)
        nn = (a * a).sum(1) * (b * b).sum(1)
        value = dot / torch.sqrt(torch.clamp(nn, min=eps * eps))
        return reduce(value, reduction)


def _unit_scaled(v: torch.Tensor) -> torch.Tensor:
    """Rows of ``v`` divided by their largest magnitude (all-zero rows unchanged).

    The scale is detached: the cosine is scale-invariant, so its gradient through the
    scale is exactly zero. A NaN or infinite value makes the whole row NaN.
    """
    m = v.detach().abs().amax(1, keepdim=True)
    m = torch.where(m == 0, torch.ones_like(m), m)
    return v / m
