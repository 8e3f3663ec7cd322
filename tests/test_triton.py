"""Fused Triton SSIM kernels (``backend="triton"``) against the reference kernel.

Without a GPU the kernels run through Triton's interpreter on CPU tensors (the backend
accepts CPU tensors when ``TRITON_INTERPRET=1`` is set; the ``interpret`` fixture sets it
per test). The interpreter runs each program in Python, so the images are tiny crops of
real photographs, and the ``small_tiles`` fixture shrinks the tiles so that these crops
still span several tiles in both directions, with partial tiles at the bottom and right
edges. The same kernels compile for CUDA in the ``cuda`` tests at the end
(``benchmarks/gpu.sh`` runs them).

Expected values come from the reference kernel (``backend="torch"``) at test time, in
float64, whose agreement with scikit-image and pytorch-msssim tests/reference checks.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import torchsim

from .helpers import blur, jpeg, noise, to_nchw

pytest.importorskip("triton", reason="the fused SSIM backend needs the triton package")

from torchsim.kernels import triton_ssim as T  # noqa: E402  (after the skip)

MS_SMALL = dict(kernel_size=3, weights=(0.3, 0.3, 0.4))

CONVENTIONS = {
    "gaussian-11": dict(),
    "gaussian-5-sigma-0.8": dict(kernel_size=5, sigma=0.8, k1=0.05, k2=0.1),
    "uniform-7-sample-cov": dict(gaussian=False, kernel_size=7, sample_covariance=True),
    "gaussian-3": dict(kernel_size=3),
}


@pytest.fixture
def interpret(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def small_tiles(monkeypatch):
    """The smallest tiles tl.dot allows for the window: many tiles, partial ones at the edges."""
    side = lambda k: max(16, T._next_pow2(k))  # noqa: E731
    monkeypatch.setattr(T, "_forward_blocks", lambda k: (side(k), side(k)))
    monkeypatch.setattr(T, "_backward_blocks", lambda k: (max(16, T._next_pow2(2 * k - 1)), side(k)))


def _crop(photos, name, h, w, top=100, left=120):
    return photos[name][top : top + h, left : left + w]


def _photo_pair(photos, h, w, n=1, channels=3, distortion="noise"):
    """``(n, channels, h, w)`` float64 crops of astronaut, coffee, chelsea and a distorted copy of each."""
    fn = {"noise": noise, "blur": lambda a: blur(a, 1.0), "jpeg": lambda a: jpeg(a, 30)}[distortion]
    crops = [_crop(photos, name, h, w, top=60 + 17 * i) for i, name in enumerate(["astronaut", "coffee", "chelsea"][:n])]
    x = torch.cat([to_nchw(c) for c in crops])[:, :channels]
    y = torch.cat([to_nchw(fn(c)) for c in crops])[:, :channels]
    return x, y


def _value_grads(fn, x, y, **kw):
    x = x.detach().clone().requires_grad_(True)
    y = y.detach().clone().requires_grad_(True)
    out = fn(x, y, reduction="none", **kw)
    if isinstance(out, tuple):  # (value, map): weight the map unevenly so its gradient matters
        value, smap = out
        ramp = torch.linspace(0.5, 1.5, smap.shape[-1], dtype=smap.dtype, device=smap.device)
        loss = value.sum() + (smap * ramp).sum()
    else:
        loss = out.sum()
    gx, gy = torch.autograd.grad(loss, (x, y))
    return out, gx, gy


def _assert_grad_close(g, ref, rel):
    scale = ref.abs().max()
    err = (g.double() - ref.double()).abs().max()
    assert err <= rel * scale, f"max gradient error {err.item():.3g} vs max gradient {scale.item():.3g}"


def _compare(fn, x, y, dtype, vtol, grel, **kw):
    """The triton backend on ``dtype`` inputs vs the reference on float64, values and gradients."""
    out, gx, gy = _value_grads(fn, x.to(dtype), y.to(dtype), backend="triton", **kw)
    ref, rgx, rgy = _value_grads(fn, x.double(), y.double(), **kw)
    if isinstance(out, tuple):
        assert out[1].dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
        torch.testing.assert_close(out[1].double(), ref[1], **vtol)
        out, ref = out[0], ref[0]
    assert out.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    torch.testing.assert_close(out.double(), ref, **vtol)
    assert gx.dtype == dtype and gy.dtype == dtype
    _assert_grad_close(gx, rgx, grel)
    _assert_grad_close(gy, rgy, grel)


F32 = dict(vtol=dict(rtol=2e-6, atol=2e-6), grel=2e-5)


# --------------------------------------------------------------------------- values and gradients


@pytest.mark.parametrize("name", list(CONVENTIONS), ids=list(CONVENTIONS))
def test_conventions_float32(interpret, photos, name):
    """Each window type and covariance convention, default tiles: float32 vs the float64 reference."""
    x, y = _photo_pair(photos, 23, 37, channels=2, distortion="jpeg")
    _compare(torchsim.ssim, x, y, torch.float32, data_range=1.0, **F32, **CONVENTIONS[name])


@pytest.mark.parametrize("reverse", [False, True], ids=["tiles-in-order", "tiles-reversed"])
@pytest.mark.parametrize("name", ["uniform-7-sample-cov", "gaussian-3"])
def test_tile_edges(interpret, small_tiles, photos, name, reverse, monkeypatch):
    """Many tiles with partial ones at both edges (sizes not multiples of the tile).

    The interpreter runs the tiles one after the other; run them in both orders, so that a
    tile writing a pixel that belongs to its neighbour cannot hide behind the neighbour's
    later, correct write (on a GPU the order is arbitrary).
    """
    monkeypatch.setattr(T, "REVERSE_TILES", reverse)
    h, w = 27, 41
    x, y = _photo_pair(photos, h, w, channels=1, distortion="blur")
    kw = CONVENTIONS[name]
    k = kw["kernel_size"]
    (br, bw), (bbr, bbw) = T._forward_blocks(k), T._backward_blocks(k)
    assert h - k + 1 > br - k + 1 and (w - k + 1) > bw and (w - k + 1) % bw  # forward tiles
    assert h > bbr - 2 * (k - 1) and h % (bbr - 2 * (k - 1)) and w % (bbw - k + 1)  # backward tiles
    _compare(torchsim.ssim, x, y, torch.float32, data_range=1.0, **F32, **kw)


def test_float64_per_image_range_map_channels_last(interpret, photos):
    """float64 end to end, a per-image data_range, the SSIM map and its gradient, NHWC strides."""
    x, y = _photo_pair(photos, 21, 26, n=2, channels=2, distortion="noise")
    x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
    dr = torch.tensor([1.0, 2.5], dtype=torch.float64)
    # c1, c2 and cov reach the kernel as float32 scalars: float64 results agree to ~1e-9 with a
    # tensor range; ssim() divides a per-image range out first (units never overflow), after which
    # c1 = k1**2 and c2 = k2**2 are those float32 scalars (relative error ~3e-8): ~5e-9 on the map
    _compare(torchsim.ssim, x, y, torch.float64, dict(rtol=1e-8, atol=1e-8), 1e-8, data_range=dr, kernel_size=5, return_map=True)


def test_bfloat16_computes_in_float32(interpret, photos):
    """bf16 inputs: the same float32 numbers as the reference on the same bf16 values, bf16 gradients."""
    x, y = _photo_pair(photos, 19, 24, channels=2, distortion="noise")
    xb, yb = x.to(torch.bfloat16), y.to(torch.bfloat16)
    _compare(torchsim.ssim, xb.double(), yb.double(), torch.bfloat16, dict(rtol=1e-6, atol=1e-6), 1e-2, data_range=1.0, kernel_size=7)


def test_kernel_reads_half_inputs_directly(interpret, photos):
    """The kernel itself loads bf16 (no cast in front of it) and accumulates in float32."""
    x, y = _photo_pair(photos, 17, 20, channels=2, distortion="noise")
    xb, yb = x.to(torch.bfloat16), y.to(torch.bfloat16)
    t = torch.arange(5.0) - 2
    w = torch.exp(-t * t / (2 * 1.5**2))
    w = w / w.sum()
    s, cs, smap = T.forward(xb, yb, w, 1e-4, 9e-4, 1.0, True)
    rs, rcs, rmap = T.forward(xb.float(), yb.float(), w, 1e-4, 9e-4, 1.0, True)
    assert s.dtype == cs.dtype == smap.dtype == torch.float32
    torch.testing.assert_close((s, cs, smap), (rs, rcs, rmap), rtol=0, atol=1e-6)
    g = torch.ones(1, 2)
    gx, gy = T.backward(xb, yb, w, 1e-4, 9e-4, 1.0, g, g, None, True, True)
    rgx, rgy = T.backward(xb.float(), yb.float(), w, 1e-4, 9e-4, 1.0, g, g, None, True, True)
    assert gx.dtype == gy.dtype == torch.bfloat16
    torch.testing.assert_close((gx.float(), gy.float()), (rgx.bfloat16().float(), rgy.bfloat16().float()), rtol=1e-2, atol=1e-5)


def test_ms_ssim(interpret, photos):
    """MS-SSIM on the fused kernel: per-scale CS terms, pooling between scales, gradients."""
    x, y = _photo_pair(photos, 36, 41, channels=1, distortion="blur")
    _compare(torchsim.ms_ssim, x, y, torch.float32, data_range=1.0, **F32, **MS_SMALL)


def test_gradcheck_float64(interpret):
    """The hand-written fused backward against finite differences (float64, fast mode)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 1, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    f = lambda a, b: torchsim.ssim(a, b, data_range=1.0, kernel_size=3, backend="triton")  # noqa: E731
    assert torch.autograd.gradcheck(f, (x, y), fast_mode=True)


