"""Why torchsim filters tiles as channels_last depthwise convolutions: the measurements.

``python -m benchmarks.filter_layouts`` times one 11-tap separable Gaussian pass pair over the
same number of pixels in several layouts on the current device, interleaved, and prints
ms per megapixel. The SSIM kernel's geometry (``torchsim/ops/tiling.py``, ``RowTiles``)
follows from it: on CPU (oneDNN) a depthwise convolution is fast only in channels_last with a
multiple of 8 channels; a single-channel view and NCHW depthwise are several times slower.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F

from torchsim.ops.filters import gaussian_window


def _pair(x: torch.Tensor, w: torch.Tensor, channels: int) -> torch.Tensor:
    k = w.shape[0]
    y = F.conv2d(x, w.view(1, 1, 1, k).expand(channels, 1, 1, k), groups=channels)
    return F.conv2d(y, w.view(1, 1, k, 1).expand(channels, 1, k, 1), groups=channels)


def layouts(total_rows: int = 1472, width: int = 256):
    """Same pixels (5 maps x 16 x 92 rows x 256 by default) arranged several ways."""
    w = gaussian_window(11, 1.5)
    cases = {}
    for c in (1, 3, 8, 15, 16, 32):
        rows = total_rows * 16 // c
        base = torch.rand(5, c, rows, width)
        cl = base.contiguous(memory_format=torch.channels_last)
        cases[f"depthwise C={c:<2} channels_last"] = (lambda cl=cl, c=c: _pair(cl, w, c), base.numel())
        cases[f"depthwise C={c:<2} NCHW"] = (lambda base=base, c=c: _pair(base, w, c), base.numel())
    return cases


def main(rounds: int = 5) -> None:
    cases = layouts()
    samples = {name: [] for name in cases}
    for fn, _ in cases.values():
        fn()
    for _ in range(rounds):
        for name, (fn, _) in cases.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| layout | ms per Mpx (median) |\n|---|---:|")
    for name, (_, numel) in cases.items():
        print(f"| {name} | {statistics.median(samples[name]) * 1e3 / (numel / 1e6):.2f} |")


if __name__ == "__main__":
    main()
