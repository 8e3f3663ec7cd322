"""What ``torchsim dedup`` knows about each file: size, times, MD5, pixel size and perceptual hash.

* :class:`HashCache`: an SQLite file of those facts keyed by path, size and modification time,
  so a re-run over a grown folder reads and decodes only the files that are new or changed.
* :func:`read_files`: ``stat`` and MD5 of every file (MD5s in worker threads: ``hashlib`` releases
  the GIL), from the cache where it still holds.
* :func:`hash_files`: the perceptual hash of every file that lacks one. Byte-identical files are
  decoded once. Decoding runs in a pool of threads (Pillow and libjpeg release the GIL), the
  hashes in batches of one image size on the main thread, while the pool decodes ahead.
* :func:`fast_decode`: the opt-in reduced-size JPEG decode (Pillow's ``draft``: libjpeg scales
  the DCT by 1/2, 1/4 or 1/8 while decoding), which keeps at least twice the hash thumbnail's
  side; other formats are decoded in full. Its hashes can differ from the exact ones by a few
  bits: :func:`fast_decode_check` measures how often on a sample.

Nothing here imports torch or Pillow when the module is imported.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import os
import sqlite3
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ._files import check_readable, decode

if TYPE_CHECKING:
    import torch

LOSSLESS_FORMATS = ("PNG", "BMP", "TIFF", "GIF")  # and WebP when its first chunk is VP8L
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclasses.dataclass
class FileInfo:
    """One image file as the search sees it; ``hash`` is a hex string (``torchsim.hash_to_hex``)."""

    index: int
    path: str
    size: int = 0
    mtime_ns: int = 0
    md5: Optional[str] = None
    width: int = 0
    height: int = 0
    lossless: Optional[bool] = None
    hash: Optional[str] = None
    error: Optional[str] = None
    cached: bool = False  # the hash came from the cache (not decoded in this run)


# ---- the cache ------------------------------------------------------------------------------


def default_cache_path(folder: str) -> str:
    """``$XDG_CACHE_HOME/torchsim/dedup/<digest of the folder's absolute path>.sqlite`` (``~/.cache`` by default):
    nothing is written into the folder that is searched."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha1(os.path.abspath(folder).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return os.path.join(base, "torchsim", "dedup", f"{digest}.sqlite")


class HashCache:
    """Facts about files, valid while a file keeps its path, size and modification time.

    Table ``files(path, size, mtime_ns, md5, width, height, lossless)`` and table
    ``hashes(path, kind, hex)`` where ``kind`` names the hash, its size and the decode
    (``"phash:8:exact"``). A file whose size or time changed is forgotten and read again.
    Rows are committed after every batch, so an interrupted run keeps what it computed.
    """

    def __init__(self, path: str, kind: str) -> None:
        self.path = path
        self.kind = kind
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, "
                        "md5 TEXT, width INTEGER, height INTEGER, lossless INTEGER)")
        self.db.execute("CREATE TABLE IF NOT EXISTS hashes (path TEXT, kind TEXT, hex TEXT, PRIMARY KEY (path, kind))")
        self.db.commit()
        self.rows: Dict[str, Tuple[Any, ...]] = {
            r[0]: r[1:] for r in self.db.execute("SELECT path, size, mtime_ns, md5, width, height, lossless FROM files")
        }
        self.hashes: Dict[str, str] = dict(self.db.execute("SELECT path, hex FROM hashes WHERE kind = ?", (kind,)))

    def fill(self, info: FileInfo) -> bool:
        """Copy what the cache holds for ``info`` (same size and time) into it; True if the MD5 was there."""
        row = self.rows.get(os.path.abspath(info.path))
        if row is None or (row[0], row[1]) != (info.size, info.mtime_ns) or row[2] is None:
            return False
        info.md5 = row[2]
        if row[3]:
            info.width, info.height, info.lossless = row[3], row[4], bool(row[5]) if row[5] is not None else None
            info.hash = self.hashes.get(os.path.abspath(info.path))
            info.cached = info.hash is not None
        return True

    def store(self, infos: Iterable[FileInfo]) -> None:
        """Record the MD5 (and pixel size, hash) of ``infos``; committed at once."""
        files, hashes, stale = [], [], []
        for f in infos:
            key = os.path.abspath(f.path)
            old = self.rows.get(key)
            if old is not None and (old[0], old[1]) != (f.size, f.mtime_ns):
                stale.append((key,))
            row = (f.size, f.mtime_ns, f.md5, f.width or None, f.height or None,
                   None if f.lossless is None else int(f.lossless))
            self.rows[key] = row
            files.append((key, *row))
            if f.hash is not None:
                self.hashes[key] = f.hash
                hashes.append((key, self.kind, f.hash))
        with self.db:
            self.db.executemany("DELETE FROM hashes WHERE path = ?", stale)
            self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", files)
            self.db.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)", hashes)

    def close(self) -> None:
        self.db.close()


