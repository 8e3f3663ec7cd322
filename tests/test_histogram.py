"""Behaviour of histogram and histogram_similarity: exact counting, soft histograms, errors, gradients, dtypes."""

import numpy as np
import pytest
import torch

import torchsim
from tests.helpers import assert_finite_gradients, assert_gradcheck, degenerate_pairs, rand
from torchsim.functional.histogram import HISTOGRAM_METHODS

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _rand_u8(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)


# --------------------------------------------------------------------------- exact histogram


@pytest.mark.parametrize("bins", [1, 7, 64, 256])
@pytest.mark.parametrize("value_range", [None, (0.2, 0.7), (-0.5, 1.5)])
def test_exact_equals_numpy_histogram(bins, value_range):
    x = rand((2, 3, 9, 11))
    h = torchsim.histogram(x, bins=bins, value_range=value_range)
    assert h.shape == (2, 3, bins) and h.dtype == torch.float64
    rng = value_range or (0.0, 1.0)
    for n in range(2):
        for c in range(3):
            ref = np.histogram(x[n, c].numpy(), bins=bins, range=rng)[0]
            np.testing.assert_array_equal(h[n, c].numpy(), ref)


def test_uint8_256_bins_counts_each_level_like_uint8_over_255():
    x = _rand_u8((2, 2, 16, 16))
    h = torchsim.histogram(x)
    assert h.dtype == torch.float32
    for n in range(2):
        for c in range(2):
            np.testing.assert_array_equal(h[n, c].numpy(), np.bincount(x[n, c].numpy().ravel(), minlength=256))
    torch.testing.assert_close(torchsim.histogram(x.float() / 255), h, rtol=0, atol=0)
    torch.testing.assert_close(torchsim.histogram(x.double() / 255).float(), h, rtol=0, atol=0)


def test_uint8_batch_with_fewer_bins():
    """Regression: a uint8 batch of several RGB images with bins != 256 crashed
    ("expanded size (6) must match (3)") while moving level counts to bins."""
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    h = torchsim.histogram(x, bins=32)
    assert h.shape == (2, 3, 32)
    for n in range(2):
        for c in range(3):
            np.testing.assert_array_equal(h[n, c].numpy(), np.histogram(x[n, c].numpy(), 32, (0, 255))[0])


def test_last_bin_closed_and_outside_values_not_counted():
    x = torch.tensor([-0.1, 0.0, 0.25, 0.5, 1.0, 1.2, float("nan"), float("inf")]).view(1, 1, 2, 4)
    h = torchsim.histogram(x, bins=4)
    assert h.tolist() == [[[1.0, 1.0, 1.0, 1.0]]]
    h = torchsim.histogram(x, bins=2, value_range=(0.0, 0.5))
    assert h.tolist() == [[[1.0, 2.0]]]


def test_minmax_over_all_channels_of_each_image():
    x = rand((2, 3, 8, 8))
    x[1] = x[1] * 4 - 1
    h = torchsim.histogram(x, bins=10, value_range="minmax")
    for n in range(2):
        a = x[n].numpy()
        for c in range(3):
            ref = np.histogram(a[c], bins=10, range=(a.min(), a.max()))[0]
            np.testing.assert_array_equal(h[n, c].numpy(), ref)


def test_minmax_constant_image_uses_value_plus_minus_half():
    x = torch.full((1, 1, 4, 4), 0.3, dtype=torch.float64)
    h = torchsim.histogram(x, bins=5, value_range="minmax")
    np.testing.assert_array_equal(h[0, 0].numpy(), np.histogram(x.numpy().ravel(), bins=5)[0])


def test_batch_equals_single_images():
    x = rand((4, 3, 10, 10), dtype=torch.float32)
    for bw in (0.0, 1.0):
        for vr in (None, "minmax"):
            whole = torchsim.histogram(x, bins=16, value_range=vr, bandwidth=bw)
            singles = torch.cat([torchsim.histogram(x[i : i + 1], bins=16, value_range=vr, bandwidth=bw) for i in range(4)])
            torch.testing.assert_close(whole, singles)


