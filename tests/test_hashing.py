"""Behaviour of the perceptual hashes and Hamming distances (torchsim.functional.hashing).

The comparisons with imagehash / Pillow on real photographs are in
tests/reference/test_hashing_reference.py.
"""

import numpy as np
import pytest
import torch

import torchsim
from tests.helpers import blur, jpeg, noise, photo_u8, planted_hashes, to_nchw
from torchsim.ops import pil_matrix, pil_resize_u8

HASHES = {"ahash": torchsim.ahash, "dhash": torchsim.dhash, "phash": torchsim.phash}


def _images(n=3, c=3, h=40, w=52, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, c, h // 4, w // 4, generator=g)
    up = torch.nn.functional.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)
    return (up * 255).round().to(torch.uint8)


@pytest.mark.parametrize("name", sorted(HASHES))
@pytest.mark.parametrize("hash_size", [2, 5, 8, 16])
def test_shape_dtype_device(name, hash_size, device):
    x = _images().to(device)
    h = HASHES[name](x, hash_size=hash_size)
    assert h.shape == (3, hash_size * hash_size)
    assert h.dtype == torch.bool
    assert h.device == x.device


@pytest.mark.parametrize("name", sorted(HASHES))
def test_gray_rgb_rgba_float_agree(name):
    fn = HASHES[name]
    rgb = _images()
    gray = torchsim.pil_luma(rgb)
    alpha = torch.randint(0, 256, (3, 1, 40, 52), dtype=torch.uint8)
    rgba = torch.cat([rgb, alpha], dim=1)
    ref = fn(rgb)
    assert torch.equal(fn(gray), ref)  # luma of the RGB image, then hashed
    assert torch.equal(fn(rgba), ref)  # alpha ignored, as Pillow's convert("L")
    assert torch.equal(fn(rgb.float() / 255.0), ref)  # floats in [0, 1] quantised to 8 bits
    assert torch.equal(fn(rgb.double() / 255.0), ref)


@pytest.mark.parametrize("name", sorted(HASHES))
def test_batch_equals_one_by_one(name):
    fn = HASHES[name]
    x = _images(n=5, seed=3)
    full = fn(x)
    for i in range(5):
        assert torch.equal(fn(x[i : i + 1]), full[i : i + 1])


@pytest.mark.parametrize("name", sorted(HASHES))
def test_stack_of_photos_equals_one_by_one(name):
    """``torchsim dedup`` hashes the files a worker decoded as one stack (16 at a time); on
    640x480 grey photographs and their JPEG, blurred and noisy copies the stack gives every
    image the hash it gets alone (the resize's matmuls do not depend on the batch)."""
    from PIL import Image

    fn = HASHES[name]
    base = [np.asarray(Image.fromarray(photo_u8(p)).convert("L").resize((640, 480))) / 255.0
            for p in ("astronaut", "coffee", "chelsea", "camera")]
    imgs = base + [jpeg(v, quality=40) for v in base] + [blur(v, 1.5) for v in base] + [noise(v, 0.03, seed=k) for k, v in enumerate(base)]
    x = torch.from_numpy(np.stack([np.round(v * 255).astype(np.uint8) for v in imgs]))[:, None]
    stacked = fn(x)
    for i in range(len(imgs)):
        assert torch.equal(fn(x[i : i + 1]), stacked[i : i + 1]), i


def test_simple_patterns():
    x = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    x[..., 8:] = 255
    assert torchsim.hash_to_hex(torchsim.ahash(x)) == ["0f0f0f0f0f0f0f0f"]
    ramp = (torch.arange(36, dtype=torch.uint8) * 7).repeat(1, 1, 36, 1)
    assert bool(torchsim.dhash(ramp).all())
    assert not bool(torchsim.dhash(ramp.flip(-1)).any())


