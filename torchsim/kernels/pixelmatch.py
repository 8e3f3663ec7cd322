"""pixelmatch's per-pixel arithmetic, and its CPU kernel on NumPy arrays.

:func:`torchsim.pixelmatch` validates its tensors and runs one of two paths that compute
the same masks (tests check they agree):

* dense (CUDA, in :mod:`torchsim.functional.pixelmatch`): every pixel of the batch, the
  eight neighbours as stacked shifted views; no host-device synchronisation;
* sparse (CPU, :func:`run` here): only the pixels whose colours differ, and among those only
  the ones above the threshold for the anti-aliasing test, compacted with ``flatnonzero``
  and read from the channel planes by flat index. Typically a few percent of the pixels
  need any work: ~100x faster than pixelmatch-py.

The sparse path works on NumPy arrays (torch CPU tensors are handed over without a copy)
so that ``torchsim diff`` runs it without importing torch, whose import alone takes longer
than odiff's whole run on a 37-megapixel screenshot pair. The arithmetic shared by both paths
(YIQ deltas, v7's blending over a backdrop, the anti-aliasing rule) is written with
operators, or with :func:`_where` / :func:`_extreme` where the two array libraries name
things differently, so that one copy serves torch tensors and NumPy arrays.

Every per-pixel quantity is computed in float64, in the same operation order as the
reference, so threshold comparisons and the diff image agree bit for bit. The 3x3
neighbourhood rules of the anti-aliasing detector look at the eight neighbours in the
reference's visiting order. Importing this module imports neither torch nor NumPy.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, List, Optional, Sequence, Tuple

from ..ops.yiq_color import blend_white, yiq, yiq_distance, yiq_y

Array = Any  # a numpy.ndarray, or a torch.Tensor for the shared arithmetic
RGB = Tuple[int, int, int]

MAX_YIQ_DELTA = 35215  # the largest possible YIQ delta
AA_COLOR: RGB = (255, 255, 0)  # pixelmatch's defaults
DIFF_COLOR: RGB = (255, 0, 0)
ALPHA = 0.1  # opacity of the grey copy of the first image under the diff
_DELTA_WEIGHTS = (0.5053, 0.299, 0.1957)  # of dY², dI², dQ²
_PHI = (1.618033988749895, 2.618033988749895)  # v7's checkerboard divisors, φ and φ²
# CPU work sizes: each task's float64 temporaries stay in the cache.
_BAND = 1 << 16  # pixels per band of rows of the grey background
_CHUNK = 1 << 16  # changed pixels per task of the sparse path
_AA_CHUNK = 4096  # pixels per anti-aliasing test: its largest temporaries are 9 x 4 x 4096 float64

# The 8 neighbours in the reference's visiting order (x outer, y inner): (dx, dy).
OFFSETS: List[Tuple[int, int]] = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]


def max_delta(threshold: float) -> float:
    """The YIQ delta above which a pixel differs, for pixelmatch's ``threshold`` in [0, 1]."""
    return MAX_YIQ_DELTA * threshold * threshold


# ---- arithmetic shared by the dense (torch) and sparse (NumPy) paths ------------------------


def _is_numpy(t: Array) -> bool:
    return type(t).__module__ == "numpy"


def _where(cond: Array, a: Array, b: float) -> Array:
    """``a`` where ``cond``, else the number ``b``."""
    if _is_numpy(cond):
        import numpy as np

        return np.where(cond, a, b)
    return a.where(cond, b)


def _extreme(v: Array, dim: int, largest: bool) -> Tuple[Array, Array]:
    """``(value, index)`` of the first smallest (or largest) entry along ``dim``, dims kept."""
    if _is_numpy(v):
        import numpy as np

        k = (v.argmax if largest else v.argmin)(axis=dim, keepdims=True)
        return np.take_along_axis(v, k, dim), k
    return tuple(v.max(dim, keepdim=True) if largest else v.min(dim, keepdim=True))


def yiq_of(v: Sequence[Optional[Array]], y_only: bool = False):
    """Y (and I, Q) of RGBA colours ``v = (r, g, b, a)`` (float64) alpha-blended with white.

    ``blend(c, a) = 255 + (c - 255) * (a / 255)``; for ``a == 255`` this is exactly
    ``c``, so blending every pixel equals the reference's ``if a < 255`` branch.
    The operation order is the reference's, so the values are bit-identical.
    """
    r, g, b, a = v
    if a is not None:  # None: known opaque (RGB or gray input), where blending is the identity
        r, g, b = blend_white((r, g, b), a)
    return yiq_y(r, g, b) if y_only else yiq(r, g, b)