@pytest.mark.parametrize("dtype", FLOATS)
def test_dtypes(dtype):
    x = (_rand_u8((2, 3, 8, 8)).double() / 255).to(dtype)
    h = torchsim.histogram(x, bins=32)
    assert h.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert h.sum().item() == 2 * 3 * 64
    soft = torchsim.histogram(x, bins=32, bandwidth=1.0)
    assert soft.dtype == h.dtype and torch.isfinite(soft).all()


def test_channels_last_and_no_grad_and_autocast():
    x = rand((2, 3, 8, 8), dtype=torch.float32)
    ref = torchsim.histogram(x, bins=16, bandwidth=0.7)
    with torch.no_grad():
        torch.testing.assert_close(torchsim.histogram(x.to(memory_format=torch.channels_last), bins=16, bandwidth=0.7), ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(torchsim.histogram(x, bins=16, bandwidth=0.7), ref)


def test_device(device):
    x = rand((2, 3, 8, 8), dtype=torch.float32)
    ref = torchsim.histogram(x, bins=16)
    torch.testing.assert_close(torchsim.histogram(x.to(device), bins=16).cpu(), ref)
    soft = torchsim.histogram(x, bins=16, bandwidth=1.0)
    torch.testing.assert_close(torchsim.histogram(x.to(device), bins=16, bandwidth=1.0).cpu(), soft)


# --------------------------------------------------------------------------- soft histogram


@pytest.mark.parametrize("bandwidth", [0.3, 1.0, 2.5, 40.0])
def test_soft_histogram_keeps_mass_and_is_nonnegative(bandwidth):
    x = rand((2, 2, 8, 8))
    x[0, 0, 0, 0] = 0.0
    x[0, 0, 0, 1] = 1.0
    x[1, 1, 0, 0] = 1.5  # outside: not counted
    h = torchsim.histogram(x, bins=12, bandwidth=bandwidth)
    assert (h >= 0).all()
    expected = torch.tensor([[64.0, 64.0], [64.0, 63.0]], dtype=torch.float64)
    torch.testing.assert_close(h.sum(-1), expected)


def test_soft_converges_to_exact_as_bandwidth_shrinks():
    # values at bin centres +- 0.3 bin: a kernel narrower than 0.3 bin gives the exact counts
    g = torch.Generator().manual_seed(1)
    k = torch.randint(0, 16, (1, 2, 8, 8), generator=g).double()
    off = (torch.rand(k.shape, generator=g, dtype=torch.float64) - 0.5) * 0.6
    x = (k + 0.5 + off) / 16
    exact = torchsim.histogram(x, bins=16)
    errors = [(torchsim.histogram(x, bins=16, bandwidth=b) - exact).abs().sum().item() for b in (2.0, 1.0, 0.5, 0.1)]
    assert errors == sorted(errors, reverse=True) and errors[0] > 1
    assert errors[-1] == 0.0


def test_soft_histogram_gradcheck():
    x = rand((2, 2, 4, 3))
    for bw in (0.6, 1.0, 2.5):
        assert_gradcheck(lambda a: torchsim.histogram(a, bins=6, bandwidth=bw), x)
        assert_gradcheck(lambda a: torchsim.histogram(a, bins=5, bandwidth=bw, value_range="minmax"), x)


def test_exact_histogram_has_no_gradient():
    x = rand((1, 1, 4, 4), dtype=torch.float32).requires_grad_()
    assert not torchsim.histogram(x, bins=4).requires_grad


# --------------------------------------------------------------------------- histogram_similarity

PERFECT = {
    "correlation": 1.0,
    "chi_square": 0.0,
    "chi_square_alt": 0.0,
    "intersection": 1.0,
    "bhattacharyya": 0.0,
    "kl_div": 0.0,
    "overlap": 1.0,
}


@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
@pytest.mark.parametrize("bandwidth", [0.0, 1.0])
def test_identical_images_score_perfectly(method, bandwidth):
    x = rand((2, 3, 12, 12), dtype=torch.float32)
    v = torchsim.histogram_similarity(x, x, bins=32, method=method, bandwidth=bandwidth, reduction="none")
    assert v.shape == (2,)
    torch.testing.assert_close(v, torch.full((2,), PERFECT[method]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
def test_channel_average_and_reductions(method):
    x, y = rand((3, 3, 10, 10), seed=1, dtype=torch.float32), rand((3, 3, 10, 10), seed=2, dtype=torch.float32) ** 2
    none = torchsim.histogram_similarity(x, y, bins=16, method=method, reduction="none")
    per_c = torch.stack(
        [torchsim.histogram_similarity(x[:, c : c + 1], y[:, c : c + 1], bins=16, method=method, reduction="none") for c in range(3)],
        dim=1,
    )
    torch.testing.assert_close(none, per_c.mean(1))
    torch.testing.assert_close(torchsim.histogram_similarity(x, y, bins=16, method=method), none.mean())
    torch.testing.assert_close(torchsim.histogram_similarity(x, y, bins=16, method=method, reduction="sum"), none.sum())
    singles = torch.cat([torchsim.histogram_similarity(x[i : i + 1], y[i : i + 1], bins=16, method=method, reduction="none") for i in range(3)])
    torch.testing.assert_close(none, singles)


def test_formulas_against_numpy():
    x, y = rand((1, 1, 16, 16), seed=3), rand((1, 1, 16, 16), seed=4) ** 3
    p = np.histogram(x.numpy(), bins=8, range=(0, 1))[0].astype(float)
    q = np.histogram(y.numpy(), bins=8, range=(0, 1))[0].astype(float)
    p, q = p / p.sum(), q / q.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = {
            "correlation": np.corrcoef(p, q)[0, 1],
            "chi_square": np.sum(np.where(p > 0, (p - q) ** 2 / p, 0)),
            "chi_square_alt": 2 * np.sum(np.where(p + q > 0, (p - q) ** 2 / (p + q), 0)),
            "intersection": np.minimum(p, q).sum(),
            "bhattacharyya": np.sqrt(max(1 - np.sqrt(p * q).sum(), 0)),
            "kl_div": np.sum(np.where(p > 0, p * np.log(p / np.where(q > 0, q, 1e-10)), 0)),
            "overlap": np.mean(np.where(np.maximum(p, q) > 0, 1 - np.abs(p - q) / np.maximum(p, q), 1)),
        }
    for method, ref in expected.items():
        got = torchsim.histogram_similarity(x, y, bins=8, method=method).item()
        assert got == pytest.approx(ref, rel=1e-9, abs=1e-12), method


def test_overlap_is_one_where_both_bins_are_empty():
    x = torch.zeros(1, 1, 4, 4)
    y = torch.zeros(1, 1, 4, 4)
    assert torchsim.histogram_similarity(x, y, bins=10, method="overlap").item() == 1.0
    y[..., :2, :] = 1.0  # bin 0: 1 vs 0.5, bin 9: 0 vs 0.5, 8 empty bins
    assert torchsim.histogram_similarity(x, y, bins=10, method="overlap").item() == pytest.approx((8 + 0.5 + 0) / 10)


@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
def test_soft_similarity_gradcheck(method):
    fn = lambda a, b: torchsim.histogram_similarity(a, b, bins=6, method=method, bandwidth=1.0, reduction="none")  # noqa: E731
    assert_gradcheck(fn, rand((2, 2, 4, 3), seed=5), rand((2, 2, 4, 3), seed=6))


@pytest.mark.parametrize("case", sorted(degenerate_pairs(1, 1, 2, 2)))
@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
def test_finite_gradients_on_identical_and_constant_images(method, case, device):
    x, y = degenerate_pairs(2, 3, 8, 8, seed=7, dtype=torch.float32, device=device)[case]
    assert_finite_gradients(torchsim.histogram_similarity, x, y, bins=16, method=method, bandwidth=1.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32(dtype):
    x, y = rand((2, 3, 8, 8), seed=1, dtype=torch.float32), rand((2, 3, 8, 8), seed=2, dtype=torch.float32)
    for bw in (0.0, 1.0):
        got = torchsim.histogram_similarity(x.to(dtype), y.to(dtype), bins=16, bandwidth=bw)
        ref = torchsim.histogram_similarity(x.to(dtype).float(), y.to(dtype).float(), bins=16, bandwidth=bw)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, ref)


def test_module_equals_function():
    x, y = rand((2, 3, 8, 8), seed=1, dtype=torch.float32), rand((2, 3, 8, 8), seed=2, dtype=torch.float32)
    m = torchsim.HistogramSimilarity(bins=16, method="intersection", reduction="none")
    torch.testing.assert_close(m(x, y), torchsim.histogram_similarity(x, y, bins=16, method="intersection", reduction="none"))
    assert "intersection" in repr(m)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        (dict(bins=0), ValueError, r"histogram: bins must be a positive integer, got 0"),
        (dict(bins=-3), ValueError, r"histogram: bins"),
        (dict(bins=2.5), ValueError, r"histogram: bins"),
        (dict(bins=True), ValueError, r"histogram: bins"),
        (dict(value_range=(1.0, 0.0)), ValueError, r"histogram: value_range must have lo < hi"),
        (dict(value_range=(0.5, 0.5)), ValueError, r"histogram: value_range must have lo < hi"),
        (dict(value_range=(0.0, float("inf"))), ValueError, r"histogram: value_range must be finite"),
        (dict(value_range=(float("nan"), 1.0)), ValueError, r"histogram: value_range must be finite"),
        (dict(value_range="auto"), ValueError, r"histogram: value_range must be None, 'minmax'"),
        (dict(value_range=(0.0,)), ValueError, r"histogram: value_range must be None, 'minmax' or a \(lo, hi\) pair"),
        (dict(value_range=1.0), ValueError, r"histogram: value_range"),
        (dict(bandwidth=-1.0), ValueError, r"histogram: bandwidth must be a finite number >= 0"),
        (dict(bandwidth=float("nan")), ValueError, r"histogram: bandwidth"),
    ],
)
def test_histogram_bad_arguments(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        torchsim.histogram(rand((1, 1, 4, 4), dtype=torch.float32), **kwargs)


def test_histogram_bad_inputs():
    with pytest.raises(TypeError, match=r"histogram: x must be a torch.Tensor"):
        torchsim.histogram(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match=r"histogram: x must have dtype"):
        torchsim.histogram(torch.zeros(1, 1, 4, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"histogram: x must be 4-D"):
        torchsim.histogram(torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match=r"histogram: x must not be empty"):
        torchsim.histogram(torch.zeros(0, 1, 4, 4))


def test_histogram_similarity_bad_inputs():
    x = rand((1, 3, 4, 4), dtype=torch.float32)
    fn = torchsim.histogram_similarity
    with pytest.raises(ValueError, match=r"histogram_similarity: method must be one of 'correlation'.*got 'emd'"):
        fn(x, x, method="emd")
    with pytest.raises(ValueError, match=r"histogram_similarity: reduction"):
        fn(x, x, reduction="avg")
    with pytest.raises(ValueError, match=r"histogram_similarity: x and y must have the same shape"):
        fn(x, x[:, :1])
    with pytest.raises(TypeError, match=r"histogram_similarity: x and y must both be floating, both uint8 or both uint16"):
        fn(x, (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"histogram_similarity: bins"):
        fn(x, x, bins=0)
    with pytest.raises(ValueError, match=r"histogram_similarity: value_range"):
        fn(x, x, value_range=(2, 1))
    with pytest.raises(ValueError, match=r"histogram_similarity: x must be 4-D"):
        fn(x[0], x[0])


def test_channels_last_float_input_counts_the_same():
    x = torch.rand(2, 3, 16, 16)
    cl = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(torchsim.histogram(cl, bins=32), torchsim.histogram(x, bins=32))
    assert torch.equal(torchsim.histogram_similarity(cl, cl.flip(-1)), torchsim.histogram_similarity(x, x.flip(-1)))
