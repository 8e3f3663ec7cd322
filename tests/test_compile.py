"""torch.compile and torch.export of SSIM, MS-SSIM and their losses.

The SSIM kernel is the custom op ``torchsim::ssim`` (torchsim/kernels/ssim_op.py): the
compiler sees one node per call (per scale for MS-SSIM), so graphs are small, nothing breaks
them (``fullgraph=True``), a new shape is one cheap retrace (and none with ``dynamic=True``)
and ``torch.export`` works. The no-graph-break and shape tests use the ``aot_eager`` backend
(Dynamo + AOTAutograd, which also traces the backward) to stay fast; one test compiles with
inductor. Expected values: the same call in eager mode.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import torchsim
from torchsim.functional.ssim import _window

MS_SMALL = dict(kernel_size=3, weights=(0.3, 0.3, 0.4))


def _per_image_range(x):
    return 1.0 + 0.5 * torch.arange(x.shape[0], dtype=x.dtype)  # (linspace would specialise the batch size)


CASES = {
    "ssim": lambda x, y: torchsim.ssim(x, y, data_range=1.0),
    "ssim-skimage-map-range": lambda x, y: torchsim.ssim(
        x, y, data_range=_per_image_range(x), gaussian=False, kernel_size=7, sample_covariance=True, return_map=True
    ),
    "SSIMLoss": torchsim.SSIMLoss(data_range=1.0, kernel_size=5),
    "MSSSIMLoss": torchsim.MSSSIMLoss(data_range=1.0, reduction="sum", **MS_SMALL),
}
# No size 1 (Dynamo specialises sizes 0 and 1), and sizes of one parity at every MS-SSIM scale:
# the odd-side padding of the 2x2 pooling (pytorch_msssim's) depends on it, so each new parity
# pattern is one more (cheap) trace even with dynamic=True.
SHAPES = [(2, 3, 24, 25), (3, 2, 32, 21), (4, 3, 40, 33)]


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g)
    return x, (x + 0.2 * (torch.rand(*shape, generator=g) - 0.5)).clamp(0, 1)


def _kernel_calls(gm):
    """How many torchsim::ssim nodes a Dynamo graph holds (Dynamo records the op packet)."""
    return sum(n.target in (torch.ops.torchsim.ssim, torch.ops.torchsim.ssim.default) for n in gm.graph.nodes)


def _value_and_grad(f, x, y):
    x = x.clone().requires_grad_(True)
    out = f(x, y)
    v = out[0].sum() + out[1].mean() if isinstance(out, tuple) else out.sum()
    (gx,) = torch.autograd.grad(v, x)
    return v.detach(), gx


MATRIX = [(name, True) for name in CASES] + [("ssim", None)]


@pytest.mark.parametrize("name, dynamic", MATRIX, ids=[f"{n}-{'dynamic' if d else 'default'}" for n, d in MATRIX])
def test_fullgraph_new_shapes_equal_eager(name, dynamic):
    """No graph break, values and gradients as eager; with dynamic=True one compile for every
    shape, by default one retrace for the second shape (automatic dynamic) and none after."""
    torch._dynamo.reset()
    f = CASES[name]
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(f, backend=counter, fullgraph=True, dynamic=dynamic)
    for shape in SHAPES:
        x, y = _pair(shape)
        v_c, g_c = _value_and_grad(compiled, x, y)
        v_e, g_e = _value_and_grad(f, x, y)
        torch.testing.assert_close(v_c, v_e)
        torch.testing.assert_close(g_c, g_e)
    assert sum(_kernel_calls(g) > 0 for g in counter.graphs) == (1 if dynamic else 2)


def _graph_of(f, x, y):
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm

    torch._dynamo.reset()
    torch.compile(f, backend=backend, fullgraph=True)(x, y)
    assert len(graphs) == 1
    return graphs[0]


@pytest.mark.parametrize("name, calls", [("ssim", 1), ("MSSSIMLoss", 3)])
def test_the_compiler_sees_one_op_per_scale(name, calls):
    """The kernel is opaque: one torchsim::ssim node per scale, no convolution traced."""
    gm = _graph_of(CASES[name], *_pair((2, 3, 24, 25)))
    assert _kernel_calls(gm) == calls
    assert not any("conv" in str(n.target) for n in gm.graph.nodes)


def test_export_losses():
    """torch.export of the losses, with dynamic batch and spatial sizes."""
    x, y = _pair((2, 3, 24, 25))
    for loss in (torchsim.SSIMLoss(data_range=1.0), torchsim.MSSSIMLoss(data_range=1.0, **MS_SMALL)):
        n, h, w = torch.export.Dim("n"), torch.export.Dim("h", min=16, max=4096), torch.export.Dim("w", min=16, max=4096)
        spec = {0: n, 1: torch.export.Dim.STATIC, 2: h, 3: w}
        ep = torch.export.export(loss, (x, y), dynamic_shapes=(spec, spec))
        code = ep.graph_module.print_readable(print_output=False)  # the kernel sits in an autocast submodule
        assert "torch.ops.torchsim.ssim.default" in code
        for shape in [(2, 3, 24, 25), (3, 3, 37, 29)]:
            a, b = _pair(shape, seed=1)
            torch.testing.assert_close(ep.module()(a, b), loss(a, b))


def test_opcheck():
    """torch.library.opcheck: schema, fake (meta) implementation, autograd registration, AOT dispatch."""
    x, y = _pair((2, 2, 12, 13))
    w = _window(5, 1.5, True, x)
    c1 = torch.tensor([1e-4, 4e-4]).reshape(2, 1, 1, 1)
    x.requires_grad_(True)
    y.requires_grad_(True)
    torch.library.opcheck(torch.ops.torchsim.ssim.default, (x, y, [w], None, None, 1e-4, 9e-4, 1.0, True, True, False))
    torch.library.opcheck(torch.ops.torchsim.ssim.default, (x, y, [w], c1, None, 0.0, 9e-4, 49 / 48, False, True, False))
    torch.library.opcheck(torch.ops.torchsim.ssim.default, (x, y, [w], None, None, 1e-4, 9e-4, 1.0, False, False, False))
    # one window per axis (conventions' kernel_size=(k_H, k_W)): a list of two
    w3 = _window(3, 0.8, True, x)
    torch.library.opcheck(torch.ops.torchsim.ssim.default, (x, y, [w, w3], None, None, 1e-4, 9e-4, 1.0, True, True, False))


@pytest.mark.parametrize("keep", [True, False], ids=["saved-moments", "recomputed-moments"])
def test_op_gradcheck_float64(keep):
    """The op's backward, from the moments its forward returned or recomputing them, against
    finite differences."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 2, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    w = _window(3, 1.5, True, x)

    def f(a, b):
        s, cs, smap, _, _ = torch.ops.torchsim.ssim(a, b, [w], None, None, 1e-4, 9e-4, 1.0, True, keep, False)
        return s, cs, smap

    assert torch.autograd.gradcheck(f, (x, y))


