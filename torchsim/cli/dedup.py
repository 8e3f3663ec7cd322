"""``torchsim dedup DIR``: group exact (MD5) and near (perceptual-hash) duplicate images.

Pipeline: list the image files of DIR -> MD5 of every file (``torchsim.io.file_md5``)
-> decode (``_files.batches``, RGB) in windows of ``--batch-size`` files -> within a
window, images of one size are stacked and hashed
as one batch on ``--device`` (``torchsim.phash`` / ``ahash`` / ``dhash``, equal to
imagehash's) -> Hamming distances between the distinct hashes, in row blocks
(``torchsim.pairwise_hamming(..., other=...)``), so the whole ``N × N`` matrix is
never held -> groups.

Decisions:

* Files are the image files directly in DIR (``--recursive`` walks sub-folders);
  hidden files and files without an image extension are ignored.
* Exact duplicates: files with the same MD5 (two or more). They need no decoding,
  so two byte-identical corrupt files are still an exact group.
* Near duplicates: connected components of the graph whose edges join images with
  hash Hamming distance ``<= --threshold`` (default ``bits // 16``: 4 for the 64-bit
  hashes of ``--hash-size 8``). Components of two or more files with at least two
  different contents are reported (a component of byte-identical files is already
  an exact group). Each file's distance to the group's first file is shown.
* A file that cannot be read or decoded gets one line on stderr naming it (the
  ``ImageReadError`` message), is left out of the near-duplicate search, and makes
  the exit code 1; all other files are still processed.
* ``--json`` prints one JSON document on stdout instead of the text report.

Exit codes: 0 all files hashed, 1 some file failed (the rest was processed),
2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import torchsim  # the metrics (and torch) load on first use

from . import _metrics
from ._errors import CliError, check_at_least, check_device, check_folder, warn
from ._files import add_decode_options, batches, check_readable, decode_options, list_images
from ._sinks import dump_json

if TYPE_CHECKING:
    import torch

COMMAND = "dedup"
PROG = f"torchsim {COMMAND}"
HASHES = ("phash", "ahash", "dhash")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "dedup",
        help="group exact (MD5) and near (perceptual hash) duplicate images in a folder",
        description=(
            "Group the images of DIR that are byte-identical (same MD5) or nearly identical (perceptual "
            "hashes within a Hamming distance). Hashes equal imagehash's. Unreadable files get one line "
            "on stderr each and make the exit code 1; the other files are still processed."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="folder of images")
    p.add_argument("--hash", default="phash", choices=HASHES, help="perceptual hash (default phash)")
    p.add_argument("--hash-size", type=int, default=8, metavar="S", help="hash side; S*S bits (default 8)")
    p.add_argument("--threshold", type=int, default=None, metavar="T",
                   help="near duplicates: Hamming distance <= T (default bits // 16, i.e. 4 for 64-bit hashes)")
    p.add_argument("--recursive", "-r", action="store_true", help="also scan sub-folders")
    p.add_argument("--json", action="store_true", help="print a JSON document instead of the text report")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="images decoded and hashed per batch (default 64)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_decode_options(p)
    return p


def _check_args(args) -> None:
    check_folder(args.dir, "DIR")
    check_at_least("--hash-size", args.hash_size, 2)
    if args.threshold is not None:
        check_at_least("--threshold", args.threshold, 0)
    check_at_least("--batch-size", args.batch_size, 1)
    check_device(args.device)


def hash_files(
    paths: Sequence[str], hash_name: str, hash_size: int, batch_size: int, device: torch.device, bar=None,
    hashes: Optional[Dict[int, torch.Tensor]] = None, errors: Optional[Dict[int, str]] = None, options=None,
) -> Tuple[Dict[int, torch.Tensor], Dict[int, str]]:
    """Hash every decodable file: ``({index: bits (bits,) bool on CPU}, {index: error line})``.

    Files are decoded in windows of ``batch_size``; the images of one size within a window
    are hashed as one batch, so memory stays at one window whatever the sizes. Each file
    that fails gets its line on stderr as its window is decoded. ``hashes`` and ``errors``,
    when given, are filled as the windows come, so an interrupted run keeps what it hashed.
    """
    fn = _metrics.resolve(hash_name).function
    hashes = {} if hashes is None else hashes
    errors = {} if errors is None else errors
    for groups, failures in batches([(i, p, (p,)) for i, p in enumerate(paths)], batch_size, options=options):
        for i, _, msg in failures:
            errors[i] = msg
            warn(COMMAND, msg)
        for indices, _, (x,) in groups:
            hashes.update(zip(indices, fn(x.to(device), hash_size=hash_size).cpu()))
        if bar is not None:
            bar.update(sum(len(indices) for indices, _, _ in groups) + len(failures))
    return hashes, errors


def near_components(bits: torch.Tensor, threshold: int, device: torch.device) -> List[List[int]]:
    """Connected components (lists of row indices, size >= 2) of the "distance <= threshold" graph.

    Distances are computed in row blocks against all rows (``pairwise_hamming(..., other=)``),
    so memory is one block, and edges are merged with a union-find.
    """
    import torch

    n = bits.shape[0]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    h = bits.to(device)
    block = max(1, (1 << 22) // max(n, 1))
    for s in range(0, n, block):
        d = torchsim.pairwise_hamming(h[s : s + block], other=h)
        rows, cols = torch.nonzero(d <= threshold, as_tuple=True)  # data-dependent size: syncs, by design
        for r, c in zip((rows + s).tolist(), cols.tolist()):
            if r < c:
                a, b = find(r), find(c)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: Dict[int, List[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def run(args) -> int:
    _check_args(args)
    import torch

    device = torch.device(args.device)
    threshold = args.threshold if args.threshold is not None else args.hash_size * args.hash_size // 16
    paths = list_images(args.dir, args.recursive)
    md5, hashes, errors, interrupted = _digest(paths, args, device)
    exact, near = _groups(md5, hashes, threshold, device)
    if args.json:
        doc = _document(args, threshold, paths, hashes, errors, exact, near)
        doc["complete"] = interrupted is None
        dump_json(doc, sys.stdout)
    else:
        if interrupted is not None:
            print(f"interrupted: the groups below are over the {len(md5)} file(s) read and {len(hashes)} hashed so far")
        _print_report(args, threshold, paths, hashes, errors, exact, near)
    if interrupted is not None:
        raise interrupted  # main: "interrupted", exit code 130 (143 for SIGTERM)
    if errors:
        raise CliError(1, f"{len(errors)} file(s) failed, {len(hashes)} hashed")
    return 0


def _digest(paths: List[str], args, device: torch.device):
    """MD5 and perceptual hash of every file, by index: ``(md5, hashes, errors, interrupted)``, with a
    progress bar; ``interrupted`` is the ``KeyboardInterrupt`` (or SIGTERM) that stopped it, else None,
    and the dictionaries then hold what was done before it."""
    from tqdm import tqdm

    from torchsim.io import ImageReadError, file_md5

    errors: Dict[int, str] = {}
    md5: Dict[int, str] = {}
    hashed: Dict[int, torch.Tensor] = {}
    decode_errors: Dict[int, str] = {}
    todo: List[int] = []
    interrupted = None
    bar = tqdm(total=2 * len(paths), unit="file", desc=PROG, file=sys.stderr, dynamic_ncols=True,
               disable=args.no_progress or not paths)
    try:
        for i, p in enumerate(paths):
            try:
                check_readable(p)  # stat first: a FIFO or device is never opened
                md5[i] = file_md5(p)
            except ImageReadError as exc:
                errors[i] = str(exc)
                warn(COMMAND, errors[i])
            except OSError as exc:
                errors[i] = f"{p}: cannot read ({exc.strerror or exc})"
                warn(COMMAND, errors[i])
            bar.update(1)
        todo = [i for i in range(len(paths)) if i not in errors]
        bar.total = len(paths) + len(todo)
        hash_files([paths[i] for i in todo], args.hash, args.hash_size, args.batch_size, device, bar,
                   hashed, decode_errors, decode_options(args))
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        bar.close()
    errors.update({todo[k]: v for k, v in decode_errors.items()})
    return md5, {todo[k]: v for k, v in hashed.items()}, errors, interrupted


Groups = Tuple[List[Tuple[str, List[int]]], List[List[Tuple[int, int]]]]  # exact (md5, files), near [(file, distance)]


def _groups(md5: Dict[int, str], hashes: Dict[int, torch.Tensor], threshold: int, device: torch.device) -> Groups:
    """Exact groups (same MD5) and near groups (hash components, each file's distance to the first)."""
    import torch

    by_md5: Dict[str, List[int]] = {}
    for i in sorted(md5):
        by_md5.setdefault(md5[i], []).append(i)
    exact = [(digest, idx) for digest, idx in by_md5.items() if len(idx) > 1]

    # near duplicates: components over the distinct hashes
    order = sorted(hashes)
    near: List[List[Tuple[int, int]]] = []
    if order:
        stacked = torch.stack([hashes[i] for i in order])
        uniq, inverse = torch.unique(stacked, dim=0, return_inverse=True)
        members: Dict[int, List[int]] = {}
        for pos, u in enumerate(inverse.tolist()):
            members.setdefault(u, []).append(order[pos])
        comps = near_components(uniq, threshold, device) if uniq.shape[0] > 1 else []
        linked = {u for comp in comps for u in comp}
        comps += [[u] for u, m in members.items() if len(m) > 1 and u not in linked]  # equal hashes only
        for files in sorted(sorted(i for u in comp for i in members[u]) for comp in comps):
            if len({md5.get(i) for i in files}) < 2:
                continue  # byte-identical files only: already an exact group
            ref = hashes[files[0]]
            near.append([(i, int((hashes[i] != ref).sum())) for i in files])
    return exact, near


def _hexes(hashes: Dict[int, torch.Tensor]) -> Dict[int, str]:
    import torch

    order = sorted(hashes)
    return dict(zip(order, torchsim.hash_to_hex(torch.stack([hashes[i] for i in order])))) if order else {}


def _document(args, threshold, paths, hashes, errors, exact, near) -> Dict[str, object]:
    """The ``--json`` report."""
    hexes = _hexes(hashes)
    return {
        "directory": os.path.abspath(args.dir),
        "hash": args.hash,
        "hash_size": args.hash_size,
        "threshold": threshold,
        "files": len(paths),
        "hashed": len(hashes),
        "failed": len(errors),
        "exact_groups": [{"md5": d, "files": [paths[i] for i in idx]} for d, idx in exact],
        "near_groups": [
            {"files": [{"path": paths[i], "hash": hexes[i], "distance": dist} for i, dist in g]} for g in near
        ],
        "errors": [{"path": paths[i], "error": errors[i]} for i in sorted(errors)],
    }


def _print_report(args, threshold, paths, hashes, errors, exact, near) -> None:
    """The text report on stdout."""
    hexes = _hexes(hashes)
    print(f"{len(paths)} image file(s) in {args.dir}; {len(hashes)} hashed with {args.hash} "
          f"({args.hash_size * args.hash_size} bits), {len(errors)} failed")
    print(f"\nexact duplicates (same MD5): {len(exact)} group(s)")
    for k, (digest, idx) in enumerate(exact, 1):
        print(f"  group {k}: {len(idx)} files, md5 {digest}")
        for i in idx:
            print(f"    {paths[i]}")
    print(f"\nnear duplicates ({args.hash} Hamming distance <= {threshold}): {len(near)} group(s)")
    for k, g in enumerate(near, 1):
        print(f"  group {k}: {len(g)} files (distance to the first file, hash)")
        width = max(len(paths[i]) for i, _ in g)
        for i, dist in g:
            print(f"    {paths[i]:<{width}}  {dist:>3}  {hexes[i]}")
