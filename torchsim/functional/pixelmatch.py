"""pixelmatch: perceptual per-pixel comparison with anti-aliasing detection, batched in torch.

A vectorised re-implementation of the pixelmatch algorithm in its two living
generations: mapbox pixelmatch v7 (the default) and its Python port
``pixelmatch-py`` 0.4.0 (a port of pixelmatch 5). One kernel serves both; the
generations differ only in a few arithmetic details, passed to it as options:

* colour and brightness deltas: v7 blends the *channel differences* of two
  semi-transparent pixels over a checkerboard backdrop and converts the
  difference to YIQ; pixelmatch-py blends each colour with white and subtracts
  their YIQ values (``pair_delta`` / ``pair_brightness`` in :mod:`torchsim.kernels.pixelmatch`);
* the faded grey background of the diff image: the same formula, evaluated in
  each reference's operation order (``gray_index``);
* identical images: pixelmatch-py's PIL front end draws them with Pillow's luma
  (``_pillow_gray``); v7's fast path draws what its per-pixel loop would.

Every per-pixel quantity is computed in float64, in the same operation order as
the reference, so threshold comparisons and the diff image agree bit for bit.
Two interchangeable paths compute the masks (tests check they agree): dense on CUDA
(here: every pixel, no host-device synchronisation) and sparse on the CPU
(:mod:`torchsim.kernels.pixelmatch`, on NumPy views of the tensors: only the pixels
that differ, ~100x faster than pixelmatch-py; ``torchsim diff`` runs it without
importing torch). The per-pixel arithmetic is written once, in that module, for both.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch

from .. import _validation as V
from .._common import to_uint8
from ..kernels import pixelmatch as K
from ..ops import color as C

Color = Sequence[Union[int, float]]

_COMPAT = ("mapbox", "pixelmatch-py")


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


def _pad1(t: torch.Tensor, fill) -> torch.Tensor:
    """Pad the last two dims by one with ``fill`` (cheaper than ``F.pad`` for int/bool)."""
    p = t.new_full((*t.shape[:-2], t.shape[-2] + 2, t.shape[-1] + 2), fill)
    p[..., 1:-1, 1:-1] = t
    return p


def _neighbours(t: torch.Tensor, fill) -> torch.Tensor:
    """``(8, *t.shape)``: entry ``k`` holds every pixel's neighbour at ``K.OFFSETS[k]`` (``fill`` outside)."""
    h, w = t.shape[-2:]
    p = _pad1(t, fill)
    return torch.stack([p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dx, dy in K.OFFSETS])


def _masks_dense(a: torch.Tensor, b: torch.Tensor, max_delta: float, include_aa: bool, opaque: bool, backdrop, ignore):
    """``(over, aa, darker)`` maps ``(N, H, W)`` for the whole image; no host sync (CUDA path)."""
    n, h, w, _ = a.shape
    va, vb = a.to(torch.float64), b.to(torch.float64)
    ca, cb = va.unbind(3), vb.unbind(3)
    if opaque:
        ca, cb = (*ca[:3], None), (*cb[:3], None)
    bg = K.backdrop(backdrop, torch.arange(h * w, device=a.device).reshape(h, w) if backdrop == "checkerboard" else None)
    delta, dy = K.pair_delta(ca, cb, bg)
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
        cand, min_k, max_k = K.aa_rule(_brightness_deltas(v, bg, h, w), border, 0)
        aa |= cand & (sib.gather(0, min_k) | sib.gather(0, max_k)).squeeze(0)
    return over, aa & over, dy > 0


