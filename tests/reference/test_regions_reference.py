"""diff_regions vs the scikit-image + OpenCV recipe on real photographs with local edits.

Recipe (SPEC, "Difference regions")::

    g1, g2 = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    _, m = structural_similarity(g1, g2, full=True)
    u = (m * 255).astype("uint8")
    t = cv2.threshold(u, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
    boxes = [cv2.boundingRect(c) for c in cv2.findContours(t, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]]
"""

import warnings

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from skimage.metrics import structural_similarity

import torchsim
from tests.helpers import photo_u8, to_nchw
from torchsim.functional.regions import _gray
from torchsim.ops import component_boxes, otsu_threshold


def _recipe(a: np.ndarray, b: np.ndarray):
    g1, g2 = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
    _, m = structural_similarity(g1, g2, full=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy warns when casting negative SSIM
        u = (m * 255).astype("uint8")
    t = cv2.threshold(u, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
    contours = cv2.findContours(t, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
    boxes = sorted((x, y, x + w, y + h) for x, y, w, h in map(cv2.boundingRect, contours))
    return boxes, m


def _edit(img: np.ndarray, kind: str) -> np.ndarray:
    out = img.copy()
    if kind == "paste":  # a patch from elsewhere in the photo
        out[40:80, 60:120] = img[130:170, 10:70]
    elif kind == "erase":  # a flat rectangle of the local mean colour
        out[30:70, 30:90] = img[30:70, 30:90].mean((0, 1)).astype(np.uint8)
    else:  # a drawn shape and text
        pil = Image.fromarray(out)
        d = ImageDraw.Draw(pil)
        d.ellipse([150, 20, 200, 60], fill=(200, 30, 30))
        d.text((20, 150), "EDIT", fill=(255, 255, 255))
        out = np.asarray(pil).copy()
    return out


def _photo(name: str) -> np.ndarray:
    return photo_u8(name, size=(256, 192), rgb=True)


def _match_within(ref, got, tol=2):
    assert len(ref) == len(got), f"{len(ref)} reference boxes, {len(got)} boxes: {ref} vs {got}"
    remaining = list(got)
    for box in ref:
        close = [g for g in remaining if max(abs(u - v) for u, v in zip(box, g)) <= tol]
        assert close, f"no box within {tol} px of {box}: {got}"
        remaining.remove(close[0])


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket"])
@pytest.mark.parametrize("kind", ["paste", "erase", "draw"])
def test_boxes_match_the_recipe_on_photos(name, kind):
    a = _photo(name)
    b = _edit(a, kind)
    ref, _ = _recipe(a, b)
    got = [tuple(r) for r in torchsim.diff_regions(to_nchw(a), to_nchw(b))[0].tolist()]
    assert ref  # the edit is found
    _match_within(ref, sorted(got))


def test_batched_photos_match_the_recipe():
    pairs = [(a, _edit(a, k)) for a, k in ((_photo("astronaut"), "draw"), (_photo("coffee"), "paste"))]
    boxes = torchsim.diff_regions(torch.cat([to_nchw(a) for a, _ in pairs]), torch.cat([to_nchw(b) for _, b in pairs]))
    for (a, b), got in zip(pairs, boxes):
        _match_within(_recipe(a, b)[0], sorted(tuple(r) for r in got.tolist()))


def test_ssim_map_equals_skimage_full():
    a = _photo("chelsea")
    b = _edit(a, "paste")
    _, ref = _recipe(a, b)
    _, smap = torchsim.diff_regions(to_nchw(a), to_nchw(b), return_map=True)
    np.testing.assert_allclose(smap[0, 0].numpy(), ref, rtol=0, atol=1e-10)


def test_gray_equals_cv2():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
    got = _gray(to_nchw(img))[0, 0].numpy()
    np.testing.assert_array_equal(got, cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float64))


def test_otsu_equals_cv2():
    rng = np.random.default_rng(1)
    for trial in range(30):
        if trial % 3 == 0:
            u = rng.integers(0, 256, (40, 50))
        elif trial % 3 == 1:
            u = np.clip(rng.normal(200, 30, (40, 50)), 0, 255)
        else:
            u = np.concatenate([rng.integers(0, 80, 900), rng.integers(150, 256, 1100)]).reshape(40, 50)
        u = u.astype(np.uint8)
        t, _ = cv2.threshold(u, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)
        assert otsu_threshold(torch.from_numpy(u).long()[None]).item() == int(t)


def test_external_boxes_equal_find_contours_on_random_masks():
    rng = np.random.default_rng(2)
    for trial in range(20):
        m = (rng.random((45, 60)) < rng.choice([0.2, 0.45, 0.6])).astype(np.uint8) * 255
        if trial % 2:
            m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))  # rings with holes
        contours = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        ref = sorted((x, y, x + w, y + h) for x, y, w, h in map(cv2.boundingRect, contours))
        got = sorted(tuple(r) for r in component_boxes(torch.from_numpy(m > 0)[None], 0)[0].tolist())
        assert got == ref
