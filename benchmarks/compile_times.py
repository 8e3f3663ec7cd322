"""How long ``torch.compile`` of SSIM takes, torchsim next to pytorch-msssim (CPU, inductor).

    python -m benchmarks.compile_times [--threads 2] [--out FILE.md]

For each library, ``torch.compile(lambda x, y: ssim(x, y, data_range=1.0))`` runs in a fresh
process three times: *cold* (empty inductor and Triton caches, in a new temporary folder:
this includes inductor's one-off C++ set-up, the same for any function), *primed* (an empty
folder again, but a trivial function compiled first in the same process: the cost of this
graph alone) and *warm* (the primed run's folder again, as a second run of a training script
finds it). Each process
times the first call on 4×3×128×128 (trace + compile + run), the first call on a second
shape 4×3×96×160 (by default a retrace with dynamic shapes), the first call of a separate
``dynamic=True`` compile, and then the median forward call, compiled and eager, on the first
shape (compiled and eager calls alternate, so machine noise hits both). Forward only, under
``torch.no_grad()``.
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

SHAPE_1 = (4, 3, 128, 128)
SHAPE_2 = (4, 3, 96, 160)
LIBS = ("torchsim", "pytorch_msssim")


def _child(lib: str, threads: int, prime: bool) -> dict:
    import torch

    torch.set_num_threads(threads)
    if prime:
        torch.compile(lambda a: a * 2 + 1)(torch.rand(8))
        torch._dynamo.reset()
    if lib == "torchsim":
        import torchsim

        def f(x, y):
            return torchsim.ssim(x, y, data_range=1.0)

    else:
        import pytorch_msssim

        def f(x, y):
            return pytorch_msssim.ssim(x, y, data_range=1.0)

    g = torch.Generator().manual_seed(0)
    x1, y1 = torch.rand(SHAPE_1, generator=g), torch.rand(SHAPE_1, generator=g)
    x2, y2 = torch.rand(SHAPE_2, generator=g), torch.rand(SHAPE_2, generator=g)

    def first_call(fn, x, y):
        t0 = time.perf_counter()
        with torch.no_grad():
            fn(x, y)
        return time.perf_counter() - t0

    def per_call(fns, n=30):
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


def _run(lib: str, cache: str, threads: int, prime: bool) -> dict:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=os.path.join(cache, "inductor"), TRITON_CACHE_DIR=os.path.join(cache, "triton"))
    cmd = [sys.executable, "-m", "benchmarks.compile_times", "--child", lib, "--threads", str(threads)] + ["--prime"] * prime
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _fmt(s: float) -> str:
    return f"{s:.2f} s" if s >= 1 else f"{s * 1e3:.1f} ms"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the markdown table to this file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--prime", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.threads, args.prime)))
        return
    rows = []
    for lib in LIBS:
        with tempfile.TemporaryDirectory() as cold, tempfile.TemporaryDirectory() as cache:
            for phase, folder, prime in (("cold", cold, False), ("primed", cache, True), ("warm", cache, True)):
                r = _run(lib, folder, args.threads, prime)
                rows.append(
                    f"| {lib} | {phase} | {_fmt(r['first_shape_s'])} | {_fmt(r['second_shape_s'])} | "
                    f"{_fmt(r['dynamic_first_s'])} | {_fmt(r['compiled_call_s'])} | {_fmt(r['eager_call_s'])} |"
                )
                print(rows[-1], flush=True)
    import torch

    head = [
        f"torch.compile (inductor, CPU, {args.threads} threads, torch {torch.__version__}) of "
        f"`ssim(x, y, data_range=1.0)`, forward; first shape {'x'.join(map(str, SHAPE_1))}, "
        f"second {'x'.join(map(str, SHAPE_2))}",
        "",
        "| library | caches | 1st call, 1st shape | 1st call, 2nd shape | 1st call, dynamic=True | compiled call | eager call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    text = "\n".join(head + rows) + "\n"
    print("\n" + text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