def _brightness_deltas(v: Sequence[Optional[torch.Tensor]], bg, h: int, w: int) -> torch.Tensor:
    """``(8, N, H, W)``: every pixel's brightness delta to its neighbour at ``K.OFFSETS[k]`` (NaN outside)."""
    nan = float("nan")
    if bg is None:  # pixelmatch-py: a difference of per-pixel brightnesses, each computed once
        y = K.yiq_of(v, y_only=True)
        return y - _neighbours(y, nan)
    padded = [None if c is None else _pad1(c, nan) for c in v]  # NaN outside: the delta is NaN there
    return torch.stack(
        [
            K.pair_brightness(v, [None if p is None else p[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for p in padded], bg)
            for dx, dy in K.OFFSETS
        ]
    )


def _packed(img: torch.Tensor) -> torch.Tensor:
    """``(N*H*W,)`` int64: each RGBA pixel's four bytes as one number (so -1 is never a pixel)."""
    return img.view(torch.int32).reshape(-1).to(torch.int64) & 0xFFFFFFFF


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
    *,
    compat: str = "mapbox",
    checkerboard: bool = True,
    ignore: Optional[torch.Tensor] = None,
):
    """Counts ``(N,)`` (and the diff image) for validated input; ``ignore`` is ``(N, H, W)`` bool or None.
    ``sparse`` (default: on the CPU) runs :func:`torchsim.kernels.pixelmatch.run` on the host."""
    n, _, h, w = x.shape
    dev = x.device
    x, y = C.quantize_u8(to_uint8(x)), C.quantize_u8(to_uint8(y))  # 16-bit: the high byte, as SPEC says
    if sparse is None:
        sparse = dev.type == "cpu"
    opaque = x.shape[1] != 4  # RGB / gray: alpha is 255 everywhere, blending is the identity
    mapbox = compat == "mapbox"
    if sparse:
        count, out, identical = K.run(
            x.cpu().contiguous().numpy(), y.cpu().contiguous().numpy(), max_delta, include_aa, alpha, colors,
            diff_mask, return_diff, mapbox, checkerboard, None if ignore is None else ignore.cpu().contiguous().numpy(),
        )
        count = torch.from_numpy(count).to(dev)
        if not return_diff:
            return count
        out = torch.from_numpy(out)
        identical = torch.from_numpy(identical)
        if not mapbox and not diff_mask and bool(identical.any()):
            # Identical images (ignored pixels aside) never reach the per-pixel loop in pixelmatch-py's
            # PIL front end: Pillow's grey. (They have no mismatch to paint.) v7's fast path draws what
            # its loop would, so it needs no special case.
            pil = _pillow_gray(_to_rgba_u8(x.cpu()), alpha).to(torch.uint8)
            out[:, :3] = torch.where(identical.reshape(n, 1, 1, 1), pil.unsqueeze(1), out[:, :3])
        return count, out.to(dev)
    backdrop = None if not mapbox else "checkerboard" if checkerboard and not opaque else "white"
    a, b = _to_rgba_u8(x), _to_rgba_u8(y)  # (N, H, W, 4)
    over, aa, darker = _masks_dense(a, b, max_delta, include_aa, opaque, backdrop, ignore)
    over_real = over & ~aa
    count = over_real.flatten(1).sum(1).to(torch.int64)
    if not return_diff:
        return count
    aa_color, diff_color, alt_color = colors
    if diff_mask:  # a fresh (zeroed) output buffer, as the references leave it: transparent black
        out = torch.zeros((n, 4, h, w), dtype=torch.uint8, device=dev)
    else:  # x in grey, faded to white
        gray = K.gray_index(x.to(torch.float64), alpha, mapbox).to(torch.uint8)
        if not mapbox:  # pixelmatch-py's Pillow grey for identical images (see above)
            same_px = (a == b).all(-1)
            identical = (same_px if ignore is None else same_px | ignore).flatten(1).all(1)
            pil = _pillow_gray(a, alpha).to(torch.uint8)
            gray = torch.where(identical.reshape(n, 1, 1), pil, gray)
        out = torch.empty((n, 4, h, w), dtype=torch.uint8, device=dev)
        out[:, :3] = gray.unsqueeze(1)
        out[:, 3] = 255
        _paint(out, aa, aa_color)
    if alt_color is None:
        _paint(out, over_real, diff_color)
    else:
        _paint(out, over_real & ~darker, diff_color)
        _paint(out, over_real & darker, alt_color)
    return count, out


def _paint(out: torch.Tensor, where: torch.Tensor, rgb: Tuple[int, int, int]) -> None:
    """Set the pixels of the ``(N, H, W)`` bool mask ``where`` of the RGBA image ``out`` to ``rgb``,
    opaque (a ``where`` per channel: no host synchronisation)."""
    for c, v in enumerate((*rgb, 255)):
        out[:, c] = torch.where(where, v, out[:, c])


def pixelmatch(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    threshold: float = 0.1,
    include_aa: bool = False,
    alpha: float = K.ALPHA,
    aa_color: Color = K.AA_COLOR,
    diff_color: Color = K.DIFF_COLOR,
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
    max_delta = K.max_delta(threshold)
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
