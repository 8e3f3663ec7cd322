"""torch.compile and torch.export of SSIM, MS-SSIM, the soft MI / NMI / histogram metrics and their losses.

The SSIM kernel is the custom op ``torchsim::ssim`` (torchsim/kernels/ssim_op.py), the soft
histograms ``torchsim::soft_histogram`` / ``torchsim::soft_joint_histogram``
(torchsim/kernels/histogram_op.py): the
compiler sees one node per call (per scale for MS-SSIM), so graphs are small, nothing breaks
them (``fullgraph=True``), a new shape is one cheap retrace (and none with ``dynamic=True``)
and ``torch.export`` works. The no-graph-break and shape tests use the ``aot_eager`` backend
(Dynamo + AOTAutograd, which also traces the backward) to stay fast; one test compiles with
inductor. Expected values: the same call in eager mode. Marked ``compile`` (deselect with
``-m "not compile"``): about 1.5 minutes in all on the 2-core CPU (90 s measured with three other test files).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import torchsim
from torchsim.functional.ssim import _window

pytestmark = pytest.mark.compile

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


# The paths the conventions (torchsim/conventions.py) and SSIM options add around the op, each
# distinct one once: per-axis windows, stride, padding (reflect: torchmetrics), uniform windows
# with sample covariance (skimage), MATLAB and average-pool downsampling, an even window with a
# stride (ffmpeg), the MS-SSIM poolings and channel orders, and the MS-SSIM + L1 loss. Compiled
# as one function: one trace proves them all free of graph breaks.
VARIANTS = {
    "per-axis": lambda x, y: torchsim.ssim(x, y, data_range=1.0, kernel_size=(5, 3), sigma=(1.5, 0.8)),
    "stride": lambda x, y: torchsim.ssim(x, y, data_range=1.0, kernel_size=5, stride=2),
    "padding-symmetric": lambda x, y: torchsim.ssim(x, y, data_range=1.0, kernel_size=5, padding="symmetric"),
    **{
        f"convention-{c}": (lambda c: lambda x, y: torchsim.ssim(x, y, data_range=1.0, convention=c))(c)
        for c in ("skimage", "matlab", "piq", "ffmpeg")
    },
    **{
        f"ms-convention-{c}": (lambda c: lambda x, y: torchsim.ms_ssim(x, y, data_range=1.0, convention=c, **MS_SMALL))(c)
        for c in ("piq", "torchmetrics", "tensorflow")
    },
    "MSSSIML1Loss": torchsim.MSSSIML1Loss(data_range=1.0, kernel_size=3, weights=(0.5, 0.5), l1_sigma=1.0),
}


def _all_variants(x, y):
    return torch.stack([f(x, y) for f in VARIANTS.values()])


def test_conventions_and_options_fullgraph_dynamic_equal_eager():
    """Every SSIM option path the conventions use compiles without a graph break, with dynamic
    shapes one graph for both shapes (large enough for MATLAB's and piq's downsampling by 2;
    sides of one parity at every MS-SSIM scale), values and gradients as eager. Dynamo only
    (backend "eager"): the backward is the op's registered autograd, as in eager mode."""
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("eager")
    compiled = torch.compile(_all_variants, backend=counter, fullgraph=True, dynamic=True)
    for shape in [(2, 1, 384, 392), (3, 1, 400, 408)]:
        x, y = _pair(shape)
        torch.testing.assert_close(_grads(compiled, x, y), _grads(_all_variants, x, y))  # each value, both gradients
    assert len(counter.graphs) == 1


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


def test_ms_ssim_halves_through_one_op_per_scale():
    """Between scales the compiler sees torchsim::halve (no pooling traced): a compiled
    ``ms_ssim`` with ``dynamic=True`` took minutes in Inductor's index simplification of the
    pooled scales' nested symbolic sizes."""
    gm = _graph_of(CASES["MSSSIMLoss"], *_pair((2, 3, 24, 25)))
    targets = [str(n.target) for n in gm.graph.nodes]
    assert sum("torchsim.halve" in t for t in targets) == 4  # 3 scales: x and y halved twice
    assert not any("avg_pool" in t for t in targets)


