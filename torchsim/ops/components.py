"""Binary-image operators: Otsu's threshold, connected components, region bounding boxes.

Batched and on any device, with no OpenCV or scipy at run time. Their results
are data-dependent in size or need iteration to converge, so labelling and boxes
synchronise with the device (once per labelling round, once for the box count).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch

_FLT_EPSILON = 1.1920928955078125e-07  # C's FLT_EPSILON, as cv2's Otsu uses it

_N8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
_N4 = [(-1, 0), (0, -1), (0, 1), (1, 0)]
_NEIGHBOURS = {4: _N4, 8: _N8}


def otsu_threshold(u8: torch.Tensor, valid: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Otsu's threshold of each image of a batch of 8-bit maps, as ``cv2.threshold`` finds it.

    With ``p_i`` the normalised 256-bin histogram, for every split ``<= t | > t``::

        q1 = sum_{i<=t} p_i,  q2 = 1 - q1,  mu1, mu2 the class means,
        sigma_b(t) = q1 q2 (mu1 - mu2)^2

    and ``t`` maximises ``sigma_b``.

    Convention:
        Equals the threshold ``cv2.threshold(u, 0, 255, cv2.THRESH_OTSU)`` returns:
        splits where ``min(q1, q2) < FLT_EPSILON`` or ``max(q1, q2) > 1 - FLT_EPSILON``
        are skipped, the first maximum wins, and 0 is returned when no split has a
        positive between-class variance (a constant image). The class below is
        ``<= t`` as in ``skimage.filters.threshold_otsu`` (``image > t`` is the
        foreground in both), which finds the same ``t`` on 8-bit images up to
        floating-point ties (and raises on constant images instead of returning 0).

    Args:
        u8: ``(N, ...)`` integer tensor with values in 0..255 (any integer dtype).
        valid: ``(N, ...)`` bool, the pixels to count (all when None); an image with
            no valid pixel gets 0.

    Returns:
        ``(N,)`` int64 thresholds.

    Example:
        >>> import torch
        >>> from torchsim.ops import otsu_threshold
        >>> u = torch.tensor([[[10, 10, 12, 200], [210, 200, 11, 10]]])
        >>> otsu_threshold(u)
        tensor([12])

    References:
        N. Otsu, "A threshold selection method from gray-level histograms",
        IEEE TSMC 9(1), 1979. doi:10.1109/TSMC.1979.4310076
    """
    n = u8.shape[0]
    flat = u8.reshape(n, -1)
    if u8.dtype != torch.uint8:
        flat = flat.long()
    keep = None if valid is None else valid.reshape(n, -1)
    hist = torch.stack([torch.bincount(row if keep is None else row[keep[k]], minlength=256) for k, row in enumerate(flat)])
    p = hist.to(torch.float64) / hist.sum(1, keepdim=True).clamp_(min=1)
    pi = p * torch.arange(256, dtype=torch.float64, device=u8.device)
    mu = pi.sum(1, keepdim=True)
    q1 = torch.cumsum(p, 1)
    q2 = 1.0 - q1
    mu1 = torch.cumsum(pi, 1) / q1
    mu2 = (mu - q1 * mu1) / q2
    sigma = q1 * q2 * (mu2 - mu1) ** 2
    ok = (torch.minimum(q1, q2) >= _FLT_EPSILON) & (torch.maximum(q1, q2) <= 1.0 - _FLT_EPSILON)
    sigma = torch.where(ok, sigma, torch.zeros_like(sigma))
    first = sigma.argmax(1)  # the first maximum
    return torch.where(sigma.gather(1, first.reshape(n, 1)).reshape(n) > 0, first, torch.zeros_like(first))


def _neighbours(connectivity: int) -> List[Tuple[int, int]]:
    if connectivity not in _NEIGHBOURS:
        raise ValueError(f"label_components: connectivity must be 4 or 8, got {connectivity!r}")
    return _NEIGHBOURS[connectivity]


