"""Image files for the commands: listing, pairing, decoding and batching, in one place.

* Listing: :func:`list_images`, the image files of a folder (by extension, hidden files left out).
* Pairing: :func:`pair_files` pairs two folders by file name (``score``); :func:`start_pair`
  and :func:`load_pair` read the two files of ``compare`` and ``diff`` (decoding starts before
  torch is imported).
* Decoding: :func:`decode`, a ``(C, H, W)`` uint8 tensor or an ``ImageReadError`` naming the file
  (:func:`read_pixels`, its torch-free half, and :func:`finish_decode`).
* Batching: :func:`batches`, a ``DataLoader`` over :class:`FileDataset` entries (one file, or a
  reference/test pair, decoded in the workers) whose :func:`collate_by_size` stacks the images
  of one size; an entry that fails becomes one error line and the others go on.

Nothing here imports torch, numpy or an image library when the module is imported: every
command's parser imports it, and ``torchsim --help`` must not wait for torch.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ._errors import CliError, check_device

if TYPE_CHECKING:
    import re

    import numpy as np
    import torch

# Every extension listed is decodable (tests/test_cli_decoding.py): HEIC is not (neither Pillow
# nor torchvision's wheels read it without extra libraries), so it is left out.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")

Entry = Tuple[int, str, Tuple[str, ...]]  # (index, name, files): one file, or (reference, test)

# ---- listing and pairing --------------------------------------------------------------------


def is_image_name(name: str) -> bool:
    """An image file by its extension, not hidden."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: str, recursive: bool = False) -> List[str]:
    """Image files (by extension, not hidden) in ``folder``, sorted, as paths; sub-folders if ``recursive``."""
    found: List[str] = []

    def unreadable(exc: OSError) -> None:  # a folder that cannot be listed: one line, the rest goes on
        import sys

        from tqdm import tqdm

        tqdm.write(f"torchsim: {exc.filename}: cannot list the folder ({exc.strerror or exc}); skipped", file=sys.stderr)

    for root, dirs, files in os.walk(folder, onerror=unreadable):  # symlinked folders are not followed: no loops
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found.extend(os.path.join(root, name) for name in sorted(files) if is_image_name(name))
    return found


def pair_files(ref_dir: str, test_dir: str, match: str = "{stem}") -> Tuple[List[Entry], List[Tuple[str, str]]]:
    """Pair the image files of two folders by stem, whatever their extensions (``a.png`` with ``a.jpg``).

    ``match`` names the test file of a reference stem (``"{stem}_x4_SR"``: ``0801.png`` is scored
    against ``0801_x4_SR.png``); the row is named after the reference file. Files whose stem is
    shared by another file of the same folder (``a.png`` and ``a.jpg``) are ambiguous: not paired.

    Returns:
        ``(pairs, unpaired)``: pairs ``(index, name, (ref, test))`` sorted by name, and
        ``(name, message)`` for each file left unpaired (one line naming it and why), sorted by name.
    """
    pattern = _match_regex(match)
    ref: Dict[str, List[str]] = {}
    test: Dict[str, List[str]] = {}
    unpaired: List[Tuple[str, str]] = []
    for folder, by_stem in ((ref_dir, ref), (test_dir, test)):
        for p in list_images(folder):
            # not os.path.isfile: a FIFO, device or symlink loop named *.png is paired, then refused by decode with its line
            if not os.path.isdir(p):
                by_stem.setdefault(os.path.splitext(os.path.basename(p))[0], []).append(p)
        for files in by_stem.values():
            for p in files if len(files) > 1 else ():
                others = ", ".join(os.path.basename(f) for f in files if f != p)
                unpaired.append((os.path.basename(p), f"{p}: unpaired: ambiguous, {others} has the same stem; rename or remove one"))
    pairs: List[Entry] = []
    wanted = set()  # the test stems of the references
    for stem, files in ref.items():
        want = match.format(stem=stem)
        wanted.add(want)
        found = test.get(want, [])
        if len(files) == 1 and len(found) == 1:
            pairs.append((0, os.path.basename(files[0]), (files[0], found[0])))
        elif len(files) == 1:
            why = f"no file named {want}.* in {test_dir}" if not found else f"{want}.* is ambiguous in {test_dir}"
            unpaired.append((os.path.basename(files[0]), f"{files[0]}: unpaired: {why}"))
    for stem, files in test.items():
        if stem in wanted or len(files) > 1:
            continue
        m = pattern.fullmatch(stem)
        why = f"no reference named {m.group(1)}.* in {ref_dir}" if m else f"its name does not match --match {match!r}"
        unpaired.append((os.path.basename(files[0]), f"{files[0]}: unpaired: {why}"))
    pairs = [(i, name, files) for i, (_, name, files) in enumerate(sorted(pairs, key=lambda e: e[1]))]
    return pairs, sorted(unpaired)


