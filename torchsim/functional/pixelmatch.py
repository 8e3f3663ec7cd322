"""pixelmatch: perceptual per-pixel comparison with anti-aliasing detection, batched in torch.

A vectorised re-implementation of the pixelmatch algorithm in its two living
generations: mapbox pixelmatch v7 (the default) and its Python port
``pixelmatch-py`` 0.4.0 (a port of pixelmatch 5). One kernel serves both; the
generations differ only in a few arithmetic details, passed to it as options:

* colour and brightness deltas: v7 blends the *channel differences* of two
  semi-transparent pixels over a checkerboard backdrop and converts the
  difference to YIQ; pixelmatch-py blends each colour with white and subtracts
  their YIQ values (``_pair_delta`` / ``_pair_brightness``);
* the faded grey background of the diff image: the same formula, evaluated in
  each reference's operation order (``_gray_index``);
* identical images: pixelmatch-py's PIL front end draws them with Pillow's luma
  (``_pillow_gray``); v7's fast path draws what its per-pixel loop would.

Every per-pixel quantity is computed in float64, in the same operation order as
the reference, so threshold comparisons and the diff image agree bit for bit.
The 3×3 neighbourhood rules of the anti-aliasing detector look at the eight
neighbours in the reference's visiting order.

Two interchangeable paths compute the masks (tests check they agree):

* dense (CUDA): every pixel of the batch, the eight neighbours as stacked
  shifted views; no host-device synchronisation;
* sparse (CPU): only the pixels whose RGBA differ, and among those only the
  ones above the threshold for the anti-aliasing test, compacted with
  ``nonzero`` (free on the CPU, where there is no device to wait for). This is
  what makes the CPU path ~100× faster than pixelmatch-py: typically a few
  percent of the pixels need any work.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import torch

from .. import _validation as V
from .._common import to_uint8
from ..ops import color as C
from ..ops.parallel import thread_map

Color = Sequence[Union[int, float]]

_MAX_YIQ_DELTA = 35215  # the largest possible YIQ delta
_DELTA_WEIGHTS = (0.5053, 0.299, 0.1957)  # of dY², dI², dQ²
_PHI = (1.618033988749895, 2.618033988749895)  # v7's checkerboard divisors, φ and φ²
_COMPAT = ("mapbox", "pixelmatch-py")
# CPU work sizes. Under torch's grain size (32768), so each op runs in its calling thread even
# where the chunk workers (torchsim/ops/parallel.py) are off, and small enough to stay in cache.
_BAND = 30000  # pixels per band of rows of the grey background
_CHUNK = 16384  # changed pixels per task of the sparse path
_AA_CHUNK = 896  # pixels per anti-aliasing test: its largest temporaries are 9 x 4 x 896

# The 8 neighbours in the reference's visiting order (x outer, y inner): (dx, dy).
_OFFSETS: List[Tuple[int, int]] = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]


def _to_rgba_u8(x: torch.Tensor) -> torch.Tensor:
    """``(N, 1|3|4, H, W)`` uint8 -> ``(N, H, W, 4)`` uint8, channels last, as Pillow's ``convert("RGBA")``."""
    n, c, h, w = x.shape
    out = torch.empty((n, h, w, 4), dtype=torch.uint8, device=x.device)
    out[..., :3] = x[:, :3].permute(0, 2, 3, 1)  # a gray channel broadcasts to R, G, B
    if c == 4:
        out[..., 3] = x[:, 3]
    else:
        out[..., 3] = 255
    return out


def _yiq(v: Sequence[torch.Tensor], y_only: bool = False):
    """Y (and I, Q) of RGBA colours ``v = (r, g, b, a)`` (float64) alpha-blended with white.

    ``blend(c, a) = 255 + (c - 255) * (a / 255)``; for ``a == 255`` this is exactly
    ``c``, so blending every pixel equals the reference's ``if a < 255`` branch.
    The operation order is the reference's, so the values are bit-identical.
    """
    r, g, b, a = v
    if a is not None:  # None: known opaque (RGB or gray input), where blending is the identity
        r, g, b = C.blend_white((r, g, b), a)
    return C.yiq_y(r, g, b) if y_only else C.yiq(r, g, b)


