"""CUDA: same numbers and gradients as on the CPU, dtype policy, autocast, per-image ranges, no syncs.

Every test here carries the ``cuda`` marker; tests/conftest.py skips them without a GPU.
"""

from __future__ import annotations

import pytest
import torch

import torchsim

pytestmark = pytest.mark.cuda

MS_SMALL = dict(kernel_size=3, weights=(0.3, 0.3, 0.4))

# (name, function, keyword arguments, image shape)
METRICS = [
    ("mse", torchsim.mse, {}, (2, 3, 32, 33)),
    ("psnr", torchsim.psnr, dict(data_range=1.0), (2, 3, 32, 33)),
    ("cosine_similarity", torchsim.cosine_similarity, {}, (2, 3, 32, 33)),
    ("ssim", torchsim.ssim, dict(data_range=1.0), (2, 3, 32, 33)),
    ("ssim-skimage", torchsim.ssim, dict(data_range=1.0, gaussian=False, kernel_size=7, sample_covariance=True), (2, 3, 32, 33)),
    ("ssim-downsample", torchsim.ssim, dict(data_range=1.0, downsample=True), (1, 3, 640, 650)),
    ("ssim-3d", torchsim.ssim, dict(data_range=1.0), (1, 2, 14, 15, 16)),
    ("ms_ssim", torchsim.ms_ssim, dict(data_range=1.0), (2, 3, 161, 170)),
    ("ms_ssim-small", torchsim.ms_ssim, dict(data_range=1.0, **MS_SMALL), (2, 3, 20, 21)),
]
IDS = [m[0] for m in METRICS]


def _pair(shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(*shape, generator=g, dtype=torch.float64)
    y = (x + 0.2 * (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5)).clamp(0, 1)
    return x.to(dtype), y.to(dtype)


def _value_and_grads(fn, x, y, **kw):
    x = x.detach().clone().requires_grad_(True)
    y = y.detach().clone().requires_grad_(True)
    v = fn(x, y, reduction="none", **kw)
    gx, gy = torch.autograd.grad(v.sum(), (x, y))
    return v.detach(), gx, gy


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name, fn, kw, shape", METRICS, ids=IDS)
def test_cuda_equals_cpu(name, fn, kw, shape, dtype):
    x, y = _pair(shape, dtype)
    v_cpu, gx_cpu, gy_cpu = _value_and_grads(fn, x, y, **kw)
    v, gx, gy = _value_and_grads(fn, x.cuda(), y.cuda(), **kw)
    assert v.device.type == "cuda" and v.dtype == dtype and gx.dtype == dtype
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v.cpu(), v_cpu, **tol)
    gtol = dict(rtol=1e-8, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(gx.cpu(), gx_cpu, **gtol)
    torch.testing.assert_close(gy.cpu(), gy_cpu, **gtol)


@pytest.mark.parametrize("name, fn, kw, shape", METRICS, ids=IDS)
def test_cuda_return_map(name, fn, kw, shape):
    if fn is not torchsim.ssim:
        pytest.skip("return_map is an ssim option")
    x, y = _pair(shape)
    v_cpu, m_cpu = fn(x, y, return_map=True, **kw)
    v, m = fn(x.cuda(), y.cuda(), return_map=True, **kw)
    torch.testing.assert_close(v.cpu(), v_cpu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.cpu(), m_cpu, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name, fn, kw, shape", METRICS, ids=IDS)
def test_cuda_half_computes_in_float32(name, fn, kw, shape, low):
    x, y = _pair(shape, torch.float32)
    xl, yl = x.to(low).cuda(), y.to(low).cuda()
    out = fn(xl, yl, reduction="none", **kw)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, fn(xl.float(), yl.float(), reduction="none", **kw), rtol=1e-5, atol=1e-6)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, fn, kw, shape", METRICS, ids=IDS)
def test_cuda_autocast(name, fn, kw, shape):
    x, y = _pair(shape, torch.float32)
    x, y = x.cuda(), y.cuda()
    ref = fn(x, y, reduction="none", **kw)
    for dt in (torch.float16, torch.bfloat16):
        with torch.autocast("cuda", dtype=dt):
            out = fn(x, y, reduction="none", **kw)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)


