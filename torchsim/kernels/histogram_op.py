"""The soft-histogram kernels as opaque ``torch.library`` ops, for ``torch.compile`` and ``torch.export``.

The soft (differentiable) histogram and joint histogram of :mod:`torchsim.ops.binning` scatter
each value's ``K`` tap weights (``K²`` for a pair) into shifted views of the output in a Python
loop over the taps. Traced op by op, that loop is an in-place scatter graph whose backward
autograd would derive from the scatters, not the hand-written gather. Here the kernel is
registered as

* ``torchsim::soft_histogram(u, mask, bins, h, count_dtype) -> (counts, idx, dw)`` and
* ``torchsim::soft_joint_histogram(ux, uy, mask, bins, h, count_dtype) -> (counts, idx, wx, dwx, wy, dwy)``,

each with a fake (meta) implementation that only computes output shapes (so symbolic shapes
trace in milliseconds) and, as its registered autograd, the hand-written backward as the ops
``torchsim::soft_histogram_backward`` / ``torchsim::soft_joint_histogram_backward``. Besides the
counts, each forward returns the taps its backward needs (non-differentiable outputs), so
nothing is recomputed. The math is the one kernel of :mod:`torchsim.ops.binning`
(``_soft_counts``, ``_soft_joint_counts`` and their backwards), which the eager
``autograd.Function`` s (:class:`~torchsim.ops.SoftHistogram`,
:class:`~torchsim.ops.SoftJointHistogram`) run too; :func:`torchsim.ops.soft_histogram` and
:func:`torchsim.ops.soft_joint_histogram` pick the op while compiling.
"""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import Tensor


def _taps(bins: int, h: float) -> int:
    """``K``, the number of bins one soft value reaches (:func:`torchsim.ops.soft_taps`)."""
    return min(math.ceil(2.0 * h) + 1, bins)


def _binning():
    """:mod:`torchsim.ops.binning`, imported when the op runs (it imports this module)."""
    from ..ops import binning

    return binning


@torch.library.custom_op("torchsim::soft_histogram", mutates_args=())
def _soft_histogram_op(
    u: Tensor, mask: Tensor, bins: int, h: float, count_dtype: torch.dtype
) -> Tuple[Tensor, Tensor, Tensor]:
    """``(counts (R, bins), idx (R·P,) long, dw (K, R, P))`` of ``u``, ``mask`` ``(R, P)``."""
    out, idx, dw = _binning()._soft_counts(u, mask, bins, h, count_dtype)
    return out.clone() if out._base is not None else out, idx, dw


@_soft_histogram_op.register_fake
def _soft_histogram_fake(u, mask, bins, h, count_dtype):
    r, p = u.shape
    k = _taps(bins, h)
    return u.new_empty((r, bins)), u.new_empty((r * p,), dtype=torch.long), u.new_empty((k, r, p))


@torch.library.custom_op("torchsim::soft_histogram_backward", mutates_args=())
def _soft_histogram_backward_op(grad: Tensor, idx: Tensor, dw: Tensor) -> Tensor:
    """Gradient in ``u`` of ``torchsim::soft_histogram``."""
    return _binning()._soft_counts_backward(grad, idx, dw)


@_soft_histogram_backward_op.register_fake
def _soft_histogram_backward_fake(grad, idx, dw):
    return dw.new_empty(dw.shape[1:])


def _setup_soft(ctx, inputs, output) -> None:
    _, idx, dw = output
    ctx.mark_non_differentiable(idx, dw)
    ctx.save_for_backward(idx, dw)


def _backward_soft(ctx, grad, _grad_idx, _grad_dw):
    idx, dw = ctx.saved_tensors
    gu = torch.ops.torchsim.soft_histogram_backward(grad, idx, dw) if ctx.needs_input_grad[0] else None
    return gu, None, None, None, None


torch.library.register_autograd("torchsim::soft_histogram", _backward_soft, setup_context=_setup_soft)


@torch.library.custom_op("torchsim::soft_joint_histogram", mutates_args=())
def _soft_joint_histogram_op(
    ux: Tensor, uy: Tensor, mask: Tensor, bins: int, h: float, count_dtype: torch.dtype
) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """``(counts (N, bins, bins), idx (N·P,) long, wx, dwx, wy, dwy (K, N, P))`` of ``(N, P)`` positions."""
    out, *rest = _binning()._soft_joint_counts(ux, uy, mask, bins, h, count_dtype)
    return (out.clone() if out._base is not None else out, *rest)


@_soft_joint_histogram_op.register_fake
def _soft_joint_histogram_fake(ux, uy, mask, bins, h, count_dtype):
    n, p = ux.shape
    k = _taps(bins, h)
    taps = [ux.new_empty((k, n, p)) for _ in range(4)]
    return (ux.new_empty((n, bins, bins)), ux.new_empty((n * p,), dtype=torch.long), *taps)


@torch.library.custom_op("torchsim::soft_joint_histogram_backward", mutates_args=())
def _soft_joint_histogram_backward_op(
    grad: Tensor, idx: Tensor, wx: Tensor, dwx: Tensor, wy: Tensor, dwy: Tensor, bins: int
) -> Tuple[Tensor, Tensor]:
    """Gradients in ``ux`` and ``uy`` of ``torchsim::soft_joint_histogram``."""
    return _binning()._soft_joint_counts_backward(grad, idx, wx, dwx, wy, dwy, bins)


@_soft_joint_histogram_backward_op.register_fake
def _soft_joint_histogram_backward_fake(grad, idx, wx, dwx, wy, dwy, bins):
    return wx.new_empty(wx.shape[1:]), wy.new_empty(wy.shape[1:])


def _setup_joint(ctx, inputs, output) -> None:
    _, *saved = output
    ctx.mark_non_differentiable(*saved)
    ctx.save_for_backward(*saved)
    ctx.bins = inputs[3]


def _backward_joint(ctx, grad, *_grad_saved):
    if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
        return None, None, None, None, None, None
    gx, gy = torch.ops.torchsim.soft_joint_histogram_backward(grad, *ctx.saved_tensors, ctx.bins)
    return (gx if ctx.needs_input_grad[0] else None), (gy if ctx.needs_input_grad[1] else None), None, None, None, None


torch.library.register_autograd("torchsim::soft_joint_histogram", _backward_joint, setup_context=_setup_joint)
