"""torchsim.ops.binning on its own: bin edges and indices, exact histograms, soft histograms' autograd.

Exact bins are compared at test time with ``cv2.calcHist`` and ``numpy.histogram`` /
``numpy.histogram2d`` on real photographs (``skimage.data``) and on float32 values placed
one float32 step either side of every bin edge, where OpenCV's float64 edges decide (NumPy,
whose edges are float32 for float32 input, places some of them in the neighbouring bin).
The soft histograms' hand-written backward passes ``gradcheck`` in float64.
"""

import cv2
import numpy as np
import pytest
import torch

from tests.helpers import DISTORTIONS, to_nchw
from torchsim.ops import (
    SoftHistogram,
    SoftJointHistogram,
    bin_edges,
    bin_index,
    count_rows,
    histograms,
    joint_histogram,
    level_bins,
    soft_taps,
)

PHOTOS = ["astronaut", "coffee", "chelsea", "camera"]
# bounds that are float32 numbers, as OpenCV's ranges are (it takes them as float)
F32_RANGES = [(0.0, 1.0), (-0.5, 1.5), (0.25, 0.75), (0.2, 0.8), (0.01, 0.99)]


def _edge_neighbours(lo, hi, bins):
    """float32 values: each edge rounded to float32 and one float32 step either side, inside [lo, hi)."""
    e = np.linspace(lo, hi, bins + 1).astype(np.float32)
    v = np.concatenate([np.nextafter(e, np.float32(-np.inf)), e, np.nextafter(e, np.float32(np.inf))])
    return v[(v >= lo) & (v < hi)]


