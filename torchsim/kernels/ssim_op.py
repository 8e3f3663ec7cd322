"""The SSIM kernel as one opaque ``torch.library`` op, and the choice of its backend.

``torch.compile`` traced the SSIM kernel's Python chunk loop op by op: a 40 s first compile,
no dynamic shapes, and a compiled call slower than eager. Here the kernel is registered as
the custom op ``torchsim::ssim`` with a fake (meta) implementation that only computes output
shapes, and with ``torchsim::ssim_backward`` as its registered backward, so the compiler and
``torch.export`` see one node each way, and any input shape (symbolic ones too) traces in
milliseconds.

Eager calls of the default kernel keep going through the ``autograd.Function``
(``_SSIMKernel`` in ``functional/ssim.py``), which saves the filtered moments for its
backward; the op cannot return them (their number depends on the tiling, so on the shape),
so its backward recomputes them: one extra forward filtering of the five moment maps in the
compiled backward, nothing extra in any forward. The fused Triton kernels recompute their
moments in the backward by design and always run as the op.

Backends (the ``backend`` argument of :func:`torchsim.ssim` and :func:`torchsim.ms_ssim`):

* ``"torch"`` — the tiled separable-convolution kernel (``_SSIMKernel``), every device;
* ``"triton"`` — the fused kernels of :mod:`torchsim.kernels.triton_ssim`: CUDA tensors, or CPU
  tensors through Triton's interpreter when ``TRITON_INTERPRET=1`` is set (tests only: slow).
  Volumes (5-D) and windows longer than :data:`MAX_FUSED_KERNEL_SIZE` use the ``"torch"``
  kernel;
* ``"auto"`` (default) — ``"torch"`` everywhere for now: the fused kernels stay opt-in until a
  GPU benchmark (``benchmarks/gpu.sh``) has shown them ahead on CUDA.
"""

from __future__ import annotations

import math
import os
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .._common import no_autocast

Scalar = Union[float, Tensor]

BACKENDS = ("auto", "torch", "triton")

# The fused backward filters (k - 1)-row halos twice inside one tile, so its tiles grow with
# the window; beyond 33 taps they no longer fit a GPU's shared memory and the reference runs.
MAX_FUSED_KERNEL_SIZE = 33


def use_fused(fn: str, backend: str, x: Tensor, kernel_size: int) -> bool:
    """Whether ``backend`` runs the fused Triton kernels for ``x``; raises if it cannot.

    ``backend`` has been checked against :data:`BACKENDS` by the caller.
    """
    if backend != "triton":
        return False
    if x.device.type == "cpu":
        if os.environ.get("TRITON_INTERPRET", "0") != "1":
            raise ValueError(
                f"{fn}: backend='triton' runs on CUDA tensors, got a tensor on cpu (set the environment "
                "variable TRITON_INTERPRET=1 to run the Triton kernels on the CPU through Triton's "
                "interpreter, for testing; use backend='auto' for the CPU kernel)"
            )
    elif x.device.type != "cuda":
        raise ValueError(f"{fn}: backend='triton' runs on CUDA tensors, got a tensor on {x.device.type}")
    from . import triton_ssim

    triton_ssim.require_triton(fn)
    return x.dim() == 4 and kernel_size <= MAX_FUSED_KERNEL_SIZE


Window = Union[Tensor, Sequence[Tensor]]


def ssim_kernel(
    x: Tensor, y: Tensor, window: Window, c1: Scalar, c2: Scalar, cov: float, want_map: bool, fused: bool
) -> Tuple[Tensor, Tensor, Tensor]:
    """``(mean SSIM per (N, C), mean CS per (N, C), SSIM map or empty)`` of ``x`` and ``y``.

    ``window``: one 1-D window for every spatial axis, or one per axis (the op takes them as a
    list). ``c1`` / ``c2``: floats or per-image ``(N, 1, ...)`` tensors; ``cov``: 1 or ``n / (n - 1)``.
    Eager calls of the reference kernel use its ``autograd.Function`` directly; under
    ``torch.compile`` / ``torch.export``, and for the fused kernels, the custom op runs.
    """
    keep = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)  # a backward will follow
    if not fused and not torch.compiler.is_compiling():
        return _reference_parts()[0].apply(x, y, window, c1, c2, cov, want_map, keep)
    c1_t, c1_v = (c1, 0.0) if isinstance(c1, Tensor) else (None, float(c1))
    c2_t, c2_v = (c2, 0.0) if isinstance(c2, Tensor) else (None, float(c2))
    windows = [window] if isinstance(window, Tensor) else list(window)
    return torch.ops.torchsim.ssim(x, y, windows, c1_t, c2_t, c1_v, c2_v, cov, want_map, keep, fused)[:3]


def _one(windows: List[Tensor]) -> Window:
    """The kernel's ``window`` argument from the op's list."""
    return windows[0] if len(windows) == 1 else tuple(windows)


