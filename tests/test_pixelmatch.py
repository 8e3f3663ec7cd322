"""pixelmatch: behaviour, options, batching, both code paths, errors (references in tests/reference)."""

import pytest
import torch

import torchsim
from torchsim.functional.pixelmatch import _kernel

_COLORS = ((255, 255, 0), (255, 0, 0), None)


def _pair(n=2, h=24, w=20, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=g)
    y = x.clone()
    y[:, :, 5:12, 4:9] = torch.randint(0, 256, (n, c, 7, 5), dtype=torch.uint8, generator=g)
    return x, y


def _palette_pair(n=3, h=17, w=13, seed=0, opaque=False):
    """Few colours, so many equal neighbours: exercises every anti-aliasing rule."""
    g = torch.Generator().manual_seed(seed)
    pal = torch.randint(0, 256, (4, 4), dtype=torch.uint8, generator=g)
    if opaque:
        pal[:, 3] = 255
    x = pal[torch.randint(0, 4, (n, h, w), generator=g)].permute(0, 3, 1, 2).contiguous()
    y = x.clone()
    change = torch.rand(n, h, w, generator=g) < 0.3
    y.permute(0, 2, 3, 1)[change] = pal[torch.randint(0, 4, (int(change.sum()),), generator=g)]
    return x, y


def test_counts_and_diff_image_basics():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    y = x.clone()
    y[:, :, 2:4, 2:4] = 255
    count, diff = torchsim.pixelmatch(x, y, return_diff=True)
    assert count.dtype == torch.int64 and count.tolist() == [4]
    assert diff.shape == (1, 4, 8, 8) and diff.dtype == torch.uint8
    assert diff[0, :, 2, 2].tolist() == [255, 0, 0, 255]
    # background: black blended with white at alpha 0.1 -> int(255 - 255 * 0.1) = 229
    assert diff[0, :, 0, 0].tolist() == [229, 229, 229, 255]
    assert torch.equal(torchsim.pixelmatch(x, y), count)


def test_identical_images_have_no_mismatch_and_a_gray_diff():
    x, _ = _pair()
    count, diff = torchsim.pixelmatch(x, x, return_diff=True)
    assert count.tolist() == [0, 0]
    assert (diff[:, 3] == 255).all() and torch.equal(diff[:, 0], diff[:, 1])
    _, masked = torchsim.pixelmatch(x, x, diff_mask=True, return_diff=True)
    assert (masked == 0).all()


def test_batch_equals_one_by_one():
    x, y = _pair(n=3)
    y[1] = x[1]  # one identical pair inside the batch takes the fast path alone
    count, diff = torchsim.pixelmatch(x, y, return_diff=True)
    for i in range(3):
        c, d = torchsim.pixelmatch(x[i : i + 1], y[i : i + 1], return_diff=True)
        assert c.item() == count[i].item()
        assert torch.equal(d[0], diff[i])


GENERATIONS = [{"compat": "mapbox"}, {"compat": "mapbox", "checkerboard": False}, {"compat": "pixelmatch-py"}]


@pytest.mark.parametrize("gen", GENERATIONS, ids=str)
@pytest.mark.parametrize("opaque", [True, False])
@pytest.mark.parametrize("include_aa", [False, True])
@pytest.mark.parametrize("diff_mask", [False, True])
def test_sparse_and_dense_paths_agree(opaque, include_aa, diff_mask, gen):
    for seed in range(6):
        x, y = _palette_pair(seed=seed, opaque=opaque)
        if opaque:  # RGB input takes the known-opaque shortcut
            x, y = x[:, :3], y[:, :3]
        ignore = torch.rand(x.shape[0], *x.shape[2:], generator=torch.Generator().manual_seed(seed)) < 0.2 if seed % 2 else None
        args = (35215 * 0.05**2, include_aa, 0.3, ((1, 2, 3), (4, 5, 6), (7, 8, 9)), diff_mask, True)
        c1, d1 = _kernel(x, y, *args, sparse=True, ignore=ignore, **gen)
        c2, d2 = _kernel(x, y, *args, sparse=False, ignore=ignore, **gen)
        assert torch.equal(c1, c2) and torch.equal(d1, d2)


