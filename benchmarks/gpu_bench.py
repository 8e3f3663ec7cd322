"""GPU benchmark: SSIM and MS-SSIM, forward and forward+backward, float32 and bfloat16.

    python -m benchmarks.gpu_bench OUT.md [--device cuda|cpu] [--quick] [--sweep]

torchsim's default kernel and its fused Triton kernels (``backend="triton"``) side by side
with pytorch-msssim, piq, torchmetrics, kornia and fused-ssim (``fused_ssim`` or ``fussim``,
where installed: it needs a CUDA build; skipped with the reason otherwise), on 16×3×256×256,
4×3×1080×1920, 1×1×2048×2048 and a 64³ volume. Each backend computes torchsim's default
convention as far as its library allows (the 2-D settings and their caveats are those of
``benchmarks/cases_core.py``, reused here; fused-ssim runs with ``padding="valid"``, its
fixed 11-tap σ = 1.5 window and C1, C2 for data range 1, which is that convention). The
"value" column shows each backend's forward result next to torchsim's, so the claim can be
checked.

Timing: per case, the backends are timed round-robin (one block of calls each, repeated),
each block between CUDA events (``perf_counter`` on the CPU), and the median block is
reported per call, with the ratio ``pytorch-msssim time / backend time`` (above 1: faster
than pytorch-msssim) and the peak memory of one call (``torch.cuda.max_memory_allocated``
above what was live before it). The table goes to OUT.md (markdown), a JSON copy next to it.

``--device cpu --quick`` runs every path on tiny shapes, so the script can be checked
without a GPU (the Triton backend then needs ``TRITON_INTERPRET=1``, else it is reported as
skipped). ``--sweep`` also times the Triton kernels' tile shapes (CUDA only).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch

from benchmarks.cases_core import LIBRARIES, Skip
from benchmarks.harness import environment, import_backend, peak_memory

DATA_RANGE = 1.0
SHAPES = [(16, 3, 256, 256), (4, 3, 1080, 1920), (1, 1, 2048, 2048), (1, 1, 64, 64, 64)]
QUICK_SHAPES = [(2, 3, 48, 50), (1, 1, 161, 170), (1, 1, 20, 21, 22)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
BASELINE = "pytorch-msssim"

Ops = Dict[str, Callable]


# --------------------------------------------------------------------------- backends


def _torchsim_triton() -> Ops:
    ts = import_backend("torchsim")
    return {
        "ssim": lambda x, y: ts.ssim(x, y, data_range=DATA_RANGE, backend="triton"),
        "ssim_loss": lambda x, y: 1 - ts.ssim(x, y, data_range=DATA_RANGE, backend="triton"),
        "ms_ssim_loss": lambda x, y: 1 - ts.ms_ssim(x, y, data_range=DATA_RANGE, backend="triton"),
    }


def _fused_ssim() -> Ops:
    # rahul-goel/fused-ssim (module fused_ssim) or its packaged fork fussim: CUDA only,
    # 11-tap Gaussian σ = 1.5 and C1 = 0.01², C2 = 0.03² fixed (data range 1); "valid" padding
    # is torchsim's convention. No MS-SSIM. Gradients flow to the first image only.
    try:
        mod = import_backend("fused_ssim")
    except ImportError:
        try:
            mod = import_backend("fussim")
        except ImportError as exc:
            raise ImportError("neither fused_ssim nor fussim is installed (both build against CUDA)") from exc

    def ssim(x, y):
        if x.device.type != "cuda":
            raise Skip("fused-ssim runs on CUDA only")
        return mod.fused_ssim(x, y, padding="valid", train=torch.is_grad_enabled())

    return {"ssim": ssim, "ssim_loss": lambda x, y: 1 - ssim(x, y)}


def _volume_ops(lib: str) -> Ops:
    """The 3-D (NCDHW) SSIM of the libraries that have one (valid region, 11-tap Gaussian)."""
    if lib in ("torchsim", "torchsim-triton"):  # the Triton backend falls back to the default kernel on volumes
        ts = import_backend("torchsim")
        backend = "triton" if lib == "torchsim-triton" else "auto"
        ssim = lambda x, y: ts.ssim(x, y, data_range=DATA_RANGE, backend=backend)  # noqa: E731
    elif lib == "pytorch-msssim":
        pm = import_backend("pytorch_msssim")
        ssim = lambda x, y: pm.ssim(x, y, data_range=DATA_RANGE, win_size=11, win_sigma=1.5)  # noqa: E731
    elif lib == "torchmetrics":
        tmi = import_backend("torchmetrics.functional.image")

        def ssim(x, y):
            _, full = tmi.structural_similarity_index_measure(
                x, y, return_full_image=True, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=DATA_RANGE
            )
            return full[..., 5:-5, 5:-5, 5:-5].mean()

    elif lib == "kornia":
        kornia = import_backend("kornia")
        ssim = lambda x, y: kornia.metrics.ssim3d(x, y, 11, max_val=DATA_RANGE, padding="valid").mean()  # noqa: E731
    else:
        raise Skip(f"{lib} has no 3-D SSIM")
    return {"ssim": ssim, "ssim_loss": lambda x, y: 1 - ssim(x, y)}


def _ops(lib: str, volume: bool) -> Ops:
    if volume:
        ops = _volume_ops(lib)
    elif lib == "torchsim-triton":
        ops = _torchsim_triton()
    elif lib == "fused-ssim":
        ops = _fused_ssim()
    else:
        ops = LIBRARIES[lib.replace("-", "_")]()
    if "ms_ssim_loss" in ops:  # forward-only MS-SSIM: the loss's kernels plus two subtractions
        ops["ms_ssim"] = lambda x, y: 1 - ops["ms_ssim_loss"](x, y)
    return ops


BACKENDS = ["torchsim", "torchsim-triton", "pytorch-msssim", "piq", "torchmetrics", "kornia", "fused-ssim"]


# --------------------------------------------------------------------------- cases


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def _inputs(shape, device: str):
    """x ~ U[0, 1), y = clamp(x + N(0, 0.05²)): any rank (the 64³ volume too), the same numbers on every device."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g)
    y = (x + 0.05 * torch.randn(shape, generator=g)).clamp_(0.0, 1.0)
    return x.to(device), y.to(device)


