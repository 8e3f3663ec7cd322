"""Windows and separable filtering: the one place where images are convolved.

A window is a 1-D tensor ``w`` of ``k`` taps. :func:`separable_filter` correlates
every channel of a 4-D ``(B, C, H, W)`` or 5-D ``(B, C, D, H, W)`` tensor with one
window per spatial axis (the same window on every axis, or a sequence of windows
with ``None`` for an axis left alone)::

    out[..., i, ...] = sum_j w[j] * x[..., i + j - c, ...],    c = (k - 1) // 2

(correlation, as ``torch.nn.functional.conv2d`` and ``scipy.ndimage.correlate1d``;
flip ``w`` for a convolution). The centre tap ``c`` is MATLAB's: for even ``k`` the
window reaches one sample further right than left. Modes:

* ``"valid"``: only positions where the window lies fully inside the image;
  each filtered size shrinks by ``k - 1``.
* ``"full"``: zero padding of ``k - 1`` on both sides, so each filtered size grows
  by ``k - 1``; with the window flipped (or a symmetric one) it is the adjoint of
  ``"valid"``. Hand-written backward passes use it.
* same-size modes, padding ``c`` samples before and ``k - 1 - c`` after:

  ===============  ==================  ===============================================
  mode             padding of ``abcd``  also known as
  ===============  ==================  ===============================================
  ``"symmetric"``  ``ba|abcd|dc``       MATLAB ``'symmetric'``, numpy ``'symmetric'``,
                                       scipy.ndimage ``'reflect'``
  ``"reflect"``    ``cb|abcd|cb``       torch/numpy ``'reflect'``, scipy.ndimage ``'mirror'``
  ``"zero"``       ``00|abcd|00``       scipy.ndimage ``'constant'`` (cval 0), MATLAB default
  ``"replicate"``  ``aa|abcd|dd``       torch ``'replicate'``, scipy.ndimage ``'nearest'``
  ===============  ==================  ===============================================

  ``"symmetric"`` and ``"reflect"`` keep mirroring when the padding exceeds the size.

Implementation note: every channel is filtered with the same window as a
depthwise (grouped) convolution, one axis at a time, last axis first. On CPU the
tensor is filtered in ``channels_last`` layout: oneDNN's depthwise kernels are
several times slower on NCHW input and with a single channel, and fastest with a
multiple of 8 channels (``python -m benchmarks.filter_layouts`` shows the numbers).
float64 has no oneDNN kernels and stays contiguous (the fallback is ~5x slower on
channels_last).
The SSIM kernel arranges its work so (see :class:`torchsim.ops.tiling.RowTiles`).
On CUDA the contiguous layout is kept.
"""

from __future__ import annotations

import itertools
import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .. import _validation as V

Window = Union[torch.Tensor, Sequence[Optional[torch.Tensor]]]

PADDING_MODES = ("valid", "full", "symmetric", "reflect", "zero", "replicate")


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


