"""Binary-image operators: Otsu's threshold, connected components, region bounding boxes.

Batched and on any device, with no OpenCV or scipy at run time. Their results
are data-dependent in size or need iteration to converge, so labelling and boxes
synchronise with the device (once per labelling round, once for the box count).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F

_FLT_EPSILON = 1.1920928955078125e-07  # C's FLT_EPSILON, as cv2's Otsu uses it

_N8 = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
_N4 = [(-1, 0), (0, -1), (0, 1), (1, 0)]
_NEIGHBOURS = {4: _N4, 8: _N8}


def otsu_threshold(u8: torch.Tensor) -> torch.Tensor:
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
    offs = (torch.arange(n, device=u8.device) * 256).reshape(n, 1)
    hist = torch.bincount((u8.reshape(n, -1).long() + offs).reshape(-1), minlength=256 * n).reshape(n, 256)
    p = hist.to(torch.float64) / u8[0].numel()
    i = torch.arange(256, dtype=torch.float64, device=u8.device)
    mu = (p * i).sum(1, keepdim=True)
    q1 = torch.cumsum(p, 1)
    q2 = 1.0 - q1
    mu1 = torch.cumsum(p * i, 1) / q1
    mu2 = (mu - q1 * mu1) / q2
    sigma = q1 * q2 * (mu2 - mu1) ** 2
    ok = (torch.minimum(q1, q2) >= _FLT_EPSILON) & (torch.maximum(q1, q2) <= 1.0 - _FLT_EPSILON)
    sigma = torch.where(ok, sigma, torch.zeros_like(sigma))
    best = sigma.max(1, keepdim=True).values
    first = torch.where((sigma == best) & (best > 0), i.to(torch.int64), torch.full_like(hist, 256)).min(1).values
    return torch.where(first == 256, torch.zeros_like(first), first)


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


def component_boxes(mask: torch.Tensor, min_area: int = 0) -> List[torch.Tensor]:
    """Bounding box of every external 8-connected region of each ``(H, W)`` bool mask of a batch.

    A region is external (kept) when it touches the image border or is 4-adjacent
    to the background component 4-connected to the border; regions inside a hole
    of another region are dropped, and so are regions of fewer than ``min_area``
    pixels.

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
    n, h, w = mask.shape
    dev = mask.device
    pf = F.pad(mask.to(torch.uint8), (1, 1, 1, 1), value=0).bool()  # a virtual background frame
    hp, wp = h + 2, w + 2
    total = n * hp * wp
    lab = label_components(pf, 8)
    bg = label_components(~pf, 4)
    outer = (~pf) & (bg == bg[:, :1, :1])  # the frame's background component
    po = F.pad(outer.to(torch.uint8), (1, 1, 1, 1), value=0).bool()
    touch = torch.zeros_like(pf)
    for dy, dx in _N4:
        touch |= po[:, 1 + dy : 1 + dy + hp, 1 + dx : 1 + dx + wp]
    touch &= pf
    flat = lab.reshape(-1)
    sel = pf.reshape(-1)
    roots = flat[sel]
    ys = torch.arange(hp, device=dev).reshape(1, hp, 1).expand(n, hp, wp).reshape(-1)[sel] - 1
    xs = torch.arange(wp, device=dev).reshape(1, 1, wp).expand(n, hp, wp).reshape(-1)[sel] - 1
    big = torch.iinfo(torch.int64).max
    x0 = torch.full((total,), big, dtype=torch.int64, device=dev).scatter_reduce_(0, roots, xs, "amin")
    y0 = torch.full((total,), big, dtype=torch.int64, device=dev).scatter_reduce_(0, roots, ys, "amin")
    x1 = torch.full((total,), -1, dtype=torch.int64, device=dev).scatter_reduce_(0, roots, xs, "amax")
    y1 = torch.full((total,), -1, dtype=torch.int64, device=dev).scatter_reduce_(0, roots, ys, "amax")
    area = torch.zeros(total, dtype=torch.int64, device=dev).scatter_add_(0, roots, torch.ones_like(roots))
    touching = touch.reshape(-1)[sel].to(torch.uint8)
    ext = torch.zeros(total, dtype=torch.uint8, device=dev).scatter_reduce_(0, roots, touching, "amax").bool()
    is_root = (flat == torch.arange(total, device=dev)) & sel & ext & (area >= max(min_area, 1))
    ids = torch.nonzero(is_root).reshape(-1)  # data-dependent size: one host sync, by nature
    boxes = torch.stack([x0[ids], y0[ids], x1[ids] + 1, y1[ids] + 1], dim=1)
    image = ids // (hp * wp)
    counts = torch.bincount(image, minlength=n).tolist()
    return list(torch.split(boxes, counts))
