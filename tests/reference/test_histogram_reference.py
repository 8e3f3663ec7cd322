"""histogram / histogram_similarity against OpenCV (calcHist, compareHist) and NumPy on real photographs.

Photographs from ``skimage.data`` (downscaled by 4 to keep the file fast), each
with three realistic distortions (noise, blur, JPEG); expected values are
computed by the references at test time.
"""

import cv2
import numpy as np
import pytest
import torch

import torchsim
from tests.helpers import DISTORTIONS, PHOTOS, to_nchw, u8

CV_METHODS = {
    "correlation": cv2.HISTCMP_CORREL,
    "chi_square": cv2.HISTCMP_CHISQR,
    "chi_square_alt": cv2.HISTCMP_CHISQR_ALT,
    "intersection": cv2.HISTCMP_INTERSECT,
    "bhattacharyya": cv2.HISTCMP_BHATTACHARYYA,
    "kl_div": cv2.HISTCMP_KL_DIV,
}


@pytest.fixture(scope="module")
def pairs(photo_pairs):
    """``{(photo, distortion): (reference uint8 HxW[xC], distorted uint8)}``."""
    return {key: (u8(a), u8(b)) for key, (a, b) in photo_pairs.items()}


def _channels(a):
    return [a] if a.ndim == 2 else [np.ascontiguousarray(a[..., c]) for c in range(a.shape[2])]


def _cv_hist(a, bins=256, rng=(0, 256)):
    return cv2.calcHist([a], [0], None, [bins], list(rng)).ravel()


@pytest.mark.parametrize("name", PHOTOS)
def test_uint8_histogram_equals_calchist(photos, name):
    a = u8(photos[name])
    h = torchsim.histogram(to_nchw(a))
    for c, ch in enumerate(_channels(a)):
        np.testing.assert_array_equal(h[0, c].numpy(), _cv_hist(ch))
    # 64 bins over [0, 256) as OpenCV's [0, 256] range means; torchsim takes the range as given
    h64 = torchsim.histogram(to_nchw(a), bins=64, value_range=(0, 256))
    for c, ch in enumerate(_channels(a)):
        np.testing.assert_array_equal(h64[0, c].numpy(), _cv_hist(ch, 64))


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_histogram_equals_numpy(photos, name, dtype):
    img = DISTORTIONS["noise"](photos[name][::2, ::2]).astype(dtype)
    t = to_nchw(img)
    for bins, rng in [(256, None), (100, None), (37, (0.2, 0.8))]:
        h = torchsim.histogram(t, bins=bins, value_range=rng)
        for c, ch in enumerate(_channels(img)):
            # float64 edges for every dtype, as OpenCV (SPEC): NumPy's float32 edges would move a
            # float32 pixel one step below an edge (camera, 37 bins) into the next bin
            ref = np.histogram(ch.astype(np.float64), bins=bins, range=rng or (0, 1))[0]
            np.testing.assert_array_equal(h[0, c].numpy(), ref)
    h = torchsim.histogram(t, bins=50, value_range="minmax")
    for c, ch in enumerate(_channels(img)):
        np.testing.assert_array_equal(h[0, c].numpy(), np.histogram(ch, bins=50, range=(img.min(), img.max()))[0])


@pytest.mark.parametrize("method", list(CV_METHODS))
def test_similarity_equals_comparehist(pairs, method):
    for (name, dist), (a, b) in pairs.items():
        ref = np.mean(
            [
                cv2.compareHist(h1 / h1.sum(), h2 / h2.sum(), CV_METHODS[method])
                for h1, h2 in ((_cv_hist(p), _cv_hist(q)) for p, q in zip(_channels(a), _channels(b)))
            ]
        )
        x, y = to_nchw(a), to_nchw(b)
        got = torchsim.histogram_similarity(x, y, method=method).item()
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-6), (name, dist)
        if dist != "jpeg":
            continue
        # the same images as floats in [0, 1] bin identically with 256 bins
        got_f = torchsim.histogram_similarity(x.float() / 255, y.float() / 255, method=method).item()
        assert got_f == pytest.approx(ref, rel=1e-5, abs=1e-6), (name, dist)


@pytest.mark.parametrize("method", list(CV_METHODS))
def test_similarity_64_bins_equals_comparehist(pairs, method):
    for (name, dist), (a, b) in pairs.items():
        ref = np.mean(
            [
                cv2.compareHist(h1 / h1.sum(), h2 / h2.sum(), CV_METHODS[method])
                for h1, h2 in ((_cv_hist(p, 64), _cv_hist(q, 64)) for p, q in zip(_channels(a), _channels(b)))
            ]
        )
        got = torchsim.histogram_similarity(to_nchw(a), to_nchw(b), bins=64, value_range=(0, 256), method=method).item()
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-6), (name, dist)


def test_batched_photos_equal_one_by_one(pairs):
    same = [(a, b) for (name, _), (a, b) in pairs.items() if name == "astronaut"]
    x = torch.cat([to_nchw(a) for a, _ in same])
    y = torch.cat([to_nchw(b) for _, b in same])
    batch = torchsim.histogram_similarity(x, y, method="bhattacharyya", reduction="none")
    singles = torch.stack([torchsim.histogram_similarity(x[i : i + 1], y[i : i + 1], method="bhattacharyya") for i in range(len(same))])
    torch.testing.assert_close(batch, singles)


def test_soft_similarity_close_to_exact_on_photos(pairs):
    a, b = pairs[("chelsea", "blur")]
    x, y = to_nchw(a).float() / 255, to_nchw(b).float() / 255
    exact = torchsim.histogram_similarity(x, y, bins=64, method="correlation")
    soft = torchsim.histogram_similarity(x, y, bins=64, method="correlation", bandwidth=0.5)
    assert abs(soft.item() - exact.item()) < 0.05


# bounds that are float32 numbers, as OpenCV takes its ranges (float)
F32_RANGES = [(37, (0.2, 0.8)), (100, (0.01, 0.99)), (255, (0.25, 0.75)), (1000, (-0.5, 1.5))]


def test_float32_photos_binned_as_calchist(photos):
    """float32 photographs (noise, blur, JPEG) at full size: every bin equals ``cv2.calcHist``, whose
    bin of a float32 pixel comes from float64 arithmetic. NumPy on the same float32 arrays, whose
    edges are float32, puts a few pixels per image in the neighbouring bin. OpenCV's range is
    half-open ``[lo, hi)``; torchsim's last bin is closed, so pixels equal to ``hi`` are added back."""
    numpy_moved = 0
    for name in PHOTOS:
        for dist in ("noise", "blur", "jpeg"):
            img = np.clip(DISTORTIONS[dist](photos[name]), 0, 1).astype(np.float32)
            x = to_nchw(img)
            for bins, rng in F32_RANGES:
                lo, hi = (float(np.float32(b)) for b in rng)
                h = torchsim.histogram(x, bins=bins, value_range=(lo, hi))
                for c, ch in enumerate(_channels(img)):
                    ref = cv2.calcHist([ch], [0], None, [bins], [lo, hi]).ravel()
                    ref[-1] += (ch == np.float32(hi)).sum()
                    np.testing.assert_array_equal(h[0, c].numpy(), ref, err_msg=f"{name} {dist} {bins} {rng}")
                    numpy_moved += int(np.abs(np.histogram(ch, bins, (lo, hi))[0] - ref).sum())
    assert numpy_moved > 0  # the case the float64 edges exist for occurs on real photographs
