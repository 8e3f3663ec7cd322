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

import os
from typing import Optional, Tuple, Union

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


def ssim_kernel(
    x: Tensor, y: Tensor, window: Tensor, c1: Scalar, c2: Scalar, cov: float, want_map: bool, fused: bool
) -> Tuple[Tensor, Tensor, Tensor]:
    """``(mean SSIM per (N, C), mean CS per (N, C), SSIM map or empty)`` of ``x`` and ``y``.

    ``c1`` / ``c2``: floats or per-image ``(N, 1, ...)`` tensors; ``cov``: 1 or ``n / (n - 1)``.
    Eager calls of the reference kernel use its ``autograd.Function`` directly; under
    ``torch.compile`` / ``torch.export``, and for the fused kernels, the custom op runs.
    """
    if not fused and not torch.compiler.is_compiling():
        from ..functional.ssim import _needs_grad, _SSIMKernel

        return _SSIMKernel.apply(x, y, window, c1, c2, cov, want_map, _needs_grad(x, y))
    c1_t, c1_v = (c1, 0.0) if isinstance(c1, Tensor) else (None, float(c1))
    c2_t, c2_v = (c2, 0.0) if isinstance(c2, Tensor) else (None, float(c2))
    return torch.ops.torchsim.ssim(x, y, window, c1_t, c2_t, c1_v, c2_v, cov, want_map, fused)


def _out_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class _Ctx:
    """Stands in for an autograd context, so the op runs ``_SSIMKernel``'s passes as functions."""

    def __init__(self, needs_input_grad: Tuple[bool, bool] = (False, False)) -> None:
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: Tuple[Tensor, ...] = ()

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors


def _reference_pass(x, y, window, c1, c2, cov, want_map, keep, ctx):
    from ..functional.ssim import _SSIMKernel

    with torch.no_grad():
        return _SSIMKernel.forward(ctx, x, y, window, c1, c2, cov, want_map, keep)


@torch.library.custom_op("torchsim::ssim", mutates_args=())
def _ssim_op(
    x: Tensor,
    y: Tensor,
    window: Tensor,
    c1: Optional[Tensor],
    c2: Optional[Tensor],
    c1_value: float,
    c2_value: float,
    cov: float,
    want_map: bool,
    fused: bool,
) -> Tuple[Tensor, Tensor, Tensor]:
    c1s = c1 if c1 is not None else c1_value
    c2s = c2 if c2 is not None else c2_value
    if fused:
        from . import triton_ssim

        return triton_ssim.forward(x, y, window, c1s, c2s, cov, want_map)
    return _reference_pass(x, y, window, c1s, c2s, cov, want_map, False, _Ctx())


@_ssim_op.register_fake
def _ssim_op_fake(x, y, window, c1, c2, c1_value, c2_value, cov, want_map, fused):
    n, c = x.shape[:2]
    k = window.shape[0]
    dtype = _out_dtype(x)
    value = x.new_empty((n, c), dtype=dtype)
    if want_map:
        smap = x.new_empty((n, c) + tuple(s - k + 1 for s in x.shape[2:]), dtype=dtype)
    else:
        smap = x.new_empty(0, dtype=dtype)
    return value, torch.empty_like(value), smap


@torch.library.custom_op("torchsim::ssim_backward", mutates_args=())
def _ssim_backward_op(
    x: Tensor,
    y: Tensor,
    window: Tensor,
    c1: Optional[Tensor],
    c2: Optional[Tensor],
    c1_value: float,
    c2_value: float,
    cov: float,
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

            gx, gy = triton_ssim.backward(x, y, window, c1s, c2s, cov, grad_ssim, grad_cs, grad_map, want_x, want_y)
        else:
            from ..functional.ssim import _SSIMKernel

            ctx = _Ctx((want_x, want_y))
            _reference_pass(x, y, window, c1s, c2s, cov, False, True, ctx)
            gx, gy = _SSIMKernel._backward(ctx, grad_ssim, grad_cs, grad_map)[:2]
    return (gx if want_x else x.new_empty(0)), (gy if want_y else y.new_empty(0))


@_ssim_backward_op.register_fake
def _ssim_backward_fake(x, y, window, c1, c2, c1_value, c2_value, cov, grad_ssim, grad_cs, grad_map, want_x, want_y, fused):
    return (torch.empty_like(x) if want_x else x.new_empty(0)), (torch.empty_like(y) if want_y else y.new_empty(0))


def _setup_context(ctx, inputs, output) -> None:
    x, y, window, c1, c2, c1_value, c2_value, cov, want_map, fused = inputs
    ctx.save_for_backward(x, y, window, c1, c2)
    ctx.options = (c1_value, c2_value, cov, want_map, fused)


def _backward(ctx, grad_ssim: Tensor, grad_cs: Tensor, grad_map: Tensor):
    x, y, window, c1, c2 = ctx.saved_tensors
    c1_value, c2_value, cov, want_map, fused = ctx.options
    want_x, want_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    gx, gy = torch.ops.torchsim.ssim_backward(
        x, y, window, c1, c2, c1_value, c2_value, cov, grad_ssim, grad_cs,
        grad_map if want_map else None, want_x, want_y, fused,
    )  # fmt: skip
    return (gx if want_x else None), (gy if want_y else None), None, None, None, None, None, None, None, None


torch.library.register_autograd("torchsim::ssim", _backward, setup_context=_setup_context)
