"""Dtype policy, reductions and small shared helpers.

Policy (SPEC, "Conventions shared by every metric"):

* ``float16`` / ``bfloat16`` are computed in ``float32`` and returned as ``float32``;
* ``float64`` stays ``float64`` end to end;
* ``uint8`` is read as 0..255 and ``uint16`` as 0..65535, both computed in ``float32``;
  hashes and pixelmatch take the high byte of 16-bit input (:func:`to_uint8`), as Pillow does.

Kernels run with autocast disabled, so ``torch.autocast`` never lowers the
precision of variances (``E[x^2] - E[x]^2`` cancels catastrophically in half).
"""

from __future__ import annotations

import contextlib
from typing import Union

import torch


#: integer image dtypes and the value their full scale is read as (SPEC: uint8 0..255, uint16 0..65535)
INTEGER_MAX = {torch.uint8: 255.0, torch.uint16: 65535.0}


def full_scale(dtype: torch.dtype) -> float:
    """The value white is stored as: 255 for uint8, 65535 for uint16, 1.0 for floating dtypes."""
    return INTEGER_MAX.get(dtype, 1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """8-bit copy of an integer image as Pillow makes it: uint8 unchanged, uint16 its high byte (``v >> 8``)."""
    if x.dtype == torch.uint16:
        return x.to(torch.int32).bitwise_right_shift(8).to(torch.uint8)
    return x


def nan_where_nonfinite(value: torch.Tensor, *images: torch.Tensor) -> torch.Tensor:
    """``value`` (``(N,)`` or ``(N, ...)``, one row per image) with NaN for every image that has a NaN or inf pixel.

    Integer images are always finite and cost nothing; floating ones cost one ``isfinite`` pass,
    no host-device sync. SPEC: a non-finite pixel never yields a plausible number.
    """
    bad = None
    for t in images:
        if t.is_floating_point():
            b = ~torch.isfinite(t).flatten(1).all(1)
            bad = b if bad is None else bad | b
    if bad is None:
        return value
    bad = bad.to(value.device).reshape((-1,) + (1,) * (value.dim() - 1))
    return torch.where(bad, torch.full_like(value, float("nan")), value)


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


def pooled_sums(stat: torch.Tensor, n: int):
    """``(Σ_i n·stat_i, N·n)``: per-image means ``stat`` ``(N,)`` over ``n`` values each, pooled.

    The sum is float64 (whatever ``stat``'s dtype; differentiable); the count a Python int.
    ``total / count`` is the mean over every value of the batch, and sums and counts of
    several batches add up to the mean over all of them (the pooled metrics' streaming state).
    """
    return stat.to(torch.float64).sum() * n, stat.shape[0] * n


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
