"""Streaming state of the metric modules: a float64 sum and an int64 count.

Every metric module (:class:`torchsim.modules.Metric`) inherits
:class:`StreamingMixin`, which adds

* ``forward(x, y)`` (in the module) — returns the function's value for the batch
  *and* adds the batch to the state, as a torchmetrics metric does, so
  ``metric(x, y)`` in the evaluation loop and ``metric.compute()`` at the end work;
* ``update(x, y)`` — adds a batch to the state without the batch value (under
  ``torch.no_grad()``) and returns its per-image values;
* ``compute()`` — the value over every image seen: the mean of the per-image values
  (the same number as one ``forward(..., reduction="mean")`` over the whole data set,
  whatever the batch sizes, so PSNR is the mean of per-image PSNRs), or for a
  ``"pooled"`` record (:class:`torchsim.registry.Pooling`, e.g. ``psnr_pooled``) the
  statistic pooled over every value seen. When ``torch.distributed`` is initialised
  the sum and the count are summed over the ranks first
  (:func:`torchsim._distributed.all_reduce_sum`), so every rank gets the
  data-set-wide value, exact with uneven shards;
* ``reset()`` — back to the empty state.

State (decided here, documented in the class):

* two buffers, a float64 sum and an int64 count (of images; of values for a pooled
  metric), **persistent**: they are in ``state_dict()`` so a half-finished evaluation
  is checkpointed with ``torch.save(metric.state_dict(), f)`` and resumed with
  ``load_state_dict``. A state dict without them (saved by torchsim 0.1, whose state
  was not persistent) loads as the empty state, even with ``strict=True``;
* the state is added detached, under ``torch.no_grad()``: ``forward`` keeps the
  autograd graph of its result and never of the state, and compiles with
  ``torch.compile(metric, fullgraph=True)`` (the in-place add of a buffer is traced);
* dtype casts of the module (``.half()``, ``.to(torch.float16)``, ``.double()``)
  never touch the state: it stays float64;
* adding to the state does no host-device synchronisation; if the data lives on
  another device than the state, the state follows the data.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import torch

from . import _distributed

__all__ = ["StreamingMixin"]

_SUM = "_stream_sum"
_COUNT = "_stream_count"


class StreamingMixin:
    """``update`` / ``compute`` / ``reset`` for a module that scores pairs of images.

    The host class provides ``_score(x, y, result)`` — ``(forward's result or None,
    per-image values (N,) or None, batch sum, batch count)`` — and ``_finish(mean)``,
    the value of the pooled mean ``sum / count`` (the identity for the mean of
    per-image values); its ``forward`` calls :meth:`_accumulate` with the batch's sum
    and count (:class:`torchsim.modules.Metric` does both).

    State: a float64 sum and an int64 count, persistent buffers (in ``state_dict``: a
    half-finished evaluation can be saved and resumed), moved by ``.to(device)``,
    never cast by ``.half()`` & co, added detached under ``torch.no_grad()``.

    ``compute()`` before any image was seen (on all ranks together) raises a
    ``RuntimeError`` naming the module: a mean over no images has no value,
    and a silent NaN in a results table is worse than an error.

    Distributed: when ``torch.distributed`` is initialised, ``compute()`` is a
    collective — every rank must call it — that all-reduces the state over
    ``process_group`` (the default group when ``None``); ranks that saw no
    images take part with an empty state. Each rank checkpoints its own state. Keep a
    metric outside a ``DistributedDataParallel``-wrapped model: DDP broadcasts rank 0's
    buffers (this state among them) to every rank at each forward.

    Example:
        >>> import io, torch, torchsim
        >>> metric = torchsim.PSNR(data_range=1.0)
        >>> x = torch.zeros(3, 1, 4, 4)
        >>> batch_value = metric(x[:1], x[:1] + 0.1)  # forward: the batch's PSNR, added to the state
        >>> checkpoint = io.BytesIO(); torch.save(metric.state_dict(), checkpoint)
        >>> resumed = torchsim.PSNR(data_range=1.0)
        >>> _ = checkpoint.seek(0); _ = resumed.load_state_dict(torch.load(checkpoint))
        >>> _ = resumed.update(x[1:], x[1:] + 0.1)  # update: per-image values, no batch value
        >>> round(resumed.compute().item(), 4)  # 3 images, in batches of 1 and 2
        20.0
        >>> resumed.reset()
    """

    #: process group ``compute()`` reduces over (``None``: the default group)
    process_group: Optional[Any] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer(_SUM, torch.zeros((), dtype=torch.float64))
        self.register_buffer(_COUNT, torch.zeros((), dtype=torch.int64))

    # -- what the host provides --------------------------------------------------------------
    def _score(self, x: torch.Tensor, y: torch.Tensor, result: bool) -> Tuple[Any, Any, torch.Tensor, Any]:
        raise NotImplementedError

    def _finish(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    # -- state -------------------------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        # Module.to / .cuda / .half / ... : the state follows the device, never the dtype.
        total = self._buffers[_SUM]
        out = super()._apply(fn, *args, **kwargs)
        self._buffers[_SUM] = total.to(self._buffers[_COUNT].device)
        return out

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # A checkpoint without the state (torchsim 0.1 kept it out of state_dict) is the empty state.
        keys = (prefix + _SUM, prefix + _COUNT)
        absent = not any(k in state_dict for k in keys)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if absent:
            self.reset()
            missing_keys[:] = [k for k in missing_keys if k not in keys]

    def reset(self) -> None:
        """Forget every image seen: sum and count back to zero (in place, same device)."""
        self._buffers[_SUM].zero_()
        self._buffers[_COUNT].zero_()

    def _accumulate(self, total: torch.Tensor, count: Union[int, torch.Tensor]) -> None:
        """Add a batch's sum (float64 scalar) and count to the state: detached, in place, no sync."""
        with torch.no_grad():
            state_sum, state_count = self._buffers[_SUM], self._buffers[_COUNT]
            if state_sum.device != total.device:  # the state follows the data
                with torch.inference_mode(False):  # a normal tensor even when moved in inference mode
                    state_sum, state_count = state_sum.to(total.device), state_count.to(total.device)
                self._buffers[_SUM], self._buffers[_COUNT] = state_sum, state_count
            state_sum.add_(total.detach())
            state_count.add_(count)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Score a batch and add it to the state; returns the per-image values ``(N,)``.

        Same checks and options as ``forward``, with ``reduction="none"``, under
        ``torch.no_grad()`` (``forward`` adds the batch to the state too, and returns
        its value). No host-device synchronisation (the values are added on the
        device; only when the data is on another device than the state is the state
        moved there, once).
        """
        with torch.no_grad():
            _, values, total, count = self._score(x, y, False)
            self._accumulate(total, count)
        return values.detach()

    def compute(self) -> torch.Tensor:
        """The value over every image seen (on every rank): a float64 scalar.

        The mean of the per-image values; for a pooled metric, the statistic pooled
        over every value seen.

        Raises:
            RuntimeError: no image was seen since construction or ``reset()``.
        """
        total, count = self._buffers[_SUM], self._buffers[_COUNT]
        state = torch.stack([total, count.to(torch.float64)])
        distributed = _distributed.distributed_enabled()
        if distributed:
            state = _distributed.all_reduce_sum(state, self.process_group)
        if state[1].item() == 0:
            where = " on any rank" if distributed else ""
            raise RuntimeError(
                f"{type(self).__name__}.compute(): no images seen{where}; call update(x, y) "
                f"with at least one batch first (or after reset())"
            )
        return self._finish(state[0] / state[1])
