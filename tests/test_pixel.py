"""mse, psnr, cosine_similarity and rgb_to_y: gradients, degenerate images, dtypes, layouts, batching, devices."""

from __future__ import annotations

import math

import pytest
import torch

import torchsim
from tests.helpers import (
    IDENTICAL,
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


# (name, callable taking (x, y, **kw), kwargs) for the pair metrics
PAIR = {
    "mse": (torchsim.mse, {}),
    "psnr": (torchsim.psnr, dict(data_range=1.0)),
    "cosine_similarity": (torchsim.cosine_similarity, {}),
}


# --------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("reduction", ["mean", "none", "sum"])
@pytest.mark.parametrize("name", sorted(PAIR))
def test_gradcheck(name, reduction, device):
    fn, kw = PAIR[name]
    assert_gradcheck(lambda a, b: fn(a, b, reduction=reduction, **kw), *pair(2, 2, 5, 6, device=device))


def test_psnr_gradcheck_per_image_data_range(device):
    dr = torch.tensor([1.0, 2.0, 255.0], dtype=torch.float64, device=device)
    assert_gradcheck(lambda a, b: torchsim.psnr(a, b, data_range=dr, reduction="none"), *pair(3, 1, 4, 5, device=device))


def test_cosine_gradcheck_signed_values(device):
    x, y = pair(2, 3, 4, 5, device=device)
    assert_gradcheck(lambda a, b: torchsim.cosine_similarity(a, b, reduction="none"), x - 0.5, y - 0.3)


@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_rgb_to_y_gradcheck(data_range, device):
    x = rand(2, 3, 4, 5, device=device) * data_range
    assert_gradcheck(lambda a: torchsim.rgb_to_y(a, data_range=data_range), x)
    dr = torch.tensor([1.0, 255.0], dtype=torch.float64, device=device)
    assert_gradcheck(lambda a: torchsim.rgb_to_y(a, data_range=dr), x)


def test_mse_volume_gradcheck(device):
    x, y = pair(1, 2, 3, 4, 5, device=device)
    assert_gradcheck(lambda a: torchsim.mse(a, y), x)


# --------------------------------------------------------------------------- degenerate images


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_psnr_identical_is_inf_with_zero_finite_gradient(dtype):
    x = rand(2, 3, 8, 9, dtype=dtype)
    out, g, _ = value_and_grads(torchsim.psnr, x, x.clone(), data_range=1.0, reduction="none")
    assert torch.isinf(out).all() and (out > 0).all()
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, torch.zeros_like(g), rtol=0, atol=0)
    # one identical image in a batch: inf only for that one, the other gradient is untouched
    y = x.clone()
    y[1] = (y[1] + 0.1).clamp(0, 1)
    out, g, _ = value_and_grads(torchsim.psnr, x, y, data_range=1.0, reduction="none")
    assert math.isinf(out[0].item()) and math.isfinite(out[1].item())
    assert torch.isfinite(g).all() and (g[0] == 0).all() and (g[1] != 0).any()
    # mean over a batch containing an identical pair is +inf (as averaging per-image PSNRs gives)
    assert torchsim.psnr(x, y, data_range=1.0).item() == float("inf")


DEGENERATE = sorted(degenerate_pairs(1, 1, 2, 2))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name", sorted(PAIR))
@pytest.mark.parametrize("case", DEGENERATE)
def test_finite_gradients_on_degenerate_images(name, case, dtype, device):
    fn, kw = PAIR[name]
    x, y = degenerate_pairs(1, 3, 8, 9, dtype=dtype, device=device)[case]
    # PSNR of identical images is +inf by definition; every other value is finite
    assert_finite_gradients(fn, x, y, finite_value=name != "psnr" or case not in IDENTICAL, **kw)


def test_cosine_all_zero_is_zero_not_nan():
    zeros = torch.zeros(2, 3, 4, 5)
    r = rand(2, 3, 4, 5, dtype=torch.float32)
    for a, b in [(zeros, r), (r, zeros), (zeros, zeros)]:
        out, g, _ = value_and_grads(torchsim.cosine_similarity, a, b, reduction="none")
        torch.testing.assert_close(out, torch.zeros(2))
        assert torch.isfinite(g).all()