def _yiq_delta(va: Sequence[torch.Tensor], vb: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(delta, y1 - y2)``: the squared YIQ distance and the brightness difference."""
    ya, ia, qa = _yiq(va)
    yb, ib, qb = _yiq(vb)
    dy = ya - yb
    return C.yiq_distance(dy, ia - ib, qa - qb), dy


def _backdrop(kind: Optional[str], idx: Optional[torch.Tensor] = None):
    """What a semi-transparent pixel at per-image flat index ``idx`` is blended over, as ``(R, G, B)``.

    ``None`` for pixelmatch-py's arithmetic (each colour blended with white on
    its own); ``"white"``; or ``"checkerboard"``, mapbox v7's pattern, picked
    from the pixel's byte offset ``k = 4·idx``: ``48 + 159·(k mod 2)`` for red
    (always 48: ``k`` is even), ``48 + 159·(⌊k/φ⌋ mod 2)`` for green and
    ``48 + 159·(⌊k/φ²⌋ mod 2)`` for blue, with JavaScript's ``| 0`` (a wrap to
    int32) and ``%`` (the sign of the dividend), so that images past 2³¹·φ bytes
    (868 M pixels), where ``| 0`` wraps, get v7's colours too.
    """
    if kind is None:
        return None
    if kind == "white":
        return (255.0, 255.0, 255.0)
    k = idx.to(torch.float64) * 4  # exact below 2**53
    out = [48.0]
    for d in _PHI:
        t = torch.trunc(k / d).to(torch.int64)
        t = torch.remainder(t + 2**31, 2**32) - 2**31  # ToInt32
        out.append(torch.fmod(t, 2).to(torch.float64).mul_(159).add_(48))
    return tuple(out)


def _blended_difference(c1: Sequence[torch.Tensor], c2: Sequence[torch.Tensor], bg) -> Tuple[Optional[torch.Tensor], ...]:
    """mapbox v7: the channel differences of two RGBA colours composited over ``bg``.

    ``(c1·a1 - c2·a2 - bg·(a1 - a2)) / 255``: the numerator is an exact integer
    in float64, so this is v7's value to the last bit whichever way it is
    summed, and for two opaque pixels it is exactly ``c1 - c2`` (v7 skips the
    blending there; the result is the same). Returned as an opaque colour
    ``(dr, dg, db, None)`` for :func:`_yiq`.
    """
    a1, a2 = c1[3], c2[3]
    if a1 is None:  # known opaque
        return c1[0] - c2[0], c1[1] - c2[1], c1[2] - c2[2], None
    da = a1 - a2
    r, g, b = ((u * a1 - v * a2 - k * da) / 255 for u, v, k in zip(c1[:3], c2[:3], bg))
    return r, g, b, None


def _pair_delta(ca: Sequence[torch.Tensor], cb: Sequence[torch.Tensor], bg) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(delta, dY)`` of each pixel pair: the squared YIQ distance and the brightness difference
    (``dY > 0``: the second colour is darker). ``bg is None``: pixelmatch-py's arithmetic;
    otherwise v7's, the YIQ of the blended channel differences."""
    if bg is None:
        return _yiq_delta(ca, cb)
    y, i, q = _yiq(_blended_difference(ca, cb, bg))
    return (_DELTA_WEIGHTS[0] * y) * y + (_DELTA_WEIGHTS[1] * i) * i + (_DELTA_WEIGHTS[2] * q) * q, y


def _pair_brightness(c: Sequence[torch.Tensor], n: Sequence[torch.Tensor], bg) -> torch.Tensor:
    """The anti-aliasing detector's brightness delta, centre ``c`` minus neighbour ``n``.

    v7 blends both over the *centre* pixel's backdrop ``bg``; pixelmatch-py
    (``bg is None``) subtracts the brightnesses of the two colours blended with white.
    """
    if bg is None:
        return _yiq(c, y_only=True) - _yiq(n, y_only=True)
    return _yiq(_blended_difference(c, n, bg), y_only=True)


def _pad1(t: torch.Tensor, fill) -> torch.Tensor:
    """Pad the last two dims by one with ``fill`` (cheaper than ``F.pad`` for int/bool)."""
    p = t.new_full((*t.shape[:-2], t.shape[-2] + 2, t.shape[-1] + 2), fill)
    p[..., 1:-1, 1:-1] = t
    return p


def _neighbours(t: torch.Tensor, fill) -> torch.Tensor:
    """``(8, *t.shape)``: entry ``k`` holds every pixel's neighbour at ``_OFFSETS[k]`` (``fill`` outside)."""
    h, w = t.shape[-2:]
    p = _pad1(t, fill)
    return torch.stack([p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dx, dy in _OFFSETS])


