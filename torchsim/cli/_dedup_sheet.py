"""The contact sheet of ``torchsim dedup --sheet FILE``: one row per group, drawn with Pillow.

Each row starts with the kept file (green frame, "keep") followed by the files to remove (red
frame), each thumbnail captioned with its file name, its size in pixels and bytes, and its
hash distance to the kept file ("same MD5" for a byte-identical copy). Exact groups come first,
then near groups, in the order of the report; at most ``per_row`` files per row (the row says
how many more there are).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

from ._dedup_plan import Group
from ._dedup_scan import FileInfo

THUMB = 150  # the longer side of a thumbnail, px
KEEP_COLOUR = (30, 140, 60)
REMOVE_COLOUR = (200, 40, 40)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _thumbnail(path: str, options) -> "object":
    """A Pillow thumbnail of the file (a gray box with a note where it cannot be decoded)."""
    from PIL import Image

    from ._files import decode

    try:
        image = decode(path, "RGB", keep16=False, **options)
        im = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy(), "RGB")
        im.thumbnail((THUMB, THUMB), Image.BILINEAR, reducing_gap=2.0)
        return im
    except Exception:
        return Image.new("RGB", (THUMB, THUMB * 3 // 4), (200, 200, 200))


def _fit_text(text: str, font, width: int) -> str:
    from ._figure import text_width

    if text_width(text, font) <= width:
        return text
    while text and text_width("..." + text, font) > width:
        text = text[1:]
    return "..." + text


def contact_sheet(groups: Sequence[Group], infos: Sequence[FileInfo], title: str, options, root: str = ".", per_row: int = 8):
    """The sheet as a ``(3, H, W)`` uint8 tensor; files are named by their path relative to ``root``."""
    import os

    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from ._figure import GRAY, INK, font, line_height, wrap

    f_title, f_row, f_cap = font(20), font(15), font(12)
    lh_cap, lh_row = line_height(f_cap), line_height(f_row)
    cell_w, pad = THUMB + 16, 10
    caption_h = 3 * lh_cap + 4
    cell_h = THUMB + 8 + caption_h
    ncols = max([1] + [min(per_row, 1 + len(g.members)) for g in groups])
    width = max(640, 2 * pad + ncols * cell_w)
    title_lines = wrap(title, f_title, width - 2 * pad)
    height = pad + len(title_lines) * line_height(f_title) + pad + len(groups) * (lh_row + cell_h + pad) + pad
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = pad
    for text in title_lines:
        draw.text((pad, y), text, fill=INK, font=f_title)
        y += line_height(f_title)
    y += pad
    for k, g in enumerate(groups, 1):
        files: List[Tuple[int, int, bool]] = [(g.keep, 0, True)] + [(i, d, False) for i, d in g.members]
        shown = files[:per_row]
        more = len(files) - len(shown)
        head = (f"{k}. {'exact copies (same MD5)' if g.kind == 'exact' else 'near duplicates'}: "
                f"{len(files)} files, keep 1, remove {len(files) - 1}" + (f" ({more} not shown)" if more else ""))
        draw.text((pad, y), head, fill=INK, font=f_row)
        y += lh_row
        for c, (i, d, keep) in enumerate(shown):
            x = pad + c * cell_w
            im = _thumbnail(infos[i].path, options)
            ox, oy = x + (cell_w - im.width) // 2, y + 4 + (THUMB - im.height) // 2
            sheet.paste(im, (ox, oy))
            colour = KEEP_COLOUR if keep else REMOVE_COLOUR
            draw.rectangle((ox - 3, oy - 3, ox + im.width + 2, oy + im.height + 2), outline=colour, width=3)
            f = infos[i]
            label = "keep" if keep else ("remove: same MD5" if g.kind == "exact" else f"remove: distance {d}")
            lines = [
                (_fit_text(os.path.relpath(f.path, root), f_cap, cell_w - 6), INK),
                (f"{f.width}x{f.height}, {human_bytes(f.size)}" if f.width else human_bytes(f.size), GRAY),
                (label, colour),
            ]
            ty = y + THUMB + 8
            for text, fill in lines:
                draw.text((x + 3, ty), text, fill=fill, font=f_cap)
                ty += lh_cap
        y += cell_h + pad
    return torch.from_numpy(np.asarray(sheet).transpose(2, 0, 1).copy())
