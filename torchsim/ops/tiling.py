"""Row tiling: the chunk geometry a windowed kernel uses to filter many planes quickly.

A kernel that filters ``(N, C, L0, *rest)`` tensors with a ``k``-tap window in
``"valid"`` mode treats every ``(image, channel)`` plane ``(L0, *rest)`` on its own.
:class:`RowTiles` cuts each plane into *tiles*: slabs along its first spatial axis
("rows"), each holding ``h`` output rows plus the ``k - 1`` halo rows its valid
filter needs, and groups consecutive tiles into *chunks* that are stacked as the
channels of one depthwise convolution::

    plane p, Lv = L0 - k + 1 valid output rows, S tiles of h output rows each:

    input rows   0 ........................................................ L0-1
    tile s=0     [0,       h+k-1)            writes output rows [0, h)
    tile s=1     [h,      2h+k-1)            writes output rows [h, 2h)
      ...
    tile s=S-1   [Lv-h,   L0)                writes output rows [Lv-h, Lv)

Tiles ``0 .. S-2`` start at ``s*h``; the last one starts at ``Lv - h`` so that no
tile needs padding, and its first ``dup = S*h - Lv`` output rows repeat rows of
its neighbour: they are masked out of means and gradients (:meth:`RowTiles.row_mask`).
Tile ``t = p*S + s`` is the ``s``-th tile of plane ``p``; a chunk is a run of
consecutive tiles, described as segments ``(plane, s_begin, s_end)``.

Why (measured on CPU with oneDNN, ``benchmarks/filter_layouts.py``): depthwise
convolution is fast only in channels_last with a multiple of 8 channels (one
channel is ~25x slower per pixel, 15 channels ~1.7x slower than 16), and
elementwise terms are memory-bound, so chunks of 16 tiles whose maps stay in cache
run several times faster than whole-batch maps, with no page faults for fresh
>32 MiB temporaries. On CUDA a tile is a whole plane and one chunk holds every plane.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

import torch

from .filters import _cpu_layout

TILE_CHANNELS = 16  # tiles (depthwise channels) per chunk on CPU
TILE_BYTES = 2 << 20  # bytes of one map of one chunk on CPU (cache-sized)
TILE_MIN_ROWS = 48  # keeps the k - 1 halo rows of a tile a small overhead
# Planes that fit one tile: a chunk holds at least this many bytes per map (in multiples of 8
# tiles), so that its ~40 ops are not mostly overhead. Measured, MS-SSIM's coarse scales of
# 8x3x256x256 (fwd+bwd, 2 threads): 64x64 planes 9.9 -> 4.2 ms, 16x16 6.9 -> 2.2 ms.
CHUNK_MIN_BYTES = 512 << 10

Segment = Tuple[int, int, int]  # (plane, first tile, one past the last tile) of a chunk


class RowTiles:
    """Row tiling of the ``P = N*C`` planes ``(L0, *rest)`` of ``x`` for a window of ``k`` taps.

    Attributes (read by the kernel): ``p`` planes; ``k`` the row axis's window and ``ks`` the
    window of every axis; ``l0`` rows and ``rest`` the
    other spatial sizes of a plane; ``lv = l0 - k + 1`` valid rows and ``rest_v`` the
    valid other sizes; ``h`` output rows per tile, ``th = h + k - 1`` input rows per
    tile, ``s`` tiles per plane, ``dup`` duplicated rows of each plane's last tile;
    ``chunks``: a list of chunks, each a list of segments ``(plane, s_begin, s_end)``;
    ``layout``: the memory format work tensors are allocated in.

    Tensors passed to the methods: *planes* ``(P, L0, *rest)`` (``planes(x)``), valid
    planes ``(P, Lv, *rest_v)``, input tiles ``(T, th, *rest)`` and output tiles
    ``(T, h, *rest_v)`` of a chunk of ``T`` tiles.

    Args:
        x: ``(N, C, L0, *rest)`` (its shape, dtype size and device decide the geometry).
        k: window length, one for every spatial axis or one per axis (``(k_L0, *k_rest)``);
            every spatial size of ``x`` must be at least its axis's window. ``k`` (the attribute)
            is the row axis's window, ``ks`` all of them.
        channels, tile_bytes, min_rows, chunk_bytes: the CPU tuning (tiles per chunk, bytes of
            one map of a chunk, fewest output rows per tile, and for planes that fit one tile the
            fewest bytes of one map of a chunk, in multiples of 8 tiles); the defaults are measured.

    Example:
        >>> import torch
        >>> from torchsim.ops import RowTiles
        >>> x = torch.zeros(1, 2, 41, 8)  # two planes of 41 rows; small CPU tuning to get several tiles
        >>> geo = RowTiles(x, 5, channels=5, tile_bytes=2048, min_rows=10)
        >>> geo.lv, geo.h, geo.s, geo.dup  # 37 valid rows: 4 tiles of 10, the last one 3 rows back
        (37, 10, 4, 3)
        >>> geo.chunks  # 8 tiles, 5 per chunk: a chunk may span planes
        [[(0, 0, 4), (1, 0, 1)], [(1, 1, 4)]]
    """

    def __init__(
        self,
        x: torch.Tensor,
        k: Union[int, Sequence[int]],
        *,
        channels: int = TILE_CHANNELS,
        tile_bytes: int = TILE_BYTES,
        min_rows: int = TILE_MIN_ROWS,
        chunk_bytes: int = CHUNK_MIN_BYTES,
    ) -> None:
        n, c, l0, *rest = x.shape
        ks = (int(k),) * (1 + len(rest)) if isinstance(k, int) else tuple(int(a) for a in k)
        k = ks[0]
        self.p, self.k, self.ks, self.l0, self.rest = n * c, k, ks, l0, tuple(rest)
        self.lv = l0 - k + 1
        self.rest_v = tuple(r - ka + 1 for r, ka in zip(rest, ks[1:]))
        cpu = x.device.type == "cpu"
        if cpu:
            per_row = channels * math.prod(rest) * x.element_size()
            h = min(self.lv, max(k - 1, min_rows, tile_bytes // per_row - (k - 1)))
            s = -(-self.lv // h)
            if s > 1:  # balance the tiles; h >= k - 1 keeps the halos of neighbours apart
                h = max(k - 1, -(-self.lv // s))
                s = -(-self.lv // h)
        else:
            h, s = self.lv, 1
        self.h, self.s, self.th = h, s, h + k - 1
        self.dup = s * h - self.lv
        total = self.p * s
        size = channels if cpu else total
        if cpu and s == 1:  # whole small planes: at least chunk_bytes per map, in multiples of 8 tiles
            plane_bytes = max(1, math.prod((l0, *rest)) * x.element_size())
            size = max(size, -(-chunk_bytes // plane_bytes // 8) * 8)
        self.chunks: List[List[Segment]] = []
        for t0 in range(0, total, size):
            t1 = min(t0 + size, total)
            segs = []
            for p in range(t0 // s, (t1 - 1) // s + 1):
                segs.append((p, max(t0 - p * s, 0), min(t1 - p * s, s)))
            self.chunks.append(segs)
        self.layout = _cpu_layout(x) if cpu else torch.contiguous_format

    def planes(self, t: torch.Tensor) -> torch.Tensor:
        """``(N, C, L0, *rest)`` as ``(P, L0, *rest)`` planes (a view when contiguous)."""
        return t.reshape(self.p, self.l0, *self.rest)

    @staticmethod
    def width(segs: Sequence[Segment]) -> int:
        """Number of tiles ``T`` in a chunk."""
        return sum(b - a for _, a, b in segs)

    def _regular(self, plane: torch.Tensor, a: int, b: int, size: int) -> torch.Tensor:
        """Windows of ``size`` rows starting at rows ``a*h .. (b-1)*h`` of one plane: ``(b-a, size, *rest)``."""
        return plane.narrow(0, a * self.h, (b - a - 1) * self.h + size).unfold(0, size, self.h).movedim(-1, 1)

    def _whole(self, segs: Sequence[Segment]) -> Optional[slice]:
        """The planes of a chunk as one slice where every tile is a whole plane (``s == 1``): the
        chunk is then a run of consecutive planes and moves with one copy, not one per plane."""
        return slice(segs[0][0], segs[-1][0] + 1) if self.s == 1 else None

    def read(self, planes: torch.Tensor, out: torch.Tensor, segs: Sequence[Segment]) -> None:
        """Copy the input tiles of a chunk from ``(P, L0, *rest)`` planes into ``out`` ``(T, th, *rest)``."""
        whole = self._whole(segs)
        if whole is not None:
            out.copy_(planes[whole])
            return
        o = 0
        for p, a, b in segs:
            reg = min(b, self.s - 1)
            if reg > a:
                out[o : o + reg - a].copy_(self._regular(planes[p], a, reg, self.th))
            if b == self.s:
                out[o + b - a - 1].copy_(planes[p].narrow(0, self.lv - self.h, self.th))
            o += b - a

    def write(self, tiles: torch.Tensor, planes: torch.Tensor, segs: Sequence[Segment]) -> None:
        """Copy output tiles ``(T, h, *rest_v)`` of a chunk into their rows of ``(P, Lv, *rest_v)`` planes."""
        whole = self._whole(segs)
        if whole is not None:
            planes[whole].copy_(tiles)
            return
        o = 0
        for p, a, b in segs:
            reg = min(b, self.s - 1)
            if reg > a:
                planes[p].narrow(0, a * self.h, (reg - a) * self.h).unflatten(0, (reg - a, self.h)).copy_(tiles[o : o + reg - a])
            if b == self.s:
                planes[p].narrow(0, self.lv - self.h, self.h).copy_(tiles[o + b - a - 1])
            o += b - a

    def gather(self, planes: torch.Tensor, segs: Sequence[Segment]) -> torch.Tensor:
        """The per-output-row tiles ``(T, h, *rest_v)`` of ``(P, Lv, *rest_v)`` planes (inverse of ``write``)."""
        whole = self._whole(segs)
        if whole is not None:
            return planes[whole].clone()
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

    def fold(self, tiles: torch.Tensor, planes: torch.Tensor, segs: Sequence[Segment]) -> None:
        """Add input-size tiles ``(T, th, *rest)`` into their rows of ``(P, L0, *rest)`` planes (adjoint of ``read``)."""
        whole = self._whole(segs)
        if whole is not None:
            planes[whole].add_(tiles)
            return
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

    def plane_index(self, segs: Sequence[Segment], device: torch.device) -> torch.Tensor:
        """Plane of each tile of the chunk, ``(T,)`` int64 (built on the device: no host copy)."""
        p0, a0, _ = segs[0]
        t0 = p0 * self.s + a0
        return torch.arange(t0, t0 + self.width(segs), device=device) // self.s

    def row_mask(self, segs: Sequence[Segment], like: torch.Tensor) -> Optional[torch.Tensor]:
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

    def stack(self, n_maps: int, width: int, rows: int, rest: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """An empty ``(n_maps, width, rows, *rest)`` work tensor in the filter's layout."""
        return torch.empty((n_maps, width, rows) + tuple(rest), dtype=like.dtype, device=like.device, memory_format=self.layout)