def test_pil_luma_formula():
    x = torch.randint(0, 256, (2, 3, 7, 9), dtype=torch.uint8)
    r, g, b = (x[:, i].long() for i in range(3))
    expected = ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8)
    out = torchsim.pil_luma(x)
    assert out.shape == (2, 1, 7, 9) and out.dtype == torch.uint8
    assert torch.equal(out[:, 0], expected)


def test_lanczos_rows_sum_to_one_and_identity_skip():
    for n_in, n_out in [(100, 8), (33, 9), (8, 32), (512, 32), (7, 7)]:
        m = pil_matrix(n_in, n_out)
        assert m.shape == (n_out, n_in)
        # fixed-point coefficients of each output pixel sum to 2**22 up to rounding
        assert (m.sum(1) - 2**22).abs().max() <= m.shape[1]
    img = torch.randint(0, 256, (2, 10, 12), dtype=torch.uint8)
    assert torch.equal(pil_resize_u8(img, 12, 10), img)  # no pass at all for an unchanged size
    flat = torch.full((1, 30, 40), 77, dtype=torch.uint8)
    assert bool((pil_resize_u8(flat, 8, 9) == 77).all())  # a constant stays constant


# ----------------------------------------------------------------------------------- distances


def test_hamming_distance():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(50, 64, generator=g) > 0.5
    b = torch.rand(50, 64, generator=g) > 0.5
    d = torchsim.hamming_distance(a, b)
    assert d.dtype == torch.int64 and d.shape == (50,)
    expected = [int(np.count_nonzero(a[i].numpy() != b[i].numpy())) for i in range(50)]
    assert d.tolist() == expected
    assert torchsim.hamming_distance(a, a).eq(0).all()


def test_pairwise_hamming_naive():
    h = torch.rand(97, 64, generator=torch.Generator().manual_seed(2)) > 0.5
    naive = (h[:, None, :] != h[None, :, :]).sum(-1)
    d = torchsim.pairwise_hamming(h)
    assert d.dtype == torch.uint8 and d.shape == (97, 97)  # the smallest dtype holding 0..64
    assert torch.equal(d.long(), naive)
    assert torch.equal(torchsim.pairwise_hamming(h, block_size=10).long(), naive)
    assert torch.equal(torchsim.pairwise_hamming(h[:5], other=h).long(), naive[:5])


def test_pairwise_hamming_blockwise_large():
    h = torch.rand(3000, 64, generator=torch.Generator().manual_seed(3)) > 0.5
    d = torchsim.pairwise_hamming(h, block_size=512)  # 6 blocks, the last one partial
    for s in (0, 1500, 2999):  # naive rows, each against all 3000
        assert torch.equal(d[s].long(), (h[s] != h).sum(-1))
    assert torch.equal(d, d.T)
    assert d.diagonal().eq(0).all()
    assert torch.equal(torchsim.pairwise_hamming(h[:700]), d[:700, :700])


def test_pairwise_hamming_other_bits():
    h = torch.rand(20, 256, generator=torch.Generator().manual_seed(4)) > 0.5  # 16x16 hashes
    d = torchsim.pairwise_hamming(h)
    assert d.dtype == torch.int16  # 256 does not fit in uint8
    assert torch.equal(d.long(), (h[:, None] != h[None]).sum(-1))


@pytest.mark.parametrize("bits, dtype", [(1, torch.uint8), (255, torch.uint8), (256, torch.int16), (32767, torch.int16), (32768, torch.int32)])
def test_pairwise_hamming_smallest_dtype(bits, dtype):
    h = torch.zeros(2, bits, dtype=torch.bool)
    h[1] = True  # the largest distance there is: every bit differs
    d = torchsim.pairwise_hamming(h)
    assert d.dtype == dtype and d.tolist() == [[0, bits], [bits, 0]]


# ----------------------------------------------------------------------------------- hamming_pairs


def _naive_pairs(h: np.ndarray, radius: int):
    """Brute-force numpy reference: (i, j) with i < j and distance <= radius, row-major order."""
    d = (h[:, None, :] != h[None, :, :]).sum(-1)
    i, j = np.nonzero(np.triu(d <= radius, 1))
    return np.stack([i, j], axis=1), d[i, j]


