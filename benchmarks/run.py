"""Run benchmark suites: ``python -m benchmarks.run [suite ...] [--device cpu|cuda] [--json FILE] [--quick]``.

Suites are the ``benchmarks/cases_<suite>.py`` modules. Each exposes ``cases(device, quick)``
and, where it measures memory, ``memory_cases(device, quick)``: registries of the one shape
``{case: {backend: factory}}`` (see ``benchmarks/harness.py``), inputs from
``benchmarks/inputs.py``. ``--quick`` runs every case once on small inputs: a check that
the suites work, not a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import multiprocessing
import pkgutil

import benchmarks
from benchmarks.harness import run_cases


def available_suites():
    return sorted(m.name[len("cases_"):] for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("cases_"))


def registries(suites, device: str, quick: bool, name_filter=None):
    """``[(kind, registry), ...]`` of the suites, in order, keeping cases whose name contains
    ``name_filter``."""
    out = []
    for suite in suites:
        mod = importlib.import_module(f"benchmarks.cases_{suite}")
        found = [("time", mod.cases(device, quick))]
        if hasattr(mod, "memory_cases"):
            found.append(("memory", mod.memory_cases(device, quick)))
        for kind, registry in found:
            out.append((kind, {k: v for k, v in registry.items() if not name_filter or name_filter in k}))
    return out


def _spin() -> None:  # pragma: no cover - runs in the competing process
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF


@contextlib.contextmanager
def busy(cores: int):
    """A machine kept busy: ``cores`` competing processes spinning on pure-Python arithmetic
    for the duration (what a shared CI runner or a data loader does to a benchmark)."""
    procs = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(cores)]
    for p in procs:
        p.start()
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("suites", nargs="*", help=f"suites to run (default: all of {available_suites()})")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default=None, help="write the results (with versions and device) to this file")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds per case")
    ap.add_argument("--filter", default=None, help="only cases whose name contains this text")
    ap.add_argument("--quick", action="store_true", help="small inputs, one round, one call per block")
    ap.add_argument("--busy", type=int, nargs="?", const=1, default=0, metavar="K",
                    help="keep K cores (default 1) busy with competing processes during the run")
    args = ap.parse_args(argv)
    found = registries(args.suites or available_suites(), args.device, args.quick, args.filter)
    with busy(args.busy):
        if args.quick:
            run_cases(found, args.device, json_path=args.json, rounds=1, min_block_s=0.0)
        else:
            run_cases(found, args.device, json_path=args.json, rounds=args.rounds)


if __name__ == "__main__":
    main()
