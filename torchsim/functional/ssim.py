"""SSIM and MS-SSIM: one kernel, with a hand-written backward.

The kernel filters the five moment maps ``x, y, x², y², xy`` in one separable
call, forms the SSIM and contrast-structure maps elementwise, and returns
their per-channel means. Its backward needs no autograd graph of the
intermediates: with the upstream gradients folded into four valid-size maps,
one "full" (adjoint) filter of those four maps and three multiply-adds give
both input gradients. MS-SSIM calls the same kernel once per scale. The work
is cut into chunks of row tiles (:class:`torchsim.ops.tiling.RowTiles`) so that
the depthwise filter runs in its fast layout and the maps stay in cache.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch
from torch.autograd.function import once_differentiable

from .. import _validation as V
from .. import conventions
from .._common import no_autocast, range_tensor, reduce, to_compute_pair
from ..ops.filters import (
    HALVING_MODES,
    box_window,
    gaussian_window,
    halve,
    matlab_downsample,
    matlab_round,
    pad_same,
    pool_downsample,
    separable_filter,
)
from ..ops.parallel import run_chunks
from ..ops.tiling import RowTiles
from ..kernels.ssim_op import BACKENDS, ssim_kernel, use_fused

Scalar = Union[float, torch.Tensor]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _terms(m: torch.Tensor, c1: Scalar, c2: Scalar, cov: float, off: torch.Tensor, luminance: bool = True):
    """SSIM = A1 A2 / (B1 B2) from moments of the images shifted by ``-off``.

    ``m = [mx', my', E[x'²], E[y'²], E[x'y']]`` for ``x' = x - off``, ``y' = y - off``: the
    (co)variances are shift-invariant and, taken about a value near the data, do not cancel
    catastrophically in float32; the true means ``mx = mx' + off`` enter the luminance term.
    Returns ``mx', my', mx, my, A1, B1, A2, B2`` (the luminance terms ``mx, my, A1, B1`` None
    without ``luminance``: a backward that only the contrast-structure term reaches).
    """
    # Written so that x == y gives A1 == B1 and A2 == B2 bit for bit (SSIM exactly 1).
    mxc, myc, exx, eyy, exy = m.unbind(0)
    a2 = (exy - mxc * myc).mul_(2 * cov).add_(c2)
    b2 = (exx - mxc * mxc).add_(eyy - myc * myc).mul_(cov).add_(c2)
    if not luminance:
        return mxc, myc, None, None, None, None, a2, b2
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
        # window: one 1-D tensor for every spatial axis, or a tuple of one per axis.
        # keep: whether a backward will follow (then the filtered moments are saved for it).
        n, c = x.shape[:2]
        ctx.set_materialize_grads(False)  # an output the loss does not use has no gradient (None)
        geo = RowTiles(x, _lengths(window, x.dim() - 2))
        xp, yp = geo.planes(x), geo.planes(y)
        off_plane = _offsets(xp, yp)
        ssim_sum = x.new_zeros(geo.p)
        cs_sum = x.new_zeros(geo.p)
        moments = [None] * len(geo.chunks)
        out_map = x.new_empty((geo.p, geo.lv) + geo.rest_v) if want_map else x.new_empty(0)
        width, ndim = geo.width(geo.chunks[0]), x.dim() - 1

        def compute(i, scratch):
            segs = geo.chunks[i]
            if "work" not in scratch:  # reused by every chunk of this thread
                scratch["work"] = geo.stack(5, width, geo.th, geo.rest, x)
            t = geo.width(segs)
            idx = geo.plane_index(segs, x.device)
            off = off_plane[idx].view(t, *([1] * (ndim - 1)))
            st = scratch["work"][:, :t]
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
            return idx, rs.sum(1), rc.sum(1), ssim_map if want_map else None, m if keep else None

        def commit(i, result):  # in chunk order: the sums add up as in a serial loop
            idx, rs, rc, ssim_map, m = result
            ssim_sum.index_add_(0, idx, rs)
            cs_sum.index_add_(0, idx, rc)
            if want_map:
                geo.write(ssim_map, out_map, geo.chunks[i])
            moments[i] = m

        run_chunks(len(geo.chunks), compute, commit, x.device)
        moments = moments if keep else []
        count = geo.lv * math.prod(geo.rest_v)
        ssim_nc = (ssim_sum / count).view(n, c)
        cs_nc = (cs_sum / count).view(n, c)
        tensors = [t for t in (c1, c2) if isinstance(t, torch.Tensor)]
        windows = (window,) if isinstance(window, torch.Tensor) else tuple(window)
        ctx.save_for_backward(x, y, off_plane, *windows, *tensors, *moments)
        ctx.n_win, ctx.n_const = len(windows), len(tensors)
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
        x, y, off_plane, *rest = ctx.saved_tensors
        window = rest[0] if ctx.n_win == 1 else tuple(rest[: ctx.n_win])
        rest = rest[ctx.n_win :]
        consts, moments = list(rest[: ctx.n_const]), rest[ctx.n_const :]
        c1, c2, cov = ctx.consts
        if c1 is None:
            c1 = consts.pop(0)
        if c2 is None:
            c2 = consts.pop(0)
        n = x.shape[0]
        geo = RowTiles(x, _lengths(window, x.dim() - 2))
        xp, yp = geo.planes(x), geo.planes(y)
        count = geo.lv * math.prod(geo.rest_v)
        # None: that output does not reach the loss (MS-SSIM's finer scales use only CS, SSIM
        # only the SSIM); the terms it would feed are skipped, not multiplied by zeros.
        gs_plane = None if g_ssim is None else (g_ssim.to(x.dtype) / count).reshape(geo.p)
        gc_plane = None if g_cs is None else (g_cs.to(x.dtype) / count).reshape(geo.p)
        has_map = g_map is not None and g_map.numel() > 0
        luminance = gs_plane is not None or has_map
        if not luminance and gc_plane is None:
            return None, None, None, None, None, None, None, None
        gmap_planes = g_map.to(x.dtype).reshape((geo.p, geo.lv) + geo.rest_v) if has_map else None
        want_x, want_y = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = torch.zeros((geo.p, geo.l0) + geo.rest, dtype=x.dtype, device=x.device) if want_x else None
        grad_y = torch.zeros((geo.p, geo.l0) + geo.rest, dtype=x.dtype, device=x.device) if want_y else None
        ones = (1,) * len(geo.rest)
        width = geo.width(geo.chunks[0])
        # Reused by every chunk of a thread: the four gradient maps, with a zero border of k - 1 on every
        # spatial side (k of that axis's window) so the adjoint ("full") filter runs as a valid
        # one (oneDNN's padded depthwise path was measured ~2x slower). The windows are
        # symmetric, so the adjoint needs no flip.
        pads = [ka - 1 for ka in geo.ks]
        sizes = (geo.h,) + geo.rest_v
        inner = (slice(None), slice(None)) + tuple(slice(pa, pa + r) for pa, r in zip(pads, sizes))
        d_shape = (geo.h + 2 * pads[0], tuple(r + 2 * pa for r, pa in zip(geo.rest_v, pads[1:])))

        def compute(i, scratch):
            segs, m = geo.chunks[i], moments[i]
            if "d" not in scratch:  # this thread's work buffers; the zero border is never written
                scratch["d"] = geo.stack(4, width, *d_shape, x).zero_()
                scratch["xy"] = geo.stack(2, width, geo.th, geo.rest, x)
            t = geo.width(segs)
            idx = geo.plane_index(segs, x.device)
            ndim = m.dim() - 1
            off = off_plane[idx].view(t, *([1] * (ndim - 1)))
            mxc, myc, mx, my, a1, b1, a2, b2 = _terms(
                m, _per_tile(c1, idx, n, geo.p, ndim), _per_tile(c2, idx, n, geo.p, ndim), cov, off, luminance
            )
            # Upstream gradient per output pixel of each tile, (T, h, 1...) or (T, h, *rest_v); None: none.
            def per_row(plane_grad):
                return None if plane_grad is None else plane_grad[idx].view(t, 1, *ones).expand(t, geo.h, *ones)

            gs, gc = per_row(gs_plane), per_row(gc_plane)
            mask = geo.row_mask(segs, m)
            if mask is not None:
                mk = mask.view(t, geo.h, *ones)
                gs = None if gs is None else gs * mk
                gc = None if gc is None else gc * mk
            if has_map:
                gm = geo.gather(gmap_planes, segs)
                if mask is not None:
                    gm.mul_(mask.view(t, geo.h, *ones))  # duplicated rows belong to the previous tile
                gs = gm if gs is None else gm.add_(gs)
            # With S = A1 A2 / (B1 B2) and CS = A2 / B2:
            #   dS/dA1 = A2/(B1 B2), dS/dA2 = A1/(B1 B2), dS/dB1 = -S/B1, dS/dB2 = -S/B2,
            #   dCS/dA2 = 1/B2, dCS/dB2 = -CS/B2,
            # chained through A1 = 2 mx my + C1, B1 = mx² + my² + C1 (true means) and
            # A2 = 2 cov (E[x'y'] - mx' my') + C2, B2 = cov (E[x'²] + E[y'²] - mx'² - my'²) + C2
            # (shifted moments, mx = mx' + off) to the five filtered moments.
            inv_b2 = b2.reciprocal_()
            cs = a2.mul_(inv_b2)  # CS map
            dpad = scratch["d"][:, :t]
            d = dpad[inner]
            if luminance:
                inv_b1 = b1.reciprocal_()
                r1 = a1.mul_(inv_b1)  # A1 / B1
                s = r1 * cs  # SSIM map
                da = (cs * gs).mul_(inv_b1)  # dL/dA1
                db = _mul_into(d[3], r1, gs)
                db = (db if gc is None else db.add_(gc)).mul_(inv_b2)  # dL/dA2
                dq = _mul_into(d[2], s, gs)
                dq = (dq if gc is None else dq.addcmul_(gc, cs)).mul_(inv_b2).neg_()  # dL/dB2
                dp = s.mul_(gs).mul_(inv_b1).neg_()  # dL/dB1
                # dL/dmx' = 2 (my dA1 + mx dB1) - 2 cov (my' dA2 + mx' dB2), and symmetrically.
                _mul_into(d[0], my, da).addcmul_(mx, dp).addcmul_(myc, db, value=-cov).addcmul_(mxc, dq, value=-cov).mul_(2)
                _mul_into(d[1], mx, da).addcmul_(my, dp).addcmul_(mxc, db, value=-cov).addcmul_(myc, dq, value=-cov).mul_(2)
            else:  # only CS reaches the loss: dL/dA1 = dL/dB1 = 0
                db = _mul_into(d[3], inv_b2, gc)  # dL/dA2
                dq = _mul_into(d[2], cs, gc).mul_(inv_b2).neg_()  # dL/dB2
                _mul_into(d[0], myc, db).addcmul_(mxc, dq).mul_(-2 * cov)
                _mul_into(d[1], mxc, db).addcmul_(myc, dq).mul_(-2 * cov)
            dq.mul_(cov)  # dL/dE[x'²] = dL/dE[y'²]
            db.mul_(2 * cov)  # dL/dE[x'y']
            g = separable_filter(dpad, window)
            gmx, gmy, gq, gb = g.unbind(0)
            xy = scratch["xy"][:, :t]
            geo.read(xp, xy[0], segs)
            geo.read(yp, xy[1], segs)
            xy.sub_(off)
            xt, yt = xy.unbind(0)
            gx = gmx.addcmul_(xt, gq, value=2).addcmul_(yt, gb) if want_x else None
            gy = gmy.addcmul_(yt, gq, value=2).addcmul_(xt, gb) if want_y else None
            return gx, gy

        def commit(i, result):  # in chunk order: neighbouring tiles' halo rows add up as in a serial loop
            gx, gy = result
            if want_x:
                geo.fold(gx, grad_x, geo.chunks[i])
            if want_y:
                geo.fold(gy, grad_y, geo.chunks[i])

        run_chunks(len(geo.chunks), compute, commit, x.device)
        grad_x = grad_x.view(x.shape) if want_x else None
        grad_y = grad_y.view(y.shape) if want_y else None
        return grad_x, grad_y, None, None, None, None, None, None


def _lengths(window, spatial: int) -> Tuple[int, ...]:
    """Window length per spatial axis of the kernel's ``window`` argument."""
    if isinstance(window, torch.Tensor):
        return (window.shape[0],) * spatial
    return tuple(w.shape[0] for w in window)


