"""Losses: ``1 - f`` or ``-f`` over the functional core.

Every loss is differentiable, reduces with ``reduction="mean"`` by default and
keeps the same keyword arguments as the function it wraps.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import torch
from torch import nn

from . import functional as F
from ._common import reduce
from ._validation import check_positive
from .ops.filters import gaussian_window, separable_filter


class _ComplementLoss(nn.Module):
    """``loss = offset + sign * fn(x, y, reduction="none")``, then reduced."""

    _fn: Callable[..., torch.Tensor]
    _offset: float = 1.0
    _sign: float = -1.0

    def __init__(self, *, reduction: str = "mean", **kwargs: Any) -> None:
        super().__init__()
        from ._validation import check_options

        check_options(type(self).__name__, type(self)._fn, {**kwargs, "reduction": reduction})
        if "bandwidth" in kwargs:  # the information losses need soft (differentiable) histograms
            check_positive(type(self).__name__, "bandwidth", kwargs["bandwidth"])
        self.reduction = reduction
        self.kwargs: Dict[str, Any] = kwargs

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = type(self)._fn(x, y, reduction="none", **self.kwargs)
        return reduce(self._offset + self._sign * value, self.reduction)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in {**self.kwargs, "reduction": self.reduction}.items())


class SSIMLoss(_ComplementLoss):
    r"""``1 - SSIM(x, y)`` per image, reduced (mean by default).

    Takes the keyword arguments of :func:`torchsim.ssim` (``data_range`` is
    required for floating inputs).

    Example:
        >>> import torch, torchsim
        >>> loss_fn = torchsim.SSIMLoss(data_range=1.0)
        >>> pred = torch.rand(2, 3, 32, 32, requires_grad=True)
        >>> loss = loss_fn(pred, torch.rand(2, 3, 32, 32))
        >>> loss.backward()
    """

    _fn = staticmethod(F.ssim)


class MSSSIMLoss(_ComplementLoss):
    r"""``1 - MS-SSIM(x, y)`` per image, reduced. Keyword arguments of :func:`torchsim.ms_ssim`."""

    _fn = staticmethod(F.ms_ssim)


class CosineSimilarityLoss(_ComplementLoss):
    r"""``1 - cos(x, y)`` per image (flattened images), reduced."""

    _fn = staticmethod(F.cosine_similarity)


class MSSSIML1Loss(nn.Module):
    r"""MS-SSIM + Gaussian-weighted L1 mix of Zhao et al. (2017), :math:`\alpha = 0.84`.

    .. math::

        \mathcal{L} = \alpha\,(1 - \mathrm{MS\text{-}SSIM}(x, y))
                    + (1 - \alpha)\,\operatorname{mean}\big(G_{\sigma_M} * |x - y|\big) / L

    The L1 term is the absolute error blurred with the Gaussian of the
    coarsest MS-SSIM scale (``l1_sigma = 8``, the paper's
    :math:`\sigma_G^M`; symmetric boundary, same size), averaged over pixels
    and channels and divided by ``L = data_range`` so both terms lie on the
    same [0, 1] scale whatever the image range.

    Args:
        alpha: weight of the MS-SSIM term (0.84 in the paper).
        l1_sigma: standard deviation of the L1 weighting Gaussian.
        data_range: as in :func:`torchsim.ms_ssim` (required for floating input).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per image).
        **kwargs: other keyword arguments of :func:`torchsim.ms_ssim`.

    References:
        H. Zhao, O. Gallo, I. Frosio, J. Kautz, "Loss Functions for Image
        Restoration with Neural Networks", IEEE TCI 3(1), 2017.
        doi:10.1109/TCI.2016.2644865
    """

    def __init__(self, *, alpha: float = 0.84, l1_sigma: float = 8.0, data_range=None, reduction: str = "mean", **kwargs: Any) -> None:
        super().__init__()
        from ._validation import check_options

        check_options("MSSSIML1Loss", F.ms_ssim, {**kwargs, "data_range": data_range, "reduction": reduction})
        check_positive("MSSSIML1Loss", "l1_sigma", l1_sigma)
        if not (0.0 <= float(alpha) <= 1.0):
            raise ValueError(f"MSSSIML1Loss: alpha must be in [0, 1], got {alpha!r}")
        self.alpha = float(alpha)
        self.l1_sigma = float(l1_sigma)
        self.data_range = data_range
        self.reduction = reduction
        self.kwargs = kwargs

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from ._common import range_tensor, to_compute
        from ._validation import check_data_range

        ms = F.ms_ssim(x, y, data_range=self.data_range, reduction="none", **self.kwargs)
        dr = check_data_range("MSSSIML1Loss", self.data_range, x)
        err = (to_compute(x) - to_compute(y)).abs()
        k = 2 * int(round(3 * self.l1_sigma)) + 1
        window = gaussian_window(k, self.l1_sigma, dtype=err.dtype, device=err.device)
        l1 = separable_filter(err, window, mode="symmetric").flatten(1).mean(1)
        l1 = l1 / range_tensor(dr, l1)
        return reduce(self.alpha * (1.0 - ms) + (1.0 - self.alpha) * l1, self.reduction)


class NMILoss(_ComplementLoss):
    r"""``1 - NMI(x, y)`` per image, reduced; soft histograms by default (``bandwidth=1.0``).

    Takes the keyword arguments of :func:`torchsim.normalized_mutual_information`.
    The default soft joint histogram (triangular kernel, one bin half-width) makes the
    loss differentiable; fewer ``bins`` (e.g. 32-64) give smoother, less sparse
    joint histograms on small images.

    Note:
        A soft joint histogram spreads every pair of values over neighbouring bin pairs,
        so even identical images have a joint histogram that is not diagonal: their soft
        NMI is below 1 (about 0.8 at 256 bins and 0.7 at 32 bins for random 64×64 images,
        closer to 1 with a smaller bandwidth) and the loss's minimum, still at ``x == y``, is
        above 0. For
        the same reason two constant images that sit on a bin boundary score 0. Use
        ``bandwidth=0`` with :func:`torchsim.normalized_mutual_information` to *report* NMI.

    Example:
        >>> import torch, torchsim
        >>> loss_fn = torchsim.NMILoss(bins=32)
        >>> pred = torch.rand(2, 1, 32, 32, requires_grad=True)
        >>> loss = loss_fn(pred, torch.rand(2, 1, 32, 32))
        >>> loss.backward()
    """

    _fn = staticmethod(F.normalized_mutual_information)

    def __init__(
        self,
        *,
        bins: int = 256,
        value_range=None,
        normalization: str = "arithmetic",
        bandwidth: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            bins=bins, value_range=value_range, normalization=normalization, bandwidth=bandwidth, reduction=reduction,
        )


class MILoss(_ComplementLoss):
    r"""``-MI(x, y)`` (nats) per image, reduced; soft histograms by default (``bandwidth=1.0``).

    Takes the keyword arguments of :func:`torchsim.mutual_information`.
    """

    _fn = staticmethod(F.mutual_information)
    _offset = 0.0

    def __init__(self, *, bins: int = 256, value_range=None, bandwidth: float = 1.0, reduction: str = "mean") -> None:
        super().__init__(bins=bins, value_range=value_range, bandwidth=bandwidth, reduction=reduction)


__all__ = ["SSIMLoss", "MSSSIMLoss", "CosineSimilarityLoss", "MSSSIML1Loss", "NMILoss", "MILoss"]
