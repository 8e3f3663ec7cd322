"""SSIM / MS-SSIM behaviour: gradients, dtypes, layouts, autocast, compile, batching, reductions, devices.

Reference values live in tests/reference/test_ssim_reference.py; this file checks the
properties every call must have, on small synthetic images (fast).
"""

from __future__ import annotations

import pytest
import torch

import torchsim
from tests.helpers import (
    IDENTICAL,
    MS_SMALL,
    TOL,
    assert_autocast_computes_in_float32,
    assert_device_equals_cpu,
    assert_finite_gradients,
    assert_gradcheck,
    assert_half_computes_in_float32,
    assert_per_image_data_range_on_device,
    assert_uint8_on_device_equals_cpu,
    degenerate_pairs,
    metric_cases,
    pair,
    rand,
    value_and_grads,
)


# --------------------------------------------------------------------------- gradcheck (float64, tiny)


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(gaussian=False, kernel_size=7, sample_covariance=True),
        dict(kernel_size=5, sigma=0.8, k1=0.05, k2=0.1),
        dict(reduction="none"),
        dict(reduction="sum"),
    ],
    ids=["gaussian", "skimage-default", "options", "none", "sum"],
)
def test_ssim_gradcheck(kw):
    assert_gradcheck(lambda a, b: torchsim.ssim(a, b, data_range=1.0, **kw), *pair(1, 2, 13, 14))


@pytest.mark.slow
def test_ssim_gradcheck_return_map():
    # both outputs at once: the value and every element of the map
    assert_gradcheck(lambda a, b: torchsim.ssim(a, b, data_range=1.0, return_map=True), *pair(1, 1, 13, 14, seed=3))


def test_ssim_gradcheck_per_image_data_range():
    x, y = pair(2, 1, 12, 13, seed=5)
    x = x * torch.tensor([1.0, 3.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    y = y * torch.tensor([1.0, 3.0], dtype=torch.float64).reshape(2, 1, 1, 1)
    dr = torch.tensor([1.0, 3.0], dtype=torch.float64)
    assert_gradcheck(lambda a, b: torchsim.ssim(a, b, data_range=dr, reduction="none"), x, y)


def test_ssim_gradcheck_volume():
    assert_gradcheck(lambda a, b: torchsim.ssim(a, b, data_range=1.0, kernel_size=5), *pair(1, 1, 6, 7, 8, seed=7))


def test_ssim_gradcheck_downsample():
    """downsample=True needs min side >= 384 for f = 2; fast_mode keeps it cheap."""
    x, y = pair(1, 1, 384, 387, seed=9)
    assert_gradcheck(lambda a, b: torchsim.ssim(a, b, data_range=1.0, downsample=True), x, y, fast_mode=True)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 2, 11, 12), (2, 1, 9, 10)])
def test_ms_ssim_gradcheck(shape):
    x, y = pair(*shape, seed=11, noise=0.1)
    assert_gradcheck(lambda a, b: torchsim.ms_ssim(a, b, data_range=1.0, reduction="none", **MS_SMALL), x, y)


def test_ms_ssim_gradcheck_volume_and_data_range():
    x, y = pair(2, 1, 9, 10, 9, seed=13, noise=0.1)
    dr = torch.tensor([1.0, 1.5], dtype=torch.float64)
    fn = lambda a, b: torchsim.ms_ssim(a, b, data_range=dr, reduction="sum", **MS_SMALL)  # noqa: E731
    assert_gradcheck(fn, x, y, fast_mode=True)
    # full mode on a small volume with two scales (min side (3 - 1) * 2 + 1 = 5)
    x2, y2 = pair(1, 1, 6, 7, 5, seed=17, noise=0.1)
    assert_gradcheck(lambda a, b: torchsim.ms_ssim(a, b, data_range=1.0, kernel_size=3, weights=(0.4, 0.6)), x2, y2)


# --------------------------------------------------------------------------- finite gradients on degenerate images

