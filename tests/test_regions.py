"""diff_regions: behaviour, labelling, nesting, batching, errors (the recipe comparison is in tests/reference)."""

import numpy as np
import pytest
import torch

import torchsim
from torchsim.ops import component_boxes, label_components, otsu_threshold


def _flat_with_block(n=1, size=64):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 3, size, size, generator=g) * 40 + 100).to(torch.uint8)
    y = x.clone()
    y[:, :, 20:30, 40:50] = 0
    return x, y


def test_one_box_around_one_change():
    x, y = _flat_with_block()
    (boxes,) = torchsim.diff_regions(x, y)
    assert boxes.dtype == torch.int64 and boxes.shape == (1, 4)
    x0, y0, x1, y1 = boxes[0].tolist()
    assert x0 <= 40 and y0 <= 20 and x1 >= 50 and y1 >= 30  # contains the change ...
    assert x1 - x0 <= 10 + 12 and y1 - y0 <= 10 + 12  # ... grown by at most the window


def test_identical_images_have_no_regions():
    x, _ = _flat_with_block()
    assert torchsim.diff_regions(x, x)[0].shape == (0, 4)


def test_batch_equals_one_by_one_and_return_map():
    x, y = _flat_with_block(n=3)
    y[1] = x[1]
    boxes, smap = torchsim.diff_regions(x, y, return_map=True)
    assert len(boxes) == 3 and smap.shape == (3, 1, 64, 64) and smap.dtype == torch.float64
    for i in range(3):
        assert torch.equal(torchsim.diff_regions(x[i : i + 1], y[i : i + 1])[0], boxes[i])
    assert boxes[1].shape == (0, 4)


def test_gray_and_float_inputs():
    x, y = _flat_with_block()
    gx, gy = x[:, :1], y[:, :1]
    b8 = torchsim.diff_regions(gx, gy)[0]
    bf = torchsim.diff_regions(gx.double() / 255, gy.double() / 255, data_range=1.0)[0]
    assert torch.equal(b8, bf)
    with pytest.raises(TypeError, match="diff_regions: data_range is required"):
        torchsim.diff_regions(gx.float(), gy.float())


def test_return_stats_and_map_together():
    x, y = _flat_with_block(n=2)
    y[1] = x[1]
    boxes, smap, stats = torchsim.diff_regions(x, y, return_map=True, return_stats=True)
    assert smap.shape == (2, 1, 64, 64) and len(stats) == 2
    (pixels, mean), (p1, m1) = stats
    assert pixels.dtype == torch.int64 and mean.dtype == torch.float64 and pixels.shape == mean.shape == (len(boxes[0]),)
    assert p1.shape == m1.shape == (0,)
    x0, y0, x1, y1 = boxes[0][0].tolist()
    assert pixels[0] <= (x1 - x0) * (y1 - y0) and 0 <= mean[0] < 0.5
    b2, st2 = torchsim.diff_regions(x, y, return_stats=True)
    assert all(torch.equal(a, b) for a, b in zip(b2, boxes)) and torch.equal(st2[0][1], mean)


def test_per_image_masks_and_data_ranges():
    x, y = _flat_with_block(n=2)
    m = torch.zeros(2, 1, 64, 64, dtype=torch.bool)
    m[0, :, 15:35, 35:55] = True  # hides the change in the first image only
    boxes = torchsim.diff_regions(x, y, mask=m)
    assert boxes[0].shape == (0, 4) and boxes[1].shape == (1, 4)
    xf, yf = x.double() / 255, y.double() / 255
    per_image = torchsim.diff_regions(xf, yf, data_range=torch.tensor([1.0, 1.0], dtype=torch.float64), mask=m)
    assert all(torch.equal(a, b) for a, b in zip(per_image, boxes))
    tiny = torchsim.diff_regions(xf * 1e-30, yf * 1e-30, data_range=1e-30, mask=m)
    assert all(torch.equal(a, b) for a, b in zip(tiny, boxes))


def test_a_floor_of_minus_one_finds_nothing_and_of_one_is_otsu_alone():
    x, y = _flat_with_block()
    assert torchsim.diff_regions(x, y, min_ssim=-1.0)[0].shape == (0, 4)
    assert torch.equal(torchsim.diff_regions(x, y, min_ssim=1.0)[0], torchsim.diff_regions(x, y, min_ssim=None)[0])