def open_cache(path: Optional[str], kind: str, warn: Callable[[str], None]) -> Optional[HashCache]:
    """The cache at ``path`` (None: no cache); a cache that cannot be opened is one line and no cache."""
    if path is None:
        return None
    try:
        return HashCache(path, kind)
    except (sqlite3.Error, OSError) as exc:
        warn(f"{path}: cannot use the hash cache ({exc}); hashing every file")
        return None


# ---- MD5 ------------------------------------------------------------------------------------


def _md5(path: str, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_one(info: FileInfo) -> FileInfo:
    """``stat`` and MD5 of one file, or its error line (FIFOs and devices are never opened)."""
    from torchsim.io import ImageReadError

    try:
        check_readable(info.path)
        st = os.stat(info.path)
        info.size, info.mtime_ns = st.st_size, st.st_mtime_ns
        info.md5 = _md5(info.path)
    except ImageReadError as exc:
        info.error = str(exc)
    except OSError as exc:
        info.error = f"{info.path}: cannot read ({exc.strerror or exc})"
    return info


def _stat_cached(info: FileInfo, cache: Optional[HashCache]) -> bool:
    """Fill ``info`` from the cache when its size and time still match (no MD5 needed)."""
    if cache is None:
        return False
    try:
        st = os.stat(info.path)
    except OSError:
        return False
    import stat

    if not stat.S_ISREG(st.st_mode):
        return False
    info.size, info.mtime_ns = st.st_size, st.st_mtime_ns
    return cache.fill(info)


def read_files(infos: Sequence[FileInfo], workers: int, cache: Optional[HashCache], tick: Callable[[int], None]) -> None:
    """Fill in size, time and MD5 of every info (or its ``error``), from the cache where it holds."""
    todo = []
    for info in infos:
        if _stat_cached(info, cache):
            tick(1)
        else:
            todo.append(info)
    for _ in _pooled(_read_one, todo, workers):
        tick(1)


def _pooled(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, ahead: int = 0) -> Iterator[Any]:
    """``fn(item)`` for every item, in order, computed by ``workers`` threads at most ``ahead`` items ahead."""
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    ahead = ahead or 4 * workers
    pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="torchsim-dedup")
    window: collections.deque = collections.deque()
    todo = iter(items)
    try:
        for item in todo:
            window.append(pool.submit(fn, item))
            if len(window) >= ahead:
                break
        while window:
            result = window.popleft().result()
            for item in todo:
                window.append(pool.submit(fn, item))
                break
            yield result
    finally:  # a consumer that stops (an error, SIGINT) leaves no work behind
        pool.shutdown(wait=False, cancel_futures=True)


# ---- decoding -------------------------------------------------------------------------------


def _is_lossless(path: str, fmt: Optional[str]) -> bool:
    if fmt == "WEBP":
        try:
            with open(path, "rb") as fh:
                return fh.read(16)[12:16] == b"VP8L"
        except OSError:
            return False
    return fmt in LOSSLESS_FORMATS


def _format(path: str) -> Optional[str]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.format
    except Exception:
        return None


def exact_decode(path: str, options: Dict[str, Any], thumb: Tuple[int, int]) -> Tuple["torch.Tensor", Tuple[int, int], bool]:
    """The full decode of the other commands (8-bit RGB): ``(image, (width, height), lossless)``."""
    image = decode(path, "RGB", keep16=False, **options)
    return image, (image.shape[-1], image.shape[-2]), _is_lossless(path, _format(path))


def fast_decode(path: str, options: Dict[str, Any], thumb: Tuple[int, int]) -> Tuple["torch.Tensor", Tuple[int, int], bool]:
    """A JPEG decoded at the smallest DCT scale (1/2 .. 1/8) that keeps both sides at least twice
    ``thumb``; anything else (or a JPEG Pillow refuses) decoded in full by :func:`exact_decode`.

    Returns ``(image, (width, height) of the full image, lossless)``.
    """
    import warnings

    import numpy as np
    import torch
    from PIL import Image, ImageOps

    if not is_jpeg(path):
        return exact_decode(path, options, thumb)
    check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                full = im.size
                if full[0] * full[1] > options.get("max_pixels", float("inf")):
                    return exact_decode(path, options, thumb)  # its refusal, in its words
                im.draft("RGB", (2 * thumb[0], 2 * thumb[1]))
                if options.get("exif"):
                    if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # a quarter turn: the sides swap
                        full = (full[1], full[0])
                    im = ImageOps.exif_transpose(im)
                a = np.asarray(im.convert("RGB"))
    except Exception:
        return exact_decode(path, options, thumb)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))), full, False


