"""Shared test utilities: layout conversion and realistic distortions of real photos."""

from __future__ import annotations

import io

import numpy as np
import torch


def to_nchw(a: np.ndarray) -> torch.Tensor:
    """HxW or HxWxC numpy image -> (1, C, H, W) tensor, same dtype."""
    t = torch.from_numpy(np.ascontiguousarray(a))
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    return t[None].contiguous()


def noise(img: np.ndarray, sigma: float = 0.05, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise on a [0, 1] float image, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0.0, 1.0)


def blur(img: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Gaussian blur of each channel (scipy.ndimage)."""
    from scipy.ndimage import gaussian_filter

    s = (sigma, sigma) + ((0,) if img.ndim == 3 else ())
    return gaussian_filter(img, sigma=s)


def jpeg(img: np.ndarray, quality: int = 20) -> np.ndarray:
    """JPEG round trip with Pillow at ``quality``; returns float in [0, 1]."""
    from PIL import Image

    u8 = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf)).astype(np.float64) / 255.0


def bicubic(img: np.ndarray, scale: int = 4) -> np.ndarray:
    """Super-resolution baseline: Pillow bicubic down by ``scale`` and back up to the same size
    (8-bit, as SR folders store it); returns float in [0, 1]."""
    from PIL import Image

    u8 = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    w, h = u8.size
    small = u8.resize((max(1, w // scale), max(1, h // scale)), Image.BICUBIC)
    return np.asarray(small.resize((w, h), Image.BICUBIC)).astype(np.float64) / 255.0


DISTORTIONS = {"noise": noise, "blur": blur, "jpeg": jpeg}
