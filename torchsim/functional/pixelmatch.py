"""pixelmatch: perceptual per-pixel comparison with anti-aliasing detection, batched in torch.

A vectorised re-implementation of the pixelmatch algorithm (mapbox/pixelmatch,
Python port ``pixelmatch-py`` 0.4.0). Every per-pixel quantity is computed in
float64, in the same operation order as the reference, so threshold
comparisons and the diff image agree bit for bit. The 3×3 neighbourhood rules
of the anti-aliasing detector look at the eight neighbours in the reference's
visiting order.

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
from ..ops import color as C

Color = Sequence[Union[int, float]]

_MAX_YIQ_DELTA = 35215  # the largest possible YIQ delta

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


def _masks_dense(a: torch.Tensor, b: torch.Tensor, max_delta: float, include_aa: bool, opaque: bool):
    """``(over, aa, darker)`` maps ``(N, H, W)`` for the whole image; no host sync (CUDA path)."""
    n, h, w, _ = a.shape
    va, vb = a.to(torch.float64), b.to(torch.float64)
    ca, cb = va.unbind(3), vb.unbind(3)
    if opaque:
        ca, cb = (*ca[:3], None), (*cb[:3], None)
    delta, dy = _yiq_delta(ca, cb)
    over = delta > max_delta
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
        y = _yiq(v, y_only=True)
        cand, min_k, max_k = _aa_rule(y - _neighbours(y, float("nan")), border, 0)
        aa |= cand & (sib.gather(0, min_k) | sib.gather(0, max_k)).squeeze(0)
    return over, aa & over, dy > 0


def _packed(img: torch.Tensor) -> torch.Tensor:
    """``(N*H*W,)`` int64: each RGBA pixel's four bytes as one number (so -1 is never a pixel)."""
    return img.view(torch.int32).reshape(-1).to(torch.int64) & 0xFFFFFFFF


