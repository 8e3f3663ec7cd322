"""Streaming state of every metric module: forward / update / compute / reset, checkpoints.

The modules are discovered from ``Metric``'s subclasses, so a module added to
``torchsim.modules`` is covered without touching this file. ``MEAN_CLASSES`` stream the
mean of per-image values; the others (``"pooled"`` records, PSNRPooled) a pooled statistic.
"""

import inspect
import math

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
MEAN_CLASSES = [c for c in CLASSES if c.record.pooling is None]


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


@pytest.mark.parametrize("cls", MEAN_CLASSES, ids=lambda c: c.__name__)
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
def test_state_is_in_state_dict_and_stays_float64(cls):
    metric = _make(cls)
    x, y = _inputs(cls, n=2)
    metric.update(x, y)
    assert set(metric.state_dict()) == {"_stream_sum", "_stream_count"}  # the state, nothing else
    # dtype casts of the module never touch the float64 state
    for cast in (lambda m: m.half(), lambda m: m.to(torch.bfloat16), lambda m: m.float(), lambda m: m.double()):
        cast(metric)
        state = metric.state_dict()
        assert state["_stream_sum"].dtype == torch.float64
        assert state["_stream_count"].dtype == torch.int64
    expected = _value(_make(cls)(x, y)).double()
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-6, atol=1e-7)
    # a fresh module loads the state strictly and computes the same value
    fresh = _make(cls)
    fresh.load_state_dict(metric.state_dict(), strict=True)
    torch.testing.assert_close(fresh.compute(), metric.compute(), rtol=0, atol=0)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_forward_returns_the_batch_value_and_updates_the_state(cls):
    # the torchmetrics pattern: metric(x, y) per batch, metric.compute() at the end
    x, y = _inputs(cls)
    expected = _value(_make(cls)(x, y)).double()
    metric = _make(cls)
    for xb, yb in zip(x.split([3, 1, 3]), y.split([3, 1, 3])):
        out = metric(xb, yb)
        torch.testing.assert_close(out, _make(cls)(xb, yb), rtol=0, atol=0)  # the batch's value
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-6, atol=1e-7)
    # forward and update feed the same state
    metric.reset()
    metric(x[:3], y[:3])
    metric.update(x[3:], y[3:])
    torch.testing.assert_close(metric.compute(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_checkpoint_mid_evaluation_and_resume(cls, tmp_path):
    x, y = _inputs(cls)
    one_shot = _make(cls)
    one_shot.update(x, y)
    first = _make(cls)
    for xb, yb in zip(x[:4].split(2), y[:4].split(2)):
        first(xb, yb)
    torch.save({"metric": first.state_dict(), "next_batch": 4}, tmp_path / "eval.pt")
    del first
    checkpoint = torch.load(tmp_path / "eval.pt")
    resumed = _make(cls)
    resumed.load_state_dict(checkpoint["metric"], strict=True)
    for xb, yb in zip(x[checkpoint["next_batch"] :].split(2), y[checkpoint["next_batch"] :].split(2)):
        resumed(xb, yb)
    torch.testing.assert_close(resumed.compute(), one_shot.compute(), rtol=1e-12, atol=1e-12)


def test_checkpoint_of_a_model_holding_a_metric():
    # The state is saved under the metric's prefix. A checkpoint without it (torchsim 0.1 kept the
    # state out of state_dict) loads strictly as the empty state; half a state is still an error.
    def evaluator():
        model = torch.nn.Module()
        model.net = torch.nn.Conv2d(3, 3, 1)
        model.psnr = torchsim.PSNR(data_range=1.0)
        return model

    model = evaluator()
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        model.psnr(model.net(x), x)
    state = model.state_dict()
    assert set(state) == {"net.weight", "net.bias", "psnr._stream_sum", "psnr._stream_count"}
    fresh = evaluator()
    fresh.load_state_dict(state, strict=True)
    torch.testing.assert_close(fresh.psnr.compute(), model.psnr.compute(), rtol=0, atol=0)
    weights_only = {k: v for k, v in state.items() if k.startswith("net.")}
    fresh.load_state_dict(weights_only, strict=True)
    with pytest.raises(RuntimeError, match="no images seen"):
        fresh.psnr.compute()
    half = {k: v for k, v in state.items() if k != "psnr._stream_count"}
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*psnr\._stream_count"):
        fresh.load_state_dict(half, strict=True)


@pytest.mark.parametrize("cls", [torchsim.PSNR, torchsim.SSIM, torchsim.PSNRPooled], ids=lambda c: c.__name__)
def test_forward_keeps_the_graph_of_its_result_never_of_the_state(cls):
    x, y = _inputs(cls, n=4)
    metric = _make(cls)
    for _ in range(2):  # a training loop that logs the metric: backward every step, state detached
        xr = x.clone().requires_grad_(True)
        out = metric(xr, y)
        assert out.requires_grad
        out.backward()
        assert xr.grad is not None and torch.isfinite(xr.grad).all()
        for buf in metric.buffers():
            assert not buf.requires_grad and buf.grad_fn is None
    with torch.no_grad():
        metric(x, y)
    with torch.inference_mode():
        metric(x, y)
        metric.update(x, y)
    assert not any(buf.is_inference() for buf in metric.buffers())
    reference = _make(cls)
    for _ in range(5):
        reference.update(x, y)
    torch.testing.assert_close(metric.compute(), reference.compute(), rtol=1e-12, atol=1e-12)
    metric.reset()  # in place on normal tensors: allowed outside inference mode


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
@pytest.mark.parametrize("cls", [torchsim.PSNR, torchsim.SSIM, torchsim.PSNRPooled], ids=lambda c: c.__name__)
def test_forward_compiles_without_graph_breaks(cls, backend):
    # The in-place add to the state buffers is traced (fullgraph=True: a graph break is an error).
    torch._dynamo.reset()
    x, y = _inputs(cls, n=4)
    metric = _make(cls)
    compiled = torch.compile(metric, backend=backend, fullgraph=True)
    outs = [compiled(x[:2], y[:2]), compiled(x[2:], y[2:])]
    eager = _make(cls)
    for out, (xb, yb) in zip(outs, [(x[:2], y[:2]), (x[2:], y[2:])]):
        torch.testing.assert_close(out, eager(xb, yb))
    torch.testing.assert_close(metric.compute(), eager.compute(), rtol=1e-6, atol=1e-7)


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


def test_psnr_pooled_pools_the_squared_errors_over_every_pixel():
    # two images, 20 dB (MSE 0.01, 16 values) and 40 dB (MSE 1e-4, 64 values)
    x1, y1 = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.1)
    x2, y2 = torch.zeros(1, 1, 8, 8), torch.full((1, 1, 8, 8), 0.01)
    metric = torchsim.PSNRPooled(data_range=1.0)
    torch.testing.assert_close(metric.update(x1, y1), torchsim.psnr(x1, y1, data_range=1.0, reduction="none"))
    metric(x2, y2)
    pooled = (16 * 0.01 + 64 * 1e-4) / 80
    assert metric.compute().item() == pytest.approx(-10 * math.log10(pooled), abs=1e-5)  # 26.78 dB
    mean = torchsim.PSNR(data_range=1.0)
    mean.update(x1, y1)
    mean.update(x2, y2)
    assert mean.compute().item() == pytest.approx(30.0, abs=1e-4)
    # identical images: +inf, as psnr; the state of a pooled metric counts values, not images
    same = torchsim.PSNRPooled(data_range=1.0)
    assert same(x2, x2).item() == math.inf and same.compute().item() == math.inf
    assert same.state_dict()["_stream_count"].item() == 64


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
