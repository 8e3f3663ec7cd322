"""``torchsim dedup DIR``: exact (MD5) and near (perceptual-hash) duplicates, which to keep, and what to do.

Pipeline: list the image files of DIR -> ``stat`` and MD5 of each (worker threads; from the
hash cache where a file kept its path, size and time) -> decode each file that has no cached
hash, once per distinct MD5, in a pool of threads (``--workers``; ``--fast-decode``: JPEGs at a
reduced DCT scale), and hash the images of one size as one batch on ``--device``
(``torchsim.phash`` / ``ahash`` / ``dhash``, equal to imagehash's) -> exact groups (same MD5)
-> near groups: stars around a kept file over the distinct contents, from the pairs of distinct
hashes within ``--threshold`` (``torchsim.hamming_pairs``: no ``N × N`` matrix) -> the report
(text, ``--json``, ``--csv FILE``, ``--sheet FILE``) -> ``--action`` on the files to remove,
a dry run unless ``--apply``. Groups, the keep policy and the safety checks of the actions:
:mod:`._dedup_plan`; files, cache and decoding: :mod:`._dedup_scan`.

Decisions:

* Files are the image files directly in DIR (``--recursive`` walks sub-folders); hidden files
  and files without an image extension are ignored, and so is the folder of ``--action move``
  when it is inside DIR.
* The progress bar counts files: first those read (MD5), then those hashed.
* Hash cache: ``--cache FILE`` (SQLite), by default under ``$XDG_CACHE_HOME/torchsim/dedup/``
  (``~/.cache``), one file per folder searched; ``--no-cache`` reads everything again. A file
  whose size or modification time changed is read again.
* A file that cannot be read or decoded gets one line on stderr naming it, is left out of the
  near-duplicate search (two byte-identical unreadable files are still an exact group) and
  makes the exit code 1; all other files are still processed.
* Ctrl-C or SIGTERM: the groups over what was read so far are reported (``"complete": false``
  in JSON) and written (``--csv``, ``--sheet``), no action is taken, and the cache keeps what
  was hashed; exit code 130 (143 for SIGTERM).
* Outputs: ``--csv`` is opened (locked) and its header written before any file is read, so a
  full disk or a file another run holds is one line before the work; a hash cache that cannot
  be opened or written is one line and the run goes on without it.

Exit codes: 0 all files hashed (and every action done), 1 some file failed or an action was
refused (the rest was processed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from . import _dedup_plan as plan
from . import _dedup_scan as scan
from ._errors import CliError, check_at_least, check_device, check_folder, warn
from ._files import add_decode_options, decode_options, list_images
from ._sinks import check_output, dump_json, open_output, write_png

if TYPE_CHECKING:
    import torch

COMMAND = "dedup"
PROG = f"torchsim {COMMAND}"
HASHES = ("phash", "ahash", "dhash")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dedup",
        help="find exact (MD5) and near (perceptual hash) duplicate images, choose which to keep, act on the rest",
        description=(
            "Group the images of DIR that are byte-identical (same MD5) or nearly identical (perceptual hashes "
            "within a Hamming distance of the file kept), keep one file per group by a policy, and report, move, "
            "hard-link or delete the others (a dry run unless --apply). Hashes equal imagehash's. Unreadable files "
            "get one line on stderr each and make the exit code 1; the other files are still processed."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="folder of images")
    p.add_argument("--hash", default="phash", choices=HASHES, help="perceptual hash (default phash)")
    p.add_argument("--hash-size", type=int, default=8, metavar="S", help="hash side; S*S bits (default 8)")
    p.add_argument("--threshold", type=int, default=None, metavar="T",
                   help="near duplicates: Hamming distance <= T to the kept file (default bits // 16: 4 for 64-bit hashes)")
    p.add_argument("--recursive", "-r", action="store_true", help="also scan sub-folders")
    keep = p.add_argument_group("which file of a group is kept", "of a near group: the best by --keep among its members "
                             "within --threshold of every other member")
    keep.add_argument("--keep", default="largest", choices=plan.KEEP_POLICIES,
                      help="largest: most pixels, then bytes (default); lossless: PNG/BMP/TIFF/GIF/lossless WebP first; "
                           "oldest / newest: modification time; first: path order")
    keep.add_argument("--prefer", action="append", default=[], metavar="FOLDER",
                      help="keep files under FOLDER before the others (repeatable: earlier folders first)")
    act = p.add_argument_group("what is done with the other files")
    act.add_argument("--action", nargs="+", default=["report"], metavar="ACTION",
                     help="report (default), move DIR (to the same relative path under DIR), hardlink (byte-identical "
                          "copies become hard links to the kept file), delete")
    act.add_argument("--apply", action="store_true", help="do the action (without it: a dry run that says what it would do)")
    out = p.add_argument_group("outputs")
    out.add_argument("--json", action="store_true", help="print a JSON document instead of the text report")
    out.add_argument("--csv", default=None, metavar="FILE",
                     help="one row per file of a group: group, kind, role (keep/link/remove), path, distance, bytes, size, md5, hash")
    out.add_argument("--sheet", default=None, metavar="FILE", help="a contact sheet PNG of the groups (thumbnails, names, distances)")
    out.add_argument("--sheet-groups", type=int, default=50, metavar="K", help="groups on the sheet (default 50)")
    run_ = p.add_argument_group("speed")
    run_.add_argument("--cache", default=None, metavar="FILE",
                      help="hash cache (SQLite) keyed by path, size and time (default: one per folder under $XDG_CACHE_HOME/torchsim)")
    run_.add_argument("--no-cache", action="store_true", help="neither read nor write a hash cache")
    run_.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), metavar="W",
                      help="threads reading and decoding files (default: the CPU count, at most 8)")
    run_.add_argument("--fast-decode", action="store_true",
                      help="decode JPEGs at a reduced scale (1/2..1/8, at least twice the hash thumbnail): faster, "
                           "hashes may differ from the exact decode by a few bits (the report says how often)")
    run_.add_argument("--batch-size", type=int, default=64, metavar="B", help="images hashed per batch (default 64)")
    run_.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    run_.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_decode_options(p)
    return p


def _check_args(args) -> Tuple[str, Optional[str]]:
    """The checked arguments; returns ``(action, target folder)``."""
    check_folder(args.dir, "DIR")
    check_at_least("--hash-size", args.hash_size, 2)
    if args.threshold is not None:
        check_at_least("--threshold", args.threshold, 0)
    check_at_least("--batch-size", args.batch_size, 1)
    check_at_least("--workers", args.workers, 0)
    check_at_least("--sheet-groups", args.sheet_groups, 1)
    check_device(args.device)
    action, *rest = args.action
    if action not in plan.ACTIONS:
        raise CliError(2, f"--action must be one of report, move DIR, hardlink, delete; got {action!r}")
    if action == "move" and len(rest) != 1:
        raise CliError(2, "--action move takes one folder: --action move DIR (put it after the folder searched)")
    if action != "move" and rest:
        raise CliError(2, f"--action {action} takes no folder, got {' '.join(rest)!r}")
    if args.apply and action == "report":
        raise CliError(2, "--apply needs an --action to apply: move DIR, hardlink or delete")
    for folder in args.prefer:
        check_folder(folder, "--prefer")
    target = rest[0] if rest else None
    if target is not None and os.path.exists(target) and not os.path.isdir(target):
        raise CliError(2, f"{target}: --action move DIR is not a folder")
    if target is not None and os.path.abspath(target) == os.path.abspath(args.dir):
        raise CliError(2, f"{target}: --action move DIR is the folder searched; name another folder")
    for path in (args.csv, args.sheet):
        if path:
            check_output(path)
    return action, target


def hash_files(infos: Sequence[scan.FileInfo], args, device: "torch.device", cache, tick) -> None:
    """Hash every file of ``infos`` (their ``hash``, pixel size, or ``error``), caching each batch."""
    from . import _metrics

    scan.hash_files(
        infos, _metrics.resolve(args.hash).function, args.hash_size, device,
        workers=args.workers, batch_size=args.batch_size,
        fast=args.fast_decode,
        thumb=scan.thumb_size(args.hash, args.hash_size), options=decode_options(args), tick=tick,
        done=cache.store if cache is not None else (lambda _: None),
    )


def run(args) -> int:
    action, target = _check_args(args)
    import torch

    device = torch.device(args.device)
    # the CSV is opened (locked, header written) before the work: a full disk or a file another
    # run holds is one line now, not after hashing every file
    csv_out = _open_csv(args.csv) if args.csv else None
    try:
        return _run(args, action, target, device, csv_out)
    finally:
        if csv_out is not None:
            csv_out.close()


def _run(args, action: str, target: Optional[str], device: "torch.device", csv_out) -> int:
    threshold = args.threshold if args.threshold is not None else args.hash_size * args.hash_size // 16
    paths = list_images(args.dir, args.recursive)
    if target is not None:  # the folder moved to is not searched: the same command run again moves nothing more
        moved_to = os.path.abspath(target)
        paths = [p for p in paths if os.path.commonpath([os.path.abspath(p), moved_to]) != moved_to]
    kind = f"{args.hash}:{args.hash_size}:{'fast' if args.fast_decode else 'exact'}:{'exif' if args.exif else 'stored'}"
    cache = None if args.no_cache else scan.open_cache(args.cache or scan.default_cache_path(args.dir), kind,
                                                       lambda m: warn(COMMAND, m))
    try:
        infos, interrupted = _digest(paths, args, device, cache)
    finally:
        if cache is not None:
            cache.close()
    errors = {f.index: f.error for f in infos if f.error is not None}
    hashed = sum(f.hash is not None for f in infos)
    key = plan.rank_key(args.keep, args.prefer)
    exact = plan.exact_groups(infos, key)
    near = plan.near_groups(infos, key, args.hash_size, threshold, device)
    todo = plan.removals(exact, near)
    outcomes = plan.plan_actions(action, target, args.dir, infos, todo)
    if args.apply and interrupted is None:
        plan.apply_actions(outcomes, infos, todo)
    fast = None
    if args.fast_decode and interrupted is None:
        from . import _metrics

        fast = scan.fast_decode_check(infos, _metrics.resolve(args.hash).function, args.hash_size, device,
                                      scan.thumb_size(args.hash, args.hash_size), decode_options(args))
    summary = {
        "threshold": threshold, "action": action, "target": target, "applied": bool(args.apply and interrupted is None),
        "read": sum(f.md5 is not None for f in infos), "hashed": hashed,
        "cached": sum(f.cached for f in infos), "fast": fast, "complete": interrupted is None,
    }
    if csv_out is not None:
        _write_csv(csv_out, exact, near, infos)
    if args.sheet:
        _write_sheet(args, exact, near, infos, threshold)
    if args.json:
        dump_json(_document(args, summary, infos, exact, near, todo, outcomes), sys.stdout)
    else:
        _print_report(args, summary, infos, exact, near, todo, outcomes)
    for o in outcomes:
        if o.error and (args.apply or o.action == "leave"):
            warn(COMMAND, o.error)
    if interrupted is not None:
        raise interrupted  # main: "interrupted", exit code 130 (143 for SIGTERM)
    problems = []
    if errors:
        problems.append(f"{len(errors)} file(s) failed, {hashed} hashed")
    refused = sum(1 for o in outcomes if o.error and o.action != "leave")
    if refused and args.apply:
        problems.append(f"{refused} file(s) left alone by --action {action} (see above)")
    if problems:
        raise CliError(1, "; ".join(problems))
    return 0


def _digest(paths: List[str], args, device: "torch.device", cache):
    """Read (MD5) then hash every file, with a progress bar counting files: ``(infos, interrupted)``;
    ``interrupted`` is the ``KeyboardInterrupt`` (or SIGTERM) that stopped it, else None, and
    ``infos`` then hold what was done before it."""
    from tqdm import tqdm

    infos = [scan.FileInfo(i, p) for i, p in enumerate(paths)]
    interrupted = None
    bar = tqdm(total=len(paths), unit="file", desc=f"{PROG}: reading", file=sys.stderr, dynamic_ncols=True,
               disable=args.no_progress or not paths)
    try:
        scan.read_files(infos, args.workers, cache, bar.update)
        for f in infos:
            if f.error is not None:
                warn(COMMAND, f.error)
        if cache is not None:
            cache.store(f for f in infos if f.error is None and f.hash is None and f.md5 is not None)
        todo = [f for f in infos if f.error is None and f.hash is None]
        bar.refresh()  # the count of files read, before the bar counts the files hashed
        bar.reset(total=len(todo))
        bar.set_description(f"{PROG}: hashing")
        hash_files(todo, args, device, cache, bar.update)
        for f in todo:
            if f.error is not None:
                warn(COMMAND, f.error)
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        bar.close()
    return infos, interrupted


# ---- outputs --------------------------------------------------------------------------------


def _rows(exact: Sequence[plan.Group], near: Sequence[plan.Group]):
    """``(group number, group, index, role, distance)`` for every file of every group, kept file first."""
    for k, g in enumerate([*exact, *near], 1):
        yield k, g, g.keep, "keep", 0
        for i in g.links:
            yield k, g, i, "link", 0
        for i, d in g.members:
            yield k, g, i, "remove", d


def _open_csv(path: str):
    """The ``--csv`` file, opened and locked, its header written and flushed."""
    fh = open_output(path)
    try:
        csv.writer(fh).writerow(["group", "kind", "role", "path", "distance", "bytes", "width", "height", "md5", "hash"])
        fh.flush()
    except BaseException:
        fh.close()
        raise
    return fh


def _write_csv(fh, exact, near, infos) -> None:
    """The rows of ``--csv`` (under the header :func:`_open_csv` wrote), flushed."""
    w = csv.writer(fh)
    for k, g, i, role, d in _rows(exact, near):
        f = infos[i]
        w.writerow([k, g.kind, role, f.path, d, f.size, f.width or "", f.height or "", f.md5 or "", f.hash or ""])
    fh.flush()


def _write_sheet(args, exact, near, infos, threshold) -> None:
    from ._dedup_sheet import contact_sheet

    groups = [*exact, *near][: args.sheet_groups]
    title = (f"torchsim dedup {args.dir}: {len(exact)} exact and {len(near)} near group(s), "
             f"{args.hash} distance <= {threshold}, keep {args.keep}")
    if len(exact) + len(near) > len(groups):
        title += f" (first {len(groups)} shown)"
    write_png(contact_sheet(groups, infos, title, decode_options(args), root=args.dir), args.sheet)


def _file_doc(f: scan.FileInfo) -> Dict[str, Any]:
    return {"path": f.path, "bytes": f.size, "width": f.width or None, "height": f.height or None,
            "md5": f.md5, "hash": f.hash}


def _document(args, summary, infos, exact, near, todo, outcomes) -> Dict[str, Any]:
    """The ``--json`` report."""
    removed_bytes = sum(infos[i].size for i, _, _ in todo)
    return {
        "directory": os.path.abspath(args.dir),
        "hash": args.hash,
        "hash_size": args.hash_size,
        "threshold": summary["threshold"],
        "keep": args.keep,
        "prefer": [os.path.abspath(d) for d in args.prefer],
        "files": len(infos),
        "hashed": summary["hashed"],
        "cached": summary["cached"],
        "failed": sum(f.error is not None for f in infos),
        "exact_groups": [
            {"md5": g.md5, "bytes": infos[g.keep].size, "files": sorted([infos[g.keep].path, *(infos[i].path for i in g.links), *(infos[i].path for i, _ in g.members)]),
             "keep": infos[g.keep].path, "links": [infos[i].path for i in g.links],
             "remove": [infos[i].path for i, _ in g.members]}
            for g in exact
        ],
        "near_groups": [
            {"keep": infos[g.keep].path,
             "files": [{**_file_doc(infos[g.keep]), "role": "keep", "distance": 0}]
             + [{**_file_doc(infos[i]), "role": "remove", "distance": d} for i, d in g.members]}
            for g in near
        ],
        "remove": [infos[i].path for i, _, _ in todo],
        "remove_bytes": removed_bytes,
        "action": {"name": summary["action"], "target": summary["target"], "applied": summary["applied"],
                   "files": [{"path": o.path, "action": o.action, "target": o.target, "done": o.done, "error": o.error}
                             for o in outcomes if o.action != "report"]},
        "fast_decode": None if summary["fast"] is None else dict(zip(("checked", "differing", "mean_bits"), summary["fast"])),
        "errors": [{"path": f.path, "error": f.error} for f in infos if f.error is not None],
        "complete": summary["complete"],
    }


def _print_report(args, summary, infos, exact, near, todo, outcomes) -> None:
    """The text report on stdout."""
    from ._dedup_sheet import human_bytes

    failed = sum(f.error is not None for f in infos)
    if not summary["complete"]:
        print(f"interrupted: the groups below are over the {summary['read']} file(s) read and "
              f"{summary['hashed']} hashed so far; no action taken")
    cached = f"; {summary['cached']} from the cache" if summary["cached"] else ""
    print(f"{len(infos)} image file(s) in {args.dir}; {summary['hashed']} hashed with {args.hash} "
          f"({args.hash_size * args.hash_size} bits), {failed} failed{cached}")
    prefer = f", preferring {', '.join(args.prefer)}" if args.prefer else ""
    print(f"keep: {args.keep}{prefer}")

    def line(role: str, f: scan.FileInfo, note: str) -> str:
        dims = f"{f.width}x{f.height}" if f.width else "?"
        return f"    {role:<6}  {f.path}  ({dims}, {human_bytes(f.size)}{note})"

    print(f"\nexact duplicates (same MD5): {len(exact)} group(s)")
    for k, g in enumerate(exact, 1):
        print(f"  group {k}: {1 + len(g.links) + len(g.members)} files, md5 {g.md5}")
        print(line("keep", infos[g.keep], ""))
        for i in g.links:
            print(line("link", infos[i], ", a hard link of the kept file: left alone"))
        for i, _ in g.members:
            print(line("remove", infos[i], ""))
    print(f"\nnear duplicates ({args.hash} Hamming distance <= {summary['threshold']} to the kept file): {len(near)} group(s)")
    for k, g in enumerate(near, len(exact) + 1):
        print(f"  group {k}: {1 + len(g.members)} files")
        print(line("keep", infos[g.keep], f", hash {infos[g.keep].hash}"))
        for i, d in g.members:
            print(line("remove", infos[i], f", distance {d}"))
    total = sum(infos[i].size for i, _, _ in todo)
    print(f"\nfiles to remove: {len(todo)} ({human_bytes(total)})")
    if summary["fast"] is not None:
        checked, differing, mean_bits = summary["fast"]
        print(f"--fast-decode: the hashes of {differing} of {checked} JPEG(s) checked differ from the exact decode's "
              f"(by {mean_bits:.2f} bits on average)")
    action = summary["action"]
    if action == "report":
        if todo:
            print("nothing was changed; --action move DIR | hardlink | delete says what it would do, --apply does it")
        return
    verb = {"delete": "delete", "move": f"move to {summary['target']}", "hardlink": "replace by a hard link"}[action]
    acting = [o for o in outcomes if o.action != "leave"]
    if not summary["applied"]:
        print(f"dry run: --action {action} would {verb} {len(acting)} file(s); nothing was changed, --apply does it")
        for o in acting:
            print(f"  would {o.action}  {o.path}" + (f"  ->  {o.target}" if o.target else ""))
    else:
        done = [o for o in acting if o.done]
        print(f"--action {action}: {len(done)} of {len(acting)} file(s) done" +
              (f", {len(acting) - len(done)} left alone (see stderr)" if len(done) < len(acting) else ""))
        for o in done:
            past = {"delete": "deleted", "move": "moved", "hardlink": "linked"}[o.action]
            print(f"  {past:<7} {o.path}" + (f"  ->  {o.target}" if o.target else ""))
    left = len(outcomes) - len(acting)
    if left:
        print(f"{left} near duplicate(s) left: hardlink replaces only byte-identical copies")
