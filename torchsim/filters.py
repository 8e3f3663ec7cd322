"""Windows and separable filtering: the one place where images are convolved.

A window is a 1-D tensor ``w`` of odd length ``k``; the filter applies it along
every spatial axis in turn (2 axes for NCHW, 3 for NCDHW). Modes:

* ``"valid"``: only positions where the window lies fully inside the image;
  each spatial size shrinks by ``k - 1``.
* ``"full"``: the adjoint of ``"valid"`` (zero padding of ``k - 1``): each
  spatial size grows by ``k - 1``. Hand-written backward passes use it.
* ``"symmetric"``: same-size output with the edge-inclusive mirror boundary
  (MATLAB ``'symmetric'``, scipy ``mode='reflect'``, numpy ``'symmetric'``).

Implementation note: every channel is filtered with the same window, so the
tensor is viewed as ``(B*C, 1, *spatial)`` and filtered with a single-channel
convolution per axis. On CPU this avoids oneDNN's per-call re-blocking of
depthwise (grouped) convolutions in NCHW; see ``benchmarks/`` for the
measurements that chose it.
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
    shape = x.shape
    spatial = x.dim() - 2
    if mode == "symmetric":
        x = symmetric_pad(x, (k - 1) // 2, k // 2)
        mode = "valid"
    pad = k - 1 if mode == "full" else 0
    y = x.reshape(shape[0] * shape[1], 1, *x.shape[2:])
    if spatial == 2:
        w = window.reshape(1, 1, 1, k)
        y = F.conv2d(y, w, padding=(0, pad))
        y = F.conv2d(y, w.reshape(1, 1, k, 1), padding=(pad, 0))
    elif spatial == 3:
        w = window.reshape(1, 1, 1, 1, k)
        y = F.conv3d(y, w, padding=(0, 0, pad))
        y = F.conv3d(y, w.reshape(1, 1, 1, k, 1), padding=(0, pad, 0))
        y = F.conv3d(y, w.reshape(1, 1, k, 1, 1), padding=(pad, 0, 0))
    else:  # pragma: no cover - callers validate rank
        raise ValueError(f"separable_filter: x must be 4-D or 5-D, got shape {tuple(shape)}")
    return y.reshape(shape[0], shape[1], *y.shape[2:])


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