DEGENERATE = sorted(degenerate_pairs(1, 1, 2, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", DEGENERATE)
@pytest.mark.parametrize(
    "kw", [dict(), dict(gaussian=False, kernel_size=7, sample_covariance=True)], ids=["gaussian", "uniform"]
)
def test_ssim_finite_gradients(case, kw, dtype, device):
    x, y = degenerate_pairs(1, 3, 32, 33, dtype=dtype, device=device)[case]
    out, gx, gy = assert_finite_gradients(torchsim.ssim, x, y, data_range=1.0, **kw)
    if case in IDENTICAL:
        # identical images: SSIM is at its maximum 1, so its gradient vanishes
        torch.testing.assert_close(out, torch.ones((), dtype=dtype, device=device))
        torch.testing.assert_close(gx, torch.zeros_like(gx), **TOL["zero_grad"][dtype])
    assert_finite_gradients(torchsim.ssim, x, y, data_range=1.0, return_map=True, **kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", DEGENERATE)
def test_ms_ssim_finite_gradients(case, dtype, device):
    x, y = degenerate_pairs(1, 3, 32, 33, dtype=dtype, device=device)[case]
    out, gx, gy = assert_finite_gradients(torchsim.ms_ssim, x, y, data_range=1.0, **MS_SMALL)
    if case in IDENTICAL:
        torch.testing.assert_close(out, torch.ones((), dtype=dtype, device=device))
        torch.testing.assert_close(gx, torch.zeros_like(gx), **TOL["zero_grad"][dtype])


def test_ms_ssim_negative_cs_clamped_with_finite_gradient(device):
    """x against 1 - x at the default size: negative cs terms clamp to 0, the value is 0, the gradient finite."""
    x = rand(1, 1, 161, 161, seed=1, device=device)
    ms, gx, gy = assert_finite_gradients(torchsim.ms_ssim, x, 1 - x, data_range=1.0)
    assert 0.0 <= ms.item() < 0.2
    # and in float32 (the pow of a clamped zero must not give NaN there either)
    assert_finite_gradients(torchsim.ms_ssim, x.float(), 1 - x.float(), data_range=1.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_ms_ssim_default_size_identical_and_constant(dtype, device):
    x = rand(2, 3, 161, 170, dtype=dtype, device=device)
    out, gx, _ = assert_finite_gradients(torchsim.ms_ssim, x, x.clone(), data_range=1.0)
    torch.testing.assert_close(out, torch.ones((), dtype=dtype, device=device))
    torch.testing.assert_close(gx, torch.zeros_like(gx), **TOL["zero_grad"][dtype])
    c = torch.full((1, 1, 161, 161), 0.25, dtype=dtype, device=device)
    assert_finite_gradients(torchsim.ms_ssim, c, c.clone(), data_range=1.0)
    assert_finite_gradients(torchsim.ms_ssim, c, torch.zeros_like(c), data_range=1.0)


# --------------------------------------------------------------------------- values that follow from the definition


def test_identical_is_one_and_symmetric():
    x, y = pair(3, 3, 24, 25, dtype=torch.float32)
    torch.testing.assert_close(torchsim.ssim(x, x, data_range=1.0, reduction="none"), torch.ones(3))
    torch.testing.assert_close(
        torchsim.ssim(x, y, data_range=1.0, reduction="none"), torchsim.ssim(y, x, data_range=1.0, reduction="none")
    )
    v = torchsim.ssim(x, y, data_range=1.0, reduction="none")
    assert ((v > 0) & (v < 1)).all()
    xs, ys = pair(2, 1, 20, 21, dtype=torch.float32)
    torch.testing.assert_close(torchsim.ms_ssim(xs, xs, data_range=1.0, **MS_SMALL), torch.tensor(1.0))


def test_channels_scored_separately_and_averaged():
    x, y = pair(2, 3, 20, 22)
    per_channel = torch.stack(
        [torchsim.ssim(x[:, c : c + 1], y[:, c : c + 1], data_range=1.0, reduction="none") for c in range(3)], 1
    )
    torch.testing.assert_close(torchsim.ssim(x, y, data_range=1.0, reduction="none"), per_channel.mean(1))
    _, smap = torchsim.ssim(x, y, data_range=1.0, return_map=True)
    assert smap.shape == (2, 3, 10, 12)
    torch.testing.assert_close(smap.mean((2, 3)), per_channel)


def test_return_map_shapes_and_mean():
    x, y = pair(2, 3, 20, 23)
    for kw, valid in [(dict(), (10, 13)), (dict(kernel_size=7, gaussian=False), (14, 17)), (dict(kernel_size=3), (18, 21))]:
        value, smap = torchsim.ssim(x, y, data_range=1.0, return_map=True, reduction="none", **kw)
        assert smap.shape == (2, 3, *valid)
        torch.testing.assert_close(smap.mean((1, 2, 3)), value)
        assert value.shape == (2,)
    value, smap = torchsim.ssim(x, y, data_range=1.0, return_map=True)
    assert value.shape == () and smap.shape == (2, 3, 10, 13)


def test_data_range_scales():
    """SSIM is invariant to scaling the images and data_range together."""
    x, y = pair(2, 3, 20, 21)
    ref = torchsim.ssim(x, y, data_range=1.0, reduction="none")
    torch.testing.assert_close(torchsim.ssim(255 * x, 255 * y, data_range=255.0, reduction="none"), ref)
    torch.testing.assert_close(torchsim.ssim(255 * x, 255 * y, data_range=255, reduction="none"), ref)  # int
    scaled = torchsim.ssim(x, y, data_range=torch.tensor([1.0, 1.0], dtype=torch.float64), reduction="none")
    torch.testing.assert_close(scaled, ref)
    torch.testing.assert_close(torchsim.ssim(x, y, data_range=torch.tensor(1.0), reduction="none"), ref)


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_per_image_data_range_equals_scalar_calls(fn):
    ranges = [1.0, 255.0, 4.0]
    x, y = pair(3, 2, 20, 21)
    r = torch.tensor(ranges, dtype=torch.float64).reshape(3, 1, 1, 1)
    x, y = x * r, y * r
    f = getattr(torchsim, fn)
    kw = MS_SMALL if fn == "ms_ssim" else {}
    batched = f(x, y, data_range=torch.tensor(ranges), reduction="none", **kw)
    single = torch.cat([f(x[i : i + 1], y[i : i + 1], data_range=v, reduction="none", **kw) for i, v in enumerate(ranges)])
    torch.testing.assert_close(batched, single, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- reductions and batching


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_reductions_and_batch_equals_single_calls(fn):
    f = getattr(torchsim, fn)
    kw = dict(data_range=1.0, **(MS_SMALL if fn == "ms_ssim" else {}))
    x, y = pair(4, 3, 21, 22, dtype=torch.float32)
    none = f(x, y, reduction="none", **kw)
    assert none.shape == (4,)
    single = torch.cat([f(x[i : i + 1], y[i : i + 1], reduction="none", **kw) for i in range(4)])
    torch.testing.assert_close(none, single, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f(x, y, reduction="mean", **kw), none.mean())
    torch.testing.assert_close(f(x, y, **kw), none.mean())
    torch.testing.assert_close(f(x, y, reduction="sum", **kw), none.sum())
    assert f(x, y, **kw).shape == ()


# --------------------------------------------------------------------------- dtypes, layouts, autocast, no_grad


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_half_inputs_compute_in_float32(fn, low):
    f = getattr(torchsim, fn)
    kw = dict(data_range=1.0, **(MS_SMALL if fn == "ms_ssim" else {}))
    x, y = pair(2, 3, 24, 25, dtype=torch.float32)
    xl, yl = x.to(low), y.to(low)
    out = f(xl, yl, **kw)
    assert out.dtype == torch.float32
    # exactly the float32 computation on the same values
    torch.testing.assert_close(out, f(xl.float(), yl.float(), **kw), rtol=1e-6, atol=1e-6)
    # and close to the float32 result on the unrounded images
    tol = 2e-2 if low == torch.bfloat16 else 2e-3
    torch.testing.assert_close(out, f(x, y, **kw), rtol=tol, atol=tol)
    if fn == "ssim":
        value, smap = f(xl, yl, return_map=True, **kw)
        assert value.dtype == smap.dtype == torch.float32


def test_half_gradients_are_half_and_finite():
    x, y = pair(1, 3, 24, 25, dtype=torch.float32)
    xh = x.half().requires_grad_(True)
    torchsim.ssim(xh, y.half(), data_range=1.0).backward()
    assert xh.grad.dtype == torch.float16 and torch.isfinite(xh.grad).all()


def test_float64_stays_float64():
    x, y = pair(2, 3, 20, 21)
    x.requires_grad_(True)
    v, smap = torchsim.ssim(x, y, data_range=1.0, return_map=True)
    assert v.dtype == smap.dtype == torch.float64
    v.backward()
    assert x.grad.dtype == torch.float64
    assert torchsim.ms_ssim(x, y, data_range=1.0, **MS_SMALL).dtype == torch.float64
    # the float64 result is not a float32 computation in disguise
    assert (torchsim.ssim(x, y, data_range=1.0) - torchsim.ssim(x.float(), y.float(), data_range=1.0).double()).abs() > 0


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_uint8_is_0_255(fn):
    f = getattr(torchsim, fn)
    kw = MS_SMALL if fn == "ms_ssim" else {}
    x, y = pair(2, 3, 24, 25, dtype=torch.float32)
    xu = (x * 255).round().to(torch.uint8)
    yu = (y * 255).round().to(torch.uint8)
    out = f(xu, yu, reduction="none", **kw)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, f(xu.float(), yu.float(), data_range=255.0, reduction="none", **kw))
    torch.testing.assert_close(out, f(xu, yu, data_range=255, reduction="none", **kw))
    torch.testing.assert_close(out, f(xu.float() / 255, yu.float() / 255, data_range=1.0, reduction="none", **kw))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_autocast_gives_the_same(fn, dtype):
    f = getattr(torchsim, fn)
    kw = dict(data_range=1.0, **(MS_SMALL if fn == "ms_ssim" else {}))
    x, y = pair(2, 3, 24, 25, dtype=dtype)
    ref = f(x, y, **kw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = f(x, y, **kw)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_autocast_gradient_matches():
    """The usual AMP pattern: forward under autocast, backward outside it."""
    x, y = pair(1, 3, 24, 25, dtype=torch.float32)
    _, g_ref, _ = value_and_grads(torchsim.ssim, x, y, data_range=1.0)
    xx = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        v = torchsim.ssim(xx, y, data_range=1.0)
    v.backward()
    torch.testing.assert_close(xx.grad, g_ref, rtol=0, atol=0)


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_autocast_gradient_matches_with_backward_inside_autocast(fn):
    """backward() called inside the autocast region must not lower the precision of the gradient."""
    f = getattr(torchsim, fn)
    kw = dict(data_range=1.0, **(MS_SMALL if fn == "ms_ssim" else {}))
    x, y = pair(1, 3, 24, 25, dtype=torch.float32)
    _, g_ref, _ = value_and_grads(f, x, y, **kw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, g, _ = value_and_grads(f, x, y, **kw)
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_channels_last(fn):
    f = getattr(torchsim, fn)
    kw = dict(data_range=1.0, reduction="none", **(MS_SMALL if fn == "ms_ssim" else {}))
    x, y = pair(2, 3, 24, 25, dtype=torch.float32)
    xc, yc = x.to(memory_format=torch.channels_last), y.to(memory_format=torch.channels_last)
    assert xc.is_contiguous(memory_format=torch.channels_last) and not xc.is_contiguous()
    torch.testing.assert_close(f(xc, yc, **kw), f(x, y, **kw), rtol=1e-6, atol=1e-6)
    _, g, _ = value_and_grads(f, xc, yc, **kw)
    _, g_ref, _ = value_and_grads(f, x, y, **kw)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-7)


def test_channels_last_3d_and_non_contiguous():
    x, y = pair(1, 2, 12, 13, 14, dtype=torch.float32)
    ref = torchsim.ssim(x, y, data_range=1.0)
    cl = torchsim.ssim(
        x.to(memory_format=torch.channels_last_3d), y.to(memory_format=torch.channels_last_3d), data_range=1.0
    )
    torch.testing.assert_close(cl, ref)
    x2, y2 = pair(2, 3, 30, 40, dtype=torch.float32)
    sl = torchsim.ssim(x2[:, :, ::2, 1::2], y2[:, :, ::2, 1::2], data_range=1.0)
    torch.testing.assert_close(
        sl, torchsim.ssim(x2[:, :, ::2, 1::2].contiguous(), y2[:, :, ::2, 1::2].contiguous(), data_range=1.0)
    )
    tr = x2.transpose(2, 3)
    torch.testing.assert_close(
        torchsim.ssim(tr, y2.transpose(2, 3), data_range=1.0),
        torchsim.ssim(tr.contiguous(), y2.transpose(2, 3).contiguous(), data_range=1.0),
    )


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_no_grad(fn):
    f = getattr(torchsim, fn)
    kw = dict(data_range=1.0, **(MS_SMALL if fn == "ms_ssim" else {}))
    x, y = pair(2, 3, 24, 25, dtype=torch.float32)
    x.requires_grad_(True)
    ref = f(x, y, **kw)
    assert ref.requires_grad
    with torch.no_grad():
        out = f(x, y, **kw)
    assert not out.requires_grad
    torch.testing.assert_close(out, ref.detach())
    with torch.inference_mode():
        torch.testing.assert_close(f(x.detach(), y, **kw), ref.detach())


def test_gradient_only_for_the_input_that_needs_it():
    x, y = pair(1, 3, 24, 25, dtype=torch.float32)
    x.requires_grad_(True)
    torchsim.ssim(x, y, data_range=1.0).backward()
    assert x.grad is not None and y.grad is None
    y2 = y.clone().requires_grad_(True)
    torchsim.ssim(x.detach(), y2, data_range=1.0).backward()
    assert y2.grad is not None


def test_double_call_reuses_nothing_between_calls():
    """Two calls with different options give different results (no cached window leaks across calls)."""
    x, y = pair(1, 1, 24, 25, dtype=torch.float32)
    a = torchsim.ssim(x, y, data_range=1.0, kernel_size=7)
    b = torchsim.ssim(x, y, data_range=1.0, kernel_size=7, gaussian=False)
    c = torchsim.ssim(x, y, data_range=1.0, kernel_size=7)
    assert a != b
    torch.testing.assert_close(a, c, rtol=0, atol=0)


# --------------------------------------------------------------------------- every device (CUDA: the same tests)

SSIM_CASES = metric_cases(torchsim.ssim, torchsim.ms_ssim)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name, fn, kw, shape", SSIM_CASES)
def test_device_equals_cpu(name, fn, kw, shape, dtype, device):
    assert_device_equals_cpu(fn, kw, shape, dtype, device)


@pytest.mark.parametrize("name, fn, kw, shape", metric_cases(torchsim.ssim))
def test_return_map_on_device_equals_cpu(name, fn, kw, shape, device):
    x, y = pair(*shape)
    v_cpu, m_cpu = fn(x, y, return_map=True, **kw)
    v, m = fn(x.to(device), y.to(device), return_map=True, **kw)
    torch.testing.assert_close(v.cpu(), v_cpu, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(m.cpu(), m_cpu, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name, fn, kw, shape", SSIM_CASES)
def test_half_inputs_on_device_compute_in_float32(name, fn, kw, shape, low, device):
    assert_half_computes_in_float32(fn, kw, shape, low, device)


@pytest.mark.parametrize("name, fn, kw, shape", SSIM_CASES)
def test_autocast_on_device(name, fn, kw, shape, device):
    assert_autocast_computes_in_float32(fn, kw, shape, device)


def test_autocast_gradient_on_device(device):
    """float16 autocast around the forward, backward outside it: the float32 gradient."""
    x, y = pair(2, 3, 32, 33, dtype=torch.float32, device=device)
    _, g_ref, _ = value_and_grads(torchsim.ssim, x, y, data_range=1.0)
    xx = x.clone().requires_grad_(True)
    with torch.autocast(device.type, dtype=torch.float16):
        v = torchsim.ssim(xx, y, data_range=1.0)
    v.backward()
    torch.testing.assert_close(xx.grad, g_ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("fn", ["ssim", "ms_ssim"])
def test_per_image_data_range_on_device(fn, device):
    assert_per_image_data_range_on_device(getattr(torchsim, fn), MS_SMALL if fn == "ms_ssim" else {}, device)


def test_uint8_on_device(device):
    assert_uint8_on_device_equals_cpu(torchsim.ssim, device)


def test_channels_last_on_device(device):
    x, y = pair(2, 3, 32, 33, dtype=torch.float32, device=device)
    ref = torchsim.ssim(x, y, data_range=1.0, reduction="none")
    xc, yc = x.to(memory_format=torch.channels_last), y.to(memory_format=torch.channels_last)
    torch.testing.assert_close(torchsim.ssim(xc, yc, data_range=1.0, reduction="none"), ref, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- torch.compile


@pytest.mark.slow
@pytest.mark.parametrize(
    "fn, kw",
    [
        ("ssim", dict(data_range=1.0)),
        ("ssim", dict(data_range=None, return_map=True)),  # None: a per-image tensor range, set below
        ("ms_ssim", dict(data_range=1.0, **MS_SMALL)),
    ],
    ids=["ssim", "ssim-map-tensor-range", "ms_ssim"],
)
def test_compile_fullgraph_equals_eager(fn, kw):
    """aot_eager exercises Dynamo + AOTAutograd (no graph breaks) without inductor's C++ build time.

    ``torch.compile(torchsim.ssim, fullgraph=True)`` with the default inductor backend also
    works and matches eager (checked locally; ~20 s to compile on 2 CPU cores, so not in CI).
    """
    torch._dynamo.reset()
    f = getattr(torchsim, fn)
    x, y = pair(2, 3, 24, 25, dtype=torch.float32)
    if kw["data_range"] is None:
        kw = dict(kw, data_range=torch.tensor([1.0, 2.0]))
    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)

    def value_and_grad(g):
        xx = x.clone().requires_grad_(True)
        out = g(xx, y, **kw)
        v = out[0] + out[1].mean() if isinstance(out, tuple) else out
        (gx,) = torch.autograd.grad(v, xx)
        return v.detach(), gx

    v_c, g_c = value_and_grad(compiled)
    v_e, g_e = value_and_grad(f)
    torch.testing.assert_close(v_c, v_e)
    torch.testing.assert_close(g_c, g_e)
    with torch.no_grad():
        out = compiled(x, y, **kw)
        ref = f(x, y, **kw)
    if isinstance(out, tuple):
        torch.testing.assert_close(out[1], ref[1])
        out, ref = out[0], ref[0]
    torch.testing.assert_close(out, ref)