@pytest.mark.parametrize("mode", ["zero", "floor", "replicate_start", "symmetric_end"])
def test_halve_op_equals_halve_and_opcheck(mode):
    """Odd and even sides: the op's values and gradients are those of padding and average
    pooling (the reference of tests/ops/test_filters.py)."""
    from tests.ops.test_filters import _halve_by_pooling as halve

    g = torch.Generator().manual_seed(0)
    for shape in [(2, 2, 9, 12), (1, 1, 8, 7), (1, 2, 5, 6, 7)]:
        x = torch.rand(shape, generator=g, dtype=torch.float64, requires_grad=True)
        torch.library.opcheck(torch.ops.torchsim.halve.default, (x, mode))
        out = torch.ops.torchsim.halve(x, mode)
        ref = halve(x, mode)
        assert torch.equal(out, ref)
        gout = torch.rand(out.shape, generator=g, dtype=torch.float64)
        # the op's adjoint adds a padded sample's two shares in another order than pooling's autograd (1 ulp)
        torch.testing.assert_close(torch.autograd.grad(out, x, gout)[0], torch.autograd.grad(ref, x, gout)[0], rtol=1e-13, atol=0)


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


@pytest.mark.parametrize("shape", [(6, 3, 100, 101), (1, 1, 151, 1100)], ids=["two-chunks", "row-tiles"])
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
def test_inductor_losses():
    """The default backend (inductor) compiles the SSIM loss and the soft NMI loss with their
    ops as extern kernels, dynamic shapes, values and gradients as eager."""
    for loss in (torchsim.SSIMLoss(data_range=1.0), torchsim.NMILoss(bins=16)):
        torch._dynamo.reset()
        compiled = torch.compile(loss, fullgraph=True, dynamic=True)
        for shape in [(2, 3, 24, 25), (1, 3, 30, 28)]:
            x, y = _pair(shape)
            v_c, g_c = _value_and_grad(compiled, x, y)
            v_e, g_e = _value_and_grad(loss, x, y)
            torch.testing.assert_close(v_c, v_e)
            torch.testing.assert_close(g_c, g_e)


# --------------------------------------------------------------------------- soft histograms (MI / NMI losses)

# The soft-histogram kernels are the custom ops torchsim::soft_histogram and
# torchsim::soft_joint_histogram (torchsim/kernels/histogram_op.py).
SOFT_OPS = ("soft_histogram", "soft_joint_histogram")
SOFT_CASES = {
    "mi-minmax": lambda x, y: torchsim.mutual_information(x, y, bins=12, bandwidth=0.75, value_range="minmax"),
    "NMILoss": torchsim.NMILoss(bins=16, normalization="geometric"),  # (MILoss is the same Loss path)
    "histogram_similarity": lambda x, y: torchsim.histogram_similarity(x, y, bins=8, bandwidth=1.0, method="bhattacharyya"),
}
SOFT_MATRIX = [(name, True) for name in SOFT_CASES] + [("NMILoss", None)]


def _soft_calls(gm):
    """How many soft-histogram op nodes a Dynamo graph holds, and whether any scatter was traced."""
    ops = [getattr(torch.ops.torchsim, n) for n in SOFT_OPS]
    calls = sum(n.target in ops or n.target in [o.default for o in ops] for n in gm.graph.nodes)
    return calls, any("scatter" in str(n.target) for n in gm.graph.nodes)


def _grads(f, x, y):
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    out = f(x, y)
    return (out.detach(), *torch.autograd.grad(out.sum(), (x, y)))


@pytest.mark.parametrize("name, dynamic", SOFT_MATRIX, ids=[f"{n}-{'dynamic' if d else 'default'}" for n, d in SOFT_MATRIX])
def test_soft_histogram_fullgraph_new_shapes_equal_eager(name, dynamic):
    """Soft MI / NMI / histogram comparisons and their losses: no graph break, the kernel one
    opaque op (no scatter traced), values and gradients (both inputs) equal to eager; with
    dynamic=True one graph for every shape, by default one retrace for the second shape."""
    torch._dynamo.reset()
    f = SOFT_CASES[name]
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(f, backend=counter, fullgraph=True, dynamic=dynamic)
    for shape in SHAPES:
        x, y = _pair(shape)
        torch.testing.assert_close(_grads(compiled, x, y), _grads(f, x, y), rtol=1e-6, atol=1e-7)
    graphs = [gm for gm in counter.graphs if len(gm.graph.nodes)]  # (a compiled module adds one empty graph)
    assert len(graphs) == (1 if dynamic else 2)
    for gm in graphs:
        calls, scatter = _soft_calls(gm)
        assert calls == (2 if name == "histogram_similarity" else 1) and not scatter


