"""Losses: each equals its formula over the functional core, is differentiable, and holds no state."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchsim
from tests.helpers import MS_SMALL, assert_finite_gradients, assert_gradcheck, degenerate_pairs, pair, rand


# (loss factory taking reduction, metric function equivalent, input shape)
LOSSES = {
    "SSIMLoss": (lambda **kw: torchsim.SSIMLoss(data_range=1.0, **kw), lambda x, y, **kw: 1 - torchsim.ssim(x, y, data_range=1.0, **kw), (1, 2, 13, 14)),
    "SSIMLoss-skimage": (
        lambda **kw: torchsim.SSIMLoss(data_range=1.0, gaussian=False, kernel_size=7, sample_covariance=True, **kw),
        lambda x, y, **kw: 1 - torchsim.ssim(x, y, data_range=1.0, gaussian=False, kernel_size=7, sample_covariance=True, **kw),
        (1, 2, 9, 10),
    ),
    "MSSSIMLoss": (lambda **kw: torchsim.MSSSIMLoss(data_range=1.0, **MS_SMALL, **kw), lambda x, y, **kw: 1 - torchsim.ms_ssim(x, y, data_range=1.0, **MS_SMALL, **kw), (1, 2, 11, 12)),
    "CosineSimilarityLoss": (lambda **kw: torchsim.CosineSimilarityLoss(**kw), lambda x, y, **kw: 1 - torchsim.cosine_similarity(x, y, **kw), (2, 2, 5, 6)),
}


def _msssim_l1_reference(x: torch.Tensor, y: torch.Tensor, data_range, alpha=0.84, l1_sigma=8.0, **ms_kw) -> torch.Tensor:
    """Zhao et al.'s mix, per image: alpha (1 - MS-SSIM) + (1 - alpha) mean(G * |x - y|) / L.

    The Gaussian-weighted L1 uses scipy's gaussian_filter ('reflect' = symmetric boundary,
    radius round(3 sigma)), independent of torchsim's filters.
    """
    from scipy.ndimage import gaussian_filter

    ms = torchsim.ms_ssim(x, y, data_range=data_range, reduction="none", **ms_kw).double()
    err = (x.double() - y.double()).abs().numpy()
    radius = int(round(3 * l1_sigma))
    l1 = np.array([
        np.mean(gaussian_filter(err[i], sigma=(0, l1_sigma, l1_sigma), mode="reflect", truncate=radius / l1_sigma))
        for i in range(err.shape[0])
    ])
    dr = data_range.double().numpy() if isinstance(data_range, torch.Tensor) else data_range
    return alpha * (1 - ms) + (1 - alpha) * torch.from_numpy(l1 / dr)


# --------------------------------------------------------------------------- equal to 1 - f


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_equals_one_minus_metric(name, reduction):
    make, ref, shape = LOSSES[name]
    x, y = pair(3, *shape[1:], dtype=torch.float32)
    loss = make(reduction=reduction)
    out = loss(x, y)
    expected = ref(x, y, reduction="none")
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    torch.testing.assert_close(out, expected)
    assert isinstance(loss, torch.nn.Module)


def test_default_reduction_is_mean():
    x, y = pair(3, 2, 13, 14, dtype=torch.float32)
    torch.testing.assert_close(torchsim.SSIMLoss(data_range=1.0)(x, y), 1 - torchsim.ssim(x, y, data_range=1.0))
    torch.testing.assert_close(torchsim.CosineSimilarityLoss()(x, y), 1 - torchsim.cosine_similarity(x, y))


def test_identical_images_give_zero_loss():
    x = rand(2, 3, 16, 17, dtype=torch.float32)
    for name, (make, _, _) in LOSSES.items():
        torch.testing.assert_close(make()(x, x.clone()), torch.tensor(0.0), atol=1e-6, rtol=0, msg=name)
    torch.testing.assert_close(
        torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL)(x, x.clone()), torch.tensor(0.0), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("data_range", [1.0, 255.0, "tensor"])
def test_msssim_l1_equals_zhao_formula(reduction, data_range):
    x, y = pair(2, 3, 33, 35)
    if data_range == "tensor":
        data_range = torch.tensor([1.0, 255.0], dtype=torch.float64)
    scale = data_range.reshape(-1, 1, 1, 1) if isinstance(data_range, torch.Tensor) else data_range
    x, y = x * scale, y * scale
    loss = torchsim.MSSSIML1Loss(data_range=data_range, reduction=reduction, **MS_SMALL)
    expected = _msssim_l1_reference(x, y, data_range, **MS_SMALL)
    expected = {"mean": expected.mean(), "sum": expected.sum(), "none": expected}[reduction]
    torch.testing.assert_close(loss(x, y), expected, rtol=1e-10, atol=1e-12)


def test_msssim_l1_alpha_and_sigma():
    x, y = pair(2, 1, 40, 41)
    for alpha, sigma in [(0.0, 2.0), (1.0, 8.0), (0.5, 3.0)]:
        loss = torchsim.MSSSIML1Loss(data_range=1.0, alpha=alpha, l1_sigma=sigma, reduction="none", **MS_SMALL)
        expected = _msssim_l1_reference(x, y, 1.0, alpha=alpha, l1_sigma=sigma, **MS_SMALL)
        torch.testing.assert_close(loss(x, y), expected, rtol=1e-10, atol=1e-12)


def test_msssim_l1_default_size():
    """Default MS-SSIM (5 scales, 161 px minimum) and the paper's alpha = 0.84, sigma = 8."""
    x, y = pair(1, 3, 161, 165, dtype=torch.float32)
    loss = torchsim.MSSSIML1Loss(data_range=1.0)
    expected = _msssim_l1_reference(x, y, 1.0)
    torch.testing.assert_close(loss(x, y).double(), expected[0], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- gradients


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradcheck(name):
    make, _, shape = LOSSES[name]
    loss = make()
    assert_gradcheck(lambda a, b: loss(a, b), *pair(*shape))


@pytest.mark.slow
def test_msssim_l1_gradcheck():
    x, y = pair(1, 2, 11, 12, seed=4)
    loss = torchsim.MSSSIML1Loss(data_range=1.0, l1_sigma=1.0, **MS_SMALL)
    assert_gradcheck(lambda a, b: loss(a, b), x, y)
    # the paper's sigma = 8 (49-tap window, larger than the image: mirrored many times)
    loss8 = torchsim.MSSSIML1Loss(data_range=1.0, reduction="none", **MS_SMALL)
    assert_gradcheck(lambda a, b: loss8(a, b), x, y, fast_mode=True)


@pytest.mark.parametrize("name", [*sorted(LOSSES), "MSSSIML1Loss"])
@pytest.mark.parametrize("case", sorted(degenerate_pairs(1, 1, 2, 2)))
def test_finite_gradients(name, case, device):
    if name == "MSSSIML1Loss":
        loss, shape = torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL), (1, 3, 16, 17)
    else:
        make, _, shape = LOSSES[name]
        loss = make()
    x, y = degenerate_pairs(*shape, device=device)[case]
    assert_finite_gradients(lambda a, b: loss.to(device)(a, b), x, y)