def is_jpeg(path: str) -> bool:
    """The file starts with a JPEG marker (read without a ``stat``: the caller checked it)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(3) == _JPEG_MAGIC
    except OSError:
        return False


def thumb_size(hash_name: str, hash_size: int) -> Tuple[int, int]:
    """The ``(width, height)`` of the luma thumbnail a hash is computed from."""
    if hash_name == "phash":
        return 4 * hash_size, 4 * hash_size
    if hash_name == "dhash":
        return hash_size + 1, hash_size
    return hash_size, hash_size


def hash_files(
    infos: Sequence[FileInfo],
    hash_fn: Callable[..., "torch.Tensor"],
    hash_size: int,
    device: "torch.device",
    *,
    workers: int,
    batch_size: int,
    decoder: Callable[..., Tuple["torch.Tensor", Tuple[int, int], bool]],
    thumb: Tuple[int, int],
    options: Dict[str, Any],
    tick: Callable[[int], None],
    done: Callable[[List[FileInfo]], None],
) -> None:
    """Set ``hash``, ``width``, ``height`` and ``lossless`` of every info, or its ``error``.

    Files with the same MD5 are decoded once (the first of them) and share the result;
    ``done`` receives the infos finished with each batch (for the cache), ``tick`` their count.
    """
    import torch

    import torchsim
    from torchsim.io import ImageReadError

    twins: Dict[str, List[FileInfo]] = collections.defaultdict(list)
    firsts: List[FileInfo] = []
    for f in infos:
        if f.md5 is not None and f.md5 in twins:
            twins[f.md5].append(f)
        else:
            twins[f.md5 or f"#{f.index}"].append(f)
            firsts.append(f)

    def work(f: FileInfo):
        try:
            return f, decoder(f.path, options, thumb), None
        except ImageReadError as exc:
            return f, None, str(exc)
        except Exception as exc:  # nothing about one file may stop the run
            return f, None, f"{f.path}: cannot decode ({type(exc).__name__}: {exc})"

    batch: List[Tuple[FileInfo, "torch.Tensor"]] = []
    finished: List[FileInfo] = []

    def flush() -> None:
        by_size: Dict[Tuple[int, ...], List[Tuple[FileInfo, "torch.Tensor"]]] = collections.defaultdict(list)
        for f, image in batch:
            by_size[tuple(image.shape)].append((f, image))
        for items in by_size.values():
            bits = hash_fn(torch.stack([image for _, image in items]).to(device), hash_size=hash_size)
            for (f, _), hx in zip(items, torchsim.hash_to_hex(bits)):
                f.hash = hx
        for f, _ in batch:
            for twin in twins[f.md5 or f"#{f.index}"][1:]:
                twin.hash, twin.width, twin.height, twin.lossless = f.hash, f.width, f.height, f.lossless
        every = [twin for f in finished for twin in twins[f.md5 or f"#{f.index}"]]
        done(every)
        tick(len(every))
        batch.clear()
        finished.clear()

    for f, result, error in _pooled(work, firsts, workers, ahead=batch_size + 2 * workers):
        finished.append(f)
        if error is not None:
            for twin in twins[f.md5 or f"#{f.index}"]:
                twin.error = error if twin is f else error.replace(f.path, twin.path)
            continue
        image, (f.width, f.height), f.lossless = result
        batch.append((f, image))
        if len(batch) >= batch_size:
            flush()
    flush()


def fast_decode_check(infos: Sequence[FileInfo], hash_fn, hash_size: int, device, thumb, options, sample: int = 32) -> Tuple[int, int, float]:
    """Fast vs exact decode on up to ``sample`` hashed JPEGs: ``(checked, differing, mean bits apart)``."""
    import torch

    import torchsim

    jpegs = [f for f in infos if f.hash is not None and f.error is None and is_jpeg(f.path)]
    picked = jpegs[:: max(1, len(jpegs) // sample)][:sample]
    differing, bits = 0, 0
    for f in picked:
        try:
            image = exact_decode(f.path, options, thumb)[0]
        except Exception:
            continue
        exact = hash_fn(image[None].to(device), hash_size=hash_size).cpu()
        d = int(torchsim.hamming_distance(exact, torchsim.hex_to_hash([f.hash], hash_size=hash_size))[0])
        differing += d > 0
        bits += d
    return len(picked), differing, bits / max(1, len(picked))
