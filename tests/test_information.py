"""Behaviour of mutual_information and normalized_mutual_information, their modules and losses."""

import math

import numpy as np
import pytest
import torch

import torchsim
from tests.helpers import assert_finite_gradients, assert_gradcheck, degenerate_pairs, rand
from torchsim.functional.information import NMI_NORMALIZATIONS

SKLEARN_NORMS = ("arithmetic", "geometric", "min", "max")


def _pair(shape=(2, 2, 8, 8), dtype=torch.float32, seed=0):
    """y depends on x (shared structure) plus noise, so MI is clearly positive."""
    x = rand(shape, seed=seed)
    y = (0.7 * x + 0.3 * rand(shape, seed=seed + 100)).clamp(0, 1)
    return x.to(dtype), y.to(dtype)


def _numpy_entropies(x, y, bins, rng=(0.0, 1.0)):
    joint = np.histogram2d(x.ravel(), y.ravel(), bins=bins, range=[rng, rng])[0]
    p = joint / joint.sum()

    def h(q):
        q = q[q > 0]
        return -(q * np.log(q)).sum()

    return h(p.sum(1)), h(p.sum(0)), h(p.ravel())


# --------------------------------------------------------------------------- values


def test_mi_equals_numpy_joint_histogram():
    x, y = _pair((3, 2, 10, 10), torch.float64)
    mi = torchsim.mutual_information(x, y, bins=8, reduction="none")
    assert mi.shape == (3,) and mi.dtype == torch.float64
    for i in range(3):
        hx, hy, hxy = _numpy_entropies(x[i].numpy(), y[i].numpy(), 8)
        assert mi[i].item() == pytest.approx(hx + hy - hxy, rel=1e-12)


@pytest.mark.parametrize("normalization", NMI_NORMALIZATIONS)
def test_nmi_equals_numpy_formula(normalization):
    x, y = _pair((2, 1, 12, 12), torch.float64, seed=3)
    nmi = torchsim.normalized_mutual_information(x, y, bins=6, normalization=normalization, reduction="none")
    for i in range(2):
        hx, hy, hxy = _numpy_entropies(x[i].numpy(), y[i].numpy(), 6)
        mi = hx + hy - hxy
        ref = {
            "arithmetic": mi / ((hx + hy) / 2),
            "geometric": mi / math.sqrt(hx * hy),
            "min": mi / min(hx, hy),
            "max": mi / max(hx, hy),
            "studholme": (hx + hy) / hxy,
        }[normalization]
        assert nmi[i].item() == pytest.approx(ref, rel=1e-12)


