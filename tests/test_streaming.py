"""Streaming state of every metric module: update / compute / reset.

The modules are discovered from ``Metric``'s subclasses, so a module added to
``torchsim.modules`` is covered without touching this file.
"""

import inspect

import pytest
import torch

import torchsim
from tests.helpers import pair
from torchsim.modules import Metric

N = 7
SPLITS = [[7], [1] * 7, [3, 1, 2, 1], [2, 5]]


def _metric_classes():
    seen, todo = [], list(Metric.__subclasses__())
    while todo:
        cls = todo.pop(0)
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: c.__name__)


CLASSES = _metric_classes()


def _make(cls, **kwargs):
    params = inspect.signature(cls.__init__).parameters
    if "data_range" in params:
        kwargs.setdefault("data_range", 1.0)
    return cls(**kwargs)


def _inputs(cls, n=N, dtype=torch.float32):
    """Pairs the module accepts: 32x32, or bigger when its window/scales need it."""
    for size in (32, 161):
        x, y = pair(n, 3, size, size, dtype=dtype)
        try:
            _make(cls)(x[:1], y[:1])
        except ValueError:
            continue
        return x, y
    pytest.skip(f"no input size found for {cls.__name__}")


def _value(out):
    return out[0] if isinstance(out, tuple) else out


def test_every_module_is_streaming():
    assert {"MSE", "PSNR", "SSIM", "MSSSIM", "CosineSimilarity"} <= {c.__name__ for c in CLASSES}
    for cls in CLASSES:
        for name in ("update", "compute", "reset"):
            assert callable(getattr(cls, name)), (cls, name)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_compute_equals_forward_on_concatenated_data(cls):
    x, y = _inputs(cls)
    metric = _make(cls)
    expected = _value(metric(x, y)).double()
    for split in SPLITS:
        metric.reset()
        for xb, yb in zip(x.split(split), y.split(split)):
            values = metric.update(xb, yb)
            assert values.shape == (xb.shape[0],)
        got = metric.compute()
        assert got.dtype == torch.float64 and got.dim() == 0
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_update_ignores_stored_reduction_and_needs_no_grad(cls):
    x, y = _inputs(cls, n=3)
    metric = _make(cls, reduction="sum")
    xr = x.clone().requires_grad_(True)
    values = metric.update(xr, y)
    assert not values.requires_grad
    per_image = _value(_make(cls, reduction="none")(x, y))
    torch.testing.assert_close(metric.compute(), per_image.double().mean(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_reset_and_compute_before_update(cls):
    x, y = _inputs(cls, n=2)
    metric = _make(cls)
    with pytest.raises(RuntimeError, match=cls.__name__):
        metric.compute()
    metric.update(x, y)
    metric.reset()
    with pytest.raises(RuntimeError, match="no images seen"):
        metric.compute()
    metric.update(x[:1], y[:1])
    torch.testing.assert_close(metric.compute(), _value(metric(x[:1], y[:1])).double(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_state_dict_clean_and_state_float64(cls):
    metric = _make(cls)
    x, y = _inputs(cls, n=2)
    metric.update(x, y)
    assert not any("_stream" in k for k in metric.state_dict())  # streaming state is not checkpointed
    assert {"_stream_sum", "_stream_count"} <= {name for name, _ in metric.named_buffers()}
    # dtype casts of the module never touch the float64 state
    for cast in (lambda m: m.half(), lambda m: m.to(torch.bfloat16), lambda m: m.float(), lambda m: m.double()):
        cast(metric)
        state = dict(metric.named_buffers())
        assert state["_stream_sum"].dtype == torch.float64
        assert state["_stream_count"].dtype == torch.int64
    torch.testing.assert_close(metric.compute(), _value(metric(x, y)).double(), rtol=1e-6, atol=1e-7)
    # a fresh module loads the (clean) state_dict strictly
    _make(cls).load_state_dict(metric.state_dict(), strict=True)


def test_float64_state_does_not_depend_on_batch_size():
    # 10 000 per-image values of very different magnitude: a float32 running sum drifts,
    # the float64 state does not.
    metric = torchsim.MSE()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(10_000, 1, 2, 2, generator=g) * torch.logspace(-3, 3, 10_000).reshape(-1, 1, 1, 1)
    y = torch.zeros_like(x)
    per_image = torchsim.mse(x.double(), y.double(), reduction="none")
    for b in (1_000, 10_000):
        metric.reset()
        for xb, yb in zip(x.split(b), y.split(b)):
            metric.update(xb, yb)
        torch.testing.assert_close(metric.compute(), per_image.mean(), rtol=1e-6, atol=0)


def test_psnr_is_mean_of_per_image_psnr():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.cat([torch.full((1, 1, 4, 4), 0.1), torch.full((1, 1, 4, 4), 0.01)])
    metric = torchsim.PSNR(data_range=1.0)
    metric.update(x[:1], y[:1])
    metric.update(x[1:], y[1:])
    assert metric.compute().item() == pytest.approx(30.0, abs=1e-4)  # (20 + 40) / 2, not PSNR of pooled MSE


def test_return_map_module_accumulates_value_only():
    x = torch.rand(3, 1, 32, 32)
    y = torch.rand(3, 1, 32, 32)
    metric = torchsim.SSIM(data_range=1.0, return_map=True)
    values = metric.update(x, y)
    assert values.shape == (3,)
    value, _ = metric(x, y)
    torch.testing.assert_close(metric.compute(), value.double(), rtol=1e-6, atol=1e-7)


def test_update_does_not_sync(monkeypatch):
    metric = torchsim.PSNR(data_range=1.0)
    x, y = torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)

    def boom(*a, **k):
        raise AssertionError("update must not read tensor values on the host")

    monkeypatch.setattr(torch.Tensor, "item", boom)
    monkeypatch.setattr(torch.Tensor, "tolist", boom)
    monkeypatch.setattr(torch.Tensor, "__bool__", boom)
    metric.update(x, y)
    monkeypatch.undo()
    assert torch.isfinite(metric.compute())


def test_to_device_moves_state(device):
    metric = torchsim.SSIM(data_range=1.0)
    metric.update(torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16))
    before = metric.compute()
    metric.to(device)
    for buf in metric.buffers():
        assert buf.device.type == device.type
    assert metric.compute().device.type == device.type
    torch.testing.assert_close(metric.compute().cpu(), before)
    x, y = torch.rand(1, 1, 16, 16, device=device), torch.rand(1, 1, 16, 16, device=device)
    metric.update(x, y)
    assert metric.compute().device.type == device.type


def test_state_follows_the_data():
    metric = torchsim.MSE()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    metric.update(x, torch.zeros_like(x))
    torch.testing.assert_close(metric.compute(), torchsim.mse(x, torch.zeros_like(x)))


def test_invalid_input_raises_and_leaves_state():
    metric = torchsim.PSNR(data_range=1.0)
    metric.update(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1))
    with pytest.raises(ValueError):
        metric.update(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 5, 5))
    assert metric.compute().item() == pytest.approx(20.0, abs=1e-4)
