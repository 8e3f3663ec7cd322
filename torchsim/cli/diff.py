"""``torchsim diff A B -o OUT.png [--method ssim|pixelmatch] [--threshold T] [--min-area N]``: a picture of where two images differ.

``--method ssim`` (default): A and B side by side with one box per
difference region (:func:`torchsim.diff_regions`) and the full-size SSIM map
as a third panel (dark = different). ``--method pixelmatch``: pixelmatch's
diff image (gray copy of A, mismatches red, anti-aliasing yellow).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import torchsim  # the metrics (and torch) load on first use

from ._errors import CliError
from ._files import load_pair
from ._sinks import write_png

if TYPE_CHECKING:
    import torch

_BOX_COLOR = (255, 0, 0)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "diff",
        help="write a picture of where two images differ",
        description="Write a picture of where two images of the same size differ: boxes around the "
        "regions of low SSIM (ssim) or pixelmatch's diff image (pixelmatch).",
    )
    p.add_argument("a", help="first image file")
    p.add_argument("b", help="second image file (same size)")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--method", choices=("ssim", "pixelmatch"), default="ssim", help="how to find differences (default: ssim)")
    p.add_argument("--threshold", type=float, default=0.1, help="pixelmatch: matching threshold in [0, 1] (default 0.1)")
    p.add_argument("--min-area", type=int, default=0, help="ssim: drop regions of fewer pixels (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    return p


def _ssim_picture(a: torch.Tensor, b: torch.Tensor, min_area: int, device: str):
    """``(3, H, 3W + gaps)`` picture and the number of regions."""
    import torch
    from torchvision.utils import draw_bounding_boxes

    from . import _draw

    boxes, smap = torchsim.diff_regions(a[None].to(device), b[None].to(device), min_area=min_area, return_map=True)
    bx = boxes[0].cpu()
    # draw_bounding_boxes takes inclusive corners.
    draw = (bx - torch.tensor([0, 0, 1, 1])).clamp(min=0)
    width = max(1, min(a.shape[1:]) // 128 + 1)
    panels = [
        draw_bounding_boxes(_draw.to_rgb(img).contiguous(), draw, colors=[_BOX_COLOR] * len(draw), width=width)
        if len(draw)
        else _draw.to_rgb(img)
        for img in (a, b)
    ]
    panels.append(_draw.colormap(smap[0, 0].cpu(), lo=0.0, hi=1.0))
    return _draw.grid([panels]), len(bx)


def run(args: argparse.Namespace) -> int:
    a, b = load_pair(args.a, args.b, "RGBA" if args.method == "pixelmatch" else "RGB", args.device)
    try:
        if args.method == "pixelmatch":
            threshold = args.threshold
            count, diff = torchsim.pixelmatch(a[None].to(args.device), b[None].to(args.device), threshold=threshold, return_diff=True)
            picture = diff[0, :3].cpu()  # opaque everywhere (no diff_mask): write it as RGB
            n = int(count[0])
            total = a.shape[1] * a.shape[2]
            summary = f"{n} mismatched pixels ({100.0 * n / total:.2f}% of {total}), threshold {threshold}"
        else:
            picture, k = _ssim_picture(a, b, args.min_area, args.device)
            summary = f"{k} difference region{'s' if k != 1 else ''} (SSIM 7x7 + Otsu); panels: A, B, SSIM map (dark = different)"
    except ValueError as exc:  # e.g. an image smaller than the SSIM window, a threshold outside [0, 1]
        raise CliError(1, str(exc)) from None
    write_png(picture, args.output)
    print(f"{summary}; wrote {args.output}")
    return 0
