"""Small picture helpers for the CLI: a colormap and panel layout, in torch."""

from __future__ import annotations

from typing import List, Sequence

import torch

# Anchor colours of a perceptually ordered dark-blue -> teal -> yellow map (sampled by eye
# from the usual "viridis" look; 0 = dark, 1 = bright). Linear interpolation between anchors.
_ANCHORS = torch.tensor(
    [
        [68, 1, 84],
        [59, 82, 139],
        [33, 145, 140],
        [94, 201, 98],
        [253, 231, 37],
    ],
    dtype=torch.float32,
)


def colormap(values: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Map a ``(H, W)`` tensor to a ``(3, H, W)`` uint8 RGB picture (``lo`` dark, ``hi`` bright)."""
    t = ((values.float() - lo) / (hi - lo)).clamp(0, 1) * (len(_ANCHORS) - 1)
    i0 = t.floor().long().clamp(max=len(_ANCHORS) - 2)
    frac = (t - i0).unsqueeze(-1)
    anchors = _ANCHORS.to(values.device)
    rgb = anchors[i0] * (1 - frac) + anchors[i0 + 1] * frac
    return rgb.round().to(torch.uint8).permute(2, 0, 1)


def to_rgb(img: torch.Tensor) -> torch.Tensor:
    """``(C, H, W)`` uint8 with C in {1, 3, 4} -> ``(3, H, W)`` uint8."""
    if img.shape[0] == 1:
        return img.expand(3, -1, -1)
    return img[:3]


def fit(img: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre a ``(3, h, w)`` uint8 panel on a white ``(3, height, width)`` canvas (no scaling)."""
    canvas = torch.full((3, height, width), 255, dtype=torch.uint8)
    h, w = img.shape[1:]
    top, left = (height - h) // 2, (width - w) // 2
    canvas[:, top : top + h, left : left + w] = img
    return canvas


def grid(rows: Sequence[Sequence[torch.Tensor]], gap: int = 8) -> torch.Tensor:
    """Lay out ``(3, h, w)`` uint8 panels in rows on a white background."""
    height = max(p.shape[1] for r in rows for p in r)
    width = max(p.shape[2] for r in rows for p in r)
    ncol = max(len(r) for r in rows)
    out: List[torch.Tensor] = []
    for r in rows:
        cells = [fit(p, height, width) for p in r] + [fit(torch.empty(3, 0, 0, dtype=torch.uint8), height, width)] * (ncol - len(r))
        line = []
        for i, c in enumerate(cells):
            if i:
                line.append(torch.full((3, height, gap), 255, dtype=torch.uint8))
            line.append(c)
        out.append(torch.cat(line, dim=2))
    sep = torch.full((3, gap, out[0].shape[2]), 255, dtype=torch.uint8)
    parts = []
    for i, o in enumerate(out):
        if i:
            parts.append(sep)
        parts.append(o)
    return torch.cat(parts, dim=1)

