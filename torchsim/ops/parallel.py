"""Chunk-parallel CPU execution: a kernel's chunks on single-threaded workers.

A tiled CPU kernel (the SSIM kernel over :class:`~torchsim.ops.tiling.RowTiles`) runs
some twenty small, cache-resident tensor ops per chunk. Run one after the other with
PyTorch's intra-op threads, every op is its own OpenMP parallel region closed by a
barrier; on a machine where another process holds a core, each barrier waits for a
descheduled thread, and the kernel slowed down 5-6x (measured on the project's 2-core
machine at load ~7: SSIM forward 16x3x256x256 1.6-1.9 s serial-with-threads vs 0.29-0.33 s
here, bit-identical results). :func:`run_chunks` instead hands whole chunks to a pool of
worker threads whose own intra-op thread count is 1: no barrier inside a chunk, and a
worker slowed by a busy core simply takes fewer chunks.

Determinism: ``compute(i)`` runs on any worker, in any order; ``commit(i, result)`` runs
under a lock in chunk order ``0, 1, 2, ...`` (by whichever worker finishes the chunk that
unblocks it), so every accumulation happens in the serial order and results are bit for bit
those of the serial loop.

The pool holds ``torch.get_num_threads()`` daemon threads (re-created after a fork or a
change of the thread count). It is used only on the CPU, outside ``torch.compile`` tracing,
not from inside a worker, with at least two chunks and two threads, and only when the
threading backend gives each thread its own intra-op thread count (OpenMP, PyTorch's
default; checked once). ``TORCHSIM_CHUNK_WORKERS=1`` turns it off (any other value ``n``
caps the workers at ``n``).
"""

from __future__ import annotations

import os
import queue
import threading
from typing import Any, Callable, Dict, Optional

import torch

__all__ = ["run_chunks", "chunk_workers"]

Scratch = Dict[str, Any]

_local = threading.local()  # .inside: this thread is a chunk worker
_pool_lock = threading.Lock()
_pool: Optional["_Pool"] = None


class _Pool:
    """``n`` daemon threads whose OpenMP intra-op thread count is 1, fed from one queue."""

    def __init__(self, n: int) -> None:
        self.n, self.pid = n, os.getpid()
        caller = torch.get_num_threads()
        self.tasks: "queue.SimpleQueue[Optional[Callable[[], None]]]" = queue.SimpleQueue()
        ready, restored, checked = threading.Barrier(n + 1), threading.Event(), threading.Barrier(n + 1)
        counts = []

        def loop() -> None:
            torch.get_num_threads()  # PyTorch's lazy per-thread init first, or it would undo the next line
            torch.set_num_threads(1)  # OpenMP: sets this thread's count (and, as a side effect, the global one)
            ready.wait()
            restored.wait()
            counts.append(torch.get_num_threads())
            checked.wait()
            _local.inside = True
            while True:
                task = self.tasks.get()
                if task is None:  # the pool was replaced
                    return
                task()

        for _ in range(n):
            threading.Thread(target=loop, name="torchsim-chunks", daemon=True).start()
        ready.wait()
        torch.set_num_threads(caller)  # the caller's count back, and the global one for threads made later
        restored.set()
        checked.wait()
        # With a backend whose thread count is process-wide the workers would each run n threads.
        self.usable = all(c == 1 for c in counts)


def chunk_workers() -> int:
    """How many workers :func:`run_chunks` would use now on the CPU (1: it runs serially)."""
    n = torch.get_num_threads()
    cap = os.environ.get("TORCHSIM_CHUNK_WORKERS", "")
    if cap.strip().isdigit():
        n = min(n, max(1, int(cap)))
    return n


def _get_pool(n: int) -> Optional[_Pool]:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.n != n or _pool.pid != os.getpid():
            if _pool is not None and _pool.pid == os.getpid():
                for _ in range(_pool.n):
                    _pool.tasks.put(None)
            _pool = _Pool(n)
        return _pool if _pool.usable else None


def run_chunks(
    n_chunks: int,
    compute: Callable[[int, Scratch], Any],
    commit: Callable[[int, Any], None],
    device: torch.device,
) -> None:
    """``for i in range(n_chunks): commit(i, compute(i, scratch))``, with the computes in parallel.

    Args:
        n_chunks: number of chunks.
        compute: ``(i, scratch) -> result``; ``scratch`` is a dict private to the thread that
            runs it (work buffers reused across that thread's chunks). Must not write
            anything another chunk reads or writes.
        commit: ``(i, result) -> None``, called in chunk order, one at a time: the place for
            accumulations into shared tensors.
        device: where the chunks' tensors live; only ``cpu`` runs in parallel.

    Gradient recording is off inside (the kernels this serves are autograd Functions), and
    inference mode is carried over from the caller.

    Example:
        >>> import torch
        >>> from torchsim.ops.parallel import run_chunks
        >>> total = torch.zeros(())
        >>> run_chunks(4, lambda i, s: torch.full((), float(i)), lambda i, r: total.add_(r), torch.device("cpu"))
        >>> total
        tensor(6.)
    """
    workers = chunk_workers()
    pool = None
    if (
        device.type == "cpu"
        and workers > 1
        and n_chunks > 1
        and not getattr(_local, "inside", False)
        and not torch.compiler.is_compiling()
    ):
        pool = _get_pool(workers)
    if pool is None:
        scratch: Scratch = {}
        for i in range(n_chunks):
            commit(i, compute(i, scratch))
        return

    inference = torch.is_inference_mode_enabled()
    lock = threading.Lock()
    state = {"next": 0, "commit": 0, "error": None}
    pending: Dict[int, Any] = {}
    finished = threading.Semaphore(0)

    def drain() -> None:
        scratch: Scratch = {}
        try:
            with torch.inference_mode(inference), torch.no_grad():
                while True:
                    with lock:
                        if state["error"] is not None or state["next"] >= n_chunks:
                            return
                        i = state["next"]
                        state["next"] = i + 1
                    result = compute(i, scratch)
                    with lock:
                        pending[i] = result
                        while state["error"] is None and state["commit"] in pending:
                            j = state["commit"]
                            commit(j, pending.pop(j))
                            state["commit"] = j + 1
        except BaseException as exc:  # re-raised in the caller
            with lock:
                if state["error"] is None:
                    state["error"] = exc
        finally:
            finished.release()

    drains = min(pool.n, n_chunks)
    for _ in range(drains):
        pool.tasks.put(drain)
    try:
        for _ in range(drains):
            finished.acquire()
    except BaseException as exc:  # e.g. KeyboardInterrupt in the caller: the workers stop after their chunk
        with lock:
            if state["error"] is None:
                state["error"] = exc
        raise
    if state["error"] is not None:
        raise state["error"]
