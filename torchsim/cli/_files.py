"""Image files for the commands: listing, pairing, decoding and batching, in one place.

* Listing: :func:`list_images`, the image files of a folder (by extension, hidden files left out).
* Pairing: :func:`pair_files` pairs two folders by file name (``score``); :func:`load_pair`
  reads the two files of ``compare`` and ``diff``.
* Decoding: :func:`decode`, a ``(C, H, W)`` uint8 tensor or an ``ImageReadError`` naming the file.
* Batching: :func:`batches`, a ``DataLoader`` over :class:`FileDataset` entries (one file, or a
  reference/test pair, decoded in the workers) whose :func:`collate_by_size` stacks the images
  of one size; an entry that fails becomes one error line and the others go on.

Nothing here imports torch, numpy or an image library when the module is imported: every
command's parser imports it, and ``torchsim --help`` must not wait for torch.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from ._errors import CliError, check_device

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic")

Entry = Tuple[int, str, Tuple[str, ...]]  # (index, name, files): one file, or (reference, test)

# ---- listing and pairing --------------------------------------------------------------------


def is_image_name(name: str) -> bool:
    """An image file by its extension, not hidden."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: str, recursive: bool = False) -> List[str]:
    """Image files (by extension, not hidden) in ``folder``, sorted, as paths; sub-folders if ``recursive``."""
    found: List[str] = []
    for root, dirs, files in os.walk(folder):
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
            if os.path.isfile(p):
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


def _mismatch(ref: str, x: "torch.Tensor", test: str, y: "torch.Tensor") -> Optional[str]:
    """Why ``test``'s image cannot be scored against ``ref``'s (one line), or None."""
    if x.shape == y.shape:
        return None
    if x.shape[-2:] != y.shape[-2:]:
        return (f"{test}: size mismatch: {y.shape[-1]}x{y.shape[-2]} differs from {x.shape[-1]}x{x.shape[-2]} "
                f"of the reference {ref}; resize one of them first")
    return f"{test}: shape {tuple(y.shape)} differs from {tuple(x.shape)} of the reference {ref}"


def load_pair(path_a: str, path_b: str, mode: str, device: str) -> Tuple["torch.Tensor", "torch.Tensor"]:
    """Both images of a pairwise command as ``(C, H, W)`` uint8.

    Raises:
        CliError: exit code 1 with one line per unreadable file, or for a size mismatch;
            2 when ``device`` cannot be used.
    """
    from torchsim.io import ImageReadError

    images, problems = [], []
    for path in (path_a, path_b):
        try:
            images.append(decode(path, mode))
        except ImageReadError as exc:  # "<file>: <why>"
            problems.append(str(exc))
    if problems:
        raise CliError(1, "\n".join(problems))
    problem = _mismatch(path_a, images[0], path_b, images[1])
    if problem:
        raise CliError(1, problem)
    check_device(device)
    return images[0], images[1]


# ---- decoding -------------------------------------------------------------------------------

# Pillow imports in ~15 ms, torchvision.io in 1.3-1.8 s (it imports torch._dynamo). Pillow's
# RGB equals torchvision.io's bit for bit on 8-bit PNG, JPEG, WebP and single-frame GIF
# (tests/test_cli_files.py); everything else -- GRAY and RGBA, 16-bit PNG, animations, other
# formats, unreadable files -- is read by torchsim.io.read_image, with its results and messages.
_PILLOW_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_PILLOW_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK")  # 8 bits per sample
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode(path: str, mode: str = "RGB") -> "torch.Tensor":
    """Decode an image file to a ``(C, H, W)`` uint8 tensor (``mode``: ``"RGB"``, ``"GRAY"``, ``"RGBA"``).

    Raises:
        ImageReadError: the file is missing, unreadable or not a decodable image (one line naming it).
    """
    if mode == "RGB":
        image = _pillow_rgb(path)
        if image is not None:
            return image
    from torchsim.io import read_image

    return read_image(path, mode=mode)


def _pillow_rgb(path: str) -> Optional["torch.Tensor"]:
    """``(3, H, W)`` uint8 from Pillow, or None where Pillow's result or message could differ."""
    import io
    import warnings

    import numpy as np
    import torch
    from PIL import Image

    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        if raw[:8] == _PNG_SIGNATURE and len(raw) > 24 and raw[24] > 8:  # IHDR bit depth
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as im:
                if im.format not in _PILLOW_FORMATS or im.mode not in _PILLOW_MODES or getattr(im, "n_frames", 1) != 1:
                    return None
                rgb = im.convert("RGB")
    except Exception:  # missing, unreadable, corrupt: read_image says why
        return None
    return torch.from_numpy(np.ascontiguousarray(np.asarray(rgb).transpose(2, 0, 1)))  # HWC -> CHW, one copy


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

    def __init__(self, entries: Sequence[Entry], mode: str = "RGB", modcrop: int = 0) -> None:
        self.entries = list(entries)
        self.mode = mode
        self.modcrop = modcrop  # crop every image to multiples of this before the size check

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> Decoded:
        from torchsim.io import ImageReadError

        index, name, files = self.entries[i]
        try:
            images = tuple(decode(f, self.mode) for f in files)
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
            by_size.setdefault(tuple(it.images[0].shape), []).append(it)
    groups = [
        ([it.index for it in g], [it.name for it in g], tuple(torch.stack(images) for images in zip(*(it.images for it in g))))
        for g in by_size.values()
    ]
    return groups, errors


def batches(entries: Sequence[Entry], batch_size: int, workers: int = 0, mode: str = "RGB", pin_memory: bool = False):
    """Batches ``(groups, errors)`` of :func:`collate_by_size`, in the order of ``entries``, decoded by ``workers`` processes."""
    from torch.utils.data import DataLoader

    return DataLoader(
        FileDataset(entries, mode), batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=collate_by_size, pin_memory=pin_memory,
    )
