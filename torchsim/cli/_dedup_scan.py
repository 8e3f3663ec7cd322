"""What ``torchsim dedup`` knows about each file: size, times, MD5, pixel size and perceptual hash.

* :class:`HashCache`: an SQLite file of those facts keyed by path, size and modification time,
  so a re-run over a grown folder reads and decodes only the files that are new or changed.
* :func:`read_files`: ``stat`` of every file and the MD5 of those that share their size with
  another (MD5s in worker threads: ``hashlib`` releases the GIL), from the cache where it still holds.
* :func:`hash_files`: the perceptual hash of every file that lacks one, and the MD5 of the files
  read_files left (from the bytes that are decoded: one read per file). Byte-identical files are
  decoded once. Decoding runs in a pool of threads (Pillow and libjpeg release the GIL), the
  hashes in batches of one image size on the main thread, while the pool decodes ahead.
* :func:`load`: a file decoded by Pillow straight to the 8-bit luma the hashes use (the same
  hash as from the RGB decode, for less work); with ``fast``, JPEGs at a reduced DCT scale
  (Pillow's ``draft``: libjpeg scales by 1/2, 1/4 or 1/8 while decoding), keeping at least twice
  the hash thumbnail's side. Fast hashes can differ from the exact ones by a few bits:
  :func:`fast_decode_check` measures how often on a sample.

Nothing here imports torch or Pillow when the module is imported.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import hashlib
import itertools
import os
import sqlite3
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ._files import check_readable, decode, open_unlimited, pillow_array

if TYPE_CHECKING:
    import torch

LOSSLESS_FORMATS = ("PNG", "BMP", "TIFF", "GIF")  # and WebP when its first chunk is VP8L
_JPEG_MAGIC = b"\xff\xd8\xff"
_HASH_GROUP = 16  # files a CPU worker decodes, then hashes as one stack per image size
_READ_GROUP = 32  # files a worker reads (stat and MD5) per task


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
    inode: Optional[Tuple[int, int]] = None  # (st_dev, st_ino): hard links of one file share it


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

    def __init__(self, path: str, kind: str, warn: Optional[Callable[[str], None]] = None) -> None:
        self.path = path
        self.kind = kind
        self.warn = warn
        self.broken = False  # a write failed (full disk, read-only): the run goes on without the cache
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
        """Record the MD5 (and pixel size, hash) of ``infos``; committed at once. A write that fails
        is one line (through ``warn``) and the cache is written no more: the run goes on without it."""
        if self.broken:
            return
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
        try:
            with self.db:
                self.db.executemany("DELETE FROM hashes WHERE path = ?", stale)
                self.db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?)", files)
                self.db.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?)", hashes)
        except (sqlite3.Error, OSError) as exc:
            self.broken = True
            if self.warn is not None:
                self.warn(f"{self.path}: cannot write the hash cache ({exc}); going on without it")

    def close(self) -> None:
        self.db.close()


def open_cache(path: Optional[str], kind: str, warn: Callable[[str], None]) -> Optional[HashCache]:
    """The cache at ``path`` (None: no cache); a cache that cannot be opened is one line and no cache."""
    if path is None:
        return None
    try:
        return HashCache(path, kind, warn)
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


def _inode(st: os.stat_result) -> Optional[Tuple[int, int]]:
    """The file's identity, None where the file system has no inode numbers (``st_ino`` 0)."""
    return (st.st_dev, st.st_ino) if st.st_ino else None


def _cannot_read(path: str, exc: OSError) -> str:
    return f"{path}: cannot read ({exc.strerror or exc})"


def _read_one(info: FileInfo) -> FileInfo:
    """``stat`` and MD5 of one file, or its error line (FIFOs and devices are never opened)."""
    _stat_one(info)
    if info.error is None:
        try:
            info.md5 = _md5(info.path)
        except OSError as exc:
            info.error = _cannot_read(info.path, exc)
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
    info.size, info.mtime_ns, info.inode = st.st_size, st.st_mtime_ns, _inode(st)
    return cache.fill(info)


def _stat_one(info: FileInfo) -> None:
    """``stat`` of one file (FIFOs and devices refused), or its error line."""
    from torchsim.io import ImageReadError

    try:
        st = check_readable(info.path)
        info.size, info.mtime_ns, info.inode = st.st_size, st.st_mtime_ns, _inode(st)
    except ImageReadError as exc:
        info.error = str(exc)


