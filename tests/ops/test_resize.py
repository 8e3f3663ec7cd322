"""torchsim.ops.resize on its own: Pillow's ``Image.resize(size, LANCZOS / BOX)`` of 8-bit images.

The reference is the installed Pillow, run at test time on real photographs from
``skimage.data`` (converted to ``"L"``) and on random noise (the hardest case for rounding).
"""

import numpy as np
import pytest
import torch
from PIL import Image

from torchsim.ops import clip8, pil_matrix, pil_resize, pil_resize_u8

PIL_FILTERS = {"lanczos": Image.LANCZOS, "box": Image.BOX}


def _pillow(gray: np.ndarray, size, filter: str) -> np.ndarray:
    return np.asarray(Image.fromarray(gray).resize(size, PIL_FILTERS[filter]))


@pytest.fixture(scope="module")
def grays(photos):
    out = {}
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        a = np.round(photos[name] * 255).astype(np.uint8)
        out[name] = np.asarray(Image.fromarray(a).convert("L"))
    return out


@pytest.mark.parametrize("filter", list(PIL_FILTERS))
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "camera"])
def test_resize_photos_equals_pillow(grays, name, filter):
    g = grays[name]
    h, w = g.shape
    t = torch.from_numpy(g.copy())[None]
    sizes = [(8, 8), (9, 8), (32, 32), (64, 48), (w // 2, h // 2), (w // 3, h), (w, h // 7), (w + 13, h // 3), (2 * w, 2 * h)]
    for size in sizes:
        ref = _pillow(g, size, filter)
        got = pil_resize_u8(t, *size, filter)[0].numpy()
        assert np.array_equal(got, ref), (name, filter, size, int((got != ref).sum()))


@pytest.mark.parametrize("filter", list(PIL_FILTERS))
def test_resize_random_noise_random_sizes(filter):
    """Random noise (the hardest case for rounding) at random sizes, up and down, 2..200 px.

    Covers both pass orders: Pillow >= 13 runs the vertical pass first when the height
    shrinks by more than twice as many pixels as the width.
    """
    rng = np.random.default_rng(0)
    orders = set()
    for _ in range(150):
        iw, ih = (int(v) for v in rng.integers(2, 160, 2))
        ow, oh = (int(v) for v in rng.integers(2, 200, 2))
        g = rng.integers(0, 256, (ih, iw), dtype=np.uint8)
        got = pil_resize_u8(torch.from_numpy(g)[None], ow, oh, filter)[0].numpy()
        ref = _pillow(g, (ow, oh), filter)
        assert np.array_equal(got, ref), (filter, (iw, ih), (ow, oh), int((got != ref).sum()))
        orders.add(ow != iw and oh < ih and ih - oh > 2 * (iw - ow))
    assert orders == {True, False}


def test_box_ties_at_pixel_edges():
    """Where an input pixel's centre sits exactly on the box's edge (3 -> 2, 5 -> 2, 5 -> 3
    ...), Pillow's box filter counts it on one side only; Pillow decides which."""
    rng = np.random.default_rng(1)
    for n_in, n_out in [(3, 2), (5, 2), (5, 3), (7, 4), (9, 6), (2, 3), (3, 5)]:
        g = rng.integers(0, 256, (n_in, n_in), dtype=np.uint8)
        got = pil_resize_u8(torch.from_numpy(g)[None], n_out, n_out, "box")[0].numpy()
        np.testing.assert_array_equal(got, _pillow(g, (n_out, n_out), "box"))


def test_matrix_rows_and_identity():
    for filter in PIL_FILTERS:
        for n_in, n_out in [(100, 8), (33, 9), (8, 32), (512, 32), (7, 7)]:
            m = pil_matrix(n_in, n_out, filter)
            assert m.shape == (n_out, n_in) and m.dtype == torch.float64
            assert torch.equal(m, m.round())  # integer coefficients
            # the fixed-point coefficients of each output pixel sum to 2**22 up to rounding
            assert (m.sum(1) - 2**22).abs().max() <= m.shape[1]
    # an integer box reduction averages exactly k pixels
    m = pil_matrix(12, 3, "box")
    assert torch.equal(m, torch.kron(torch.eye(3, dtype=torch.float64), torch.full((1, 4), 2.0**20)))
    img = torch.randint(0, 256, (2, 10, 12), dtype=torch.uint8)
    assert torch.equal(pil_resize_u8(img, 12, 10, "box"), img)  # no pass at all for an unchanged size


def test_clip8_is_pillows_rounding():
    s = torch.tensor([-(2.0**22), -1.0, 0.0, 2.0**21 - 1, 2.0**21, 255.5 * 2**22, 1e12], dtype=torch.float64)
    # floor((s + 2^21) / 2^22) clipped to 0..255: ties (x.5) round up, as the C shift does
    assert clip8(s).tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 255.0, 255.0]
    assert clip8(torch.tensor([254.5 * 2**22], dtype=torch.float64)).item() == 255.0


def test_batch_and_leading_dims_equal_one_by_one():
    g = torch.randint(0, 256, (2, 3, 37, 29), dtype=torch.uint8)
    for filter in PIL_FILTERS:
        out = pil_resize_u8(g, 11, 9, filter)
        assert out.shape == (2, 3, 9, 11) and out.dtype == torch.uint8
        for i in range(2):
            for c in range(3):
                assert torch.equal(out[i, c], pil_resize_u8(g[i, c], 11, 9, filter))
        assert torch.equal(pil_resize(g.double(), 11, 9, filter), out.double())


def test_device_matches_cpu(device):
    g = torch.randint(0, 256, (2, 40, 33), dtype=torch.uint8)
    for filter in PIL_FILTERS:
        assert torch.equal(pil_resize_u8(g.to(device), 9, 14, filter).cpu(), pil_resize_u8(g, 9, 14, filter))


@pytest.mark.parametrize("filter", list(PIL_FILTERS))
@pytest.mark.parametrize("block, group", [(1 << 17, 1 << 20), (97, 1 << 20), (1 << 20, 2 * 300 * 400)])
def test_luma_resize_in_blocks_equals_pillow(photos, monkeypatch, filter, block, group):
    """pil_luma_resize (the hashes' thumbnail: on the CPU the luma of large images in blocks of
    rows, small images whole in groups) equals Pillow's ``convert("L").resize(...)`` of RGB and
    gray photographs, both pass orders and a size that skips a pass: one block per image, blocks
    of a few rows (an uneven last block), groups of two whole images (the last one alone)."""
    import torchsim.ops.resize as resize_module
    from torchsim.ops import pil_luma_resize

    monkeypatch.setattr(resize_module, "_BLOCK_PIXELS", block)
    monkeypatch.setattr(resize_module, "_GROUP_PIXELS", group)
    rgb = [np.round(photos[n] * 255).astype(np.uint8)[:300, :400] for n in ("astronaut", "coffee", "chelsea")]
    x = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).contiguous()
    gray = torch.from_numpy(np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in rgb]))[:, None]
    # (9, 8): horizontal first; (390, 20): vertical first (Pillow >= 13); (400, 50): vertical only; (33, 300): horizontal only
    for size in [(9, 8), (32, 32), (390, 20), (400, 50), (33, 300)]:
        ref = np.stack([_pillow(np.asarray(Image.fromarray(a).convert("L")), size, filter) for a in rgb])
        for image in (x, gray, x.float() / 255):
            got = pil_luma_resize(image, *size, filter)
            assert got.dtype == torch.float64 and got.shape == (3, size[1], size[0])
            assert np.array_equal(got.to(torch.uint8).numpy(), ref), (size, image.dtype, image.shape[1])