def _window(kernel_size: Union[int, Tuple[int, ...]], sigma: Union[float, Tuple[float, ...]], gaussian: bool, like: torch.Tensor):
    """The kernel's window: one 1-D tensor when every axis has the same one, else one per axis."""
    spatial = like.dim() - 2
    kernel_size = (kernel_size,) * spatial if isinstance(kernel_size, int) else tuple(kernel_size)
    sigma = (sigma,) * spatial if isinstance(sigma, (int, float)) else tuple(sigma)
    pairs = list(zip(kernel_size, sigma if gaussian else (0.0,) * len(kernel_size)))
    made = {}
    for k, s in pairs:
        if (k, s) not in made:
            made[(k, s)] = (
                gaussian_window(k, s, dtype=like.dtype, device=like.device)
                if gaussian
                else box_window(k, dtype=like.dtype, device=like.device)
            )
    if len(made) == 1:
        return next(iter(made.values()))
    return tuple(made[p] for p in pairs)


def _constants(data_range, like: torch.Tensor, k1: float, k2: float) -> Tuple[Scalar, Scalar]:
    r = range_tensor(data_range, like)
    return (k1 * r) ** 2, (k2 * r) ** 2


def _to_unit_range(xc: torch.Tensor, yc: torch.Tensor, dr):
    """Divide both images by ``data_range`` where their units could overflow or underflow float32.

    Moments square the pixels (and ``C1 = (k1 L)^2``): float32 images of 1e30 overflow and of
    1e-30 underflow. A per-image (tensor) range or a float range outside ``[2^-16, 2^16]``
    is divided out first (SSIM is invariant to a common scale of x, y and L); the usual
    ranges (1, 255, 65535) skip the extra pass.
    """
    if isinstance(dr, torch.Tensor) or not (2.0 ** -16 <= dr <= 2.0 ** 16):
        r = range_tensor(dr, xc)
        return xc / r, yc / r, 1.0
    return xc, yc, dr


