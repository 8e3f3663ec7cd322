"""diff_regions' additions to the scikit-image + OpenCV recipe, against the recipe written out:
the ``min_ssim`` floor, ignore masks, and per-region pixel counts and mean SSIM.

The recipe (SPEC, "Difference regions") with the additions applied where they act::

    b[ignored] = a[ignored]                                     # ignored pixels do not differ
    _, m = structural_similarity(gray(a), gray(b), full=True)
    u = (m * 255).astype("uint8")
    t = threshold_otsu(hist=(bincount(u[~ignored]), arange(256)))   # cv2's split on 8-bit images
    mask = (u <= t) & (m < min_ssim) & ~ignored
    boxes = boundingRect of findContours(mask, RETR_EXTERNAL)
    pixels, mean SSIM = scipy.ndimage.sum / mean over each 8-connected region
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import ndimage
from skimage import data
from skimage.filters import threshold_otsu
from skimage.metrics import structural_similarity

import torchsim
from tests.helpers import to_nchw

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")


def _photo(name: str, size=(256, 192)) -> np.ndarray:
    return np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB").resize(size, Image.BILINEAR)).copy()


def _noisy(a: np.ndarray, seed: int = 0) -> np.ndarray:
    """±1 level of noise on every pixel: the same picture to the eye (PSNR ~50 dB)."""
    rng = np.random.default_rng(seed)
    return np.clip(a.astype(np.int16) + rng.integers(-1, 2, a.shape), 0, 255).astype(np.uint8)


def _edited(a: np.ndarray) -> np.ndarray:
    pil = Image.fromarray(a)
    d = ImageDraw.Draw(pil)
    d.rectangle([20, 30, 70, 60], fill=(250, 250, 250))
    d.text((150, 140), "v2.1", fill=(0, 0, 0))
    return np.asarray(pil).copy()


def _recipe(a, b, ignored=None, min_ssim=None):
    if ignored is not None:
        b = np.where(ignored[..., None], a, b)
    g1, g2 = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    _, m = structural_similarity(g1, g2, full=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        u = (m * 255).astype("uint8")
    keep = np.ones(u.shape, bool) if ignored is None else ~ignored
    t = threshold_otsu(hist=(np.bincount(u[keep], minlength=256), np.arange(256)))
    mask = (u <= t) & keep
    if min_ssim is not None:
        mask &= m < min_ssim
    contours = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    boxes = sorted((x, y, x + w, y + h) for x, y, w, h in map(cv2.boundingRect, contours))
    lab, n = ndimage.label(mask, structure=np.ones((3, 3)))
    idx = np.arange(1, n + 1)
    stats = {
        (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop): (size, mean)
        for sl, size, mean in zip(ndimage.find_objects(lab), ndimage.sum(mask, lab, idx), ndimage.mean(m, lab, idx))
    }
    return boxes, stats


def _boxes(found):
    return sorted(tuple(b) for b in found.tolist())


@pytest.mark.parametrize("name", PHOTOS)
def test_near_identical_photos_have_no_regions_above_the_floor(name):
    """The recipe splits ±1 noise into hundreds of regions; the 0.9 floor leaves none, and
    ``min_ssim=None`` is the recipe."""
    a = _photo(name)
    b = _noisy(a)
    ref, _ = _recipe(a, b)
    assert len(ref) > 10
    x, y = to_nchw(a), to_nchw(b)
    assert torchsim.diff_regions(x, y)[0].shape == (0, 4)
    assert _boxes(torchsim.diff_regions(x, y, min_ssim=None)[0]) == ref
    assert _boxes(torchsim.diff_regions(x, y, min_ssim=0.99)[0]) == _recipe(a, b, min_ssim=0.99)[0]


@pytest.mark.parametrize("name", PHOTOS)
def test_an_edit_on_a_noisy_copy_is_found_alone(name):
    a = _photo(name)
    b = _edited(_noisy(a, seed=1))
    ref, stats = _recipe(a, b, min_ssim=0.9)
    boxes, (st,) = torchsim.diff_regions(to_nchw(a), to_nchw(b), return_stats=True)
    assert _boxes(boxes[0]) == ref and ref
    edits = [(16, 26, 75, 65), (146, 136, 185, 160)]  # the rectangle and the text, 4 pixels wider
    assert all(any(x0 < u1 and u0 < x1 and y0 < v1 and v0 < y1 for u0, v0, u1, v1 in edits) for x0, y0, x1, y1 in ref)
    for box, pixels, mean in zip(boxes[0].tolist(), st[0].tolist(), st[1].tolist()):
        ref_pixels, ref_mean = stats[tuple(box)]
        assert pixels == ref_pixels and mean == pytest.approx(ref_mean, abs=1e-9)


@pytest.mark.parametrize("name", PHOTOS)
def test_ignored_pixels_neither_count_nor_differ(name):
    """Ignoring the edited rectangle leaves the text's regions; the recipe with the ignored pixels
    made equal and left out of Otsu's histogram gives the same boxes."""
    a = _photo(name)
    b = _edited(a)
    ignored = np.zeros(a.shape[:2], bool)
    ignored[25:66, 15:76] = True  # around the filled rectangle
    mask = torch.from_numpy(ignored)[None, None]
    x, y = to_nchw(a), to_nchw(b)
    for min_ssim in (None, 0.9):
        ref, _ = _recipe(a, b, ignored, min_ssim)
        got = torchsim.diff_regions(x, y, mask=mask, min_ssim=min_ssim)[0]
        assert _boxes(got) == ref
        assert all(not ignored[y0:y1, x0:x1].all() for x0, y0, x1, y1 in ref)
    everything = torchsim.diff_regions(x, y)[0]
    assert any(x0 < 70 and y0 < 60 for x0, y0, _, _ in everything.tolist())  # the rectangle, found unmasked
    assert not any(20 <= x0 and x1 <= 71 and 30 <= y0 and y1 <= 61 for x0, y0, x1, y1 in got.tolist())
    rects = torchsim.diff_regions(x, y, mask=[(15, 25, 76, 66)])[0]
    assert torch.equal(rects, got)