def _aa_rule(d: torch.Tensor, border: torch.Tensor, dim: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From the 8 brightness deltas ``d`` (NaN for neighbours outside the image) along ``dim``:
    ``(candidate, darkest k, brightest k)``.

    A pixel is a candidate when at most two deltas are zero (a border pixel
    counts one extra) and it has both a darker and a brighter neighbour. The
    darkest / brightest neighbour is the first in the reference's visiting order
    on ties, as its strict ``<`` / ``>`` scan keeps it (``min`` / ``max`` return
    the first extreme index).
    """
    zero = torch.zeros((), dtype=d.dtype, device=d.device)
    zeroes = (d == 0).sum(dim) + border
    min_d, min_k = torch.where(d < 0, d, zero).min(dim, keepdim=True)
    max_d, max_k = torch.where(d > 0, d, zero).max(dim, keepdim=True)
    cand = (zeroes <= 2) & (min_d.squeeze(dim) != 0) & (max_d.squeeze(dim) != 0)
    return cand, min_k, max_k


def _masks_dense(a: torch.Tensor, b: torch.Tensor, max_delta: float, include_aa: bool, opaque: bool, backdrop, ignore):
    """``(over, aa, darker)`` maps ``(N, H, W)`` for the whole image; no host sync (CUDA path)."""
    n, h, w, _ = a.shape
    va, vb = a.to(torch.float64), b.to(torch.float64)
    ca, cb = va.unbind(3), vb.unbind(3)
    if opaque:
        ca, cb = (*ca[:3], None), (*cb[:3], None)
    bg = _backdrop(backdrop, torch.arange(h * w, device=a.device).reshape(h, w) if backdrop == "checkerboard" else None)
    delta, dy = _pair_delta(ca, cb, bg)
    over = delta > max_delta
    if ignore is not None:
        over &= ~ignore
    if include_aa:
        return over, torch.zeros_like(over), dy > 0
    rows = torch.arange(h, device=a.device).reshape(h, 1)
    cols = torch.arange(w, device=a.device).reshape(1, w)
    border = ((rows == 0) | (rows == h - 1) | (cols == 0) | (cols == w - 1)).to(torch.int64)
    siblings = None
    for img in (a, b):  # has_many_siblings in both images
        packed = _packed(img).reshape(n, h, w)
        s = (_neighbours(packed, -1) == packed).sum(0) + border > 2
        siblings = s if siblings is None else siblings & s
    sib = _neighbours(siblings, False)
    aa = torch.zeros_like(over)
    for v in (ca, cb):
        cand, min_k, max_k = _aa_rule(_brightness_deltas(v, bg, h, w), border, 0)
        aa |= cand & (sib.gather(0, min_k) | sib.gather(0, max_k)).squeeze(0)
    return over, aa & over, dy > 0


def _brightness_deltas(v: Sequence[Optional[torch.Tensor]], bg, h: int, w: int) -> torch.Tensor:
    """``(8, N, H, W)``: every pixel's brightness delta to its neighbour at ``_OFFSETS[k]`` (NaN outside)."""
    nan = float("nan")
    if bg is None:  # pixelmatch-py: a difference of per-pixel brightnesses, each computed once
        y = _yiq(v, y_only=True)
        return y - _neighbours(y, nan)
    padded = [None if c is None else _pad1(c, nan) for c in v]  # NaN outside: the delta is NaN there
    return torch.stack(
        [
            _pair_brightness(v, [None if p is None else p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for p in padded], bg)
            for dx, dy in _OFFSETS
        ]
    )


def _packed(img: torch.Tensor) -> torch.Tensor:
    """``(N*H*W,)`` int64: each RGBA pixel's four bytes as one number (so -1 is never a pixel)."""
    return img.view(torch.int32).reshape(-1).to(torch.int64) & 0xFFFFFFFF


def _planes(x: torch.Tensor) -> torch.Tensor:
    """``(C, N*H*W)`` uint8: the channel planes of ``(N, C, H, W)`` ``x``, one row each (a view for
    one contiguous image)."""
    n, c, h, w = x.shape
    return x.transpose(0, 1).reshape(c, n * h * w)


def _flatnonzero(t: torch.Tensor) -> torch.Tensor:
    """Indices of the True entries of a 1-D bool tensor, int64 (numpy's scan on the CPU, much
    cheaper than ``torch.nonzero``'s)."""
    if t.device.type == "cpu":
        import numpy as np

        return torch.from_numpy(np.flatnonzero(t.numpy()))
    return torch.nonzero(t).reshape(-1)


class _Pixels:
    """Pixels of one image read at flat indices from its channel planes (:func:`_planes`):
    float64 channels as the arithmetic wants them, and whether neighbours are the same pixel."""

    def __init__(self, planes: torch.Tensor, opaque: bool):
        self.planes, self.opaque = planes, opaque

    def _at(self, idx: torch.Tensor) -> List[torch.Tensor]:
        """Each channel's bytes at ``idx`` (a 1-D ``index_select`` per plane: twice as fast as one on dim 1)."""
        flat = idx.reshape(-1)
        return [p.index_select(0, flat).reshape(idx.shape) for p in self.planes]

    def channels(self, idx: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
        """``(r, g, b, a)`` float64 at ``idx`` (any shape); gray is replicated, ``a`` is None if opaque."""
        got = [v.to(torch.float64) for v in self._at(idx)]
        rgb = (got[0], got[0], got[0]) if len(got) == 1 else (got[0], got[1], got[2])
        alpha = None if self.opaque else got[3] if len(got) == 4 else torch.full_like(got[0], 255.0)
        return rgb + (alpha,)

    def same(self, idx: torch.Tensor) -> torch.Tensor:
        """``(8, K)`` bool: whether the pixel at ``idx[k + 1]`` equals the one at ``idx[0]`` (``idx`` ``(9, K)``)."""
        out = None
        for v in self._at(idx):
            eq = v[1:] == v[:1]
            out = eq if out is None else out.logical_and_(eq)
        return out


def _masks_sparse(x: torch.Tensor, y: torch.Tensor, max_delta: float, include_aa: bool, opaque: bool, backdrop, ignore):
    """The pixels above the threshold, as flat indices into ``(N, H, W)`` with their anti-aliasing
    and darker flags ``(f, aa, darker)``, and the number of changed pixels per image ``(N,)``;
    :func:`_masks_dense`'s result where it is True, computed only where it matters (CPU path).

    Only pixels that differ in some channel can exceed the threshold (identical pixels have
    ``delta == 0``), and only those above it need the anti-aliasing test; both sets are
    compacted and their neighbours found by flat-index arithmetic, reading the few pixels
    needed from the channel planes of ``x`` and ``y`` (``(N, C, H, W)`` uint8; no RGBA copy
    of the images). Same rules, same arithmetic, so the same result. The changed pixels are
    handled in chunks (:data:`_CHUNK`, anti-aliasing tests by :data:`_AA_CHUNK`) spread over
    threads by :func:`torchsim.ops.parallel.thread_map`.
    """
    n, c, h, w = x.shape
    dev = x.device
    qa, qb = _planes(x), _planes(y)
    changed = qa[0] != qb[0]
    for k in range(1, c):
        changed |= qa[k] != qb[k]
    if ignore is not None:
        changed &= ~ignore.reshape(-1)
    f = _flatnonzero(changed)
    n_changed = torch.bincount(f // (h * w), minlength=n)
    f = f.to(torch.int32 if n * h * w < 2**31 - w - 1 else torch.int64)
    pa, pb = _Pixels(qa, opaque), _Pixels(qb, opaque)
    d_off = torch.tensor([dy_ * w + dx for dx, dy_ in _OFFSETS], dtype=f.dtype, device=dev).reshape(8, 1)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=dev)

    def around(pos):
        """``(9, K)`` flat indices of each pixel and its 8 neighbours (clamped inside), the
        neighbours' validity ``(8, K)`` and the border flag ``(K,)``."""
        r = pos % (h * w) if n > 1 else pos
        y0 = r // w
        x0 = r - y0 * w
        sides = {(0, -1): y0 > 0, (0, 1): y0 < h - 1, (-1, 0): x0 > 0, (1, 0): x0 < w - 1}  # a neighbour there
        rows = []
        for dx, dy in _OFFSETS:
            parts = [sides[(dx, 0)]] if dx else []
            parts += [sides[(0, dy)]] if dy else []
            rows.append(parts[0] & parts[1] if len(parts) == 2 else parts[0])
        valid = torch.stack(rows)
        idx = torch.cat([pos.unsqueeze(0), torch.where(valid, pos + d_off, pos)])
        border = ~(sides[(0, -1)] & sides[(0, 1)] & sides[(-1, 0)] & sides[(1, 0)])
        return idx, valid, border.to(torch.int32)

    def antialiased(f):
        """Whether each pixel ``f`` (above the threshold) is anti-aliasing in either image."""
        idx, valid, border = around(f)
        k = f.numel()
        ca, cb = pa.channels(idx), pb.channels(idx)
        px = [None if u is None else torch.stack([u, v]) for u, v in zip(ca, cb)]  # channels, each (2, 9, K)
        centre = [None if u is None else u[:, :1] for u in px]
        nbs9 = [None if u is None else u[:, 1:] for u in px]
        d = _pair_brightness(centre, nbs9, _backdrop(backdrop, f % (h * w)))  # the centre's backdrop, as v7
        cand, min_k, max_k = _aa_rule(torch.where(valid, d, nan), border, 1)
        nbs = idx[1:].to(torch.int64).expand(2, 8, k)
        extremes = torch.cat([nbs.gather(1, min_k), nbs.gather(1, max_k)], 1)  # (2 images, 2 extremes, K)
        # has_many_siblings (in both images) at the extremes of the candidates only
        todo = cand.unsqueeze(1).expand(2, 2, k)
        sidx, svalid, sborder = around(extremes[todo])
        many = (torch.stack([pa.same(sidx), pb.same(sidx)]) & svalid).sum(1) + sborder > 2
        sib = torch.zeros_like(todo)
        sib[todo] = many.all(0)
        return (sib[:, 0] | sib[:, 1]).any(0)

    def chunk(f):
        """``(f, aa, darker)`` of the pixels of ``f`` above the threshold."""
        delta, dy = _pair_delta(pa.channels(f), pb.channels(f), _backdrop(backdrop, f % (h * w)))
        o = delta > max_delta
        f, darker = f[o], dy[o] > 0
        if include_aa or f.numel() == 0:
            return f, torch.zeros_like(darker), darker
        aa = [antialiased(f[i : i + _AA_CHUNK]) for i in range(0, f.numel(), _AA_CHUNK)]
        return f, aa[0] if len(aa) == 1 else torch.cat(aa), darker

    parts = thread_map(chunk, [f[i : i + _CHUNK] for i in range(0, f.numel(), _CHUNK)] or [f])
    if len(parts) == 1:
        return (*parts[0], n_changed)
    return (*(torch.cat(t) for t in zip(*parts)), n_changed)


def _pillow_gray(rgba: torch.Tensor, alpha: float) -> torch.Tensor:
    """pixelmatch-py's PIL fast path for identical images: Pillow ``L`` composited on white.

    ``L`` = Pillow's luma (:func:`torchsim.ops.pil_luma`), mask ``m = int(A * alpha)``,
    ``out = DIV255(255 (255 - m) + L m)`` (Pillow's paste; every intermediate fits in int32).
    """
    lum = C.pil_luma(rgba.permute(0, 3, 1, 2))[:, 0].to(torch.int32)
    # Pillow's point(lambda a: int(a * alpha)): the same float64 product, truncated.
    m = torch.trunc(rgba[..., 3].to(torch.float64) * alpha).to(torch.int32)
    t = 255 * (255 - m) + lum * m + 128
    return ((t >> 8) + t) >> 8


def _gray_index(x: torch.Tensor, alpha: float, mapbox: bool) -> torch.Tensor:
    """drawGrayPixel: ``x``'s raw (unblended) luma blended with white by ``alpha·A/255``, truncated
    to uint8 as a byte array stores it; in v7's operation order (``(L - 255)·alpha·A / 255``) or
    pixelmatch-py's (``(L - 255)·(alpha·A/255)``)."""
    planes = [x[:, min(k, x.shape[1] - 1)].to(torch.float64) for k in range(3)]  # contiguous planes
    lum = C.yiq_y(*planes).sub_(255)
    a = x[:, 3].to(torch.float64) if x.shape[1] == 4 else 255.0
    if mapbox:
        lum.mul_(alpha).mul_(a).div_(255)
    else:
        lum.mul_(alpha * a / 255)
    return lum.add_(255).trunc_().to(torch.int32)


def _kernel(
    x: torch.Tensor,
    y: torch.Tensor,
    max_delta: float,
    include_aa: bool,
    alpha: float,
    colors: Tuple[Tuple[int, int, int], Tuple[int, int, int], Optional[Tuple[int, int, int]]],
    diff_mask: bool,
    return_diff: bool,
    sparse: Optional[bool] = None,
    *,
    compat: str = "mapbox",
    checkerboard: bool = True,
    ignore: Optional[torch.Tensor] = None,
):
    """Counts ``(N,)`` (and the diff image) for validated input; ``ignore`` is ``(N, H, W)`` bool or None."""
    n, _, h, w = x.shape
    dev = x.device
    x, y = C.quantize_u8(to_uint8(x)), C.quantize_u8(to_uint8(y))  # 16-bit: the high byte, as SPEC says
    if sparse is None:
        sparse = dev.type == "cpu"
    opaque = x.shape[1] != 4  # RGB / gray: alpha is 255 everywhere, blending is the identity
    mapbox = compat == "mapbox"
    backdrop = None if not mapbox else "checkerboard" if checkerboard and not opaque else "white"
    if sparse:  # flat indices of the pixels above the threshold and their flags
        f, aa_f, darker_f, n_changed = _masks_sparse(x, y, max_delta, include_aa, opaque, backdrop, ignore)
        real_f = f[~aa_f]
        count = torch.bincount(real_f // (h * w), minlength=n).to(torch.int64)
        identical = n_changed == 0
        real_dark = darker_f[~aa_f]
        aa, real = f[aa_f], (real_f, real_f[~real_dark], real_f[real_dark])
    else:
        a, b = _to_rgba_u8(x), _to_rgba_u8(y)  # (N, H, W, 4)
        over, aa, darker = _masks_dense(a, b, max_delta, include_aa, opaque, backdrop, ignore)
        over_real = over & ~aa
        count = over_real.flatten(1).sum(1).to(torch.int64)
        real = (over_real, over_real & ~darker, over_real & darker)
    if not return_diff:
        return count
    aa_color, diff_color, alt_color = colors
    if diff_mask:  # a fresh (zeroed) output buffer, as the references leave it: transparent black
        out = torch.zeros((n, 4, h, w), dtype=torch.uint8, device=dev)
    else:  # x in grey, faded to white
        gray = _gray_u8(x, alpha, mapbox)
        # Identical images (ignored pixels aside) never reach the per-pixel loop in pixelmatch-py's
        # PIL front end: Pillow's grey. (They have no mismatch to paint.) v7's fast path draws what
        # its loop would, so it needs no special case.
        if not mapbox:
            if not sparse:
                same_px = (a == b).all(-1)
                identical = (same_px if ignore is None else same_px | ignore).flatten(1).all(1)
            if not sparse or bool(identical.any()):  # the CPU path may look: no device to wait for
                pil = _pillow_gray(_to_rgba_u8(x), alpha).to(torch.uint8)
                gray = torch.where(identical.reshape(n, 1, 1), pil, gray)
        out = torch.empty((n, 4, h, w), dtype=torch.uint8, device=dev)
        out[:, :3] = gray.unsqueeze(1)
        out[:, 3] = 255
        _paint(out, aa, aa_color)
    if alt_color is None:
        _paint(out, real[0], diff_color)
    else:
        _paint(out, real[1], diff_color)
        _paint(out, real[2], alt_color)
    return count, out


def _paint(out: torch.Tensor, where: torch.Tensor, rgb: Tuple[int, int, int]) -> None:
    """Set the pixels ``where`` of the RGBA image ``out`` to ``rgb``, opaque.

    ``where``: an ``(N, H, W)`` bool mask (dense path: a ``where`` per channel, no host
    synchronisation), or flat indices into ``(N, H, W)`` (sparse path: only those pixels are written).
    """
    n, _, h, w = out.shape
    if where.dtype == torch.bool:
        for c, v in enumerate((*rgb, 255)):
            out[:, c] = torch.where(where, v, out[:, c])
        return
    if where.numel() == 0:
        return
    p = where.to(torch.int64)
    base = (p // (h * w)) * (4 * h * w) + p % (h * w)
    flat = out.view(-1)
    for c, v in enumerate((*rgb, 255)):
        flat.index_fill_(0, base + c * h * w, v)


def _gray_u8(x: torch.Tensor, alpha: float, mapbox: bool) -> torch.Tensor:
    """:func:`_gray_index` as ``(N, H, W)`` uint8 (one band on CUDA).

    On the CPU, in bands of rows whose float64 temporaries stay in the cache, smaller than
    torch's grain size, spread over threads by :func:`torchsim.ops.parallel.thread_map`.
    """
    n, _, h, w = x.shape
    out = torch.empty((n, h, w), dtype=torch.uint8, device=x.device)
    if x.device.type != "cpu":
        out[:] = _gray_index(x, alpha, mapbox)
        return out
    rows = max(1, _BAND // (n * w))

    def band(r0: int) -> None:
        out[:, r0 : r0 + rows] = _gray_index(x[:, :, r0 : r0 + rows], alpha, mapbox)

    thread_map(band, range(0, h, rows))
    return out


def pixelmatch(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    threshold: float = 0.1,
    include_aa: bool = False,
    alpha: float = 0.1,
    aa_color: Color = (255, 255, 0),
    diff_color: Color = (255, 0, 0),
    diff_color_alt: Optional[Color] = None,
    diff_mask: bool = False,
    return_diff: bool = False,
    compat: str = "mapbox",
    checkerboard: Optional[bool] = None,
    mask: Union[None, torch.Tensor, Sequence[Sequence[int]]] = None,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    r"""Count the pixels that differ perceptibly, ignoring anti-aliasing (pixelmatch).

    For every pixel the two colours are compared in YIQ (Kotsarenko & Ramos):
    with ``ΔY, ΔI, ΔQ`` the differences of the two colours as seen over a
    backdrop (below), the squared perceptual distance

    .. math::

        \Delta = 0.5053\,\Delta Y^2 + 0.299\,\Delta I^2 + 0.1957\,\Delta Q^2

    is compared with ``35215 · threshold²`` (35215 is the largest possible
    Δ). A pixel above it counts as a mismatch unless, with
    ``include_aa=False``, it is anti-aliasing in either image (Vyšniauskas'
    detector): among its 3×3 neighbours at most two have the same brightness
    (a pixel on the image border counts one extra), it has both darker and
    brighter neighbours, and the darkest or the brightest of them has three or
    more identical (RGBA) neighbours in *both* images.

    Convention:
        ``compat="mapbox"`` (default) equals mapbox pixelmatch v7 (7.0 to 7.2:
        ``pixelmatch(img1, img2, output, width, height, {threshold, includeAA,
        alpha, aaColor, diffColor, diffColorAlt, diffMask, checkerboard})`` with
        ``output`` a ``Uint8Array``/``Buffer`` as pngjs gives): equal counts and
        a byte-identical diff image on its test suite's fixtures. A
        semi-transparent pixel is seen over a checkerboard that v7 derives from
        the pixel's byte offset ``k``, one colour per channel, each 48 or 207
        (red ``48 + 159·(k mod 2)``, green and blue from ``⌊k/φ⌋`` and
        ``⌊k/φ²⌋``), and the channel differences
        ``(c₁a₁ - c₂a₂ - backdrop·(a₁ - a₂)) / 255`` are converted to YIQ;
        ``checkerboard=False`` uses white (7.2's ``checkerboard: false``). The
        brightness deltas of the anti-aliasing detector are computed the same
        way, over the centre pixel's backdrop.

        ``compat="pixelmatch-py"`` equals pixelmatch-py 0.4.0 (a port of
        pixelmatch 5), ``pixelmatch.contrib.PIL.pixelmatch(img1, img2, output,
        threshold=..., includeAA=..., alpha=..., aa_color=..., diff_color=...,
        diff_mask=...)`` with ``output = Image.new("RGBA", size)``: each colour
        is blended with white on its own (``c' = 255 + (c - 255)·a/255``) and
        their YIQ values subtracted, and identical images are drawn with Pillow's
        ``L`` luma composited on white. The two generations agree on opaque
        pixels but for float rounding at the threshold (the same detector, the
        same rules, arithmetic in a different order); on semi-transparent ones
        v7's checkerboard makes a change of transparency visible that white
        hides (mapbox's fixtures 8a/5b: 32896 mismatches in v7, 0 here).

        Both: all arithmetic in float64 in the reference's order.
        ``diff_color_alt`` (mapbox's ``diffColorAlt``, not in pixelmatch-py):
        mismatches where the second image is darker (``ΔY > 0``) get this colour.
        The diff image's background is ``x`` in grey, faded to white by
        ``alpha`` (``255 + (L - 255)·alpha·A/255``, truncated), or transparent
        black ``(0, 0, 0, 0)`` everywhere but the mismatches with
        ``diff_mask=True`` (as a fresh output buffer stays); anti-aliased
        pixels are drawn in ``aa_color`` (never with ``diff_mask``). Identical
        images count 0. ``threshold=0`` has zero tolerance: any pixel whose
        colours differ at all as seen (``Δ > 0``) counts, unless it is
        anti-aliasing (``include_aa=True`` counts those too); two fully
        transparent pixels look the same whatever their RGB. Images of
        different sizes are an error, never "identical".

        ``mask`` ignores pixels, as pixelmatch 8's ``ignoreMask``: they are
        not compared, never count, and are drawn as background (grey, or
        transparent with ``diff_mask``); the anti-aliasing test of the other
        pixels still reads them as they are; and a pair that differs only
        inside the mask is identical (pixelmatch-py's Pillow drawing).

        Other pixel diffs count differently on the same pair, by design. On a
        1200×900 page whose text moved by one pixel, pixelmatch counts 11736,
        odiff (``odiff-bin`` 4.5) 11640 and BlazeDiff (``blazediff`` 6.0) 11918
        with ``--antialiasing``, 19292 and 19293 without it. On the 37-megapixel
        screenshot pair of ``benchmarks/diff_cli.py`` (2560×14400, opaque):
        without anti-aliasing detection pixelmatch and BlazeDiff count the same
        340826 pixels and odiff 340240 (586 fewer: its truncated fixed-point Δ);
        with it, pixelmatch 299042, BlazeDiff 299200 (158 more: its visiting
        order) and odiff 293297 (5745 fewer: its looser anti-aliasing rule and
        the truncation). Why:

        * both count anti-aliased pixels unless given ``--antialiasing``
          (``antialiasing=True``): their default is ``include_aa=True``;
        * odiff computes Δ in 12-bit fixed point, truncating, against
          ``35215·threshold²`` truncated likewise, so pixels just above the
          threshold (Δ = 352.17 against 352.15) fall below it; blends each
          colour with white (pixelmatch 5, no checkerboard); visits the 3×3
          neighbours row by row (pixelmatch: column by column), which picks
          another darkest or brightest neighbour on ties; and calls a pixel
          anti-aliased when the darkest *or* brightest neighbour has three equal
          siblings in the first image and the darkest or brightest in the
          second, where pixelmatch asks it of one neighbour in both images;
        * BlazeDiff follows v7 (checkerboard, the same rule) but visits the
          neighbours row by row, and computes Δ of opaque pairs in float32.

        odiff also compares images of different sizes (the extra area counts as
        different, unless ``--fail-on-layout``); BlazeDiff refuses them, as
        torchsim does.

        Gray input is read as Pillow's ``L -> RGBA`` (replicated, opaque).
        Not differentiable (a count); runs under ``torch.no_grad()``. On CUDA the
        computation is sync-free; on the CPU it compacts the changed pixels.

    Args:
        x, y: ``(N, C, H, W)`` images, ``C`` = 1 (gray), 3 (RGB) or 4 (RGBA), same
            shape. ``uint8`` is read as 0..255; floating input is read as [0, 1]
            and quantised to ``round(clamp(v, 0, 1) · 255)`` first.
        threshold: matching threshold in [0, 1]; smaller is more sensitive, 0
            tolerates nothing.
        include_aa: count anti-aliased pixels as mismatches (skip the detector).
        alpha: opacity in [0, 1] of ``x``'s gray copy in the diff image background.
        aa_color: RGB of anti-aliased pixels in the diff image.
        diff_color: RGB of mismatched pixels.
        diff_color_alt: RGB of mismatched pixels where ``y`` is darker than ``x``;
            ``None`` uses ``diff_color`` for all.
        diff_mask: draw only the mismatches over a transparent background.
        return_diff: also return the diff image.
        compat: ``"mapbox"`` (pixelmatch v7) or ``"pixelmatch-py"`` (0.4.0).
        checkerboard: the backdrop of semi-transparent pixels with
            ``compat="mapbox"``: ``None`` or ``True`` v7's checkerboard, ``False``
            white. pixelmatch-py only knows white (``None`` or ``False``).
        mask: pixels to ignore: a bool tensor ``(N, 1, H, W)``, True = ignore,
            or rectangles ``[(x0, y0, x1, y1), ...]`` (``x1``, ``y1`` exclusive;
            a list, or an integer tensor ``(K, 4)`` such as ``diff_regions``
            returns) ignored in every image.

    Returns:
        The mismatched-pixel count per image, ``(N,)`` int64; with
        ``return_diff=True`` a tuple ``(count, diff)`` with ``diff`` an
        ``(N, 4, H, W)`` uint8 RGBA image.

    Raises:
        TypeError: non-tensor input, unsupported dtype, or a mask that is neither
            a bool tensor nor rectangles.
        ValueError: rank, shape (including two images of different sizes),
            device or channel-count mismatch; threshold or alpha outside [0, 1];
            a colour that is not three values in 0..255; an unknown ``compat``;
            ``checkerboard=True`` with ``compat="pixelmatch-py"``; a mask of the
            wrong shape or device, or a rectangle outside the image or empty.

    Example:
        >>> import torch, torchsim
        >>> x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
        >>> y = x.clone(); y[:, :, 2:4, 2:4] = 255
        >>> torchsim.pixelmatch(x, y)
        tensor([4])
        >>> count, diff = torchsim.pixelmatch(x, y, return_diff=True)
        >>> tuple(diff.shape), diff[0, :, 2, 2].tolist()
        ((1, 4, 8, 8), [255, 0, 0, 255])
        >>> torchsim.pixelmatch(x, y, mask=[(2, 2, 4, 3)])  # ignore the top row of the square
        tensor([2])
        >>> a = torch.zeros(1, 4, 1, 1, dtype=torch.uint8); a[:, 3] = 128  # 50 % black
        >>> b = torch.full((1, 4, 1, 1), 127, dtype=torch.uint8); b[:, 3] = 255  # opaque grey
        >>> [int(torchsim.pixelmatch(a, b, **kw)) for kw in ({}, {"checkerboard": False}, {"compat": "pixelmatch-py"})]
        [1, 0, 0]

    References:
        mapbox/pixelmatch, https://github.com/mapbox/pixelmatch; pixelmatch-py,
        https://github.com/whtsky/pixelmatch-py.
        Y. Kotsarenko, F. Ramos, "Measuring perceived color difference using YIQ
        NTSC transmission color space in mobile applications", 2010.
        V. Vyšniauskas, "Anti-aliased pixel and intensity slope detector", 2009.
    """
    fn = "pixelmatch"
    x, y = V.check_pair(fn, x, y)
    V.check_channels(fn, "x", x, (1, 3, 4))
    V.check_unit_interval(fn, "threshold", threshold)
    V.check_unit_interval(fn, "alpha", alpha)
    colors = (
        V.check_rgb_color(fn, "aa_color", aa_color),
        V.check_rgb_color(fn, "diff_color", diff_color),
        None if diff_color_alt is None else V.check_rgb_color(fn, "diff_color_alt", diff_color_alt),
    )
    compat = V.check_choice(fn, "compat", compat, _COMPAT)
    if checkerboard not in (None, True, False):
        raise ValueError(f"{fn}: checkerboard must be None, True or False, got {checkerboard!r}")
    if checkerboard is True and compat == "pixelmatch-py":
        raise ValueError(f"{fn}: checkerboard=True needs compat='mapbox' (pixelmatch-py blends with white), got compat={compat!r}")
    ignore = V.check_mask(fn, mask, x)
    max_delta = _MAX_YIQ_DELTA * threshold * threshold
    with torch.no_grad():
        return _kernel(
            x,
            y,
            max_delta,
            bool(include_aa),
            float(alpha),
            colors,
            bool(diff_mask),
            bool(return_diff),
            compat=compat,
            checkerboard=checkerboard is not False,
            ignore=None if ignore is None else ignore[:, 0],
        )
