"""Windows and separable filtering: the one place where images are convolved.

A window is a 1-D tensor ``w`` of odd length ``k``; the filter applies it along
every spatial axis in turn (2 axes for NCHW, 3 for NCDHW). Modes:

* ``"valid"``: only positions where the window lies fully inside the image;
  each spatial size shrinks by ``k - 1``.
* ``"full"``: the adjoint of ``"valid"`` (zero padding of ``k - 1``): each
  spatial size grows by ``k - 1``. Hand-written backward passes use it.
* ``"symmetric"``: same-size output with the edge-inclusive mirror boundary
  (MATLAB ``'symmetric'``, scipy ``mode='reflect'``, numpy ``'symmetric'``).

Implementation note: every channel is filtered with the same window as a
depthwise (grouped) convolution, one axis at a time. On CPU the tensor is
filtered in ``channels_last`` layout: oneDNN's depthwise kernels are several
times slower on NCHW input and with a single channel, and fastest with a
multiple of 8 channels (``python -m benchmarks.filter_layouts`` shows the
numbers). The SSIM kernel arranges its work so (see ``_Tiles`` in
``functional/ssim.py``). On CUDA the contiguous layout is kept.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def gaussian_window(
    kernel_size: int,
    sigma: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Normalised 1-D Gaussian ``exp(-t^2 / (2 sigma^2))``, ``t = -(k-1)/2 .. (k-1)/2``.

    Equals ``cv2.getGaussianKernel(k, sigma)`` and the taps of
    ``scipy.ndimage.gaussian_filter(sigma=sigma, truncate=((k - 1) / 2) / sigma)``.
    Built in float64 and then cast, so the float64 path is exact.
    """
    t = torch.arange(kernel_size, dtype=torch.float64, device=device) - (kernel_size - 1) / 2
    w = torch.exp(-(t * t) / (2.0 * float(sigma) ** 2))
    return (w / w.sum()).to(dtype=dtype)


def box_window(
    kernel_size: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """Uniform 1-D window of ``kernel_size`` taps, each ``1 / kernel_size``."""
    return torch.full((kernel_size,), 1.0 / kernel_size, dtype=dtype, device=device)


def _symmetric_pad_axis(x: torch.Tensor, axis: int, left: int, right: int) -> torch.Tensor:
    """Pad one axis by mirroring with the edge sample included (``abc|cba``)."""
    if left == 0 and right == 0:
        return x
    n = x.shape[axis]
    idx = torch.arange(-left, n + right, device=x.device)
    # Fold indices into [0, 2n) then mirror: works for pads larger than n too.
    idx = torch.remainder(idx, 2 * n)
    idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
    return x.index_select(axis, idx)


def symmetric_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Symmetric (edge-inclusive mirror) padding of every spatial axis of ``x``."""
    for axis in range(2, x.dim()):
        x = _symmetric_pad_axis(x, axis, left, right)
    return x


def separable_filter(x: torch.Tensor, window: torch.Tensor, mode: str = "valid") -> torch.Tensor:
    """Filter every channel of a 4-D or 5-D tensor with ``window`` along each spatial axis.

    Args:
        x: ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
        window: 1-D tensor of odd length ``k`` (same dtype and device as ``x``).
        mode: ``"valid"``, ``"full"`` or ``"symmetric"`` (see module docstring).

    Returns:
        The filtered tensor, ``(B, C, *spatial')``.
    """
    k = window.shape[0]
    spatial = x.dim() - 2
    if mode == "symmetric":
        x = symmetric_pad(x, (k - 1) // 2, k // 2)
        mode = "valid"
    pad = k - 1 if mode == "full" else 0
    c = x.shape[1]
    if spatial == 2:
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        w = window.reshape(1, 1, 1, k).expand(c, 1, 1, k)
        y = F.conv2d(x, w, padding=(0, pad), groups=c)
        return F.conv2d(y, w.reshape(c, 1, k, 1), padding=(pad, 0), groups=c)
    if spatial == 3:
        if x.device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        w = window.reshape(1, 1, 1, 1, k).expand(c, 1, 1, 1, k)
        y = F.conv3d(x, w, padding=(0, 0, pad), groups=c)
        y = F.conv3d(y, w.reshape(c, 1, 1, k, 1), padding=(0, pad, 0), groups=c)
        return F.conv3d(y, w.reshape(c, 1, k, 1, 1), padding=(pad, 0, 0), groups=c)
    raise ValueError(f"separable_filter: x must be 4-D or 5-D, got shape {tuple(x.shape)}")


def matlab_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Wang's ``ssim.m`` downsampling by ``factor`` over every spatial axis.

    ``imfilter(img, ones(f)/f^2, 'symmetric', 'same')`` followed by
    ``img(1:f:end, 1:f:end)``: output sample ``j`` averages input samples
    ``j*f - (f-1)//2 .. j*f + f//2`` with the edge-inclusive mirror boundary,
    so each axis of length ``n`` becomes ``ceil(n / f)``.
    """
    if factor <= 1:
        return x
    x = symmetric_pad(x, (factor - 1) // 2, factor // 2)
    if x.dim() == 4:
        return F.avg_pool2d(x, factor, stride=factor)
    return F.avg_pool3d(x, factor, stride=factor)


def matlab_round(v: float) -> int:
    """MATLAB ``round``: half away from zero (``round(2.5) == 3``)."""
    import math

    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)
