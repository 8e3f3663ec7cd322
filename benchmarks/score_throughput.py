"""Throughput of ``torchsim score`` on a folder of pairs: this checkout against an earlier revision
(``--before``, default ``main``), a plain scikit-image loop and pyiqa's scoring where it is installed.

``python -m benchmarks.score_throughput [--n 200] [--size 512] [--format png|jpg] [--rounds 3]
[--workers W] [--batch-size B] [--device cpu|cuda] [--before REV|none] [--pyiqa-python PYTHON]
[--folder DIR] [--json FILE] [--quick]``

* ``torchsim score (this checkout)`` and ``torchsim score (REV)``: the command run in-process by
  ``benchmarks/_score_driver.py`` in a separate Python per checkout (the earlier revision is
  checked out with ``git worktree add`` into a temporary folder and removed afterwards), PSNR +
  SSIM, CSV written, no progress bar; one warm-up run, then ``--rounds`` timed runs. Imports are
  not timed; decoding and file I/O are, as they are for a user. ``--before 99fe014^`` is the
  revision before the decoding pool (and the SR pairing) came in.
* ``torchsim score --workers 0``: this checkout decoding on the main thread, one file after
  the other (the decoding pool off): the pool's gain without another checkout.
* ``skimage loop``: for each pair ``skimage.io.imread`` x2, ``peak_signal_noise_ratio`` and
  ``structural_similarity`` (Gaussian 11/1.5, population covariance, data_range 255): the
  script people write.
* ``pyiqa``: ``pyiqa.create_metric("psnr")`` and ``("ssim")`` (its defaults) called on each pair
  of paths (its folder scoring reads and scores pair by pair the same way). Not a bench extra:
  ``pip install pyiqa`` (0.1.16) installs and imports, but reinstalls torch, torchvision, Pillow,
  scikit-image and OpenCV (``opencv-python`` 5 beside the headless build) and pulls
  transformers, datasets and bitsandbytes, which would change the references the tests compare
  with. Install it in an environment of its own layered over this one
  (``python -m venv --system-site-packages ENV && ENV/bin/pip install pyiqa``) and pass
  ``--pyiqa-python ENV/bin/python``: the row is timed in that interpreter on the same folder.
  Without it the row is timed here if ``pyiqa`` imports, else says why it was skipped.

The folder (``benchmarks.inputs.png_folder``: photo crops, the test image with Gaussian noise;
``--format jpg`` re-encodes both at quality 95) is generated once, or reused from ``--folder``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "benchmarks", "_score_driver.py")
PYIQA_MISSING = ("skipped: pyiqa is not importable here (pip install pyiqa reinstalls torch, Pillow, scikit-image "
                 "and OpenCV and pulls transformers, datasets, bitsandbytes: install it in "
                 "`python -m venv --system-site-packages ENV` and pass --pyiqa-python ENV/bin/python)")
PYIQA_ROW = "pyiqa (psnr + ssim per pair)"


def make_folder(root: str, n: int, size: int, fmt: str) -> str:
    """``root`` with ``ref/`` and ``test/`` holding ``n`` pairs (kept; reused when already there)."""
    from benchmarks.inputs import png_folder

    if not os.path.isdir(os.path.join(root, "ref")):
        png_folder(root, n, size)
        if fmt == "jpg":
            from PIL import Image

            for sub in ("ref", "test"):
                folder = os.path.join(root, sub)
                for name in sorted(os.listdir(folder)):
                    path = os.path.join(folder, name)
                    Image.open(path).save(os.path.splitext(path)[0] + ".jpg", quality=95)
                    os.remove(path)
    return root


def time_checkout(checkout: str, argv: List[str], rounds: int) -> Dict[str, object]:
    """The driver run under ``checkout``'s ``torchsim``: ``{"times": [...], ...}``."""
    env = dict(os.environ, PYTHONPATH=checkout)
    out = subprocess.run([sys.executable, DRIVER, json.dumps(argv), str(rounds)], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def worktree(rev: str) -> Optional[str]:
    """A temporary ``git worktree`` of ``rev`` (None when git cannot make one)."""
    path = tempfile.mkdtemp(prefix="torchsim-before-")
    os.rmdir(path)
    done = subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", path, rev], capture_output=True, text=True)
    return path if done.returncode == 0 else None


def remove_worktree(path: str) -> None:
    subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", path], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def skimage_loop(ref_dir: str, test_dir: str) -> None:
    from skimage.io import imread
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    for name in sorted(os.listdir(ref_dir)):
        a, b = imread(os.path.join(ref_dir, name)), imread(os.path.join(test_dir, name))
        peak_signal_noise_ratio(a, b, data_range=255)
        structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)


