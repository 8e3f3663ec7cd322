"""torchsim.ops.bits on its own: packing and popcount against numpy, and every search plan
(multi-index hashing with any block split, brute force; numpy and torch code paths)
against a brute-force numpy reference on random and planted hashes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers import planted_hashes
from torchsim.ops import bits as B


def _naive(h: np.ndarray, radius: int):
    d = (h[:, None, :] != h[None, :, :]).sum(-1)
    i, j = np.nonzero(np.triu(d <= radius, 1))
    return i, j, d[i, j]


def _even_plan(bits: int, radius: int, m: int) -> B.Plan:
    widths = B._split(bits, m)
    thresholds = B._split(max(0, radius - m + 1), m)
    starts = np.cumsum([0] + widths[:-1]).tolist()
    return B.Plan(tuple(zip(starts, widths, thresholds)))


@pytest.mark.parametrize("bits", [1, 7, 64, 65, 130])
def test_pack_bits_and_popcount(bits):
    g = np.random.default_rng(bits)
    h = g.random((33, bits)) > 0.5
    words = B.pack_bits(torch.from_numpy(h))
    assert words.dtype == torch.int64 and words.shape == (33, math.ceil(bits / 64))
    # bit b is bit b % 64 of word b // 64, as numpy's little-endian packbits lays it out
    padded = np.zeros((33, words.shape[1] * 64), dtype=bool)
    padded[:, :bits] = h
    expected = np.packbits(padded, axis=1, bitorder="little").view("<i8")
    assert np.array_equal(words.numpy(), expected)
    counts = sum(B.popcount(words[:, w]) for w in range(words.shape[1]))
    assert counts.tolist() == h.sum(1).tolist()


def test_popcount_swar_equals_numpy(monkeypatch):
    x = torch.tensor([0, 1, -1, 5, -(2**63), 2**63 - 1, 0x0F0F0F0F0F0F0F0F], dtype=torch.int64)
    expected = [bin(v & (2**64 - 1)).count("1") for v in x.tolist()]
    assert B.popcount(x).tolist() == expected
    monkeypatch.setattr(B, "_HAS_NP_POPCOUNT", False)  # the CUDA / old-numpy bit trick
    assert B.popcount(x).tolist() == expected


def test_block_keys():
    h = np.random.default_rng(0).random((20, 130)) > 0.5
    words = B.pack_bits(torch.from_numpy(h))
    for start, width in [(0, 13), (60, 8), (64, 62), (120, 10), (3, 62)]:
        keys = B.block_keys(words, start, width)
        expected = (h[:, start : start + width] * (1 << np.arange(width, dtype=np.int64))).sum(1)
        assert keys.tolist() == expected.tolist()


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("bits", [16, 64, 100])
def test_every_plan_is_exact(backend, bits):
    h = planted_hashes(120, bits, seed=bits)
    words = B.pack_bits(torch.from_numpy(h))
    for radius in (0, 1, 3, 6, 10):
        expected = _naive(h, radius)
        plans = [B.Plan(), B.make_plan(len(h), bits, radius, torch.device("cpu"))]
        for m in range(1, radius + 3):
            plan = _even_plan(bits, radius, m)
            if max(w for _, w, _ in plan.blocks) <= 62 and sum(B._ball(w, t) for _, w, t in plan.blocks) < 3000:
                plans.append(plan)
        for plan in plans:
            got = B.pairs_within(words, radius, bits, plan, backend=backend)
            for a, b in zip(got, expected):
                assert np.array_equal(a.numpy(), b), (radius, plan)


def test_chunks_and_threads(monkeypatch):
    """Candidates verified a few at a time, over two worker threads: the same pairs."""
    h = planted_hashes(400, 64, seed=5, flips=8)
    words = B.pack_bits(torch.from_numpy(h))
    expected = _naive(h, 8)
    monkeypatch.setitem(B._CHUNK, "cpu", 37)
    for plan in (B.Plan(), _even_plan(64, 8, 4), _even_plan(64, 8, 3)):
        got = B.pairs_within(words, 8, 64, plan, workers=2)
        for a, b in zip(got, expected):
            assert np.array_equal(a.numpy(), b)


def test_sparse_blocks_use_binary_search():
    """A 32-bit block over few hashes looks values up by binary search (no 2**32 table)."""
    h = planted_hashes(200, 64, seed=9)
    words = B.pack_bits(torch.from_numpy(h))
    plan = B.Plan(((0, 32, 2), (32, 32, 1)))
    for backend in ("numpy", "torch"):
        got = B.pairs_within(words, 4, 64, plan, backend=backend)
        for a, b in zip(got, _naive(h, 4)):
            assert np.array_equal(a.numpy(), b)


def test_make_plan():
    cpu = torch.device("cpu")
    assert B.make_plan(1000, 64, 64, cpu).brute_force  # every pair is a result
    assert B.make_plan(500, 64, 10, cpu).brute_force  # too few hashes for a split to pay
    for radius in (0, 4, 10):
        plan = B.make_plan(1_000_000, 64, radius, cpu)
        assert not plan.brute_force
        blocks = plan.blocks
        assert sum(w for _, w, _ in blocks) == 64 and all(w <= 62 for _, w, _ in blocks)
        # the pigeonhole condition that makes the plan exact
        assert sum(t + 1 for _, _, t in blocks) >= radius + 1
    wide = B.make_plan(100_000, 256, 8, cpu)
    assert sum(w for _, w, _ in wide.blocks) == 256 and sum(t + 1 for _, _, t in wide.blocks) >= 9


@pytest.mark.parametrize("bits, dtype", [(64, torch.uint8), (255, torch.uint8), (256, torch.int16), (40000, torch.int32)])
def test_distance_dtype(bits, dtype):
    assert B.distance_dtype(bits) == dtype