def label_components(mask: torch.Tensor, connectivity: int = 8) -> torch.Tensor:
    """Connected components of each ``(H, W)`` bool mask of a batch, labelled by their first pixel.

    Each foreground pixel gets the flat index (over the whole ``(N, H, W)`` batch) of
    the first pixel, in raster order, of its component; background pixels get ``N*H*W``.
    Every round takes the minimum label over the neighbourhood, hooks each pixel's
    current root onto that minimum (``scatter_reduce amin``) and compresses paths by
    pointer jumping, until nothing changes (one host sync per round; rounds grow with
    the log of the component diameter in practice).

    Convention:
        The same partition as ``scipy.ndimage.label(m, structure=np.ones((3, 3)))``
        (``connectivity=8``) or its default cross structure (``connectivity=4``),
        with different label values.

    Args:
        mask: ``(N, H, W)`` bool.
        connectivity: 8 (diagonal neighbours connect) or 4.

    Returns:
        ``(N, H, W)`` int64 labels.

    Raises:
        ValueError: ``connectivity`` not 4 or 8.

    Example:
        >>> import torch
        >>> from torchsim.ops import label_components
        >>> m = torch.tensor([[[1, 0, 0], [0, 1, 0], [0, 0, 1]]], dtype=torch.bool)
        >>> label_components(m)[0]
        tensor([[0, 9, 9],
                [9, 0, 9],
                [9, 9, 0]])
        >>> label_components(m, connectivity=4)[0]
        tensor([[0, 9, 9],
                [9, 4, 9],
                [9, 9, 8]])
    """
    neighbours = _neighbours(connectivity)
    n, h, w = mask.shape
    total = n * h * w
    big = total
    idx = torch.arange(total, device=mask.device).reshape(n, h, w)
    lab = torch.where(mask, idx, torch.full_like(idx, big))
    padded = lab.new_full((n, h + 2, w + 2), big)
    while True:
        padded[:, 1:-1, 1:-1] = lab
        m = lab
        for dy, dx in neighbours:
            m = torch.minimum(m, padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w])
        m = torch.where(mask, m, lab)
        parent = torch.cat([m.reshape(-1), m.new_full((1,), big)])
        parent.scatter_reduce_(0, lab.reshape(-1), m.reshape(-1), reduce="amin")
        for _ in range(4):
            parent = parent.index_select(0, parent)
        new = parent[:total].reshape(n, h, w)
        if torch.equal(new, lab):
            return lab
        lab = new


