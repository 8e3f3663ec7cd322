"""The ``torchsim demo`` figure: labelled, its numbers the printed ones, the panels at full size."""

import contextlib
import io
import re

import pytest
import torch

from torchsim.cli import _draw, _figure, main
from torchsim.cli.demo import DISTORTION_NOTES, distortions, load_sample, report_table
from torchsim.io import read_image


def _find(picture: torch.Tensor, panel: torch.Tensor):
    """Top-left ``(y, x)`` of every place where ``panel`` appears unchanged in ``picture``."""
    first = panel[:, 0, 0]
    ys, xs = torch.nonzero((picture == first[:, None, None]).all(0), as_tuple=True)
    h, w = panel.shape[1:]
    return [(y, x) for y, x in zip(ys.tolist(), xs.tolist()) if torch.equal(picture[:, y : y + h, x : x + w], panel)]


def _ink(region: torch.Tensor) -> float:
    """Fraction of dark (text) pixels."""
    return (region.int().sum(0) < 3 * 120).float().mean().item()


def _printed_table(text: str):
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("metric "))
    columns = re.split(r"\s{2,}", lines[header].strip())
    table = {}
    for line in lines[header + 2 :]:
        if line.startswith("wrote "):
            break
        cells = re.split(r"\s{2,}", line.strip())
        table[cells[0]] = dict(zip(columns[1:-1], cells[1:]))
    return table


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo.png"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):  # capsys is per test; the demo runs once for the module
        assert main(["demo", "-o", str(out)]) == 0
    return buf.getvalue(), read_image(out)


def test_numbers_under_each_column_are_the_printed_ones(demo_run):
    text, _ = demo_run
    printed = _printed_table(text)
    x = load_sample()
    variants = distortions(x)
    table, _ = report_table(x, variants)
    columns = _figure.demo_columns(x, variants, table, DISTORTION_NOTES)
    assert [c.title for c in columns] == ["original", *variants]
    assert not columns[0].numbers and columns[0].note
    for column in columns[1:]:
        assert [m for m, _ in column.numbers] == list(_figure.FIGURE_METRICS)
        for metric, value in column.numbers:
            assert value == printed[metric][column.title], (metric, column.title)
    # the values look like what they are: dB, a fraction, a pixel count
    psnr, ssim, ms_ssim, count = (v for _, v in columns[1].numbers)
    assert psnr.endswith(" dB") and 0 < float(ssim) < 1 and 0 < float(ms_ssim) < 1 and re.fullmatch(r"\d+ px \(.*%\)", count)


def test_written_picture_is_the_figure(demo_run):
    _, picture = demo_run
    x = load_sample()
    variants = distortions(x)
    table, _ = report_table(x, variants)
    expected = _figure.demo_figure(_figure.demo_columns(x, variants, table, DISTORTION_NOTES))
    assert picture.shape == expected.shape
    assert torch.equal(picture, expected)


def test_figure_layout_titles_panels_numbers_colorbar(demo_run):
    _, picture = demo_run
    x = load_sample()
    h, w = x.shape[2:]
    # every image at its full size (no downscaling), in one row, original first
    tops = [_find(picture, y[0]) for y in [x, *distortions(x).values()]]
    assert all(len(t) == 1 for t in tops), tops
    (top, left), *others = [t[0] for t in tops]
    assert all(y == top for y, _ in others) and [c for _, c in others] == sorted(c for _, c in others) and others[0][1] > left
    right = others[-1][1] + w
    assert picture.shape[1] >= top + 3 * h and picture.shape[2] >= right
    # the title band above the panels, the row titles left of them and the numbers below them hold text
    assert _ink(picture[:, :top]) > 0.005
    assert _ink(picture[:, top : top + 3 * h, :left]) > 0.002
    assert _ink(picture[:, top + 3 * h + 16 :, left:right]) > 0.005
    # a colour bar right of the SSIM maps: the map's colours from 1 (top) to 0 (bottom), one per row
    margin = picture[:, top + h : top + 2 * h + h // 10, right:]  # the row and its gaps
    hi, lo = (tuple(_draw.colormap(torch.tensor([[v]]))[:, 0, 0].tolist()) for v in (1.0, 0.0))
    rows_hi, cols_hi = torch.nonzero((margin == torch.tensor(hi, dtype=torch.uint8)[:, None, None]).all(0), as_tuple=True)
    rows_lo, _ = torch.nonzero((margin == torch.tensor(lo, dtype=torch.uint8)[:, None, None]).all(0), as_tuple=True)
    assert len(set(cols_hi.tolist())) >= 10 and len(rows_lo) > 0 and rows_hi.max() < rows_lo.min()
    # tick labels beside it
    assert _ink(margin) > 0.005


def test_column_numbers_are_the_table_strings():
    table = {"PSNR": {"a": "20.00 dB", "b": "inf"}, "SSIM": {"a": "0.5000"}, "MSE": {"a": "1.00"}}
    assert _figure.column_numbers(table, "a") == [("PSNR", "20.00 dB"), ("SSIM", "0.5000")]
    assert _figure.column_numbers(table, "b") == [("PSNR", "inf")]
    assert _figure.column_numbers(table, "c") == []


def test_wrap_fits_the_width():
    f = _figure.font(20)
    text = "SSIM: Gaussian window 11x11, sigma 1.5, mean over the valid region and the channels"
    lines = _figure.wrap(text, f, 150)
    assert len(lines) > 1 and " ".join(lines) == text
    assert all(_figure.text_width(line, f) <= 150 for line in lines)
    assert _figure.wrap("unbreakable_word_longer_than_the_width", f, 20) == ["unbreakable_word_longer_than_the_width"]


def test_render_places_every_panel_and_key():
    solid = [torch.tensor(c, dtype=torch.uint8)[:, None, None].expand(3, 40, 50).contiguous()
             for c in ([200, 30, 30], [30, 200, 30], [30, 30, 200], [200, 200, 30])]
    columns = [_figure.Column("a", "first", solid[:2], numbers=[("PSNR", "20.00 dB")]),
               _figure.Column("b", "", solid[2:], note="a note")]
    out = _figure.render("title", columns, [_figure.RowTitle("r1", "sub"), _figure.RowTitle("r2")], caption="caption",
                         colorbar=_figure.ColorBar(row=0, label="bar"),
                         legend=_figure.Legend(row=1, entries=[((255, 0, 0), "red")]), base=12)
    assert out.dtype == torch.uint8 and out.shape[0] == 3
    positions = [_find(out, p) for p in solid]
    assert all(len(p) == 1 for p in positions)
    (y0, x0), (y1, x1), (y2, x2), (y3, x3) = (p[0] for p in positions)
    assert x0 == x1 < x2 == x3 and y0 == y2 < y1 == y3  # columns left to right, rows top to bottom
    assert _ink(out[:, :y0]) > 0  # the title and the column titles
    assert ((out == torch.tensor([255, 0, 0], dtype=torch.uint8)[:, None, None]).all(0)).sum() >= 9  # legend swatch