def test_min_area_drops_small_regions():
    x, y = _flat_with_block()
    assert torchsim.diff_regions(x, y, min_area=10_000)[0].shape == (0, 4)


@pytest.mark.parametrize("p", [0.3, 0.5, 0.7])
def test_labelling_matches_scipy(p):
    from scipy import ndimage

    rng = np.random.default_rng(int(p * 10))
    m = rng.random((2, 41, 53)) < p
    for connectivity, structure in ((8, np.ones((3, 3))), (4, None)):
        lab = label_components(torch.from_numpy(m), connectivity).numpy()
        for k in range(2):
            ref, nref = ndimage.label(m[k], structure=structure)
            pairs = set(zip(ref[m[k]].tolist(), lab[k][m[k]].tolist()))
            assert len(pairs) == nref == len(np.unique(lab[k][m[k]]))
            assert (lab[k][~m[k]] == m.size).all()


def test_snake_component_converges():
    m = torch.zeros(1, 31, 31, dtype=torch.bool)
    m[0, ::2, :] = True  # rows
    for r in range(1, 31, 2):
        m[0, r, 30 if r % 4 == 1 else 0] = True  # alternate ends: one long snake
    lab = label_components(m, 8)
    assert lab[m].unique().numel() == 1


def test_nested_region_is_dropped_and_border_region_kept():
    m = torch.zeros(1, 20, 20, dtype=torch.bool)
    m[0, 2:12, 2:12] = True
    m[0, 4:10, 4:10] = False  # a hole ...
    m[0, 6:8, 6:8] = True  # ... with a region inside it (RETR_EXTERNAL drops it)
    m[0, 15:20, 0:3] = True  # touches the image border
    m[0, 14, 14] = True  # a single pixel
    boxes = component_boxes(m, 0)[0].tolist()
    assert boxes == [[2, 2, 12, 12], [14, 14, 15, 15], [0, 15, 3, 20]]


def test_otsu_simple_bimodal():
    u = torch.cat([torch.full((100,), 50), torch.full((100,), 200)]).reshape(1, 10, 20)
    assert otsu_threshold(u).tolist() == [50]
    assert otsu_threshold(torch.full((1, 4, 4), 255)).tolist() == [0]


@pytest.mark.parametrize(
    "kwargs, exc, text",
    [
        ({"x": torch.zeros(1, 4, 16, 16, dtype=torch.uint8), "y": torch.zeros(1, 4, 16, 16, dtype=torch.uint8)}, ValueError, "diff_regions: x must have 1 or 3 channels"),
        ({"y": torch.zeros(1, 3, 16, 15, dtype=torch.uint8)}, ValueError, "diff_regions: x and y must have the same shape"),
        ({"kernel_size": 6}, ValueError, "diff_regions: kernel_size must be an odd positive integer"),
        ({"kernel_size": 17}, ValueError, "diff_regions: every spatial dimension must be at least kernel_size=17"),
        ({"min_area": -1}, ValueError, "diff_regions: min_area must be a finite integer >= 0"),
        ({"min_ssim": 1.5}, ValueError, "diff_regions: min_ssim must be a number in [-1, 1], got 1.5"),
        ({"min_ssim": "0.9"}, ValueError, "diff_regions: min_ssim must be a number in [-1, 1], got '0.9'"),
        ({"mask": [(0, 0, 17, 4)]}, ValueError, "diff_regions: mask rectangle 0 must satisfy 0 <= x0 < x1 <= 16"),
        ({"mask": torch.zeros(1, 1, 16, 16)}, TypeError, "diff_regions: mask must be a bool tensor (N, 1, H, W)"),
        ({"return_stats": 1}, TypeError, "diff_regions: return_stats must be True or False, got int 1"),
    ],
)
def test_errors(kwargs, exc, text):
    args = {"x": torch.zeros(1, 3, 16, 16, dtype=torch.uint8), "y": torch.zeros(1, 3, 16, 16, dtype=torch.uint8)}
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(exc) as info:
        torchsim.diff_regions(x, y, **args)
    assert text in str(info.value)


def test_device(device):
    x, y = _flat_with_block(n=2)
    got = torchsim.diff_regions(x.to(device), y.to(device))
    ref = torchsim.diff_regions(x, y)
    assert all(g.device.type == device.type and torch.equal(g.cpu(), r) for g, r in zip(got, ref))