def _take(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``t[idx]`` for a 1-D ``t`` via ``index_select`` (much cheaper than advanced indexing on CPU)."""
    return t.index_select(0, idx.reshape(-1)).reshape(idx.shape)


def _unpack(p: torch.Tensor, opaque: bool) -> Tuple[Optional[torch.Tensor], ...]:
    """int32 packed RGBA (little-endian bytes) -> float64 channels ``(r, g, b, a)``; ``a`` is None if opaque."""
    rgb = tuple(((p >> s) & 0xFF).to(torch.float64) for s in (0, 8, 16))
    return rgb + (None if opaque else ((p >> 24) & 0xFF).to(torch.float64),)


def _masks_sparse(a: torch.Tensor, b: torch.Tensor, max_delta: float, include_aa: bool, opaque: bool):
    """``(over, aa, darker)`` as :func:`_masks_dense`, computed only where it matters (CPU path).

    Only pixels whose RGBA differ can exceed the threshold (identical pixels have
    ``delta == 0``), and only those above it need the anti-aliasing test; both
    sets are compacted with ``nonzero`` and their neighbours found by flat-index
    arithmetic. Same rules, same arithmetic, so the same result; on the CPU the
    compaction costs no device synchronisation.
    """
    n, h, w, _ = a.shape
    dev = a.device
    pa, pb = a.view(torch.int32).reshape(-1), b.view(torch.int32).reshape(-1)  # one number per pixel
    f = torch.nonzero(pa != pb).reshape(-1).to(torch.int32 if n * h * w < 2**31 - w - 1 else torch.int64)
    delta, dy = _yiq_delta(_unpack(_take(pa, f), opaque), _unpack(_take(pb, f), opaque))
    o = delta > max_delta
    f = f[o]
    over = torch.zeros(n * h * w, dtype=torch.bool, device=dev)
    darker = torch.zeros_like(over)
    aa = torch.zeros_like(over)
    over[f] = True
    darker[f] = dy[o] > 0
    if include_aa or f.numel() == 0:
        return over.reshape(n, h, w), aa.reshape(n, h, w), darker.reshape(n, h, w)
    d_off = torch.tensor([dy_ * w + dx for dx, dy_ in _OFFSETS], dtype=f.dtype, device=dev).reshape(8, 1)
    ox = torch.tensor([dx for dx, _ in _OFFSETS], dtype=f.dtype, device=dev).reshape(8, 1)
    oy = torch.tensor([dy_ for _, dy_ in _OFFSETS], dtype=f.dtype, device=dev).reshape(8, 1)

    def around(pos):
        """``(9, K)`` flat indices of each pixel and its 8 neighbours (clamped inside), the
        neighbours' validity ``(8, K)`` and the border flag ``(K,)``."""
        r = pos % (h * w)
        y0, x0 = r // w, r % w
        yy, xx = y0 + oy, x0 + ox
        valid = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        idx = torch.cat([pos.unsqueeze(0), torch.where(valid, pos + d_off, pos)])
        border = ((y0 == 0) | (y0 == h - 1) | (x0 == 0) | (x0 == w - 1)).to(torch.int32)
        return idx, valid, border

    def both(idx):
        """``(2, 9, K)``: the packed pixels of both images at ``idx``."""
        return torch.stack([_take(pa, idx), _take(pb, idx)])

    idx, valid, border = around(f)
    k = f.numel()
    y9 = _yiq(_unpack(both(idx), opaque), y_only=True)  # (2, 9, K)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=dev)
    cand, min_k, max_k = _aa_rule(torch.where(valid, y9[:, :1] - y9[:, 1:], nan), border, 1)
    nbs = idx[1:].to(torch.int64).expand(2, 8, k)
    extremes = torch.cat([nbs.gather(1, min_k), nbs.gather(1, max_k)], 1)  # (2 images, 2 extremes, K)
    # has_many_siblings (in both images) at the extremes of the candidates only
    todo = cand.unsqueeze(1).expand(2, 2, k)
    sidx, svalid, sborder = around(extremes[todo])
    packed = both(sidx)
    many = ((packed[:, 1:] == packed[:, :1]) & svalid).sum(1) + sborder > 2
    sib = torch.zeros_like(todo)
    sib[todo] = many.all(0)
    aa[f] = (sib[:, 0] | sib[:, 1]).any(0)
    return over.reshape(n, h, w), aa.reshape(n, h, w), darker.reshape(n, h, w)


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
):
    n, _, h, w = x.shape
    dev = x.device
    x, y = C.quantize_u8(x), C.quantize_u8(y)
    a, b = _to_rgba_u8(x), _to_rgba_u8(y)  # (N, H, W, 4)
    if sparse is None:
        sparse = dev.type == "cpu"
    opaque = x.shape[1] != 4  # RGB / gray: alpha is 255 everywhere, blending is the identity
    over, aa, darker = (_masks_sparse if sparse else _masks_dense)(a, b, max_delta, include_aa, opaque)
    real = over & ~aa
    count = real.flatten(1).sum(1).to(torch.int64)
    if not return_diff:
        return count
    aa_color, diff_color, alt_color = colors
    # The diff image is one lookup per channel: entries 0..255 are opaque grays,
    # 256 transparent, 257 aa_color, 258 diff_color, 259 diff_color_alt.
    special = torch.tensor(
        [(0, 0, 0, 0), (*aa_color, 255), (*diff_color, 255), (*(alt_color or diff_color), 255)],
        dtype=torch.uint8,
        device=dev,
    ).T
    ramp = torch.arange(256, dtype=torch.uint8, device=dev)
    palette = torch.cat([torch.stack([ramp, ramp, ramp, torch.full_like(ramp, 255)]), special], dim=1)  # (4, 260)
    if diff_mask:
        index = torch.full((n, h, w), 256, dtype=torch.int32, device=dev)
    else:
        # draw_gray_pixel: the raw (unblended) luma of x blended with white by alpha * A / 255.
        lum = C.yiq_y(*(x[:, min(k, x.shape[1] - 1)].to(torch.float64) for k in range(3)))
        weight = alpha * x[:, 3].to(torch.float64) / 255 if x.shape[1] == 4 else alpha * 255 / 255
        index = lum.sub_(255).mul_(weight).add_(255).trunc_().to(torch.int32)
        index = torch.where(aa, 257, index)
    index = torch.where(real, torch.where(darker, 259, 258) if alt_color is not None else 258, index)
    # Identical images never reach the per-pixel loop in pixelmatch-py's PIL front end.
    identical = (a == b).flatten(1).all(1)
    if not sparse or bool(identical.any()):  # the CPU path may look: no device to wait for
        same = torch.full_like(index, 256) if diff_mask else _pillow_gray(a, alpha)
        index = torch.where(identical.reshape(n, 1, 1), same, index)
    flat = index.reshape(-1)
    out = torch.stack([palette[c].index_select(0, flat) for c in range(4)]).reshape(4, n, h, w)
    return count, out.transpose(0, 1).contiguous()


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
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    r"""Count the pixels that differ perceptibly, ignoring anti-aliasing (pixelmatch).

    For every pixel, both colours are alpha-blended with white
    (``c' = 255 + (c - 255) · A/255``) and converted to YIQ; the squared
    perceptual distance

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
        Equals pixelmatch-py 0.4.0's ``pixelmatch.contrib.PIL.pixelmatch(img1,
        img2, output, threshold=..., includeAA=..., alpha=..., aa_color=...,
        diff_color=..., diff_mask=...)`` for ``img1, img2`` the RGB(A) images
        and ``output = Image.new("RGBA", size)``: equal counts and a
        byte-identical diff image, including its fast path for identical images
        (Pillow's ``L`` luma composited on white). All arithmetic is float64 in
        the reference's order. ``diff_color_alt`` is mapbox pixelmatch's
        ``diffColorAlt`` (not in pixelmatch-py): mismatched pixels where the
        second image is darker (``Y(x) > Y(y)`` after blending) get this colour.
        Gray input is read as Pillow's ``L -> RGBA`` (replicated, opaque).
        Not differentiable (a count); runs under ``torch.no_grad()``. On CUDA the
        computation is sync-free; on the CPU it compacts the changed pixels.

    Args:
        x, y: ``(N, C, H, W)`` images, ``C`` = 1 (gray), 3 (RGB) or 4 (RGBA), same
            shape. ``uint8`` is read as 0..255; floating input is read as [0, 1]
            and quantised to ``round(clamp(v, 0, 1) · 255)`` first.
        threshold: matching threshold in [0, 1]; smaller is more sensitive.
        include_aa: count anti-aliased pixels as mismatches (skip the detector).
        alpha: opacity in [0, 1] of ``x``'s gray copy in the diff image background.
        aa_color: RGB of anti-aliased pixels in the diff image.
        diff_color: RGB of mismatched pixels.
        diff_color_alt: RGB of mismatched pixels where ``y`` is darker than ``x``;
            ``None`` uses ``diff_color`` for all.
        diff_mask: draw only the mismatches over a transparent background.
        return_diff: also return the diff image.

    Returns:
        The mismatched-pixel count per image, ``(N,)`` int64; with
        ``return_diff=True`` a tuple ``(count, diff)`` with ``diff`` an
        ``(N, 4, H, W)`` uint8 RGBA image.

    Raises:
        TypeError: non-tensor input or unsupported dtype.
        ValueError: rank, shape, device or channel-count mismatch; threshold or
            alpha outside [0, 1]; a colour that is not three values in 0..255.

    Example:
        >>> import torch, torchsim
        >>> x = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
        >>> y = x.clone(); y[:, :, 2:4, 2:4] = 255
        >>> torchsim.pixelmatch(x, y)
        tensor([4])
        >>> count, diff = torchsim.pixelmatch(x, y, return_diff=True)
        >>> tuple(diff.shape), diff[0, :, 2, 2].tolist()
        ((1, 4, 8, 8), [255, 0, 0, 255])

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
    max_delta = _MAX_YIQ_DELTA * threshold * threshold
    with torch.no_grad():
        return _kernel(x, y, max_delta, bool(include_aa), float(alpha), colors, bool(diff_mask), bool(return_diff))
