"""The one input factory of every benchmark suite: pairs built from real photographs.

Every image is a crop of one of scikit-image's photographs (astronaut, coffee, chelsea,
camera; image ``k`` of a batch from photo ``k % 4``), scaled up first where the crop is
larger than the photo, at a position drawn from ``(seed, k)`` — so a batch is the same
whatever chunks it is built in, on every device. The distorted image of a pair adds
Gaussian noise and clips to [0, 1]. Values are float32 in [0, 1], or uint8 (0..255).

* ``images(shape, dtype=, device=)``: a batch ``(N, C, H, W)`` (C = 3: RGB; C = 1: BT.601 luma).
* ``pair(shape, dtype=, device=, noise=, requires_grad=)``: ``(x, y)``, y the noisy copy of x.
* ``edited_pair(size)``: a photo and a copy with drawn edits (pixelmatch, diff_regions), as
  Pillow images; ``to_nchw`` turns one into a ``(1, C, H, W)`` uint8 tensor.
* ``hash_bits(n, bits)``: random 64-bit (or ``bits``-bit) hashes.
* ``png_folder(root, n, size)``: ``root/ref`` and ``root/test`` with ``n`` PNG pairs.
* ``screenshot_pair(width, height)``: a full-page "screenshot" (photos, text, buttons) and an
  edited copy (a few words, a moved button, a retouched photo, a banner), as Pillow images.
* ``sized(shape, quick, min_side=)``: a suite's shape, or the small one ``--quick`` runs.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

SEED = 0
NOISE = 0.05
PHOTOS = ("astronaut", "coffee", "chelsea", "camera")
QUICK_BATCH, QUICK_SIDE = 2, 64


def sized(shape: Tuple[int, ...], quick: bool, min_side: int = 1) -> Tuple[int, ...]:
    """``shape``, or with ``quick`` a batch of at most 2 with sides of at most
    ``max(64, min_side)`` (a check that the case runs, not a measurement)."""
    if not quick:
        return tuple(shape)
    side = max(QUICK_SIDE, min_side)
    return (min(shape[0], QUICK_BATCH), *shape[1:2], *(min(s, side) for s in shape[2:]))


def shape_name(shape: Tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> torch.Tensor:
    """``skimage.data.<name>()`` as float32 (3, H, W) in [0, 1] (a gray photo on three channels)."""
    from skimage import data

    a = torch.from_numpy(getattr(data, name)()).float() / 255
    return (a.expand(3, -1, -1) if a.dim() == 2 else a[..., :3].permute(2, 0, 1)).contiguous()


def _channels(rgb: torch.Tensor, c: int) -> torch.Tensor:
    if c == 3:
        return rgb
    if c == 1:
        return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])[None]
    return rgb[[k % 3 for k in range(c)]]


def _crop(k: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    img = _photo(PHOTOS[k % len(PHOTOS)])
    scale = max(h / img.shape[1], w / img.shape[2])
    if scale > 1:
        size = (math.ceil(img.shape[1] * scale), math.ceil(img.shape[2] * scale))
        img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0].clamp(0, 1)
    rng = np.random.default_rng([seed, k])
    top, left = (int(rng.integers(0, n - s + 1)) for n, s in zip(img.shape[1:], (h, w)))
    return _channels(img[:, top : top + h, left : left + w], c)


def _cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x.to(dtype)


def images(shape, *, dtype: torch.dtype = torch.float32, device="cpu", seed: int = SEED, first: int = 0) -> torch.Tensor:
    """A batch of photo crops, ``shape = (N, C, H, W)``; image ``k`` is the batch's ``first + k``-th."""
    n, c, h, w = shape
    x = torch.stack([_crop(first + k, c, h, w, seed) for k in range(n)])
    return _cast(x, dtype).to(device)


def pair(
    shape,
    *,
    dtype: torch.dtype = torch.float32,
    device="cpu",
    noise: float = NOISE,
    seed: int = SEED,
    first: int = 0,
    requires_grad: bool = False,
):
    """``(x, y)``: ``images(shape)`` and ``clamp(x + N(0, noise²), 0, 1)``, drawn on the CPU (the same
    numbers on every device), then cast (uint8: rounded to 0..255) and moved; ``x`` requires grad
    if asked."""
    x = images(shape, seed=seed, first=first)
    g = torch.Generator().manual_seed(seed * 1_000_003 + first)
    y = (x + noise * torch.randn(x.shape, generator=g)).clamp_(0.0, 1.0)
    x, y = _cast(x, dtype).to(device), _cast(y, dtype).to(device)
    return x.requires_grad_(requires_grad) if requires_grad else x, y


def edited_pair(size: int):
    """The astronaut at ``size`` x ``size`` and a copy with a filled rectangle, an ellipse outline
    and text drawn on it (Pillow images, RGB)."""
    from PIL import Image, ImageDraw

    a = Image.fromarray(images((1, 3, size, size), dtype=torch.uint8)[0].permute(1, 2, 0).numpy())
    b = a.copy()
    s = size / 256
    d = ImageDraw.Draw(b)
    d.rectangle([30 * s, 40 * s, 90 * s, 80 * s], fill=(20, 180, 40))
    d.ellipse([120 * s, 100 * s, 220 * s, 170 * s], outline=(255, 255, 255), width=3)
    d.text((20 * s, 200 * s), "torchsim pixelmatch", fill=(0, 0, 0))
    return a, b