@pytest.mark.parametrize("gen", GENERATIONS, ids=str)
def test_thin_images_border_rules(gen):
    for h, w in [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5)]:
        x, y = _palette_pair(n=2, h=h, w=w, seed=h * 10 + w)
        args = (35215 * 0.01, False, 0.1, _COLORS, False, True)
        c1, d1 = _kernel(x, y, *args, sparse=True, **gen)
        c2, d2 = _kernel(x, y, *args, sparse=False, **gen)
        assert torch.equal(c1, c2) and torch.equal(d1, d2)


def test_input_forms_agree():
    x, y = _pair(c=3)
    ref = torchsim.pixelmatch(x, y, return_diff=True)
    alpha = torch.full_like(x[:, :1], 255)
    rgba = torchsim.pixelmatch(torch.cat([x, alpha], 1), torch.cat([y, alpha], 1), return_diff=True)
    flt = torchsim.pixelmatch(x / 255.0, y / 255.0, return_diff=True)
    for got in (rgba, flt):
        assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])
    g = x[:, :1]
    gy = y[:, :1]
    assert torch.equal(torchsim.pixelmatch(g, gy), torchsim.pixelmatch(g.expand(-1, 3, -1, -1), gy.expand(-1, 3, -1, -1)))


def test_options():
    x, y = _palette_pair(seed=3, opaque=True)
    base = torchsim.pixelmatch(x, y)
    assert (torchsim.pixelmatch(x, y, include_aa=True) >= base).all()
    assert (torchsim.pixelmatch(x, y, threshold=0.0) >= base).all()
    assert (torchsim.pixelmatch(x, y, threshold=1.0) == 0).all()
    c, d = torchsim.pixelmatch(x, y, aa_color=(1, 2, 3), diff_color=(9, 8, 7), return_diff=True)
    real = (d[:, :3] == torch.tensor([9, 8, 7]).reshape(1, 3, 1, 1)).all(1)
    assert torch.equal(real.flatten(1).sum(1), c)
    _, masked = torchsim.pixelmatch(x, y, diff_mask=True, return_diff=True)
    assert torch.equal(masked[:, 3] == 255, real)  # only mismatches are drawn


def test_diff_color_alt_marks_where_second_image_is_darker():
    x = torch.full((1, 3, 6, 6), 128, dtype=torch.uint8)
    y = x.clone()
    y[:, :, 1, 1] = 0  # darker in y
    y[:, :, 4, 4] = 255  # brighter in y
    c, d = torchsim.pixelmatch(x, y, diff_color_alt=(0, 255, 0), return_diff=True)
    assert c.tolist() == [2]
    assert d[0, :, 1, 1].tolist() == [0, 255, 0, 255]
    assert d[0, :, 4, 4].tolist() == [255, 0, 0, 255]
    c2, d2 = torchsim.pixelmatch(x, y, return_diff=True)
    assert torch.equal(c, c2) and d2[0, :, 1, 1].tolist() == [255, 0, 0, 255]


