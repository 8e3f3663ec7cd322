"""One benchmark harness: interleaved timing of several backends, medians and ratios.

Every suite (``benchmarks/cases_<suite>.py``) describes its cases in one registry shape,
``{case: {backend: factory}}`` (``Registry``): ``cases(device, quick)`` for timings and,
where it has them, ``memory_cases(device, quick)`` for peak memory. A factory is a
zero-argument callable that builds the inputs (from ``benchmarks/inputs.py``) and returns the
zero-argument callable that is measured, or raises ``ImportError`` / ``Skip`` when the
backend is not installed or cannot run the case. Backends of one case are timed
round-robin — one block each, repeated — so that machine noise hits all of them alike;
the table reports each backend's median and its ratio to the fastest and to torchsim.
Memory cases report the peak bytes allocated during one call (CUDA: the caching
allocator's peak; CPU: torch's profiler memory, see ``peak_memory``). Every number in a
table is measured; nothing is extrapolated.
"""

from __future__ import annotations

import gc
import os
import json
import platform
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch


class Skip(Exception):
    """Raised by a factory when its backend cannot run this case."""


Factory = Callable[[], Callable[[], object]]
Registry = Dict[str, Dict[str, Factory]]  # {case: {backend: factory}}
OURS = "torchsim"  # the backend the "others ÷ torchsim" column divides by


def import_backend(name: str):
    """Import a competing library, or raise ImportError with a clear reason (-> reported skipped)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{name} not installed ({exc})") from exc


def _sync(device: Optional[str]) -> None:
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize()


def _block(fn: Callable[[], object], n: int, device: Optional[str]) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / n


def time_case(backends: Dict[str, Factory], device: str, rounds: int = 7, min_block_s: float = 0.2) -> Dict[str, dict]:
    fns: Dict[str, Callable[[], object]] = {}
    results: Dict[str, dict] = {}
    for name, factory in backends.items():
        try:
            fn = factory()
            fn()  # warm-up (and compile, where a backend compiles)
            fns[name] = fn
        except (ImportError, Skip, NotImplementedError) as exc:
            results[name] = {"skipped": f"{type(exc).__name__}: {exc}"[:120]}
        except Exception as exc:  # a competitor that fails on this case is reported, not fatal
            results[name] = {"skipped": f"error: {type(exc).__name__}: {exc}"[:120]}
    reps = {}
    for name, fn in fns.items():
        t = _block(fn, 1, device)
        reps[name] = max(1, int(min_block_s / max(t, 1e-6)))
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(_block(fn, reps[name], device))
    for name, s in samples.items():
        results[name] = {"median_s": statistics.median(s), "min_s": min(s), "samples": s}
    return results


def peak_memory(fn: Callable[[], object], device: str) -> int:
    """Peak bytes allocated by one call of ``fn`` beyond what was live before it."""
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    # The profiler records the allocations of the thread it runs in: torchsim's chunk workers
    # (torchsim/ops/parallel.py) would go unseen, so the CPU peak is taken with the chunks run
    # serially in this thread. The parallel mode's peak is no higher (peak RSS growth, glibc
    # returning every large block: 57-60 MiB parallel vs 111 MiB serial, 16x3x256x256 fwd+bwd).
    previous = os.environ.get("TORCHSIM_CHUNK_WORKERS")
    os.environ["TORCHSIM_CHUNK_WORKERS"] = "1"
    try:
        return _profiled_peak(fn)
    finally:
        if previous is None:
            del os.environ["TORCHSIM_CHUNK_WORKERS"]
        else:
            os.environ["TORCHSIM_CHUNK_WORKERS"] = previous


def _profiled_peak(fn: Callable[[], object]) -> int:
    """Peak bytes of CPU memory allocated in this thread by one call of ``fn`` (torch's profiler)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cpu_kinds = (DeviceType.CPU, DeviceType.MKLDNN, DeviceType.IDEEP)  # as torch.autograd.profiler counts CPU memory

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Replay the raw allocator records ("[memory]" events: +bytes on alloc, -bytes on free)
    # in time order to get the high-water mark. Summing the per-op ``cpu_memory_usage`` of
    # ``prof.events()`` is wrong: it is inclusive of nested ops (aten::conv2d ->
    # convolution -> _convolution -> mkldnn_convolution -> empty counts one output five
    # times) and, being a net figure per op, misses workspaces allocated and freed inside one op.
    records = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() in cpu_kinds
    )
    cur = peak = 0
    for _, nbytes in records:
        cur += nbytes
        peak = max(peak, cur)
    return peak


def memory_case(backends: Dict[str, Factory], device: str) -> Dict[str, dict]:
    results: Dict[str, dict] = {}
    for name, factory in backends.items():
        try:
            fn = factory()
            fn()
            results[name] = {"peak_bytes": peak_memory(fn, device)}
        except (ImportError, Skip, NotImplementedError) as exc:
            results[name] = {"skipped": f"{type(exc).__name__}: {exc}"[:120]}
        except Exception as exc:
            results[name] = {"skipped": f"error: {type(exc).__name__}: {exc}"[:120]}
    return results


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:8.2f} s "
    if s >= 1e-3:
        return f"{s * 1e3:8.2f} ms"
    return f"{s * 1e6:8.1f} us"


def print_table(name: str, kind: str, res: Dict[str, dict], out=sys.stdout) -> None:
    key = "median_s" if kind == "time" else "peak_bytes"
    ok = {k: v[key] for k, v in res.items() if key in v}
    print(f"\n### {name}", file=out)
    if not ok:
        print("(no backend ran)", file=out)
    best = min(ok.values()) if ok else None
    ours = ok.get(OURS)
    hdr = "| backend | median | × fastest | others ÷ torchsim |" if kind == "time" else "| backend | peak memory | × smallest | others ÷ torchsim |"
    print(hdr, file=out)
    print("|---|---:|---:|---:|", file=out)
    for name in sorted(ok, key=ok.get):
        v = ok[name]
        shown = _fmt_time(v) if kind == "time" else f"{v / 2**20:9.1f} MiB"
        rel = f"{v / best:6.2f}" if best else "-"
        vs = f"{v / ours:6.2f}" if ours else "-"
        print(f"| {name} | {shown} | {rel} | {vs} |", file=out)
    for name, v in res.items():
        if key not in v:
            print(f"| {name} | skipped: {v.get('skipped', '')} | | |", file=out)


def environment(device: str) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "device": device,
    }
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    for mod in ("torchsim", "pytorch_msssim", "piq", "torchmetrics", "kornia", "monai", "skimage", "cv2", "sklearn", "imagehash", "pixelmatch"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", "?")
        except Exception:
            pass
    return info


def run_cases(
    registries: List[Tuple[str, Registry]],
    device: str = "cpu",
    json_path: Optional[str] = None,
    rounds: int = 7,
    min_block_s: float = 0.2,
) -> dict:
    """Run ``[(kind, registry), ...]`` in order (kind ``"time"`` or ``"memory"``), print a table per
    case and return (and optionally save as JSON) the report."""
    report = {"environment": environment(device), "cases": {}}
    print(f"# device: {device}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    todo = [(name, kind, backends) for kind, registry in registries for name, backends in registry.items()]
    for name, kind, backends in todo:
        if kind == "time":
            res = time_case(backends, device, rounds=rounds, min_block_s=min_block_s)
        else:
            res = memory_case(backends, device)
        report["cases"][name] = {"kind": kind, "results": res}
        print_table(name, kind, res)
        sys.stdout.flush()
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
        print(f"\nsaved {json_path}")
    return report