def test_mi_of_image_with_itself_is_its_entropy():
    x = torch.tensor([0, 0, 255, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    assert torchsim.mutual_information(x, x).item() == pytest.approx(math.log(2), rel=1e-6)
    x = rand((2, 3, 8, 8), dtype=torch.float32)
    for norm in SKLEARN_NORMS:
        torch.testing.assert_close(torchsim.normalized_mutual_information(x, x, bins=16, normalization=norm), torch.tensor(1.0))
    torch.testing.assert_close(torchsim.normalized_mutual_information(x, x, bins=16, normalization="studholme"), torch.tensor(2.0))


def test_one_joint_histogram_over_all_channels():
    x, y = _pair((2, 3, 6, 6))
    flat = lambda t: t.reshape(2, 1, 1, -1)  # noqa: E731
    torch.testing.assert_close(
        torchsim.mutual_information(x, y, bins=8, reduction="none"),
        torchsim.mutual_information(flat(x), flat(y), bins=8, reduction="none"),
    )


@pytest.mark.parametrize("normalization", SKLEARN_NORMS)
def test_edge_cases_like_sklearn(normalization):
    c1 = torch.full((1, 1, 4, 4), 0.25)
    c2 = torch.full((1, 1, 4, 4), 0.75)
    x = rand((1, 1, 4, 4), dtype=torch.float32)
    nmi = lambda a, b: torchsim.normalized_mutual_information(a, b, bins=8, normalization=normalization).item()  # noqa: E731
    assert nmi(c1, c2) == 1.0  # both constant: a perfect match, as sklearn returns
    assert nmi(c1, x) == 0.0  # one constant: MI = 0
    assert nmi(x, c2) == 0.0
    assert torchsim.mutual_information(c1, x, bins=8).item() == 0.0


def test_studholme_edge_cases():
    c1 = torch.full((1, 1, 4, 4), 0.25)
    x = rand((1, 1, 4, 4), dtype=torch.float32)
    nmi = lambda a, b: torchsim.normalized_mutual_information(a, b, bins=8, normalization="studholme").item()  # noqa: E731
    assert nmi(c1, c1 + 0.5) == 2.0
    assert nmi(c1, x) == pytest.approx(1.0)


def test_pairs_outside_the_range_are_not_counted_and_empty_is_defined():
    x, y = _pair((1, 1, 8, 8), torch.float64)
    x2 = x.clone()
    x2[..., 0, :] = 2.0  # first row of x now outside (0, 1): those pairs drop out
    got = torchsim.mutual_information(x2, y, bins=8)
    ref = torchsim.mutual_information(x[..., 1:, :], y[..., 1:, :], bins=8)
    torch.testing.assert_close(got, ref)
    out = torch.full((1, 1, 4, 4), 3.0)
    assert torchsim.mutual_information(out, out).item() == 0.0
    assert torchsim.normalized_mutual_information(out, out).item() == 1.0


def test_minmax_bins_each_image_over_its_own_range():
    x, y = _pair((2, 1, 8, 8), torch.float64)
    a = torchsim.normalized_mutual_information(x, y, bins=8, value_range="minmax", reduction="none")
    b = torchsim.normalized_mutual_information(x * 5 - 2, y * 0.1 + 7, bins=8, value_range="minmax", reduction="none")
    torch.testing.assert_close(a, b)


def test_batch_equals_single_images_and_reductions():
    x, y = _pair((4, 2, 8, 8))
    for bw in (0.0, 1.0):
        for fn in (torchsim.mutual_information, torchsim.normalized_mutual_information):
            whole = fn(x, y, bins=16, bandwidth=bw, reduction="none")
            singles = torch.cat([fn(x[i : i + 1], y[i : i + 1], bins=16, bandwidth=bw, reduction="none") for i in range(4)])
            torch.testing.assert_close(whole, singles)
            torch.testing.assert_close(fn(x, y, bins=16, bandwidth=bw), whole.mean())
            torch.testing.assert_close(fn(x, y, bins=16, bandwidth=bw, reduction="sum"), whole.sum())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32(dtype):
    x, y = _pair()
    for bw in (0.0, 1.0):
        got = torchsim.normalized_mutual_information(x.to(dtype), y.to(dtype), bins=16, bandwidth=bw)
        ref = torchsim.normalized_mutual_information(x.to(dtype).float(), y.to(dtype).float(), bins=16, bandwidth=bw)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, ref)
        got = torchsim.mutual_information(x.to(dtype), y.to(dtype), bins=16, bandwidth=bw)
        assert got.dtype == torch.float32


def test_uint8_equals_float_over_255():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 8, 8), generator=g, dtype=torch.uint8)
    y = torch.randint(0, 256, (2, 3, 8, 8), generator=g, dtype=torch.uint8)
    torch.testing.assert_close(
        torchsim.mutual_information(x, y), torchsim.mutual_information(x.float() / 255, y.float() / 255)
    )


def test_device(device):
    x, y = _pair()
    for bw in (0.0, 1.0):
        ref = torchsim.normalized_mutual_information(x, y, bins=16, bandwidth=bw)
        got = torchsim.normalized_mutual_information(x.to(device), y.to(device), bins=16, bandwidth=bw)
        torch.testing.assert_close(got.cpu(), ref)