def test_no_grad_needed_and_channels_last():
    x, y = _pair()
    a = torchsim.pixelmatch(x, y, return_diff=True)
    b = torchsim.pixelmatch(x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last), return_diff=True)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    "kwargs, exc, text",
    [
        ({"x": torch.zeros(1, 2, 4, 4, dtype=torch.uint8), "y": torch.zeros(1, 2, 4, 4, dtype=torch.uint8)}, ValueError, "pixelmatch: x must have 1 or 3 or 4 channels"),
        ({"y": torch.zeros(1, 3, 5, 4, dtype=torch.uint8)}, ValueError, "pixelmatch: x and y must have the same shape"),
        ({"x": torch.zeros(3, 4, 4, dtype=torch.uint8)}, ValueError, "pixelmatch: x must be 4-D"),
        ({"y": [[0]]}, TypeError, "pixelmatch: y must be a torch.Tensor"),
        ({"threshold": 1.5}, ValueError, "pixelmatch: threshold must be a number in [0, 1]"),
        ({"alpha": -0.1}, ValueError, "pixelmatch: alpha must be a number in [0, 1]"),
        ({"diff_color": (255, 0)}, ValueError, "pixelmatch: diff_color must be three numbers"),
        ({"aa_color": (0, 0, 300)}, ValueError, "pixelmatch: aa_color must be three numbers"),
        ({"diff_color_alt": "red"}, ValueError, "pixelmatch: diff_color_alt must be three numbers"),
        ({"compat": "v5"}, ValueError, "pixelmatch: compat must be one of 'mapbox', 'pixelmatch-py', got 'v5'"),
        ({"checkerboard": "yes"}, ValueError, "pixelmatch: checkerboard must be None, True or False, got 'yes'"),
        ({"compat": "pixelmatch-py", "checkerboard": True}, ValueError, "checkerboard=True needs compat='mapbox'"),
        ({"mask": torch.zeros(1, 1, 4, 4, dtype=torch.uint8)}, TypeError, "pixelmatch: mask must be a bool tensor (N, 1, H, W)"),
        ({"mask": torch.zeros(1, 4, 4, dtype=torch.bool)}, ValueError, "pixelmatch: mask must have shape (N, 1, H, W) = (1, 1, 4, 4)"),
        ({"mask": torch.zeros(2, 1, 4, 4, dtype=torch.bool)}, ValueError, "pixelmatch: mask must have shape (N, 1, H, W) = (1, 1, 4, 4)"),
        ({"mask": (0, 0, 2, 2)}, ValueError, "wrap a single rectangle in a list: [(x0, y0, x1, y1)]"),
        ({"mask": [(0, 0, 2)]}, ValueError, "pixelmatch: mask rectangle 0 must be four integers (x0, y0, x1, y1), got (0, 0, 2)"),
        ({"mask": [(0, 0, 2, 2), (0.5, 0, 2, 2)]}, ValueError, "pixelmatch: mask rectangle 1 must be four integers"),
        ({"mask": [(0, 0, 5, 2)]}, ValueError, "pixelmatch: mask rectangle 0 must satisfy 0 <= x0 < x1 <= 4 and 0 <= y0 < y1 <= 4 (x1, y1 exclusive), got (0, 0, 5, 2)"),
        ({"mask": [(2, 0, 2, 2)]}, ValueError, "must satisfy 0 <= x0 < x1 <= 4"),
        ({"mask": [(-1, 0, 2, 2)]}, ValueError, "must satisfy 0 <= x0 < x1 <= 4"),
        ({"mask": torch.zeros(3, 5, dtype=torch.int64)}, TypeError, "pixelmatch: mask must be a bool tensor (N, 1, H, W) (True = ignore) or a list of rectangles"),
        ({"mask": "all"}, TypeError, "pixelmatch: mask must be a bool tensor"),
    ],
)
def test_errors(kwargs, exc, text):
    args = {"x": torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "y": torch.zeros(1, 3, 4, 4, dtype=torch.uint8)}
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    with pytest.raises(exc, match=None) as info:
        torchsim.pixelmatch(x, y, **args)
    assert text in str(info.value)


def test_device(device):
    x, y = _palette_pair(seed=5)
    c, d = torchsim.pixelmatch(x.to(device), y.to(device), diff_color_alt=(0, 0, 255), return_diff=True)
    c0, d0 = torchsim.pixelmatch(x, y, diff_color_alt=(0, 0, 255), return_diff=True)
    assert c.device.type == device.type
    assert torch.equal(c.cpu(), c0) and torch.equal(d.cpu(), d0)


