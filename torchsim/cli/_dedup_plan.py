"""What ``torchsim dedup`` proposes and does: groups, which file each keeps, and the actions.

Groups (as imagededup reports them, and as a user can act on them):

* **Exact** groups: files with the same MD5, two or more. The best file by the keep policy is
  kept, the others are byte-identical copies to remove. Each exact group is reported once.
  Hard links of the kept file (the same file under other paths, as ``--action hardlink``
  leaves them) take no space: they are listed as its links, never as copies to remove, so a
  second run after ``hardlink`` has nothing left to do (czkawka ignores hard links likewise).
* **Near** groups are stars over the distinct contents (one file per MD5, the one its exact
  group keeps): every member is within the threshold *of the kept file*, so a chain of small
  steps (copies rotated 1.5° apart) is never one group whose ends differ by far more than the
  threshold. They are built from the pairs of distinct hashes within the threshold, closest
  first (ties: the pair whose better file ranks first by the keep policy, then its other file).
  A pair joins the groups of its two files when

  - one of the two is a single file, and the group it joins stays a star: some member of the
    result is within the threshold of every other member (so a file joins the group of the
    closest file that can take it); or
  - both are groups of two or more files, and every file of one is within the threshold of
    every file of the other: two groups of near duplicates are joined only when they are near
    duplicates as wholes, not because a few of their files are.

  A pair that cannot join its groups when its turn comes is not taken again. The kept file of a
  group is the best by the keep policy among its members within the threshold of every other
  member (there is always one): no member it could be swapped with, the group still a star,
  ranks above it. So ``--keep largest`` keeps the largest file wherever that file reaches every
  member; where it does not (a brightened copy saved larger than its original, too far from
  the cropped copy), the largest file that does.

  Why this rule (``python -m benchmarks.dedup_throughput --n 5000``: 1 000 photographs, each
  with four copies, threshold 10; found: the five files in one group; across: pairs of files
  of two photographs in one group; lost: photographs with every file removed). Stars built
  best first by the keep policy (the rule before) centre a group on its best-ranked file, and
  a file the centre does not reach, or an unrelated better-ranked file within the threshold of
  the original, splits it: dhash found 978/1 000, across 1 191, lost 25 (phash 968, 393, 12);
  imagededup's DHash finds 994 (its lists of duplicates per file are not a partition). A
  greedy cover (the centre with the most files not yet grouped around it first) centres on
  files between two photographs and swallows parts of both: dhash 977, 2 907, 43. This rule:
  dhash found 995, across 570, lost 14 (phash 982, 305, 11).

  Unlike stars built best first, two kept files may be within the threshold of each other
  (their groups were not near duplicates as wholes), and a file within the threshold of a
  member of a group is left out of it (and kept) when the group with it would have no centre.
  Files with the same hash but different bytes start as one group. Cost: the pairs sorted,
  then one union-find pass over them (see ``_stars``).

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
    import torch

    import torchsim

    firsts: Dict[str, FileInfo] = {}  # one file per MD5: the one its exact group keeps (or a hard link's file)
    for f in sorted((f for f in infos if f.hash is not None), key=key):
        firsts.setdefault(f.md5 or f"#{f.index}", f)
    contents = list(firsts.values())  # best first: a position is a rank
    if len(contents) < 2:
        return []
    hexes = sorted({f.hash for f in contents})
    slot = {hx: k for k, hx in enumerate(hexes)}
    at: List[List[int]] = [[] for _ in hexes]  # per distinct hash: its contents (positions, best first)
    for pos, f in enumerate(contents):
        at[slot[f.hash]].append(pos)
    bits = torchsim.hex_to_hash(hexes, hash_size=hash_size).to(device)
    pairs, dist = torchsim.hamming_pairs(bits, threshold)
    pairs, dist = pairs.cpu(), dist.cpu().long()
    # closest first, then by the ranks of the better and the worse of the two (unique: deterministic)
    best = torch.tensor([c[0] for c in at], dtype=torch.int64)
    ranks = best[pairs]
    n = len(contents)
    order = torch.argsort((dist * n + ranks.min(1).values) * n + ranks.max(1).values)
    pairs, dist = pairs[order].tolist(), dist[order].tolist()
    near: List[Dict[int, int]] = [{} for _ in hexes]  # per distinct hash: {distinct hash within the threshold: distance}
    for (a, b), d in zip(pairs, dist):
        near[a][b] = d
        near[b][a] = d
    groups = []
    for hashes, centres in _stars(at, near, pairs):
        keep = min(centres, key=lambda h: at[h][0])
        kept = at[keep][0]
        members = [(contents[q].index, 0 if h == keep else near[keep][h]) for h in hashes for q in at[h] if q != kept]
        if members:
            groups.append(Group("near", contents[kept].index, sorted(members, key=lambda m: (m[1], m[0]))))
    return sorted(groups, key=lambda g: min([g.keep] + [i for i, _ in g.members]))


def _stars(at: Sequence[Sequence[int]], near: Sequence[Dict[int, int]],
           pairs: Sequence[Sequence[int]]) -> List[Tuple[List[int], List[int]]]:
    """The near groups as ``(distinct hashes, centres)``: ``centres`` are the hashes of the group within
    the threshold of every other one (never empty). ``pairs`` are taken in order (closest first); a
    pair joins the groups of its two hashes when a single file joins a group that stays a star, or
    when every hash of one group is within the threshold of every hash of the other.

    Cost: one pass over the pairs with a union-find. A file joining filters the group's centres
    (a centre dropped never comes back, one kept is a pair within the threshold), two groups
    joining look at each pair across them, and a refused join is not looked at again until one
    of its groups grows: O(pairs) for groups of a few files, as photo folders have (a group of
    m files all within the threshold of each other: its m² / 2 pairs). A large group refusing
    many single files looks at its centres for each. Measured: 1 000 000 hashes in groups of
    five, 2 000 000 pairs at threshold 10: 11 s of the 43 s ``near_groups`` took on 2 busy cores."""
    root = list(range(len(at)))
    hashes = [[h] for h in range(len(at))]  # per group (by its root): its distinct hashes
    files = [len(c) for c in at]  # per group: its contents
    centres = [[h] for h in range(len(at))]  # per group: its hashes within the threshold of all its others
    refused = set()

    def find(h: int) -> int:
        while root[h] != h:
            root[h] = root[root[h]]
            h = root[h]
        return h

    for a, b in pairs:
        big, small = find(a), find(b)
        if big == small:
            continue
        if files[big] < files[small]:
            big, small = small, big
        state = (big, small, len(hashes[big]), len(hashes[small]))
        if state in refused:
            continue
        if files[small] == 1:  # one file: it joins if the group stays a star around one of its hashes
            (h,) = hashes[small]
            close = near[h]
            joined = [c for c in centres[big] if c in close]
            if len(close) >= len(hashes[big]) and all(t in close for t in hashes[big]):
                joined.append(h)
        elif all(len(near[t]) >= len(hashes[big]) and all(u in near[t] for u in hashes[big]) for t in hashes[small]):
            joined = centres[big] + centres[small]  # every hash of one within the threshold of every one of the other
        else:
            joined = []
        if not joined:
            refused.add(state)
            continue
        root[small] = big
        hashes[big] += hashes[small]
        files[big] += files[small]
        centres[big] = joined
        hashes[small], centres[small] = [], []
    return [(hashes[h], centres[h]) for h in range(len(at)) if root[h] == h and files[h] > 1]


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