def _pad_index(n: int, left: int, right: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source index of every sample of an axis of length ``n`` padded by ``left``/``right``."""
    idx = torch.arange(-left, n + right, device=device)
    if mode == "replicate" or (mode == "reflect" and n == 1):
        return idx.clamp_(0, n - 1)
    if mode == "reflect":  # edge sample not repeated: period 2n - 2
        idx = torch.remainder(idx, 2 * n - 2)
        return torch.where(idx >= n, 2 * n - 2 - idx, idx)
    # symmetric, edge sample repeated: fold into [0, 2n) then mirror (pads larger than n too)
    idx = torch.remainder(idx, 2 * n)
    return torch.where(idx >= n, 2 * n - 1 - idx, idx)


def _pad_axis(x: torch.Tensor, axis: int, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad one axis of ``x`` by ``left`` and ``right`` samples in a same-size mode."""
    if left == 0 and right == 0:
        return x
    if mode == "zero":
        pad = [0, 0] * (x.dim() - 1 - axis) + [left, right]
        return F.pad(x, pad)
    n = x.shape[axis]
    if mode == "symmetric" and max(left, right) <= n:  # two mirrored strips: copies, not a gather
        return torch.cat([x.narrow(axis, 0, left).flip(axis), x, x.narrow(axis, n - right, right).flip(axis)], axis)
    return x.index_select(axis, _pad_index(n, left, right, mode, x.device))


def symmetric_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Symmetric (edge-inclusive mirror, ``ba|abcd|dc``) padding of every spatial axis of ``x``."""
    for axis in range(2, x.dim()):
        x = _pad_axis(x, axis, left, right, "symmetric")
    return x


def pad_same(x: torch.Tensor, kernel_size: Union[int, Sequence[int]], mode: str) -> torch.Tensor:
    """Pad every spatial axis so that a ``"valid"`` filter of ``kernel_size`` taps keeps its size.

    Axis ``a`` gets ``(k_a - 1) // 2`` samples before and ``k_a // 2`` after, in a same-size
    mode of :data:`PADDING_MODES` (``"symmetric"``, ``"reflect"``, ``"zero"``, ``"replicate"``),
    so ``separable_filter(pad_same(x, k, m), w)`` equals ``separable_filter(x, w, mode=m)``:
    a kernel written for valid windows computes a same-size map from the padded input.

    Args:
        x: ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
        kernel_size: window length, one for every spatial axis or one per axis.
        mode: the padding mode.

    Returns:
        The padded tensor; each spatial size ``n`` becomes ``n + k - 1``.

    Example:
        >>> import torch
        >>> from torchsim.ops import pad_same
        >>> pad_same(torch.arange(4.0).reshape(1, 1, 1, 4), (1, 5), "reflect")[0, 0, 0]
        tensor([2., 1., 0., 1., 2., 3., 2., 1.])
    """
    spatial = x.dim() - 2
    sizes = [int(kernel_size)] * spatial if isinstance(kernel_size, int) else [int(k) for k in kernel_size]
    if mode not in PADDING_MODES[2:]:
        V.check_choice("pad_same", "mode", mode, PADDING_MODES[2:])
    for axis, k in enumerate(sizes, start=2):
        x = _pad_axis(x, axis, (k - 1) // 2, k // 2, mode)
    return x


def _windows(fn: str, window: Window, spatial: int) -> List[Optional[torch.Tensor]]:
    """``window`` as one entry per spatial axis (``None``: that axis is not filtered)."""
    if isinstance(window, torch.Tensor):
        windows: List[Optional[torch.Tensor]] = [window] * spatial
    else:
        windows = list(window)
        if len(windows) != spatial:
            raise ValueError(
                f"{fn}: window must be one 1-D tensor or a sequence of {spatial} (one per spatial axis), "
                f"got a sequence of {len(windows)}"
            )
    for w in windows:
        if w is not None and (not isinstance(w, torch.Tensor) or w.dim() != 1 or w.numel() == 0):
            got = f"shape {tuple(w.shape)}" if isinstance(w, torch.Tensor) else repr(w)
            raise ValueError(f"{fn}: each window must be a non-empty 1-D tensor or None, got {got}")
    return windows


def separable_filter(x: torch.Tensor, window: Window, mode: str = "valid") -> torch.Tensor:
    """Correlate every channel of a 4-D or 5-D tensor with a 1-D window along each spatial axis.

    ``out = w_0 ⋆_0 (w_1 ⋆_1 (... x))``: the 1-D correlation (see the module
    docstring for the formula and the centre tap) along each spatial axis ``a``
    with its window ``w_a``, the last axis first.

    Convention:
        Equals ``scipy.ndimage.correlate1d(x, w_a, axis=a, mode=m)`` applied per
        axis, with ``m`` = ``'reflect'`` for ``"symmetric"``, ``'mirror'`` for
        ``"reflect"``, ``'constant'`` for ``"zero"``, ``'nearest'`` for
        ``"replicate"`` (and ``origin=-1`` for even-length windows; scipy centres
        them one tap to the right). ``"valid"`` crops that result to the
        positions that need no padding; ``"full"`` is its adjoint.

    Args:
        x: ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
        window: a 1-D tensor of ``k`` taps applied on every spatial axis, or a
            sequence of one 1-D tensor or ``None`` (axis left alone) per spatial
            axis, in axis order (``(w_H, w_W)`` or ``(w_D, w_H, w_W)``). Windows are
            cast to ``x``'s dtype and device.
        mode: ``"valid"``, ``"full"``, ``"symmetric"``, ``"reflect"``, ``"zero"``
            or ``"replicate"`` (see the module docstring).

    Returns:
        ``(B, C, *spatial')``: each filtered size ``n`` becomes ``n - k + 1``
        (``"valid"``), ``n + k - 1`` (``"full"``) or stays ``n`` (other modes).

    Raises:
        ValueError: ``x`` not 4-D or 5-D, a bad window or window count, an unknown mode.

    Example:
        >>> import torch
        >>> from torchsim.ops import separable_filter
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> w = torch.tensor([1.0, 0.0, -1.0])  # horizontal central difference (x[j-1] - x[j+1])
        >>> separable_filter(x, (None, w), mode="replicate")[0, 0, 0]
        tensor([-1., -2., -2., -1.])
    """
    spatial = x.dim() - 2
    if spatial not in (2, 3):
        raise ValueError(f"separable_filter: x must be 4-D or 5-D, got shape {tuple(x.shape)}")
    if mode not in PADDING_MODES:
        V.check_choice("separable_filter", "mode", mode, PADDING_MODES)
    if isinstance(window, torch.Tensor) and window.dim() == 1 and window.dtype == x.dtype:
        windows: List[Optional[torch.Tensor]] = [window] * spatial  # the hot path: no checks, no casts
    else:
        windows = [
            None if w is None else w.to(dtype=x.dtype, device=x.device)
            for w in _windows("separable_filter", window, spatial)
        ]
    c = x.shape[1]
    conv = F.conv2d if spatial == 2 else F.conv3d
    layout = None
    if x.device.type == "cpu":
        layout = _cpu_layout(x)
        x = x.contiguous(memory_format=layout)
    for axis in range(spatial - 1, -1, -1):
        w = windows[axis]
        if w is None:
            continue
        k = w.shape[0]
        shape = [1] * spatial
        shape[axis] = k
        weight = w.reshape(1, 1, *shape).expand(c, 1, *shape)
        padding = [0] * spatial
        if mode == "full" or (mode == "zero" and k % 2 == 1):
            padding[axis] = k - 1 if mode == "full" else (k - 1) // 2
        elif mode != "valid":
            x = _pad_axis(x, axis + 2, (k - 1) // 2, k // 2, mode)
            if layout is not None:
                x = x.contiguous(memory_format=layout)
        x = conv(x, weight, padding=tuple(padding), groups=c)
    return x


def _cpu_layout(x: torch.Tensor) -> torch.memory_format:
    """The layout depthwise convolution is fastest in on the CPU: channels_last for the oneDNN
    dtypes, contiguous for float64 (oneDNN has no float64 kernels; ATen's fallback is ~5x
    slower on channels_last input)."""
    if x.dtype == torch.float64:
        return torch.contiguous_format
    return torch.channels_last if x.dim() == 4 else torch.channels_last_3d
def box_sum(x: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Sums over every ``kernel_size × kernel_size`` window of the last two axes ("valid" positions).

    ``out[..., i, j] = sum_{a, b < k} x[..., i + a, j + b]``, each axis shrinking by
    ``k - 1``: :func:`separable_filter` with a window of ones, computed by shifted
    additions instead of a convolution — sums of two, four, eight ... samples, then the
    binary decomposition of ``k`` (4 additions per axis for ``k = 7``). Every sum is a
    plain sum of ``k`` samples, so integer input (or integer-valued floats below
    ``2**53 / k²``) gives exact results, and integer dtypes stay integer (beware of
    overflow: ``k² · max|x|`` must fit).

    Args:
        x: ``(..., H, W)`` tensor, ``H`` and ``W`` at least ``kernel_size``.
        kernel_size: the window side ``k >= 1``.

    Returns:
        ``(..., H - k + 1, W - k + 1)``, x's dtype.

    Example:
        >>> import torch
        >>> from torchsim.ops import box_sum
        >>> box_sum(torch.arange(16).reshape(1, 4, 4), 3).tolist()
        [[[45, 54], [81, 90]]]
    """
    for dim in (-1, -2):
        x = _axis_box_sum(x, kernel_size, dim)
    return x


def _axis_box_sum(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Sums of ``k`` consecutive samples along ``dim`` (valid positions)."""
    n = x.shape[dim] - k + 1
    powers = {1: x}  # powers[p][i] = sum of x[i .. i + p - 1]
    p = 1
    while 2 * p <= k:
        prev = powers[p]
        m = prev.shape[dim] - p
        powers[2 * p] = prev.narrow(dim, 0, m) + prev.narrow(dim, p, m)
        p *= 2
    out: Optional[torch.Tensor] = None
    owned = False  # whether out is a fresh tensor (else a view of an input)
    offset = 0
    for p in sorted(powers, reverse=True):  # k as a sum of distinct powers of two
        if offset + p > k:
            continue
        part = powers[p].narrow(dim, offset, n)
        if out is None:
            out = part
        elif owned:
            out.add_(part)
        else:
            out, owned = out + part, True
        offset += p
    assert out is not None
    return out if owned else out.clone()


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


def pool_downsample(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average ``factor``-sized blocks over every spatial axis (``avg_pool`` with stride ``factor``).

    Output sample ``j`` averages input samples ``j*f .. j*f + f - 1``; a remainder of fewer than
    ``f`` samples at the end of an axis is dropped, so each axis of length ``n`` becomes
    ``n // f`` (``torch.nn.functional.avg_pool2d(x, f)``, the downsampling of piq's ``ssim``).
    """
    if factor <= 1:
        return x
    if x.dim() == 4:
        return F.avg_pool2d(x, factor)
    return F.avg_pool3d(x, factor)


#: how :func:`halve` treats an odd side, and who does it that way
HALVING_MODES = ("zero", "floor", "replicate_start", "symmetric_end")


def halve(x: torch.Tensor, mode: str = "zero") -> torch.Tensor:
    """Halve every spatial axis with 2-sample means: the step between MS-SSIM scales.

    Modes differ only on odd sides (an even side ``n`` always becomes ``n / 2``):

    =====================  ===============================================  ==========================
    mode                   odd side ``n = 2m + 1``                           as in
    =====================  ===============================================  ==========================
    ``"zero"``             one zero before the first sample, counted in      pytorch-msssim
                           its mean: ``m + 1`` samples, the first ``x0 / 2``  (``avg_pool(padding=1)``)
    ``"floor"``            the last sample dropped: ``m`` samples             torchmetrics, MONAI
    ``"replicate_start"``  the first sample repeated before it, on *every*    piq
                           axis when any axis is odd: ``m + 1``, first ``x0``
    ``"symmetric_end"``    the last sample repeated after it: ``m + 1``       TensorFlow
    =====================  ===============================================  ==========================

    Args:
        x: ``(B, C, H, W)`` or ``(B, C, D, H, W)``.
        mode: one of :data:`HALVING_MODES`.

    Returns:
        The halved tensor.

    Example:
        >>> import torch
        >>> from torchsim.ops import halve
        >>> x = torch.tensor([2.0, 4.0, 6.0]).reshape(1, 1, 1, 3).expand(1, 1, 2, 3)
        >>> [halve(x, m)[0, 0, 0].tolist() for m in ("zero", "floor", "replicate_start", "symmetric_end")]
        [[1.0, 5.0], [3.0], [2.0, 5.0], [3.0, 6.0]]
    """
    if mode not in HALVING_MODES:
        V.check_choice("halve", "mode", mode, HALVING_MODES)
    if torch.compiler.is_compiling():
        # One opaque op for the compiler (torchsim.kernels.halve_op): no guard on the sizes'
        # parity (one graph for every shape, export works) and no nested index arithmetic.
        from ..kernels import halve_op  # noqa: F401  (registers torchsim::halve)

        return torch.ops.torchsim.halve(x, mode)
    return _halve(x, mode)


def _halve(x: torch.Tensor, mode: str) -> torch.Tensor:
    """:func:`halve` in plain tensor ops (differentiable to any order): the padding of ``mode``,
    then 2^d-sample means.

    The means add strided views of ``x`` in ``avg_pool``'s order (offsets ``(0, 0), (0, 1),
    (1, 0), (1, 1)``) and scale by ``1 / 2^d``: the values of ``F.avg_pool2d(x, 2, padding=p)``
    (``avg_pool3d`` for volumes) bit for bit, several times faster on the CPU (PyTorch's pooling
    kernel took 3.6 ms for 8x3x256x256 on two threads, these sums 0.9 ms). Half-precision input
    is summed in float32 and rounded once, as ``avg_pool`` does.
    """
    if x.dtype in (torch.float16, torch.bfloat16):
        return _halve(x.float(), mode).to(x.dtype)
    sizes = x.shape[2:]
    if mode == "zero":  # avg_pool's padding of 1 on an odd side: only the zero before is used
        for axis, s in enumerate(sizes, start=2):
            x = _pad_axis(x, axis, s % 2, 0, "zero")
    elif mode == "replicate_start":
        if any(s % 2 for s in sizes):
            for axis in range(2, x.dim()):
                x = _pad_axis(x, axis, 1, 0, "replicate")
    elif mode == "symmetric_end":
        for axis, s in enumerate(sizes, start=2):
            x = _pad_axis(x, axis, 0, s % 2, "symmetric")
    halves = [n // 2 for n in x.shape[2:]]  # "floor" drops the last sample of an odd side
    out = None
    for offsets in itertools.product((0, 1), repeat=len(halves)):
        view = x[(slice(None), slice(None)) + tuple(slice(o, o + 2 * m, 2) for o, m in zip(offsets, halves))]
        out = view.clone(memory_format=torch.contiguous_format) if out is None else out.add_(view)
    return out.mul_(1.0 / 2 ** len(halves))


def matlab_round(v: float) -> int:
    """MATLAB ``round``: half away from zero (``round(2.5) == 3``)."""
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)