def test_mask_rectangles_equal_a_bool_mask_and_ignore_pixels():
    x, y = _pair(n=2, c=4)
    rects = [(4, 5, 9, 8), (0, 0, 2, 24)]
    m = torch.zeros(2, 1, 24, 20, dtype=torch.bool)
    for x0, y0, x1, y1 in rects:
        m[:, :, y0:y1, x0:x1] = True
    for gen in GENERATIONS:
        base = torchsim.pixelmatch(x, y, return_diff=True, **gen)
        got = torchsim.pixelmatch(x, y, mask=rects, return_diff=True, **gen)
        same = torchsim.pixelmatch(x, y, mask=m, return_diff=True, **gen)
        tensor_rects = torchsim.pixelmatch(x, y, mask=torch.tensor(rects), return_diff=True, **gen)
        for other in (same, tensor_rects):
            assert torch.equal(got[0], other[0]) and torch.equal(got[1], other[1])
        real = (base[1][:, :3] == torch.tensor([255, 0, 0]).reshape(1, 3, 1, 1)).all(1)
        assert torch.equal(got[0], base[0] - (real & m[:, 0]).flatten(1).sum(1))  # masked mismatches drop out
        outside = ~m[:, 0].unsqueeze(1).expand(-1, 4, -1, -1)
        assert torch.equal(got[1][outside], base[1][outside])  # nothing else changes
        inside = got[1].permute(0, 2, 3, 1)[m[:, 0]]
        assert (inside[:, 0] == inside[:, 1]).all() and (inside[:, 3] == 255).all()  # drawn as grey background
        empty = torchsim.pixelmatch(x, y, mask=[], return_diff=True, **gen)
        nothing = torchsim.pixelmatch(x, y, mask=torch.zeros_like(m), return_diff=True, **gen)
        for other in (empty, nothing):
            assert torch.equal(other[0], base[0]) and torch.equal(other[1], base[1])


def test_mask_per_image_and_everything_masked():
    x, y = _pair(n=2)
    m = torch.zeros(2, 1, 24, 20, dtype=torch.bool)
    m[0, :, 5:12, 4:9] = True  # covers image 0's whole change, not image 1's
    count, diff = torchsim.pixelmatch(x, y, mask=m, return_diff=True)
    full = torchsim.pixelmatch(x, y)
    assert count[0] == 0 and count[1] == full[1]
    same = torchsim.pixelmatch(x, x, return_diff=True)
    assert torch.equal(diff[0], same[1][0])  # differs only under the mask: drawn as identical
    for gen in GENERATIONS:  # also pixelmatch-py's identical-image path (Pillow's grey)
        c, d = torchsim.pixelmatch(x[:1], y[:1], mask=m[:1], return_diff=True, **gen)
        c0, d0 = torchsim.pixelmatch(x[:1], x[:1], return_diff=True, **gen)
        assert c.tolist() == [0] and torch.equal(d, d0)


def test_threshold_zero_tolerates_nothing_and_sizes_must_match():
    x = torch.full((1, 3, 8, 8), 100, dtype=torch.uint8)
    y = x.clone()
    y[0, 2, 3, 3] = 101  # one level of blue in one pixel: Δ ≈ 0.04, far below the default threshold
    for gen in GENERATIONS:
        assert torchsim.pixelmatch(x, y, threshold=0.0, **gen).tolist() == [1]
        assert torchsim.pixelmatch(x, y, **gen).tolist() == [0]
    with pytest.raises(ValueError, match="x and y must have the same shape"):
        torchsim.pixelmatch(x, y[:, :, :7])