def pyiqa_loop(ref_dir: str, test_dir: str, device: str):
    import pyiqa  # noqa: F401  (ImportError: the caller reports the row as skipped)

    metrics = [pyiqa.create_metric(name, device=device) for name in ("psnr", "ssim")]

    def run():
        for name in sorted(os.listdir(ref_dir)):
            for metric in metrics:
                metric(os.path.join(test_dir, name), os.path.join(ref_dir, name))

    return run


def pyiqa_elsewhere(python: str, ref_dir: str, test_dir: str, device: str, rounds: int) -> Dict[str, object]:
    """The pyiqa row timed by another interpreter (one where pyiqa is installed)."""
    code = ("import json, sys; from benchmarks.score_throughput import pyiqa_loop, time_in_process; "
            "print(json.dumps(time_in_process(pyiqa_loop(*sys.argv[1:4]), int(sys.argv[4]))))")
    try:
        out = subprocess.run([python, "-c", code, ref_dir, test_dir, device, str(rounds)], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=ROOT), check=False)
    except OSError as exc:
        return {"error": f"skipped: --pyiqa-python {python}: {exc.strerror or exc}"}
    if out.returncode != 0:
        return {"error": f"failed in {python}: " + (out.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_in_process(fn, rounds: int) -> Dict[str, object]:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {"times": times}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="pairs (default 200)")
    ap.add_argument("--size", type=int, default=512, help="image side (default 512)")
    ap.add_argument("--format", default="png", choices=["png", "jpg"])
    ap.add_argument("--rounds", type=int, default=3, help="timed runs after one warm-up (default 3)")
    ap.add_argument("--workers", type=int, default=None, help="decoding workers (default: each checkout's default)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--before", default="main", help="the revision to compare with (default main; 'none' to skip)")
    ap.add_argument("--pyiqa-python", default=None, metavar="PYTHON",
                    help="time pyiqa in this interpreter (an environment where it is installed)")
    ap.add_argument("--folder", default=None, help="generate the pairs here (kept, reused) instead of a temporary folder")
    ap.add_argument("--json", default=None, help="save the results to this file")
    ap.add_argument("--quick", action="store_true", help="8 pairs of 64x64, one round")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.size, args.rounds = 8, 64, 1
    root = args.folder or tempfile.mkdtemp(prefix="torchsim-score-bench-")
    t0 = time.perf_counter()
    make_folder(root, args.n, args.size, args.format)
    ref_dir, test_dir = os.path.join(root, "ref"), os.path.join(root, "test")
    cli = ["score", ref_dir, test_dir, "--metrics", "psnr,ssim", "--batch-size", str(args.batch_size),
           "--device", args.device, "--csv", os.path.join(root, "scores.csv"), "--no-progress"]
    if args.workers is not None:
        cli += ["--workers", str(args.workers)]
    results: Dict[str, Dict[str, object]] = {}
    try:
        results["torchsim score (this checkout)"] = time_checkout(ROOT, cli, args.rounds)
        if args.before != "none":
            path = worktree(args.before)
            if path is None:
                results[f"torchsim score ({args.before})"] = {"error": f"git worktree add {args.before} failed"}
            else:
                try:
                    results[f"torchsim score ({args.before})"] = time_checkout(path, cli, args.rounds)
                finally:
                    remove_worktree(path)
        if args.workers != 0:
            no_pool = [a for k, a in enumerate(cli) if a != "--workers" and (k == 0 or cli[k - 1] != "--workers")]
            results["torchsim score --workers 0 (no decoding pool)"] = time_checkout(ROOT, no_pool + ["--workers", "0"],
                                                                                      args.rounds)
        results["skimage loop"] = time_in_process(lambda: skimage_loop(ref_dir, test_dir), args.rounds)
        if args.pyiqa_python:
            results[PYIQA_ROW] = pyiqa_elsewhere(args.pyiqa_python, ref_dir, test_dir, args.device, args.rounds)
        else:
            try:
                results[PYIQA_ROW] = time_in_process(pyiqa_loop(ref_dir, test_dir, args.device), args.rounds)
            except ImportError:
                results[PYIQA_ROW] = {"error": PYIQA_MISSING}
    finally:
        if args.folder is None:
            shutil.rmtree(root, ignore_errors=True)

    import torch

    print(f"\n# {args.n} pairs of {args.size}x{args.size} RGB {args.format.upper()} ready in {time.perf_counter() - t0:.1f} s "
          f"(with the runs); torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"device {args.device}, batch size {args.batch_size}\n")
    print("| backend | images/s (median) | images/s (best) | s per folder (median) |\n|---|---:|---:|---:|")
    for name, r in results.items():
        if "times" in r:
            med = statistics.median(r["times"])
            print(f"| {name} | {args.n / med:8.1f} | {args.n / min(r['times']):8.1f} | {med:8.2f} |")
        else:
            print(f"| {name} | {r['error']} | | |")
    report = {"args": vars(args), "results": results, "python": platform.python_version()}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
    return report


if __name__ == "__main__":
    main()