@pytest.mark.parametrize("shape", [(6, 3, 24, 25), (1, 1, 151, 1100)], ids=["two-chunks", "row-tiles"])
def test_op_saved_moments_equal_the_function(shape):
    """The op hands its backward the moments the kernel made tile by tile (CPU: 16 planes per
    chunk; tall planes split into row tiles that overlap): gradients equal the eager kernel's."""
    from torchsim.functional.ssim import _SSIMKernel
    from torchsim.ops.tiling import RowTiles

    x, y = _pair(shape)
    w = _window(7, 1.5, True, x)
    geo = RowTiles(x, 7)
    assert len(geo.chunks) > 1 if shape[0] > 1 else (geo.s > 1 and geo.dup > 0)
    xo, yo = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    s, cs, smap, moments, _ = torch.ops.torchsim.ssim(xo, yo, [w], None, None, 1e-4, 9e-4, 1.0, True, True, False)
    lv = shape[2] - 6
    assert moments.shape == (5 * shape[0] * shape[1] * (lv + lv // 48 + 7) * (shape[3] - 6),)  # the CPU's flat buffer
    xe, ye = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    se, cse, mape = _SSIMKernel.apply(xe, ye, w, 1e-4, 9e-4, 1.0, True, True)
    torch.testing.assert_close((s, cs, smap), (se, cse, mape), rtol=0, atol=0)
    ramp = torch.linspace(0, 1, smap.shape[-1])
    torch.autograd.backward([s.sum() + 0.5 * cs.sum() + (smap * ramp).sum()], inputs=[xo, yo])
    torch.autograd.backward([se.sum() + 0.5 * cse.sum() + (mape * ramp).sum()], inputs=[xe, ye])
    torch.testing.assert_close((xo.grad, yo.grad), (xe.grad, ye.grad))


@pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")), reason="inductor on CPU needs a C++ compiler")
def test_inductor_ssim_loss():
    """The default backend (inductor) compiles the loss with the op as an extern kernel."""
    torch._dynamo.reset()
    loss = torchsim.SSIMLoss(data_range=1.0)
    compiled = torch.compile(loss, fullgraph=True, dynamic=True)
    for shape in [(2, 3, 24, 25), (1, 3, 30, 28)]:
        x, y = _pair(shape)
        v_c, g_c = _value_and_grad(compiled, x, y)
        v_e, g_e = _value_and_grad(loss, x, y)
        torch.testing.assert_close(v_c, v_e)
        torch.testing.assert_close(g_c, g_e)