def to_nchw(img) -> torch.Tensor:
    """A Pillow image (or HxW[xC] array) as a (1, C, H, W) tensor of its dtype."""
    t = torch.from_numpy(np.array(img, copy=True))
    return (t[None] if t.dim() == 2 else t.permute(2, 0, 1))[None].contiguous()


def hash_bits(n: int, bits: int = 64, seed: int = SEED) -> torch.Tensor:
    """``(n, bits)`` random hash bits (bool)."""
    return torch.rand(n, bits, generator=torch.Generator().manual_seed(seed)) > 0.5


def png_folder(root: str, n: int, size: int, seed: int = SEED, chunk: int = 16) -> None:
    """``root/ref/0000.png ...`` and ``root/test/...``: ``n`` RGB pairs of ``size`` x ``size`` from
    ``pair`` (noise sigma 8/255), written in chunks to keep memory small."""
    from torchvision.io import write_png

    ref_dir, test_dir = os.path.join(root, "ref"), os.path.join(root, "test")
    os.makedirs(ref_dir)
    os.makedirs(test_dir)
    for first in range(0, n, chunk):
        x, y = pair((min(chunk, n - first), 3, size, size), dtype=torch.uint8, noise=8 / 255, seed=seed, first=first)
        for k, (a, b) in enumerate(zip(x, y)):
            write_png(a, os.path.join(ref_dir, f"{first + k:04d}.png"))
            write_png(b, os.path.join(test_dir, f"{first + k:04d}.png"))


_WORDS = ("torchsim compares images pixel by pixel and region by region so that visual tests of web pages "
          "catch every change that matters and ignore the ones that do not price checkout basket account "
          "delivery returns privacy settings language newsletter subscribe").split()


def screenshot_pair(width: int = 2560, height: int = 14400, seed: int = SEED):
    """A full-page "screenshot" of a web page and an edited copy, as Pillow RGB images.

    The page repeats sections 900 px tall: a dark header bar with a title, paragraphs of
    text (Pillow's FreeType default font), a row of cards with scikit-image photographs and
    captions, and buttons. The copy changes what a new release of a page changes: a word
    in some paragraphs, a button moved by 2 px, one photo made brighter, and a cookie banner
    at the bottom (a few percent of the pixels).
    """
    from PIL import Image, ImageDraw, ImageEnhance, ImageFont

    rng = np.random.default_rng(seed)
    fonts = {size: ImageFont.load_default(size=size) for size in (18, 22, 40)}
    photos = [Image.fromarray((_photo(name).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)) for name in PHOTOS]
    a = Image.new("RGB", (width, height), (255, 255, 255))
    b_edits = []  # (kind, args) applied to the copy
    draw = ImageDraw.Draw(a)
    margin, card_w = 60, max(120, (width - 2 * 60 - 3 * 40) // 4)
    card_h = card_w * 2 // 3
    section = 0
    for top in range(0, height - 200, 900):
        draw.rectangle([0, top, width, top + 90], fill=(24, 40, 84))
        draw.text((margin, top + 22), f"Section {section + 1}: {' '.join(rng.choice(_WORDS, 4))}", fill=(255, 255, 255), font=fonts[40])
        y = top + 120
        for line in range(8):
            words = list(rng.choice(_WORDS, max(4, width // 110)))
            draw.text((margin, y), " ".join(words), fill=(40, 40, 40), font=fonts[22])
            if line == 3 and section % 3 == 0:
                words[2] = "changed"
                b_edits.append(("text", (margin, y, " ".join(words), width)))
            y += 34
        y += 20
        for k in range(4):
            x0 = margin + k * (card_w + 40)
            if x0 + card_w > width:
                break
            photo = photos[(section + k) % len(photos)].resize((card_w, card_h), Image.BILINEAR)
            a.paste(photo, (x0, y))
            draw.text((x0, y + card_h + 10), f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}", fill=(90, 90, 90), font=fonts[18])
            if section % 5 == 2 and k == 1:
                b_edits.append(("photo", (x0, y, photo)))
        y += card_h + 60
        for k in range(3):
            x0 = margin + k * 260
            box = [x0, y, x0 + 220, y + 56]
            label = str(rng.choice(_WORDS)).capitalize()
            draw.rounded_rectangle(box, radius=12, fill=(0, 120, 215))
            draw.text((x0 + 30, y + 16), label, fill=(255, 255, 255), font=fonts[22])
            if section % 4 == 1 and k == 0:
                b_edits.append(("button", (box, label)))
        section += 1
    b = a.copy()
    dr = ImageDraw.Draw(b)
    for kind, args in b_edits:
        if kind == "text":
            x0, y, text, w = args
            dr.rectangle([x0, y, w - 1, y + 30], fill=(255, 255, 255))
            dr.text((x0, y), text, fill=(40, 40, 40), font=fonts[22])
        elif kind == "photo":
            x0, y, photo = args
            b.paste(ImageEnhance.Brightness(photo).enhance(1.15), (x0, y))
        else:
            box, label = args
            dr.rectangle([box[0] - 4, box[1] - 4, box[2] + 6, box[3] + 6], fill=(255, 255, 255))
            dr.rounded_rectangle([v + 2 for v in box], radius=12, fill=(0, 120, 215))
            dr.text((box[0] + 32, box[1] + 18), label, fill=(255, 255, 255), font=fonts[22])
    banner = max(80, height // 100)
    dr.rectangle([0, height - banner, width, height], fill=(250, 240, 200))
    dr.text((margin, height - banner + 20), "We use cookies to improve this page. Accept all / Settings", fill=(60, 50, 0), font=fonts[22])
    return a, b