def backdrop(kind: Optional[str], idx: Optional[Array] = None):
    """What a semi-transparent pixel at per-image flat index ``idx`` is blended over, as ``(R, G, B)``.

    ``None`` for pixelmatch-py's arithmetic (each colour blended with white on
    its own); ``"white"``; or ``"checkerboard"``, mapbox v7's pattern, picked
    from the pixel's byte offset ``k = 4·idx``: ``48 + 159·(k mod 2)`` for red
    (always 48: ``k`` is even), ``48 + 159·(⌊k/φ⌋ mod 2)`` for green and
    ``48 + 159·(⌊k/φ²⌋ mod 2)`` for blue, with JavaScript's ``| 0`` (a wrap to
    int32) and ``%`` (the sign of the dividend), so that images past 2³¹·φ bytes
    (868 M pixels), where ``| 0`` wraps, get v7's colours too. Exact in float64
    (every value is an integer below 2⁵³).
    """
    if kind is None:
        return None
    if kind == "white":
        return (255.0, 255.0, 255.0)
    k = (idx.astype("float64") if _is_numpy(idx) else idx.double()) * 4
    out = [48.0]
    for d in _PHI:
        t = (k / d) // 1  # trunc of the rounded quotient, as JavaScript's (k / d) | 0: k >= 0
        t = (t + 2**31) % 2**32 - 2**31  # ToInt32
        odd = t % 2  # 0 or 1 (floor modulo)
        out.append((odd - 2 * odd * (t < 0)) * 159 + 48)  # JavaScript's t % 2 is -1 for odd t < 0
    return tuple(out)


def _blended_difference(c1: Sequence[Optional[Array]], c2: Sequence[Optional[Array]], bg) -> Tuple[Optional[Array], ...]:
    """mapbox v7: the channel differences of two RGBA colours composited over ``bg``.

    ``(c1·a1 - c2·a2 - bg·(a1 - a2)) / 255``: the numerator is an exact integer
    in float64, so this is v7's value to the last bit whichever way it is
    summed, and for two opaque pixels it is exactly ``c1 - c2`` (v7 skips the
    blending there; the result is the same). Returned as an opaque colour
    ``(dr, dg, db, None)`` for :func:`yiq_of`.
    """
    a1, a2 = c1[3], c2[3]
    if a1 is None:  # known opaque
        return c1[0] - c2[0], c1[1] - c2[1], c1[2] - c2[2], None
    da = a1 - a2
    r, g, b = ((u * a1 - v * a2 - k * da) / 255 for u, v, k in zip(c1[:3], c2[:3], bg))
    return r, g, b, None


def pair_delta(ca: Sequence[Optional[Array]], cb: Sequence[Optional[Array]], bg) -> Tuple[Array, Array]:
    """``(delta, dY)`` of each pixel pair: the squared YIQ distance and the brightness difference
    (``dY > 0``: the second colour is darker). ``bg is None``: pixelmatch-py's arithmetic (the
    difference of the two blended colours' YIQ); otherwise v7's, the YIQ of the blended channel
    differences."""
    if bg is None:
        ya, ia, qa = yiq_of(ca)
        yb, ib, qb = yiq_of(cb)
        dy = ya - yb
        return yiq_distance(dy, ia - ib, qa - qb), dy
    y, i, q = yiq_of(_blended_difference(ca, cb, bg))
    return (_DELTA_WEIGHTS[0] * y) * y + (_DELTA_WEIGHTS[1] * i) * i + (_DELTA_WEIGHTS[2] * q) * q, y


def pair_brightness(c: Sequence[Optional[Array]], n: Sequence[Optional[Array]], bg) -> Array:
    """The anti-aliasing detector's brightness delta, centre ``c`` minus neighbour ``n``.

    v7 blends both over the *centre* pixel's backdrop ``bg``; pixelmatch-py
    (``bg is None``) subtracts the brightnesses of the two colours blended with white.
    """
    if bg is None:
        return yiq_of(c, y_only=True) - yiq_of(n, y_only=True)
    return yiq_of(_blended_difference(c, n, bg), y_only=True)


