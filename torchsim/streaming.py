"""Streaming state of the metric modules: a float64 sum and an int64 count.

Every metric module (:class:`torchsim.modules.Metric`) inherits
:class:`StreamingMixin`, which adds

* ``update(x, y)`` — scores a batch (its per-image values, under
  ``torch.no_grad()``), adds them to a float64 sum and the image count to a
  counter, and returns the per-image values;
* ``compute()`` — the mean over all images seen of the per-image value: the
  same number as one ``forward(..., reduction="mean")`` over the whole data
  set, whatever the batch sizes (so PSNR is the mean of per-image PSNRs).
  When ``torch.distributed`` is initialised the sum and the count are
  summed over the ranks first (:func:`torchsim._distributed.all_reduce_sum`), so
  every rank gets the data-set-wide value, exact with uneven shards;
* ``reset()`` — back to the empty state.

State (decided here, documented in the class):

* two buffers, a float64 sum and an int64 count, registered with
  ``persistent=False``: they move with ``.to(device)`` / ``.cuda()`` but never
  appear in ``state_dict()`` (a checkpoint of a model holding a metric stays
  clean; the state belongs to one evaluation run, not to the model);
* dtype casts of the module (``.half()``, ``.to(torch.float16)``, ``.double()``)
  never touch the state: it stays float64;
* ``update`` does no host-device synchronisation; if the data lives on
  another device than the state, the state follows the data.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from . import _distributed

__all__ = ["StreamingMixin"]

_SUM = "_stream_sum"
_COUNT = "_stream_count"


class StreamingMixin:
    """``update`` / ``compute`` / ``reset`` for a module that scores pairs of images.

    The host class provides ``_values(x, y)``: the per-image values ``(N,)`` of a
    batch (:class:`torchsim.modules.Metric` calls its function with the stored
    options but ``reduction="none"``, and without the map where the function can
    return one: only the value is accumulated).

    State: a float64 sum and an int64 count, non-persistent buffers (not in
    ``state_dict``), moved by ``.to(device)``, never cast by ``.half()`` & co.

    ``compute()`` before any image was seen (on all ranks together) raises a
    ``RuntimeError`` naming the module: a mean over no images has no value,
    and a silent NaN in a results table is worse than an error.

    Distributed: when ``torch.distributed`` is initialised, ``compute()`` is a
    collective — every rank must call it — that all-reduces the state over
    ``process_group`` (the default group when ``None``); ranks that saw no
    images take part with an empty state.

    Example:
        >>> import torch, torchsim
        >>> metric = torchsim.PSNR(data_range=1.0)
        >>> x = torch.zeros(3, 1, 4, 4)
        >>> for n in (1, 2):  # batches of 1 and 2 images
        ...     _ = metric.update(x[:n], x[:n] + 0.1)
        >>> round(metric.compute().item(), 4)
        20.0
        >>> metric.reset()
    """

    #: process group ``compute()`` reduces over (``None``: the default group)
    process_group: Optional[Any] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer(_SUM, torch.zeros((), dtype=torch.float64), persistent=False)
        self.register_buffer(_COUNT, torch.zeros((), dtype=torch.int64), persistent=False)

    # -- state -------------------------------------------------------------------------------
    def _apply(self, fn, *args, **kwargs):
        # Module.to / .cuda / .half / ... : the state follows the device, never the dtype.
        total = self._buffers[_SUM]
        out = super()._apply(fn, *args, **kwargs)
        self._buffers[_SUM] = total.to(self._buffers[_COUNT].device)
        return out

    def reset(self) -> None:
        """Forget every image seen: sum and count back to zero (in place, same device)."""
        self._buffers[_SUM].zero_()
        self._buffers[_COUNT].zero_()

    @torch.no_grad()
    def update(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Score a batch and add it to the state; returns the per-image values ``(N,)``.

        Same checks and options as ``forward``, with ``reduction="none"``. No
        host-device synchronisation (the values are added on the device; only when
        the data is on another device than the state is the state moved there, once).
        """
        values = self._values(x, y).detach()
        total, count = self._buffers[_SUM], self._buffers[_COUNT]
        if total.device != values.device:  # the state follows the data
            total, count = total.to(values.device), count.to(values.device)
            self._buffers[_SUM], self._buffers[_COUNT] = total, count
        total.add_(values.to(torch.float64).sum())
        count.add_(values.numel())
        return values

    def compute(self) -> torch.Tensor:
        """Mean per-image value over every image seen (on every rank): a float64 scalar.

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
        return state[0] / state[1]