def _match_regex(match: str) -> "re.Pattern":
    """The test-file stems ``match`` accepts, capturing the reference stem; ``{stem}`` must appear once."""
    import re

    parts = match.split("{stem}")
    if len(parts) != 2 or "{" in match.replace("{stem}", "") or "/" in match:
        raise CliError(2, f"--match must contain {{stem}} once (and no other braces or /), got {match!r}")
    return re.compile(re.escape(parts[0]) + "(.+)" + re.escape(parts[1]))


def modcrop(image: "torch.Tensor", scale: int) -> "torch.Tensor":
    """The top-left part of ``(..., H, W)`` whose sides are multiples of ``scale`` (BasicSR's ``mod_crop``)."""
    h, w = image.shape[-2:]
    return image[..., : h - h % scale, : w - w % scale] if scale > 1 else image


def _mismatch(ref: str, x: Any, test: str, y: Any) -> Optional[str]:
    """Why ``test``'s image cannot be scored against ``ref``'s (one line), or None."""
    if x.dtype != y.dtype:
        bits = {1: "8", 2: "16"}
        return (f"{test}: {bits.get(y.dtype.itemsize, '?')}-bit image, the reference {ref} is "
                f"{bits.get(x.dtype.itemsize, '?')}-bit; convert one so both have the same depth")
    if x.shape == y.shape:
        return None
    if x.shape[-2:] != y.shape[-2:]:
        return (f"{test}: size mismatch: {y.shape[-1]}x{y.shape[-2]} differs from {x.shape[-1]}x{x.shape[-2]} "
                f"of the reference {ref}; resize one of them first")
    return f"{test}: shape {tuple(y.shape)} differs from {tuple(x.shape)} of the reference {ref}"


def start_pair(path_a: str, path_b: str, mode: str, **options: Any):
    """Start decoding the two files of a pairwise command in two threads (Pillow releases the
    GIL), without torch: call it before importing torch, so that both overlap; hand the result
    to :func:`load_pair` (tensors) or :func:`pair_arrays` (NumPy arrays, no torch)."""
    from concurrent.futures import ThreadPoolExecutor

    from torchsim.io import ImageReadError

    def one(path: str):
        try:
            return read_pixels(path, mode, **options), None
        except ImageReadError as exc:  # "<file>: <why>"
            return None, str(exc)

    pool = ThreadPoolExecutor(max_workers=2)
    futures = [pool.submit(one, p) for p in (path_a, path_b)]
    pool.shutdown(wait=False)
    return _PendingPair(path_a, path_b, mode, futures)


@dataclasses.dataclass
class _PendingPair:
    path_a: str
    path_b: str
    mode: str
    futures: List[Any]  # two futures of (read_pixels' result, None) or (None, error line)


def pair_arrays(pending: _PendingPair) -> Optional[Tuple[Any, Any]]:
    """The two images as ``(C, H, W)`` uint8 NumPy arrays when Pillow decoded both (no torch
    needed), else None: then :func:`load_pair` (which also reports the files that failed).

    Raises:
        CliError: exit code 1 for images of different sizes.
    """
    import numpy as np

    done = _collect(pending)
    if not all(problem is None and isinstance(p, np.ndarray) and p.dtype == np.uint8 for p, problem in done):
        return None
    _check_pair(pending, [p for p, _ in done])
    return done[0][0], done[1][0]