def _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction, allow_even: bool = False):
    """Checks shared by the SSIM family; returns ``x, y, data_range`` and the per-axis kernel sizes and sigmas."""
    x, y = V.check_pair(fn, x, y, (4, 5))
    ks = V.check_kernel_sizes(fn, kernel_size, x.dim() - 2, allow_even=allow_even)
    sigmas = V.check_sigmas(fn, sigma, x.dim() - 2)
    V.check_reduction(fn, reduction)
    V.check_positive(fn, "k1", k1)
    V.check_positive(fn, "k2", k2)
    dr = V.check_data_range(fn, data_range, x)
    return x, y, dr, ks, sigmas


def _masked_mean(
    smap: torch.Tensor, ignore: torch.Tensor, starts: Sequence[int], stride: int = 1
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mean per (N, C), map)`` of an SSIM map over the pixels whose window centre is not
    ignored (``ignore`` ``(N, 1, *full)``; map position ``i`` of each axis is centred on pixel
    ``starts[a] + i * stride``); NaN (zero gradient) where none is left, and the map set to 1
    at ignored centres."""
    keep = ~ignore[(slice(None), slice(None)) + tuple(
        slice(r, r + (s - 1) * stride + 1, stride) for r, s in zip(starts, smap.shape[2:])
    )]
    dims = tuple(range(2, smap.dim()))
    count = keep.sum(dims).to(smap.dtype)  # (N, 1)
    total = torch.where(keep, smap, torch.zeros((), dtype=smap.dtype, device=smap.device)).sum(dims)
    mean = torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))
    return mean, torch.where(keep, smap, torch.ones((), dtype=smap.dtype, device=smap.device))


def _downsample_factor(t: torch.Tensor, mode: str) -> int:
    """``f = round(min(H, W) / 256)``: half away from zero (``ssim.m``) or Python's half to even (piq)."""
    side = min(t.shape[2:]) / 256
    return max(1, matlab_round(side) if mode == "matlab" else round(side))