def _lengths(x: Tensor, windows: List[Tensor]) -> Tuple[int, ...]:
    """Window length per spatial axis of ``x``."""
    if len(windows) == 1:
        return (windows[0].shape[0],) * (x.dim() - 2)
    return tuple(w.shape[0] for w in windows)


def _out_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class _Ctx:
    """Stands in for an autograd context, so the op runs ``_SSIMKernel``'s passes as functions."""

    def __init__(self, needs_input_grad: Tuple[bool, bool] = (False, False)) -> None:
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: Tuple[Tensor, ...] = ()

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors

    def set_materialize_grads(self, value: bool) -> None:
        pass  # the op's backward always receives every gradient (zeros where unused)


def _reference_parts():
    """The reference kernel, its row tiling and the tiling's fewest rows per tile.

    Imported when used: ``functional/ssim.py`` imports this module. (The one place that names
    where the kernel and the tiling live.)
    """
    from ..functional.ssim import _SSIMKernel
    from ..ops.tiling import TILE_MIN_ROWS, RowTiles

    return _SSIMKernel, RowTiles, TILE_MIN_ROWS


def _saved_shape(x: Tensor, ks: Tuple[int, ...]) -> Tuple:
    """Shape of the moments the op returns for its backward (sizes may be symbolic).

    CUDA: ``(5, N*C, H', W'...)``, the kernel's own single chunk of whole valid planes. CPU: a
    flat buffer holding the kernel's chunks one after the other, each as it lies in memory.
    Row tiles overlap, so a plane takes ``S·h`` rows, ``H' <= S·h < H' + max(S, k)`` with at
    most ``S <= ceil(H' / TILE_MIN_ROWS)`` tiles: the buffer has room for
    ``H' + H' // TILE_MIN_ROWS + k`` rows a plane (what the shape can say without the tiling)
    and its few spare rows are zeros.
    """
    min_rows = _reference_parts()[2]
    planes, valid = x.shape[0] * x.shape[1], tuple(s - k + 1 for s, k in zip(x.shape[2:], ks))
    if x.device.type != "cpu":
        return (5, planes) + valid
    return (5 * planes * (valid[0] + valid[0] // min_rows + ks[0]) * math.prod(valid[1:]),)


def _channels_last_order(m: Tensor) -> Tensor:
    """A channels_last ``(5, T, h, ...)`` chunk as the contiguous view of its memory."""
    return m.movedim(1, -1)


def _reference_forward(x, y, window, c1, c2, cov, want_map, keep):
    """``_SSIMKernel``'s forward as a function: ``(ssim, cs, map, moments, offsets)``.

    With ``keep``, the filtered moments its backward needs, which the kernel makes chunk by
    chunk, come back in one tensor (see :func:`_saved_shape`: one contiguous copy per chunk
    on the CPU, none on CUDA), with the per-plane offsets they were taken about.
    """
    kernel = _reference_parts()[0]
    ctx = _Ctx()
    with torch.no_grad():
        s, cs, smap = kernel.forward(ctx, x, y, _one(window), c1, c2, cov, want_map, keep)
    if not keep:
        return s, cs, smap, x.new_empty(0), x.new_empty(0)
    # _SSIMKernel.forward saves (x, y, offsets, *windows, *tensor constants, *moments per chunk)
    offsets, chunks = ctx.saved_tensors[2], ctx.saved_tensors[3 + ctx.n_win + ctx.n_const :]
    if x.device.type != "cpu":
        return s, cs, smap, chunks[0].contiguous(), offsets
    moments = x.new_empty(_saved_shape(x, _lengths(x, window)))
    o = 0
    for m in chunks:
        moments[o : o + m.numel()].view(_channels_last_order(m).shape).copy_(_channels_last_order(m))
        o += m.numel()
    moments[o:].zero_()
    return s, cs, smap, moments, offsets


def _reference_backward(x, y, window, c1, c2, cov, moments, offsets, grad_ssim, grad_cs, grad_map, want_x, want_y):
    """``_SSIMKernel._backward`` from the moments of :func:`_reference_forward` (recomputed if absent)."""
    kernel, tiles, _ = _reference_parts()
    ctx = _Ctx((want_x, want_y))
    if moments.numel() == 0:  # traced without a backward in view: recompute
        with torch.no_grad():
            kernel.forward(ctx, x, y, _one(window), c1, c2, cov, False, True)
    else:  # the context _SSIMKernel.forward would have left
        if x.device.type != "cpu":
            chunks = [moments]
        else:  # views of the buffer in the kernel's channels_last layout: no copy
            geo = tiles(x, _lengths(x, window))
            chunks, o = [], 0
            for segs in geo.chunks:
                shape = (5, geo.h) + geo.rest_v + (geo.width(segs),)
                n = math.prod(shape)
                chunks.append(moments[o : o + n].view(shape).movedim(-1, 1))
                o += n
        consts = [c for c in (c1, c2) if isinstance(c, Tensor)]
        ctx.save_for_backward(x, y, offsets, *window, *consts, *chunks)
        ctx.n_win, ctx.n_const = len(window), len(consts)
        ctx.consts = (None if isinstance(c1, Tensor) else c1, None if isinstance(c2, Tensor) else c2, cov)
    return kernel._backward(ctx, grad_ssim, grad_cs, grad_map)[:2]


@torch.library.custom_op("torchsim::ssim", mutates_args=())
def _ssim_op(
    x: Tensor,
    y: Tensor,
    window: List[Tensor],
    c1: Optional[Tensor],
    c2: Optional[Tensor],
    c1_value: float,
    c2_value: float,
    cov: float,
    want_map: bool,
    keep: bool,
    fused: bool,
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(ssim (N, C), cs (N, C), map or empty, moments or empty, offsets or empty)``.

    ``keep``: a backward will follow, so the reference kernel returns the moments it needs
    (the fused kernel recomputes them and never does).
    """
    c1s = c1 if c1 is not None else c1_value
    c2s = c2 if c2 is not None else c2_value
    if fused:
        from . import triton_ssim

        s, cs, smap = triton_ssim.forward(x, y, window[0], c1s, c2s, cov, want_map)  # one window (see use_fused)
        return s, cs, smap, x.new_empty(0), x.new_empty(0)
    return _reference_forward(x, y, window, c1s, c2s, cov, want_map, keep)


@_ssim_op.register_fake
def _ssim_op_fake(x, y, window, c1, c2, c1_value, c2_value, cov, want_map, keep, fused):
    n, c = x.shape[:2]
    valid = tuple(s - k + 1 for s, k in zip(x.shape[2:], _lengths(x, window)))
    dtype = _out_dtype(x)
    value = x.new_empty((n, c), dtype=dtype)
    smap = x.new_empty((n, c) + valid if want_map else (0,), dtype=dtype)
    saved = keep and not fused
    moments = x.new_empty(_saved_shape(x, _lengths(x, window)) if saved else (0,))
    offsets = x.new_empty((n * c,) if saved else (0,))
    return value, torch.empty_like(value), smap, moments, offsets


@torch.library.custom_op("torchsim::ssim_backward", mutates_args=())
def _ssim_backward_op(
    x: Tensor,
    y: Tensor,
    window: List[Tensor],
    c1: Optional[Tensor],
    c2: Optional[Tensor],
    c1_value: float,
    c2_value: float,
    cov: float,
    moments: Tensor,
    offsets: Tensor,
    grad_ssim: Tensor,
    grad_cs: Tensor,
    grad_map: Optional[Tensor],
    want_x: bool,
    want_y: bool,
    fused: bool,
) -> Tuple[Tensor, Tensor]:
    """Input gradients of ``torchsim::ssim`` (empty tensors for the ones not wanted)."""
    c1s = c1 if c1 is not None else c1_value
    c2s = c2 if c2 is not None else c2_value
    with no_autocast(x.device):
        if fused:
            from . import triton_ssim

            gx, gy = triton_ssim.backward(x, y, window[0], c1s, c2s, cov, grad_ssim, grad_cs, grad_map, want_x, want_y)
        else:
            gx, gy = _reference_backward(
                x, y, window, c1s, c2s, cov, moments, offsets, grad_ssim, grad_cs, grad_map, want_x, want_y
            )
    return (gx if want_x else x.new_empty(0)), (gy if want_y else y.new_empty(0))


@_ssim_backward_op.register_fake
def _ssim_backward_fake(x, y, window, c1, c2, c1_value, c2_value, cov, moments, offsets, grad_ssim, grad_cs, grad_map, want_x, want_y, fused):
    return (torch.empty_like(x) if want_x else x.new_empty(0)), (torch.empty_like(y) if want_y else y.new_empty(0))


def _setup_context(ctx, inputs, output) -> None:
    x, y, window, c1, c2, c1_value, c2_value, cov, want_map, keep, fused = inputs
    moments, offsets = output[3], output[4]
    ctx.mark_non_differentiable(moments, offsets)
    ctx.save_for_backward(x, y, c1, c2, moments, offsets, *window)
    ctx.options = (c1_value, c2_value, cov, want_map, fused)
    ctx.n_win = len(window)


def _backward(ctx, grad_ssim: Tensor, grad_cs: Tensor, grad_map: Tensor, _grad_moments, _grad_offsets):
    x, y, c1, c2, moments, offsets, *window = ctx.saved_tensors
    c1_value, c2_value, cov, want_map, fused = ctx.options
    want_x, want_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    gx, gy = torch.ops.torchsim.ssim_backward(
        x, y, window, c1, c2, c1_value, c2_value, cov, moments, offsets, grad_ssim, grad_cs,
        grad_map if want_map else None, want_x, want_y, fused,
    )  # fmt: skip
    no_grad_windows = [None] * ctx.n_win  # the gradient of a list input is a list
    return (gx if want_x else None), (gy if want_y else None), no_grad_windows, None, None, None, None, None, None, None, None


torch.library.register_autograd("torchsim::ssim", _backward, setup_context=_setup_context)
