"""Metric modules: forward equals the function, kwargs are stored, only the streaming state in state_dict."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

import torchsim
from tests.helpers import MS_SMALL, pair


# (module class, function, keyword arguments)
CASES = [
    (torchsim.MSE, torchsim.mse, {}),
    (torchsim.MSE, torchsim.mse, dict(reduction="none")),
    (torchsim.PSNR, torchsim.psnr, dict(data_range=1.0)),
    (torchsim.PSNR, torchsim.psnr, dict(data_range=1.0, reduction="sum")),
    (torchsim.SSIM, torchsim.ssim, dict(data_range=1.0)),
    (torchsim.SSIM, torchsim.ssim, dict(data_range=1.0, gaussian=False, kernel_size=7, sample_covariance=True, reduction="none")),
    (torchsim.SSIM, torchsim.ssim, dict(data_range=2.0, kernel_size=5, sigma=1.0, k1=0.02, k2=0.05)),
    (torchsim.MSSSIM, torchsim.ms_ssim, dict(data_range=1.0, **MS_SMALL)),
    (torchsim.MSSSIM, torchsim.ms_ssim, dict(data_range=1.0, kernel_size=3, sigma=1.0, weights=[0.5, 0.5], reduction="none")),
    (torchsim.CosineSimilarity, torchsim.cosine_similarity, {}),
    (torchsim.CosineSimilarity, torchsim.cosine_similarity, dict(reduction="none")),
]


def _id(case):
    cls, _, kw = case
    return cls.__name__ + ("-" + "-".join(f"{k}={v}" for k, v in kw.items()) if kw else "")


@pytest.mark.parametrize("cls, fn, kw", CASES, ids=[_id(c) for c in CASES])
def test_forward_equals_function(cls, fn, kw):
    x, y = pair(3, 3, 24, 25, dtype=torch.float32)
    m = cls(**kw)
    torch.testing.assert_close(m(x, y), fn(x, y, **kw), rtol=0, atol=0)
    # gradients flow through the module exactly as through the function
    xm = x.clone().requires_grad_(True)
    xf = x.clone().requires_grad_(True)
    m(xm, y).sum().backward()
    fn(xf, y, **kw).sum().backward()
    torch.testing.assert_close(xm.grad, xf.grad, rtol=0, atol=0)


def test_ssim_module_return_map_and_downsample():
    x, y = pair(2, 1, 24, 25, dtype=torch.float32)
    value, smap = torchsim.SSIM(data_range=1.0, return_map=True)(x, y)
    v2, m2 = torchsim.ssim(x, y, data_range=1.0, return_map=True)
    torch.testing.assert_close(value, v2, rtol=0, atol=0)
    torch.testing.assert_close(smap, m2, rtol=0, atol=0)
    torch.testing.assert_close(
        torchsim.SSIM(data_range=1.0, downsample=True)(x, y), torchsim.ssim(x, y, data_range=1.0, downsample=True)
    )


def test_tensor_data_range_and_uint8():
    x, y = pair(2, 3, 24, 25, dtype=torch.float32)
    dr = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(torchsim.SSIM(data_range=dr)(x, y), torchsim.ssim(x, y, data_range=dr))
    torch.testing.assert_close(torchsim.PSNR(data_range=dr)(x, y), torchsim.psnr(x, y, data_range=dr))
    xu, yu = (x * 255).to(torch.uint8), (y * 255).to(torch.uint8)
    torch.testing.assert_close(torchsim.SSIM()(xu, yu), torchsim.ssim(xu, yu))
    torch.testing.assert_close(torchsim.PSNR()(xu, yu), torchsim.psnr(xu, yu))


ALL = [
    torchsim.MSE(),
    torchsim.PSNR(data_range=1.0),
    torchsim.SSIM(data_range=1.0),
    torchsim.MSSSIM(data_range=1.0),
    torchsim.CosineSimilarity(),
]


@pytest.mark.parametrize("m", ALL, ids=lambda m: type(m).__name__)
def test_state_dict_has_no_junk(m):
    """No kwargs, windows or constants in the state_dict, only the streaming state (a float64
    sum and an int64 count, so an evaluation can be resumed): a model that embeds a metric saves
    and loads its own weights and that state."""
    assert set(m.state_dict()) == {"_stream_sum", "_stream_count"}
    assert [t.dim() for t in m.state_dict().values()] == [0, 0]
    assert list(m.parameters()) == []
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), m)
    sd = model.state_dict()
    assert set(sd) == {"0.weight", "0.bias", "1._stream_sum", "1._stream_count"}
    fresh = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), copy.deepcopy(m))
    fresh.load_state_dict(sd, strict=True)


@pytest.mark.parametrize("m", ALL, ids=lambda m: type(m).__name__)
def test_module_moves_copies_and_pickles(m):
    side = max(24, m.record.min_size())  # MS-SSIM needs 161 px
    x, y = pair(2, 3, side, side + 1, dtype=torch.float32)
    ref = m(x, y)
    m2 = copy.deepcopy(m).to(torch.float64).to("cpu")
    torch.testing.assert_close(m2(x, y), ref, rtol=0, atol=0)
    m3 = pickle.loads(pickle.dumps(m))
    torch.testing.assert_close(m3(x, y), ref, rtol=0, atol=0)
    m.eval()
    torch.testing.assert_close(m(x, y), ref, rtol=0, atol=0)
    # a float64 input still gives a float64 result after .half() on the module (no float state to cast)
    assert m.half()(x.double(), y.double()).dtype == torch.float64
    m.float()


def test_repr_shows_options():
    r = repr(torchsim.SSIM(data_range=255.0, kernel_size=7, gaussian=False))
    assert r.startswith("SSIM(") and "data_range=255.0" in r and "kernel_size=7" in r and "gaussian=False" in r
    assert "weights=" in repr(torchsim.MSSSIM(data_range=1.0))


def test_keyword_only_constructor():
    with pytest.raises(TypeError):
        torchsim.SSIM(1.0)  # data_range must be passed by name


def test_module_errors_name_the_function():
    x, y = pair(1, 1, 16, 16, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"ssim: data_range is required .*data_range=1\.0"):
        torchsim.SSIM()(x, y)
    with pytest.raises(TypeError, match=r"psnr: data_range is required"):
        torchsim.PSNR()(x, y)
    with pytest.raises(ValueError, match=r"MSE: reduction"):  # caught when the module is built
        torchsim.MSE(reduction="avg")


def test_module_on_device(device):
    x, y = pair(2, 3, 32, 33, dtype=torch.float32, device=device)
    m = torchsim.SSIM(data_range=1.0).to(device)
    torch.testing.assert_close(m(x, y), torchsim.ssim(x, y, data_range=1.0))