def load_pair(pending: _PendingPair, device: str) -> Tuple["torch.Tensor", "torch.Tensor"]:
    """Both images of a pairwise command as ``(C, H, W)`` tensors (uint8, or uint16 for 16-bit
    files), from :func:`start_pair`.

    Raises:
        CliError: exit code 1 with one line per unreadable file, or for a size mismatch;
            2 when ``device`` cannot be used.
    """
    from concurrent.futures import ThreadPoolExecutor

    from torchsim.io import ImageReadError

    def finish(done: Tuple[Any, Optional[str]]) -> Tuple[Any, Optional[str]]:
        pixels, problem = done
        if problem is not None:
            return None, problem
        try:
            return finish_decode(pixels, pending.mode), None
        except ImageReadError as exc:
            return None, str(exc)

    with ThreadPoolExecutor(max_workers=2) as pool:  # torchvision's decoders release the GIL too
        finished = list(pool.map(finish, _collect(pending)))
    images = [image for image, _ in finished]
    problems = [problem for _, problem in finished if problem]
    if problems:
        raise CliError(1, "\n".join(problems))
    _check_pair(pending, images)
    check_device(device)
    return images[0], images[1]


def _collect(pending: _PendingPair) -> List[Tuple[Any, Optional[str]]]:
    """``(read_pixels' result, None)`` or ``(None, error line)`` of both files."""
    return [future.result() for future in pending.futures]


def _check_pair(pending: _PendingPair, images: Sequence[Any]) -> None:
    problem = _mismatch(pending.path_a, images[0], pending.path_b, images[1])
    if problem:
        raise CliError(1, problem)


# ---- decoding -------------------------------------------------------------------------------

# Pillow imports in ~15 ms, torchvision.io in 1.3-1.8 s (it imports torch._dynamo). Pillow reads
# every header (size, frames, depth) and decodes 8-bit RGB -- equal to torchvision.io's bit for
# bit on PNG, JPEG, WebP and GIF (tests/test_cli_files.py) -- and every format torchvision does
# not read (BMP, TIFF); GRAY and RGBA of single-frame PNG, WebP and GIF, and 16-bit PNG, are read
# by torchvision.io, with its results; files no decoder knows get torchsim.io.read_image's line.
_PILLOW_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "MPO", "AVIF")
_TORCHVISION_FORMATS = ("PNG", "WEBP", "GIF")  # GRAY / RGBA as before (and GRAY JPEG; RGBA JPEG: Pillow adds alpha)
_PILLOW_MODES = {"RGB": "RGB", "GRAY": "L", "RGBA": "RGBA"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's Image.MAX_IMAGE_PIXELS: 1024 * 1024 * 1024 // 4 // 3


def add_decode_options(p) -> None:
    """``--max-pixels`` and ``--exif``, the decoding options every command that reads images takes."""
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"refuse, from its header and before decoding, an image of more than N pixels "
                        f"(default {DEFAULT_MAX_PIXELS}, Pillow's limit): a decompression bomb")
    p.add_argument("--exif", action="store_true", help="apply the EXIF orientation of JPEG/TIFF files (default: pixels as stored)")


def decode_options(args) -> Dict[str, Any]:
    return {"max_pixels": getattr(args, "max_pixels", DEFAULT_MAX_PIXELS), "exif": getattr(args, "exif", False)}


