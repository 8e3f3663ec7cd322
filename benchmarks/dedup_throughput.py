"""End-to-end de-duplication of a folder of JPEGs: ``torchsim dedup`` vs imagededup and czkawka.

``python -m benchmarks.dedup_throughput [--n 5000] [--quick] [--threshold 10] [--workers W]
[--rounds 3] [--folder DIR] [--json FILE]``

Generates ``n`` 640×480 JPEGs (once; ``--folder`` keeps them between runs) in groups of five:
an *original* — a crop of one of scikit-image's photographs at a random position and scale,
maybe mirrored, or (three times in four) a 2×2 mosaic of such crops, so that a thousand
originals from twenty photographs are not near duplicates of each other; saved at quality
90 — and four copies of it: **resized** (to 75 % and back),
**re-encoded** (quality 55), **brightened** (+15 %) and **cropped** (2 % off each side, resized
back to 640×480). The five files of a group are the *true group*.

Then times, in one process, each whole run over the folder (listing, reading, decoding,
hashing, grouping; every tool's Python imports, torch's included, are done before its clock
starts), ``--rounds`` times, the tools in a different order each round (rotated), so that a
machine whose speed drifts during the run slows every tool alike; reported: the median
seconds, and the median CPU seconds (this process's threads and its child processes:
imagededup hashes in worker processes, czkawka in Rust threads):

* ``torchsim dedup --hash dhash``: ``torchsim.cli.main(["dedup", DIR, "--json", "--hash",
  "dhash", "--threshold", T, "--workers", W, "--cache", <fresh file>])`` — the hash imagededup
  is timed with; the cache starts empty, so every file is read and decoded (writing the cache
  is included);
* ``torchsim dedup``: the same with phash, the default hash;
* ``torchsim dedup --hash dhash --fast-decode``: JPEGs decoded at a reduced DCT scale;
* ``torchsim dedup --hash dhash`` again with the cache of the first run (nothing is decoded);
* imagededup: ``DHash().find_duplicates(image_dir=DIR, max_distance_threshold=T,
  num_enc_workers=W)`` (its dHash, as the issue timed it);
* czkawka: ``czkawka.ImageSimilarity()`` with ``set_similarity(T)``, ``find_similar()``.

Reported per tool, besides the times: images per second, the true groups found (first round) (every copy reported
as a duplicate of its original: in the same torchsim or czkawka group, or in imagededup's
list of the original's duplicates), the pairs reported across two different true groups
(false merges), and what a user acting on the tool's removal list is left with (torchsim's
``remove``; imagededup's ``find_duplicates_to_remove``, computed untimed from the same
encodings; all but one file of each czkawka group): the true groups left with exactly one
file, and those left with none (images lost). For ``--fast-decode``: how many of the ``n`` hashes differ from the exact
decode's and by how many bits (read back from the two runs' caches).

``--quick`` is ``--n 400`` (to check the script; the timings of interest are at 5 000 on a
quiet machine).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import sqlite3
import statistics
import tempfile
import time
from typing import Dict, List, Set, Tuple

import numpy as np

SIZE = (640, 480)
VARIANTS = ("resized", "reencoded", "brightened", "cropped")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "clock", "coins", "horse", "moon", "page",
          "text", "brick", "grass", "gravel", "immunohistochemistry", "hubble_deep_field", "colorwheel", "logo", "cell")


def _photos() -> List[np.ndarray]:
    from skimage import data

    out = []
    for name in PHOTOS:
        try:
            a = getattr(data, name)()
        except Exception:  # not bundled with this scikit-image (needs a download)
            continue
        a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
        if a.dtype != np.uint8:
            a = (a / max(1, a.max()) * 255).astype(np.uint8)
        out.append(a)
    return out


def make_folder(folder: str, n: int, seed: int = 0) -> Dict[str, int]:
    """Write the JPEGs (unless already there); returns {file name: true group}."""
    from PIL import Image, ImageEnhance

    groups = {f"g{k:05d}_{v}.jpg": k for k in range(n // 5) for v in ("original", *VARIANTS)}
    if all(os.path.exists(os.path.join(folder, name)) for name in groups):
        return groups
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = _photos()
    w, h = SIZE
    def tile(tw: int, th: int) -> "Image.Image":
        """A crop of a random photograph at a random position and scale, maybe mirrored, tw x th."""
        a = photos[rng.integers(len(photos))]
        ph, pw = a.shape[:2]
        scale = rng.uniform(0.3, 1.0) * min(ph / th, pw / tw)
        cw, ch = max(16, int(tw * scale)), max(12, int(th * scale))
        x0, y0 = rng.integers(0, pw - cw + 1), rng.integers(0, ph - ch + 1)
        t = Image.fromarray(a[y0 : y0 + ch, x0 : x0 + cw]).resize((tw, th), Image.LANCZOS)
        return t.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else t

    for k in range(n // 5):
        # an original is one crop, or a 2x2 mosaic of crops (so that 1 000 originals from a few
        # photographs are not near duplicates of one another)
        if rng.random() < 0.25:
            im = tile(w, h)
        else:
            im = Image.new("RGB", SIZE)
            for qx in (0, w // 2):
                for qy in (0, h // 2):
                    im.paste(tile(w // 2, h // 2), (qx, qy))
        base = f"g{k:05d}"
        im.save(os.path.join(folder, f"{base}_original.jpg"), quality=90)
        im.resize((w * 3 // 4, h * 3 // 4), Image.LANCZOS).resize(SIZE, Image.BICUBIC).save(
            os.path.join(folder, f"{base}_resized.jpg"), quality=90)
        im.save(os.path.join(folder, f"{base}_reencoded.jpg"), quality=55)
        ImageEnhance.Brightness(im).enhance(1.15).save(os.path.join(folder, f"{base}_brightened.jpg"), quality=90)
        im.crop((w // 50, h // 50, w - w // 50, h - h // 50)).resize(SIZE, Image.LANCZOS).save(
            os.path.join(folder, f"{base}_cropped.jpg"), quality=90)
    return groups


# ---- the tools ------------------------------------------------------------------------------


def run_torchsim(folder: str, threshold: int, workers: int, cache: str, *extra: str) -> Tuple[float, dict]:
    import torchsim
    from torchsim.cli import dedup, main  # noqa: F401

    torchsim.dhash  # imported before the clock starts (torch with it), as the other tools' imports are
    out = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(["dedup", folder, "--json", "--no-progress", "--threshold", str(threshold),
                     "--workers", str(workers), "--cache", cache, *extra])
    seconds = time.perf_counter() - t0
    if code != 0:
        raise RuntimeError(f"torchsim dedup exited with {code}")
    return seconds, json.loads(out.getvalue())


def torchsim_pairs(doc: dict) -> Set[Tuple[str, str]]:
    """Unordered pairs of file names in one torchsim group (exact groups joined to the near group of their kept file)."""
    group_of: Dict[str, int] = {}
    for k, g in enumerate(doc["near_groups"]):
        for f in g["files"]:
            group_of[os.path.basename(f["path"])] = k
    for g in doc["exact_groups"]:
        k = group_of.get(os.path.basename(g["keep"]), f"exact {g['md5']}")
        for p in g["files"]:
            group_of[os.path.basename(p)] = k
    return _pairs_of_groups(group_of)


def _pairs_of_groups(group_of: Dict[str, object]) -> Set[Tuple[str, str]]:
    members: Dict[object, List[str]] = {}
    for name, k in group_of.items():
        members.setdefault(k, []).append(name)
    return {(a, b) for m in members.values() for a in m for b in m if a < b}


def run_imagededup(folder: str, threshold: int, workers: int) -> Tuple[float, Set[Tuple[str, str]], Set[str]]:
    from imagededup.methods import DHash

    hasher = DHash(verbose=False)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        encodings = hasher.encode_images(image_dir=folder, num_enc_workers=workers)  # = find_duplicates(image_dir=...)
        dups = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=threshold, num_dist_workers=workers)
    seconds = time.perf_counter() - t0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # its removal list, untimed
        remove = hasher.find_duplicates_to_remove(encoding_map=encodings, max_distance_threshold=threshold,
                                                  num_dist_workers=workers)
    return seconds, {tuple(sorted((a, b))) for a, others in dups.items() for b in others}, set(remove)


def run_czkawka(folder: str, threshold: int) -> Tuple[float, Set[Tuple[str, str]], Set[str]]:
    import czkawka

    t0 = time.perf_counter()
    finder = czkawka.ImageSimilarity()
    finder.set_directories([folder])
    finder.set_similarity(threshold)
    groups = finder.find_similar()
    seconds = time.perf_counter() - t0
    group_of = {p.name: k for k, g in enumerate(groups) for p in g}
    remove = {p.name for g in groups for p in sorted(g)[1:]}  # all but one file of each group
    return seconds, _pairs_of_groups(group_of), remove


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process (all its threads) and its waited-for children."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def score(pairs: Set[Tuple[str, str]], truth: Dict[str, int]) -> Tuple[int, int]:
    """(true groups found: every copy paired with its original, pairs across two true groups)."""
    found = 0
    for k in sorted(set(truth.values())):
        original = f"g{k:05d}_original.jpg"
        if all(tuple(sorted((original, f"g{k:05d}_{v}.jpg"))) in pairs for v in VARIANTS):
            found += 1
    false = sum(1 for a, b in pairs if truth.get(a, -1) != truth.get(b, -2))
    return found, false


def outcome(remove: Set[str], truth: Dict[str, int]) -> Tuple[int, int]:
    """After removing ``remove``: (true groups left with exactly one file, true groups left with none: lost)."""
    left: Dict[int, int] = {}
    for name, k in truth.items():
        left[k] = left.get(k, 0) + (name not in remove)
    return sum(v == 1 for v in left.values()), sum(v == 0 for v in left.values())


def cached_hashes(cache: str) -> Dict[str, str]:
    with contextlib.closing(sqlite3.connect(cache)) as db:
        return {os.path.basename(p): hx for p, hx in db.execute("SELECT path, hex FROM hashes")}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5000, help="number of JPEGs (a multiple of 5)")
    ap.add_argument("--quick", action="store_true", help="--n 400")
    ap.add_argument("--threshold", type=int, default=10, help="Hamming distance for every tool (default 10, imagededup's)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding workers (default: the CPU count)")
    ap.add_argument("--rounds", type=int, default=3, help="timed runs of every tool, in rotated order (default 3)")
    ap.add_argument("--folder", default=None, help="where the JPEGs are written (kept); default a temporary folder")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    n = 400 if args.quick else args.n
    import logging

    import torchsim.cli.dedup  # noqa: F401  every tool imported before the timings (torch, its extensions)
    missing = {}
    for name, module in (("imagededup DHash", "imagededup.methods"), ("czkawka ImageSimilarity", "czkawka")):
        try:
            __import__(module)
        except ImportError as exc:  # pip install -e ".[bench]" installs both
            missing[name] = f"skipped: {exc} (pip install -e \".[bench]\")"
    for logger in [logging.getLogger(k) for k in list(logging.root.manager.loggerDict) if k.startswith("imagededup")]:
        logger.setLevel(logging.WARNING)  # imagededup's loggers print INFO lines on stderr, several per run
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or os.path.join(tmp, "jpegs")
        t0 = time.perf_counter()
        truth = make_folder(folder, n)
        print(f"{len(truth)} 640x480 JPEGs in {len(set(truth.values()))} true groups of 5 "
              f"({time.perf_counter() - t0:.1f} s to make); threshold {args.threshold}; "
              f"{os.cpu_count()} CPUs, {args.workers} workers", flush=True)
        results = []
        groups = len(set(truth.values()))

        def report(name: str, times: List[Tuple[float, float]], pairs, remove, note: str = "") -> None:
            found, false = score(pairs, truth)
            one, lost = outcome(remove, truth)
            seconds = statistics.median(t for t, _ in times)
            cpu = statistics.median(c for _, c in times)
            results.append({"tool": name, "seconds": seconds, "cpu_seconds": cpu, "rounds": [t for t, _ in times],
                            "images_per_s": len(truth) / seconds, "true_groups_found": found,
                            "true_group_recall": found / groups, "false_pairs": false, "one_file_left": one,
                            "lost_groups": lost, "note": note})
            print(f"  {name:<42} {seconds:>7.2f} s {cpu:>7.2f} s {len(truth) / seconds:>8.1f} img/s   found {found:>4}/{groups} "
                  f"({100.0 * found / groups:5.1f} %)  "
                  f"across {false:>5}   one left {one:>4}  lost {lost:>3}  {note}", flush=True)

        def removed(doc: dict) -> Set[str]:
            return {os.path.basename(p) for p in doc["remove"]}

        print("  found: true groups whose 4 copies are grouped with the original; across: pairs of files of two true\n"
              "  groups reported as duplicates; after removing the tool's removal list: one left: true groups left with\n"
              f"  one file, lost: true groups left with none. Columns: median seconds, median CPU seconds ({args.rounds} rounds)")
        times: Dict[str, List[Tuple[float, float]]] = {}
        first: Dict[str, tuple] = {}  # each tool's result in the first round: the groups it found
        caches: Dict[str, str] = {}

        def timed(name: str, fn) -> None:
            c0 = _cpu_seconds()
            seconds, *rest = fn()
            times.setdefault(name, []).append((seconds, _cpu_seconds() - c0))
            first.setdefault(name, tuple(rest))

        def ts(key: str, *extra: str):
            caches[key] = os.path.join(tmp, f"{key}-{len(times.get(key, []))}.sqlite")  # a fresh cache each round
            return lambda: run_torchsim(folder, args.threshold, args.workers, caches[key], *extra)

        def dhash_and_rerun() -> None:
            timed("dhash", ts("dhash", "--hash", "dhash"))
            timed("rerun", lambda: run_torchsim(folder, args.threshold, args.workers, caches["dhash"], "--hash", "dhash"))

        tools = [("torchsim dhash", dhash_and_rerun),
                 ("torchsim phash", lambda: timed("phash", ts("phash"))),
                 ("torchsim fast", lambda: timed("fast", ts("fast", "--hash", "dhash", "--fast-decode"))),
                 ("imagededup DHash", lambda: timed("imagededup DHash", lambda: run_imagededup(folder, args.threshold, args.workers))),
                 ("czkawka ImageSimilarity", lambda: timed("czkawka ImageSimilarity", lambda: run_czkawka(folder, args.threshold)))]
        tools = [(name, fn) for name, fn in tools if name not in missing]
        for r in range(args.rounds):
            for name, fn in tools[r % len(tools):] + tools[: r % len(tools)]:
                fn()
            if r == 0:  # the fast decode's hashes against the exact ones, from the first round's caches
                a, b = cached_hashes(caches["dhash"]), cached_hashes(caches["fast"])
        bits = [bin(int(a[k], 16) ^ int(b[k], 16)).count("1") for k in a if k in b]
        differ = sum(d > 0 for d in bits)
        fast_note = (f"hashes differing from the exact decode: {differ}/{len(bits)} "
                     f"({100.0 * differ / max(1, len(bits)):.1f} %), mean {np.mean(bits):.2f} bits, max {max(bits)}")
        for key, name, note in (("dhash", "torchsim dedup --hash dhash", ""), ("phash", "torchsim dedup (phash, the default)", ""),
                                ("fast", "torchsim dedup --hash dhash --fast-decode", fast_note),
                                ("rerun", "torchsim dedup --hash dhash, re-run", "every hash from the cache")):
            (doc,) = first[key]
            report(name, times[key], torchsim_pairs(doc), removed(doc), note)
        for name in ("imagededup DHash", "czkawka ImageSimilarity"):
            if name in missing:
                print(f"  {name:<42} {missing[name]}")
                results.append({"tool": name, "skipped": missing[name]})
                continue
            pairs, remove = first[name]
            report(name, times[name], pairs, remove)
        if "czkawka ImageSimilarity" in times:
            ratios = [c[0] / t[0] for c, t in zip(times["czkawka ImageSimilarity"], times["dhash"])]
            print("  czkawka / torchsim dhash, each round: " + ", ".join(f"{q:.2f}" for q in ratios))
    if args.json:
        import torch

        with open(args.json, "w") as fh:
            json.dump({"n": len(truth), "threshold": args.threshold, "workers": args.workers, "cpus": os.cpu_count(),
                       "results": results, "versions": {"torch": torch.__version__, "python": platform.python_version()}},
                      fh, indent=1)


if __name__ == "__main__":
    main()
