"""Throughput of ``torchsim score`` on a folder of PNG pairs, against a plain scikit-image loop.

``python -m benchmarks.score_throughput [--n 200] [--size 512] [--rounds 2] [--workers W]
[--batch-size B] [--device cpu|cuda] [--json FILE]``

Generates ``n`` pairs of ``size``×``size`` RGB PNGs in a temporary folder
(crops of scikit-image's photographs, flipped and shifted so every pair
differs; the test image has Gaussian noise), then times, interleaved
``rounds`` times, in one process:

* ``torchsim score``: ``torchsim.cli.score.run`` called in-process (decoding
  in DataLoader workers, batched PSNR + SSIM through the streaming modules,
  CSV written to a temporary file, no progress bar);
* ``skimage loop``: for each pair ``skimage.io.imread`` ×2,
  ``peak_signal_noise_ratio`` and ``structural_similarity`` with the same
  convention (Gaussian 11/1.5, population covariance, data_range 255,
  channel_axis=-1).

Whole-folder wall time, so decoding and file I/O count, as they do for a
user. Reports images (pairs) per second: median and best over the rounds.
(This is a standalone script rather than a ``cases_*.py`` suite: one call
scores the whole folder and takes seconds, which does not fit the harness's
repeated short blocks.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch


def make_folder(root: str, n: int, size: int, seed: int = 0) -> None:
    from skimage import data
    from torchvision.io import write_png

    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    ref_dir, test_dir = os.path.join(root, "ref"), os.path.join(root, "test")
    os.makedirs(ref_dir)
    os.makedirs(test_dir)
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        big = np.pad(img, ((0, max(0, size - h)), (0, max(0, size - w)), (0, 0)), mode="reflect")
        y0 = rng.integers(0, big.shape[0] - size + 1)
        x0 = rng.integers(0, big.shape[1] - size + 1)
        ref = big[y0:y0 + size, x0:x0 + size]
        if i % 2:
            ref = ref[:, ::-1]
        test = np.clip(ref + rng.normal(0, 8, ref.shape), 0, 255).astype(np.uint8)
        for folder, a in ((ref_dir, ref), (test_dir, test)):
            t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).contiguous()
            write_png(t, os.path.join(folder, f"{i:04d}.png"))


def run_torchsim(root: str, workers, batch_size: int, device: str) -> float:
    from torchsim.cli import build_parser

    out_csv = os.path.join(root, "scores.csv")
    args = build_parser().parse_args([
        "score", os.path.join(root, "ref"), os.path.join(root, "test"), "--metrics", "psnr,ssim",
        *(["--workers", str(workers)] if workers is not None else []), "--batch-size", str(batch_size),
        "--device", device, "--csv", out_csv, "--no-progress",
    ])
    devnull = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, devnull
    try:
        t0 = time.perf_counter()
        code = args._run(args)
        dt = time.perf_counter() - t0
    finally:
        sys.stdout = stdout
        devnull.close()
    assert code == 0, code
    return dt


def run_skimage(root: str) -> float:
    from skimage.io import imread
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    ref_dir, test_dir = os.path.join(root, "ref"), os.path.join(root, "test")
    t0 = time.perf_counter()
    values = []
    for name in sorted(os.listdir(ref_dir)):
        a, b = imread(os.path.join(ref_dir, name)), imread(os.path.join(test_dir, name))
        p = peak_signal_noise_ratio(a, b, data_range=255)
        s = structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False)
        values.append((p, s))
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="pairs (default 200)")
    ap.add_argument("--size", type=int, default=512, help="image side (default 512)")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    ap.add_argument("--workers", type=int, default=None, help="decoding workers (default: the CLI's default)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--json", default=None, help="save the results (with versions) to this file")
    ap.add_argument("--folder", default=None,
                    help="generate the pairs here (kept) instead of a temporary folder; reused if it already holds them")
    args = ap.parse_args(argv)

    from benchmarks.harness import environment
    from torchsim.cli.score import default_workers

    if args.workers is None:
        args.workers = default_workers()

    with contextlib.ExitStack() as stack:
        root = args.folder or stack.enter_context(tempfile.TemporaryDirectory(prefix="torchsim-score-bench-"))
        t0 = time.perf_counter()
        if not os.path.isdir(os.path.join(root, "ref")):
            make_folder(root, args.n, args.size)
        args.n = len(os.listdir(os.path.join(root, "ref")))
        print(f"# {args.n} pairs of {args.size}x{args.size} RGB PNG ready in {time.perf_counter() - t0:.1f} s; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
              f"device {args.device}, workers {args.workers}, batch size {args.batch_size}")
        times = {"torchsim score": [], "skimage loop": []}
        run_torchsim(root, args.workers, args.batch_size, args.device)  # warm-up (imports, first decode)
        for _ in range(args.rounds):
            times["torchsim score"].append(run_torchsim(root, args.workers, args.batch_size, args.device))
            times["skimage loop"].append(run_skimage(root))
    rates = {k: [args.n / t for t in v] for k, v in times.items()}
    ours = statistics.median(rates["torchsim score"])
    print("\n| backend | images/s (median) | images/s (best) | s per folder (median) | × skimage |")
    print("|---|---:|---:|---:|---:|")
    sk = statistics.median(rates["skimage loop"])
    for name, r in sorted(rates.items(), key=lambda kv: -statistics.median(kv[1])):
        med = statistics.median(r)
        print(f"| {name} | {med:8.1f} | {max(r):8.1f} | {args.n / med:8.2f} | {med / sk:5.2f} |")
    report = {"environment": environment(args.device), "n": args.n, "size": args.size, "workers": args.workers,
              "batch_size": args.batch_size, "seconds": times, "images_per_s": rates,
              "speedup_vs_skimage": ours / sk}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, default=str)
        print(f"\nsaved {args.json}")
    return report


if __name__ == "__main__":
    main()