def _downsample(t: torch.Tensor, mode: str, f: int) -> torch.Tensor:
    """``ssim.m``'s automatic downsampling by ``f`` (``"matlab"``) or piq's (``"avg_pool"``)."""
    return matlab_downsample(t, f) if mode == "matlab" else pool_downsample(t, f)


def _fused(fn: str, backend: str, x: torch.Tensor, ks: Tuple[int, ...], sigmas: Tuple[float, ...]) -> bool:
    """Whether the fused Triton kernels run: ``backend`` as :func:`use_fused` decides, for one odd
    window on every axis (per-axis and even block windows take the reference kernel)."""
    fused = use_fused(fn, V.check_choice(fn, "backend", backend, BACKENDS), x, max(ks))
    return fused and len(set(ks)) == 1 and len(set(sigmas)) == 1 and ks[0] % 2 == 1


@conventions.presets("ssim")
def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    kernel_size: Union[int, Sequence[int]] = 11,
    sigma: Union[float, Sequence[float]] = 1.5,
    gaussian: bool = True,
    k1: float = 0.01,
    k2: float = 0.03,
    sample_covariance: bool = False,
    downsample: Union[bool, str] = False,
    padding: str = "valid",
    stride: int = 1,
    return_map: bool = False,
    convention: Optional[str] = None,
    reduction: str = "mean",
    backend: str = "auto",
    mask: Union[None, torch.Tensor, Sequence[Sequence[int]]] = None,
) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    r"""Structural similarity (Wang et al. 2004), mean over the SSIM map.

    With local means :math:`\mu`, variances :math:`\sigma^2` and covariance
    :math:`\sigma_{xy}` taken under a window ``w`` (Gaussian or uniform)::

        SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))

    with ``C1 = (k1 L)²``, ``C2 = (k2 L)²`` and ``L = data_range``. The map is
    computed where the window lies fully inside the image ("valid"), or at every
    pixel of an image padded in a same-size ``padding`` mode, and averaged;
    channels are scored separately and averaged.

    Convention:
        The defaults (``convention=None``, the same as ``"wang"``) equal
        ``skimage.metrics.structural_similarity(x, y, gaussian_weights=True,
        sigma=1.5, use_sample_covariance=False, data_range=L, channel_axis=...)``,
        ``pytorch_msssim.ssim(x, y, data_range=L, size_average=False)`` and BasicSR's
        ``calculate_ssim`` (pass ``data_range=255`` on 0..255 images). Other published
        conventions are presets (``docs/AGREEMENT.md`` shows each against its reference);
        a preset sets only the arguments the caller does not pass:

        ==================  ===========================================================
        ``convention``      sets
        ==================  ===========================================================
        ``"wang"``          nothing (the defaults; also ``"basicsr"``, ``"pytorch_msssim"``,
                            ``"monai"``, ``"tensorflow"``)
        ``"skimage"``       ``gaussian=False, kernel_size=7, sample_covariance=True``
        ``"matlab"``        ``downsample="matlab"`` (Wang's ``ssim.m``)
        ``"piq"``           ``downsample="avg_pool"`` (``piq.ssim``'s default)
        ``"torchmetrics"``  ``padding="reflect"`` (mean over the same-size map)
        ``"kornia"``        ``padding="reflect"``
        ``"ffmpeg"``        ``kernel_size=8, gaussian=False, stride=4, sample_covariance=True``
                            and x264's constants ``k1=0.00125, k2=0.03``
        ==================  ===========================================================

        scikit-image's ``full=True`` map is ``padding="symmetric"``'s map (its mean is
        the default, valid one).

        With ``mask``, the mean is over the valid-region pixels whose window
        *centre* is not ignored (the windows of those pixels still read the
        ignored pixels around them); the returned map is 1 at ignored centres
        (they neither count nor differ). With ``downsample=True`` the mask is
        subsampled as the images are (every ``f``-th pixel). An image whose
        centres are all ignored gives NaN (with a zero gradient).

    Args:
        x, y: ``(N, C, H, W)`` images or ``(N, C, D, H, W)`` volumes, same shape,
            dtype family and device.
        data_range: span of valid values (``1.0`` for [0, 1], ``255.0`` for 0..255),
            a float or an ``(N,)`` tensor. Defaults to 255 for uint8; required otherwise.
        kernel_size: odd window length, for every spatial axis or one per axis
            (``(11, 7)``); any length with ``gaussian=False`` and ``padding="valid"``.
        sigma: Gaussian standard deviation, for every axis or one per axis
            (ignored when ``gaussian=False``).
        gaussian: Gaussian window if True, uniform window otherwise.
        k1, k2: stabilising constants.
        sample_covariance: scale (co)variances by ``n / (n - 1)``, ``n`` = the number of
            window taps (``prod(kernel_size)``).
        downsample: ``True`` or ``"matlab"``: ``ssim.m``'s automatic downsampling first
            (``f = round(min(H, W) / 256)`` half away from zero, an ``f×f`` mean filter with
            symmetric border, every ``f``-th pixel); ``"avg_pool"``: piq's (``f`` rounded
            half to even, ``f×f`` block means, remainder dropped); ``False``: none.
        padding: ``"valid"`` (windows inside the image), or a same-size map from the
            image padded by ``kernel_size // 2`` in mode ``"symmetric"`` (``ba|abcd|dc``,
            scipy's ``reflect``), ``"reflect"`` (``cb|abcd|cb``, torch's), ``"zero"`` or
            ``"replicate"``.
        stride: evaluate the map at every ``stride``-th position per axis, starting at the
            first (ffmpeg's blocks every 4 pixels); the mean is over those positions.
        return_map: also return the SSIM map.
        convention: a published convention by name (see above and
            :mod:`torchsim.conventions`); ``None`` keeps the defaults.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per image).
        backend: ``"auto"`` (default: the separable-convolution kernel on every device),
            ``"torch"`` (the same, explicitly) or ``"triton"`` (opt-in fused Triton kernels
            for 4-D CUDA input; volumes and windows over 33 taps use the default kernel).
            See :mod:`torchsim.kernels.ssim_op`.
        mask: pixels to ignore: a bool tensor ``(N, 1, H, W)``, True = ignore (``(N, 1,
            D, H, W)`` for volumes), or rectangles ``[(x0, y0, x1, y1), ...]`` (``x1``,
            ``y1`` exclusive) ignored in every image — as :func:`torchsim.pixelmatch`.

    Returns:
        The SSIM (scalar, or ``(N,)`` for ``reduction="none"``), float32
        (float64 for float64 input); with ``return_map`` a tuple ``(value, map)``, the
        map ``(N, C, *sizes)`` over the valid region (``n - k + 1`` per axis), the padded
        image (``n``) or, with ``stride``, its every ``stride``-th position.

    Raises:
        TypeError: missing ``data_range`` for floating input, unsupported dtype.
        ValueError: rank/shape/device mismatch, even kernel_size (with a Gaussian or
            padding), image smaller than the window, bad ``reduction``/``data_range``/
            ``padding``/``downsample``/``backend``, unknown ``convention``,
            ``backend="triton"`` on a CPU tensor without ``TRITON_INTERPRET=1``.
        ImportError: ``backend="triton"`` without the ``triton`` package.

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> torchsim.ssim(x, x, data_range=1.0).item()
        1.0
        >>> y = (x + 0.1).clamp(0, 1)
        >>> a = torchsim.ssim(x, y, data_range=1.0, convention="skimage")
        >>> b = torchsim.ssim(x, y, data_range=1.0, gaussian=False, kernel_size=7, sample_covariance=True)
        >>> bool(a == b)
        True

    References:
        Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
        assessment: from error visibility to structural similarity", IEEE TIP
        13(4), 2004. doi:10.1109/TIP.2003.819861
    """
    fn = "ssim"
    gaussian = V.check_bool(fn, "gaussian", gaussian)
    padding = V.check_choice(fn, "padding", padding, V.SSIM_PADDINGS)
    x, y, dr, ks, sigmas = _check_common(
        fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction, allow_even=not gaussian and padding == "valid"
    )
    sample_covariance = V.check_bool(fn, "sample_covariance", sample_covariance)
    mode = V.check_downsample(fn, downsample)
    stride = V.check_int_at_least(fn, "stride", stride, 1)
    return_map = V.check_bool(fn, "return_map", return_map)
    taps = math.prod(ks)
    if sample_covariance and taps < 2:
        raise ValueError(
            f"{fn}: kernel_size must be at least 3 with sample_covariance=True (the sample "
            f"covariance of one pixel divides by n - 1 = 0), got {kernel_size}"
        )
    fused = _fused(fn, backend, x, ks, sigmas)
    ignore = V.check_mask(fn, mask, x)
    with no_autocast(x.device):
        xc, yc, dr = _to_unit_range(*to_compute_pair(x, y), dr)
        if mode is not None:
            f = _downsample_factor(xc, mode)
            xc, yc = _downsample(xc, mode, f), _downsample(yc, mode, f)
            if ignore is not None:  # the mask as the images: every f-th pixel
                ignore = ignore[(Ellipsis,) + tuple(slice(0, s * f, f) for s in xc.shape[2:])]
        V.check_window_fits(fn, xc.shape, ks)
        if padding != "valid":
            xc, yc = pad_same(xc, ks, padding), pad_same(yc, ks, padding)
        window = _window(ks, sigmas, gaussian, xc)
        c1, c2 = _constants(dr, xc, k1, k2)
        cov_norm = taps / (taps - 1) if sample_covariance else 1.0
        want_map = return_map or stride > 1 or ignore is not None
        s_nc, _, smap = ssim_kernel(xc, yc, window, c1, c2, cov_norm, want_map, fused)
        if stride > 1:
            smap = smap[(slice(None), slice(None)) + (slice(None, None, stride),) * len(ks)]
        if ignore is not None:
            starts = tuple((k - 1) // 2 for k in ks) if padding == "valid" else (0,) * len(ks)
            s_nc, smap = _masked_mean(smap, ignore, starts, stride)
        elif stride > 1:
            s_nc = smap.flatten(2).mean(2)
        value = reduce(s_nc.mean(1), reduction)
    if return_map:
        return value, smap
    return value


def _safe_pow(v: torch.Tensor, w: float) -> torch.Tensor:
    """``v ** w`` for ``v >= 0`` whose gradient is 0 (not NaN) where ``v == 0``; NaN stays NaN.

    (``v * 0`` rather than a zero constant: an image with a NaN pixel must score NaN, never 0.)
    """
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, torch.ones_like(v)) ** w, v * 0)


