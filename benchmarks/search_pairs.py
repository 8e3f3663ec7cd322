"""Near-duplicate search at scale: ``torchsim.hamming_pairs`` vs faiss-cpu's binary range search.

``python -m benchmarks.search_pairs [--n 1000000] [--radii 4,10] [--threads 2] [--queries Q]
[--faiss-limit S] [--json FILE]``

Data: ``n`` random 64-bit hashes in which near duplicates are planted: 1 % of the hashes
are copies of another hash with 0..10 random bits flipped (groups of 2-4), so every
radius finds planted pairs as well as the random ones a million hashes hold.

Timed, one after the other, in one process on ``--threads`` cores (torch and faiss
OpenMP threads both set to it):

* ``torchsim``: ``torchsim.hamming_pairs(h, r)`` on the ``(n, 64)`` bool tensor (packing,
  plan, search; all pairs ``i < j``).
* ``faiss MultiHash``: ``IndexBinaryMultiHash(64, nhash, b)`` with ``nflip`` set so that
  ``nhash * (nflip + 1) > r`` (exact: some sub-hash differs in at most ``nflip`` bits);
  every ``(nhash, nflip)`` of a small list is tried on ``--queries`` queries and the
  fastest is reported. ``add`` + ``range_search(queries, r + 1)`` (faiss keeps distances
  strictly below the radius).
* ``faiss Flat``: ``IndexBinaryFlat(64)``, ``add`` + ``range_search``.

faiss answers every query against the whole index (so each pair twice, and the query
itself), which on a million hashes takes from minutes to hours. Each faiss index is
therefore queried with ``--queries`` rows (default 20 000; ``--queries 0`` = all) and its
time scaled to all ``n`` rows (its cost per query does not depend on which rows are
queried), unless the whole run is predicted to fit in ``--faiss-limit`` seconds, in which
case it runs on all rows. The pairs are checked: faiss's pairs of the queried rows must be
exactly torchsim's pairs that involve those rows. Reported: seconds (measured or scaled),
pairs found, pairs per second of the all-pairs problem ``n (n - 1) / 2``, and the ratio; the
exit code is 1 when any pair set differs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch

FLIPS = 10


def planted(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 64)`` bool: random hashes with 1 % planted near duplicates (0..FLIPS bits off)."""
    rng = np.random.default_rng(seed)
    h = rng.random((n, 64)) > 0.5
    targets = rng.permutation(n)[: n // 100]
    k = 0
    while k < len(targets):
        group = targets[k : k + rng.integers(2, 5)]
        for t in group[1:]:
            h[t] = h[group[0]]
            h[t, rng.choice(64, rng.integers(0, FLIPS + 1), replace=False)] ^= True
        k += len(group)
    return h


def _faiss_pairs(lims: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> set:
    """faiss's answer for the queried rows -> unordered pairs ``(i, j)``, ``i < j``."""
    q = np.repeat(rows, np.diff(lims).astype(np.int64))
    keep = q != ids
    a, b = np.minimum(q[keep], ids[keep]), np.maximum(q[keep], ids[keep])
    return set(zip(a.tolist(), b.tolist()))


def _multihash_configs(radius: int):
    """Exact (nhash, nflip) settings: nhash * (nflip + 1) > radius, sub-hashes of 64 // nhash bits."""
    for nhash in (2, 3, 4, 5, 6, 8, 11):
        nflip = max(0, -(-(radius + 1) // nhash) - 1)
        b = 64 // nhash
        if nflip <= 3 and b >= 5:
            yield nhash, b, nflip


def run_faiss(faiss, packed: np.ndarray, radius: int, rows: np.ndarray, make_index) -> dict:
    t0 = time.perf_counter()
    index = make_index()
    index.add(packed)
    t_add = time.perf_counter() - t0
    t0 = time.perf_counter()
    lims, _, ids = index.range_search(packed[rows], radius + 1)
    t_search = time.perf_counter() - t0
    scale = len(packed) / len(rows)
    return {
        "seconds": t_add + t_search * scale,
        "measured_rows": int(len(rows)),
        "scaled": scale != 1.0,
        "pairs_of_rows": _faiss_pairs(lims, ids, rows),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--radii", default="4,10")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--queries", type=int, default=20_000, help="faiss query rows (0 = all)")
    ap.add_argument("--faiss-limit", type=float, default=120.0,
                    help="run faiss on all rows when predicted to take less than this many seconds")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import faiss

    import torchsim

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    h = planted(args.n)
    packed = np.packbits(h, axis=1)
    ht = torch.from_numpy(h)
    rng = np.random.default_rng(1)
    q = args.n if args.queries <= 0 else min(args.queries, args.n)
    sample = np.sort(rng.choice(args.n, q, replace=False))
    all_pairs = args.n * (args.n - 1) / 2
    results = []
    differ = False
    print(f"{args.n} random 64-bit hashes with 1 % planted near duplicates; {args.threads} threads; "
          f"faiss {faiss.__version__}, torch {torch.__version__}")
    for radius in [int(r) for r in args.radii.split(",")]:
        t0 = time.perf_counter()
        pairs, _ = torchsim.hamming_pairs(ht, radius)
        ours_s = time.perf_counter() - t0
        ours = pairs.numpy()
        in_sample = np.isin(ours[:, 0], sample) | np.isin(ours[:, 1], sample)
        ours_rows = set(map(tuple, ours[in_sample].tolist()))
        rows = [("torchsim hamming_pairs", ours_s, len(ours), "all rows", True)]

        best = None
        for nhash, b, nflip in _multihash_configs(radius):
            def make(nhash=nhash, b=b, nflip=nflip):
                index = faiss.IndexBinaryMultiHash(64, nhash, b)
                index.nflip = nflip
                return index
            probe = run_faiss(faiss, packed, radius, sample[: max(1, q // 10)], make)
            if best is None or probe["seconds"] < best[1]["seconds"]:
                best = ((nhash, b, nflip), probe, make)
        candidates = [(f"faiss MultiHash nhash={best[0][0]} b={best[0][1]} nflip={best[0][2]}", best[1]["seconds"], best[2]),
                      ("faiss Flat", None, lambda: faiss.IndexBinaryFlat(64))]
        for name, predicted, make in candidates:
            if predicted is None:
                predicted = run_faiss(faiss, packed, radius, sample[: max(1, q // 10)], make)["seconds"]
            use = np.arange(args.n) if predicted < args.faiss_limit else sample
            r = run_faiss(faiss, packed, radius, use, make)
            expected = set(map(tuple, ours.tolist())) if len(use) == args.n else ours_rows
            same = r["pairs_of_rows"] == expected
            how = f"{r['measured_rows']} rows, scaled" if r["scaled"] else "all rows"
            rows.append((name, r["seconds"], len(r["pairs_of_rows"]), how, same))
        print(f"\nradius {radius}: torchsim finds {len(ours)} pairs")
        print(f"  {'backend':<44} {'seconds':>9} {'G pairs/s':>10} {'vs torchsim':>12}  pairs checked")
        for name, sec, npairs, how, same in rows:
            print(f"  {name:<44} {sec:>9.2f} {all_pairs / sec / 1e9:>10.2f} {sec / ours_s:>11.1f}x  "
                  f"{'same' if same else 'DIFFERENT'} ({how}, {npairs} pairs)")
            results.append({"radius": radius, "backend": name, "seconds": sec, "pairs": npairs,
                            "how": how, "same_pairs": same})
        if not all(r[4] for r in rows):
            differ = True
            print("  ERROR: the pair sets differ", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n": args.n, "threads": args.threads, "results": results,
                       "versions": {"torch": torch.__version__, "faiss": faiss.__version__, "numpy": np.__version__,
                                    "python": platform.python_version()},
                       "machine": platform.processor() or platform.machine()}, fh, indent=1)
    if differ:
        sys.exit(1)


if __name__ == "__main__":
    main()
