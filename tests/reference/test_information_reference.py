"""mutual_information / normalized_mutual_information against scikit-learn and scikit-image on real photographs.

scikit-learn scores labellings: the labels here are the bins NumPy assigns to every
value (for uint8 images with 256 bins, the raw values). scikit-image's
``normalized_mutual_information`` is Studholme's NMI over each image's own
min..max (``numpy.histogramdd``). Photographs from ``skimage.data`` downscaled
by 4, each with noise, blur and JPEG distortions; the expected values are
computed by the references at test time.
"""

import numpy as np
import pytest
import torch
from skimage.metrics import normalized_mutual_information as sk_nmi
from sklearn.metrics import mutual_info_score, normalized_mutual_info_score

import torchsim
from tests.helpers import DISTORTIONS, PHOTOS, to_nchw, u8

AVERAGE_METHODS = ["arithmetic", "geometric", "min", "max"]


def _one_per_photo(pairs):
    """One distortion per photograph (rotating), for the slower float comparisons."""
    dists = list(DISTORTIONS)
    return {k: v for k, v in pairs.items() if dists.index(k[1]) == PHOTOS.index(k[0]) % len(dists)}


def _labels(a, bins, rng=(0.0, 1.0)):
    """NumPy's bin of every value (last bin closed), as sklearn labels."""
    edges = np.linspace(rng[0], rng[1], bins + 1)
    return np.clip(np.searchsorted(edges, a.ravel(), side="right") - 1, 0, bins - 1)


def test_mi_uint8_equals_sklearn(photo_pairs):
    for (name, dist), (a, b) in photo_pairs.items():
        a8, b8 = u8(a), u8(b)
        ref = mutual_info_score(a8.ravel(), b8.ravel())
        got = torchsim.mutual_information(to_nchw(a8), to_nchw(b8)).item()
        assert got == pytest.approx(ref, rel=1e-5), (name, dist)


@pytest.mark.parametrize("method", AVERAGE_METHODS)
def test_nmi_uint8_equals_sklearn(photo_pairs, method):
    for (name, dist), (a, b) in photo_pairs.items():
        a8, b8 = u8(a), u8(b)
        ref = normalized_mutual_info_score(a8.ravel(), b8.ravel(), average_method=method)
        got = torchsim.normalized_mutual_information(to_nchw(a8), to_nchw(b8), normalization=method).item()
        assert got == pytest.approx(ref, rel=1e-5), (name, dist)


@pytest.mark.parametrize("bins", [256, 64])
def test_float_inputs_equal_sklearn_on_numpy_bins(photo_pairs, bins):
    for (name, dist), (a, b) in _one_per_photo(photo_pairs).items():
        la, lb = _labels(a, bins), _labels(b, bins)
        x, y = to_nchw(a), to_nchw(b)  # float64
        assert torchsim.mutual_information(x, y, bins=bins).item() == pytest.approx(mutual_info_score(la, lb), rel=1e-9)
        for method in ("arithmetic", "max"):
            ref = normalized_mutual_info_score(la, lb, average_method=method)
            got = torchsim.normalized_mutual_information(x, y, bins=bins, normalization=method).item()
            assert got == pytest.approx(ref, rel=1e-9), (name, dist, method)
        # float32 gives the same numbers to float32 precision
        got32 = torchsim.normalized_mutual_information(x.float(), y.float(), bins=bins).item()
        assert got32 == pytest.approx(normalized_mutual_info_score(la, lb), rel=1e-5), (name, dist)


def test_uint8_with_a_coarser_range_equals_sklearn(photo_pairs):
    a, b = photo_pairs[("coffee", "jpeg")]
    a8, b8 = u8(a), u8(b)
    la, lb = _labels(a8.astype(np.float64), 32, (0, 255)), _labels(b8.astype(np.float64), 32, (0, 255))
    got = torchsim.normalized_mutual_information(to_nchw(a8), to_nchw(b8), bins=32, normalization="geometric").item()
    assert got == pytest.approx(normalized_mutual_info_score(la, lb, average_method="geometric"), rel=1e-5)


@pytest.mark.parametrize("bins", [256, 100, 32])
def test_studholme_minmax_equals_skimage(photo_pairs, bins):
    floats = _one_per_photo(photo_pairs)
    for (name, dist), (a, b) in photo_pairs.items():
        casts = [(u8, 1e-6)]
        if (name, dist) in floats:
            casts += [(lambda t: t, 1e-10), (lambda t: t.astype(np.float32), 1e-6)]
        for cast, rel in casts:
            p, q = cast(a), cast(b)
            ref = sk_nmi(p, q, bins=bins)
            got = torchsim.normalized_mutual_information(
                to_nchw(p), to_nchw(q), bins=bins, value_range="minmax", normalization="studholme"
            ).item()
            assert got == pytest.approx(ref, rel=rel), (name, dist, p.dtype)


def test_batched_photos_equal_sklearn_one_by_one(photo_pairs):
    items = [(a, b) for (name, _), (a, b) in photo_pairs.items() if name == "camera"]
    x = torch.cat([to_nchw(u8(a)) for a, _ in items])
    y = torch.cat([to_nchw(u8(b)) for _, b in items])
    got = torchsim.normalized_mutual_information(x, y, reduction="none")
    ref = [normalized_mutual_info_score(u8(a).ravel(), u8(b).ravel()) for a, b in items]
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5)


def test_constant_images_like_sklearn():
    c = np.full((16, 16), 7, np.uint8)
    d = np.full((16, 16), 200, np.uint8)
    rng = np.random.default_rng(0)
    r = rng.integers(0, 256, (16, 16)).astype(np.uint8)
    for a, b in [(c, d), (c, r), (r, d), (c, c)]:
        for method in AVERAGE_METHODS:
            ref = normalized_mutual_info_score(a.ravel(), b.ravel(), average_method=method)
            got = torchsim.normalized_mutual_information(to_nchw(a), to_nchw(b), normalization=method).item()
            assert got == pytest.approx(ref, abs=1e-7)
        assert torchsim.mutual_information(to_nchw(a), to_nchw(b)).item() == pytest.approx(mutual_info_score(a.ravel(), b.ravel()), abs=1e-7)


def test_soft_nmi_close_to_exact_on_photos(photo_pairs):
    a, b = photo_pairs[("astronaut", "noise")]
    x, y = to_nchw(a).float(), to_nchw(b).float()
    exact = torchsim.normalized_mutual_information(x, y, bins=32).item()
    soft = torchsim.normalized_mutual_information(x, y, bins=32, bandwidth=0.25).item()
    assert soft == pytest.approx(exact, abs=0.02)
