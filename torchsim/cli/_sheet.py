"""The contact sheet of ``torchsim score --sheet FILE``: the worst pairs, one row each.

Each row shows the test image, its reference and their SSIM map (bright where the two are
alike, dark where they differ), titled with the file name and its scores; a colour bar gives
the map's scale. Laid out by :func:`._figure.render` (Pillow), so it reads like the demo figure.
"""

from __future__ import annotations

import dataclasses
from typing import List, Sequence, Tuple

import torch

from . import _draw, _figure

#: the longer side of each panel, in pixels (images are shrunk to it, never enlarged)
PANEL = 320


@dataclasses.dataclass
class SheetRow:
    """One pair on the sheet: ``(3, H, W)`` uint8 images as scored (cropped), the ``(H', W')``
    SSIM map (mean over channels) and the ``(label, value)`` lines of its scores."""

    name: str
    test: torch.Tensor
    reference: torch.Tensor
    ssim_map: torch.Tensor
    values: Sequence[Tuple[str, str]]


def _shrink(panel: torch.Tensor, side: int = PANEL) -> torch.Tensor:
    """``(3, h, w)`` uint8 shrunk (antialiased) so that its longer side is at most ``side``."""
    h, w = panel.shape[-2:]
    scale = side / max(h, w)
    if scale >= 1:
        return panel
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    out = torch.nn.functional.interpolate(panel[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return out[0].round().clamp(0, 255).to(torch.uint8)


def contact_sheet(rows: Sequence[SheetRow], title: str, caption: str = "") -> torch.Tensor:
    """The sheet as a ``(3, H, W)`` uint8 tensor."""
    tests: List[torch.Tensor] = []
    refs: List[torch.Tensor] = []
    maps: List[torch.Tensor] = []
    titles: List[_figure.RowTitle] = []
    for k, row in enumerate(rows, 1):
        tests.append(_shrink(_draw.to_rgb(row.test.cpu())))
        refs.append(_shrink(_draw.to_rgb(row.reference.cpu())))
        maps.append(_shrink(_draw.colormap(row.ssim_map.detach().float().cpu(), lo=0.0, hi=1.0)))
        values = "\n".join(f"{label} {value}" for label, value in row.values)
        titles.append(_figure.RowTitle(f"{k}. {row.name}", values))
    columns = [
        _figure.Column("test", "the image scored", tests),
        _figure.Column("reference", "", refs),
        _figure.Column("SSIM map", "dark: where they differ", maps),
    ]
    colorbar = _figure.ColorBar(row=0, label="SSIM")
    return _figure.render(title, columns, titles, caption=caption, colorbar=colorbar, base=16)