def aa_rule(d: Array, border: Array, dim: int) -> Tuple[Array, Array, Array]:
    """From the 8 brightness deltas ``d`` (NaN for neighbours outside the image) along ``dim``:
    ``(candidate, darkest k, brightest k)``.

    A pixel is a candidate when at most two deltas are zero (a border pixel
    counts one extra) and it has both a darker and a brighter neighbour. The
    darkest / brightest neighbour is the first in the reference's visiting order
    on ties, as its strict ``<`` / ``>`` scan keeps it.
    """
    zeroes = (d == 0).sum(dim) + border
    min_d, min_k = _extreme(_where(d < 0, d, 0.0), dim, largest=False)
    max_d, max_k = _extreme(_where(d > 0, d, 0.0), dim, largest=True)
    cand = (zeroes <= 2) & (min_d.squeeze(dim) != 0) & (max_d.squeeze(dim) != 0)
    return cand, min_k, max_k


def gray_index(x: Array, alpha: float, mapbox: bool) -> Array:
    """drawGrayPixel: ``x``'s raw (unblended) luma blended with white by ``alpha·A/255``, truncated
    as a byte array stores it; ``x`` ``(N, C, H, W)`` float64 planes in, float64 (integer values)
    out. In v7's operation order (``(L - 255)·alpha·A / 255``) or pixelmatch-py's
    (``(L - 255)·(alpha·A/255)``)."""
    c = x.shape[1]
    lum = yiq_y(*(x[:, min(k, c - 1)] for k in range(3)))
    lum -= 255
    a = x[:, 3] if c == 4 else 255.0
    if mapbox:
        lum *= alpha
        lum *= a
        lum /= 255
    else:
        lum *= alpha * a / 255
    lum += 255
    return _floor(lum)  # trunc: the value is >= 0


def _floor(t: Array) -> Array:
    """``t`` rounded down, in place."""
    if _is_numpy(t):
        import numpy as np

        return np.floor(t, out=t)
    return t.floor_()


# ---- the CPU kernel (NumPy) -------------------------------------------------------------


