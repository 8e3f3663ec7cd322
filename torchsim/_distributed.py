"""The ``torch.distributed`` glue: the only file of the package that imports it.

* :func:`all_reduce_sum` — what ``compute()`` of a streaming metric does with its
  sum/count state when a process group is initialised (NCCL collectives run on the
  current CUDA device, gloo on the tensor's own device);
* :func:`init_distributed_from_env`, :func:`gather_to_rank0`, :func:`barrier`,
  :func:`shutdown_distributed`, :func:`rank_and_world` — the process-group life
  cycle of ``torchsim score`` under ``torchrun``;
* :class:`PeerFailure` — what a collective raises when another rank died, or did not
  answer within the process group's timeout (instead of torch's backend error).

Every function is a no-op (or the single-process answer) when ``torch.distributed``
is unavailable or no process group is initialised.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist

__all__ = [
    "PeerFailure",
    "distributed_enabled",
    "rank_and_world",
    "all_reduce_sum",
    "init_distributed_from_env",
    "gather_to_rank0",
    "barrier",
    "shutdown_distributed",
]


class PeerFailure(RuntimeError):
    """A collective could not complete: another rank died, or did not reach it within the
    process group's timeout. A ``RuntimeError``, as torch's own backend errors are."""


def _collective(fn, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` (a ``torch.distributed`` collective), its backend error as :class:`PeerFailure`."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as exc:  # gloo / NCCL: peer closed the connection, timed out, aborted
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        first = re.sub(r"^\[[^\]]*\]\s*", "", first)  # gloo's "[.../pair.cc:598] " source location
        raise PeerFailure(f"{fn.__name__} failed: {first}") from exc


def distributed_enabled() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> Tuple[int, int]:
    """``(rank, world_size)`` of the default group, ``(0, 1)`` without distributed."""
    if distributed_enabled():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(t: torch.Tensor, group: Optional[Any] = None) -> torch.Tensor:
    """``t`` summed over every rank of ``group`` (the default group when ``None``).

    A collective: every rank of the group must call it. Returns a new tensor on
    ``t``'s device; ``t`` itself is left untouched. Without distributed, a copy of ``t``.
    """
    out = t.clone()
    if not distributed_enabled():
        return out
    if out.device.type == "cpu" and dist.get_backend(group) == "nccl":  # NCCL needs CUDA tensors
        out = out.to(torch.device("cuda", torch.cuda.current_device()))
    _collective(dist.all_reduce, out, op=dist.ReduceOp.SUM, group=group)
    return out.to(t.device)


def init_distributed_from_env(device: str = "cpu", timeout: Optional[float] = None) -> bool:
    """Initialise the default process group when launched by ``torchrun``.

    Reads ``RANK`` / ``WORLD_SIZE`` (and ``MASTER_ADDR`` / ``MASTER_PORT``, via
    ``env://``). Uses NCCL for ``device="cuda"`` (binding ``LOCAL_RANK``'s
    GPU) and gloo otherwise. Returns True when this call created the group
    (the caller then calls :func:`shutdown_distributed`), False when the
    variables are absent, the world has one process, or a group already exists.
    ``timeout`` (seconds; ``None``: torch's default) bounds how long a collective waits
    for the other ranks before it raises :class:`PeerFailure`.
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
    kwargs = {} if timeout is None else {"timeout": datetime.timedelta(seconds=timeout)}
    dist.init_process_group(backend=backend, init_method="env://", **kwargs)
    return True


def gather_to_rank0(obj: Any) -> Optional[List[Any]]:
    """Picklable ``obj`` of every rank, as a list on rank 0 (``None`` elsewhere).

    Without distributed: ``[obj]``. Meant for small objects (result rows).
    """
    if not distributed_enabled():
        return [obj]
    rank, world = dist.get_rank(), dist.get_world_size()
    out: Optional[List[Any]] = [None] * world if rank == 0 else None
    _collective(dist.gather_object, obj, out, dst=0)
    return out


def barrier() -> None:
    """Wait for every rank (no-op without distributed)."""
    if distributed_enabled():
        _collective(dist.barrier)


def shutdown_distributed() -> None:
    """Destroy the default process group (no-op without one)."""
    if distributed_enabled():
        dist.destroy_process_group()
