"""A labelled figure of image panels, drawn with Pillow (a torchvision dependency).

The layout of a figure in a paper: a title, a title per column and per row, each column's
numbers under it, a colour bar and a legend in the right margin, a caption at the bottom.
Only ASCII text: Pillow's built-in font has no Greek letters or maths symbols.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

import torchsim

from . import _draw

INK = (20, 20, 20)
GRAY = (95, 95, 95)
WHITE = (255, 255, 255)

# The metrics printed under each column of the demo figure, by their report row names.
FIGURE_METRICS = ("PSNR", "SSIM", "MS-SSIM", "pixelmatch")


def column_numbers(table: Mapping[str, Mapping[str, str]], column: str, metrics: Sequence[str] = FIGURE_METRICS) -> List[Tuple[str, str]]:
    """The ``(metric, value)`` lines drawn under ``column``: the report table's own strings, unchanged."""
    return [(m, table[m][column]) for m in metrics if column in table.get(m, {})]


@dataclasses.dataclass
class Column:
    """One column: its title, a smaller subtitle, one ``(3, h, w)`` uint8 panel per row, and the
    ``(metric, value)`` lines under it (or ``note`` where it has none)."""

    title: str
    subtitle: str
    panels: Sequence[torch.Tensor]
    numbers: Sequence[Tuple[str, str]] = ()
    note: str = ""


@dataclasses.dataclass
class RowTitle:
    title: str
    subtitle: str = ""


@dataclasses.dataclass
class ColorBar:
    """A vertical colour bar of :func:`_draw.colormap` next to row ``row``."""

    row: int
    label: str
    lo: float = 0.0
    hi: float = 1.0
    ticks: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclasses.dataclass
class Legend:
    """Colour swatches with their meaning, next to row ``row``."""

    row: int
    entries: Sequence[Tuple[Tuple[int, int, int], str]]


@functools.lru_cache(maxsize=None)
def font(size: int) -> ImageFont.ImageFont:
    """Pillow's built-in font (Aileron) at ``size`` px; its fixed-size bitmap font without FreeType."""
    return ImageFont.load_default(size=size)


def text_width(text: str, f: ImageFont.ImageFont) -> int:
    return int(np.ceil(f.getlength(text)))


def line_height(f: ImageFont.ImageFont) -> int:
    top, bottom = f.getbbox("Ag")[1::2]
    return int((bottom - top) * 1.35) + 1


