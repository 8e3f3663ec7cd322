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


@pytest.mark.parametrize("opaque", [True, False])
@pytest.mark.parametrize("include_aa", [False, True])
@pytest.mark.parametrize("diff_mask", [False, True])
def test_sparse_and_dense_paths_agree(opaque, include_aa, diff_mask):
    for seed in range(6):
        x, y = _palette_pair(seed=seed, opaque=opaque)
        if opaque:  # RGB input takes the known-opaque shortcut
            x, y = x[:, :3], y[:, :3]
        args = (35215 * 0.05**2, include_aa, 0.3, ((1, 2, 3), (4, 5, 6), (7, 8, 9)), diff_mask, True)
        c1, d1 = _kernel(x, y, *args, sparse=True)
        c2, d2 = _kernel(x, y, *args, sparse=False)
        assert torch.equal(c1, c2) and torch.equal(d1, d2)


def test_thin_images_border_rules():
    for h, w in [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5)]:
        x, y = _palette_pair(n=2, h=h, w=w, seed=h * 10 + w)
        args = (35215 * 0.01, False, 0.1, _COLORS, False, True)
        c1, d1 = _kernel(x, y, *args, sparse=True)
        c2, d2 = _kernel(x, y, *args, sparse=False)
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
