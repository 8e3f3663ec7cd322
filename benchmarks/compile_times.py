"""How long ``torch.compile`` takes, torchsim next to pytorch-msssim (CPU, inductor).

    python -m benchmarks.compile_times [--threads 2] [--out FILE.md] [--small]
                                       [--cases torchsim:ssim,pytorch_msssim:ms_ssim,...]
                                       [--phases cold,primed,warm]

Functions (``--cases``, default all): ``torchsim:ssim``, ``pytorch_msssim:ssim``,
``torchsim:ms_ssim``, ``pytorch_msssim:ms_ssim`` (``data_range=1.0``, default options) and
``torchsim:nmi_loss`` (``torchsim.NMILoss()``: the soft joint histogram, 256 bins). Each runs
``torch.compile(f)`` in a fresh process three times: *cold* (empty inductor and Triton caches,
in a new temporary folder: this includes inductor's one-off C++ set-up, the same for any
function), *primed* (an empty folder again, but a trivial function compiled first in the same
process: the cost of this graph alone) and *warm* (the primed run's folder again, as a second
run of a training script finds it). Each process times the first call on the first shape
(trace + compile + run), the first call on a second shape (by default a retrace with dynamic
shapes: the recompile time), the first call of a separate ``dynamic=True`` compile, and then
the median forward call, compiled and eager, on the first shape (compiled and eager calls
alternate, so machine noise hits both). Forward only, under ``torch.no_grad()``.

Shapes: SSIM and the NMI loss 4×3×128×128 then 4×3×96×160; MS-SSIM (whose default window
needs sides of at least 161) 4×3×192×192 then 4×3×176×224. ``--small`` (a quick check that
the script works): 2×3×48×48 / 2×3×40×56 and 2×1×176×176 / 2×1×168×192, fewer timed calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CASES = ("torchsim:ssim", "pytorch_msssim:ssim", "torchsim:ms_ssim", "pytorch_msssim:ms_ssim", "torchsim:nmi_loss")
PHASES = ("cold", "primed", "warm")
SHAPES = {  # (first shape, second shape) per function, full size and --small
    "ssim": ((4, 3, 128, 128), (4, 3, 96, 160)),
    "nmi_loss": ((4, 3, 128, 128), (4, 3, 96, 160)),
    "ms_ssim": ((4, 3, 192, 192), (4, 3, 176, 224)),
}
SMALL_SHAPES = {
    "ssim": ((2, 3, 48, 48), (2, 3, 40, 56)),
    "nmi_loss": ((2, 3, 48, 48), (2, 3, 40, 56)),
    "ms_ssim": ((2, 1, 176, 176), (2, 1, 168, 192)),
}


def _function(case: str):
    lib, name = case.split(":")
    if lib == "torchsim":
        import torchsim

        if name == "nmi_loss":
            return torchsim.NMILoss()
        fn = getattr(torchsim, name)
    else:
        import pytorch_msssim

        fn = getattr(pytorch_msssim, name)

    def f(x, y):
        return fn(x, y, data_range=1.0)

    return f


def _child(case: str, threads: int, prime: bool, small: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    if prime:
        torch.compile(lambda a: a * 2 + 1)(torch.rand(8))
        torch._dynamo.reset()
    f = _function(case)
    shape_1, shape_2 = (SMALL_SHAPES if small else SHAPES)[case.split(":")[1]]
    g = torch.Generator().manual_seed(0)
    x1, y1 = torch.rand(shape_1, generator=g), torch.rand(shape_1, generator=g)
    x2, y2 = torch.rand(shape_2, generator=g), torch.rand(shape_2, generator=g)

    def first_call(fn, x, y):
        t0 = time.perf_counter()
        with torch.no_grad():
            fn(x, y)
        return time.perf_counter() - t0

    def per_call(fns, n=5 if small else 30):
        times = [[] for _ in fns]
        with torch.no_grad():
            for _ in range(n):
                for fn, t in zip(fns, times):
                    t0 = time.perf_counter()
                    fn(x1, y1)
                    t.append(time.perf_counter() - t0)
        return [statistics.median(t) for t in times]

    compiled = torch.compile(f)
    out = {"first_shape_s": first_call(compiled, x1, y1), "second_shape_s": first_call(compiled, x2, y2)}
    out["compiled_call_s"], out["eager_call_s"] = per_call([compiled, f])
    torch._dynamo.reset()
    out["dynamic_first_s"] = first_call(torch.compile(f, dynamic=True), x1, y1)
    return out


def _run(case: str, cache: str, threads: int, prime: bool, small: bool) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"), TRITON_CACHE_DIR=os.path.join(cache, "triton"))
    cmd = [sys.executable, "-m", "benchmarks.compile_times", "--child", case, "--threads", str(threads)]
    cmd += ["--prime"] * prime + ["--small"] * small
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _fmt(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.1f} ms"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the markdown table to this file")
    ap.add_argument("--small", action="store_true", help="small shapes, few timed calls: check that it runs")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated library:function, of " + ", ".join(CASES))
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated, of " + ", ".join(PHASES))
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--prime", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.threads, args.prime, args.small)))
        return
    cases, phases = args.cases.split(","), args.phases.split(",")
    for c in cases:
        if c not in CASES:
            ap.error(f"--cases: unknown {c!r}, expected some of {', '.join(CASES)}")
    for p in phases:
        if p not in PHASES:
            ap.error(f"--phases: unknown {p!r}, expected some of {', '.join(PHASES)}")
    rows = []
    for case in cases:
        lib, name = case.split(":")
        with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as cache:
            for phase, folder, prime in (("cold", cold, False), ("primed", cache, True), ("warm", cache, True)):
                if phase not in phases and not (phase == "primed" and "warm" in phases):  # warm needs primed's cache
                    continue
                r = _run(case, folder, args.threads, prime, args.small)
                if phase not in phases:
                    continue
                rows.append(
                    f"| {lib} | {name} | {phase} | {_fmt(r['first_shape_s'])} | {_fmt(r['second_shape_s'])} | "
                    f"{_fmt(r['dynamic_first_s'])} | {_fmt(r['compiled_call_s'])} | {_fmt(r['eager_call_s'])} |"
                )
                print(rows[-1], flush=True)
    import torch

    shapes = SMALL_SHAPES if args.small else SHAPES
    described = "; ".join(
        f"{name}: {'x'.join(map(str, a))} then {'x'.join(map(str, b))}" for name, (a, b) in shapes.items()
    )
    head = [
        f"torch.compile (inductor, CPU, {args.threads} threads, torch {torch.__version__}), forward; "
        f"first and second shape per function: {described}",
        "",
        "| library | function | caches | 1st call, 1st shape | 1st call, 2nd shape (recompile) | "
        "1st call, dynamic=True | compiled call | eager call |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    text = "\n".join(head + rows) + "\n"
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