def _runs(mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Horizontal runs of True of an ``(N, H, W)`` mask, in raster order: ``(row, start, end)``.

    ``row`` is the global row ``n·H + r``; ``end`` is exclusive. Two passes over the
    mask (the row transitions) and one ``nonzero``: a data-dependent size, one sync.
    """
    n, h, w = mask.shape
    p = mask.new_zeros((n * h, w + 2))
    p[:, 1:-1] = mask.reshape(n * h, w)
    nz = torch.nonzero(p[:, 1:] != p[:, :-1])  # a run starts at one transition and ends at the next
    return nz[0::2, 0], nz[0::2, 1], nz[1::2, 1]


def _touching(rows: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, h: int, stride: int, strict: bool):
    """Edges ``(u, v)`` between runs ``u`` in row ``r`` and ``v`` in row ``r + 1`` of the same image that touch.

    Runs (``starts``/``ends`` exclusive, shifted so every column is >= 0, ``stride`` > the largest)
    are in raster order, so in each row both their starts and ends increase: the runs of the next
    row that touch run ``a`` are one index range, found by binary search. 8-connectivity
    (``strict=False``): ``s_b <= e_a`` and ``s_a <= e_b``; 4-connectivity: ``s_b < e_a`` and ``s_a < e_b``.
    """
    dev = rows.device
    key_start = rows * stride + starts
    key_end = rows * stride + ends
    nxt = (rows + 1) * stride
    lo = torch.searchsorted(key_end, nxt + starts + int(strict), side="left")
    hi = torch.searchsorted(key_start, nxt + ends - int(strict), side="right")
    count = torch.where(rows % h == h - 1, torch.zeros_like(lo), (hi - lo).clamp_(min=0))
    u = torch.repeat_interleave(torch.arange(rows.numel(), device=dev), count)
    first = torch.cumsum(count, 0) - count
    v = lo[u] + torch.arange(u.numel(), device=dev) - first[u]
    return u, v


def _roots(n: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Connected components of the graph on ``n`` nodes with edges ``(u, v)``: each node's smallest member.

    Rounds of hooking every root onto the smallest root it is linked to (``scatter_reduce
    amin``, so links only point down and no cycle forms), then full path compression by
    pointer jumping; one sync per round and per jump.
    """
    parent = torch.arange(n, device=u.device)
    if u.numel() == 0:
        return parent
    while True:
        pu, pv = parent[u], parent[v]
        before = parent.clone()
        parent.scatter_reduce_(0, torch.maximum(pu, pv), torch.minimum(pu, pv), reduce="amin")
        while True:
            jumped = parent[parent]
            if torch.equal(jumped, parent):
                break
            parent = jumped
        if torch.equal(parent, before):
            return parent


def _may_nest(image: torch.Tensor, x0: torch.Tensor, y0: torch.Tensor, x1: torch.Tensor, y1: torch.Tensor) -> bool:
    """Whether a region's box lies strictly inside another's (of the same image): only then can a
    region lie in another's hole. Decided pairwise for up to 2048 regions, else assumed (one sync)."""
    k = x0.numel()
    if k < 2:
        return False
    if k > 2048:
        return True
    i, j = image.reshape(-1, 1), image  # container i (rows) around region j (columns)
    inside = (i == j) & (x0.reshape(-1, 1) < x0) & (x1 < x1.reshape(-1, 1)) & (y0.reshape(-1, 1) < y0) & (y1 < y1.reshape(-1, 1))
    return bool(inside.any())


def _external(rows: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """For every run, whether the region whose first run it is lies outside every other region's holes.

    The background is labelled from the gaps between runs (4-connected), one more gap per row
    (the whole row when it has no run), in a frame one pixel wide (the first gap of a row
    starts at -1, the last ends at ``w + 1``); the gaps touching the frame are the outside. The
    pixel just above a region's first pixel is background outside the region (the first
    pixel's row is the region's top), and in the (8, 4) topology the pixels around a region's
    outside are one background component: the region is external when that pixel's is the
    outside's.
    """
    dev = rows.device
    stride = w + 4  # gap columns are shifted by one: -1 .. w + 1 -> 0 .. w + 2
    every_row = torch.arange(n * h, device=dev)
    g_rows = torch.cat([rows, every_row])
    g_starts = torch.cat([ends, torch.full_like(every_row, -1)])
    order = torch.argsort(g_rows * stride + g_starts + 1)
    g_rows, g_starts = g_rows[order], g_starts[order]
    g_ends = torch.cat([starts, torch.full_like(every_row, w + 1)])
    g_ends = g_ends[torch.argsort(torch.cat([rows, every_row]) * stride + g_ends + 1)]
    local = g_rows % h
    outside = (g_starts == -1) | (g_ends == w + 1) | (local == 0) | (local == h - 1)  # touch the frame
    g_root = _roots(g_rows.numel(), *_touching(g_rows, g_starts + 1, g_ends + 1, h, stride, strict=True))
    outer = torch.zeros_like(outside).scatter_reduce_(0, g_root, outside, reduce="amax")[g_root]
    above = torch.searchsorted(g_rows * stride + g_starts + 1, (rows - 1) * stride + starts + 1, side="right") - 1
    return (rows % h == 0) | outer[above.clamp_(min=0)]


def component_regions(
    mask: torch.Tensor, min_area: int = 0, values: Optional[torch.Tensor] = None, *, return_mask: bool = False
):
    """Box, pixel count and mean value of every external 8-connected region of each ``(H, W)`` mask.

    A region is external (kept) when it touches the image border or is 4-adjacent
    to the background component 4-connected to the border; regions inside a hole
    of another region are dropped, and so are regions of fewer than ``min_area``
    pixels.

    Convention:
        The boxes of ``cv2.boundingRect(c)`` for ``c`` in ``cv2.findContours(m,
        cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)``, with ``(x, y, w, h)`` reported
        as ``(x, y, x + w, y + h)``; nesting is decided by topology as
        ``RETR_EXTERNAL`` decides it, not by box containment. The area is the number
        of the region's pixels (``scipy.ndimage.sum(m, labels, i)``), the mean is that
        of ``values`` over them.

    Implementation: the mask is read once, as horizontal runs; runs in consecutive rows
    that touch are linked (8-connected for the regions, 4-connected for the gaps between
    them: the background) and the two graphs are labelled by hooking rounds. A region is
    external when the background pixel just above its first pixel is in the border's
    background component (in the (8, 4) topology the pixels around a region's outside
    are one background component). Work and memory grow with the number of runs, not
    of pixels, so a sparse mask of a large image is cheap.

    Args:
        mask: ``(N, H, W)`` bool.
        min_area: drop regions of fewer pixels than this.
        values: ``(N, H, W)`` floating map whose mean over each region is returned, or None.
        return_mask: also return the ``(N, H, W)`` bool mask of the returned regions' pixels
            (``mask`` without the nested and the small regions).

    Returns:
        A list of ``N`` tuples ``(boxes, areas, means)``: int64 ``(K, 4)`` boxes ``x0, y0,
        x1, y1`` (``x1``, ``y1`` exclusive), int64 ``(K,)`` pixel counts and ``(K,)`` means
        in ``values``' dtype (None without ``values``), in raster order of each region's
        first pixel. With ``return_mask``, a tuple ``(that list, mask of the regions)``.

    Example:
        >>> import torch
        >>> from torchsim.ops import component_regions
        >>> m = torch.zeros(1, 8, 8, dtype=torch.bool)
        >>> m[0, 1:4, 2:6] = True; m[0, 6, 0] = True
        >>> boxes, areas, means = component_regions(m, values=torch.arange(64.0).reshape(1, 8, 8))[0]
        >>> boxes.tolist(), areas.tolist(), means.tolist()
        ([[2, 1, 6, 4], [0, 6, 1, 7]], [12, 1], [19.5, 48.0])
    """
    n, h, w = mask.shape
    dev = mask.device
    rows, starts, ends = _runs(mask)
    r = rows.numel()
    root = _roots(r, *_touching(rows, starts, ends, h, w + 2, strict=False))
    lengths = ends - starts
    area = torch.zeros(r, dtype=torch.int64, device=dev).index_add_(0, root, lengths)
    big = torch.iinfo(torch.int64).max
    x0 = torch.full((r,), big, dtype=torch.int64, device=dev).scatter_reduce_(0, root, starts, "amin")
    x1 = torch.full((r,), -1, dtype=torch.int64, device=dev).scatter_reduce_(0, root, ends, "amax")
    y1 = torch.full((r,), -1, dtype=torch.int64, device=dev).scatter_reduce_(0, root, rows, "amax")
    ids = torch.nonzero(root == torch.arange(r, device=dev)).reshape(-1)  # data-dependent size: one sync
    if _may_nest(rows[ids] // h, x0[ids], rows[ids], x1[ids], y1[ids]):
        ids = ids[_external(rows, starts, ends, n, h, w)[ids]]
    ids = ids[area[ids] >= max(min_area, 1)]
    image = rows[ids] // h
    top = rows[ids] - image * h
    boxes = torch.stack([x0[ids], top, x1[ids], y1[ids] - image * h + 1], dim=1)
    counts = torch.bincount(image, minlength=n).tolist()
    means: List[Optional[torch.Tensor]] = [None] * n
    if values is not None:
        run_of = torch.repeat_interleave(torch.arange(r, device=dev), lengths)
        offset = torch.arange(run_of.numel(), device=dev) - (torch.cumsum(lengths, 0) - lengths)[run_of]
        pixels = values.reshape(-1).index_select(0, rows[run_of] * w + starts[run_of] + offset)
        sums = torch.zeros(r, dtype=values.dtype, device=dev).index_add_(0, root[run_of], pixels)
        means = list(torch.split(sums[ids] / area[ids].to(values.dtype), counts))
    found = list(zip(torch.split(boxes, counts), torch.split(area[ids], counts), means))
    if not return_mask:
        return found
    if ids.numel() == root.numel() or r == 0:  # every run is its own kept region, or none: nothing dropped
        return found, mask.clone()
    kept = torch.zeros(r, dtype=torch.bool, device=dev)
    kept[ids] = True
    kept = kept[root]
    if bool(kept.all()):
        return found, mask.clone()
    k_rows, k_starts, k_lengths = rows[kept], starts[kept], lengths[kept]
    run_of = torch.repeat_interleave(torch.arange(k_rows.numel(), device=dev), k_lengths)
    offset = torch.arange(run_of.numel(), device=dev) - (torch.cumsum(k_lengths, 0) - k_lengths)[run_of]
    painted = torch.zeros(n * h * w, dtype=torch.bool, device=dev)
    painted[k_rows[run_of] * w + k_starts[run_of] + offset] = True
    return found, painted.reshape(n, h, w)


def component_boxes(mask: torch.Tensor, min_area: int = 0) -> List[torch.Tensor]:
    """Bounding box of every external 8-connected region of each ``(H, W)`` bool mask of a batch.

    The boxes of :func:`component_regions` (see there for the rules and the
    implementation).

    Convention:
        The boxes of ``cv2.boundingRect(c)`` for ``c`` in ``cv2.findContours(m,
        cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)``, with ``(x, y, w, h)`` reported
        as ``(x, y, x + w, y + h)``; nesting is decided by topology as
        ``RETR_EXTERNAL`` decides it, not by box containment.

    Args:
        mask: ``(N, H, W)`` bool.
        min_area: drop regions of fewer pixels than this.

    Returns:
        A list of ``N`` int64 tensors ``(K_n, 4)``: ``x0, y0, x1, y1`` (``x1``, ``y1``
        exclusive), in raster order of each region's first pixel.

    Example:
        >>> import torch
        >>> from torchsim.ops import component_boxes
        >>> m = torch.zeros(1, 8, 8, dtype=torch.bool)
        >>> m[0, 1:4, 2:6] = True; m[0, 6, 0] = True
        >>> component_boxes(m)
        [tensor([[2, 1, 6, 4],
                [0, 6, 1, 7]])]
    """
    return [boxes for boxes, _, _ in component_regions(mask, min_area)]
