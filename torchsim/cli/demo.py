"""``torchsim demo``: every metric on a bundled photograph against distorted copies of it."""

from __future__ import annotations

import argparse
from importlib import resources
from typing import TYPE_CHECKING, Dict, List, Tuple


from ._errors import check_device
from ._sinks import check_output, format_table, write_png

if TYPE_CHECKING:
    import torch

SAMPLE_NOTE = (
    "sample: astronaut Eileen Collins (NASA photograph, public domain; "
    "the 'astronaut' image of scikit-image's data module), resized to 320x320"
)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="run every metric on a bundled photo against noisy, blurred and JPEG copies",
        description="Run every metric on a bundled photograph against distorted copies of it, "
        "print a table and write a picture of the SSIM maps.",
    )
    p.add_argument("-o", "--output", default="torchsim_demo.png", help="where to write the SSIM-map picture (PNG)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    return p


def load_sample() -> torch.Tensor:
    """The bundled sample photograph as a ``(1, 3, H, W)`` uint8 tensor."""
    from ..io import read_image

    path = resources.files("torchsim") / "data" / "astronaut.png"
    with resources.as_file(path) as p:
        return read_image(p)[None]


def distortions(x: torch.Tensor, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Noisy (Gaussian, sigma 12 levels), blurred (Gaussian 7x7, sigma 2) and JPEG (quality 15) copies of uint8 ``x``."""
    import torch
    from torchvision.io import decode_jpeg, encode_jpeg
    from torchvision.transforms.v2.functional import gaussian_blur

    g = torch.Generator().manual_seed(seed)
    noisy = (x.float() + 12.0 * torch.randn(x.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)
    blurred = gaussian_blur(x, kernel_size=[7, 7], sigma=[2.0, 2.0])
    jpeg = decode_jpeg(encode_jpeg(x[0], quality=15))[None]
    return {"noise": noisy, "blur": blurred, "jpeg": jpeg}


# Column subtitles of the figure: how each copy in distortions() is made (ASCII: the figure's font has no Greek).
DISTORTION_NOTES = {
    "noise": "Gaussian noise, sigma 12 levels",
    "blur": "Gaussian blur 7x7, sigma 2",
    "jpeg": "JPEG, quality 15",
}


def report_table(x: torch.Tensor, variants: Dict[str, torch.Tensor], device: str = "cpu") -> Tuple[Dict[str, Dict[str, str]], List[Tuple[str, ...]]]:
    """The report of ``x`` against each variant: ``table[metric][variant]`` (the printed strings)
    and the printed rows ``(metric, *values, note)``."""
    from .report import Pair, build_report

    table: Dict[str, Dict[str, str]] = {}
    notes: Dict[str, str] = {}
    for name, y in variants.items():
        for metric, value, note in build_report(Pair(x, y, device=device)):
            table.setdefault(metric, {})[name] = value
            notes.setdefault(metric, note)
    rows = [(m, *(table[m].get(v, "") for v in variants), notes[m]) for m in table]
    return table, rows


def run(args: argparse.Namespace) -> int:
    from . import _figure

    device = args.device
    check_device(device)
    check_output(args.output)  # a missing or read-only folder is one line before the work
    x = load_sample()
    variants = distortions(x)
    table, rows = report_table(x, variants, device)
    print(SAMPLE_NOTE)
    print(format_table(rows, headers=("metric", *variants, "note")))

    picture = _figure.demo_figure(_figure.demo_columns(x, variants, table, DISTORTION_NOTES, device))
    out = args.output
    write_png(picture, out)
    print(f"wrote {out}: the images, their SSIM maps and pixelmatch diffs, labelled, with PSNR, SSIM, MS-SSIM and pixelmatch under each column")
    return 0
