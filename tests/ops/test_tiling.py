"""torchsim.ops.tiling.RowTiles on its own: tiles read, written, gathered and folded back exactly.

The reference is the geometry as documented, written out naively: tile ``s`` of a plane
starts at row ``s*h`` (the last one at ``Lv - h``), reads ``th = h + k - 1`` rows and
owns ``h`` output rows, of which the last tile's first ``dup`` repeat its neighbour's.
"""

from __future__ import annotations

import pytest
import torch

from torchsim.ops import RowTiles, gaussian_window, separable_filter

# (shape, k, tuning): odd sizes, one and many tiles per plane, chunks that span planes,
# chunks that split a plane, 5-D volumes, k = 1, the default tuning on a wide image.
GEOMETRIES = [
    ((1, 1, 41, 8), 5, dict(channels=5, tile_bytes=2048, min_rows=10)),
    ((2, 3, 37, 13), 7, dict(channels=4, tile_bytes=4096, min_rows=6)),
    ((3, 1, 23, 12), 11, dict(channels=3, tile_bytes=1024, min_rows=1)),
    ((1, 2, 50, 7), 1, dict(channels=8, tile_bytes=512, min_rows=3)),
    ((2, 2, 17, 11), 3, dict(channels=16)),  # default bytes: one tile per plane
    ((1, 2, 29, 6, 5), 3, dict(channels=3, tile_bytes=2048, min_rows=4)),
    ((1, 3, 300, 1024), 11, {}),  # the default CPU tuning: several tiles, duplicated rows
    ((5, 3, 9, 8), 3, dict(channels=4, chunk_bytes=0)),  # whole planes, chunks of 4 across images
    ((7, 3, 9, 8), 3, dict(channels=4, chunk_bytes=2048)),  # whole small planes: 8 a chunk (>= 2 KiB)
    ((4, 3, 12, 10), 5, {}),  # the default tuning on small planes: one chunk holds them all
]


def _geo(shape, k, tuning, dtype=torch.float64):
    x = torch.arange(torch.Size(shape).numel(), dtype=dtype).reshape(shape)
    return x, RowTiles(x, k, **tuning)


def _tiles(geo):
    """Naive list of (plane, first input row) per tile, in tile order."""
    return [(p, s * geo.h if s < geo.s - 1 else geo.lv - geo.h) for p in range(geo.p) for s in range(geo.s)]