def test_training_step_decreases_loss():
    """One optimiser step on the input lowers every loss (a smoke test of sign and gradient)."""
    target = rand(1, 3, 24, 25, dtype=torch.float32, seed=3)
    start = (target + 0.3 * (rand(1, 3, 24, 25, dtype=torch.float32, seed=4) - 0.5)).clamp(0, 1)
    losses = [
        torchsim.SSIMLoss(data_range=1.0),
        torchsim.MSSSIMLoss(data_range=1.0, **MS_SMALL),
        torchsim.CosineSimilarityLoss(),
        torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL),
    ]
    for loss in losses:
        p = torch.nn.Parameter(start.clone())
        opt = torch.optim.SGD([p], lr=0.5)
        before = loss(p, target)
        before.backward()
        opt.step()
        with torch.no_grad():
            after = loss(p, target)
        assert after < before, type(loss).__name__


# --------------------------------------------------------------------------- dtypes and modules


@pytest.mark.parametrize("low", [torch.float16, torch.bfloat16], ids=str)
def test_half_inputs_give_float32_loss(low):
    x, y = pair(2, 3, 16, 17, dtype=torch.float32)
    for name, (make, _, _) in LOSSES.items():
        loss = make()
        out = loss(x.to(low), y.to(low))
        assert out.dtype == torch.float32, name
        torch.testing.assert_close(out, loss(x.to(low).float(), y.to(low).float()))
    out = torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL)(x.to(low), y.to(low))
    assert out.dtype == torch.float32


def test_float64_and_uint8():
    x, y = pair(2, 3, 16, 17)
    assert torchsim.SSIMLoss(data_range=1.0)(x, y).dtype == torch.float64
    assert torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL)(x, y).dtype == torch.float64
    xu, yu = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    torch.testing.assert_close(
        torchsim.SSIMLoss()(xu, yu), torchsim.SSIMLoss(data_range=255.0)(xu.float(), yu.float())
    )
    torch.testing.assert_close(
        torchsim.MSSSIML1Loss(**MS_SMALL)(xu, yu),
        torchsim.MSSSIML1Loss(data_range=255.0, **MS_SMALL)(xu.float(), yu.float()),
    )