def _workers() -> int:
    """Threads for the kernel's tasks: torch's intra-op thread count where torch is loaded (so
    ``torch.set_num_threads`` and torch's chunk workers, which run at 1, are obeyed), else the CPUs
    this process may use; at most ``TORCHSIM_CHUNK_WORKERS`` (as the torch kernels)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        n = torch.get_num_threads()
    else:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cap = os.environ.get("TORCHSIM_CHUNK_WORKERS", "")
    return min(n, max(1, int(cap))) if cap.strip().isdigit() else n


_pool_lock = threading.Lock()
_pool: Optional[Tuple[int, int, Any]] = None  # (pid, threads, ThreadPoolExecutor): remade after a fork or a new count


def _map(fn, items: Sequence[Any]) -> List[Any]:
    """``[fn(item) for item in items]`` on threads (NumPy releases the GIL in its loops). The
    tasks never wait on one another, so callers in several threads can share the pool."""
    global _pool
    workers = _workers()
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with _pool_lock:
        if _pool is None or _pool[:2] != (os.getpid(), workers):
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)
            _pool = (os.getpid(), workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="torchsim-pixelmatch"))
        pool = _pool[2]
    return list(pool.map(fn, items))


class _Pixels:
    """Pixels of one image read at flat indices from its channel planes ``(C, N*H*W)``:
    float64 channels as the arithmetic wants them, and whether neighbours are the same pixel."""

    def __init__(self, planes: Array, opaque: bool):
        self.planes, self.opaque = planes, opaque

    def channels(self, idx: Array) -> Tuple[Optional[Array], ...]:
        """``(r, g, b, a)`` float64 at ``idx`` (any shape); gray is replicated, ``a`` is None if opaque
        (every image without a fourth channel)."""
        got = [p.take(idx).astype("float64") for p in self.planes]
        rgb = (got[0], got[0], got[0]) if len(got) == 1 else (got[0], got[1], got[2])
        return rgb + (None if self.opaque else got[3],)

    def same(self, idx: Array) -> Array:
        """``(8, K)`` bool: whether the pixel at ``idx[k + 1]`` equals the one at ``idx[0]`` (``idx`` ``(9, K)``)."""
        out = None
        for p in self.planes:
            v = p.take(idx)
            eq = v[1:] == v[:1]
            out = eq if out is None else out & eq
        return out


def _masks(x: Array, y: Array, limit: float, include_aa: bool, opaque: bool, kind, ignore):
    """The pixels above the threshold, as flat indices into ``(N, H, W)`` with their anti-aliasing
    and darker flags ``(f, aa, darker)``, and the number of changed pixels per image ``(N,)``;
    the dense path's masks where they are True, computed only where it matters.

    Only pixels that differ in some channel can exceed the threshold (identical pixels have
    ``delta == 0``), and only those above it need the anti-aliasing test; both sets are
    compacted and their neighbours found by flat-index arithmetic, reading the few pixels
    needed from the channel planes (no RGBA copy of the images). The changed pixels are
    handled in chunks (:data:`_CHUNK`, anti-aliasing tests by :data:`_AA_CHUNK`) on threads.
    """
    import numpy as np

    n, c, h, w = x.shape
    hw = h * w
    qa, qb = (v.reshape(n, c, hw).transpose(1, 0, 2).reshape(c, n * hw) for v in (x, y))  # views for N = 1
    changed = qa[0] != qb[0]
    for k in range(1, c):
        changed |= qa[k] != qb[k]
    if ignore is not None:
        changed &= ~ignore.reshape(-1)
    f = np.flatnonzero(changed)
    n_changed = np.bincount(f // hw, minlength=n)
    f = f.astype(np.int32 if n * hw < 2**31 - w - 1 else np.int64)
    pa, pb = _Pixels(qa, opaque), _Pixels(qb, opaque)
    d_off = np.array([dy * w + dx for dx, dy in OFFSETS], dtype=f.dtype).reshape(8, 1)

    def around(pos):
        """``(9, K)`` flat indices of each pixel and its 8 neighbours (clamped inside), the
        neighbours' validity ``(8, K)`` and the border flag ``(K,)``."""
        r = pos % hw if n > 1 else pos
        y0 = r // w
        x0 = r - y0 * w
        sides = {(0, -1): y0 > 0, (0, 1): y0 < h - 1, (-1, 0): x0 > 0, (1, 0): x0 < w - 1}  # a neighbour there
        rows = []
        for dx, dy in OFFSETS:
            parts = [sides[(dx, 0)]] if dx else []
            parts += [sides[(0, dy)]] if dy else []
            rows.append(parts[0] & parts[1] if len(parts) == 2 else parts[0])
        valid = np.stack(rows)
        idx = np.concatenate([pos[None], np.where(valid, pos + d_off, pos)])
        border = ~(sides[(0, -1)] & sides[(0, 1)] & sides[(-1, 0)] & sides[(1, 0)])
        return idx, valid, border.astype(np.int32)

    def antialiased(f):
        """Whether each pixel ``f`` (above the threshold) is anti-aliasing in either image."""
        idx, valid, border = around(f)
        k = f.size
        ca, cb = pa.channels(idx), pb.channels(idx)
        px = [None if u is None else np.stack([u, v]) for u, v in zip(ca, cb)]  # channels, each (2, 9, K)
        centre = [None if u is None else u[:, :1] for u in px]
        nbs9 = [None if u is None else u[:, 1:] for u in px]
        d = pair_brightness(centre, nbs9, backdrop(kind, f % hw))  # the centre's backdrop, as v7
        cand, min_k, max_k = aa_rule(np.where(valid, d, np.nan), border, 1)
        nbs = np.broadcast_to(idx[1:].astype(np.int64), (2, 8, k))
        extremes = np.concatenate([np.take_along_axis(nbs, min_k, 1), np.take_along_axis(nbs, max_k, 1)], 1)
        # has_many_siblings (in both images) at the extremes of the candidates only
        todo = np.broadcast_to(cand[:, None, :], (2, 2, k))
        sidx, svalid, sborder = around(extremes[todo])
        many = (np.stack([pa.same(sidx), pb.same(sidx)]) & svalid).sum(1) + sborder > 2
        sib = np.zeros(todo.shape, dtype=bool)
        sib[todo] = many.all(0)
        return (sib[:, 0] | sib[:, 1]).any(0)

    def chunk(f):
        """``(f, aa, darker)`` of the pixels of ``f`` above the threshold."""
        delta, dy = pair_delta(pa.channels(f), pb.channels(f), backdrop(kind, f % hw))
        o = delta > limit
        f, darker = f[o], dy[o] > 0
        if include_aa or f.size == 0:
            return f, np.zeros_like(darker), darker
        aa = [antialiased(f[i : i + _AA_CHUNK]) for i in range(0, f.size, _AA_CHUNK)]
        return f, aa[0] if len(aa) == 1 else np.concatenate(aa), darker

    parts = _map(chunk, [f[i : i + _CHUNK] for i in range(0, f.size, _CHUNK)] or [f])
    return (*(np.concatenate(t) for t in zip(*parts)), n_changed)


