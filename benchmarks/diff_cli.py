"""``torchsim diff`` on a large screenshot pair, against odiff and BlazeDiff, whole commands.

``python -m benchmarks.diff_cli [--width 2560] [--height 14400] [--rounds 3] [--device cpu|cuda]
[--threads T] [--workdir DIR] [--odiff PATH] [--no-install-odiff] [--json FILE] [--quick]``

Input: a full-page "screenshot" of 2560 x 14400 = 36.9 megapixels and an edited copy
(``benchmarks/inputs.screenshot_pair``: photographs, text rendered with Pillow, buttons; the
copy changes some words, moves a button, retouches a photo and adds a banner), written once as
PNG files (Pillow, default compression) into ``--workdir`` (default
``~/.cache/torchsim-bench/diff``) and reused. Every tool runs as a
user runs it, timed from start to exit, including reading both PNG files and writing the diff
picture as PNG:

* ``torchsim diff (command)``: ``python -m torchsim diff A B OUT.png --method pixelmatch``
  in a fresh process (mapbox pixelmatch v7: threshold 0.1, anti-aliased pixels not counted,
  the diff drawn over a faded copy of A) -- Python start-up included; on the CPU the command
  runs pixelmatch's NumPy kernel on the decoded files and never imports torch;
* ``torchsim diff (in-process)``: the same arguments through ``torchsim.cli.main`` in this
  process (torch already imported, as in a test runner or a server);
* ``torchsim diff --method ssim (command)``: the default method (SSIM regions, side-by-side
  picture), for scale;
* ``odiff (command)``: ``odiff A B OUT.png --antialiasing`` (odiff-bin, native; anti-aliased
  pixels not counted, as pixelmatch);
* ``BlazeDiff (command)``: ``python -c "blazediff.compare(A, B, OUT, antialiasing=True)"`` in
  a fresh process, and ``BlazeDiff (in-process)``: the call in this process.

Rounds are interleaved (every tool once per round); the table gives the median and best wall
time, megapixels per second (pixels of one image / median time) and the count each tool
reported (they count slightly differently by design: see ``torchsim.pixelmatch``'s docstring),
then the speed ratios (the other tool's median / torchsim's command median: above 1, torchsim is
faster) and where torchsim's time goes, stage by stage in this process: decoding both files,
pixelmatch (count and diff picture), encoding the PNG. With a GPU, ``--device cuda`` runs
torchsim's rows on it (decoding and encoding stay on the CPU).

odiff comes from npm; it is not a Python package. The benchmark installs it once (``npm install
--prefix ~/.cache/torchsim-bench/npm odiff-bin@4.5.0``, reused afterwards); ``--odiff PATH``
uses another binary, ``--no-install-odiff`` never runs npm. Without node/npm, or when the
install fails (no network), odiff is reported as skipped, with the reason.

BlazeDiff is on PyPI (``pip install blazediff``, in torchsim's ``bench`` extra). A tool that is
missing is reported as skipped. ``--quick`` runs a 1280 x 1800 pair once: a check that
everything runs, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

ODIFF_VERSION = "4.5.0"


PAIR_VERSION = 2  # bump when inputs.screenshot_pair changes, so a kept pair is not reused


def _pair_files(workdir: str, width: int, height: int) -> tuple:
    a, b = (os.path.join(workdir, f"screenshot-v{PAIR_VERSION}-{width}x{height}-{k}.png") for k in ("a", "b"))
    if not (os.path.exists(a) and os.path.exists(b)):
        from benchmarks.inputs import screenshot_pair

        t0 = time.perf_counter()
        pa, pb = screenshot_pair(width, height)
        pa.save(a)
        pb.save(b)
        print(f"# wrote the pair in {time.perf_counter() - t0:.1f} s: {a}, {b}")
    return a, b


CACHE = os.path.join(os.path.expanduser("~"), ".cache", "torchsim-bench")


def _find_odiff(path: Optional[str], install: bool) -> tuple:
    """``(odiff binary or None, why it is missing)``: ``path``, else the cached npm prefix, else
    ``odiff`` on PATH, else (``install``) ``npm install --prefix CACHE/npm odiff-bin``."""
    prefix = os.path.join(CACHE, "npm")
    local = os.path.join(prefix, "node_modules", ".bin", "odiff")
    if path:
        return (path, "") if os.path.exists(path) else (None, f"--odiff {path}: no such file")
    for candidate in (local, shutil.which("odiff")):
        if candidate and os.path.exists(candidate):
            return candidate, ""
    if not install:
        return None, f"--no-install-odiff (npm install --prefix {prefix} odiff-bin@{ODIFF_VERSION}, or --odiff PATH)"
    if not (shutil.which("npm") and shutil.which("node")):
        return None, "node and npm are not installed (odiff-bin comes from npm)"
    try:
        proc = subprocess.run(["npm", "install", "--prefix", prefix, f"odiff-bin@{ODIFF_VERSION}"],
                              capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return None, "npm install odiff-bin timed out (no network?)"
    if proc.returncode != 0 or not os.path.exists(local):
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"npm install odiff-bin failed (no network?): {last[:160]}"
    return local, ""


def _command(argv: List[str], parse: Callable[[str], Optional[int]], stream: str = "stdout",
             ok_codes=(0, 1, 21, 22)) -> Callable[[], Optional[int]]:
    """A zero-argument callable that runs ``argv`` and returns the count ``parse`` finds in its
    ``stream`` (odiff 4.5 reports on stderr)."""

    def run() -> Optional[int]:
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode not in ok_codes:
            raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[:200]}")
        return parse(proc.stdout if stream == "stdout" else proc.stderr)

    return run


def _first_int(pattern: str) -> Callable[[str], Optional[int]]:
    def parse(text: str) -> Optional[int]:
        m = re.search(pattern, text)
        return int(m.group(1)) if m else None

    return parse


def _tools(a: str, b: str, out: str, device: str, odiff: Optional[str]) -> Dict[str, Callable[[], Optional[int]]]:
    py = sys.executable
    pm = ["diff", a, b, os.path.join(out, "torchsim.png"), "--method", "pixelmatch", "--device", device]
    tools: Dict[str, Callable[[], Optional[int]]] = {
        "torchsim diff (command)": _command([py, "-m", "torchsim", *pm], _first_int(r"(\d+) mismatched pixels")),
    }

    def in_process() -> Optional[int]:
        import contextlib
        import io

        from torchsim.cli import main

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            main(pm)
        return _first_int(r"(\d+) mismatched pixels")(buf.getvalue())

    tools["torchsim diff (in-process)"] = in_process
    tools["torchsim diff --method ssim (command)"] = _command(
        [py, "-m", "torchsim", "diff", a, b, os.path.join(out, "torchsim-ssim.png"), "--device", device],
        _first_int(r"(\d+) pixels \("),
    )
    if odiff:
        tools["odiff (command)"] = _command([odiff, a, b, os.path.join(out, "odiff.png"), "--antialiasing"],
                                            _first_int(r"Found (\d+) different pixels"), stream="stderr")
    try:
        import blazediff

        code = ("import sys, blazediff; r = blazediff.compare(sys.argv[1], sys.argv[2], sys.argv[3], antialiasing=True); "
                "print(r.diff_count)")
        tools["BlazeDiff (command)"] = _command([py, "-c", code, a, b, os.path.join(out, "blazediff.png")], _first_int(r"(\d+)"))
        tools["BlazeDiff (in-process)"] = lambda: int(
            blazediff.compare(a, b, os.path.join(out, "blazediff-in.png"), antialiasing=True).diff_count
        )
    except ImportError:
        print("# BlazeDiff skipped: pip install blazediff")
    return tools


def _stages(a: str, b: str, out: str, device: str) -> Dict[str, float]:
    """Seconds of each stage of ``torchsim diff A B OUT.png --method pixelmatch`` in this process,
    as the command runs them: decoding both files (two threads), pixelmatch (count and diff
    picture: on the CPU the NumPy kernel on the decoded arrays, as the command; on CUDA
    ``torchsim.pixelmatch``), writing the PNG."""
    import torch

    import torchsim
    from torchsim.cli._files import load_pair, pair_arrays, start_pair
    from torchsim.cli._picture import write_picture
    from torchsim.kernels import pixelmatch as K

    t0 = time.perf_counter()
    pending = start_pair(a, b, "RGB")
    arrays = pair_arrays(pending) if device == "cpu" else None  # None: files the command decodes with torch
    if arrays is not None:
        x, y = arrays
        t1 = time.perf_counter()
        count, picture, _ = K.run(x[None], y[None], K.max_delta(0.1), False, K.ALPHA, (K.AA_COLOR, K.DIFF_COLOR, None),
                                  False, True)
    else:
        x, y = load_pair(pending, device)
        t1 = time.perf_counter()
        count, picture = torchsim.pixelmatch(x[None].to(device), y[None].to(device), return_diff=True)
        picture = picture.cpu()
        torch.cuda.synchronize()
    int(count[0])
    t2 = time.perf_counter()
    write_picture(picture[0, :3], os.path.join(out, "stages.png"))
    t3 = time.perf_counter()
    return {"decode both PNGs": t1 - t0, "pixelmatch (count + picture)": t2 - t1, "encode the PNG": t3 - t2}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=2560)
    ap.add_argument("--height", type=int, default=14400)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torchsim's device")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of torchsim (default: torch's, one per core); sets OMP_NUM_THREADS for the commands")
    ap.add_argument("--workdir", default=os.path.join(CACHE, "diff"), help="where the PNG pair is kept and reused")
    ap.add_argument("--odiff", default=None, help=f"path of the odiff binary (default: {CACHE}/npm, then PATH)")
    ap.add_argument("--no-install-odiff", dest="install_odiff", action="store_false",
                    help=f"never run npm install odiff-bin@{ODIFF_VERSION} into {CACHE}/npm")
    ap.add_argument("--json", default=None, help="save the results (with versions) to this file")
    ap.add_argument("--quick", action="store_true", help="a 1280 x 1800 pair, one round")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.quick:
        args.width, args.height, args.rounds = 1280, 1800, 1
    os.makedirs(args.workdir, exist_ok=True)
    a, b = _pair_files(args.workdir, args.width, args.height)
    odiff, why = _find_odiff(args.odiff, args.install_odiff)
    if odiff is None:
        print(f"# odiff skipped: {why}")
    out = tempfile.mkdtemp(prefix="torchsim-diff-out-")
    tools = _tools(a, b, out, args.device, odiff)
    megapixels = args.width * args.height / 1e6
    samples: Dict[str, List[float]] = {name: [] for name in tools}
    counts: Dict[str, Optional[int]] = {}
    errors: Dict[str, str] = {}
    stages: Dict[str, List[float]] = {}
    for _ in range(args.rounds):
        for stage, seconds in _stages(a, b, out, args.device).items():
            stages.setdefault(stage, []).append(seconds)
        for name, fn in tools.items():
            if name in errors:
                continue
            t0 = time.perf_counter()
            try:
                counts[name] = fn()
            except Exception as exc:  # a tool that fails is reported, the others go on
                errors[name] = f"{type(exc).__name__}: {exc}"[:200]
                continue
            samples[name].append(time.perf_counter() - t0)
    shutil.rmtree(out, ignore_errors=True)
    from benchmarks.harness import environment

    env = environment(args.device)
    env["odiff"] = ODIFF_VERSION if odiff else None
    try:
        import importlib.metadata as md

        env["blazediff"] = md.version("blazediff")
    except Exception:
        pass
    print(f"\n### torchsim diff vs odiff and BlazeDiff: {args.width}x{args.height} PNG pair ({megapixels:.1f} Mpx), "
          f"{args.rounds} round(s), device {args.device}, {env['threads']} torch threads")
    print("| tool | median | best | Mpx/s (median) | count |\n|---|---:|---:|---:|---:|")
    results = {}
    for name, s in samples.items():
        if name in errors or not s:
            print(f"| {name} | failed: {errors.get(name, '?')} | | | |")
            results[name] = {"error": errors.get(name)}
            continue
        med = statistics.median(s)
        results[name] = {"median_s": med, "min_s": min(s), "samples": s, "megapixels_per_s": megapixels / med,
                         "count": counts.get(name)}
        print(f"| {name} | {med:7.2f} s | {min(s):7.2f} s | {megapixels / med:8.1f} | {counts.get(name)} |")
    ours = results.get("torchsim diff (command)", {}).get("median_s")
    ratios = {}
    if ours:
        print("\n| speed ratio (their median / torchsim diff command median; > 1: torchsim faster) | ratio |\n|---|---:|")
        for name in ("odiff (command)", "BlazeDiff (command)", "BlazeDiff (in-process)"):
            theirs = results.get(name, {}).get("median_s")
            if theirs:
                ratios[name] = theirs / ours
                print(f"| {name} / torchsim diff (command) | {theirs / ours:5.2f} |")
    print("\n| torchsim diff, in-process stage | median | share |\n|---|---:|---:|")
    total = sum(statistics.median(v) for v in stages.values())
    for stage, v in stages.items():
        print(f"| {stage} | {statistics.median(v):7.2f} s | {100 * statistics.median(v) / total:4.0f} % |")
    report = {"environment": env, "width": args.width, "height": args.height, "results": results, "ratios": ratios,
              "stages_median_s": {k: statistics.median(v) for k, v in stages.items()}}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return report


if __name__ == "__main__":
    main()
