"""Throughput of ``torchsim score`` on a folder of PNG pairs, against a plain scikit-image loop.

``python -m benchmarks.score_throughput [--n 200] [--size 512] [--rounds 2] [--workers W]
[--batch-size B] [--device cpu|cuda] [--json FILE] [--folder DIR] [--quick]``

The ``score`` suite (``benchmarks/cases_score.py``, the same registry ``python -m
benchmarks.run score`` runs) with its folder options, timed by the one harness; then
images (pairs) per second from the medians.
"""

from __future__ import annotations

import argparse

from benchmarks import cases_score
from benchmarks.harness import OURS, run_cases


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=None, help=f"pairs (default {cases_score.N})")
    ap.add_argument("--size", type=int, default=None, help=f"image side (default {cases_score.SIZE})")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    ap.add_argument("--workers", type=int, default=None, help="decoding workers (default: the CLI's default)")
    ap.add_argument("--batch-size", type=int, default=cases_score.BATCH_SIZE)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default=None, help="save the results (with versions) to this file")
    ap.add_argument("--folder", default=None,
                    help="generate the pairs here (kept) instead of a temporary folder; reused if it already holds them")
    ap.add_argument("--quick", action="store_true", help="a few small pairs, one round")
    args = ap.parse_args(argv)
    registry = cases_score.cases(args.device, args.quick, n=args.n, size=args.size, workers=args.workers,
                                 batch_size=args.batch_size, root=args.folder)
    rounds, min_block_s = (1, 0.0) if args.quick else (args.rounds, 0.2)
    report = run_cases([("time", registry)], args.device, json_path=args.json, rounds=rounds, min_block_s=min_block_s)
    (name,) = registry
    n = int(name.split()[1])
    results = report["cases"][name]["results"]
    print("\n| backend | images/s (median) | images/s (best) |\n|---|---:|---:|")
    for backend, r in results.items():
        if "median_s" in r:
            print(f"| {backend} | {n / r['median_s']:8.1f} | {n / r['min_s']:8.1f} |")
    if all("median_s" in results.get(b, {}) for b in (OURS, "skimage loop")):
        print(f"\ntorchsim score: {results['skimage loop']['median_s'] / results[OURS]['median_s']:.2f}× the skimage loop")
    return report


if __name__ == "__main__":
    main()
