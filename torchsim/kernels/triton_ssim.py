"""Fused SSIM in Triton: one forward pass and one backward pass over 2-D tiles.

Each program owns one tile of one ``(image, channel)`` plane and keeps everything of that
tile in registers (no intermediate map is written to memory):

Forward (``BR × BW`` input rows × output columns per tile):

1. horizontal filter of the five moments ``x', y', x'², y'², x'y'`` (``x' = x - off``, a
   per-plane shift that keeps float32 variances free of cancellation, as the reference
   kernel does): ``k`` column-shifted loads of the tile (cache hits after the first);
2. vertical filter as a product with the ``BR × BR`` band matrix of the window
   (``tl.dot`` in IEEE precision: no TF32 rounding);
3. the SSIM and contrast-structure maps elementwise, their masked sums per tile (written
   to a ``(2, P, tiles)`` buffer that PyTorch sums: deterministic, no atomics), and the
   SSIM map when it is asked for.

Backward (recomputes the moments instead of saving them: the forward stores nothing but
its outputs): per tile of input pixels, the moments at every output pixel whose window
covers the tile (a ``k - 1`` halo on each side), the four upstream-gradient maps of the
hand-written backward in ``functional/ssim.py`` (zero outside the valid region), their
adjoint ("full") filter as two band-matrix products, and the input gradients
``∂L/∂x = F*(d₀) + 2x' F*(d_q) + y' F*(d_b)`` (and symmetrically for ``y``). Each input
pixel belongs to exactly one tile: no atomics there either.

Inputs of any strides (``channels_last`` included) and dtypes float16 / bfloat16 / float32
are read as they are and computed in float32; float64 is computed in float64. ``c1`` /
``c2`` may be per image. 4-D input only (volumes use the reference kernel).

``triton`` is imported when this module is, and this module only when the Triton backend is
asked for, so torchsim imports without triton. On a CPU tensor the kernels run through
Triton's interpreter (``triton.runtime.interpreter``), which the tests use.

Tile sizes are first choices, not tuned on a GPU yet (``benchmarks/gpu.sh`` measures them).
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor

try:  # the library imports without triton; require_triton() says what is missing
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None
    tl = None

Scalar = Union[float, Tensor]


def require_triton(fn: str) -> None:
    """Raise a clear ``ImportError`` when the ``triton`` package is not installed."""
    if triton is None:
        raise ImportError(
            f"{fn}: backend='triton' needs the triton package (pip install triton; it ships with "
            "the CUDA builds of PyTorch on Linux); use backend='auto' otherwise"
        )


def _next_pow2(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


# Tile shapes. The vertical pass of a tile of BR input rows gives BR - (k - 1) output rows
# (the backward, which filters twice, BR - 2 (k - 1)); BR >= 2 (k - 1) (4 (k - 1) in the
# backward) keeps the halo overhead at most half a tile. The backward's horizontal adjoint is
# a band product too, so its tile gives BW - (k - 1) columns. tl.dot needs sides of at least
# 16. First choices, not tuned on a GPU yet; tests shrink the widths to cross tile edges on
# tiny images, benchmarks/gpu_bench.py --sweep tries others.
FWD_BLOCK_W = 64
BWD_BLOCK_W = 32
NUM_WARPS = 8
# Tests run the tiles in both orders: a tile writing beyond its own pixels shows either way.
REVERSE_TILES = False


def _forward_blocks(k: int) -> Tuple[int, int]:
    return max(16, _next_pow2(2 * (k - 1))), FWD_BLOCK_W


def _backward_blocks(k: int) -> Tuple[int, int]:
    return max(16, _next_pow2(4 * (k - 1))), max(BWD_BLOCK_W, _next_pow2(k))


if tl is not None:
    # Only builtins and this combine function inside the kernels: triton.language's jit-decorated
    # helpers (tl.sum, tl.zeros, ...) are fixed at triton's import to either compiled or
    # interpreted, and one process may need both (see _launcher). The interpreter sums with
    # numpy when it meets this very function.
    _sum_combine = tl.standard._sum_combine

    def _ssim_kernel(
        x_ptr, y_ptr, w_ptr, off_ptr, c1_ptr, c2_ptr,
        part_ptr, part_stride, map_ptr, gs_ptr, gc_ptr, gmap_ptr, gx_ptr, gy_ptr,
        C, H, W, HV, WV, n_tr, n_tc,
        sxn, sxc, sxh, sxw, syn, syc, syh, syw,
        gxn, gxc, gxh, gxw, gyn, gyc, gyh, gyw,
        c1_value, c2_value, cov,
        K: tl.constexpr, BR: tl.constexpr, BW: tl.constexpr, CDT: tl.constexpr, PER_IMAGE: tl.constexpr,
        BACKWARD: tl.constexpr, WANT_MAP: tl.constexpr, HAS_MAP: tl.constexpr,
        WANT_X: tl.constexpr, WANT_Y: tl.constexpr, REVERSE: tl.constexpr,
    ):  # fmt: skip
        """One tile of one plane; ``BACKWARD`` picks the pass (two kernels, one source).

        Rows and columns of a tile: input row ``r0 + i`` feeds the moments of output row
        ``r0 + i`` (valid for ``i < BR - K + 1``); likewise for columns, where the horizontal
        pass reads ``k`` shifted copies, so all ``BW`` columns are valid. The forward tiles
        step by the valid output rows (``BR - K + 1``) and by ``BW`` columns; the backward
        tiles start ``K - 1`` rows and columns early and write the gradients of the inputs
        whose every output lies in the tile: ``BR - 2(K - 1)`` rows, ``BW - (K - 1)`` columns.
        Forward outputs: per-tile sums of the SSIM and CS maps (``part``), the SSIM map.
        Backward outputs: the input gradients.
        """
        pid = tl.program_id(0)
        if REVERSE:  # tests: the interpreter runs tiles in order, a GPU in any order
            pid = tl.num_programs(0) - 1 - pid
        tc = pid % n_tc
        tr = (pid // n_tc) % n_tr
        p = pid // (n_tc * n_tr)
        n = p // C
        ch = p % C
        if BACKWARD:
            r0 = tr * (BR - 2 * (K - 1)) - (K - 1)
            c0 = tc * (BW - (K - 1)) - (K - 1)
        else:
            r0 = tr * (BR - K + 1)
            c0 = tc * BW
        ri = tl.arange(0, BR)
        cj = tl.arange(0, BW)
        rows = r0 + ri
        x_base = x_ptr + n.to(tl.int64) * sxn + ch.to(tl.int64) * sxc
        y_base = y_ptr + n.to(tl.int64) * syn + ch.to(tl.int64) * syc
        off = tl.load(off_ptr + p)
        row_ok = ((rows >= 0) & (rows < H))[:, None]
        hx = tl.full((BR, BW), 0.0, CDT)
        hy = tl.full((BR, BW), 0.0, CDT)
        hxx = tl.full((BR, BW), 0.0, CDT)
        hyy = tl.full((BR, BW), 0.0, CDT)
        hxy = tl.full((BR, BW), 0.0, CDT)
        for b in tl.static_range(K):  # horizontal pass: k shifted (cached) loads of the tile
            wb = tl.load(w_ptr + b)
            cols = c0 + cj + b
            m = row_ok & ((cols >= 0) & (cols < W))[None, :]
            xv = tl.load(x_base + rows[:, None] * sxh + cols[None, :] * sxw, mask=m, other=0.0).to(CDT) - off
            yv = tl.load(y_base + rows[:, None] * syh + cols[None, :] * syw, mask=m, other=0.0).to(CDT) - off
            wx = wb * xv
            wy = wb * yv
            hx += wx
            hy += wy
            hxx += wx * xv
            hyy += wy * yv
            hxy += wx * yv
        # vertical pass: a product with band[i, r] = w[r - i] (0 <= r - i < K)
        d = ri[None, :] - ri[:, None]
        band_mask = (d >= 0) & (d < K)
        band = tl.load(w_ptr + d, mask=band_mask, other=0.0)
        mxc = tl.dot(band, hx, input_precision="ieee", out_dtype=CDT)
        myc = tl.dot(band, hy, input_precision="ieee", out_dtype=CDT)
        exx = tl.dot(band, hxx, input_precision="ieee", out_dtype=CDT)
        eyy = tl.dot(band, hyy, input_precision="ieee", out_dtype=CDT)
        exy = tl.dot(band, hxy, input_precision="ieee", out_dtype=CDT)
        if PER_IMAGE:
            c1 = tl.load(c1_ptr + n)
            c2 = tl.load(c2_ptr + n)
        else:
            c1 = c1_value
            c2 = c2_value
        # the same terms, in the same order, as _terms() in functional/ssim.py
        a2 = (exy - mxc * myc) * (2 * cov) + c2
        b2 = ((exx - mxc * mxc) + (eyy - myc * myc)) * cov + c2
        mx = mxc + off
        my = myc + off
        a1 = (mx * my) * 2 + c1
        b1 = (mx * mx + my * my) + c1
        orow = r0 + ri
        ocol = c0 + cj
        valid = ((ri < BR - K + 1) & (orow >= 0) & (orow < HV))[:, None] & ((ocol >= 0) & (ocol < WV))[None, :]
        if not BACKWARD:
            cs = a2 / b2
            s = (a1 / b1) * cs
            slot = p.to(tl.int64) * (n_tr * n_tc) + tr * n_tc + tc
            s_sum = tl.reduce(tl.reduce(tl.where(valid, s, 0.0), 1, _sum_combine), 0, _sum_combine)
            cs_sum = tl.reduce(tl.reduce(tl.where(valid, cs, 0.0), 1, _sum_combine), 0, _sum_combine)
            tl.store(part_ptr + slot, s_sum)
            tl.store(part_ptr + part_stride + slot, cs_sum)
            if WANT_MAP:
                map_base = map_ptr + p.to(tl.int64) * HV * WV
                tl.store(map_base + orow[:, None] * WV + ocol[None, :], s, mask=valid)
        else:
            gs = tl.load(gs_ptr + p)
            gc = tl.load(gc_ptr + p)
            if HAS_MAP:
                gmap_base = gmap_ptr + p.to(tl.int64) * HV * WV
                gs = gs + tl.load(gmap_base + orow[:, None] * WV + ocol[None, :], mask=valid, other=0.0).to(CDT)
            # the upstream-gradient maps of _SSIMKernel._backward, in the same order
            inv_b1 = 1.0 / b1
            inv_b2 = 1.0 / b2
            cs = a2 * inv_b2
            r1 = a1 * inv_b1
            s = r1 * cs
            da = (cs * gs) * inv_b1
            db = (r1 * gs + gc) * inv_b2
            dq = -((s * gs + gc * cs) * inv_b2)
            dp = -((s * gs) * inv_b1)
            d0 = tl.where(valid, (my * da + mx * dp - cov * myc * db - cov * mxc * dq) * 2, 0.0)
            d1 = tl.where(valid, (mx * da + my * dp - cov * mxc * db - cov * myc * dq) * 2, 0.0)
            dq = tl.where(valid, dq * cov, 0.0)
            db = tl.where(valid, db * (2 * cov), 0.0)
            # adjoint ("full") filter: vband[i, r] = w[K-1-(r-i)], hband[c, j] = w[K-1-(c-j)]
            vband = tl.load(w_ptr + (K - 1 - d), mask=band_mask, other=0.0)
            e = cj[:, None] - cj[None, :]
            hband = tl.load(w_ptr + (K - 1 - e), mask=(e >= 0) & (e < K), other=0.0)
            gq = tl.dot(tl.dot(vband, dq, input_precision="ieee", out_dtype=CDT), hband, input_precision="ieee", out_dtype=CDT)
            gb = tl.dot(tl.dot(vband, db, input_precision="ieee", out_dtype=CDT), hband, input_precision="ieee", out_dtype=CDT)
            qrow = orow + (K - 1)
            qcol = ocol + (K - 1)
            qmask = ((ri < BR - 2 * (K - 1)) & (qrow < H))[:, None] & ((cj < BW - (K - 1)) & (qcol < W))[None, :]
            xq = tl.load(x_base + qrow[:, None] * sxh + qcol[None, :] * sxw, mask=qmask, other=0.0).to(CDT) - off
            yq = tl.load(y_base + qrow[:, None] * syh + qcol[None, :] * syw, mask=qmask, other=0.0).to(CDT) - off
            if WANT_X:
                g0 = tl.dot(tl.dot(vband, d0, input_precision="ieee", out_dtype=CDT), hband, input_precision="ieee", out_dtype=CDT)
                gx = g0 + 2 * xq * gq + yq * gb
                gx_base = gx_ptr + n.to(tl.int64) * gxn + ch.to(tl.int64) * gxc
                tl.store(gx_base + qrow[:, None] * gxh + qcol[None, :] * gxw, gx.to(gx_ptr.dtype.element_ty), mask=qmask)
            if WANT_Y:
                g1 = tl.dot(tl.dot(vband, d1, input_precision="ieee", out_dtype=CDT), hband, input_precision="ieee", out_dtype=CDT)
                gy = g1 + 2 * yq * gq + xq * gb
                gy_base = gy_ptr + n.to(tl.int64) * gyn + ch.to(tl.int64) * gyc
                tl.store(gy_base + qrow[:, None] * gyh + qcol[None, :] * gyw, gy.to(gy_ptr.dtype.element_ty), mask=qmask)


_LAUNCHERS: Dict[Tuple[str, bool], object] = {}


def _launcher(fn, x: Tensor):
    """``fn`` as a Triton kernel for ``x``'s device: compiled, or interpreted.

    CPU tensors (and any tensor while ``TRITON_INTERPRET=1`` is set) go through Triton's
    interpreter. Built on first use, per mode, rather than with ``@triton.jit`` at import:
    the decorator fixes the mode from ``TRITON_INTERPRET`` at import time, and one process (a
    test run on a GPU machine) may need both.
    """
    interpret = x.device.type == "cpu" or os.environ.get("TRITON_INTERPRET", "0") == "1"
    key = (fn.__name__, interpret)
    kernel = _LAUNCHERS.get(key)
    if kernel is None:
        if interpret:
            from triton.runtime.interpreter import InterpretedFunction

            kernel = InterpretedFunction(fn)
        else:
            from triton.runtime.jit import JITFunction

            kernel = JITFunction(fn)
        _LAUNCHERS[key] = kernel
    return kernel


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _tl_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _plane_offsets(x: Tensor, y: Tensor, dtype: torch.dtype) -> Tensor:
    """A value near each plane's data, ``(N*C,)``: the mean of a strided sample of x and y."""
    h, w = x.shape[-2:]
    sh, sw = max(1, h // 64), max(1, w // 64)
    xs, ys = x[..., ::sh, ::sw], y[..., ::sh, ::sw]
    return ((xs.mean((-2, -1), dtype=dtype) + ys.mean((-2, -1), dtype=dtype)) * 0.5).reshape(-1)


def _constants(c1: Scalar, c2: Scalar, n: int, dtype: torch.dtype, dummy: Tensor):
    """``(c1_ptr, c2_ptr, c1_value, c2_value, per_image)`` kernel arguments for ``n`` images."""
    if isinstance(c1, Tensor) or isinstance(c2, Tensor):

        def per_image(c: Scalar) -> Tensor:
            if isinstance(c, Tensor):
                return c.to(dtype).reshape(-1).expand(n).contiguous()
            return torch.full((n,), c, dtype=dtype, device=dummy.device)

        return per_image(c1), per_image(c2), 0.0, 0.0, True
    return dummy, dummy, float(c1), float(c2), False


def _check(x: Tensor, y: Tensor, window: Tensor) -> None:
    if x.dim() != 4 or x.shape != y.shape or x.dtype != y.dtype:
        raise ValueError(
            f"triton ssim: x and y must be 4-D of one shape and dtype, got {tuple(x.shape)} {x.dtype} "
            f"and {tuple(y.shape)} {y.dtype}"
        )
    if window.shape[0] > min(x.shape[2:]):
        raise ValueError(f"triton ssim: window of {window.shape[0]} taps exceeds the image {tuple(x.shape[2:])}")


def _launch(x, y, window, c1, c2, cov, *, backward, want_map=False, grads=None, want_x=False, want_y=False):
    """Run one pass over every tile; returns the forward's ``(part, map)`` or the backward's ``(gx, gy)``."""
    _check(x, y, window)
    n, c, h, w = x.shape
    k = window.shape[0]
    hv, wv = h - k + 1, w - k + 1
    dtype = _compute_dtype(x)
    window = window.to(dtype).contiguous()
    off = _plane_offsets(x, y, dtype)
    c1_ptr, c2_ptr, c1_value, c2_value, per_image = _constants(c1, c2, n, dtype, window)
    if backward:
        br, bw = _backward_blocks(k)
        n_tr, n_tc = -(-h // (br - 2 * (k - 1))), -(-w // (bw - (k - 1)))
        gs, gc, gmap = grads
        has_map = gmap is not None
        gmap = gmap if has_map else gs  # not read without a map gradient
        part = smap = window  # not written
        gx = torch.empty_like(x) if want_x else x
        gy = torch.empty_like(y) if want_y else y
    else:
        br, bw = _forward_blocks(k)
        n_tr, n_tc = -(-hv // (br - k + 1)), -(-wv // bw)
        part = torch.empty((2, n * c, n_tr * n_tc), dtype=dtype, device=x.device)
        smap = x.new_empty((n, c, hv, wv) if want_map else (0,), dtype=dtype)
        gs = gc = gmap = gx = gy = x  # not read
        has_map = False
    kernel = _launcher(_ssim_kernel, x)
    kernel[(n * c * n_tr * n_tc,)](
        x, y, window, off, c1_ptr, c2_ptr, part, part[0].numel(), smap,
        gs, gc, gmap, gx, gy,
        c, h, w, hv, wv, n_tr, n_tc, *x.stride(), *y.stride(), *gx.stride(), *gy.stride(),
        c1_value, c2_value, cov,
        K=k, BR=br, BW=bw, CDT=_tl_dtype(dtype), PER_IMAGE=per_image, BACKWARD=backward,
        WANT_MAP=want_map, HAS_MAP=has_map, WANT_X=want_x, WANT_Y=want_y, REVERSE=REVERSE_TILES,
        num_warps=NUM_WARPS,
    )  # fmt: skip
    return (gx, gy) if backward else (part, smap)


def forward(x: Tensor, y: Tensor, window: Tensor, c1: Scalar, c2: Scalar, cov: float, want_map: bool):
    """``(mean SSIM (N, C), mean CS (N, C), SSIM map (N, C, H', W') or empty)``, one fused pass."""
    part, smap = _launch(x, y, window, c1, c2, cov, backward=False, want_map=want_map)
    n, c = x.shape[:2]
    count = (x.shape[2] - window.shape[0] + 1) * (x.shape[3] - window.shape[0] + 1)
    # two reductions: the outputs of a custom op must not share storage
    return (part[0].sum(-1) / count).view(n, c), (part[1].sum(-1) / count).view(n, c), smap


def backward(
    x: Tensor,
    y: Tensor,
    window: Tensor,
    c1: Scalar,
    c2: Scalar,
    cov: float,
    grad_ssim: Tensor,
    grad_cs: Tensor,
    grad_map: Optional[Tensor],
    want_x: bool,
    want_y: bool,
) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Gradients of ``sum(grad_ssim * ssim + grad_cs * cs) + sum(grad_map * map)`` w.r.t. x and y."""
    dtype = _compute_dtype(x)
    count = (x.shape[2] - window.shape[0] + 1) * (x.shape[3] - window.shape[0] + 1)
    gs = (grad_ssim.to(dtype) / count).reshape(-1).contiguous()
    gc = (grad_cs.to(dtype) / count).reshape(-1).contiguous()
    gmap = grad_map.to(dtype).contiguous() if grad_map is not None else None
    gx, gy = _launch(x, y, window, c1, c2, cov, backward=True, grads=(gs, gc, gmap), want_x=want_x, want_y=want_y)
    return (gx if want_x else None), (gy if want_y else None)
