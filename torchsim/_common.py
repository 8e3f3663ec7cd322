"""Dtype policy, reductions and small shared helpers.

Policy (SPEC, "Conventions shared by every metric"):

* ``float16`` / ``bfloat16`` are computed in ``float32`` and returned as ``float32``;
* ``float64`` stays ``float64`` end to end;
* ``uint8`` is read as 0..255 and computed in ``float32``.

Kernels run with autocast disabled, so ``torch.autocast`` never lowers the
precision of variances (``E[x^2] - E[x]^2`` cancels catastrophically in half).
"""

from __future__ import annotations

import contextlib
from typing import Union

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a metric computes in for an input of ``dtype``."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def to_compute(x: torch.Tensor) -> torch.Tensor:
    """Cast to the compute dtype (a no-op for float32 / float64)."""
    return x.to(compute_dtype(x.dtype))


def to_compute_pair(x: torch.Tensor, y: torch.Tensor):
    """Both inputs in one compute dtype: float64 if either is float64, else float32."""
    dtype = torch.promote_types(compute_dtype(x.dtype), compute_dtype(y.dtype))
    return x.to(dtype), y.to(dtype)


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Disable autocast for the metric kernels on ``device``'s type."""
    dev = device.type
    if dev in ("cuda", "cpu", "xpu", "mps"):
        return torch.autocast(device_type=dev, enabled=False)
    return contextlib.nullcontext()


def reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-image values of shape ``(N,)`` as ``reduction`` says."""
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def range_tensor(data_range: Union[float, torch.Tensor], like: torch.Tensor) -> Union[float, torch.Tensor]:
    """``data_range`` shaped to broadcast against an ``(N, ...)`` tensor like ``like``.

    A float stays a Python float (cheapest); a tensor becomes ``(N, 1, ..., 1)``
    in ``like``'s dtype and device.
    """
    if isinstance(data_range, torch.Tensor):
        r = data_range.to(device=like.device, dtype=like.dtype)
        r = r.reshape(-1, *([1] * (like.dim() - 1)))
        # a scalar or (1,) range applies to every image: make it (N, 1, ..., 1) as documented
        return r.expand(like.shape[0], *r.shape[1:])
    return float(data_range)