def test_known_values():
    x = torch.zeros(1, 1, 4, 4)
    y = torch.full((1, 1, 4, 4), 0.1)
    torch.testing.assert_close(torchsim.mse(x, y), torch.tensor(0.01))
    torch.testing.assert_close(torchsim.psnr(x, y, data_range=1.0), torch.tensor(20.0))
    torch.testing.assert_close(torchsim.psnr(255 * x, 255 * y, data_range=255.0), torch.tensor(20.0))
    a = torch.tensor([1.0, 0.0]).reshape(1, 1, 1, 2)
    b = torch.tensor([1.0, 1.0]).reshape(1, 1, 1, 2)
    torch.testing.assert_close(torchsim.cosine_similarity(a, b), torch.tensor(1 / math.sqrt(2)))
    torch.testing.assert_close(torchsim.cosine_similarity(a, -a), torch.tensor(-1.0))
    torch.testing.assert_close(torchsim.cosine_similarity(a, 3 * a), torch.tensor(1.0))


# --------------------------------------------------------------------------- reductions and batching


@pytest.mark.parametrize("name", sorted(PAIR))
def test_reductions_and_batch_equals_single_calls(name):
    fn, kw = PAIR[name]
    x, y = pair(4, 3, 10, 11, dtype=torch.float32)
    none = fn(x, y, reduction="none", **kw)
    assert none.shape == (4,)
    single = torch.cat([fn(x[i : i + 1], y[i : i + 1], reduction="none", **kw) for i in range(4)])
    torch.testing.assert_close(none, single)
    torch.testing.assert_close(fn(x, y, **kw), none.mean())
    torch.testing.assert_close(fn(x, y, reduction="mean", **kw), none.mean())
    torch.testing.assert_close(fn(x, y, reduction="sum", **kw), none.sum())
    assert fn(x, y, **kw).shape == ()


def test_rgb_to_y_batch_and_shape():
    x = rand(3, 3, 6, 7, dtype=torch.float32)
    y = torchsim.rgb_to_y(x, data_range=1.0)
    assert y.shape == (3, 1, 6, 7) and y.dtype == torch.float32
    single = torch.cat([torchsim.rgb_to_y(x[i : i + 1], data_range=1.0) for i in range(3)])
    torch.testing.assert_close(y, single)


# --------------------------------------------------------------------------- dtypes, layouts, autocast, no_grad, compile


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", sorted(PAIR))
def test_half_inputs_compute_in_float32(name, low):
    fn, kw = PAIR[name]
    x, y = pair(2, 3, 16, 17, dtype=torch.float32)
    xl, yl = x.to(low), y.to(low)
    out = fn(xl, yl, reduction="none", **kw)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, fn(xl.float(), yl.float(), reduction="none", **kw))
    tol = {"mse": 5e-2, "psnr": 5e-2, "cosine_similarity": 1e-2}[name]
    torch.testing.assert_close(out, fn(x, y, reduction="none", **kw), rtol=tol, atol=tol)


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=str)
def test_rgb_to_y_half(low):
    x = rand(2, 3, 6, 7, dtype=torch.float32)
    out = torchsim.rgb_to_y(x.to(low), data_range=1.0)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torchsim.rgb_to_y(x.to(low).float(), data_range=1.0))


def test_half_mse_does_not_overflow():
    """A float16 error of 300 squares to 9e4 > 65504: computed in float32 it is exact."""
    x = torch.zeros(1, 1, 4, 4, dtype=torch.float16)
    y = torch.full((1, 1, 4, 4), 300.0, dtype=torch.float16)
    torch.testing.assert_close(torchsim.mse(x, y), torch.tensor(90000.0))
    torch.testing.assert_close(torchsim.psnr(x, y, data_range=255.0), torch.tensor(10 * math.log10(255.0**2 / 9e4)))


@pytest.mark.parametrize("name", sorted(PAIR))
def test_float64_stays_float64(name):
    fn, kw = PAIR[name]
    x, y = pair(2, 3, 8, 9)
    out, g, _ = value_and_grads(fn, x, y, **kw)
    assert out.dtype == torch.float64 and g.dtype == torch.float64
    assert torchsim.rgb_to_y(x, data_range=1.0).dtype == torch.float64


