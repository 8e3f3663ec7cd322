"""Pictures written by the CLI: the format follows the file's extension (PNG, JPEG, WebP).

PNG is written by :func:`encode_png`, a parallel encoder: the rows are filtered ("Sub",
each byte minus the one a pixel to its left) and cut into bands that threads compress at
once (zlib-ng) into raw deflate streams, each ended by a sync flush so their concatenation is one
valid zlib stream (the way ``pigz`` splits work). A 37-megapixel diff is written several
times faster than by one zlib stream, and any PNG reader decodes it (tests check Pillow and
torchvision). JPEG and WebP go through Pillow (JPEG has no alpha: a transparent picture is
put on white; WebP is written lossless, and holds at most 16383 pixels a side).
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Optional

from ._errors import CliError

if TYPE_CHECKING:
    import numpy as np

try:  # zlib-ng (a dependency): deflate ~2x faster than zlib's level 1 at its level 2, and smaller files
    from zlib_ng import zlib_ng as _zlib

    _LEVEL = 2
except ImportError:  # pragma: no cover - zlib-ng is installed with torchsim
    _zlib, _LEVEL = zlib, 1

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_BAND_BYTES = 1 << 22  # bytes of filtered rows per compressed band


def picture_format(path: str) -> str:
    """``"PNG"``, ``"JPEG"`` or ``"WEBP"`` from ``path``'s extension, else a one-line :class:`CliError` (exit 2)."""
    fmt = FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise CliError(2, f"{path}: cannot write this format; use .png, .jpg, .jpeg or .webp")
    return fmt


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", _zlib.crc32(data, _zlib.crc32(kind)))


def _host(image) -> "np.ndarray":
    """A ``(C, H, W)`` uint8 tensor or NumPy array as a NumPy array (no copy on the CPU)."""
    import numpy as np

    return image if isinstance(image, np.ndarray) else image.cpu().numpy()


def encode_png(image, level: Optional[int] = None, threads: int = 0) -> bytes:
    """PNG bytes of a ``(C, H, W)`` uint8 image (tensor or NumPy array), ``C`` = 1 (grey), 3 (RGB) or 4 (RGBA).

    Every row uses the "Sub" filter; bands of rows are deflated at ``level`` (default: 2 with
    zlib-ng, 1 with zlib) by ``threads`` threads (0: one per CPU) and joined into one zlib stream.
    """
    import numpy as np

    c, h, w = image.shape
    planes = _host(image)  # (C, H, W): each band is interleaved in its own thread
    per_band = max(1, _BAND_BYTES // max(1, w * c))
    bands = [(r0, min(h, r0 + per_band)) for r0 in range(0, h, per_band)]

    def filtered(r0: int, r1: int) -> "np.ndarray":
        rows = np.ascontiguousarray(planes[:, r0:r1].transpose(1, 2, 0)).reshape(r1 - r0, w * c)
        band = np.empty((r1 - r0, w * c + 1), dtype=np.uint8)
        band[:, 0] = 1  # filter type Sub
        band[:, 1 : 1 + c] = rows[:, :c]
        np.subtract(rows[:, c:], rows[:, :-c], out=band[:, 1 + c :])  # wraps modulo 256, as PNG wants
        return band  # contiguous: zlib reads it through the buffer protocol, no copy

    def deflate(i: int):
        data = filtered(*bands[i])
        z = _zlib.compressobj(_LEVEL if level is None else level, _zlib.DEFLATED, -15)
        last = i == len(bands) - 1
        return data, z.compress(data) + z.flush(_zlib.Z_FINISH if last else _zlib.Z_SYNC_FLUSH)

    workers = threads or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=min(workers, len(bands))) as pool:  # zlib and numpy release the GIL
        parts = list(pool.map(deflate, range(len(bands))))
    adler = 1
    for data, _ in parts:
        adler = _zlib.adler32(data, adler)
    stream = b"\x78\x01" + b"".join(z for _, z in parts) + struct.pack(">I", adler)
    color = {1: 0, 3: 2, 4: 6}[c]
    header = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def write_picture(image, path: str) -> None:
    """Write a ``(C, H, W)`` uint8 picture (tensor or NumPy array, ``C`` = 3 or 4) in the format of
    ``path``'s extension.

    Creates the folder; a path that cannot be written is a one-line :class:`CliError`.
    """
    fmt = picture_format(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if fmt == "PNG":
            data = encode_png(image)
            with open(path, "wb") as fh:
                fh.write(data)
            return
        import numpy as np
        from PIL import Image

        hwc = np.ascontiguousarray(_host(image).transpose(1, 2, 0))
        pil = Image.fromarray(hwc, "RGBA" if image.shape[0] == 4 else "RGB")
        if fmt == "JPEG":
            if pil.mode == "RGBA":
                white = Image.new("RGB", pil.size, (255, 255, 255))
                white.paste(pil, mask=pil.getchannel("A"))
                pil = white
            pil.save(path, format="JPEG", quality=95)
        else:
            pil.save(path, format="WEBP", lossless=True, quality=0)
    except OSError as exc:
        raise CliError(1, f"{path}: cannot write ({exc.strerror or exc})") from None
    except ValueError as exc:  # e.g. WebP's 16383-pixel limit
        raise CliError(1, f"{path}: cannot write as {fmt} ({exc})") from None