def wrap(text: str, f: ImageFont.ImageFont, width: int) -> List[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` px wide (a longer word gets its own line)."""
    lines: List[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and text_width(candidate, f) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def _to_pil(panel: torch.Tensor) -> Image.Image:
    return Image.fromarray(_draw.to_rgb(panel).permute(1, 2, 0).contiguous().numpy(), "RGB")


def _fmt_tick(v: float) -> str:
    return f"{v:g}"


def render(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[RowTitle],
    caption: str = "",
    numbers_title: str = "",
    colorbar: Optional[ColorBar] = None,
    legend: Optional[Legend] = None,
    base: int = 20,
) -> torch.Tensor:
    """Draw the figure; returns a ``(3, H, W)`` uint8 tensor. ``base`` is the body text size in px."""
    f_title, f_col, f_sub, f_body, f_small = font(round(base * 1.5)), font(round(base * 1.2)), font(round(base * 0.9)), font(base), font(round(base * 0.8))
    pad, gap = base, max(6, base // 2)
    cell_h = max(p.shape[1] for c in columns for p in c.panels)
    cell_w = max(p.shape[2] for c in columns for p in c.panels)
    nrow = max(len(c.panels) for c in columns)

    # Left margin: the row titles and the numbers' title, wrapped to at most ~0.6 of a cell.
    left_w = min(int(cell_w * 0.6), max(text_width(r.title, f_col) for r in rows) + pad)
    left_w = max(left_w, max(text_width(w, f_col) for r in rows for w in r.title.split()) + 4)
    row_lines = [(wrap(r.title, f_col, left_w), wrap(r.subtitle, f_sub, left_w) if r.subtitle else []) for r in rows]
    numbers_lines = wrap(numbers_title, f_col, left_w) if numbers_title else []

    # Right margin: colour bar with tick labels, legend swatches with their text.
    bar_w = max(12, base)
    right_w = 0
    if colorbar is not None:
        right_w = max(right_w, bar_w + 6 + max(text_width(_fmt_tick(t), f_small) for t in colorbar.ticks), text_width(colorbar.label, f_sub))
    legend_lines: List[List[str]] = []
    swatch = max(10, round(base * 0.8))
    if legend is not None:
        legend_text_w = int(cell_w * 0.7)
        legend_lines = [wrap(text, f_small, legend_text_w) for _, text in legend.entries]
        right_w = max(right_w, swatch + 6 + max(text_width(line, f_small) for lines in legend_lines for line in lines))
    right_w = right_w + pad if right_w else 0

    # Vertical bands: title, column titles, panel rows, numbers, caption.
    x0 = pad + left_w + pad
    grid_w = len(columns) * cell_w + (len(columns) - 1) * gap
    width = x0 + grid_w + (pad + right_w if right_w else pad)
    title_lines = wrap(title, f_title, width - 2 * pad)
    title_h = len(title_lines) * line_height(f_title)
    col_title_lines = [(wrap(c.title, f_col, cell_w), wrap(c.subtitle, f_sub, cell_w) if c.subtitle else []) for c in columns]
    col_h = max(len(t) * line_height(f_col) + len(s) * line_height(f_sub) for t, s in col_title_lines)
    numbers_h = max(
        max((len(c.numbers) for c in columns), default=0) * line_height(f_body),
        max((len(wrap(c.note, f_sub, cell_w)) * line_height(f_sub) for c in columns if c.note), default=0),
        len(numbers_lines) * line_height(f_col),
    )
    caption_lines = wrap(caption, f_small, width - 2 * pad) if caption else []
    y_title = pad
    y_cols = y_title + title_h + gap
    y_grid = y_cols + col_h + gap // 2
    grid_h = nrow * cell_h + (nrow - 1) * gap
    y_numbers = y_grid + grid_h + gap
    y_caption = y_numbers + numbers_h + (pad if numbers_h else 0)
    height = y_caption + len(caption_lines) * line_height(f_small) + pad

    img = Image.new("RGB", (width, height), WHITE)
    d = ImageDraw.Draw(img)

    def lines_at(x: int, y: int, lines: Sequence[str], f, fill, center_w: Optional[int] = None, bold: bool = False) -> int:
        for line in lines:
            dx = (center_w - text_width(line, f)) // 2 if center_w is not None else 0
            for shift in (0, 1) if bold else (0,):  # the built-in font has no bold face: draw twice, 1 px apart
                d.text((x + dx + shift, y), line, font=f, fill=fill)
            y += line_height(f)
        return y

    lines_at(pad, y_title, title_lines, f_title, INK, bold=True)
    for j, (c, (t_lines, s_lines)) in enumerate(zip(columns, col_title_lines)):
        cx = x0 + j * (cell_w + gap)
        # Bottom-align column titles so that one-line and two-line titles end on the same line.
        h = len(t_lines) * line_height(f_col) + len(s_lines) * line_height(f_sub)
        y = lines_at(cx, y_cols + col_h - h, t_lines, f_col, INK, center_w=cell_w, bold=True)
        lines_at(cx, y, s_lines, f_sub, GRAY, center_w=cell_w)
        for i, p in enumerate(c.panels):
            ph, pw = p.shape[1:]
            img.paste(_to_pil(p), (cx + (cell_w - pw) // 2, y_grid + i * (cell_h + gap) + (cell_h - ph) // 2))
        if c.numbers:
            name_w = max(text_width(m, f_body) for m, _ in c.numbers)
            y = y_numbers
            for metric, value in c.numbers:
                d.text((cx + gap, y), metric, font=f_body, fill=GRAY)
                d.text((cx + max(gap + name_w + gap, cell_w - gap - text_width(value, f_body)), y), value, font=f_body, fill=INK)
                y += line_height(f_body)
        elif c.note:
            lines_at(cx, y_numbers, wrap(c.note, f_sub, cell_w), f_sub, GRAY, center_w=cell_w)

    for i, (t_lines, s_lines) in enumerate(row_lines):
        h = len(t_lines) * line_height(f_col) + len(s_lines) * line_height(f_sub)
        y = y_grid + i * (cell_h + gap) + (cell_h - h) // 2
        y = lines_at(pad, y, t_lines, f_col, INK, bold=True)
        lines_at(pad, y, s_lines, f_sub, GRAY)
    if numbers_lines:
        lines_at(pad, y_numbers, numbers_lines, f_col, INK, bold=True)

    xr = x0 + grid_w + pad
    if colorbar is not None:
        top = y_grid + colorbar.row * (cell_h + gap)
        d.text((xr, top), colorbar.label, font=f_sub, fill=INK)
        b0 = top + line_height(f_sub) + gap // 2
        b1 = top + cell_h - line_height(f_small) // 2
        ramp = torch.linspace(colorbar.hi, colorbar.lo, b1 - b0)[:, None].expand(-1, bar_w)
        img.paste(_to_pil(_draw.colormap(ramp, lo=colorbar.lo, hi=colorbar.hi)), (xr, b0))
        d.rectangle((xr - 1, b0 - 1, xr + bar_w, b1), outline=GRAY)
        for t in colorbar.ticks:
            y = b0 + round((colorbar.hi - t) / (colorbar.hi - colorbar.lo) * (b1 - b0 - 1))
            d.line((xr + bar_w, y, xr + bar_w + 4, y), fill=INK)
            d.text((xr + bar_w + 6, y), _fmt_tick(t), font=f_small, fill=INK, anchor="lm")
    if legend is not None:
        y = y_grid + legend.row * (cell_h + gap) + gap
        for (color, _), lines in zip(legend.entries, legend_lines):
            d.rectangle((xr, y + 2, xr + swatch, y + 2 + swatch), fill=color, outline=GRAY)
            y = lines_at(xr + swatch + 6, y, lines, f_small, INK) + gap // 2

    lines_at(pad, y_caption, caption_lines, f_small, GRAY)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous()


# --- the demo's figure -------------------------------------------------------------------------

DEMO_TITLE = "torchsim demo: how similar is each distorted copy to the original photograph?"
DEMO_ROWS = (
    RowTitle("image"),
    RowTitle("SSIM map", "local SSIM, mean of R, G, B; valid region"),
    RowTitle("pixelmatch diff", "threshold 0.1, over a faded gray copy"),
)
# pixelmatch's diff colours (its defaults: diff_color red, aa_color yellow) and its faded gray.
DEMO_LEGEND = Legend(
    row=2,
    entries=[
        ((255, 0, 0), "mismatch (counted)"),
        ((255, 255, 0), "anti-aliased (not counted)"),
        ((230, 230, 230), "match (faded original)"),
    ],
)


def demo_columns(
    x: torch.Tensor,
    variants: Mapping[str, torch.Tensor],
    table: Mapping[str, Mapping[str, str]],
    subtitles: Mapping[str, str],
    device: str = "cpu",
) -> List[Column]:
    """The demo figure's columns: the original ``(1, C, H, W)`` uint8 ``x``, then each variant, with
    their SSIM maps and pixelmatch diffs against ``x``; under each variant its :data:`FIGURE_METRICS`
    from ``table`` (``table[metric][variant]``, the strings the demo prints)."""
    xd = x.to(device)
    valid = [s - 10 for s in x.shape[2:]]  # the valid region of an 11x11 window, as the other maps
    columns = [
        Column(
            "original",
            "the reference photograph",
            [x[0], _draw.colormap(torch.ones(valid)), torchsim.pixelmatch(xd, xd, return_diff=True)[1][0].cpu()],
            note="every other column is compared with it",
        )
    ]
    for name, y in variants.items():
        yd = y.to(device)
        _, smap = torchsim.ssim(xd, yd, return_map=True)
        panels = [y[0], _draw.colormap(smap[0].mean(0).cpu()), torchsim.pixelmatch(xd, yd, return_diff=True)[1][0].cpu()]
        columns.append(Column(name, subtitles.get(name, ""), panels, numbers=column_numbers(table, name)))
    return columns


def demo_figure(columns: Sequence[Column]) -> torch.Tensor:
    """The ``torchsim demo`` picture of :func:`demo_columns`, a ``(3, H, W)`` uint8 tensor."""
    h, w = columns[0].panels[0].shape[1:]
    return render(
        DEMO_TITLE,
        columns,
        DEMO_ROWS,
        numbers_title="vs. the original",
        colorbar=ColorBar(row=1, label="local SSIM"),
        legend=DEMO_LEGEND,
        caption=(
            f"Sample: astronaut Eileen Collins (NASA photograph, public domain), {w}x{h} px, uint8 RGB, "
            "data range 255. SSIM: Gaussian window 11x11, sigma 1.5, mean over the valid region and the channels; "
            "MS-SSIM: 5 scales; pixelmatch: mismatched pixels at threshold 0.1 (pixelmatch-py exact). "
            "The numbers are those of the table printed by torchsim demo."
        ),
    )
