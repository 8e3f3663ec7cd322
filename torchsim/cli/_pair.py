"""Reading the two images of a pairwise command (``compare``, ``diff``) with one-line errors."""

from __future__ import annotations

import sys
from typing import Tuple, Union

import torch

from ..io import ImageReadError, read_image
from ._common import device_problem


def load_pair(command: str, path_a: str, path_b: str, mode: str, device: str) -> Union[Tuple[torch.Tensor, torch.Tensor], int]:
    """Both images as ``(C, H, W)`` uint8, or the exit code after one clear line per problem.

    Exit code 1: a file is missing, unreadable or corrupt, or the sizes differ;
    2: ``device`` is not cpu/cuda, or CUDA is not available.
    """
    images = []
    failed = False
    for path in (path_a, path_b):
        try:
            images.append(read_image(path, mode=mode))
        except ImageReadError as exc:
            print(f"{command}: {exc}", file=sys.stderr)
            failed = True
    if failed:
        return 1
    a, b = images
    if a.shape[1:] != b.shape[1:]:
        print(
            f"{command}: {path_b}: size {tuple(b.shape[1:])} (H, W) differs from {path_a}: "
            f"{tuple(a.shape[1:])}; resize one of them first",
            file=sys.stderr,
        )
        return 1
    problem = device_problem(device)
    if problem:
        print(f"{command}: {problem}", file=sys.stderr)
        return 2
    return a, b
