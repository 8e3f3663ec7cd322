"""Streaming state of the metric modules, and the ``torch.distributed`` glue.

Every metric module (:class:`torchsim.modules.Metric`) inherits
:class:`StreamingMixin`, which adds

* ``update(x, y)`` — scores a batch (``reduction="none"``, under
  ``torch.no_grad()``), adds the per-image values to a float64 sum and the
  image count to a counter, and returns the per-image values;
* ``compute()`` — the mean over all images seen of the per-image value: the
  same number as one ``forward(..., reduction="mean")`` over the whole data
  set, whatever the batch sizes (so PSNR is the mean of per-image PSNRs).
  When ``torch.distributed`` is initialised the sum and the count are
  all-reduced (``SUM``) first, so every rank gets the data-set-wide value,
  exact with uneven shards;
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

This is the only file of the package that imports ``torch.distributed``; the
command line's process-group set-up and object gathering live here too.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional

import torch
import torch.distributed as dist

__all__ = [
    "StreamingMixin",
    "distributed_enabled",
    "rank_and_world",
    "init_distributed_from_env",
    "gather_to_rank0",
    "barrier",
    "shutdown_distributed",
]

_SUM = "_stream_sum"
_COUNT = "_stream_count"


def distributed_enabled() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> "tuple[int, int]":
    """``(rank, world_size)`` of the default group, ``(0, 1)`` without distributed."""
    if distributed_enabled():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _collective_device(t: torch.Tensor, group: Optional[Any] = None) -> torch.device:
    """The device a collective on ``t`` must run on (NCCL needs CUDA tensors)."""
    if t.device.type == "cpu" and dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return t.device


class StreamingMixin:
    """``update`` / ``compute`` / ``reset`` for modules that score with ``type(self)._fn``.

    The host class stores the function's keyword arguments in ``self.kwargs``
    and the function in the class attribute ``_fn``; ``update`` calls it with
    those arguments but ``reduction="none"`` (and ``return_map=False`` where the
    function has that option: only the value is accumulated; a tuple result
    contributes its first element).

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

        Same checks and arguments as ``forward`` (the stored keyword arguments),
        with ``reduction="none"``. No host-device synchronisation (the values are
        added on the device; only when the data is on another device than the
        state is the state moved there, once).
        """
        kwargs = dict(self.kwargs, reduction="none")
        if kwargs.get("return_map"):
            kwargs["return_map"] = False
        values = type(self)._fn(x, y, **kwargs)
        if isinstance(values, (tuple, list)):
            values = values[0]
        values = values.detach()
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
        if distributed_enabled():
            group = self.process_group
            state = state.to(_collective_device(state, group))  # stack made a copy: local state untouched
            dist.all_reduce(state, op=dist.ReduceOp.SUM, group=group)
            state = state.to(total.device)
        if state[1].item() == 0:
            where = " on any rank" if distributed_enabled() else ""
            raise RuntimeError(
                f"{type(self).__name__}.compute(): no images seen{where}; call update(x, y) "
                f"with at least one batch first (or after reset())"
            )
        return state[0] / state[1]


# -- process groups for the command line ----------------------------------------------------------


def init_distributed_from_env(device: str = "cpu") -> bool:
    """Initialise the default process group when launched by ``torchrun``.

    Reads ``RANK`` / ``WORLD_SIZE`` (and ``MASTER_ADDR`` / ``MASTER_PORT``, via
    ``env://``). Uses NCCL for ``device="cuda"`` (binding ``LOCAL_RANK``'s
    GPU) and gloo otherwise. Returns True when this call created the group
    (the caller then calls :func:`shutdown_distributed`), False when the
    variables are absent, the world has one process, or a group already exists.
    """
    if not dist.is_available() or dist.is_initialized():
        return False
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    if int(os.environ["WORLD_SIZE"]) <= 1:
        return False
    backend = "gloo"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        backend = "nccl"
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    return True


def gather_to_rank0(obj: Any) -> Optional[List[Any]]:
    """Picklable ``obj`` of every rank, as a list on rank 0 (``None`` elsewhere).

    Without distributed: ``[obj]``. Meant for small objects (result rows).
    """
    if not distributed_enabled():
        return [obj]
    rank, world = dist.get_rank(), dist.get_world_size()
    out: Optional[List[Any]] = [None] * world if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    """Wait for every rank (no-op without distributed)."""
    if distributed_enabled():
        dist.barrier()


def shutdown_distributed() -> None:
    """Destroy the default process group (no-op without one)."""
    if distributed_enabled():
        dist.destroy_process_group()
