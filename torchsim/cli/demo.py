"""``torchsim demo``: every metric on a bundled photograph against distorted copies of it."""

from __future__ import annotations

import argparse
import os
from importlib import resources
from typing import TYPE_CHECKING, Dict, List

import torchsim  # the metrics (and torch) load on first use

from ._errors import check_device
from ._sinks import format_table

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


def run(args: argparse.Namespace) -> int:
    import torch

    from . import _draw
    from .report import Pair, build_report

    device = args.device
    check_device(device)
    x = load_sample()
    variants = distortions(x)
    columns: Dict[str, Dict[str, str]] = {}
    order: List[str] = []
    notes: Dict[str, str] = {}
    for name, y in variants.items():
        for metric, value, note in build_report(Pair(x, y, device=device)):
            if metric not in columns:
                columns[metric] = {}
                order.append(metric)
                notes[metric] = note
            columns[metric][name] = value
    rows = [(m, *(columns[m].get(v, "") for v in variants), notes[m]) for m in order]
    print(SAMPLE_NOTE)
    print(format_table(rows, headers=("metric", *variants, "note")))

    # Picture: the photo and each distortion on top, their SSIM maps (valid region) in the
    # middle, pixelmatch's diff images (mismatches in red over a faded copy) at the bottom.
    xd = x.to(device)
    top = [_draw.to_rgb(x[0])] + [_draw.to_rgb(y[0]) for y in variants.values()]
    maps = [_draw.colormap(torch.ones(x.shape[2:]))]
    diffs = [_draw.to_rgb(torchsim.pixelmatch(xd, xd, return_diff=True)[1][0].cpu())]
    for y in variants.values():
        yd = y.to(device)
        _, smap = torchsim.ssim(xd, yd, return_map=True)
        maps.append(_draw.colormap(smap[0].mean(0).cpu(), lo=0.0, hi=1.0))  # valid region, centred
        diffs.append(_draw.to_rgb(torchsim.pixelmatch(xd, yd, return_diff=True)[1][0].cpu()))
    picture = _draw.grid([top, maps, diffs])
    out = args.output
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torchsim.io.write_png(picture, out)
    print(
        f"wrote {out}: columns original, {', '.join(variants)}; rows: the images, their SSIM maps over "
        f"the valid region (dark = 0, bright = 1), pixelmatch diffs (red = mismatched pixel)"
    )
    return 0