def _make(lib: str, op: str, shape, dtype: torch.dtype, device: str, backward: bool) -> Callable[[], object]:
    """A zero-argument call of ``op`` (a loss when ``backward``), or Skip/ImportError."""
    volume = len(shape) == 5
    ops = _ops(lib, volume)
    if op not in ops:
        raise Skip(f"{lib} has no {op.replace('_loss', '')}")
    fn = ops[op]
    x, y = _inputs(shape, device)
    x, y = x.to(dtype).requires_grad_(backward), y.to(dtype)
    if backward:

        def call():
            fn(x, y).backward()
            x.grad = None

    else:

        def call():
            with torch.no_grad():
                return fn(x, y)

    return call


class _Timer:
    """Mean seconds per call over a block of ``n`` calls: CUDA events on a GPU, wall clock on the CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"

    def __call__(self, fn: Callable[[], object], n: int) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize()
            start.record()
            for _ in range(n):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3 / n
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) / n


def run_case(op: str, shape, dtype_name: str, device: str, libs: List[str], rounds: int, block_s: float) -> Dict[str, dict]:
    backward = op.endswith("_loss")
    dtype = DTYPES[dtype_name]
    timer = _Timer(device)
    fns: Dict[str, Callable[[], object]] = {}
    res: Dict[str, dict] = {}
    for lib in libs:
        try:
            fn = _make(lib, op, shape, dtype, device, backward)
            out = fn()  # warm-up: compiles the Triton kernels, fills caches
            entry = {"peak_mib": peak_memory(fn, device) / 2**20}
            if out is not None:
                entry["value"] = float(out)
            res[lib] = entry
            fns[lib] = fn
        except (ImportError, Skip) as exc:
            res[lib] = {"skipped": str(exc)[:200]}
        except Exception as exc:  # a backend that fails on a case is reported, not fatal
            res[lib] = {"skipped": f"error: {type(exc).__name__}: {exc}"[:200]}
    reps = {lib: max(1, int(block_s / max(timer(fn, 1), 1e-6))) for lib, fn in fns.items()}
    samples: Dict[str, List[float]] = {lib: [] for lib in fns}
    for _ in range(rounds):
        for lib, fn in fns.items():
            samples[lib].append(timer(fn, reps[lib]))
    for lib, s in samples.items():
        res[lib]["median_s"] = statistics.median(s)
    return res


def _fmt_ms(s: float) -> str:
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def table(title: str, res: Dict[str, dict]) -> str:
    base = res.get(BASELINE, {}).get("median_s")
    ref = res.get("torchsim", {}).get("value")
    lines = [f"### {title}", "", f"| backend | time per call | {BASELINE} ÷ backend | peak memory | value (Δ vs torchsim) |",
             "|---|---:|---:|---:|---|"]  # fmt: skip
    timed = sorted((lib for lib in res if "median_s" in res[lib]), key=lambda lib: res[lib]["median_s"])
    for lib in timed:
        r = res[lib]
        ratio = f"{base / r['median_s']:.2f}×" if base else "-"
        value = f"{r['value']:.6f} ({r['value'] - ref:+.1e})" if "value" in r and ref is not None else ""
        lines.append(f"| {lib} | {_fmt_ms(r['median_s'])} | {ratio} | {r['peak_mib']:.1f} MiB | {value} |")
    for lib, r in res.items():
        if "skipped" in r:
            lines.append(f"| {lib} | skipped: {r['skipped']} | | | |")
    return "\n".join(lines) + "\n"


def sweep(device: str, quick: bool) -> str:
    """Time the Triton kernels' tile shapes on one case (CUDA): which defaults to keep."""
    from torchsim.kernels import triton_ssim as T

    shape = (2, 3, 64, 80) if quick else (4, 3, 1080, 1920)
    configs = [(64, 32, 8), (64, 32, 4), (32, 32, 4), (64, 64, 8), (128, 32, 8)]
    saved = (T.FWD_BLOCK_W, T.BWD_BLOCK_W, T.NUM_WARPS)
    timer = _Timer(device)
    lines = [f"### Triton tile sweep: ssim fwd+bwd {_shape(shape)} float32", "",
             "| FWD_BLOCK_W | BWD_BLOCK_W | NUM_WARPS | time per call |", "|---:|---:|---:|---:|"]  # fmt: skip
    try:
        for cfg in configs:
            T.FWD_BLOCK_W, T.BWD_BLOCK_W, T.NUM_WARPS = cfg
            try:
                fn = _make("torchsim-triton", "ssim_loss", shape, torch.float32, device, True)
                fn()
                t = statistics.median(timer(fn, 3 if not quick else 1) for _ in range(3))
                lines.append(f"| {cfg[0]} | {cfg[1]} | {cfg[2]} | {_fmt_ms(t)} |")
            except Exception as exc:
                lines.append(f"| {cfg[0]} | {cfg[1]} | {cfg[2]} | error: {type(exc).__name__}: {str(exc)[:80]} |")
    finally:
        T.FWD_BLOCK_W, T.BWD_BLOCK_W, T.NUM_WARPS = saved
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="markdown file to write the tables to (a .json copy is written next to it)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="tiny shapes, few rounds: checks that every path runs")
    ap.add_argument("--sweep", action="store_true", help="also time the Triton tile shapes (CUDA)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per case (default 5, quick 2)")
    ap.add_argument("--filter", default=None, help="only cases whose title contains this text")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_bench: --device cuda but no CUDA device is available (use --device cpu --quick to check the script)")
        return 2
    rounds = args.rounds or (2 if args.quick else 5)
    block_s = 0.005 if args.quick else 0.05
    shapes = QUICK_SHAPES if args.quick else SHAPES
    env = environment(args.device)
    sections = [f"# SSIM / MS-SSIM on {env.get('gpu', args.device)}\n",
                "torch " + env["torch"] + "; " + ", ".join(f"{k} {v}" for k, v in env.items() if k in ("torchsim", "pytorch_msssim", "piq", "torchmetrics", "kornia")) + "\n"]  # fmt: skip
    report = {"environment": env, "cases": {}}
    sections.append(
        "MS-SSIM runs on the 2-D shapes only: its 5 scales of an 11-tap window need 161 px a side "
        "(no library computes it on the 64³ volume); the Triton backend runs volumes on the default kernel.\n"
    )
    ops = [("ssim", "ssim fwd"), ("ssim_loss", "ssim fwd+bwd"), ("ms_ssim", "ms_ssim fwd"), ("ms_ssim_loss", "ms_ssim fwd+bwd")]
    for dtype_name in DTYPES:
        for op, label in ops:
            for shape in shapes:
                if op.startswith("ms_ssim") and (len(shape) == 5 or min(shape[2:]) < 161):
                    continue
                title = f"{label} {_shape(shape)} {dtype_name}"
                if args.filter and args.filter not in title:
                    continue
                t0 = time.perf_counter()
                res = run_case(op, shape, dtype_name, args.device, BACKENDS, rounds, block_s)
                report["cases"][title] = res
                sections.append(table(title, res))
                print(sections[-1], f"({time.perf_counter() - t0:.1f} s)\n", flush=True)
                _write(args.out, sections, report)  # after every case: a run cut short keeps what it measured
    if args.sweep and args.device == "cuda":
        sections.append(sweep(args.device, args.quick))
        print(sections[-1], flush=True)
    _write(args.out, sections, report)
    print(f"wrote {args.out}")
    return 0


def _write(path: str, sections: List[str], report: dict) -> None:
    with open(path, "w") as fh:
        fh.write("\n".join(sections))
    with open(path.rsplit(".", 1)[0] + ".json", "w") as fh:
        json.dump(report, fh, indent=1, default=str)


if __name__ == "__main__":
    sys.exit(main())