@pytest.mark.parametrize("bits", [16, 64, 100, 256])
@pytest.mark.parametrize("n", [2, 40, 500])
def test_hamming_pairs_naive(bits, n):
    h = planted_hashes(n, bits, seed=bits + n)
    for radius in (0, 1, 2, 4, 7, 10, bits // 2, bits - 1, bits, bits + 5):
        pairs, d = torchsim.hamming_pairs(torch.from_numpy(h), radius)
        ref_pairs, ref_d = _naive_pairs(h, radius)
        assert pairs.dtype == torch.int64 and pairs.shape == (len(ref_pairs), 2)
        assert d.dtype == (torch.uint8 if bits <= 255 else torch.int16)
        assert np.array_equal(pairs.numpy(), ref_pairs) and np.array_equal(d.numpy(), ref_d), radius


def test_hamming_pairs_equals_pairwise_hamming_on_photo_hashes():
    """phash of real photographs and their distortions: pairs within 12 bits == the matrix's."""
    from skimage import data


    rows = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        a = getattr(data, name)()[:256, :256] / 255.0
        for v in (a, a[:, ::-1], a * 0.8, a[4:, 4:], jpeg(a, 40), blur(a, 1.0), noise(a, 0.02)):
            u8 = torch.from_numpy(np.round(np.clip(v, 0, 1) * 255).astype(np.uint8).copy())
            rows.append(torchsim.phash(u8.permute(2, 0, 1)[None]))
    h = torch.cat(rows)
    full = torchsim.pairwise_hamming(h).long()
    pairs, d = torchsim.hamming_pairs(h, 12)
    i, j = torch.nonzero(torch.triu(full <= 12, 1), as_tuple=True)
    assert torch.equal(pairs, torch.stack([i, j], 1)) and torch.equal(d.long(), full[i, j])
    assert len(pairs) > 8  # the near duplicates are found, not only exact ones


def test_hamming_pairs_edge_cases():
    one = torch.ones(1, 64, dtype=torch.bool)
    pairs, d = torchsim.hamming_pairs(one, 64)
    assert pairs.shape == (0, 2) and d.shape == (0,) and d.dtype == torch.uint8
    pairs, _ = torchsim.hamming_pairs(torch.zeros(0, 64, dtype=torch.bool), 3)
    assert pairs.shape == (0, 2)
    same = torch.zeros(5, 64, dtype=torch.bool)  # five identical hashes: all 10 pairs at distance 0
    pairs, d = torchsim.hamming_pairs(same, 0)
    assert pairs.tolist() == [[i, j] for i in range(5) for j in range(i + 1, 5)] and d.eq(0).all()
    h = torch.from_numpy(planted_hashes(30, 64, seed=7))
    everything, d = torchsim.hamming_pairs(h, 64)  # radius >= bits: every pair
    assert len(everything) == 30 * 29 // 2
    assert torch.equal(torchsim.hamming_pairs(h, 1000)[0], everything)


def test_hamming_pairs_bad_input():
    h = torch.zeros(3, 64, dtype=torch.bool)
    with pytest.raises(ValueError, match="hamming_pairs: radius must be an integer >= 0, got -1"):
        torchsim.hamming_pairs(h, -1)
    with pytest.raises(ValueError, match="hamming_pairs: radius must be an integer >= 0, got 2.5"):
        torchsim.hamming_pairs(h, 2.5)
    with pytest.raises(TypeError, match="hamming_pairs: hashes must be a bool tensor of hash bits"):
        torchsim.hamming_pairs(h.long(), 2)
    with pytest.raises(ValueError, match=r"hamming_pairs: hashes must be 2-D \(N, bits\)"):
        torchsim.hamming_pairs(h[0], 2)


def test_hamming_pairs_equals_faiss():
    faiss = pytest.importorskip("faiss", reason="faiss-cpu is a bench extra")
    h = planted_hashes(3000, 64, seed=11, flips=12)
    packed = np.packbits(h, axis=1)
    index = faiss.IndexBinaryFlat(64)
    index.add(packed)
    for radius in (0, 4, 10):
        lims, _, ids = index.range_search(packed, radius + 1)  # faiss keeps distances < radius + 1
        rows = np.repeat(np.arange(len(h)), np.diff(lims).astype(np.int64))
        theirs = {(int(a), int(b)) for a, b in zip(rows, ids) if a < b}
        pairs, _ = torchsim.hamming_pairs(torch.from_numpy(h), radius)
        assert {tuple(p) for p in pairs.tolist()} == theirs and len(pairs) == len(theirs)


@pytest.mark.cuda
@pytest.mark.parametrize("bits, n", [(64, 20000), (256, 3000)])
def test_hamming_pairs_cuda_equals_brute_force(bits, n, monkeypatch):
    """On CUDA: the default plan (multi-index blocks at this size), brute force, and candidates
    verified a few thousand at a time, all equal to the brute-force pairs."""
    from torchsim.ops import bits as B

    h = torch.from_numpy(planted_hashes(n, bits, seed=bits, flips=12))
    words = B.pack_bits(h).cuda()
    for radius in (0, 4, 10):
        plan = B.make_plan(n, bits, radius, torch.device("cuda"))
        expected = B.pairs_within(B.pack_bits(h), radius, bits, B.Plan())  # CPU brute force
        pairs, d = torchsim.hamming_pairs(h.cuda(), radius)
        assert pairs.device.type == "cuda" and d.dtype == B.distance_dtype(bits)
        assert torch.equal(pairs.cpu(), torch.stack(expected[:2], 1)) and torch.equal(d.cpu().long(), expected[2])
        monkeypatch.setitem(B._CHUNK, "cuda", 4099)
        for p in (plan, B.Plan()):
            got = B.pairs_within(words, radius, bits, p)
            assert all(torch.equal(a.cpu(), b) for a, b in zip(got, expected)), (radius, p)
        monkeypatch.setitem(B._CHUNK, "cuda", 1 << 25)


# ----------------------------------------------------------------------------------- hex


def test_hex_round_trip():
    g = torch.Generator().manual_seed(5)
    for bits in (4, 9, 25, 64, 144, 256):
        side = int(bits**0.5)
        h = torch.rand(30, bits, generator=g) > 0.5
        s = torchsim.hash_to_hex(h)
        assert all(len(t) == -(-bits // 4) for t in s)
        assert torch.equal(torchsim.hex_to_hash(s), h)
        assert torch.equal(torchsim.hex_to_hash(s, hash_size=side), h)


def test_hex_known_values():
    h = torch.tensor([[True] * 4 + [False] * 4 + [True] * 8])
    assert torchsim.hash_to_hex(h) == ["f0ff"]
    assert torchsim.hash_to_hex(h[0]) == ["f0ff"]
    assert torchsim.hex_to_hash("F0FF").tolist() == h.tolist()  # upper case accepted
    assert torchsim.hex_to_hash("0" * 16).shape == (1, 64)


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", sorted(HASHES))
def test_bad_channels(name):
    with pytest.raises(ValueError, match=rf"{name}: x must have 1 or 3 or 4 channels"):
        HASHES[name](torch.zeros(1, 2, 16, 16, dtype=torch.uint8))


@pytest.mark.parametrize("name", sorted(HASHES))
@pytest.mark.parametrize("bad", [1, 0, -3, 2.0, True])
def test_bad_hash_size(name, bad):
    with pytest.raises(ValueError, match=rf"{name}: hash_size must be an integer >= 2, got {bad!r}"):
        HASHES[name](torch.zeros(1, 3, 16, 16, dtype=torch.uint8), hash_size=bad)


def test_bad_inputs():
    with pytest.raises(ValueError, match="phash: highfreq_factor must be an integer >= 1, got 0"):
        torchsim.phash(torch.zeros(1, 1, 8, 8), highfreq_factor=0)
    with pytest.raises(ValueError, match=r"ahash: x must be 4-D \(N, C, H, W\), got shape \(3, 8, 8\)"):
        torchsim.ahash(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="dhash: x must have dtype"):
        torchsim.dhash(torch.zeros(1, 3, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="pil_luma: x must have 1 or 3 or 4 channels"):
        torchsim.pil_luma(torch.zeros(1, 2, 4, 4))


def test_bad_hashes():
    a = torch.zeros(3, 64, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"hamming_distance: h1 and h2 must have the same shape \(N, bits\), got \(3, 64\) and \(3, 16\)"):
        torchsim.hamming_distance(a, torch.zeros(3, 16, dtype=torch.bool))
    with pytest.raises(TypeError, match="hamming_distance: h2 must be a bool tensor of hash bits"):
        torchsim.hamming_distance(a, a.long())
    with pytest.raises(ValueError, match=r"pairwise_hamming: h must be 2-D \(N, bits\)"):
        torchsim.pairwise_hamming(torch.zeros(64, dtype=torch.bool))
    with pytest.raises(ValueError, match="pairwise_hamming: other must have the same number of bits"):
        torchsim.pairwise_hamming(a, other=torch.zeros(2, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="pairwise_hamming: block_size must be an integer >= 1, got 0"):
        torchsim.pairwise_hamming(a, block_size=0)
    with pytest.raises(TypeError, match="hash_to_hex: h must be a torch.Tensor"):
        torchsim.hash_to_hex([[True]])


def test_bad_hex():
    with pytest.raises(ValueError, match=r"hex_to_hash: strings\[1\] must contain hex digits only, got 'zz'"):
        torchsim.hex_to_hash(["ff", "zz"])
    with pytest.raises(ValueError, match=r"hex_to_hash: strings\[0\] must fit in hash_size² = 4 bits"):
        torchsim.hex_to_hash(["ff"], hash_size=2)
    with pytest.raises(ValueError, match="hex_to_hash: all strings must encode the same number of bits"):
        torchsim.hex_to_hash(["f" * 16, "f" * 64])
    with pytest.raises(ValueError, match="hex_to_hash: strings must not be empty"):
        torchsim.hex_to_hash([])
    with pytest.raises(TypeError, match="hex_to_hash: strings must be a str or a sequence of str"):
        torchsim.hex_to_hash([1, 2])


# ----------------------------------------------------------------------------------- every device


@pytest.mark.parametrize("name", sorted(HASHES))
def test_device_equals_cpu(name, device):
    fn = HASHES[name]
    photo = to_nchw(photo_u8("astronaut"))
    x = torch.cat([photo, photo.flip(-1), (photo.float() * 0.7).to(torch.uint8)])
    for hash_size in (8, 16):
        assert torch.equal(fn(x.to(device), hash_size=hash_size).cpu(), fn(x, hash_size=hash_size))
    r = _images(n=8, seed=9)
    assert torch.equal(fn(r.to(device)).cpu(), fn(r))
    h = fn(r)
    assert torch.equal(torchsim.pairwise_hamming(h.to(device)).cpu(), torchsim.pairwise_hamming(h))


@pytest.mark.parametrize("bits", [64, 256])
def test_hamming_pairs_device_equals_cpu(bits, device):
    h = torch.from_numpy(planted_hashes(4000, bits, seed=3, flips=12))
    for radius in (0, 3, 10, bits):
        pairs, d = torchsim.hamming_pairs(h.to(device), radius)
        assert pairs.device == device and d.device == device
        cpu_pairs, cpu_d = torchsim.hamming_pairs(h, radius)
        assert torch.equal(pairs.cpu(), cpu_pairs) and torch.equal(d.cpu(), cpu_d)