@conventions.presets("ms_ssim")
def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    kernel_size: Union[int, Sequence[int]] = 11,
    sigma: Union[float, Sequence[float]] = 1.5,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    k1: float = 0.01,
    k2: float = 0.03,
    pooling: str = "zero",
    channel_mean: str = "last",
    padding: str = "valid",
    convention: Optional[str] = None,
    reduction: str = "mean",
    backend: str = "auto",
) -> torch.Tensor:
    r"""Multi-scale SSIM (Wang, Simoncelli, Bovik 2003).

    .. math::

        \mathrm{MS\text{-}SSIM} = \mathrm{SSIM}_M^{\,w_M} \prod_{j=1}^{M-1} \mathrm{cs}_j^{\,w_j}

    per channel, where ``cs_j`` is the mean contrast-structure term at scale
    ``j`` and each coarser scale is a 2×2 average pooling of the previous one.
    Negative ``cs`` / SSIM terms are clamped to zero, so the product is defined and
    its gradient is finite (zero on clamped terms). Channels are averaged.

    Convention:
        The defaults (``convention=None``, the same as ``"wang"`` and
        ``"pytorch_msssim"``) equal ``pytorch_msssim.ms_ssim(x, y, data_range=L,
        size_average=False, win_size=kernel_size, win_sigma=sigma, weights=weights,
        K=(k1, k2))``. The other published conventions differ in how a scale is halved,
        when channels are averaged and how the coarsest SSIM is taken:

        ==================  ==========================================================
        ``convention``      sets
        ==================  ==========================================================
        ``"piq"``           ``pooling="replicate_start"``
        ``"torchmetrics"``  ``pooling="floor", channel_mean="first", padding="reflect"``
        ``"monai"``         ``pooling="floor", channel_mean="first"``
        ``"tensorflow"``    ``pooling="symmetric_end"``
        ==================  ==========================================================

    Args:
        x, y: ``(N, C, H, W)`` or ``(N, C, D, H, W)``; every spatial side must be at
            least ``(kernel_size - 1) * 2**(M-1) + 1`` (161 for the defaults;
            ``kernel_size * 2**(M-1)`` with ``pooling="floor"``).
        data_range: as in :func:`ssim`.
        kernel_size, sigma, k1, k2: as in :func:`ssim` (Gaussian window; per axis allowed).
        weights: per-scale exponents; their count ``M`` is the number of scales.
        pooling: how a scale is halved on odd sides (see :func:`torchsim.ops.halve`):
            ``"zero"`` (one counted zero before, pytorch-msssim), ``"floor"`` (last sample
            dropped), ``"replicate_start"`` (piq), ``"symmetric_end"`` (TensorFlow).
        channel_mean: ``"last"``: MS-SSIM per channel, then the channel mean; ``"first"``:
            each scale's terms averaged over channels before the product.
        padding: as in :func:`ssim`, for the SSIM term of the coarsest scale (torchmetrics
            pads there; the contrast-structure terms are always over valid windows).
        convention: a published convention by name (see above); ``None`` keeps the defaults.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
        backend: as in :func:`ssim`; ``"triton"`` runs the fused kernel at every scale (the
            2×2 pooling between scales stays a PyTorch op).

    Returns:
        MS-SSIM as a scalar or ``(N,)`` tensor (float32, float64 for float64 input).

    Raises:
        TypeError / ValueError: as :func:`ssim`; an image too small for the scales; bad
            ``weights``, ``pooling`` or ``channel_mean``.

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
    x, y, dr, ks, sigmas = _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction)
    w_list = V.check_weights(fn, weights)
    pooling = V.check_choice(fn, "pooling", pooling, HALVING_MODES)
    channel_mean = V.check_choice(fn, "channel_mean", channel_mean, V.CHANNEL_MEANS)
    padding = V.check_choice(fn, "padding", padding, V.SSIM_PADDINGS)
    levels = len(w_list)
    V.check_scales_fit(fn, x.shape, ks, levels, pooling)
    fused = _fused(fn, backend, x, ks, sigmas)
    with no_autocast(x.device):
        xc, yc, dr = _to_unit_range(*to_compute_pair(x, y), dr)
        window = _window(ks, sigmas, True, xc)
        c1, c2 = _constants(dr, xc, k1, k2)
        terms = []
        for level in range(levels):
            if level == levels - 1 and padding != "valid":
                xc, yc = pad_same(xc, ks, padding), pad_same(yc, ks, padding)
            s_nc, cs_nc, _ = ssim_kernel(xc, yc, window, c1, c2, 1.0, False, fused)
            if level < levels - 1:
                terms.append(cs_nc)
                xc, yc = halve(xc, pooling), halve(yc, pooling)
        terms.append(s_nc)
        if channel_mean == "first":
            terms = [t.mean(1, keepdim=True) for t in terms]
        value = _safe_pow(torch.relu(terms[0]), w_list[0])
        for term, w in zip(terms[1:], w_list[1:]):
            value = value * _safe_pow(torch.relu(term), w)
        return reduce(value.mean(dim=1), reduction)


# ---------------------------------------------------------------------------------------------
# MS-SSIM + Gaussian-weighted L1 (Zhao et al.): the training loss of MSSSIML1Loss.
# ---------------------------------------------------------------------------------------------


def ms_ssim_l1(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    data_range: Optional[Union[float, torch.Tensor]] = None,
    alpha: float = 0.84,
    l1_sigma: float = 8.0,
    kernel_size: int = 11,
    sigma: float = 1.5,
    weights: Sequence[float] = MS_SSIM_WEIGHTS,
    k1: float = 0.01,
    k2: float = 0.03,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""The MS-SSIM + L1 mix of Zhao et al. (2017), a loss for image restoration.

    .. math::

        \mathcal{L} = \alpha\,(1 - \mathrm{MS\text{-}SSIM}(x, y))
                    + (1 - \alpha)\,\operatorname{mean}\big(G_{\sigma_M} * |x - y|\big) / L

    per image: the L1 term is the absolute error blurred with the Gaussian of
    the coarsest MS-SSIM scale (``l1_sigma``, the paper's :math:`\sigma_G^M`;
    ``2·round(3σ) + 1`` taps, symmetric boundary, same size), averaged over
    pixels and channels and divided by ``L = data_range``, so both terms lie on
    the same [0, 1] scale whatever the image range. Lower is better; identical
    images give 0.

    Convention:
        :math:`\alpha = 0.84` and :math:`\sigma_G^M = 8` as in the paper; the MS-SSIM
        term is :func:`ms_ssim` with the same options (``pytorch_msssim.ms_ssim``'s
        convention). The L1 term equals ``scipy.ndimage.gaussian_filter(|x - y|,
        sigma=l1_sigma, mode="reflect", truncate=round(3 * l1_sigma) / l1_sigma)``
        averaged, divided by ``data_range``.

    Args:
        x, y: ``(N, C, H, W)`` images or ``(N, C, D, H, W)`` volumes, as in :func:`ms_ssim`
            (every spatial side at least 161 for the defaults).
        data_range: as in :func:`ssim` (required for floating input).
        alpha: weight of the MS-SSIM term, in [0, 1].
        l1_sigma: standard deviation of the Gaussian weighting the L1 term (> 0).
        kernel_size, sigma, weights, k1, k2: as in :func:`ms_ssim`.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per image).

    Returns:
        The loss as a scalar or ``(N,)`` tensor (float32, float64 for float64 input).

    Raises:
        TypeError: missing ``data_range`` for floating input, unsupported dtype.
        ValueError: as :func:`ms_ssim`; ``alpha`` outside [0, 1]; ``l1_sigma`` not positive.

    Example:
        >>> import torch, torchsim
        >>> x = torch.rand(1, 1, 161, 161, generator=torch.Generator().manual_seed(0))
        >>> torchsim.ms_ssim_l1(x, x, data_range=1.0).item()
        0.0

    References:
        H. Zhao, O. Gallo, I. Frosio, J. Kautz, "Loss Functions for Image
        Restoration with Neural Networks", IEEE TCI 3(1), 2017.
        doi:10.1109/TCI.2016.2644865
    """
    fn = "ms_ssim_l1"
    x, y, dr, _, _ = _check_common(fn, x, y, data_range, kernel_size, sigma, k1, k2, reduction)
    alpha = V.check_unit_interval(fn, "alpha", alpha)
    l1_sigma = V.check_sigma_value(fn, "l1_sigma", l1_sigma)
    radius = int(round(3 * l1_sigma))
    padded = x.shape[0] * x.shape[1] * math.prod([s + 2 * radius for s in x.shape[2:]])  # (a list: Dynamo traces no genexpr here)
    V.check_allocation(fn, "l1_sigma", f"l1_sigma={l1_sigma!r}", padded * 8.0, x.device)
    ms = ms_ssim(
        x, y, data_range=data_range, kernel_size=kernel_size, sigma=sigma, weights=weights, k1=k1, k2=k2, reduction="none"
    )
    with no_autocast(x.device):
        xc, yc = to_compute_pair(x, y)
        err = (xc - yc).abs()
        window = gaussian_window(2 * radius + 1, l1_sigma, dtype=err.dtype, device=err.device)
        l1 = separable_filter(err, window, mode="symmetric").flatten(1).mean(1)
        l1 = l1 / range_tensor(dr, l1)
        return reduce(alpha * (1.0 - ms) + (1.0 - alpha) * l1, reduction)