def read_files(infos: Sequence[FileInfo], workers: int, cache: Optional[HashCache], tick: Callable[[int], None]) -> None:
    """Fill in size and time of every info (or its ``error``), and the MD5 of every file that may
    have a byte-identical twin; the cache's facts where they hold.

    Byte-identical files have the same size, so a file whose size no other file has (cached files
    included) has no twin: its MD5 is left to :func:`hash_files`, which computes it from the bytes
    it decodes (one read of the file instead of two). Files that share a size are read here, so
    that twins are decoded once and every exact group is known before hashing starts (an
    interrupted run still reports them all).
    """
    todo = []
    for info in infos:
        if _stat_cached(info, cache):
            tick(1)
        else:
            todo.append(info)
    for info in todo:
        if info.error is None:
            _stat_one(info)
    sizes = collections.Counter(f.size for f in infos if f.error is None and f.size)
    shared = [f for f in todo if f.error is None and sizes[f.size] > 1]
    tick(len(todo) - len(shared))
    groups = [shared[i : i + _READ_GROUP] for i in range(0, len(shared), _READ_GROUP)]  # a task per file costs more than its MD5
    for group in _pooled(lambda files: [_read_one(f) for f in files], groups, workers):
        tick(len(group))


_READ_WHOLE = 64 << 20  # a larger file's MD5 is streamed and it is decoded from its path


def _read_bytes(path: str) -> bytes:
    """The bytes of one file, after the checks of :func:`._files.check_readable`."""
    from torchsim.io import ImageReadError

    check_readable(path)
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ImageReadError(_cannot_read(path, exc)) from None


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


def _rgb(path: str, options: Dict[str, Any]) -> Tuple["torch.Tensor", Tuple[int, int], bool]:
    """The other commands' decode (8-bit RGB): every format and mode, refusals in their words."""
    from PIL import Image

    image = decode(path, "RGB", keep16=False, **options)
    try:
        with Image.open(path) as im:
            fmt = im.format
    except Exception:
        fmt = None
    return image, (image.shape[-1], image.shape[-2]), _is_lossless(path, fmt)


_GRAY_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF")


def load(path: str, options: Dict[str, Any], thumb: Tuple[int, int], fast: bool = False,
         data: Optional[bytes] = None) -> Tuple["torch.Tensor", Tuple[int, int], bool]:
    """One file as the hashes need it: ``(image, (width, height) of the full image, lossless)``.

    A single-frame 8-bit RGB or gray JPEG, PNG, WebP, BMP or TIFF is decoded by Pillow straight
    to its 8-bit luma, ``convert("L")`` — the luma the hashes compute from RGB (:func:`torchsim.pil_luma`
    is Pillow's formula), so the hash is the same while the decode skips the RGB tensor. With
    ``fast``, a JPEG is decoded at the smallest DCT scale (1/2 .. 1/8) that keeps both sides at
    least twice ``thumb`` (Pillow's ``draft``), which changes the hash by a few bits at times.
    Anything else (16-bit, palette, CMYK, animations, corrupt files) goes through the other
    commands' RGB decode (:func:`._files.decode`), which also words every refusal. ``data``: the
    file's bytes, when the caller has read them already.
    """
    import io
    import warnings

    import torch
    from PIL import ImageOps

    if data is None:
        check_readable(path)
    try:
        if data is None:
            with open(path, "rb") as fh:
                head = fh.read(32)
        else:
            head = data[:32]
        im = open_unlimited(path if data is None else io.BytesIO(data))  # the size check is below
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with im:
                full = im.size
                png16 = head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 24 and head[24] == 16
                if (im.mode not in ("RGB", "L") or im.format not in _GRAY_FORMATS or png16
                        or getattr(im, "n_frames", 1) > 1 or full[0] * full[1] > options.get("max_pixels", float("inf"))):
                    return _rgb(path, options)
                if fast and im.format == "JPEG":
                    im.draft("RGB" if im.mode == "RGB" else "L", (2 * thumb[0], 2 * thumb[1]))
                if options.get("exif"):
                    if im.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # a quarter turn: the sides swap
                        full = (full[1], full[0])
                    im = ImageOps.exif_transpose(im)
                a = pillow_array(im.convert("L"))
                fmt = im.format
    except Exception:  # truncated, corrupt, unknown: the RGB decode says why (or decodes it)
        return _rgb(path, options)
    return torch.from_numpy(a)[None], full, _is_lossless(path, fmt)


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


