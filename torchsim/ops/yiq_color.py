"""pixelmatch's YIQ colour space: blending with white, Y / I / Q and the YIQ distance.

Part of the colour operators (:mod:`torchsim.ops.color` re-exports them), kept in a module
of its own because they are plain arithmetic on planes: they run unchanged on torch tensors
and on NumPy arrays, and importing this module imports neither torch nor numpy (the CPU
pixelmatch kernel, :mod:`torchsim.kernels.pixelmatch`, runs on NumPy arrays so that
``torchsim diff`` does not wait for torch). Every function states the operation order of
the reference, which is what makes float64 planes bit-exact.
"""

from __future__ import annotations

from typing import Any, Tuple

# YIQ (Kotsarenko & Ramos), exactly as pixelmatch writes the coefficients.
_YIQ_Y = (0.29889531, 0.58662247, 0.11448223)
_YIQ_I = (0.59597799, 0.27417610, 0.32180189)  # r*i0 - g*i1 - b*i2
_YIQ_Q = (0.21147017, 0.52261711, 0.31114694)  # r*q0 - g*q1 + b*q2
_YIQ_WEIGHTS = (0.5053, 0.299, 0.1957)

Array = Any  # a torch.Tensor or a numpy.ndarray (float64 for bit-exactness)
Planes = Tuple[Array, Array, Array]


def blend_white(rgb: Planes, a: Array) -> Planes:
    r"""Colour planes alpha-blended with a white background, as pixelmatch blends them.

    .. math::

        c' = 255 + (c - 255) \cdot \frac{a}{255}

    in that operation order (``a / 255`` first), so float64 planes give pixelmatch-py's
    values bit for bit. For ``a = 255`` this is exactly ``c``.

    Args:
        rgb: ``(r, g, b)`` planes on 0..255 (float64 for bit-exactness), any one shape.
        a: alpha plane on 0..255, same shape.

    Returns:
        ``(r', g', b')``.

    Example:
        >>> import torch
        >>> from torchsim.ops import blend_white
        >>> c = torch.tensor([0.0], dtype=torch.float64)
        >>> [t.item() for t in blend_white((c, c, c), torch.tensor([51.0], dtype=torch.float64))]
        [204.0, 204.0, 204.0]

    References:
        pixelmatch-py 0.4.0, ``pixelmatch.utils.blend``; mapbox/pixelmatch <= 6 ``blend``.
    """
    f = a / 255
    r, g, b = (255 + (c - 255) * f for c in rgb)
    return r, g, b


def yiq_y(r: Array, g: Array, b: Array) -> Array:
    r"""Brightness (the Y of YIQ) as pixelmatch computes it: ``0.29889531 r + 0.58662247 g + 0.11448223 b``.

    Linear, so it applies to colours and to colour differences alike; the operation order
    is pixelmatch's (``(r·c0 + g·c1) + b·c2``), so float64 planes give its values bit for bit.

    Example:
        >>> import torch
        >>> from torchsim.ops import yiq_y
        >>> w = torch.tensor([255.0], dtype=torch.float64)
        >>> round(yiq_y(w, w, w).item(), 4)  # the coefficients sum to 1.00000001
        255.0

    References:
        pixelmatch-py 0.4.0, ``pixelmatch.utils.rgb2y``; Kotsarenko & Ramos (2010).
    """
    return r * _YIQ_Y[0] + g * _YIQ_Y[1] + b * _YIQ_Y[2]


def yiq(r: Array, g: Array, b: Array) -> Planes:
    r"""NTSC YIQ of RGB planes with pixelmatch's coefficients.

    .. math::

        Y = 0.29889531 r + 0.58662247 g + 0.11448223 b \\
        I = 0.59597799 r - 0.27417610 g - 0.32180189 b \\
        Q = 0.21147017 r - 0.52261711 g + 0.31114694 b

    evaluated left to right as pixelmatch writes them (bit-exact on float64 planes).

    Returns:
        ``(y, i, q)`` planes of the inputs' shape.

    Example:
        >>> import torch
        >>> from torchsim.ops import yiq
        >>> one = torch.tensor([1.0], dtype=torch.float64)
        >>> [round(t.item(), 8) for t in yiq(one, one * 0, one * 0)]
        [0.29889531, 0.59597799, 0.21147017]

    References:
        pixelmatch-py 0.4.0, ``pixelmatch.utils.rgb2y`` / ``rgb2i`` / ``rgb2q``.
    """
    y = yiq_y(r, g, b)
    i = r * _YIQ_I[0] - g * _YIQ_I[1] - b * _YIQ_I[2]
    q = r * _YIQ_Q[0] - g * _YIQ_Q[1] + b * _YIQ_Q[2]
    return y, i, q


def yiq_distance(dy: Array, di: Array, dq: Array) -> Array:
    r"""Squared perceptual colour distance of YIQ differences (Kotsarenko & Ramos).

    .. math::

        \Delta = 0.5053\,\Delta Y^2 + 0.299\,\Delta I^2 + 0.1957\,\Delta Q^2

    evaluated as pixelmatch does (``(0.5053 · dy) · dy + ...``). Red against cyan gives
    its largest value over 8-bit colours, ``35214.7...`` (pixelmatch's 35215).

    Example:
        >>> import torch
        >>> from torchsim.ops import yiq, yiq_distance
        >>> red, cyan = torch.tensor([[255.0], [0.0], [0.0]]).double(), torch.tensor([[0.0], [255.0], [255.0]]).double()
        >>> round(yiq_distance(*(a - b for a, b in zip(yiq(*red), yiq(*cyan)))).item(), 1)
        35214.7

    References:
        Y. Kotsarenko, F. Ramos, "Measuring perceived color difference using YIQ NTSC
        transmission color space in mobile applications", 2010; pixelmatch ``colorDelta``.
    """
    wy, wi, wq = _YIQ_WEIGHTS
    return (wy * dy) * dy + (wi * di) * di + (wq * dq) * dq
