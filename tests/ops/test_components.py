"""torchsim.ops.components on its own, on real photographs: Otsu vs scikit-image and OpenCV,
labelling vs scipy.ndimage.label, boxes vs cv2.findContours + cv2.boundingRect."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data
from skimage.filters import threshold_otsu

from torchsim.ops import component_boxes, component_regions, label_components, otsu_threshold

PHOTOS = ["camera", "astronaut", "coffee", "chelsea", "rocket", "coins"]


def _gray_u8(name: str) -> np.ndarray:
    img = getattr(data, name)()
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def _masks(size: int = 96) -> np.ndarray:
    """(M, size, size) bool masks from real photos: Otsu foregrounds and edge maps of crops.

    Downscaled with INTER_AREA so regions are small and many, with holes and nested islands.
    """
    out = []
    for name in PHOTOS:
        g = cv2.resize(_gray_u8(name), (size, size), interpolation=cv2.INTER_AREA)
        out.append(g > cv2.threshold(g, 0, 255, cv2.THRESH_OTSU)[0])
        edges = np.hypot(ndimage.sobel(g.astype(float), 0), ndimage.sobel(g.astype(float), 1))
        out.append(edges > np.percentile(edges, 80))
    return np.stack(out)


@pytest.fixture(scope="module")
def masks():
    return _masks()


@pytest.mark.parametrize("name", PHOTOS)
def test_otsu_equals_skimage_and_cv2_on_photos(name, device):
    """skimage's threshold_otsu and cv2's THRESH_OTSU pick the same split ``<= t | > t`` on
    8-bit images (skimage on the photo's own histogram of integer bins); ours is cv2's rule."""
    g = _gray_u8(name)
    t = otsu_threshold(torch.from_numpy(g)[None].to(device)).item()
    assert t == threshold_otsu(g)
    assert t == int(cv2.threshold(g, 0, 255, cv2.THRESH_OTSU)[0])


def test_otsu_batched_equals_one_by_one_on_photo_crops():
    crops = np.stack([_gray_u8(n)[:256, :256] for n in PHOTOS])
    got = otsu_threshold(torch.from_numpy(crops))
    assert got.dtype == torch.int64 and got.shape == (len(PHOTOS),)
    assert got.tolist() == [threshold_otsu(c) for c in crops]


@pytest.mark.parametrize("name", PHOTOS)
def test_otsu_over_valid_pixels_equals_skimage_on_those_pixels(name):
    """The histogram of the valid pixels only: skimage's threshold_otsu of ``g[valid]``."""
    g = _gray_u8(name)
    valid = np.zeros(g.shape, bool)
    valid[: g.shape[0] // 2] = True  # the top half (sky, background) has another histogram
    t = otsu_threshold(torch.from_numpy(g)[None], torch.from_numpy(valid)[None]).item()
    assert t == threshold_otsu(g[valid]) != threshold_otsu(g)
    nothing = otsu_threshold(torch.from_numpy(g)[None], torch.zeros(1, *g.shape, dtype=torch.bool))
    assert nothing.tolist() == [0]  # no pixel to split: 0, as for a constant image


def test_otsu_of_a_constant_image_is_zero_as_in_cv2():
    u = np.full((8, 9), 77, np.uint8)
    assert otsu_threshold(torch.from_numpy(u)[None]).tolist() == [int(cv2.threshold(u, 0, 255, cv2.THRESH_OTSU)[0])] == [0]


@pytest.mark.parametrize("connectivity, structure", [(8, np.ones((3, 3), int)), (4, None)])
def test_labelling_equals_scipy_on_photo_masks(masks, connectivity, structure, device):
    """Same partition as scipy.ndimage.label; each label is the flat batch index of the
    component's first pixel in raster order; background is N*H*W."""
    lab = label_components(torch.from_numpy(masks).to(device), connectivity).cpu().numpy()
    n, h, w = masks.shape
    total = 0
    for i in range(n):
        ref, nref = ndimage.label(masks[i], structure=structure)
        total += nref
        assert (lab[i][~masks[i]] == n * h * w).all()
        flat = np.arange(h * w).reshape(h, w) + i * h * w
        firsts = ndimage.minimum(flat, ref, index=np.arange(1, nref + 1))
        expected = np.full((h, w), n * h * w)
        expected[masks[i]] = np.asarray(firsts, dtype=np.int64)[ref[masks[i]] - 1]
        np.testing.assert_array_equal(lab[i], expected)
    assert total > 300  # real masks with many regions


def test_labelling_rejects_other_connectivities():
    with pytest.raises(ValueError, match="label_components: connectivity must be 4 or 8, got 6"):
        label_components(torch.zeros(1, 3, 3, dtype=torch.bool), 6)


def _cv2_boxes(m: np.ndarray):
    contours = cv2.findContours(m.astype(np.uint8) * 255, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    return sorted((x, y, x + w, y + h) for x, y, w, h in map(cv2.boundingRect, contours))


def test_boxes_equal_cv2_bounding_rects_of_external_contours(masks, device):
    got = component_boxes(torch.from_numpy(masks).to(device))
    assert len(got) == len(masks)
    nested = 0
    for m, boxes in zip(masks, got):
        assert boxes.dtype == torch.int64 and boxes.device.type == device.type
        ref = _cv2_boxes(m)
        assert sorted(tuple(b) for b in boxes.tolist()) == ref
        nested += ndimage.label(m, structure=np.ones((3, 3), int))[1] - len(ref)
    assert nested > 0  # some regions lie in holes of others and are dropped, as cv2 drops them


def test_min_area_keeps_external_regions_of_at_least_that_many_pixels(masks):
    """Reference: scipy's 8-connected components of >= min_area pixels whose box is an external contour's."""
    for m, boxes in zip(masks, component_boxes(torch.from_numpy(masks), min_area=12)):
        ref, nref = ndimage.label(m, structure=np.ones((3, 3), int))
        sizes = ndimage.sum(m, ref, index=np.arange(1, nref + 1))
        external = set(_cv2_boxes(m))
        expected = []
        for size, sl in zip(sizes, ndimage.find_objects(ref)):
            box = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
            if size >= 12 and box in external:
                expected.append(box)
        assert sorted(tuple(b) for b in boxes.tolist()) == sorted(expected)


def test_region_areas_and_means_equal_scipy(masks):
    """Reference: scipy.ndimage.label (8-connected), sum and mean per label, for the regions cv2
    reports (external contours), on photo masks with a photo as the values."""
    values = np.stack([cv2.resize(_gray_u8(n), masks.shape[1:][::-1]).astype(np.float64) for n in PHOTOS for _ in (0, 1)])
    found = component_regions(torch.from_numpy(masks), values=torch.from_numpy(values))
    checked = 0
    for m, v, (boxes, areas, means) in zip(masks, values, found):
        lab, nlab = ndimage.label(m, structure=np.ones((3, 3), int))
        idx = np.arange(1, nlab + 1)
        by_box = {
            (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop): (size, mean)
            for sl, size, mean in zip(ndimage.find_objects(lab), ndimage.sum(m, lab, idx), ndimage.mean(v, lab, idx))
        }
        assert sorted(tuple(b) for b in boxes.tolist()) == _cv2_boxes(m)
        for box, area, mean in zip(boxes.tolist(), areas.tolist(), means.tolist()):
            size, ref_mean = by_box[tuple(box)]
            assert area == size and mean == pytest.approx(ref_mean, rel=1e-12)
            checked += 1
    assert checked > 200
    assert all(means is None for _, _, means in component_regions(torch.from_numpy(masks[:2])))


def test_thousands_of_regions_equal_cv2():
    """More regions than the pairwise box test handles (2048): the background is always labelled."""
    m = np.random.default_rng(3).random((2, 200, 200)) < 0.2
    got = component_boxes(torch.from_numpy(m))
    assert len(got[0]) > 2048
    assert [sorted(tuple(b) for b in bx.tolist()) for bx in got] == [_cv2_boxes(v) for v in m]


def test_regions_of_empty_full_and_one_pixel_masks():
    m = torch.zeros(3, 5, 7, dtype=torch.bool)
    m[1] = True
    m[2, 4, 6] = True
    (b0, a0, _), (b1, a1, _), (b2, a2, _) = component_regions(m)
    assert b0.shape == (0, 4) and a0.shape == (0,)
    assert b1.tolist() == [[0, 0, 7, 5]] and a1.tolist() == [35]
    assert b2.tolist() == [[6, 4, 7, 5]] and a2.tolist() == [1]


def test_deeply_nested_rings_keep_only_the_outermost():
    """Rings inside rings inside rings: RETR_EXTERNAL keeps the outer one only; side by side, both."""
    m = np.zeros((2, 40, 80), bool)
    for k in range(0, 18, 3):  # concentric square rings
        m[0, k : 40 - k, k : 40 - k] = True
        m[0, k + 1 : 39 - k, k + 1 : 39 - k] = False
    m[1, 2:10, 2:10] = m[1, 2:10, 60:70] = True
    got = [sorted(tuple(b) for b in bx.tolist()) for bx in component_boxes(torch.from_numpy(m))]
    assert got == [_cv2_boxes(m[0]), _cv2_boxes(m[1])] == [[(0, 0, 40, 40)], [(2, 2, 10, 10), (60, 2, 70, 10)]]


def test_boxes_come_in_raster_order_of_first_pixels():
    m = torch.zeros(1, 10, 10, dtype=torch.bool)
    m[0, 5:7, 1:3] = True
    m[0, 1, 8] = True
    m[0, 5, 6:9] = True
    assert component_boxes(m)[0].tolist() == [[8, 1, 9, 2], [1, 5, 3, 7], [6, 5, 9, 6]]
