"""Metric modules: stored keyword arguments and a one-line ``forward``.

Each module wraps one function of :mod:`torchsim.functional`; the constructor
takes that function's keyword arguments, ``forward(x, y)`` returns exactly
what the function returns. Nothing here does arithmetic on pixels.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

import torch
from torch import nn

from . import functional as F
from .streaming import StreamingMixin


class Metric(StreamingMixin, nn.Module):
    """Base of the metric modules: ``forward(x, y) = fn(x, y, **kwargs)``.

    Streaming (:class:`torchsim.streaming.StreamingMixin`): ``update(x, y)`` adds a
    batch to a float64 sum and count (and returns its per-image values),
    ``compute()`` is the mean over every image seen — all-reduced over ranks when
    ``torch.distributed`` is initialised — and ``reset()`` starts over.
    """

    _fn: Callable[..., Any]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        from ._validation import check_options

        check_options(type(self).__name__, type(self)._fn, kwargs)
        self.kwargs: Dict[str, Any] = kwargs

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        return type(self)._fn(x, y, **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


class MSE(Metric):
    """Module form of :func:`torchsim.mse`. ``MSE(reduction="mean")``."""

    _fn = staticmethod(F.mse)

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


class PSNR(Metric):
    """Module form of :func:`torchsim.psnr`. ``PSNR(data_range=1.0)``."""

    _fn = staticmethod(F.psnr)

    def __init__(self, *, data_range=None, reduction: str = "mean") -> None:
        super().__init__(data_range=data_range, reduction=reduction)


class SSIM(Metric):
    """Module form of :func:`torchsim.ssim`; takes all of its keyword arguments.

    Example:
        >>> import torch, torchsim
        >>> metric = torchsim.SSIM(data_range=1.0)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> metric(x, x).item()
        1.0
    """

    _fn = staticmethod(F.ssim)

    def __init__(
        self,
        *,
        data_range=None,
        kernel_size: int = 11,
        sigma: float = 1.5,
        gaussian: bool = True,
        k1: float = 0.01,
        k2: float = 0.03,
        sample_covariance: bool = False,
        downsample: bool = False,
        return_map: bool = False,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            data_range=data_range, kernel_size=kernel_size, sigma=sigma, gaussian=gaussian, k1=k1, k2=k2,
            sample_covariance=sample_covariance, downsample=downsample, return_map=return_map, reduction=reduction,
        )


class MSSSIM(Metric):
    """Module form of :func:`torchsim.ms_ssim`; takes all of its keyword arguments."""

    _fn = staticmethod(F.ms_ssim)

    def __init__(
        self,
        *,
        data_range=None,
        kernel_size: int = 11,
        sigma: float = 1.5,
        weights=F.MS_SSIM_WEIGHTS,
        k1: float = 0.01,
        k2: float = 0.03,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            data_range=data_range, kernel_size=kernel_size, sigma=sigma, weights=tuple(weights), k1=k1, k2=k2,
            reduction=reduction,
        )


class CosineSimilarity(Metric):
    """Module form of :func:`torchsim.cosine_similarity`."""

    _fn = staticmethod(F.cosine_similarity)

    def __init__(self, *, reduction: str = "mean") -> None:
        super().__init__(reduction=reduction)


class HistogramSimilarity(Metric):
    """Module form of :func:`torchsim.histogram_similarity`; takes all of its keyword arguments.

    Example:
        >>> import torch, torchsim
        >>> metric = torchsim.HistogramSimilarity(bins=32, method="intersection")
        >>> x = torch.rand(2, 3, 16, 16)
        >>> metric(x, x).item()
        1.0
    """

    _fn = staticmethod(F.histogram_similarity)

    def __init__(
        self,
        *,
        bins: int = 256,
        value_range=None,
        method: str = "correlation",
        bandwidth: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(bins=bins, value_range=value_range, method=method, bandwidth=bandwidth, reduction=reduction)


class MutualInformation(Metric):
    """Module form of :func:`torchsim.mutual_information` (nats); takes all of its keyword arguments."""

    _fn = staticmethod(F.mutual_information)

    def __init__(self, *, bins: int = 256, value_range=None, bandwidth: float = 0.0, reduction: str = "mean") -> None:
        super().__init__(bins=bins, value_range=value_range, bandwidth=bandwidth, reduction=reduction)


class NMI(Metric):
    """Module form of :func:`torchsim.normalized_mutual_information`; takes all of its keyword arguments."""

    _fn = staticmethod(F.normalized_mutual_information)

    def __init__(
        self,
        *,
        bins: int = 256,
        value_range=None,
        normalization: str = "arithmetic",
        bandwidth: float = 0.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__(
            bins=bins, value_range=value_range, normalization=normalization, bandwidth=bandwidth, reduction=reduction,
        )


__all__ = ["Metric", "MSE", "PSNR", "SSIM", "MSSSIM", "CosineSimilarity", "HistogramSimilarity", "MutualInformation", "NMI"]
