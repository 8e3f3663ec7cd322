"""What the commands share: which files are images, and whether a --device can be used."""

from __future__ import annotations

import os
from typing import Optional

import torch

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".heic")


def is_image_name(name: str) -> bool:
    """An image file by its extension, not hidden."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def device_problem(device: str) -> Optional[str]:
    """Why ``--device`` cannot be used (one line), or None."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        return f"--device must be cpu or cuda, got {device!r}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "--device cuda: no CUDA device is available"
    return None