def _gray_u8(x: Array, alpha: float, mapbox: bool, out: Array) -> None:
    """:func:`gray_index` of ``x`` into the ``(N, H, W)`` uint8 ``out``, in bands of rows on threads."""
    n, _, h, w = x.shape
    rows = max(1, _BAND // (n * w))

    def band(r0: int) -> None:
        out[:, r0 : r0 + rows] = gray_index(x[:, :, r0 : r0 + rows].astype("float64"), alpha, mapbox)

    _map(band, range(0, h, rows))


def _paint(out: Array, where: Array, rgb: RGB) -> None:
    """Set the pixels at flat indices ``where`` into ``(N, H, W)`` of the RGBA image ``out`` to ``rgb``, opaque."""
    if where.size == 0:
        return
    n, _, h, w = out.shape
    p = where.astype("int64")
    base = (p // (h * w)) * (4 * h * w) + p % (h * w)
    flat = out.reshape(-1)
    for c, v in enumerate((*rgb, 255)):
        flat[base + c * h * w] = v


def run(
    x: Array,
    y: Array,
    limit: float,
    include_aa: bool,
    alpha: float,
    colors: Tuple[RGB, RGB, Optional[RGB]],
    diff_mask: bool,
    return_diff: bool,
    mapbox: bool = True,
    checkerboard: bool = True,
    ignore: Optional[Array] = None,
) -> Tuple[Array, Optional[Array], Array]:
    """pixelmatch of validated ``(N, C, H, W)`` uint8 NumPy arrays (``C`` = 1, 3 or 4; C-contiguous).

    Args:
        limit: :func:`max_delta` of the threshold.
        colors: ``(aa_color, diff_color, diff_color_alt or None)``.
        mapbox: v7's arithmetic (else pixelmatch-py's); ``checkerboard``: v7's backdrop.
        ignore: ``(N, H, W)`` bool, True = ignored, or None.

    Returns:
        ``(count, diff, identical)``: ``(N,)`` int64 counts; the ``(N, 4, H, W)`` uint8 RGBA
        diff image (None unless ``return_diff``), whose background is the faded grey of ``x``
        (transparent with ``diff_mask``); ``(N,)`` bool, the pairs with no changed pixel
        outside ``ignore`` (pixelmatch-py's front end draws those with Pillow's grey: the
        caller's business).
    """
    import numpy as np

    n, c, h, w = x.shape
    opaque = c != 4  # RGB / gray: alpha is 255 everywhere, blending is the identity
    kind = None if not mapbox else "checkerboard" if checkerboard and not opaque else "white"
    f, aa_f, darker_f, n_changed = _masks(x, y, limit, include_aa, opaque, kind, ignore)
    real_f = f[~aa_f]
    count = np.bincount(real_f // (h * w), minlength=n).astype(np.int64)
    identical = n_changed == 0
    if not return_diff:
        return count, None, identical
    aa_color, diff_color, alt_color = colors
    if diff_mask:  # a fresh (zeroed) output buffer, as the references leave it: transparent black
        out = np.zeros((n, 4, h, w), dtype=np.uint8)
    else:  # x in grey, faded to white
        out = np.empty((n, 4, h, w), dtype=np.uint8)
        _gray_u8(x, alpha, mapbox, out[:, 0])
        out[:, 1] = out[:, 0]
        out[:, 2] = out[:, 0]
        out[:, 3] = 255
        _paint(out, f[aa_f], aa_color)
    if alt_color is None:
        _paint(out, real_f, diff_color)
    else:
        real_dark = darker_f[~aa_f]
        _paint(out, real_f[~real_dark], diff_color)
        _paint(out, real_f[real_dark], alt_color)
    return count, out, identical