@pytest.mark.parametrize("name", sorted(PAIR))
def test_uint8_is_0_255(name):
    fn, kw = PAIR[name]
    kw = {k: v for k, v in kw.items() if k != "data_range"}  # uint8 default is 255
    x, y = pair(2, 3, 8, 9, dtype=torch.float32)
    xu, yu = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    out = fn(xu, yu, reduction="none", **kw)
    assert out.dtype == torch.float32
    fkw = dict(kw, data_range=255.0) if name == "psnr" else kw
    torch.testing.assert_close(out, fn(xu.float(), yu.float(), reduction="none", **fkw))
    if name == "mse":
        # no uint8 wrap-around: 0 - 255 is -255, not 1
        a = torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
        torch.testing.assert_close(fn(a, a + 255), torch.tensor(255.0**2))


def test_rgb_to_y_uint8_default_range():
    x = (rand(1, 3, 5, 6, dtype=torch.float32) * 255).round().to(torch.uint8)
    torch.testing.assert_close(torchsim.rgb_to_y(x), torchsim.rgb_to_y(x.float(), data_range=255.0))


@pytest.mark.parametrize("name", sorted(PAIR))
def test_autocast_channels_last_no_grad(name):
    fn, kw = PAIR[name]
    x, y = pair(2, 3, 8, 9, dtype=torch.float32)
    ref = fn(x, y, reduction="none", **kw)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = fn(x, y, reduction="none", **kw)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    xc, yc = x.to(memory_format=torch.channels_last), y.to(memory_format=torch.channels_last)
    torch.testing.assert_close(fn(xc, yc, reduction="none", **kw), ref)
    xr = x.clone().requires_grad_(True)
    with torch.no_grad():
        out = fn(xr, y, reduction="none", **kw)
    assert not out.requires_grad
    torch.testing.assert_close(out, ref)


def test_rgb_to_y_autocast_and_channels_last():
    x = rand(2, 3, 6, 7, dtype=torch.float32)
    ref = torchsim.rgb_to_y(x, data_range=1.0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torchsim.rgb_to_y(x, data_range=1.0)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    torch.testing.assert_close(torchsim.rgb_to_y(x.to(memory_format=torch.channels_last), data_range=1.0), ref)


@pytest.mark.slow
def test_compile_fullgraph_equals_eager():
    torch._dynamo.reset()
    x, y = pair(2, 3, 8, 9, dtype=torch.float32)
    for name, (fn, kw) in sorted(PAIR.items()):
        compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
        torch.testing.assert_close(compiled(x, y, reduction="none", **kw), fn(x, y, reduction="none", **kw))
    compiled = torch.compile(torchsim.rgb_to_y, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, data_range=1.0), torchsim.rgb_to_y(x, data_range=1.0))
    # identical images under compile: +inf, not NaN
    psnr_c = torch.compile(torchsim.psnr, backend="aot_eager", fullgraph=True)
    assert psnr_c(x, x, data_range=1.0).item() == float("inf")


def test_psnr_of_nan_is_nan_not_a_perfect_score():
    x = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    y = x.clone()
    y[0, 0, 0, 0] = float("nan")
    v = torchsim.psnr(x, y, data_range=1.0, reduction="none")
    assert torch.isnan(v[0]) and v[1] == float("inf")


def test_ssim_promotes_mixed_float_dtypes():
    x = torch.rand(1, 2, 24, 24)
    expected = torchsim.ssim(x.double(), x.double().flip(-1), data_range=1.0)
    got = torchsim.ssim(x, x.double().flip(-1), data_range=1.0)
    assert got.dtype == torch.float64 and torch.allclose(got, expected)


# --------------------------------------------------------------------------- every device (CUDA: the same tests)

PIXEL_CASES = metric_cases(torchsim.mse, torchsim.psnr, torchsim.cosine_similarity)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name, fn, kw, shape", PIXEL_CASES)
def test_device_equals_cpu(name, fn, kw, shape, dtype, device):
    assert_device_equals_cpu(fn, kw, shape, dtype, device)


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name, fn, kw, shape", PIXEL_CASES)
def test_half_inputs_on_device_compute_in_float32(name, fn, kw, shape, low, device):
    assert_half_computes_in_float32(fn, kw, shape, low, device)


@pytest.mark.parametrize("name, fn, kw, shape", PIXEL_CASES)
def test_autocast_on_device(name, fn, kw, shape, device):
    assert_autocast_computes_in_float32(fn, kw, shape, device)