@contextlib.contextmanager
def one_thread(active: bool = True):
    """Torch ops on one intra-op thread while the worker threads decode and hash: OpenMP threads
    would fight them for the cores (on a busy 2-core machine one 640x480 image took 43 ms to hash
    with 2 OpenMP threads, 1.5 ms with 1). The workers are the parallelism."""
    import torch

    threads = torch.get_num_threads()
    if active:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def hash_files(
    infos: Sequence[FileInfo],
    hash_fn: Callable[..., "torch.Tensor"],
    hash_size: int,
    device: "torch.device",
    *,
    workers: int,
    batch_size: int,
    fast: bool,
    thumb: Tuple[int, int],
    options: Dict[str, Any],
    tick: Callable[[int], None],
    done: Callable[[List[FileInfo]], None],
) -> None:
    """Set ``hash``, ``width``, ``height`` and ``lossless`` of every info, or its ``error``.

    Files with the same MD5 are decoded once (the first of them) and share the result; a file
    without an MD5 (:func:`read_files` left it: no other file has its size) gets it here, from the
    bytes it is decoded from. ``done`` receives the infos finished with each batch (for the
    cache), ``tick`` their count.
    """
    import torch

    import torchsim
    from torchsim.io import ImageReadError

    by_md5: Dict[str, List[FileInfo]] = {}
    twins: Dict[int, List[FileInfo]] = {}  # the first file's index -> the files that share its bytes
    firsts: List[FileInfo] = []
    for f in infos:
        if f.md5 is not None and f.md5 in by_md5:
            by_md5[f.md5].append(f)
            continue
        twins[f.index] = [f]
        if f.md5 is not None:
            by_md5[f.md5] = twins[f.index]
        firsts.append(f)

    # CPU: each worker hashes the files it decoded, a few at a time (a stack of one size: 0.43 ms
    # an image instead of 1.0 ms one by one for dhash of 640x480); CUDA: batches on the device.
    per_image = device.type == "cpu"
    group = _HASH_GROUP if per_image else 1

    def one(f: FileInfo):
        try:
            data = None
            if f.md5 is None and f.size > _READ_WHOLE:  # no twin possible; too large to hold: MD5 streamed
                _read_one(f)
                if f.error is not None:
                    return f, None, f.error
            elif f.md5 is None:  # no twin possible: MD5 and decode from one read
                data = _read_bytes(f.path)
                f.md5 = hashlib.md5(data).hexdigest()
            image, full, lossless = load(f.path, options, thumb, fast, data)
            return f, (image, full, lossless, None), None
        except ImageReadError as exc:
            return f, None, str(exc)
        except Exception as exc:  # nothing about one file may stop the run
            return f, None, f"{f.path}: cannot decode ({type(exc).__name__}: {exc})"

    def work(files: List[FileInfo]):
        done = [one(f) for f in files]
        if per_image:
            by_size: Dict[Tuple[int, ...], List[int]] = collections.defaultdict(list)
            for k, (_, result, _) in enumerate(done):
                if result is not None:
                    by_size[tuple(result[0].shape)].append(k)
            for ks in by_size.values():
                try:
                    hexes = torchsim.hash_to_hex(hash_fn(torch.stack([done[k][1][0] for k in ks]), hash_size=hash_size))
                except Exception as exc:  # nothing about one file may stop the run
                    for k in ks:
                        f = done[k][0]
                        done[k] = (f, None, f"{f.path}: cannot hash ({type(exc).__name__}: {exc})")
                    continue
                for k, hx in zip(ks, hexes):
                    f, (_, full, lossless, _), _ = done[k]
                    done[k] = (f, (None, full, lossless, hx), None)
        return done

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
        every = []
        for f in finished:
            for twin in twins[f.index]:
                if twin is not f:
                    twin.hash, twin.width, twin.height, twin.lossless = f.hash, f.width, f.height, f.lossless
                    twin.error = None if f.error is None else f.error.replace(f.path, twin.path)
                every.append(twin)
        done(every)
        tick(len(every))
        batch.clear()
        finished.clear()

    groups = [firsts[i : i + group] for i in range(0, len(firsts), group)]
    with one_thread(per_image):
        for f, result, error in itertools.chain.from_iterable(
            _pooled(work, groups, workers, ahead=max(2 * workers, (batch_size + 2 * workers) // group))
        ):
            finished.append(f)
            if error is not None:
                f.error = error
            else:
                image, (f.width, f.height), f.lossless, f.hash = result
                if image is not None:
                    batch.append((f, image))
            if len(finished) >= batch_size:
                flush()
        flush()


def fast_decode_check(infos: Sequence[FileInfo], hash_fn, hash_size: int, device, thumb, options, sample: int = 32) -> Tuple[int, int, float]:
    """Fast vs exact decode on up to ``sample`` hashed JPEGs: ``(checked, differing, mean bits apart)``."""
    import torchsim

    jpegs = [f for f in infos if f.hash is not None and f.error is None and is_jpeg(f.path)]
    picked = jpegs[:: max(1, len(jpegs) // sample)][:sample]
    differing, bits = 0, 0
    with one_thread(device.type == "cpu"):
        for f in picked:
            try:
                image = load(f.path, options, thumb)[0]
            except Exception:
                continue
            exact = hash_fn(image[None].to(device), hash_size=hash_size).cpu()
            d = int(torchsim.hamming_distance(exact, torchsim.hex_to_hash([f.hash], hash_size=hash_size))[0])
            differing += d > 0
            bits += d
    return len(picked), differing, bits / max(1, len(picked))