def test_msssim_l1_on_device_equals_cpu(device):
    x, y = pair(2, 3, 32, 33, dtype=torch.float32, device=device)
    loss = torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL).to(device)
    xx = x.clone().requires_grad_(True)
    out = loss(xx, y)
    out.backward()
    assert out.device.type == device.type and torch.isfinite(xx.grad).all()
    ref = torchsim.MSSSIML1Loss(data_range=1.0, **MS_SMALL)(x.cpu(), y.cpu())
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-6)


def test_losses_hold_no_state():
    modules = [
        torchsim.SSIMLoss(data_range=1.0),
        torchsim.MSSSIMLoss(data_range=1.0),
        torchsim.CosineSimilarityLoss(),
        torchsim.MSSSIML1Loss(data_range=1.0),
    ]
    x = torch.rand(2, 3, 161, 161)
    for m in modules:
        m(x, x.flip(-1))  # losses do not accumulate: no state before or after a forward
        assert m.state_dict() == {}, type(m).__name__
        assert list(m.buffers()) == [] and not hasattr(m, "compute"), type(m).__name__
        assert list(m.parameters()) == []
        assert type(m).__name__ in repr(m)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torchsim.SSIMLoss(data_range=1.0))
    assert set(model.state_dict()) == {"0.weight", "0.bias"}


def test_loss_repr_shows_options():
    r = repr(torchsim.SSIMLoss(data_range=1.0, kernel_size=7, reduction="sum"))
    assert "kernel_size=7" in r and "data_range=1.0" in r and "sum" in r


def test_missing_data_range_raises_at_forward():
    x, y = pair(1, 1, 16, 16, dtype=torch.float32)
    with pytest.raises(TypeError, match=r"data_range=1\.0"):
        torchsim.SSIMLoss()(x, y)
    with pytest.raises(TypeError, match=r"data_range=1\.0"):
        torchsim.MSSSIML1Loss(**MS_SMALL)(x, y)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: torchsim.SSIMLoss(data_range=1.0, reduction="avg"), r"SSIMLoss: reduction .*'avg'"),
        (lambda: torchsim.MSSSIMLoss(data_range=1.0, reduction="batchmean"), r"MSSSIMLoss: reduction"),
        (lambda: torchsim.CosineSimilarityLoss(reduction=None), r"CosineSimilarityLoss: reduction"),
        (lambda: torchsim.MSSSIML1Loss(data_range=1.0, reduction="max"), r"MSSSIML1Loss: reduction"),
        (lambda: torchsim.MSSSIML1Loss(data_range=1.0, alpha=1.5), r"MSSSIML1Loss: alpha .*1\.5"),
        (lambda: torchsim.MSSSIML1Loss(data_range=1.0, alpha=-0.1), r"MSSSIML1Loss: alpha"),
        (lambda: torchsim.MSSSIML1Loss(data_range=1.0, l1_sigma=0), r"MSSSIML1Loss: l1_sigma"),
        (lambda: torchsim.MSSSIML1Loss(data_range=1.0, l1_sigma=float("nan")), r"MSSSIML1Loss: l1_sigma"),
    ],
)
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_forward_arguments_name_the_function():
    x, y = pair(1, 1, 16, 16, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"SSIMLoss: kernel_size"):  # caught when the loss is built
        torchsim.SSIMLoss(data_range=1.0, kernel_size=4)
    with pytest.raises(ValueError, match=r"ms_ssim: every spatial dimension must be at least 161"):
        torchsim.MSSSIMLoss(data_range=1.0)(x, y)
    with pytest.raises(ValueError, match=r"cosine_similarity: x and y must have the same shape"):
        torchsim.CosineSimilarityLoss()(x, y[..., :8])


@pytest.mark.parametrize(
    "build, error, text",
    [
        (lambda: torchsim.SSIMLoss(data_range=1.0, foo=3), TypeError, r"SSIMLoss: unexpected keyword argument 'foo'"),
        (lambda: torchsim.SSIM(data_range=1.0, reduction="avg"), ValueError, r"SSIM: reduction"),
        (lambda: torchsim.PSNR(data_range=float("nan")), ValueError, r"PSNR: data_range"),
        (lambda: torchsim.NMILoss(bandwidth=0.0), ValueError, r"NMILoss: bandwidth"),
        (lambda: torchsim.MILoss(bandwidth=0.0), ValueError, r"MILoss: bandwidth"),
        (lambda: torchsim.MSSSIML1Loss(data_range=1.0, kernel_size=2), ValueError, r"MSSSIML1Loss: kernel_size"),
    ],
)
def test_bad_options_fail_when_built(build, error, text):
    with pytest.raises(error, match=text):
        build()