def test_soft_histogram_ops_opcheck():
    """torch.library.opcheck of both soft-histogram ops: schema, fake implementation, autograd, AOT dispatch."""
    g = torch.Generator().manual_seed(0)
    u = (torch.rand(3, 20, generator=g) * 6).requires_grad_(True)
    uy = (torch.rand(3, 20, generator=g) * 6).requires_grad_(True)
    mask = (torch.rand(3, 20, generator=g) > 0.2).float()
    for h, cdt in ((1.0, torch.float32), (0.4, torch.float64), (2.5, torch.float32)):
        torch.library.opcheck(torch.ops.torchsim.soft_histogram.default, (u, mask, 6, h, cdt))
        torch.library.opcheck(torch.ops.torchsim.soft_joint_histogram.default, (u, uy, mask, 6, h, cdt))


def test_soft_histogram_ops_equal_the_functions_and_gradcheck_float64():
    """The ops give the autograd.Functions' counts and gradients exactly (one kernel), and pass
    gradcheck in float64."""
    from torchsim.ops import SoftHistogram, SoftJointHistogram

    g = torch.Generator().manual_seed(1)
    u = (torch.rand(2, 7, generator=g, dtype=torch.float64) * 5).requires_grad_(True)
    uy = (torch.rand(2, 7, generator=g, dtype=torch.float64) * 5).requires_grad_(True)
    mask = (torch.rand(2, 7, generator=g) > 0.2).double()
    w = torch.rand(2, 6, 6, generator=g, dtype=torch.float64)

    def op1(a):
        return torch.ops.torchsim.soft_histogram(a, mask, 6, 0.8, torch.float64)[0]

    def op2(a, b):
        return torch.ops.torchsim.soft_joint_histogram(a, b, mask, 6, 0.8, torch.float64)[0]

    for op, fn, args in (
        (op1, lambda a: SoftHistogram.apply(a, mask, 6, 0.8, torch.float64), (u,)),
        (op2, lambda a, b: SoftJointHistogram.apply(a, b, mask, 6, 0.8, torch.float64), (u, uy)),
    ):
        out_op, out_fn = op(*args), fn(*args)
        weights = w[:, 0] if out_op.dim() == 2 else w
        torch.testing.assert_close(out_op, out_fn, rtol=0, atol=0)
        grads_op = torch.autograd.grad((out_op * weights).sum(), args)
        grads_fn = torch.autograd.grad((out_fn * weights).sum(), args)
        torch.testing.assert_close(grads_op, grads_fn, rtol=0, atol=0)
        assert torch.autograd.gradcheck(op, args)


def test_compiled_soft_nmi_gradcheck_and_degenerate_inputs():
    """The compiled soft NMI passes gradcheck in float64 and has finite gradients on identical
    and constant images."""
    from tests.helpers import assert_finite_gradients, degenerate_pairs

    torch._dynamo.reset()

    def f(a, b):
        return torchsim.normalized_mutual_information(a, b, bins=5, bandwidth=1.0, value_range="minmax", reduction="none")

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True, dynamic=True)
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)  # (no equal sizes: no duck-shape guard)
    y = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    with torch._functorch.config.patch(donated_buffer=False):  # gradcheck runs the backward more than once
        assert torch.autograd.gradcheck(compiled, (x, y))
    for case in ("identical", "const-half", "const-zero", "block-identical"):
        a, b = degenerate_pairs(2, 3, 8, 8, seed=5)[case]  # float64: no retrace
        out, gx, gy = assert_finite_gradients(compiled, a, b)
        torch.testing.assert_close((out, gx, gy), tuple(t for t in assert_finite_gradients(f, a, b)))


def test_export_nmi_loss():
    """torch.export of the soft NMI loss, dynamic batch and spatial sizes."""
    loss = torchsim.NMILoss(bins=16)
    x, y = _pair((2, 3, 24, 25))
    n, h, w = torch.export.Dim("n"), torch.export.Dim("h", min=4, max=4096), torch.export.Dim("w", min=4, max=4096)
    spec = {0: n, 1: torch.export.Dim.STATIC, 2: h, 3: w}
    ep = torch.export.export(loss, (x, y), dynamic_shapes=(spec, spec))
    assert "torch.ops.torchsim.soft_joint_histogram.default" in ep.graph_module.print_readable(print_output=False)
    for shape in [(2, 3, 24, 25), (3, 3, 37, 29)]:
        a, b = _pair(shape, seed=1)
        torch.testing.assert_close(ep.module()(a, b), loss(a, b))