def check_readable(path: str) -> "os.stat_result":
    """``stat`` a file before opening it: a FIFO, device or socket is never opened (reading one
    waits for ever), nor a symlink loop. Returns the ``stat``; raises ``ImageReadError`` with one line."""
    import errno
    import stat

    from torchsim.io import ImageReadError

    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImageReadError(f"{path}: symlink loop; skipped") from None
        if exc.errno == errno.ENOENT:
            raise ImageReadError(f"{path}: {'broken symlink' if os.path.islink(path) else 'no such file'}") from None
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageReadError(f"{path}: is a directory, not an image file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise ImageReadError(f"{path}: {kind}, not an image file; skipped without reading")
    if st.st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    return st


_PIL_LIMIT = threading.Lock()


def open_unlimited(src: Any) -> Any:
    """``PIL.Image.open(src)`` without Pillow's decompression-bomb limit and its warnings (the
    commands check ``--max-pixels`` themselves). The global limit is swapped under a lock, so
    threads opening files at once never leave it off."""
    import warnings

    from PIL import Image

    with _PIL_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(src)
        finally:
            Image.MAX_IMAGE_PIXELS = limit


@dataclasses.dataclass
class _Opened:
    """A file read and its header parsed by Pillow (``im`` None: Pillow does not know it), and
    the decoder that will give its pixels: ``"pillow"``, ``"png16"``, ``"tiff16"`` or ``"torchvision"``."""

    path: str
    raw: bytes
    im: Any
    route: str


def _open(path: str, mode: str, max_pixels: int, exif: bool) -> _Opened:
    """Read ``path`` and choose its decoder from the header (no pixel is decoded; no torch).

    Raises:
        ImageReadError: a FIFO/device/missing/empty file, or a header over ``max_pixels``.
    """
    import io

    from torchsim.io import ImageReadError

    check_readable(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        im = open_unlimited(io.BytesIO(raw))  # the size check is ours, below
    except Exception:  # not an image Pillow knows: read_image says why (or decodes it)
        return _Opened(path, raw, None, "torchvision")
    w, h = im.size
    if w * h > max_pixels:
        raise ImageReadError(f"{path}: header claims {w}x{h} = {w * h} pixels, more than --max-pixels {max_pixels}; "
                             f"refused before decoding")
    try:
        frames = getattr(im, "n_frames", 1)
        png16 = raw[:8] == _PNG_SIGNATURE and len(raw) > 24 and raw[24] == 16  # IHDR bit depth
        if png16 and not exif and frames == 1:
            route = "png16"
        elif im.format == "TIFF" and im.mode not in ("I;16", "I;16B", "I;16L", "I;16N", "I") and _bits(im) > 8:
            route = "tiff16"
        elif im.format not in _PILLOW_FORMATS:
            route = "torchvision"
        elif (mode != "RGB" and frames == 1 and not exif and im.mode in ("1", "L", "LA", "P", "RGB", "RGBA")
                and (im.format in _TORCHVISION_FORMATS or (mode == "GRAY" and im.format == "JPEG"))):
            route = "torchvision"
        else:
            route = "pillow"
    except Exception:  # a header Pillow cannot follow (frames, tags): read_image's line
        route = "torchvision"
    return _Opened(path, raw, im, route)


def _pillow_pixels(im: Any, mode: str, exif: bool) -> "np.ndarray":
    """``(C, H, W)`` array decoded by Pillow: uint8, or uint16 for 16-bit grey (PNG, TIFF).

    An 8-bit RGB file (the commands' common case) is decoded straight into a numpy buffer
    (Pillow keeps RGB as 4 bytes a pixel; its ``RGBX`` view of the buffer receives them), so the
    only copy is the one to channel planes.
    """
    import warnings

    import numpy as np
    from PIL import Image, ImageOps

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im.seek(0)
        if exif:
            im = ImageOps.exif_transpose(im)
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):  # 16-bit gray (PNG, TIFF)
            return np.asarray(im).astype(np.int64).clip(0, 65535).astype(np.uint16)[None]
        if im.mode == "RGB" and mode == "RGB" and getattr(im, "tile", None):
            rgbx = np.empty((im.size[1], im.size[0], 4), dtype=np.uint8)
            target = Image.frombuffer("RGB", im.size, rgbx, "raw", "RGBX", 0, 1)  # shares rgbx
            im.im = target.im
            im.load()
            if im.im is target.im:  # Pillow decoded into it (a format that replaces the buffer did not)
                return rgbx[..., :3].transpose(2, 0, 1).copy()
            return np.asarray(im).transpose(2, 0, 1).copy()
        a = pillow_array(im.convert(_PILLOW_MODES[mode]))
    a = a[..., None] if a.ndim == 2 else a
    return np.ascontiguousarray(a.transpose(2, 0, 1))  # HWC -> CHW, one copy


def pillow_array(im: Any) -> "np.ndarray":
    """``np.asarray(im)`` of a loaded Pillow ``L`` image, ~20x cheaper: Pillow's core copies its rows
    straight into a NumPy buffer that an ``L`` image maps (``np.asarray`` goes through ``tobytes``:
    0.38 ms for 640x480, most of the per-file overhead of ``dedup`` after decoding)."""
    import numpy as np
    from PIL import Image

    if im.mode != "L":
        return np.asarray(im)
    out = np.empty((im.size[1], im.size[0]), dtype=np.uint8)
    try:
        Image.frombuffer("L", im.size, out, "raw", "L", 0, 1).im.paste(im.im, (0, 0, *im.size))
    except Exception:  # a Pillow without these internals: the plain copy
        return np.array(im)
    return out


def read_pixels(path: str, mode: str = "RGB", *, max_pixels: int = DEFAULT_MAX_PIXELS, exif: bool = False) -> Any:
    """:func:`decode`'s first half, without torch: the ``(C, H, W)`` numpy array of a file Pillow
    decodes, or an opaque handle that :func:`finish_decode` turns into a tensor (16-bit files,
    the modes torchvision reads, files Pillow cannot decode). Commands start it in threads
    before importing torch, so the two overlap.

    Raises:
        ImageReadError: as :func:`decode`, for what is refused before decoding.
    """
    opened = _open(path, mode, max_pixels, exif)
    if opened.route != "pillow":
        return opened
    try:
        return _pillow_pixels(opened.im, mode, exif)
    except Exception:  # truncated, corrupt: read_image's line (or its decoding, where torchvision can)
        opened.route = "torchvision"
        return opened


def finish_decode(pixels: Any, mode: str = "RGB", keep16: bool = True) -> "torch.Tensor":
    """The tensor of :func:`read_pixels`'s result (see :func:`decode`)."""
    import numpy as np
    import torch

    from torchsim.io import ImageReadError, read_image

    if isinstance(pixels, np.ndarray):
        if pixels.dtype == np.uint16:
            image = _channels16(torch.from_numpy(pixels.astype(np.int32)).to(torch.uint16), mode)
            return image if keep16 else _to8(image)
        return torch.from_numpy(pixels)
    opened: _Opened = pixels
    if opened.route in ("png16", "tiff16"):
        try:
            image = read_image(opened.path, mode="UNCHANGED") if opened.route == "png16" else _tiff16(opened.path, opened.raw)
            image = _channels16(image, mode)
            return image if keep16 else _to8(image)
        except ImageReadError:
            raise
        except Exception:  # corrupt: read_image's line below
            pass
    image = read_image(opened.path, mode=mode)
    return image[0] if image.dim() == 4 else image  # an animation: its first frame


def decode(path: str, mode: str = "RGB", *, max_pixels: int = DEFAULT_MAX_PIXELS, exif: bool = False,
           keep16: bool = True) -> "torch.Tensor":
    """Decode an image file to a ``(C, H, W)`` tensor (``mode``: ``"RGB"``, ``"GRAY"``, ``"RGBA"``).

    * uint8, or uint16 for a 16-bit PNG or TIFF (with ``keep16=False`` its top 8 bits, ``>> 8``,
      as Pillow converts);
    * an animation (GIF, APNG, WebP) gives its first frame;
    * the EXIF orientation is applied only when ``exif``;
    * an image whose header claims more than ``max_pixels`` pixels is refused before decoding;
    * FIFOs, devices and symlink loops are refused after a ``stat``, never opened.

    Raises:
        ImageReadError: the file is missing, unreadable, refused or not a decodable image (one line naming it).
    """
    return finish_decode(read_pixels(path, mode, max_pixels=max_pixels, exif=exif), mode, keep16)


def _to8(image: "torch.Tensor") -> "torch.Tensor":
    """16-bit to 8-bit as Pillow converts: the top 8 bits."""
    import torch

    return (image.to(torch.int32) >> 8).to(torch.uint8)


def _bits(im) -> int:
    """Bits per sample of a Pillow TIFF image (from its tags)."""
    bits = getattr(im, "tag_v2", {}).get(258, (8,))
    return max(bits) if isinstance(bits, tuple) else int(bits)


def _tiff16(path: str, raw: bytes) -> "torch.Tensor":
    """A 16-bit colour TIFF (Pillow reads those only at 8 bits) as ``(C, H, W)`` uint16, with tifffile."""
    import io

    import numpy as np
    import torch

    from torchsim.io import ImageReadError

    try:
        import tifffile
    except ImportError:
        raise ImageReadError(f"{path}: 16-bit colour TIFF: Pillow reads it only at 8 bits; "
                             f"pip install tifffile to score it at 16 bits") from None
    a = tifffile.imread(io.BytesIO(raw))
    if a.dtype != np.uint16 or a.ndim not in (2, 3):
        raise ImageReadError(f"{path}: TIFF of {a.dtype} samples, shape {a.shape}: not a 16-bit image")
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)).astype(np.int32)).to(torch.uint16)


