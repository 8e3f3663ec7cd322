"""What ``torchsim dedup`` proposes and does: groups, which file each keeps, and the actions.

Groups (as imagededup reports them, and as a user can act on them):

* **Exact** groups: files with the same MD5, two or more. The best file by the keep policy is
  kept, the others are byte-identical copies to remove. Each exact group is reported once.
  Hard links of the kept file (the same file under other paths, as ``--action hardlink``
  leaves them) take no space: they are listed as its links, never as copies to remove, so a
  second run after ``hardlink`` has nothing left to do (czkawka ignores hard links likewise).
* **Near** groups are stars around a kept file, over the distinct contents (one file per MD5,
  the one its exact group keeps): every member is within the threshold *of the kept file*, so
  a chain of small steps (copies rotated 1.5° apart) is never one group whose ends differ by
  far more than the threshold. Files are taken best first by the keep policy: a file within the
  threshold of a kept file already chosen joins the nearest of them (ties: the better ranked);
  any other file is kept, the centre of a new group. So kept files are more than the threshold
  apart, no member of a group ranks above its kept file, and a file sits with the kept file it
  is closest to, not with the first one that reached it.

Keep policy: ``--prefer DIR`` (repeatable, in order) first: a file under an earlier preferred
folder wins; then ``--keep``: ``largest`` (most pixels, then most bytes), ``lossless`` (PNG, BMP,
TIFF, GIF or lossless WebP before lossy files, then largest), ``oldest`` / ``newest``
(modification time), ``first`` (path order); ties go to path order.

Actions on the files to remove, dry run unless ``apply`` (then each is checked just before it
is done, and skipped with one line if the check fails):

* every file must still have the size and time it was read with, and the file it is a duplicate
  of (the one kept) must still exist, be unchanged, and be a different file (not the same file
  through a link); a byte-identical copy's MD5 and its kept file's are computed again and must
  still be equal;
* ``delete`` removes the file; ``move DIR`` moves it to the same relative path under DIR
  (never overwriting a file there; across file systems: copy, then rename into place, then
  remove); ``hardlink`` replaces a byte-identical copy with a hard link to its kept file (a new
  link renamed over it: atomic) and leaves near duplicates alone (they differ in their bytes).

A kept file is never deleted, moved or replaced.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ._dedup_scan import FileInfo, _md5

KEEP_POLICIES = ("largest", "lossless", "oldest", "newest", "first")
ACTIONS = ("report", "move", "hardlink", "delete")


@dataclasses.dataclass
class Group:
    """A kept file and the members to remove with their hash distance to it (0 for an exact copy)."""

    kind: str  # "exact" or "near"
    keep: int  # index of the kept file
    members: List[Tuple[int, int]]  # (index, distance to the kept file)
    md5: Optional[str] = None  # the exact group's digest
    links: List[int] = dataclasses.field(default_factory=list)  # hard links of the kept file (left alone)


def rank_key(policy: str, prefer: Sequence[str]) -> Callable[[FileInfo], Tuple]:
    """Sort key: the file to keep first."""
    roots = [os.path.abspath(d) for d in prefer]

    def preferred(path: str) -> int:
        p = os.path.abspath(path)
        for k, root in enumerate(roots):
            if os.path.commonpath([p, root]) == root:
                return k
        return len(roots)

    def key(f: FileInfo) -> Tuple:
        pixels = f.width * f.height
        by = {
            "largest": (-pixels, -f.size),
            "lossless": (not f.lossless, -pixels, -f.size),
            "oldest": (f.mtime_ns,),
            "newest": (-f.mtime_ns,),
            "first": (),
        }[policy]
        return (preferred(f.path), *by, f.index)

    return key


def exact_groups(infos: Sequence[FileInfo], key) -> List[Group]:
    """One group per MD5 shared by two or more files (even files that do not decode), unless they
    are all hard links of one file."""
    by_md5: Dict[str, List[FileInfo]] = {}
    for f in infos:
        if f.md5 is not None:
            by_md5.setdefault(f.md5, []).append(f)
    groups = []
    for digest, files in by_md5.items():
        if len(files) > 1:
            keep, *others = sorted(files, key=key)
            linked = [f.inode is not None and f.inode == keep.inode for f in others]
            members = [(f.index, 0) for f, link in zip(others, linked) if not link]
            if members:
                groups.append(Group("exact", keep.index, members, digest, [f.index for f, link in zip(others, linked) if link]))
    return sorted(groups, key=lambda g: min([g.keep] + [i for i, _ in g.members]))


def near_groups(infos: Sequence[FileInfo], key, hash_size: int, threshold: int, device) -> List[Group]:
    """Stars around kept files over the distinct contents (see the module's docstring)."""
    import torchsim

    firsts: Dict[str, FileInfo] = {}  # one file per MD5: the one its exact group keeps (or a hard link's file)
    for f in sorted((f for f in infos if f.hash is not None), key=key):
        firsts.setdefault(f.md5 or f"#{f.index}", f)
    contents = list(firsts.values())  # best first
    if len(contents) < 2:
        return []
    hexes = sorted({f.hash for f in contents})
    slot = {hx: k for k, hx in enumerate(hexes)}
    bits = torchsim.hex_to_hash(hexes, hash_size=hash_size).to(device)
    pairs, dist = torchsim.hamming_pairs(bits, threshold)
    near: List[List[Tuple[int, int]]] = [[] for _ in hexes]
    for (a, b), d in zip(pairs.tolist(), dist.tolist()):
        near[a].append((b, d))
        near[b].append((a, d))
    # best first: a file within the threshold of a kept file found before it joins the nearest
    # such one (ties: the better ranked); any other file is kept, the centre of a new star
    centres: List[List[int]] = [[] for _ in hexes]  # per distinct hash: its kept files (positions)
    joined: Dict[int, List[Tuple[int, int]]] = {}
    for pos, f in enumerate(contents):
        h = slot[f.hash]
        best = min([(0, c) for c in centres[h]] + [(d, c) for other, d in near[h] for c in centres[other]], default=None)
        if best is None:
            centres[h].append(pos)
            joined[pos] = []
        else:
            joined[best[1]].append((pos, best[0]))
    groups = [
        Group("near", contents[c].index, [(contents[q].index, d) for q, d in sorted(found, key=lambda m: (m[1], m[0]))])
        for c, found in joined.items() if found
    ]
    return sorted(groups, key=lambda g: min([g.keep] + [i for i, _ in g.members]))


def removals(exact: Sequence[Group], near: Sequence[Group]) -> List[Tuple[int, int, str]]:
    """``(file, kept file, kind)`` for every file to remove: exact copies first, then near duplicates."""
    out = [(i, g.keep, "exact") for g in exact for i, _ in g.members]
    out += [(i, g.keep, "near") for g in near for i, _ in g.members]
    return out


# ---- actions --------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    path: str
    action: str  # "delete", "move", "hardlink" or "leave"
    target: Optional[str] = None  # where a moved file goes
    done: bool = False
    error: Optional[str] = None


def _unchanged(f: FileInfo) -> Optional[str]:
    try:
        st = os.stat(f.path)
    except OSError as exc:
        return f"{f.path}: {exc.strerror or exc} (it was read at the start)"
    if (st.st_size, st.st_mtime_ns) != (f.size, f.mtime_ns):
        return f"{f.path}: changed since it was read (size or time); left alone"
    return None


def check_removal(f: FileInfo, kept: FileInfo, kind: str) -> Optional[str]:
    """Why removing ``f`` as a duplicate of ``kept`` is not safe now (one line), or None."""
    for g in (f, kept):
        problem = _unchanged(g)
        if problem:
            return problem if g is f else f"{f.path}: left alone: its kept file {problem}"
    try:
        if os.path.samefile(f.path, kept.path) or os.path.realpath(f.path) == os.path.realpath(kept.path):
            return f"{f.path}: the same file as its kept file {kept.path} (a link); left alone"
    except OSError as exc:
        return f"{f.path}: cannot compare with {kept.path} ({exc.strerror or exc}); left alone"
    if kind == "exact":
        try:
            now, kept_now = _md5(f.path), _md5(kept.path)
        except OSError as exc:
            return f"{f.path}: cannot read ({exc.strerror or exc}); left alone"
        if now != f.md5 or kept_now != f.md5:
            return f"{f.path}: no longer byte-identical to {kept.path} (MD5 changed); left alone"
    return None


def plan_actions(action: str, target: Optional[str], root: str, infos: Sequence[FileInfo],
                 todo: Sequence[Tuple[int, int, str]]) -> List[Outcome]:
    """What ``action`` would do with each file to remove (nothing is touched)."""
    out = []
    for i, _, kind in todo:
        path = infos[i].path
        if action == "delete":
            out.append(Outcome(path, "delete"))
        elif action == "move":
            rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
            out.append(Outcome(path, "move", os.path.join(target, rel)))
        elif action == "hardlink":
            out.append(Outcome(path, "hardlink" if kind == "exact" else "leave",
                               error=None if kind == "exact" else
                               f"{path}: near duplicate, not byte-identical: hardlink replaces only exact copies; left alone"))
        else:
            out.append(Outcome(path, "report"))
    return out


def apply_actions(outcomes: Sequence[Outcome], infos: Sequence[FileInfo], todo: Sequence[Tuple[int, int, str]]) -> None:
    """Do each planned action whose safety check passes; set ``done`` or ``error``."""
    kept_indices = {keep for _, keep, _ in todo}
    for outcome, (i, keep, kind) in zip(outcomes, todo):
        if outcome.action in ("report", "leave"):
            continue
        if i in kept_indices:  # by construction never; a kept file is never touched
            outcome.error = f"{outcome.path}: is a kept file; left alone"
            continue
        problem = check_removal(infos[i], infos[keep], kind)
        if problem:
            outcome.error = problem
            continue
        try:
            if outcome.action == "delete":
                os.remove(outcome.path)
            elif outcome.action == "move":
                _move(outcome.path, outcome.target)
            elif outcome.action == "hardlink":
                _hardlink(infos[keep].path, outcome.path)
            outcome.done = True
        except OSError as exc:
            outcome.error = f"{outcome.path}: cannot {outcome.action} ({exc.strerror or exc}); left alone"


def _move(src: str, dst: str) -> None:
    """Move without ever overwriting ``dst``; across file systems copy to a temporary name, rename, remove."""
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, "a file is already there", dst)
    try:
        os.link(src, dst, follow_symlinks=False)  # same file system: fails if dst appeared meanwhile
        os.remove(src)
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    tmp = f"{dst}.torchsim-{os.getpid()}.tmp"
    shutil.copy2(src, tmp)
    try:
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, "a file is already there", dst)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise
    os.remove(src)


def _hardlink(kept: str, dup: str) -> None:
    """Replace ``dup`` by a hard link to ``kept``: a new link beside it, renamed over it."""
    tmp = f"{dup}.torchsim-{os.getpid()}.tmp"
    os.link(kept, tmp)
    try:
        os.replace(tmp, dup)
    except BaseException:
        os.remove(tmp)
        raise
