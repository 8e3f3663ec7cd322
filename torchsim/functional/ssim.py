"""SSIM and MS-SSIM: one kernel, with a hand-written backward.

The kernel filters the five moment maps ``x, y, x², y², xy`` in one separable
call, forms the SSIM and contrast-structure maps elementwise, and returns
their per-channel means. Its backward needs no autograd graph of the
intermediates: with the upstream gradients folded into four valid-size maps,
one "full" (adjoint) filter of those four maps and three multiply-adds give
both input gradients. MS-SSIM calls the same kernel once per scale.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .. import _validation as V
from .._common import no_autocast, range_tensor, reduce, to_compute_pair
from ..filters import box_window, gaussian_window, matlab_downsample, matlab_round, separable_filter
from ..kernels.ssim_op import BACKENDS, ssim_kernel, use_fused

Scalar = Union[float, torch.Tensor]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


# ---------------------------------------------------------------------------------------------
# Geometry. Every (image, channel) plane is independent, so the kernel works on "tiles": slabs
# of a plane along its first spatial axis, each with the k - 1 extra rows its valid filter
# needs, stacked as *channels* of one depthwise convolution. Measured on CPU (oneDNN, see
# benchmarks/filter_layouts.py): depthwise convolution is fast only in channels_last with a
# multiple of 8 channels (one channel is ~25x slower per pixel, 15 channels ~1.7x slower than
# 16), and the elementwise SSIM terms are memory-bound, so chunks of 16 tiles whose maps stay
# in cache run several times faster than whole-batch maps, with no page faults for fresh
# >32 MiB temporaries. On CUDA a tile is a whole plane and one chunk holds every plane.
# ---------------------------------------------------------------------------------------------

_TILE_CHANNELS = 16  # tiles (depthwise channels) per chunk on CPU
_TILE_BYTES = 2 << 20  # bytes of one moment map of one chunk on CPU (cache-sized)
_TILE_MIN_ROWS = 48  # keeps the k - 1 halo rows of a tile a small overhead


class _Tiles:
    """Row tiling of ``P`` planes of shape ``(L0, *rest)`` for a window of ``k`` taps.

    Valid output rows ``0 .. Lv-1`` (``Lv = L0 - k + 1``) of each plane are covered by ``S``
    tiles of ``h`` output rows: tiles ``0 .. S-2`` start at ``s*h``, the last one at
    ``Lv - h`` (so nothing is padded); the ``dup`` rows it shares with its neighbour are
    masked out of the means and gradients. Tiles ``t = p*S + s`` are processed in chunks
    of consecutive tiles; a chunk is a list of segments ``(plane, s_begin, s_end)``.
    """

    def __init__(self, x: torch.Tensor, k: int) -> None:
        n, c, l0, *rest = x.shape
        self.p, self.k, self.l0, self.rest = n * c, k, l0, tuple(rest)
        self.lv = l0 - k + 1
        self.rest_v = tuple(r - k + 1 for r in rest)
        cpu = x.device.type == "cpu"
        if cpu:
            per_row = _TILE_CHANNELS * math.prod(rest) * x.element_size()
            h = min(self.lv, max(k - 1, _TILE_MIN_ROWS, _TILE_BYTES // per_row - (k - 1)))
            s = -(-self.lv // h)
            if s > 1:  # balance the tiles; h >= k - 1 keeps the halos of neighbours apart
                h = max(k - 1, -(-self.lv // s))
                s = -(-self.lv // h)
        else:
            h, s = self.lv, 1
        self.h, self.s, self.th = h, s, h + k - 1
        self.dup = s * h - self.lv
        total = self.p * s
        size = _TILE_CHANNELS if cpu else total
        self.chunks = []
        for t0 in range(0, total, size):
            t1 = min(t0 + size, total)
            segs = []
            for p in range(t0 // s, (t1 - 1) // s + 1):
                segs.append((p, max(t0 - p * s, 0), min(t1 - p * s, s)))
            self.chunks.append(segs)
        self.layout = (torch.channels_last if x.dim() == 4 else torch.channels_last_3d) if cpu else torch.contiguous_format

    def planes(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(self.p, self.l0, *self.rest)

    @staticmethod
    def width(segs) -> int:
        return sum(b - a for _, a, b in segs)

    def _regular(self, plane: torch.Tensor, a: int, b: int, size: int) -> torch.Tensor:
        """Windows of ``size`` rows starting at rows ``a*h .. (b-1)*h`` of one plane: ``(b-a, size, *rest)``."""
        return plane.narrow(0, a * self.h, (b - a - 1) * self.h + size).unfold(0, size, self.h).movedim(-1, 1)

    def read(self, planes: torch.Tensor, out: torch.Tensor, segs) -> None:
        """Copy the input tiles of a chunk from ``(P, L0, *rest)`` planes into ``out`` ``(T, th, *rest)``."""
        o = 0
        for p, a, b in segs:
            reg = min(b, self.s - 1)
            if reg > a:
                out[o : o + reg - a].copy_(self._regular(planes[p], a, reg, self.th))
            if b == self.s:
                out[o + b - a - 1].copy_(planes[p].narrow(0, self.lv - self.h, self.th))
            o += b - a

    def write(self, tiles: torch.Tensor, planes: torch.Tensor, segs) -> None:
        """Copy output tiles ``(T, h, *rest_v)`` of a chunk into their rows of ``(P, Lv, *rest_v)`` planes."""
        o = 0
        for p, a, b in segs:
            reg = min(b, self.s - 1)
            if reg > a:
                planes[p].narrow(0, a * self.h, (reg - a) * self.h).unflatten(0, (reg - a, self.h)).copy_(tiles[o : o + reg - a])
            if b == self.s:
                planes[p].narrow(0, self.lv - self.h, self.h).copy_(tiles[o + b - a - 1])
            o += b - a

    def gather(self, planes: torch.Tensor, segs) -> torch.Tensor:
        """The per-output-row tiles ``(T, h, *rest_v)`` of ``(P, Lv, *rest_v)`` planes (inverse of ``write``)."""
        out = planes.new_empty((self.width(segs), self.h) + tuple(planes.shape[2:]))
        o = 0
        for p, a, b in segs:
            reg = min(b, self.s - 1)
            if reg > a:
                out[o : o + reg - a].copy_(planes[p].narrow(0, a * self.h, (reg - a) * self.h).unflatten(0, (reg - a, self.h)))
            if b == self.s:
                out[o + b - a - 1].copy_(planes[p].narrow(0, self.lv - self.h, self.h))
            o += b - a
        return out

    def fold(self, tiles: torch.Tensor, planes: torch.Tensor, segs) -> None:
        """Add tile gradients ``(T, th, *rest)`` into their rows of ``(P, L0, *rest)`` planes."""
        h, k = self.h, self.k
        o = 0
        for p, a, b in segs:
            reg = min(b, self.s - 1)
            if reg > a:
                t = tiles[o : o + reg - a]
                head = planes[p].narrow(0, a * h, (reg - a) * h).unflatten(0, (reg - a, h))
                head += t[:, :h]
                if k > 1:
                    self._regular(planes[p][h:], a, reg, k - 1).add_(t[:, h:])
            if b == self.s:
                planes[p].narrow(0, self.lv - h, self.th).add_(tiles[o + b - a - 1])
            o += b - a

    def plane_index(self, segs, device) -> torch.Tensor:
        """Plane of each tile of the chunk, ``(T,)`` int64 (built on the device: no host copy)."""
        p0, a0, _ = segs[0]
        t0 = p0 * self.s + a0
        return torch.arange(t0, t0 + self.width(segs), device=device) // self.s

    def row_mask(self, segs, like: torch.Tensor):
        """``(T, h)`` weights: 0 on each last tile's duplicated rows, else 1 (None if none)."""
        if self.dup == 0:
            return None
        lasts = []
        o = 0
        for p, a, b in segs:
            if b == self.s:
                lasts.append(o + b - a - 1)
            o += b - a
        if not lasts:
            return None
        m = torch.ones(o, self.h, dtype=like.dtype, device=like.device)
        m[lasts, : self.dup] = 0
        return m

    def stack(self, n_maps: int, width: int, rows: int, rest, like: torch.Tensor) -> torch.Tensor:
        """An empty ``(n_maps, width, rows, *rest)`` work tensor in the filter's layout."""
        return torch.empty((n_maps, width, rows) + tuple(rest), dtype=like.dtype, device=like.device, memory_format=self.layout)