def _channels16(image: "torch.Tensor", mode: str) -> "torch.Tensor":
    """A 16-bit ``(C, H, W)`` image (C = 1..4) with the channels of ``mode`` (alpha dropped or opaque)."""
    import torch

    c = image.shape[0]
    color = image[:3] if c >= 3 else image[:1].expand(3, -1, -1)
    if mode == "GRAY":
        if c < 3:
            return image[:1].contiguous()
        y = (0.299 * color[0].float() + 0.587 * color[1].float() + 0.114 * color[2].float()).round()
        return y.clamp(0, 65535).to(torch.int32).to(torch.uint16)[None]
    if mode == "RGBA":
        alpha = image[3:4] if c == 4 else image[1:2] if c == 2 else torch.full_like(image[:1], 65535)
        return torch.cat([color, alpha]).contiguous()
    return color.contiguous()


# ---- batching -------------------------------------------------------------------------------


@dataclasses.dataclass
class Decoded:
    """The images of one entry (all the same size), or the one line saying why there are none."""

    index: int
    name: str
    images: Tuple[Any, ...] = ()
    error: Optional[str] = None


class FileDataset:
    """Map-style dataset for a ``DataLoader``: item ``i`` decodes the files of ``entries[i]``."""

    def __init__(self, entries: Sequence[Entry], mode: str = "RGB", modcrop: int = 0,
                 options: Optional[Dict[str, Any]] = None) -> None:
        self.entries = list(entries)
        self.mode = mode
        self.modcrop = modcrop  # crop every image to multiples of this before the size check
        self.options = options or {}  # decode's keyword arguments

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Decoded:
        from torchsim.io import ImageReadError

        index, name, files = self.entries[i]
        try:
            images = tuple(decode(f, self.mode, **self.options) for f in files)
        except ImageReadError as exc:  # "<file>: <why>"
            return Decoded(index, name, error=str(exc))
        except Exception as exc:  # nothing about one entry may stop the run
            return Decoded(index, name, error=f"{' / '.join(files)}: cannot decode ({type(exc).__name__}: {exc})")
        return checked(index, name, files, images, self.modcrop)