def test_cuda_autocast_gradient():
    x, y = _pair((2, 3, 32, 33), torch.float32)
    x, y = x.cuda(), y.cuda()
    _, g_ref, _ = _value_and_grads(torchsim.ssim, x, y, data_range=1.0)
    xx = x.clone().requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.float16):
        v = torchsim.ssim(xx, y, data_range=1.0)
    v.backward()
    torch.testing.assert_close(xx.grad, g_ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim", "psnr"])
def test_cuda_per_image_data_range(fn):
    f = getattr(torchsim, fn)
    kw = MS_SMALL if fn == "ms_ssim" else {}
    ranges = torch.tensor([1.0, 255.0, 3.0], dtype=torch.float64)
    x, y = _pair((3, 3, 24, 25))
    x, y = x * ranges.reshape(3, 1, 1, 1), y * ranges.reshape(3, 1, 1, 1)
    ref = f(x, y, data_range=ranges, reduction="none", **kw)
    out = f(x.cuda(), y.cuda(), data_range=ranges.cuda(), reduction="none", **kw)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-10, atol=1e-12)
    # a CPU scalar tensor range is fine with CUDA images
    torch.testing.assert_close(
        f(x.cuda(), y.cuda(), data_range=torch.tensor(255.0), reduction="none", **kw).cpu(),
        f(x, y, data_range=255.0, reduction="none", **kw),
        rtol=1e-10, atol=1e-12,
    )


def test_cuda_uint8():
    x, y = _pair((2, 3, 32, 33), torch.float32)
    xu, yu = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    for fn in (torchsim.ssim, torchsim.psnr, torchsim.mse, torchsim.cosine_similarity):
        torch.testing.assert_close(fn(xu.cuda(), yu.cuda()).cpu(), fn(xu, yu), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torchsim.rgb_to_y(xu.cuda()).cpu(), torchsim.rgb_to_y(xu), rtol=1e-6, atol=1e-4)


def test_cuda_degenerate_gradients_finite():
    c = torch.full((1, 3, 161, 161), 0.5, device="cuda", dtype=torch.float32)
    r = torch.rand(1, 3, 161, 161, device="cuda")
    for x, y in [(c, c.clone()), (c, torch.zeros_like(c)), (r, 1 - r), (r, r.clone())]:
        for fn in (torchsim.ssim, torchsim.ms_ssim, torchsim.psnr):
            xx = x.clone().requires_grad_(True)
            fn(xx, y, data_range=1.0).backward()
            assert torch.isfinite(xx.grad).all(), fn.__name__
        xx = torch.zeros_like(x).requires_grad_(True)
        torchsim.cosine_similarity(xx, y).backward()
        assert torch.isfinite(xx.grad).all()


@pytest.mark.parametrize("name, fn, kw, shape", [m for m in METRICS if m[0] != "ssim-downsample"], ids=[i for i in IDS if i != "ssim-downsample"])
def test_cuda_no_host_device_sync(name, fn, kw, shape):
    """SPEC: no host-device syncs in the hot path (forward and backward)."""
    x, y = _pair(shape, torch.float32)
    x = x.cuda().requires_grad_(True)
    y = y.cuda()
    fn(x, y, **kw).backward()  # warm-up: lazy CUDA/cuBLAS/cuDNN init may sync once
    x.grad = None
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = fn(x, y, **kw)
        out.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_cuda_compile_equals_eager():
    torch._dynamo.reset()
    x, y = _pair((2, 3, 32, 33), torch.float32)
    x, y = x.cuda(), y.cuda()
    compiled = torch.compile(torchsim.ssim, fullgraph=True)
    torch.testing.assert_close(compiled(x, y, data_range=1.0), torchsim.ssim(x, y, data_range=1.0), rtol=1e-5, atol=1e-6)


def test_cuda_channels_last():
    x, y = _pair((2, 3, 32, 33), torch.float32)
    x, y = x.cuda(), y.cuda()
    ref = torchsim.ssim(x, y, data_range=1.0, reduction="none")
    xc, yc = x.to(memory_format=torch.channels_last), y.to(memory_format=torch.channels_last)
    torch.testing.assert_close(torchsim.ssim(xc, yc, data_range=1.0, reduction="none"), ref, rtol=1e-5, atol=1e-6)


def test_cuda_modules_and_losses():
    x, y = _pair((2, 3, 32, 33), torch.float32)
    x, y = x.cuda(), y.cuda()
    m = torchsim.SSIM(data_range=1.0).cuda()
    torch.testing.assert_close(m(x, y), torchsim.ssim(x, y, data_range=1.0))
    loss = torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL).cuda()
    xx = x.clone().requires_grad_(True)
    out = loss(xx, y)
    out.backward()
    assert out.device.type == "cuda" and torch.isfinite(xx.grad).all()
    ref = torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL)(x.cpu(), y.cpu())
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-6)