def _terms(m: torch.Tensor, c1: Scalar, c2: Scalar, cov: float, off: torch.Tensor):
    """SSIM = A1 A2 / (B1 B2) from moments of the images shifted by ``-off``.

    ``m = [mx', my', E[x'²], E[y'²], E[x'y']]`` for ``x' = x - off``, ``y' = y - off``: the
    (co)variances are shift-invariant and, taken about a value near the data, do not cancel
    catastrophically in float32; the true means ``mx = mx' + off`` enter the luminance term.
    Returns ``mx', my', mx, my, A1, B1, A2, B2``.
    """
    # Written so that x == y gives A1 == B1 and A2 == B2 bit for bit (SSIM exactly 1).
    mxc, myc, exx, eyy, exy = m.unbind(0)
    a2 = (exy - mxc * myc).mul_(2 * cov).add_(c2)
    b2 = (exx - mxc * mxc).add_(eyy - myc * myc).mul_(cov).add_(c2)
    mx = mxc + off
    my = myc + off
    a1 = (mx * my).mul_(2).add_(c1)
    b1 = (mx * mx).add_(my * my).add_(c1)
    return mxc, myc, mx, my, a1, b1, a2, b2


def _mul_into(dst: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``dst = a * b`` in place (dst may be a strided view of a work buffer)."""
    if torch.compiler.is_compiling():  # dynamo refuses non-contiguous out= tensors
        return dst.copy_(a * b)
    return torch.mul(a, b, out=dst)


def _per_tile(c: Scalar, idx: torch.Tensor, n: int, p: int, ndim: int) -> Scalar:
    """A per-image constant ``(N, 1, ...)`` as ``(T, 1, ...)`` for the tiles of a chunk."""
    if not isinstance(c, torch.Tensor):
        return c
    per_plane = c.reshape(n, 1).expand(n, p // n).reshape(p)
    return per_plane[idx].reshape(-1, *([1] * (ndim - 1)))


def _offsets(xp: torch.Tensor, yp: torch.Tensor) -> torch.Tensor:
    """A value near each plane's data, ``(P,)``: the mean of a strided sample of x and y."""
    flat_x, flat_y = xp.reshape(xp.shape[0], -1), yp.reshape(yp.shape[0], -1)
    step = max(1, flat_x.shape[1] // 4096)
    return (flat_x[:, ::step].mean(1) + flat_y[:, ::step].mean(1)) * 0.5


class _SSIMKernel(torch.autograd.Function):
    """``(x, y) -> (mean SSIM per (N, C), mean CS per (N, C), SSIM map or empty)``."""

    @staticmethod
    def forward(ctx, x, y, window, c1, c2, cov: float, want_map: bool, keep: bool):
        # keep: whether a backward will follow (then the filtered moments are saved for it).
        n, c = x.shape[:2]
        geo = _Tiles(x, window.shape[0])
        xp, yp = geo.planes(x), geo.planes(y)
        off_plane = _offsets(xp, yp)
        ssim_sum = x.new_zeros(geo.p)
        cs_sum = x.new_zeros(geo.p)
        moments = []
        out_map = x.new_empty((geo.p, geo.lv) + geo.rest_v) if want_map else x.new_empty(0)
        work = geo.stack(5, geo.width(geo.chunks[0]), geo.th, geo.rest, x)  # reused by every chunk
        for segs in geo.chunks:
            t = geo.width(segs)
            idx = geo.plane_index(segs, x.device)
            ndim = x.dim() - 1
            off = off_plane[idx].view(t, *([1] * (ndim - 1)))
            st = work[:, :t]
            geo.read(xp, st[0], segs)
            geo.read(yp, st[1], segs)
            st[:2].sub_(off)
            _mul_into(st[2], st[0], st[0])
            _mul_into(st[3], st[1], st[1])
            _mul_into(st[4], st[0], st[1])
            m = separable_filter(st, window)
            terms = _terms(m, _per_tile(c1, idx, n, geo.p, ndim), _per_tile(c2, idx, n, geo.p, ndim), cov, off)
            a1, b1, a2, b2 = terms[4:]
            cs_map = a2.div_(b2)
            ssim_map = a1.div_(b1).mul_(cs_map)
            rest_dims = tuple(range(2, ssim_map.dim()))
            rs = ssim_map.sum(rest_dims) if rest_dims else ssim_map
            rc = cs_map.sum(rest_dims) if rest_dims else cs_map
            mask = geo.row_mask(segs, rs)
            if mask is not None:
                rs, rc = rs * mask, rc * mask
            ssim_sum.index_add_(0, idx, rs.sum(1))
            cs_sum.index_add_(0, idx, rc.sum(1))
            if want_map:
                geo.write(ssim_map, out_map, segs)
            if keep:
                moments.append(m)
            del m, terms, a1, b1, a2, b2, cs_map, ssim_map
        count = geo.lv * math.prod(geo.rest_v)
        ssim_nc = (ssim_sum / count).view(n, c)
        cs_nc = (cs_sum / count).view(n, c)
        tensors = [t for t in (c1, c2) if isinstance(t, torch.Tensor)]
        ctx.save_for_backward(x, y, window, off_plane, *tensors, *moments)
        ctx.n_const = len(tensors)
        ctx.consts = (None if isinstance(c1, torch.Tensor) else c1, None if isinstance(c2, torch.Tensor) else c2, cov)
        if want_map:
            out_map = out_map.view((n, c, geo.lv) + geo.rest_v)
        return ssim_nc, cs_nc, out_map

    @staticmethod
    @once_differentiable
    def backward(ctx, g_ssim, g_cs, g_map):
        x = ctx.saved_tensors[0]
        with no_autocast(x.device):  # a backward called inside autocast must stay in fp32/fp64
            return _SSIMKernel._backward(ctx, g_ssim, g_cs, g_map)

    @staticmethod
    def _backward(ctx, g_ssim, g_cs, g_map):
        x, y, window, off_plane, *rest = ctx.saved_tensors
        consts, moments = list(rest[: ctx.n_const]), rest[ctx.n_const :]
        c1, c2, cov = ctx.consts
        if c1 is None:
            c1 = consts.pop(0)
        if c2 is None:
            c2 = consts.pop(0)
        n = x.shape[0]
        geo = _Tiles(x, window.shape[0])
        xp, yp = geo.planes(x), geo.planes(y)
        count = geo.lv * math.prod(geo.rest_v)
        gs_plane = (g_ssim.to(x.dtype) / count).reshape(geo.p)
        gc_plane = (g_cs.to(x.dtype) / count).reshape(geo.p)
        has_map = g_map is not None and g_map.numel() > 0
        gmap_planes = g_map.to(x.dtype).reshape((geo.p, geo.lv) + geo.rest_v) if has_map else None
        want_x, want_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros((geo.p, geo.l0) + geo.rest, dtype=x.dtype, device=x.device) if want_x else None
        grad_y = torch.zeros((geo.p, geo.l0) + geo.rest, dtype=x.dtype, device=x.device) if want_y else None
        ones = (1,) * len(geo.rest)
        width = geo.width(geo.chunks[0])
        # Reused by every chunk: the four gradient maps, with a zero border of k - 1 on every
        # spatial side so the adjoint ("full") filter runs as a valid one (oneDNN's padded
        # depthwise path was measured ~2x slower).
        pad = geo.k - 1
        d_work = geo.stack(4, width, geo.h + 2 * pad, tuple(r + 2 * pad for r in geo.rest_v), x).zero_()
        inner = (slice(None), slice(None)) + tuple(slice(pad, pad + r) for r in (geo.h,) + geo.rest_v)
        xy_work = geo.stack(2, width, geo.th, geo.rest, x)
        for segs, m in zip(geo.chunks, moments):
            t = geo.width(segs)
            idx = geo.plane_index(segs, x.device)
            ndim = m.dim() - 1
            off = off_plane[idx].view(t, *([1] * (ndim - 1)))
            mxc, myc, mx, my, a1, b1, a2, b2 = _terms(
                m, _per_tile(c1, idx, n, geo.p, ndim), _per_tile(c2, idx, n, geo.p, ndim), cov, off
            )
            # Upstream gradient per output pixel of each tile, (T, h, 1...) or (T, h, *rest_v).
            gs = gs_plane[idx].view(t, 1, *ones).expand(t, geo.h, *ones)
            gc = gc_plane[idx].view(t, 1, *ones).expand(t, geo.h, *ones)
            mask = geo.row_mask(segs, gs)
            if mask is not None:
                mk = mask.view(t, geo.h, *ones)
                gs, gc = gs * mk, gc * mk
            if has_map:
                gm = geo.gather(gmap_planes, segs)
                if mask is not None:
                    gm.mul_(mask.view(t, geo.h, *ones))  # duplicated rows belong to the previous tile
                gs = gm.add_(gs)
            # With S = A1 A2 / (B1 B2) and CS = A2 / B2:
            #   dS/dA1 = A2/(B1 B2), dS/dA2 = A1/(B1 B2), dS/dB1 = -S/B1, dS/dB2 = -S/B2,
            #   dCS/dA2 = 1/B2, dCS/dB2 = -CS/B2,
            # chained through A1 = 2 mx my + C1, B1 = mx² + my² + C1 (true means) and
            # A2 = 2 cov (E[x'y'] - mx' my') + C2, B2 = cov (E[x'²] + E[y'²] - mx'² - my'²) + C2
            # (shifted moments, mx = mx' + off) to the five filtered moments.
            inv_b1 = b1.reciprocal_()
            inv_b2 = b2.reciprocal_()
            cs = a2.mul_(inv_b2)  # CS map
            r1 = a1.mul_(inv_b1)  # A1 / B1
            s = r1 * cs  # SSIM map
            dpad = d_work[:, :t]
            d = dpad[inner]
            da = (cs * gs).mul_(inv_b1)  # dL/dA1
            db = _mul_into(d[3], r1, gs).add_(gc).mul_(inv_b2)  # dL/dA2
            dq = _mul_into(d[2], s, gs).addcmul_(gc, cs).mul_(inv_b2).neg_()  # dL/dB2
            dp = s.mul_(gs).mul_(inv_b1).neg_()  # dL/dB1
            # dL/dmx' = 2 (my dA1 + mx dB1) - 2 cov (my' dA2 + mx' dB2), and symmetrically.
            _mul_into(d[0], my, da).addcmul_(mx, dp).addcmul_(myc, db, value=-cov).addcmul_(mxc, dq, value=-cov).mul_(2)
            _mul_into(d[1], mx, da).addcmul_(my, dp).addcmul_(mxc, db, value=-cov).addcmul_(myc, dq, value=-cov).mul_(2)
            dq.mul_(cov)  # dL/dE[x'²] = dL/dE[y'²]
            db.mul_(2 * cov)  # dL/dE[x'y']
            g = separable_filter(dpad, window)
            gmx, gmy, gq, gb = g.unbind(0)
            xy = xy_work[:, :t]
            geo.read(xp, xy[0], segs)
            geo.read(yp, xy[1], segs)
            xy.sub_(off)
            xt, yt = xy.unbind(0)
            if want_x:
                geo.fold(gmx.addcmul_(xt, gq, value=2).addcmul_(yt, gb), grad_x, segs)
            if want_y:
                geo.fold(gmy.addcmul_(yt, gq, value=2).addcmul_(xt, gb), grad_y, segs)
        grad_x = grad_x.view(x.shape) if want_x else None
        grad_y = grad_y.view(y.shape) if want_y else None
        return grad_x, grad_y, None, None, None, None, None, None


def _window(kernel_size: int, sigma: float, gaussian: bool, like: torch.Tensor) -> torch.Tensor:
    if gaussian:
        return gaussian_window(kernel_size, sigma, dtype=like.dtype, device=like.device)
    return box_window(kernel_size, dtype=like.dtype, device=like.device)


def _constants(data_range, like: torch.Tensor, k1: float, k2: float) -> Tuple[Scalar, Scalar]:
    r = range_tensor(data_range, like)
    return (k1 * r) ** 2, (k2 * r) ** 2


def _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction):
    x, y = V.check_pair(fn, x, y, (4, 5))
    V.check_kernel(fn, kernel_size, sigma)
    V.check_reduction(fn, reduction)
    V.check_positive(fn, "k1", k1)
    V.check_positive(fn, "k2", k2)
    dr = V.check_data_range(fn, data_range, x)
    return x, y, dr


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    kernel_size: int = 11,
    sigma: float = 1.5,
    gaussian: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
    downsample: bool = False,
    return_map: bool = False,
    reduction: str = "mean",
    backend: str = "auto",
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    r"""Structural similarity (Wang et al. 2004), mean over the valid region.

    With local means :math:`\mu`, variances :math:`\sigma^2` and covariance
    :math:`\sigma_{xy}` taken under a window ``w`` (Gaussian or uniform)::

        SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))

    with ``C1 = (k1 L)²``, ``C2 = (k2 L)²`` and ``L = data_range``. The map is
    computed where the window lies fully inside the image ("valid") and
    averaged; channels are scored separately and averaged.

    Convention:
        The defaults equal ``skimage.metrics.structural_similarity(x, y,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=L, channel_axis=...)``, ``pytorch_msssim.ssim(x, y,
        data_range=L, size_average=False)`` and BasicSR's ``calculate_ssim``
        (pass ``data_range=255`` on 0..255 images). ``gaussian=False,
        kernel_size=7, sample_covariance=True`` equals scikit-image's default.
        ``downsample=True`` adds the automatic ``f = round(min(H, W) / 256)``
        box-filter-and-subsample step of Wang's ``ssim.m``.

    Args:
        x, y: ``(N, C, H, W)`` images or ``(N, C, D, H, W)`` volumes, same shape,
            dtype family and device.
        data_range: span of valid values (``1.0`` for [0, 1], ``255.0`` for 0..255),
            a float or an ``(N,)`` tensor. Defaults to 255 for uint8; required otherwise.
        kernel_size: odd window length (per axis).
        sigma: Gaussian standard deviation (ignored when ``gaussian=False``).
        gaussian: Gaussian window if True, uniform window otherwise.
        k1, k2: stabilising constants.
        sample_covariance: scale (co)variances by ``n / (n - 1)``, ``n = kernel_size**d``.
        downsample: apply ``ssim.m``'s automatic downsampling first.
        return_map: also return the SSIM map ``(N, C, *valid)``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per image).
        backend: ``"auto"`` (default: the separable-convolution kernel on every device),
            ``"torch"`` (the same, explicitly) or ``"triton"`` (opt-in fused Triton kernels
            for 4-D CUDA input; volumes and windows over 33 taps use the default kernel).
            See :mod:`torchsim.kernels.ssim_op`.

    Returns:
        The SSIM (scalar, or ``(N,)`` for ``reduction="none"``), float32
        (float64 for float64 input); with ``return_map`` a tuple ``(value, map)``.

    Raises:
        TypeError: missing ``data_range`` for floating input, unsupported dtype.
        ValueError: rank/shape/device mismatch, even kernel_size, image smaller
            than the window, bad ``reduction``/``data_range``/``backend``,
            ``backend="triton"`` on a CPU tensor without ``TRITON_INTERPRET=1``.
        ImportError: ``backend="triton"`` without the ``triton`` package.

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> torchsim.ssim(x, x, data_range=1.0).item()
        1.0

    References:
        Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
        assessment: from error visibility to structural similarity", IEEE TIP
        13(4), 2004. doi:10.1109/TIP.2003.819861
    """
    fn = "ssim"
    x, y, dr = _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction)
    fused = use_fused(fn, V.check_choice(fn, "backend", backend, BACKENDS), x, kernel_size)
    with no_autocast(x.device):
        xc, yc = to_compute_pair(x, y)
        if downsample:
            f = max(1, matlab_round(min(xc.shape[2:]) / 256))
            xc, yc = matlab_downsample(xc, f), matlab_downsample(yc, f)
        V.check_window_fits(fn, xc.shape, kernel_size)
        window = _window(kernel_size, sigma, gaussian, xc)
        c1, c2 = _constants(dr, xc, k1, k2)
        n = kernel_size ** (xc.dim() - 2)
        cov_norm = n / (n - 1) if sample_covariance else 1.0
        s_nc, _, smap = ssim_kernel(xc, yc, window, c1, c2, cov_norm, return_map, fused)
        value = reduce(s_nc.mean(1), reduction)
    if return_map:
        return value, smap
    return value


