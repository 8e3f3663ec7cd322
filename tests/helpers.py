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


def resize(img: np.ndarray, factor: int = 2) -> np.ndarray:
    """Bicubic downscale by ``factor`` and back up (Pillow, on 8-bit), as a super-resolution input; [0, 1]."""
    from PIL import Image

    h, w = img.shape[:2]
    pil = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    small = pil.resize((max(1, w // factor), max(1, h // factor)), Image.BICUBIC)
    return np.asarray(small.resize((w, h), Image.BICUBIC)).astype(np.float64) / 255.0


def color_shift(img: np.ndarray) -> np.ndarray:
    """A white-balance / exposure change: per-channel gain and offset (gamma 1.1 on gray), clipped to [0, 1]."""
    if img.ndim == 2:
        return np.clip(img, 0, 1) ** 1.1
    gain = np.array([1.06, 0.97, 1.02])[: img.shape[2]]
    offset = np.array([0.02, -0.01, 0.0])[: img.shape[2]]
    return np.clip(img * gain + offset, 0.0, 1.0)


DISTORTIONS = {"noise": noise, "blur": blur, "jpeg": jpeg}
#: every realistic distortion, for the agreement report (``DISTORTIONS`` keeps the tests' original three)
ALL_DISTORTIONS = {**DISTORTIONS, "resize": resize, "color_shift": color_shift}
