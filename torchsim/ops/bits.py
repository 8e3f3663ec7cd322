"""Bit-packed hashes: packing, popcount, and every pair within a Hamming radius.

The operator behind :func:`torchsim.hamming_pairs`. Hashes are packed into int64 words
(64 bits per word); distances are popcounts of XORs. Pairs within a radius ``r`` are
found without an ``N × N`` matrix by one of two plans, picked by an estimate of their
cost for the given N, bit count, radius and device:

* **Multi-index hashing** (sub-quadratic, exact). The bits are split into ``m``
  contiguous blocks with thresholds ``t_1 .. t_m`` summing to ``r - m + 1`` (all 0
  when ``m > r``). If two hashes are within ``r``, some block ``b`` differs in at most
  ``t_b`` bits (otherwise the blocks alone would differ in ``Σ (t_b + 1) = r + 1``
  bits: the generalised pigeonhole principle). Per block: sort the hashes by the
  block's value; pairs with equal values are the runs of the sorted order; pairs whose
  values differ by a mask ``μ`` (``1 <= popcount(μ) <= t_b``) are found by looking up
  ``v ^ μ`` among the distinct values ``v`` (once per unordered pair: only from the
  smaller value). Every candidate is verified on all its bits; a pair found through
  several blocks is kept once.
* **Blocked brute force**: rows against every later row, one block at a time, XOR and
  popcount on the packed words; memory is one block.

Both are exact: the result is the same set of pairs whatever the plan. The result is
data-dependent in size, so the kernel synchronises with the device once per block of
work (on CUDA the work runs in large batches).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch

_M1 = 0x5555555555555555
_M2 = 0x3333333333333333
_M4 = 0x0F0F0F0F0F0F0F0F
_HAS_NP_POPCOUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0

# --------------------------------------------------------------------------- packing, popcount


def pack_bits(h: torch.Tensor) -> torch.Tensor:
    """``(N, bits)`` bool -> ``(N, W)`` int64 words, ``W = ceil(bits / 64)``.

    Bit ``b`` of a hash is bit ``b % 64`` (least significant first) of word ``b // 64``;
    the bits past ``bits`` in the last word are 0. Distances are unaffected by the bit
    order, so the words are only ever XORed and counted.
    """
    n, bits = h.shape
    words = -(-bits // 64)
    pad = words * 64 - bits
    u8 = h.to(torch.uint8)
    if pad:
        u8 = torch.cat([u8, u8.new_zeros((n, pad))], dim=1)
    shifts = torch.arange(8, dtype=torch.uint8, device=h.device)
    packed = (u8.view(n, words * 8, 8) << shifts).sum(dim=2, dtype=torch.uint8)
    return packed.view(torch.int64)  # little-endian bytes -> words


def popcount(x: torch.Tensor) -> torch.Tensor:
    """Set bits of each int64 (two's complement: ``-1`` has 64), as int64 on x's device.

    On the CPU with numpy >= 2.0: ``numpy.bitwise_count`` (a hardware popcount) on the
    words read as uint64; otherwise the SWAR bit count in int64 tensor arithmetic.
    """
    if x.device.type == "cpu" and _HAS_NP_POPCOUNT:
        return torch.from_numpy(np.bitwise_count(x.contiguous().numpy().view(np.uint64))).to(torch.int64)
    x = x - ((x >> 1) & _M1)  # arithmetic shifts: the sign bits shifted in are masked off
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return x & 0x7F


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamming distances between packed rows ``a[k]`` and ``b[k]`` (broadcast), int64."""
    x = a ^ b
    d = popcount(x[..., 0])
    for w in range(1, x.shape[-1]):
        d = d + popcount(x[..., w])
    return d


def block_keys(words: torch.Tensor, start: int, width: int) -> torch.Tensor:
    """Bits ``start .. start + width - 1`` (``width <= 62``) of every packed hash as one int64."""
    k, off = divmod(start, 64)
    low = min(width, 64 - off)
    key = (words[:, k] >> off) & ((1 << low) - 1)
    if low < width:
        key = key | ((words[:, k + 1] & ((1 << (width - low)) - 1)) << low)
    return key


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Plan:
    """How :func:`pairs_within` searches: ``blocks`` of (start, width, threshold), or brute force."""

    blocks: Tuple[Tuple[int, int, int], ...] = ()
    cost: float = 0.0

    @property
    def brute_force(self) -> bool:
        return not self.blocks


# Rough costs in nanoseconds per operation (a brute-force pair; a candidate expanded and
# verified; a (distinct value, mask) lookup, in a dense table or by binary search; the sorts
# per hash and block), from timings of 5 000 to 1 000 000 random 64-bit hashes on one CPU
# core; only their ratios matter (they choose between plans).
_COSTS = {
    "cpu": {"pair": 2.0, "candidate": 20.0, "lookup": 40.0, "lookup_sorted": 100.0, "per_hash": 200.0},
    "cuda": {"pair": 0.004, "candidate": 0.05, "lookup": 0.05, "lookup_sorted": 0.2, "per_hash": 2.0},
}
_MAX_KEY_BITS = 62  # block values are non-negative int64
_DENSE_TABLE_BITS = 24  # distinct values found through a 2**w table up to here, else by binary search
_MAX_MASKS = 1 << 18


def _ball(width: int, radius: int) -> int:
    """Number of ``width``-bit masks with at most ``radius`` set bits."""
    return sum(math.comb(width, k) for k in range(min(width, radius) + 1))


def _split(total: int, parts: int) -> List[int]:
    base, extra = divmod(total, parts)
    return [base + 1 if i < extra else base for i in range(parts)]


def make_plan(n: int, bits: int, radius: int, device: torch.device) -> Plan:
    """The cheapest exact plan by an estimate for ``n`` uniformly random ``bits``-bit hashes."""
    c = _COSTS["cuda" if device.type == "cuda" else "cpu"]
    pairs = n * (n - 1) / 2.0
    best = Plan((), pairs * c["pair"])
    if radius >= bits or n < 2:
        return best
    m_min = -(-bits // _MAX_KEY_BITS)
    for m in range(max(1, m_min), max(m_min, radius + 1) + 1):
        if m > bits:
            break
        widths = _split(bits, m)
        thresholds = _split(max(0, radius - m + 1), m)
        cost, start, blocks = n * m * c["per_hash"], 0, []
        for w, t in zip(widths, thresholds):
            ball = _ball(w, t)
            if ball - 1 > _MAX_MASKS:
                cost = math.inf
                break
            distinct = min(float(n), 2.0**w * -math.expm1(-n / 2.0**w))
            look = c["lookup"] if w <= _DENSE_TABLE_BITS else c["lookup_sorted"]
            cost += distinct * (ball - 1) * look + pairs * ball / 2.0**w * c["candidate"]
            blocks.append((start, w, t))
            start += w
        if cost < best.cost:
            best = Plan(tuple(blocks), cost)
    return best


# --------------------------------------------------------------------------- array backends


class _NumpyOps:
    """The search's array operations on the CPU: numpy (its gathers, repeats and popcount
    are 2-3x faster than torch's on one core, and release the GIL for the worker threads)."""

    def __init__(self, n: int):
        self.index = np.int32 if n < (1 << 31) - 1 else np.int64

    def from_torch(self, t: torch.Tensor) -> np.ndarray:
        return t.contiguous().numpy()

    def to_torch(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a).astype(np.int64, copy=False))

    def arange(self, n: int) -> np.ndarray:
        return np.arange(n, dtype=self.index)

    def repeat(self, x: np.ndarray, counts: np.ndarray, total: int) -> np.ndarray:
        return np.repeat(x, counts, axis=0)

    def take(self, x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.take(x, idx, axis=0)

    def nonzero(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask).astype(self.index, copy=False)

    def cumsum(self, x: np.ndarray) -> np.ndarray:
        return np.cumsum(x, dtype=np.int64)

    def argsort(self, keys: np.ndarray) -> np.ndarray:
        return np.argsort(keys, kind="stable").astype(self.index, copy=False)

    def searchsorted(self, a: np.ndarray, v: np.ndarray, right: bool = False) -> np.ndarray:
        return np.searchsorted(a, v, side="right" if right else "left").astype(self.index, copy=False)

    def full(self, n: int, value: int) -> np.ndarray:
        return np.full(n, value, dtype=self.index)

    def int64(self, values: List[int]) -> np.ndarray:
        return np.array(values, dtype=np.int64)

    def ordered(self, a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        return np.minimum(a, b), np.maximum(a, b)

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Popcounts of XORed words ``(K, W)`` summed over words (uint8 / uint16)."""
        d = np.bitwise_count(x[:, 0].view(np.uint64)) if _HAS_NP_POPCOUNT else _np_popcount(x[:, 0])
        if x.shape[1] > 1:
            d = d.astype(np.uint16)
            for w in range(1, x.shape[1]):
                d += np.bitwise_count(x[:, w].view(np.uint64)) if _HAS_NP_POPCOUNT else _np_popcount(x[:, w])
        return d


def _np_popcount(x: np.ndarray) -> np.ndarray:
    """Popcount of int64 words for numpy < 2.0 (a byte table)."""
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[np.ascontiguousarray(x).view(np.uint8).reshape(-1, 8)].sum(axis=1, dtype=np.uint8)


class _TorchOps:
    """The same operations in torch, for CUDA (large batches, no numpy round trips)."""

    def __init__(self, device: torch.device):
        self.device = device

    def from_torch(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def to_torch(self, a: torch.Tensor) -> torch.Tensor:
        return a.to(torch.int64)

    def arange(self, n: int) -> torch.Tensor:
        return torch.arange(n, device=self.device)

    def repeat(self, x: torch.Tensor, counts: torch.Tensor, total: int) -> torch.Tensor:
        return torch.repeat_interleave(x, counts, dim=0, output_size=total)

    def take(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return x.index_select(0, idx)

    def nonzero(self, mask: torch.Tensor) -> torch.Tensor:
        return torch.nonzero(mask, as_tuple=True)[0]

    def cumsum(self, x: torch.Tensor) -> torch.Tensor:
        return x.cumsum(0)

    def argsort(self, keys: torch.Tensor) -> torch.Tensor:
        return torch.sort(keys, stable=True).indices

    def searchsorted(self, a: torch.Tensor, v: torch.Tensor, right: bool = False) -> torch.Tensor:
        return torch.searchsorted(a, v, right=right)

    def full(self, n: int, value: int) -> torch.Tensor:
        return torch.full((n,), value, dtype=torch.int64, device=self.device)

    def int64(self, values: List[int]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.int64, device=self.device)

    def ordered(self, a: torch.Tensor, b: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return torch.minimum(a, b), torch.maximum(a, b)

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        d = popcount(x[:, 0])
        for w in range(1, x.shape[1]):
            d = d + popcount(x[:, w])
        return d


# --------------------------------------------------------------------------- search


_CHUNK = {"cpu": 1 << 20, "cuda": 1 << 25}  # candidates (or brute-force pairs) verified at once


def pairs_within(
    words: torch.Tensor,
    radius: int,
    bits: int,
    plan: Optional[Plan] = None,
    workers: Optional[int] = None,
    backend: Optional[str] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every pair ``i < j`` of packed hashes with ``popcount(words[i] ^ words[j]) <= radius``.

    Args:
        words: ``(N, W)`` int64 packed hashes (:func:`pack_bits`).
        radius: largest distance kept, ``>= 0``.
        bits: the number of meaningful bits (for the plan).
        plan: a :class:`Plan`; by default :func:`make_plan`'s.
        workers: CPU threads for the independent pieces of work (default
            ``torch.get_num_threads()``); CUDA work runs in one stream.
        backend: ``"numpy"`` (the CPU default) or ``"torch"`` (the CUDA one; on the CPU it
            runs the CUDA code path, which the tests use).

    Returns:
        ``(i, j, d)``: three ``(P,)`` int64 tensors on words' device, sorted by ``(i, j)``.
    """
    n = words.shape[0]
    dev = words.device
    if plan is None:
        plan = make_plan(n, bits, radius, dev)
    cuda = dev.type == "cuda"
    use_torch = (backend or ("torch" if cuda else "numpy")) == "torch"
    ops = _TorchOps(dev) if use_torch else _NumpyOps(n)
    chunk = _CHUNK["cuda" if cuda else "cpu"]
    w = ops.from_torch(words)
    tasks: List = []
    if n >= 2:
        if plan.brute_force:
            tasks = list(_brute_force_tasks(ops, w, radius, chunk))
        else:
            for start, width, threshold in plan.blocks:
                tasks.extend(_block_tasks(ops, w, radius, start, width, threshold, chunk))
    workers = 1 if use_torch else (workers or torch.get_num_threads())
    if workers > 1 and len(tasks) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            found = [part for parts in pool.map(lambda task: list(task()), tasks) for part in parts]
    else:
        found = [part for task in tasks for part in task()]
    empty = torch.zeros((0,), dtype=torch.int64, device=dev)
    if not found:
        return empty, empty, empty
    i, j, d = (torch.cat([ops.to_torch(p[k]) for p in found]).to(dev) for k in range(3))
    key, order = torch.sort(i * n + j)
    keep = torch.ones_like(key, dtype=torch.bool)
    keep[1:] = key[1:] != key[:-1]  # a pair found through several blocks: once
    order = order[keep]
    return i[order], j[order], d[order]


def _brute_force_tasks(ops, words, radius: int, chunk: int):
    """Rows ``lo .. hi`` against the columns after ``lo`` (the upper triangle), one row block per task."""
    n = words.shape[0]
    lo = 0
    while lo < n - 1:
        hi = lo + max(1, min(n - 1 - lo, chunk // (n - lo)))

        def task(lo=lo, hi=hi):
            cols = n - lo - 1
            x = (words[lo:hi, None, :] ^ words[None, lo + 1 :, :]).reshape(-1, words.shape[1])
            d = ops.distances(x)
            hit = ops.nonzero(d <= radius)
            i, j = hit // cols + lo, hit % cols + lo + 1
            upper = ops.nonzero(j > i)
            if upper.shape[0]:
                yield ops.take(i, upper), ops.take(j, upper), ops.take(ops.take(d, hit), upper)

        yield task
        lo = hi


def _block_tasks(ops, words, radius: int, start: int, width: int, threshold: int, chunk: int):
    """Tasks finding the candidates whose block ``start .. start + width`` differs in ``<= threshold`` bits."""
    n = words.shape[0]
    keys = block_keys(words, start, width)
    order = ops.argsort(keys)
    keys = ops.take(keys, order)
    sorted_words = ops.take(words, order)
    first = ops.nonzero(keys[1:] != keys[:-1]) + 1
    starts = _cat(ops, [ops.full(1, 0), first])
    counts = _diff_to(ops, starts, n)
    values = ops.take(keys, starts)

    # equal values: each position with the later positions of its run
    ends = ops.repeat(starts + counts, counts, n)
    pos = ops.arange(n)
    yield lambda: _verify(ops, sorted_words, order, pos, pos + 1, ends - pos - 1, radius, chunk)
    if threshold == 0:
        return

    # values differing by a mask of 1 .. threshold bits, each unordered pair once: a mask whose
    # highest set bit is t pairs a value with bit t clear to the larger value with it set
    u = values.shape[0]
    dense = width <= _DENSE_TABLE_BITS and (1 << width) <= max(1 << 16, 16 * n)
    if dense:
        table = ops.full(1 << width, -1)
        table[values] = ops.arange(u)
    for top, masks in _masks_by_top_bit(width, threshold):
        low = ops.nonzero(((values >> top) & 1) == 0)
        if low.shape[0] == 0:
            continue
        per_task = max(1, chunk // low.shape[0])
        for b in range(0, len(masks), per_task):
            batch = masks[b : b + per_task]

            def task(low=low, batch=batch):
                src = ops.take(values, low)
                partner = (src[:, None] ^ ops.int64(batch)[None, :]).reshape(-1)
                if dense:
                    kb = ops.take(table, partner)
                else:
                    at = ops.searchsorted(values, partner)
                    at[at >= u] = u - 1
                    kb = _where_equal(ops, ops.take(values, at), partner, at)
                hit = ops.nonzero(kb >= 0)
                if hit.shape[0] == 0:
                    return
                ka = ops.take(low, hit // len(batch))
                kb = ops.take(kb, hit)
                ca = ops.take(counts, ka)
                rows_total = int(ca.sum())
                offsets = ops.cumsum(ca) - ca
                rows = ops.repeat(ops.take(starts, ka) - offsets, ca, rows_total) + ops.arange(rows_total)
                col0 = ops.repeat(ops.take(starts, kb), ca, rows_total)
                ncol = ops.repeat(ops.take(counts, kb), ca, rows_total)
                yield from _verify(ops, sorted_words, order, rows, col0, ncol, radius, chunk)

            yield task


def _cat(ops, parts):
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)


def _diff_to(ops, starts, n: int):
    """Run lengths from run starts and the total length."""
    ends = _cat(ops, [starts[1:], ops.full(1, n)])
    return ends - starts


def _where_equal(ops, a, b, at):
    if isinstance(a, torch.Tensor):
        return torch.where(a == b, at, -1)
    return np.where(a == b, at, -1).astype(at.dtype, copy=False)


def _verify(ops, sorted_words, order, rows, col0, ncol, radius: int, chunk: int):
    """Candidates ``(rows[k], col0[k] + c)`` for ``c < ncol[k]`` (sorted positions), within radius.

    Expanded and verified in chunks of about ``chunk`` candidates; yields ``(i, j, d)`` in
    original indices (``order`` maps sorted positions to them), ``i < j``.
    """
    live = ops.nonzero(ncol > 0)
    if live.shape[0] == 0:
        return
    rows, col0, ncol = ops.take(rows, live), ops.take(col0, live), ops.take(ncol, live)
    cum = ops.cumsum(ncol)
    total = int(cum[-1])
    # chunk boundaries at row granularity: rows [lo, hi) hold about `chunk` candidates
    cuts = ops.searchsorted(cum, ops.arange(total // chunk + 1)[1:] * chunk if total > chunk else cum[:0])
    edges = sorted({0, rows.shape[0], *(min(int(c) + 1, rows.shape[0]) for c in cuts)})
    for lo, hi in zip(edges[:-1], edges[1:]):
        r, c0, nc = rows[lo:hi], col0[lo:hi], ncol[lo:hi]
        ccum = ops.cumsum(nc)
        size = int(ccum[-1])
        x = ops.repeat(ops.take(sorted_words, r), nc, size)
        cols = ops.repeat(c0 - (ccum - nc), nc, size)
        cols += ops.arange(size)
        x ^= ops.take(sorted_words, cols)
        d = ops.distances(x)
        hit = ops.nonzero(d <= radius)
        if hit.shape[0] == 0:
            continue
        a = ops.take(r, ops.searchsorted(ccum, hit, right=True))
        b = ops.take(cols, hit)
        yield (*ops.ordered(ops.take(order, a), ops.take(order, b)), ops.take(d, hit))


def _masks_by_top_bit(width: int, threshold: int) -> List[Tuple[int, List[int]]]:
    """Every ``width``-bit mask with 1 .. threshold set bits, grouped by its highest set bit."""
    groups: List[Tuple[int, List[int]]] = []
    for top in range(width):
        masks = [1 << top]
        for k in range(1, min(threshold, top + 1)):
            for combo in itertools.combinations(range(top), k):
                masks.append((1 << top) | sum(1 << b for b in combo))
        groups.append((top, masks))
    return groups


def distance_dtype(bits: int) -> torch.dtype:
    """The smallest integer dtype that holds every distance between ``bits``-bit hashes."""
    if bits <= 255:
        return torch.uint8
    if bits <= 32767:
        return torch.int16
    return torch.int32


__all__ = ["Plan", "block_keys", "distance_dtype", "make_plan", "pack_bits", "pairs_within", "popcount"]
