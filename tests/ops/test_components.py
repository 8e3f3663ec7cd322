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

from torchsim.ops import component_boxes, label_components, otsu_threshold

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


def test_boxes_come_in_raster_order_of_first_pixels():
    m = torch.zeros(1, 10, 10, dtype=torch.bool)
    m[0, 5:7, 1:3] = True
    m[0, 1, 8] = True
    m[0, 5, 6:9] = True
    assert component_boxes(m)[0].tolist() == [[8, 1, 9, 2], [1, 5, 3, 7], [6, 5, 9, 6]]
