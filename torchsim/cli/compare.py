"""``torchsim compare A B``: every metric for two image files."""

from __future__ import annotations

import argparse

from ._files import add_decode_options, decode_options, load_pair, start_pair
from ._metrics import add_convention_argument
from .diff import add_ignore_options, ignore_mask, rectangle
from ._sinks import format_table


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="every metric for two image files",
        description="Compare two image files with every metric (MD5, PSNR, SSIM, MS-SSIM, MSE, cosine, "
        "histograms, NMI, hashes, pixelmatch). --ignore / --mask leave pixels out of MSE, PSNR, SSIM and "
        "pixelmatch (the other rows say they use the whole image).",
    )
    p.add_argument("a", help="first image (reference)")
    p.add_argument("b", help="second image")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--gray", action="store_true", help="compare as grayscale instead of RGB")
    add_ignore_options(p)
    add_decode_options(p)
    add_convention_argument(p)
    return p


def run(args: argparse.Namespace) -> int:
    args.ignore = [rectangle(r) for r in args.ignore]
    mode = "GRAY" if args.gray else "RGB"
    pending = start_pair(args.a, args.b, mode, **decode_options(args))  # decoding while torch loads
    from .report import Pair, build_report

    a, b = load_pair(pending, args.device)
    ignore = ignore_mask(args, a.shape[1], a.shape[2], args.device)
    rows = build_report(
        Pair(a[None], b[None], x_path=args.a, y_path=args.b, device=args.device, mask=ignore, convention=args.convention)
    )
    ignored = "" if ignore is None else f", {int(ignore.sum())} pixels ignored"
    print(f"A: {args.a}\nB: {args.b}  ({a.shape[2]}x{a.shape[1]}, {mode}{ignored})")
    print(format_table(rows))
    return 0