def checked(index: int, name: str, files: Sequence[str], images: Sequence[Any], scale: int = 0) -> Decoded:
    """The decoded images of an entry, cropped to multiples of ``scale`` (:func:`modcrop`), or the
    line saying why they cannot be scored together (sizes differ)."""
    images = tuple(modcrop(image, scale) for image in images)
    for other, image in zip(files[1:], images[1:]):
        problem = _mismatch(files[0], images[0], other, image)
        if problem:
            return Decoded(index, name, error=problem)
    return Decoded(index, name, images)


Group = Tuple[List[int], List[str], Tuple["torch.Tensor", ...]]  # indices, names, one stack per file of an entry


def collate_by_size(items: List[Decoded]) -> Tuple[List[Group], List[Tuple[int, str, str]]]:
    """A batch as ``(groups, errors)``: one stacked group per image size, ``(index, name, line)`` per failure."""
    import torch

    by_size: Dict[Tuple[int, ...], List[Decoded]] = {}
    errors = []
    for it in items:
        if it.error is not None:
            errors.append((it.index, it.name, it.error))
        else:
            by_size.setdefault((*it.images[0].shape, it.images[0].dtype), []).append(it)
    groups = [
        ([it.index for it in g], [it.name for it in g], tuple(torch.stack(images) for images in zip(*(it.images for it in g))))
        for g in by_size.values()
    ]
    return groups, errors


def batches(entries: Sequence[Entry], batch_size: int, workers: int = 0, mode: str = "RGB", pin_memory: bool = False,
            options: Optional[Dict[str, Any]] = None):
    """Batches ``(groups, errors)`` of :func:`collate_by_size`, in the order of ``entries``, decoded by ``workers`` processes."""
    from torch.utils.data import DataLoader

    return DataLoader(
        FileDataset(entries, mode, options=options), batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=collate_by_size, pin_memory=pin_memory,
    )