def test_psnr_per_image_data_range_on_device(device):
    assert_per_image_data_range_on_device(torchsim.psnr, {}, device)


def test_uint8_on_device(device):
    for fn in (torchsim.psnr, torchsim.mse, torchsim.cosine_similarity):
        assert_uint8_on_device_equals_cpu(fn, device)
    xu = (rand(2, 3, 32, 33, dtype=torch.float32) * 255).round().to(torch.uint8)
    torch.testing.assert_close(torchsim.rgb_to_y(xu.to(device)).cpu(), torchsim.rgb_to_y(xu), rtol=1e-6, atol=1e-4)


# --------------------------------------------------------------------------- psnr_pooled


def test_psnr_pooled_gradcheck():
    x, y = pair(3, 2, 4, 5)
    assert_gradcheck(lambda a, b: torchsim.psnr_pooled(a, b, data_range=1.0), x, y)
    dr = torch.tensor([1.0, 2.0, 255.0], dtype=torch.float64)
    assert_gradcheck(lambda a, b: torchsim.psnr_pooled(a, b, data_range=dr), x, y)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", DEGENERATE)
def test_psnr_pooled_finite_gradients_on_degenerate_images(case, dtype, device):
    x, y = degenerate_pairs(2, 3, 8, 9, dtype=dtype, device=device)[case]
    out, gx, gy = assert_finite_gradients(torchsim.psnr_pooled, x, y, finite_value=case not in IDENTICAL, data_range=1.0)
    assert out.dim() == 0
    if case in IDENTICAL:
        assert out.item() == math.inf and (gx == 0).all() and (gy == 0).all()
    # one identical image in the batch does not make the pooled PSNR infinite
    x1, y1 = x.clone(), y.clone()
    y1[0] = x1[0]
    out, _, _ = assert_finite_gradients(torchsim.psnr_pooled, x1, y1, finite_value=case not in IDENTICAL, data_range=1.0)


def test_psnr_pooled_values_dtypes_and_units(device):
    x, y = pair(3, 3, 8, 9, device=device)
    mse = torchsim.mse(x, y, reduction="none")
    expected = -10 * torch.log10(mse.mean())  # one image size: the pooled MSE is the mean MSE
    torch.testing.assert_close(torchsim.psnr_pooled(x, y, data_range=1.0), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(torchsim.psnr_pooled(x[:1], y[:1], data_range=1.0), torchsim.psnr(x[:1], y[:1], data_range=1.0))
    assert torchsim.psnr_pooled(x.float(), y.float(), data_range=1.0).dtype == torch.float32
    for low in (torch.float16, torch.bfloat16):
        out = torchsim.psnr_pooled(x.to(low), y.to(low), data_range=1.0)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, torchsim.psnr_pooled(x.to(low).float(), y.to(low).float(), data_range=1.0))
        with torch.autocast(device.type, dtype=low):
            out = torchsim.psnr_pooled(x.float(), y.float(), data_range=1.0)
        torch.testing.assert_close(out, torchsim.psnr_pooled(x.float(), y.float(), data_range=1.0))
    xu, yu = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    torch.testing.assert_close(torchsim.psnr_pooled(xu, yu), torchsim.psnr_pooled(xu.float(), yu.float(), data_range=255.0))
    for scale in (1e30, 1e-30):  # errors in units of data_range: float32 stays finite
        got = torchsim.psnr_pooled((x * scale).float(), (y * scale).float(), data_range=scale)
        torch.testing.assert_close(got, torchsim.psnr_pooled(x.float(), y.float(), data_range=1.0), rtol=1e-5, atol=0)
    y_nan = y.clone()
    y_nan[1, 0, 0, 0] = float("nan")
    assert torchsim.psnr_pooled(x, y_nan, data_range=1.0).isnan()


def test_psnr_pooled_errors_name_it():
    x, y = pair(2, 3, 8, 9, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"psnr_pooled: data_range is required .*data_range=1\.0"):
        torchsim.psnr_pooled(x, y)
    with pytest.raises(ValueError, match=r"psnr_pooled: .*shape"):
        torchsim.psnr_pooled(x, y[:, :, :4], data_range=1.0)
    with pytest.raises(TypeError, match=r"psnr_pooled\(\) got an unexpected keyword argument 'reduction'"):
        torchsim.psnr_pooled(x, y, data_range=1.0, reduction="mean")