def test_column_bands_rebuild_the_matrix():
    """The first pass's column bands hold every coefficient of Pillow's matrix: added back they
    give it exactly, each output column in one band; never bands narrower than 8 columns."""
    from torchsim.ops.resize import _pil_bands

    banded = 0
    for in_size in (17, 64, 255, 400, 640, 1000, 1999):
        for out_size in (1, 9, 15, 16, 32, 33, 64, 200, 700):
            for filter in PIL_FILTERS:
                bands = _pil_bands(in_size, out_size, filter)
                full = torch.zeros(in_size, out_size, dtype=torch.float64)
                for lo, hi, c0, c1, band in bands:
                    assert full[:, c0:c1].abs().sum() == 0 and band.shape == (hi - lo, c1 - c0)
                    full[lo:hi, c0:c1] = band
                assert torch.equal(full, pil_matrix(in_size, out_size, filter).T)
                banded += len(bands) > 1
                if len(bands) > 1:
                    assert out_size >= 16
    assert banded > 0


def test_zero_size_image_keeps_its_shape():
    from torchsim.ops import pil_luma_resize

    for shape in [(1, 3, 0, 30), (1, 3, 30, 0)]:
        assert pil_luma_resize(torch.zeros(shape, dtype=torch.uint8), 8, 8).shape == (1, 8, 8)