def test_identical_constant_and_nan(interpret):
    """Identical images score 1; constant (zero-variance) images give finite gradients; NaN stays NaN."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 16, 17, generator=g)
    y = x.clone()
    x[1], y[1] = 0.25, 0.75  # constant images: every window has zero variance
    y[2, 0, 9, 4] = float("nan")
    xx, yy = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    out = torchsim.ssim(xx, yy, data_range=1.0, kernel_size=7, reduction="none", backend="triton")
    ref = torchsim.ssim(x, y, data_range=1.0, kernel_size=7, reduction="none")
    torch.testing.assert_close(out[:2], ref[:2])
    assert abs(out[0].item() - 1.0) < 1e-6 and torch.isnan(out[2])
    out[:2].sum().backward()
    assert torch.isfinite(xx.grad[:2]).all() and torch.isfinite(yy.grad[:2]).all()


def test_compile_fullgraph(interpret, photos):
    """The fused kernel is one opaque op under torch.compile(fullgraph=True) too."""
    torch._dynamo.reset()
    x, y = _photo_pair(photos, 12, 13, channels=1, distortion="noise")
    x, y = x.float(), y.float()
    f = lambda a, b: torchsim.ssim(a, b, data_range=1.0, kernel_size=3, backend="triton")  # noqa: E731
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    xc, xe = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    vc, ve = compiled(xc, y), f(xe, y)
    vc.backward()
    ve.backward()
    torch.testing.assert_close(vc, ve)
    torch.testing.assert_close(xc.grad, xe.grad)


# --------------------------------------------------------------------------- dispatch and errors


def test_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"ssim: backend='triton' runs on CUDA tensors, got a tensor on cpu.*TRITON_INTERPRET=1"):
        torchsim.ssim(x, x, data_range=1.0, backend="triton")
    with pytest.raises(ValueError, match=r"ms_ssim: backend='triton'"):
        torchsim.ms_ssim(x, x, data_range=1.0, backend="triton", **MS_SMALL)


def test_unknown_backend():
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"ssim: backend must be one of 'auto', 'torch', 'triton', got 'cuda'"):
        torchsim.ssim(x, x, data_range=1.0, backend="cuda")
    with pytest.raises(TypeError, match="SSIMLoss: unexpected keyword argument 'backends'"):
        torchsim.SSIMLoss(data_range=1.0, backends="triton")


def test_missing_triton_is_a_clear_error(interpret, monkeypatch):
    monkeypatch.setattr(T, "triton", None)
    x = torch.rand(1, 1, 16, 16)
    with pytest.raises(ImportError, match=r"ssim: backend='triton' needs the triton package"):
        torchsim.ssim(x, x, data_range=1.0, backend="triton")


def _forbid_fused(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("the fused kernel ran")

    monkeypatch.setattr(T, "forward", boom)
    monkeypatch.setattr(T, "backward", boom)


def test_auto_and_torch_never_run_the_fused_kernel(interpret, monkeypatch):
    _forbid_fused(monkeypatch)
    x, y = torch.rand(2, 3, 16, 17), torch.rand(2, 3, 16, 17)
    ref = torchsim.ssim(x, y, data_range=1.0)
    for backend in ("auto", "torch"):
        torch.testing.assert_close(torchsim.ssim(x, y, data_range=1.0, backend=backend), ref, rtol=0, atol=0)
    torchsim.SSIMLoss(data_range=1.0, backend="auto")(x.requires_grad_(True), y).backward()


def test_volumes_and_long_windows_fall_back(interpret, monkeypatch):
    """3-D volumes and windows over MAX_FUSED_KERNEL_SIZE taps use the reference kernel."""
    _forbid_fused(monkeypatch)
    v = torch.rand(1, 1, 12, 13, 14)
    torch.testing.assert_close(torchsim.ssim(v, v.flip(-1), data_range=1.0, kernel_size=5, backend="triton"),
                               torchsim.ssim(v, v.flip(-1), data_range=1.0, kernel_size=5))  # fmt: skip
    x = torch.rand(1, 1, 36, 36)
    torchsim.ssim(x, x.flip(-1), data_range=1.0, kernel_size=35, backend="triton")


def test_library_imports_without_triton():
    """torchsim imports and computes with triton unimportable; only backend='triton' complains."""
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, torchsim\n"
        "x = torch.rand(1, 1, 16, 16)\n"
        "assert torchsim.ssim(x, x, data_range=1.0).item() == 1.0\n"
        "try:\n"
        "    torchsim.ssim(x.cuda() if torch.cuda.is_available() else x, x, data_range=1.0, backend='triton')\n"
        "except (ImportError, ValueError) as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ImportError ssim: backend='triton' needs the triton package" in out.stdout


# --------------------------------------------------------------------------- CUDA (compiled kernels)

CUDA_CASES = {
    "gaussian-11": ((2, 3, 67, 131), dict()),
    "uniform-7-sample-cov": ((1, 2, 100, 93), dict(gaussian=False, kernel_size=7, sample_covariance=True)),
    "gaussian-3-per-image": ((2, 1, 45, 300), dict(kernel_size=3, data_range=torch.tensor([1.0, 2.0]))),
    "gaussian-31": ((1, 1, 140, 150), dict(kernel_size=31, sigma=5.0)),
    "map": ((2, 3, 64, 64), dict(return_map=True)),
}


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", list(CUDA_CASES), ids=list(CUDA_CASES))
def test_cuda_equals_reference(name, dtype):
    shape, kw = CUDA_CASES[name]
    kw = dict(kw)
    kw.setdefault("data_range", 1.0)
    if isinstance(kw["data_range"], torch.Tensor):
        kw["data_range"] = kw["data_range"].cuda()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.rand(*shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    x, y = x.to(dtype).cuda(), y.to(dtype).cuda()
    tol = {torch.float64: (dict(rtol=1e-9, atol=1e-9), 1e-8), torch.float32: (dict(rtol=2e-6, atol=2e-6), 2e-5)}
    vtol, grel = tol.get(dtype, (dict(rtol=1e-6, atol=1e-6), 1e-2))
    _compare(torchsim.ssim, x.double(), y.double(), dtype, vtol, grel, **kw)


@pytest.mark.cuda
def test_cuda_ms_ssim_and_compile():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 192, 200, generator=g).cuda()
    y = (x + 0.1 * torch.rand(x.shape, generator=g).cuda()).clamp(0, 1)
    _compare(torchsim.ms_ssim, x.double(), y.double(), torch.float32, dict(rtol=2e-6, atol=2e-6), 2e-5, data_range=1.0)
    torch._dynamo.reset()
    loss = torch.compile(torchsim.MSSSIMLoss(data_range=1.0, backend="triton"), fullgraph=True)
    xx = x.clone().requires_grad_(True)
    loss(xx, y).backward()
    xe = x.clone().requires_grad_(True)
    torchsim.MSSSIMLoss(data_range=1.0)(xe, y).backward()
    _assert_grad_close(xx.grad, xe.grad, 1e-4)