def test_generations_differ_only_on_semi_transparent_pixels():
    x, y = _palette_pair(seed=11, opaque=True)
    assert torch.equal(torchsim.pixelmatch(x, y), torchsim.pixelmatch(x, y, compat="pixelmatch-py"))
    a = torch.tensor([0, 0, 0, 128], dtype=torch.uint8).reshape(1, 4, 1, 1)  # 50 % black
    b = torch.tensor([127, 127, 127, 255], dtype=torch.uint8).reshape(1, 4, 1, 1)  # opaque grey
    assert torchsim.pixelmatch(a, b).tolist() == [1]  # different on v7's dark checkerboard
    assert torchsim.pixelmatch(a, b, checkerboard=False).tolist() == [0]  # the same on white
    assert torchsim.pixelmatch(a, b, compat="pixelmatch-py").tolist() == [0]


@pytest.mark.parametrize("gen", GENERATIONS, ids=str)
def test_cpu_path_in_many_chunks_and_threads_equals_the_dense_path(monkeypatch, gen):
    """The CPU path cuts the changed pixels into chunks (and anti-aliasing tests into smaller ones),
    and the grey background into bands, handled on several threads; tiny chunks on two real photographs (JPEG-distorted, batch of two,
    RGB and RGBA) give the dense path's counts and diff images."""
    import numpy as np

    from tests.helpers import jpeg, photo_u8

    from torchsim.kernels import pixelmatch as kernel

    xs = [photo_u8(name, size=(64, 48)) for name in ("astronaut", "chelsea")]
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.stack([jpeg(v, quality=30) for v in xs])).permute(0, 3, 1, 2).contiguous()
    alpha = torch.full_like(x[:, :1], 255)
    alpha[:, :, 10:20] = 128
    args = (35215 * 0.05**2, False, 0.1, _COLORS, False, True)
    threads = torch.get_num_threads()
    monkeypatch.setattr(kernel, "_CHUNK", 97)
    monkeypatch.setattr(kernel, "_AA_CHUNK", 11)
    monkeypatch.setattr(kernel, "_BAND", 150)  # grey background in bands of a few rows
    monkeypatch.setattr(kernel, "_workers", lambda: 3)
    torch.set_num_threads(2)
    try:
        for u, v in ((x, y), (torch.cat([x, alpha], 1), torch.cat([y, alpha.flip(2)], 1))):
            c1, d1 = _kernel(u, v, *args, sparse=True, **gen)
            c2, d2 = _kernel(u, v, *args, sparse=False, **gen)
            assert torch.equal(c1, c2) and torch.equal(d1, d2) and (c1 > 200).all()
    finally:
        torch.set_num_threads(threads)


def test_checkerboard_backdrop_without_node():
    """v7's backdrop colours, the arithmetic shared by the dense (torch) and CPU (NumPy) paths, at
    byte offsets up to and past 2³¹·φ where JavaScript's ``| 0`` wraps. Expected values printed by
    node v20.20.2 evaluating v7's expressions (the command in
    tests/reference/test_pixelmatch_mapbox.py::test_checkerboard_matches_javascript_beyond_int32, which
    runs node itself where it is installed)."""
    import numpy as np

    from torchsim.kernels import pixelmatch as kernel

    idx = [0, 1, 2, 3, 7, 1000, 123457, 2**27 + 5, 868_000_000, 868_450_000, 900_000_001, 1_500_000_003, 2**31 + 11]
    want = [[48, 48, 48], [48, 48, 207], [48, 48, 207], [48, 207, 48], [48, 207, 48], [48, 48, 207], [48, 48, 207],
            [48, 207, 48], [48, 48, 207], [48, 48, 207], [48, -111, 48], [48, -111, 48], [48, 48, -111]]
    for ids in (torch.tensor(idx, dtype=torch.int64), np.array(idx, dtype=np.int64), np.array(idx[:8], dtype=np.int32)):
        r, g, b = kernel.backdrop("checkerboard", ids)
        assert [[r, int(gg), int(bb)] for gg, bb in zip(g.tolist(), b.tolist())] == want[: len(ids)]
