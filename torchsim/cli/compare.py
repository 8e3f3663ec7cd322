"""``torchsim compare A B``: every metric for two image files."""

from __future__ import annotations

import argparse
import sys

import torch

from ..io import ImageReadError, read_image
from .report import Pair, build_report, format_table


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="every metric for two image files",
        description="Compare two image files with every metric (MD5, PSNR, SSIM, MS-SSIM, MSE, cosine, "
        "histograms, NMI, hashes, pixelmatch).",
    )
    p.add_argument("a", help="first image (reference)")
    p.add_argument("b", help="second image")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--gray", action="store_true", help="compare as grayscale instead of RGB")
    return p


def run(args: argparse.Namespace) -> int:
    mode = "GRAY" if args.gray else "RGB"
    images = []
    failed = False
    for path in (args.a, args.b):
        try:
            images.append(read_image(path, mode=mode))
        except ImageReadError as exc:
            print(f"torchsim compare: {exc}", file=sys.stderr)
            failed = True
    if failed:
        return 1
    a, b = images
    if a.shape != b.shape:
        print(
            f"torchsim compare: {args.b}: size {tuple(b.shape[1:])} (H, W) differs from {args.a}: "
            f"{tuple(a.shape[1:])}; resize one of them first",
            file=sys.stderr,
        )
        return 1
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("torchsim compare: --device cuda requested but CUDA is not available", file=sys.stderr)
        return 2
    rows = build_report(Pair(a[None], b[None], x_path=args.a, y_path=args.b, device=args.device))
    print(f"A: {args.a}\nB: {args.b}  ({a.shape[2]}x{a.shape[1]}, {mode})")
    print(format_table(rows))
    return 0