def _ms_pool(t: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling():
        # The same pooling with the padding made explicit: the compiler then traces symbolic
        # sizes without a guard on their parity (one graph for every shape, and export works).
        pads = [p for s in reversed(t.shape[2:]) for p in (s % 2, s % 2)]
        t = F.pad(t, pads)
        return F.avg_pool2d(t, kernel_size=2) if t.dim() == 4 else F.avg_pool3d(t, kernel_size=2)
    pad = [s % 2 for s in t.shape[2:]]
    if t.dim() == 4:
        return F.avg_pool2d(t, kernel_size=2, padding=pad)
    return F.avg_pool3d(t, kernel_size=2, padding=pad)


def _safe_pow(v: torch.Tensor, w: float) -> torch.Tensor:
    """``v ** w`` for ``v >= 0`` whose gradient is 0 (not NaN) where ``v == 0``."""
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, torch.ones_like(v)) ** w, torch.zeros_like(v))


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    kernel_size: int = 11,
    sigma: float = 1.5,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
    backend: str = "auto",
) -> torch.Tensor:
    r"""Multi-scale SSIM (Wang, Simoncelli, Bovik 2003).

    .. math::

        \mathrm{MS\text{-}SSIM} = \mathrm{SSIM}_M^{\,w_M} \prod_{j=1}^{M-1} \mathrm{cs}_j^{\,w_j}

    per channel, where ``cs_j`` is the mean contrast-structure term at scale
    ``j`` and each coarser scale is a 2×2 average pooling of the previous one
    (with one pixel of zero padding, counted, on odd sides). Negative ``cs`` /
    SSIM terms are clamped to zero, so the product is defined and its
    gradient is finite (zero on clamped terms). Channels are averaged.

    Convention:
        Equals ``pytorch_msssim.ms_ssim(x, y, data_range=L, size_average=False,
        win_size=kernel_size, win_sigma=sigma, weights=weights, K=(k1, k2))``.

    Args:
        x, y: ``(N, C, H, W)`` or ``(N, C, D, H, W)``; every spatial side must be at
            least ``(kernel_size - 1) * 2**(M-1) + 1`` (161 for the defaults).
        data_range: as in :func:`ssim`.
        kernel_size, sigma, k1, k2: as in :func:`ssim` (Gaussian window).
        weights: per-scale exponents; their count ``M`` is the number of scales.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        backend: as in :func:`ssim`; ``"triton"`` runs the fused kernel at every scale (the
            2×2 pooling between scales stays a PyTorch op).

    Returns:
        MS-SSIM as a scalar or ``(N,)`` tensor (float32, float64 for float64 input).

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(1, 1, 161, 161, generator=torch.Generator().manual_seed(0))
        >>> torchsim.ms_ssim(x, x, data_range=1.0).item()
        1.0

    References:
        Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity
        for image quality assessment", Asilomar 2003. doi:10.1109/ACSSC.2003.1292216
    """
    fn = "ms_ssim"
    x, y, dr = _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction)
    try:
        w_list = [float(w) for w in weights]
    except TypeError:
        raise TypeError(f"{fn}: weights must be a sequence of numbers, got {weights!r}") from None
    if len(w_list) < 1:
        raise ValueError(f"{fn}: weights must hold at least one scale weight, got {weights!r}")
    levels = len(w_list)
    min_side = (kernel_size - 1) * 2 ** (levels - 1) + 1
    if min(x.shape[2:]) < min_side:
        raise ValueError(
            f"{fn}: every spatial dimension must be at least {min_side} for kernel_size={kernel_size} "
            f"and {levels} scales ((kernel_size - 1) * 2**{levels - 1} + 1), got spatial size "
            f"{tuple(x.shape[2:])}; use a smaller kernel_size, fewer weights, or ssim()"
        )
    fused = use_fused(fn, V.check_choice(fn, "backend", backend, BACKENDS), x, kernel_size)
    with no_autocast(x.device):
        xc, yc = to_compute_pair(x, y)
        window = _window(kernel_size, sigma, True, xc)
        c1, c2 = _constants(dr, xc, k1, k2)
        terms = []
        for level in range(levels):
            s_nc, cs_nc, _ = ssim_kernel(xc, yc, window, c1, c2, 1.0, False, fused)
            if level < levels - 1:
                terms.append(torch.relu(cs_nc))
                xc, yc = _ms_pool(xc), _ms_pool(yc)
        terms.append(torch.relu(s_nc))
        value = _safe_pow(terms[0], w_list[0])
        for term, w in zip(terms[1:], w_list[1:]):
            value = value * _safe_pow(term, w)
        return reduce(value.mean(dim=1), reduction)