@pytest.mark.parametrize("shape, k, tuning", GEOMETRIES)
def test_geometry_invariants(shape, k, tuning):
    x, geo = _geo(shape, k, tuning)
    assert geo.p == shape[0] * shape[1] and geo.l0 == shape[2] and geo.lv == shape[2] - k + 1
    assert geo.rest_v == tuple(r - k + 1 for r in shape[3:]) and geo.th == geo.h + k - 1
    assert 1 <= geo.h <= geo.lv and geo.s == -(-geo.lv // geo.h) and 0 <= geo.dup < geo.h
    if geo.s > 1:
        assert geo.h >= k - 1  # neighbouring halos do not overlap a third tile
    flat = [(p, s) for segs in geo.chunks for p, a, b in segs for s in range(a, b)]
    assert flat == [(p, s) for p in range(geo.p) for s in range(geo.s)]  # every tile once, in order
    size = tuning.get("channels", 16)
    if geo.s == 1:  # whole planes: at least chunk_bytes a map, in multiples of 8 tiles
        plane_bytes = torch.Size(shape[2:]).numel() * x.element_size()
        size = max(size, 8 * -(-tuning.get("chunk_bytes", 512 << 10) // (8 * plane_bytes)))
    assert all(1 <= RowTiles.width(segs) <= size for segs in geo.chunks)
    assert all(RowTiles.width(segs) == size for segs in geo.chunks[:-1])
    # channels_last on the CPU for oneDNN's dtypes; float64 (no oneDNN kernels) stays contiguous
    last = torch.channels_last if x.dim() == 4 else torch.channels_last_3d
    assert geo.layout == (torch.contiguous_format if x.dtype == torch.float64 else last)
    assert RowTiles(x.float(), k).layout == last
    work = geo.stack(5, 3, geo.th, geo.rest, x)
    assert work.shape == (5, 3, geo.th) + geo.rest and work.is_contiguous(memory_format=geo.layout)


@pytest.mark.parametrize("shape, k, tuning", GEOMETRIES)
def test_read_gives_the_documented_rows(shape, k, tuning):
    x, geo = _geo(shape, k, tuning)
    planes = geo.planes(x)
    starts = iter(_tiles(geo))
    for segs in geo.chunks:
        out = torch.empty((RowTiles.width(segs), geo.th) + geo.rest, dtype=x.dtype)
        geo.read(planes, out, segs)
        for tile in out:
            p, r0 = next(starts)
            assert torch.equal(tile, planes[p, r0 : r0 + geo.th])


@pytest.mark.parametrize("shape, k, tuning", GEOMETRIES)
def test_read_then_fold_reproduces_the_planes(shape, k, tuning):
    """fold is the adjoint of read: folding the tiles back gives each row times its tile count,
    and folding them with every row kept only in the first tile that reads it gives the planes."""
    x, geo = _geo(shape, k, tuning)
    planes = geo.planes(x)
    count = torch.zeros(geo.p, geo.l0, dtype=x.dtype)
    owner = {}
    for t, (p, r0) in enumerate(_tiles(geo)):
        count[p, r0 : r0 + geo.th] += 1
        for r in range(r0, r0 + geo.th):
            owner.setdefault((p, r), t)
    assert (count >= 1).all()  # every input row is read
    summed = torch.zeros_like(planes)
    once = torch.zeros_like(planes)
    t0 = 0
    for segs in geo.chunks:
        tiles = torch.empty((RowTiles.width(segs), geo.th) + geo.rest, dtype=x.dtype)
        geo.read(planes, tiles, segs)
        geo.fold(tiles, summed, segs)
        for i in range(tiles.shape[0]):
            p, r0 = _tiles(geo)[t0 + i]
            keep = torch.tensor([owner[(p, r0 + j)] == t0 + i for j in range(geo.th)], dtype=x.dtype)
            tiles[i] *= keep.view(-1, *([1] * len(geo.rest)))
        geo.fold(tiles, once, segs)
        t0 += tiles.shape[0]
    assert torch.equal(once, planes)
    assert torch.equal(summed, planes * count.view(geo.p, geo.l0, *([1] * len(geo.rest))))


@pytest.mark.parametrize("shape, k, tuning", GEOMETRIES)
def test_gather_then_write_round_trips_and_the_mask_counts_each_row_once(shape, k, tuning):
    x, geo = _geo(shape, k, tuning)
    valid = torch.rand((geo.p, geo.lv) + geo.rest_v, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    back = torch.full_like(valid, float("nan"))
    sums = torch.zeros(geo.p, dtype=x.dtype)
    for segs in geo.chunks:
        tiles = geo.gather(valid, segs)
        assert tiles.shape == (RowTiles.width(segs), geo.h) + geo.rest_v
        geo.write(tiles, back, segs)
        rows = tiles.sum(tuple(range(2, tiles.dim()))) if tiles.dim() > 2 else tiles
        mask = geo.row_mask(segs, rows)
        if mask is not None:
            rows = rows * mask
        sums.index_add_(0, geo.plane_index(segs, x.device), rows.sum(1))
    assert torch.equal(back, valid)  # every valid row written, none left out
    torch.testing.assert_close(sums, valid.reshape(geo.p, -1).sum(1), rtol=1e-12, atol=0)


@pytest.mark.parametrize("shape, k, tuning", GEOMETRIES)
def test_filtering_tiles_equals_filtering_whole_planes(shape, k, tuning):
    """What the SSIM kernel relies on: valid-filter each chunk of tiles, write the rows back."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    geo = RowTiles(x, k, **tuning)
    w = gaussian_window(k, 1.5, dtype=x.dtype)
    ref = separable_filter(x, w).reshape((geo.p, geo.lv) + geo.rest_v)
    got = torch.empty_like(ref)
    for segs in geo.chunks:
        st = geo.stack(1, RowTiles.width(segs), geo.th, geo.rest, x)
        geo.read(geo.planes(x), st[0], segs)
        geo.write(separable_filter(st, w)[0], got, segs)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-14)


def test_off_cpu_a_tile_is_a_whole_plane_and_one_chunk_holds_all():
    x = torch.empty(3, 2, 300, 1024, device="meta")
    geo = RowTiles(x, 11)
    assert (geo.h, geo.s, geo.dup) == (290, 1, 0)
    assert geo.chunks == [[(p, 0, 1) for p in range(6)]]
    assert geo.layout == torch.contiguous_format