def test_channels_last_no_grad_autocast():
    x, y = _pair()
    ref = torchsim.normalized_mutual_information(x, y, bins=16, bandwidth=1.0)
    with torch.no_grad():
        cl = torchsim.normalized_mutual_information(
            x.to(memory_format=torch.channels_last), y.to(memory_format=torch.channels_last), bins=16, bandwidth=1.0
        )
        torch.testing.assert_close(cl, ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(torchsim.normalized_mutual_information(x, y, bins=16, bandwidth=1.0), ref)


# --------------------------------------------------------------------------- soft


def test_soft_converges_to_exact_as_bandwidth_shrinks():
    g = torch.Generator().manual_seed(2)
    kx = torch.randint(0, 8, (2, 1, 8, 8), generator=g).double()
    ky = (kx + torch.randint(0, 2, kx.shape, generator=g)).clamp(0, 7)
    x = (kx + 0.5 + 0.3 * (torch.rand(kx.shape, generator=g, dtype=torch.float64) - 0.5)) / 8
    y = (ky + 0.5 + 0.3 * (torch.rand(ky.shape, generator=g, dtype=torch.float64) - 0.5)) / 8
    for fn in (torchsim.mutual_information, torchsim.normalized_mutual_information):
        exact = fn(x, y, bins=8, reduction="none")
        errs = [(fn(x, y, bins=8, bandwidth=b, reduction="none") - exact).abs().max().item() for b in (2.0, 1.0, 0.5, 0.1)]
        assert errs == sorted(errs, reverse=True) and errs[0] > 1e-3
        assert errs[-1] < 1e-12


def test_soft_mi_gradcheck():
    x, y = rand((2, 2, 4, 3), seed=1), rand((2, 2, 4, 3), seed=2)
    for bw in (0.7, 1.0, 2.0):
        fn = lambda a, b: torchsim.mutual_information(a, b, bins=5, bandwidth=bw, reduction="none")  # noqa: E731
        assert_gradcheck(fn, x, y)


@pytest.mark.parametrize("normalization", NMI_NORMALIZATIONS)
def test_soft_nmi_gradcheck(normalization):
    x, y = rand((2, 2, 4, 3), seed=3), rand((2, 2, 4, 3), seed=4)
    for vr in (None, "minmax"):
        fn = lambda a, b: torchsim.normalized_mutual_information(  # noqa: E731
            a, b, bins=5, bandwidth=1.0, normalization=normalization, value_range=vr, reduction="none"
        )
        assert_gradcheck(fn, x, y)


@pytest.mark.parametrize("case", sorted(degenerate_pairs(1, 1, 2, 2)))
@pytest.mark.parametrize("normalization", NMI_NORMALIZATIONS)
@pytest.mark.parametrize("value_range", [None, "minmax"])
def test_finite_gradients_on_identical_and_constant_images(normalization, value_range, case, device):
    x, y = degenerate_pairs(2, 3, 8, 8, seed=5, dtype=torch.float32, device=device)[case]

    def nmi_and_mi(a, b):
        kw = dict(bins=16, bandwidth=1.0, value_range=value_range)
        return (
            torchsim.normalized_mutual_information(a, b, normalization=normalization, **kw),
            torchsim.mutual_information(a, b, **kw),
        )

    assert_finite_gradients(nmi_and_mi, x, y)


def test_soft_memory_is_linear_in_pixels():
    """The soft joint histogram keeps O(K) numbers per pixel, never pixels x bins or bins^2 per pixel."""
    from torchsim.ops import joint_histogram

    x = rand((1, 1, 64, 64), dtype=torch.float32).requires_grad_()
    y = rand((1, 1, 64, 64), seed=1, dtype=torch.float32)
    out = joint_histogram(x, y, 256, None, 1.0)
    saved = [t.numel() for t in out.grad_fn.saved_tensors]
    assert sum(saved) <= 16 * x.numel()  # index + 4 tap arrays of K=3 values per pixel


# --------------------------------------------------------------------------- modules, losses, report


def test_modules_equal_functions():
    x, y = _pair()
    torch.testing.assert_close(
        torchsim.MutualInformation(bins=16, reduction="none")(x, y), torchsim.mutual_information(x, y, bins=16, reduction="none")
    )
    torch.testing.assert_close(
        torchsim.NMI(bins=16, normalization="max")(x, y), torchsim.normalized_mutual_information(x, y, bins=16, normalization="max")
    )
    assert "normalization='max'" in repr(torchsim.NMI(normalization="max"))


def test_modules_stream_to_the_dataset_mean():
    x, y = _pair((5, 2, 8, 8))
    for m in (torchsim.NMI(bins=16), torchsim.MutualInformation(bins=16), torchsim.HistogramSimilarity(bins=16)):
        m.update(x[:2], y[:2])
        m.update(x[2:], y[2:])
        torch.testing.assert_close(torch.as_tensor(m.compute()).float(), m(x, y), rtol=1e-6, atol=1e-6)


def test_losses_are_soft_and_differentiable():
    x, y = _pair()
    x = x.requires_grad_()
    nmi_loss = torchsim.NMILoss(bins=32)
    loss = nmi_loss(x, y)
    torch.testing.assert_close(loss, 1 - torchsim.normalized_mutual_information(x, y, bins=32, bandwidth=1.0))
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    mi_loss = torchsim.MILoss(bins=32, reduction="none")
    torch.testing.assert_close(mi_loss(x, y), -torchsim.mutual_information(x, y, bins=32, bandwidth=1.0, reduction="none"))
    assert "bandwidth=1.0" in repr(mi_loss)
    with pytest.raises(ValueError, match=r"NMILoss: reduction"):
        torchsim.NMILoss(reduction="avg")


def test_report_section():
    from torchsim.cli.report import Pair, _histogram_information

    x = rand((1, 3, 16, 16), dtype=torch.float32)
    x8 = (x * 255).to(torch.uint8)
    rows = _histogram_information(Pair(x8, x8))
    values = {name: value for name, value, _ in rows}
    assert values["NMI"] == "1.0000" and values["histogram correlation"] == "1.0000"
    assert values["histogram Bhattacharyya"] == "0.0000"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("fn_name", ["mutual_information", "normalized_mutual_information"])
def test_bad_inputs(fn_name):
    fn = getattr(torchsim, fn_name)
    x = rand((1, 2, 4, 4), dtype=torch.float32)
    cases = [
        (dict(bins=0), ValueError, rf"{fn_name}: bins must be a positive integer"),
        (dict(value_range=(1, 0)), ValueError, rf"{fn_name}: value_range must have lo < hi"),
        (dict(value_range=(0, float("nan"))), ValueError, rf"{fn_name}: value_range must be finite"),
        (dict(value_range="max"), ValueError, rf"{fn_name}: value_range must be None, 'minmax'"),
        (dict(bandwidth=-0.5), ValueError, rf"{fn_name}: bandwidth"),
        (dict(reduction="avg"), ValueError, rf"{fn_name}: reduction"),
    ]
    for kwargs, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fn(x, x, **kwargs)
    with pytest.raises(ValueError, match=rf"{fn_name}: x and y must have the same shape"):
        fn(x, x[:, :1])
    with pytest.raises(ValueError, match=rf"{fn_name}: x must be 4-D"):
        fn(x[0], x[0])
    with pytest.raises(TypeError, match=rf"{fn_name}: x and y must both be floating, both uint8 or both uint16"):
        fn(x, x.to(torch.uint8))
    with pytest.raises(TypeError, match=rf"{fn_name}: y must be a torch.Tensor"):
        fn(x, x.numpy())


def test_unknown_normalization():
    x = rand((1, 1, 4, 4), dtype=torch.float32)
    with pytest.raises(ValueError, match=r"normalized_mutual_information: normalization must be one of 'arithmetic'.*got 'joint'"):
        torchsim.normalized_mutual_information(x, x, normalization="joint")
