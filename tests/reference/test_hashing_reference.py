"""ahash / dhash / phash, Pillow luma and Pillow's Lanczos resize against imagehash 4.3 and Pillow.

Real photographs from ``skimage.data`` (only those bundled with scikit-image, no
downloads), plus flips, crops and rescales of them: 56 distinct images of many sizes,
gray, RGB and RGBA. The SPEC's bar is collected over all images and asserted once:
at least 99 % of the hashes equal imagehash's bit for bit and none differs by more
than 2 bits. The luma and the resize must be exact everywhere.
"""

import imagehash
import numpy as np
import pytest
import torch
from PIL import Image

import torchsim
from tests.helpers import photo_u8, to_nchw
from torchsim.ops import pil_resize_u8

BASE = [
    "astronaut", "coffee", "chelsea", "camera", "rocket", "immunohistochemistry", "hubble_deep_field",
    "retina", "brick", "grass", "gravel", "moon", "coins", "logo",
]


def _load():
    out = []
    for name in BASE:
        a = photo_u8(name)
        if a.shape[0] > 800:  # keep the test fast: retina and hubble at about half size
            a = np.asarray(Image.fromarray(a).resize((a.shape[1] // 2 + 1, a.shape[0] // 2 + 1), Image.BILINEAR))
        h, w = a.shape[:2]
        out.append((name, a))
        out.append((f"{name}/flip", np.ascontiguousarray(a[:, ::-1])))
        out.append((f"{name}/crop", np.ascontiguousarray(a[h // 7 : h - h // 5, w // 9 : w - w // 6])))
        small = Image.fromarray(a).resize((int(w * 0.37) + 1, int(h * 0.41)), Image.BICUBIC)
        out.append((f"{name}/rescale", np.asarray(small)))
    return out


@pytest.fixture(scope="module")
def images():
    return _load()


CASES = [
    ("ahash", imagehash.average_hash, {}),
    ("dhash", imagehash.dhash, {}),
    ("phash", imagehash.phash, {}),
    ("ahash", imagehash.average_hash, {"hash_size": 16}),
    ("dhash", imagehash.dhash, {"hash_size": 5}),
    ("phash", imagehash.phash, {"hash_size": 12, "highfreq_factor": 3}),
]


def test_hashes_match_imagehash(images):
    assert len(images) >= 40 and len({a.shape for _, a in images}) >= 20
    total = exact = 0
    worst = (0, None)
    for name, a in images:
        pil = Image.fromarray(a)
        x = to_nchw(a)
        for fn_name, ref_fn, kw in CASES:
            ref = ref_fn(pil, **kw)
            ours = getattr(torchsim, fn_name)(x, **kw)
            diff = int(np.count_nonzero(ours[0].numpy() != ref.hash.flatten()))
            total += 1
            exact += diff == 0
            if diff > worst[0]:
                worst = (diff, f"{name} {fn_name} {kw}")
            if diff == 0 and not kw:
                assert torchsim.hash_to_hex(ours) == [str(ref)]
    rate = exact / total
    print(f"\nimagehash agreement: {exact}/{total} hashes exact ({rate:.2%}), max bit difference {worst}")
    assert rate >= 0.99, (exact, total, worst)
    assert worst[0] <= 2, worst


def test_pil_luma_exact(images):
    for name, a in images:
        if a.ndim == 2:
            continue
        ours = torchsim.pil_luma(to_nchw(a))[0, 0].numpy()
        assert np.array_equal(ours, np.asarray(Image.fromarray(a).convert("L"))), name


def test_pil_luma_all_colours():
    """Every one of the 2**24 RGB colours (and RGBA with random alpha, which Pillow ignores)."""
    r, g, b = np.meshgrid(np.arange(256), np.arange(256), np.arange(256), indexing="ij")
    rgb = np.stack([r, g, b], -1).reshape(4096, 4096, 3).astype(np.uint8)
    ref = np.asarray(Image.fromarray(rgb).convert("L"))
    assert np.array_equal(torchsim.pil_luma(to_nchw(rgb))[0, 0].numpy(), ref)
    alpha = np.random.default_rng(0).integers(0, 256, (4096, 4096, 1), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=-1)
    assert np.array_equal(np.asarray(Image.fromarray(rgba, "RGBA").convert("L")), ref)
    assert np.array_equal(torchsim.pil_luma(to_nchw(rgba))[0, 0].numpy(), ref)


def test_resize_equals_pillow(images):
    for name, a in images[::4]:
        gray = np.asarray(Image.fromarray(a).convert("L"))
        h, w = gray.shape
        t = torch.from_numpy(gray.copy())[None]
        for size in [(8, 8), (9, 8), (32, 32), (48, 20), (w, 11), (13, h), (w + 17, h // 3), (2 * w, 2 * h)]:
            ref = np.asarray(Image.fromarray(gray).resize(size, Image.LANCZOS))
            ours = pil_resize_u8(t, *size)[0].numpy()
            assert np.array_equal(ours, ref), (name, size, int((ours != ref).sum()))


def test_hex_matches_imagehash():
    g = np.random.default_rng(0)
    for side in (2, 3, 5, 8, 11, 16):
        bits = g.random((20, side * side)) > 0.5
        strings = torchsim.hash_to_hex(torch.from_numpy(bits))
        assert strings == [str(imagehash.ImageHash(b.reshape(side, side))) for b in bits]
        back = torchsim.hex_to_hash(strings)
        assert np.array_equal(back.numpy(), np.stack([imagehash.hex_to_hash(s).hash.flatten() for s in strings]))


def test_hamming_matches_imagehash(images):
    hs = [imagehash.phash(Image.fromarray(a)) for _, a in images[:12]]
    ours = torchsim.pairwise_hamming(torchsim.hex_to_hash([str(h) for h in hs]))
    assert ours.tolist() == [[a - b for b in hs] for a in hs]
