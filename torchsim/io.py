"""Image files: reading and writing with torchvision.io, and MD5 digests.

Importing this module does not import torch (the command line decodes files with Pillow
while torch is still loading, and reports :class:`ImageReadError` before it is loaded).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import torch

PathLike = Union[str, "os.PathLike[str]"]


class ImageReadError(ValueError):
    """An image file that is missing, unreadable or corrupt (one clear line)."""


def read_image(path: PathLike, mode: str = "RGB") -> "torch.Tensor":
    """Decode an image file to a ``(C, H, W)`` uint8 tensor with ``torchvision.io``.

    Args:
        path: file to read (PNG, JPEG, WebP, GIF, ...).
        mode: ``"RGB"`` (default), ``"GRAY"``, ``"RGBA"`` or ``"UNCHANGED"``.

    Raises:
        ImageReadError: the file is missing, unreadable or not a decodable image;
            the message names the file and says why.
    """
    import torch
    from torchvision.io import ImageReadMode, decode_image

    p = os.fspath(path)
    if not os.path.exists(p):
        raise ImageReadError(f"{p}: no such file")
    if os.path.isdir(p):
        raise ImageReadError(f"{p}: is a directory, not an image file")
    try:
        with open(p, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ImageReadError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not raw:
        raise ImageReadError(f"{p}: empty file")
    try:
        data = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        with _native_stderr_silenced():
            img = decode_image(data, mode=getattr(ImageReadMode, mode))
    except Exception as exc:  # torchvision raises RuntimeError with decoder-specific text
        raise ImageReadError(f"{p}: not a readable image ({_reason(exc)})") from None
    return img


def _reason(exc: Exception) -> str:
    """The decoder's complaint without torchvision's source locations, on one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"\S*\.(?:cpp|cc|c|h):\d+,?\s*", "", text)  # "/__w/vision/.../decode_image.cpp:61, "
    text = re.sub(r"^(?:operator\(\)|decode_\w+|\w+Exception),?\s*", "", text).strip(" ,:")
    text = text.split(". ")[0].rstrip(".")  # the first sentence says it
    return text[:160] or "corrupt or unsupported image data"


@contextlib.contextmanager
def _native_stderr_silenced():
    """Hide what C decoders (libpng's "libpng error: ...") print straight to file descriptor 2.

    The failure is reported once, as an :class:`ImageReadError` naming the file.
    """
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2: nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def write_png(image: "torch.Tensor", path: PathLike) -> None:
    """Write a ``(C, H, W)`` uint8 tensor (C = 1 or 3; torchvision's encoder takes no alpha) as PNG."""
    import torch
    from torchvision.io import write_png as _write_png

    _write_png(image.detach().to("cpu", torch.uint8).contiguous(), os.fspath(path))


def file_md5(path: PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex MD5 digest of a file's bytes, read in chunks (exact-duplicate check).

    Convention:
        Equals ``hashlib.md5(open(path, "rb").read()).hexdigest()`` without
        holding the file in memory.

    Example:
        >>> import tempfile, torchsim
        >>> with tempfile.NamedTemporaryFile(delete=False) as f:
        ...     _ = f.write(b"abc")
        >>> torchsim.file_md5(f.name)
        '900150983cd24fb0d6963f7d28e17f72'
    """
    digest = hashlib.md5()
    with open(os.fspath(path), "rb") as fh:
        for block in iter(lambda: fh.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()
