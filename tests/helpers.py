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


DISTORTIONS = {"noise": noise, "blur": blur, "jpeg": jpeg}


def planted_hashes(n: int, bits: int, seed: int, flips: int = 6) -> np.ndarray:
    """``(n, bits)`` random bool hashes, the first third copies of later ones with 0..flips bits flipped."""
    g = np.random.default_rng(seed)
    h = g.random((n, bits)) > 0.5
    k = n // 3
    h[:k] = h[g.integers(k, n, k)]
    for t in range(k):
        h[t, g.integers(0, bits, g.integers(0, flips + 1))] ^= True
    return h