def _calchist(a: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    return cv2.calcHist([np.ascontiguousarray(a)], [0], None, [bins], [lo, hi]).ravel()


# --------------------------------------------------------------------------- edges and indices


@pytest.mark.parametrize("bins", [3, 10, 37, 100, 255, 256])
@pytest.mark.parametrize("lo_hi", F32_RANGES)
def test_float32_one_step_from_every_edge_equals_calchist(bins, lo_hi):
    lo, hi = (float(np.float32(b)) for b in lo_hi)
    v = _edge_neighbours(lo, hi, bins)
    # the subnormal neighbours (±1.4e-45) of an edge at 0 are out of OpenCV's reach: it
    # computes floor(v · bins / (hi - lo) - lo · bins / (hi - lo)) in double, which rounds
    # them onto the edge; compared with NumPy (float64) below instead
    v = v[(v == 0) | (np.abs(v) > 1e-30)]
    idx = bin_index(torch.from_numpy(v)[None], lo, hi, bins)[0].numpy()
    counts = np.bincount(idx, minlength=bins + 1)
    assert counts[bins] == 0  # every value is inside
    np.testing.assert_array_equal(counts[:bins], _calchist(v[None], bins, lo, hi))
    # = numpy's binning of the same values in float64 (float64 edges)
    np.testing.assert_array_equal(counts[:bins], np.histogram(v.astype(np.float64), bins, (lo, hi))[0])


def test_subnormal_neighbours_of_a_zero_edge():
    v = np.array([-np.float32(1e-45), 0, np.float32(1e-45)], dtype=np.float32)
    ref = np.histogram(v.astype(np.float64), 4, (-0.5, 1.5))[0]
    np.testing.assert_array_equal(np.bincount(bin_index(torch.from_numpy(v)[None], -0.5, 1.5, 4)[0], minlength=5)[:4], ref)
    assert ref.tolist() == [1, 2, 0, 0]


def test_float32_edges_differ_from_numpys_float32_edges():
    """The case the float64 edges exist for: 0.2 + 9 · 0.6 / 37 rounds *down* to float32, and
    that float32 value is below the float64 edge. OpenCV (and torchsim) put it in bin 8,
    NumPy's float32 edges in bin 9."""
    lo, hi, bins = float(np.float32(0.2)), float(np.float32(0.8)), 37
    e64 = np.linspace(lo, hi, bins + 1)
    below = np.nonzero(e64.astype(np.float32) < e64)[0]
    assert below.size
    k = int(below[0])
    v = np.array([e64[k]], dtype=np.float32)
    assert bin_index(torch.from_numpy(v)[None], lo, hi, bins).item() == k - 1
    assert np.argmax(_calchist(v[None], bins, lo, hi)) == k - 1
    assert np.argmax(np.histogram(v, bins, (lo, hi))[0]) == k  # NumPy, float32 edges


def test_float32_values_binned_as_their_float64_values():
    """Comparisons stay in float32 (edges rounded up to float32) yet give the float64 answer."""
    for bins, (lo, hi) in [(37, (0.2, 0.8)), (1000, (-3.0, 7.0)), (99, (0.1, 0.3))]:
        v = _edge_neighbours(lo, hi, bins)
        t = torch.from_numpy(v)[None]
        assert torch.equal(bin_index(t, lo, hi, bins), bin_index(t.double(), lo, hi, bins))
    e = bin_edges(0.2, 0.8, 37, torch.zeros(1))
    assert e.dtype == torch.float64 and e[-1].item() == 0.8


def test_last_bin_closed_and_outside_not_counted():
    v = torch.tensor([[-0.1, 0.0, 0.5, 1.0, 1.1, float("nan")]])
    assert bin_index(v, 0.0, 1.0, 4).tolist() == [[4, 0, 2, 3, 4, 4]]  # 4 = not counted
    assert bin_index(v.double(), 0.0, 1.0, 4).tolist() == [[4, 0, 2, 3, 4, 4]]


def test_minmax_edges_per_image():
    lo = torch.tensor([[0.0], [1.0]])
    hi = torch.tensor([[1.0], [3.0]])
    e = bin_edges(lo, hi, 4, torch.zeros(2, 1))
    assert e.tolist() == [[0.0, 0.25, 0.5, 0.75, 1.0], [1.0, 1.5, 2.0, 2.5, 3.0]]
    v = torch.tensor([[0.3, 1.0], [1.0, 2.9]])
    assert bin_index(v, lo, hi, 4).tolist() == [[1, 3], [0, 3]]


def test_level_bins_equal_binning_every_level():
    x = torch.randint(3, 200, (2, 1, 8, 8), dtype=torch.uint8)
    levels = torch.arange(256, dtype=torch.float32)[None]
    for bins, rng in [(32, None), (7, (10.0, 100.0)), (256, (0.0, 256.0))]:
        lo, hi = rng or (0.0, 255.0)
        assert torch.equal(level_bins(x, rng, bins), bin_index(levels, lo, hi, bins))
    mm = level_bins(x, "minmax", 5)
    for i in range(2):
        lo, hi = float(x[i].min()), float(x[i].max())
        assert torch.equal(mm[i : i + 1], bin_index(levels, lo, hi, 5))


def test_count_rows_equals_bincount():
    idx = torch.randint(0, 9, (3, 50))
    out = count_rows(idx, 9, torch.float32)
    for r in range(3):
        assert torch.equal(out[r], torch.bincount(idx[r], minlength=9).float())


# --------------------------------------------------------------------------- exact histograms


@pytest.mark.parametrize("name", PHOTOS)
def test_uint8_photo_histograms_equal_calchist(photos, name):
    a = np.round(photos[name] * 255).astype(np.uint8)
    x = to_nchw(a)
    chans = [a] if a.ndim == 2 else [a[..., c] for c in range(3)]
    for bins, rng, cv_rng in [(256, None, (0, 256)), (64, (0.0, 256.0), (0, 256)), (32, (0.0, 256.0), (0, 256))]:
        h = histograms(x, bins, rng, 0.0)
        assert h.dtype == torch.float32
        for c, ch in enumerate(chans):
            np.testing.assert_array_equal(h[0, c].numpy(), _calchist(ch, bins, *cv_rng))


def test_uint8_batch_of_rgb_images_with_fewer_bins():
    """The regression: a uint8 batch (N > 1) of RGB images with bins != 256 used to crash
    ("expanded size (6) must match (3)") while moving level counts to bins."""
    x = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    for bins, rng in [(32, None), (10, (20.0, 200.0)), (7, "minmax")]:
        h = histograms(x, bins, rng, 0.0)
        assert h.shape == (2, 3, bins)
        for n in range(2):
            span = (float(x[n].min()), float(x[n].max())) if rng == "minmax" else (rng or (0.0, 255.0))
            for c in range(3):
                ref = np.histogram(x[n, c].numpy(), bins, span)[0]
                np.testing.assert_array_equal(h[n, c].numpy(), ref)


@pytest.mark.parametrize("name", PHOTOS)
def test_float_photo_histograms(photos, name):
    img = DISTORTIONS["noise"](photos[name][::2, ::2])
    chans = [img] if img.ndim == 2 else [img[..., c] for c in range(3)]
    for dtype in (np.float32, np.float64):
        x = to_nchw(img.astype(dtype))
        for bins, lo_hi in [(256, (0.0, 1.0)), (37, (0.25, 0.75)), (100, (0.0, 1.0))]:
            h = histograms(x, bins, lo_hi, 0.0)
            for c, ch in enumerate(chans):
                ref = np.histogram(ch.astype(dtype).astype(np.float64), bins, lo_hi)[0]
                np.testing.assert_array_equal(h[0, c].numpy(), ref)
                if dtype == np.float32:
                    cv = _calchist(ch.astype(np.float32), bins, *lo_hi)
                    cv[-1] += np.count_nonzero(ch.astype(np.float32) == lo_hi[1])  # OpenCV leaves v == hi out
                    np.testing.assert_array_equal(h[0, c].numpy(), cv)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
def test_joint_histogram_equals_histogram2d(photos, dtype):
    a = np.round(photos["astronaut"][::4, ::4] * 255).astype(np.uint8)
    b = np.round(DISTORTIONS["blur"](photos["astronaut"][::4, ::4]) * 255).astype(np.uint8)
    x, y = to_nchw(a), to_nchw(b)
    if dtype == torch.float64:
        x, y = x.double() / 255, y.double() / 255
    scale = 255.0 if dtype == torch.uint8 else 1.0
    for bins, rng in [(256, None), (16, None), (9, "minmax")]:
        j = joint_histogram(x, y, bins, rng, 0.0)
        xs, ys = x.double().flatten().numpy(), y.double().flatten().numpy()
        if rng == "minmax":
            span = [(xs.min(), xs.max()), (ys.min(), ys.max())]
        else:
            span = [(0.0, scale), (0.0, scale)]
        ref = np.histogram2d(xs, ys, bins=bins, range=span)[0]
        np.testing.assert_array_equal(j[0].numpy(), ref)


# --------------------------------------------------------------------------- soft histograms


def test_soft_taps_weights_sum_to_one_and_derivatives():
    u = torch.linspace(-0.5, 8.5, 301, dtype=torch.float64)
    for h in (0.3, 1.0, 2.5):
        j0, w, dw = soft_taps(u.clone(), 8, h)
        assert w.shape[0] == min(int(np.ceil(2 * h)) + 1, 8)
        torch.testing.assert_close(w.sum(0), torch.ones_like(u), rtol=0, atol=1e-12)
        assert bool((j0 >= 0).all() and (j0 + w.shape[0] <= 8).all())
        # the derivative is the u-derivative of each tap's weight (finite differences, same taps)
        eps = 1e-6
        _, wp, _ = soft_taps(u + eps, 8, h)
        _, wm, _ = soft_taps(u - eps, 8, h)
        jp, _, _ = soft_taps(u + eps, 8, h)
        jm, _, _ = soft_taps(u - eps, 8, h)
        same = (jp == j0) & (jm == j0)
        # (central differences are off by up to eps / h² where the second derivative jumps)
        torch.testing.assert_close(((wp - wm) / (2 * eps))[:, same], dw[:, same], rtol=0, atol=1e-4)


def test_soft_histogram_gradcheck():
    g = torch.Generator().manual_seed(0)
    u = (torch.rand(3, 7, generator=g, dtype=torch.float64) * 6).requires_grad_()
    mask = (torch.rand(3, 7, generator=g) > 0.2).double()
    for h in (0.4, 1.0, 2.5):
        assert torch.autograd.gradcheck(lambda t: SoftHistogram.apply(t, mask, 6, h, torch.float64), (u,))


def test_soft_joint_histogram_gradcheck():
    g = torch.Generator().manual_seed(1)
    ux = (torch.rand(2, 6, generator=g, dtype=torch.float64) * 5).requires_grad_()
    uy = (torch.rand(2, 6, generator=g, dtype=torch.float64) * 5).requires_grad_()
    mask = (torch.rand(2, 6, generator=g) > 0.2).double()
    for h in (0.4, 1.0, 2.5):
        assert torch.autograd.gradcheck(lambda a, b: SoftJointHistogram.apply(a, b, mask, 5, h, torch.float64), (ux, uy))


def test_soft_histograms_through_positions_gradcheck():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 2, 3, 4, generator=g, dtype=torch.float64).requires_grad_()
    y = torch.rand(2, 2, 3, 4, generator=g, dtype=torch.float64).requires_grad_()
    for rng in (None, "minmax"):
        assert torch.autograd.gradcheck(lambda a: histograms(a, 6, rng, 1.0), (x,))
        assert torch.autograd.gradcheck(lambda a, b: joint_histogram(a, b, 5, rng, 1.0), (x, y))


