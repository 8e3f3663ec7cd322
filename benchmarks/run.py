"""Run benchmark suites: ``python -m benchmarks.run [suite ...] [--device cpu|cuda] [--json FILE]``.

Suites are the ``benchmarks/cases_<suite>.py`` modules; each exposes
``cases(device) -> list[Case]``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import benchmarks
from benchmarks.harness import run_cases


def available_suites():
    return sorted(m.name[len("cases_"):] for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("cases_"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("suites", nargs="*", help=f"suites to run (default: all of {available_suites()})")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default=None, help="write the results (with versions and device) to this file")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds per case")
    ap.add_argument("--filter", default=None, help="only cases whose name contains this text")
    args = ap.parse_args(argv)
    cases = []
    for suite in args.suites or available_suites():
        mod = importlib.import_module(f"benchmarks.cases_{suite}")
        cases.extend(mod.cases(args.device))
    if args.filter:
        cases = [c for c in cases if args.filter in c.name]
    run_cases(cases, args.device, json_path=args.json, rounds=args.rounds)


if __name__ == "__main__":
    main()
