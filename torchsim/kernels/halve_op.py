"""The MS-SSIM halving step as an opaque ``torch.library`` op while compiling.

Traced op by op, :func:`torchsim.ops.halve` (a pad and 2x2 means) gives every MS-SSIM
scale sizes nested one level deeper in the previous scale's symbolic sizes; with
``dynamic=True`` Inductor spent minutes in sympy simplifying the index arithmetic of those
kernels (measured: 106-164 s for the first call of a compiled ``ms_ssim`` on the 2-core CPU,
against 4 s for ``ssim``). As the op ``torchsim::halve``, the compiler sees one node whose
fake implementation states the output size, ``ceil(n / 2)`` (``floor`` for the ``"floor"``
mode), and the eager halving (``ops.filters._halve``: padding, then strided sums) runs inside. Its registered backward,
``torchsim::halve_backward``, is the transpose of that linear map, written out per mode
(a custom op's implementation runs below autograd, so it cannot ask autograd for it).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _eager(x: Tensor, mode: str) -> Tensor:
    from ..ops.filters import _halve  # imported when the op runs (ops.filters imports this module)

    return _halve(x, mode)


@torch.library.custom_op("torchsim::halve", mutates_args=())
def halve_op(x: Tensor, mode: str) -> Tensor:
    """:func:`torchsim.ops.halve` of ``x``."""
    return _eager(x, mode)


@halve_op.register_fake
def _halve_fake(x: Tensor, mode: str) -> Tensor:
    sizes = [s // 2 if mode == "floor" else (s + 1) // 2 for s in x.shape[2:]]
    return x.new_empty(tuple(x.shape[:2]) + tuple(sizes))


def _adjoint(grad: Tensor, sizes, mode: str) -> Tensor:
    """The transpose of halving ``sizes`` (a linear map): each input sample gets 1 / 2^d of the
    gradient of the output cell it was averaged into, padded samples hand theirs to the sample
    they copy (``replicate_start``, ``symmetric_end``), dropped ones get none (``floor``)."""
    g = grad / (2 ** len(sizes))
    any_odd = any(s % 2 for s in sizes)
    # The gradient of each pooled (padded) sample, every axis at once: one copy.
    for axis in reversed(range(2, g.dim())):
        g = g.unsqueeze(axis + 1)
    g = g.expand(*(n if i < 2 or i % 2 == 0 else 2 for i, n in enumerate(g.shape)))
    g = g.reshape(tuple(grad.shape[:2]) + tuple(2 * n for n in grad.shape[2:]))
    for axis, s in enumerate(sizes, start=2):
        odd = s % 2
        if mode == "zero":  # avg_pool(padding=odd): padded sample j is input j - odd
            g = g.narrow(axis, odd, s)
        elif mode == "floor" and odd:  # the last sample was dropped
            g = torch.cat([g, g.new_zeros(g.shape[:axis] + (1,) + g.shape[axis + 1 :])], dim=axis)
        elif mode == "replicate_start" and any_odd:  # one copy of sample 0 before it
            if not odd:  # the padded axis is odd then, and its last sample was dropped
                g = torch.cat([g, g.new_zeros(g.shape[:axis] + (1,) + g.shape[axis + 1 :])], dim=axis)
            head = g.narrow(axis, 0, 1)
            g = g.narrow(axis, 1, s).clone()
            g.narrow(axis, 0, 1).add_(head)
        elif mode == "symmetric_end" and odd:  # one copy of the last sample after it
            tail = g.narrow(axis, s, 1)
            g = g.narrow(axis, 0, s).clone()
            g.narrow(axis, s - 1, 1).add_(tail)
    return g


@torch.library.custom_op("torchsim::halve_backward", mutates_args=())
def _halve_backward_op(grad: Tensor, x: Tensor, mode: str) -> Tensor:
    """The gradient of :func:`halve_op` with respect to ``x``."""
    return _adjoint(grad, tuple(x.shape[2:]), mode).contiguous()


@_halve_backward_op.register_fake
def _halve_backward_fake(grad: Tensor, x: Tensor, mode: str) -> Tensor:
    return torch.empty_like(x)


def _setup_context(ctx, inputs, output) -> None:
    x, mode = inputs
    ctx.save_for_backward(x)
    ctx.mode = mode


def _backward(ctx, grad: Tensor):
    (x,) = ctx.saved_tensors
    return torch.ops.torchsim.halve_backward(grad, x, ctx.mode), None


torch.library.register_autograd("torchsim::halve", _backward, setup_context=_setup_context)