def test_soft_counts_keep_mass_and_reach_exact_counts():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64)
    soft = histograms(x, 16, None, 1.5)
    torch.testing.assert_close(soft.sum(-1), torch.full((2, 3), 64.0, dtype=torch.float64))
    assert bool((soft >= 0).all())
    j = joint_histogram(x, x.flip(-1), 16, None, 1.5)
    torch.testing.assert_close(j.sum((1, 2)), torch.full((2,), 192.0, dtype=torch.float64))
    # values at bin centres: a kernel narrower than half a bin gives the exact counts
    centres = (torch.randint(0, 16, (1, 1, 8, 8), generator=g).double() + 0.5) / 16
    assert torch.equal(histograms(centres, 16, None, 0.4), histograms(centres, 16, None, 0.0))


def test_soft_gradients_finite_on_constant_and_edge_values():
    for x in (torch.full((1, 1, 4, 4), 0.5), torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.25)):
        x = x.double().requires_grad_()
        (histograms(x, 8, None, 1.0) ** 2).sum().backward()
        assert torch.isfinite(x.grad).all()
        y = x.detach().clone().requires_grad_()
        (joint_histogram(x, y, 8, "minmax", 1.0) ** 2).sum().backward()
        assert torch.isfinite(y.grad).all()


def test_device_matches_cpu(device):
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 9, 7, generator=g)
    u8 = (x * 255).to(torch.uint8)
    for t in (x, u8):
        for bins, rng, bw in [(32, None, 0.0), (10, "minmax", 0.0), (16, None, 1.0)]:
            if bw and t.dtype == torch.uint8:
                continue
            torch.testing.assert_close(histograms(t.to(device), bins, rng, bw).cpu(), histograms(t, bins, rng, bw))
            torch.testing.assert_close(joint_histogram(t.to(device), t.flip(-1).to(device), bins, rng, bw).cpu(), joint_histogram(t, t.flip(-1), bins, rng, bw))
