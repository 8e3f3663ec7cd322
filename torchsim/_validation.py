"""Every user-facing input check and its message, in one place.

Each check raises ``ValueError`` or ``TypeError`` with a message of the form
``"<function>: <argument> must be <expected>, got <received>"``. Messages are
only formatted on the failing path, so the checks cost nothing under
``torch.compile`` beyond the comparisons themselves, and none of them reads
tensor *values* (no host-device synchronisation) except where noted.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import torch

Number = Union[int, float]
DataRange = Union[Number, torch.Tensor, None]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_REDUCTIONS = ("mean", "sum", "none")


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}, dtype {x.dtype} on {x.device}"
    return f"{type(x).__name__} {x!r}"


def _isfinite(v: float) -> bool:
    """``math.isfinite`` written as comparisons, which ``torch.compile(dynamic=True)`` traces
    (there, float arguments and defaults are symbolic, and ``math.isfinite`` breaks the graph)."""
    return -math.inf < v < math.inf


def check_image(
    fn: str,
    name: str,
    x: object,
    ndims: Sequence[int] = (4,),
) -> torch.Tensor:
    """Check that ``x`` is a tensor of an accepted dtype and rank."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor, got {_describe(x)}")
    if x.dtype not in _FLOAT_DTYPES and x.dtype != torch.uint8:
        raise TypeError(
            f"{fn}: {name} must have dtype float16, bfloat16, float32, float64 or uint8 "
            f"(uint8 is read as 0..255), got {x.dtype}; convert other integer images "
            f"with x.float() (and pass data_range where the metric takes one)"
        )
    if x.dim() not in ndims:
        layouts = " or ".join({4: "4-D (N, C, H, W)", 5: "5-D (N, C, D, H, W)"}.get(d, f"{d}-D") for d in ndims)
        raise ValueError(f"{fn}: {name} must be {layouts}, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{fn}: {name} must not be empty, got shape {tuple(x.shape)}")
    return x


def check_pair(
    fn: str,
    x: object,
    y: object,
    ndims: Sequence[int] = (4,),
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Check two images for one metric: rank, dtype family, shape and device."""
    x = check_image(fn, "x", x, ndims)
    y = check_image(fn, "y", y, ndims)
    if x.shape != y.shape:
        raise ValueError(
            f"{fn}: x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.device != y.device:
        raise ValueError(f"{fn}: x and y must be on the same device, got {x.device} and {y.device}")
    if (x.dtype == torch.uint8) != (y.dtype == torch.uint8):
        raise TypeError(
            f"{fn}: x and y must both be floating or both be uint8, got {x.dtype} and {y.dtype}"
        )
    return x, y


def check_reduction(fn: str, reduction: object) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction  # type: ignore[return-value]


def check_choice(fn: str, name: str, value: object, choices: Sequence[str]) -> str:
    if value not in choices:
        opts = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{fn}: {name} must be one of {opts}, got {value!r}")
    return value  # type: ignore[return-value]


def check_data_range(fn: str, data_range: DataRange, x: torch.Tensor) -> Union[float, torch.Tensor]:
    """Resolve ``data_range``: 255 for uint8 when omitted, required for floats.

    A tensor range must have shape ``(N,)`` (or be a scalar tensor). Finiteness
    of a tensor range is checked only on the CPU, where it costs no device sync.
    """
    if data_range is None:
        if x.dtype == torch.uint8:
            return 255.0
        raise TypeError(
            f"{fn}: data_range is required for floating inputs ({x.dtype}); it is the span "
            f"max - min of valid values, e.g. data_range=1.0 for images in [0, 1] or "
            f"data_range=255.0 for images in [0, 255]. It is never guessed from the data."
        )
    if isinstance(data_range, bool):
        raise TypeError(f"{fn}: data_range must be a positive finite number or a tensor of shape (N,), got {data_range!r}")
    if isinstance(data_range, torch.Tensor):
        n = x.shape[0]
        if data_range.dim() > 1 or (data_range.dim() == 1 and data_range.shape[0] not in (1, n)):
            raise ValueError(
                f"{fn}: data_range tensor must have shape (N,) = ({n},) or be a scalar, "
                f"got shape {tuple(data_range.shape)}"
            )
        if not data_range.is_floating_point() and data_range.dtype not in (torch.int32, torch.int64, torch.uint8):
            raise TypeError(f"{fn}: data_range tensor must be real-valued, got {data_range.dtype}")
        if data_range.device != x.device and data_range.numel() > 1:
            raise ValueError(
                f"{fn}: data_range tensor must be on the images' device {x.device}, got {data_range.device}"
            )
        if data_range.device.type == "cpu" and not torch.compiler.is_compiling():
            bad = ~torch.isfinite(data_range) | (data_range <= 0)
            if bool(bad.any()):
                raise ValueError(f"{fn}: data_range must be positive and finite, got {data_range.tolist()}")
        return data_range
    if not isinstance(data_range, (int, float)):
        raise TypeError(
            f"{fn}: data_range must be a positive finite number or a tensor of shape (N,), got {_describe(data_range)}"
        )
    if not _isfinite(data_range) or data_range <= 0:
        raise ValueError(f"{fn}: data_range must be positive and finite, got {data_range!r}")
    return float(data_range)


def check_kernel(fn: str, kernel_size: object, sigma: Optional[object] = None) -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"{fn}: kernel_size must be an odd positive integer, got {kernel_size!r}")
    if sigma is not None:
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not _isfinite(sigma) or sigma <= 0:
            raise ValueError(f"{fn}: sigma must be a positive finite number, got {sigma!r}")
    return kernel_size


def check_window_fits(fn: str, shape: Sequence[int], kernel_size: int, what: str = "kernel_size") -> None:
    """The image (spatial dims of ``shape``) must hold at least one full window."""
    spatial = tuple(shape[2:])
    if min(spatial) < kernel_size:
        raise ValueError(
            f"{fn}: every spatial dimension must be at least {what}={kernel_size}, got "
            f"spatial size {spatial}; pass a smaller odd kernel_size or a larger image"
        )


def check_positive(fn: str, name: str, value: object, integer: bool = False, allow_zero: bool = False) -> None:
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not _isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "integer" if integer else "number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{fn}: {name} must be a finite {kind} {bound}, got {value!r}")


def check_channels(fn: str, name: str, x: torch.Tensor, allowed: Sequence[int]) -> None:
    if x.shape[1] not in allowed:
        opts = " or ".join(str(a) for a in allowed)
        raise ValueError(f"{fn}: {name} must have {opts} channels (dim 1), got shape {tuple(x.shape)}")


def check_int_at_least(fn: str, name: str, value: object, minimum: int) -> int:
    """An integer option with a lower bound (e.g. ``hash_size >= 2``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_hashes(fn: str, name: str, h: object) -> torch.Tensor:
    """Hash bits: a 2-D ``(N, bits)`` bool tensor, as ``ahash``/``dhash``/``phash`` return."""
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"{fn}: {name} must be a torch.Tensor of hash bits, got {_describe(h)}")
    if h.dtype != torch.bool:
        raise TypeError(
            f"{fn}: {name} must be a bool tensor of hash bits (as ahash/dhash/phash return), got "
            f"dtype {h.dtype}; convert 0/1 integers with h.bool()"
        )
    if h.dim() != 2 or h.shape[1] == 0:
        raise ValueError(f"{fn}: {name} must be 2-D (N, bits) with bits >= 1, got shape {tuple(h.shape)}")
    return h


def check_hash_pair(fn: str, h1: object, h2: object) -> Tuple[torch.Tensor, torch.Tensor]:
    """Two hash batches compared row by row: same shape and device."""
    h1 = check_hashes(fn, "h1", h1)
    h2 = check_hashes(fn, "h2", h2)
    if h1.shape != h2.shape:
        raise ValueError(
            f"{fn}: h1 and h2 must have the same shape (N, bits), got {tuple(h1.shape)} and {tuple(h2.shape)}"
        )
    if h1.device != h2.device:
        raise ValueError(f"{fn}: h1 and h2 must be on the same device, got {h1.device} and {h2.device}")
    return h1, h2


def check_unit_interval(fn: str, name: str, value: object) -> float:
    """A finite number in ``[0, 1]`` (pixelmatch's ``threshold`` and ``alpha``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{fn}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_rgb_color(fn: str, name: str, value: object) -> Tuple[int, int, int]:
    """Three numbers in 0..255 (truncated to int, as pixelmatch writes them)."""
    try:
        vals = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        vals = ()
    if len(vals) != 3 or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and _isfinite(v) and 0 <= v < 256 for v in vals
    ):
        raise ValueError(f"{fn}: {name} must be three numbers (R, G, B) in 0..255, got {value!r}")
    return tuple(int(v) for v in vals)  # type: ignore[return-value]


def check_bins(fn: str, bins: object) -> int:
    """``bins`` of a histogram: a positive integer (Python or NumPy integer)."""
    import operator

    try:
        b = operator.index(bins) if not isinstance(bins, bool) else None  # type: ignore[arg-type]
    except TypeError:
        b = None
    if b is None or b < 1:
        raise ValueError(f"{fn}: bins must be a positive integer, got {bins!r}")
    return int(b)


def check_value_range(fn: str, value_range: object) -> Union[None, str, Tuple[float, float]]:
    """``value_range`` of a histogram: ``None``, ``"minmax"`` or a finite ``(lo, hi)`` pair with ``lo < hi``."""
    if value_range is None:
        return None
    if isinstance(value_range, str):
        if value_range == "minmax":
            return value_range
        raise ValueError(f"{fn}: value_range must be None, 'minmax' or a (lo, hi) pair, got {value_range!r}")
    if (
        not isinstance(value_range, (tuple, list))
        or len(value_range) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value_range)
    ):
        raise ValueError(
            f"{fn}: value_range must be None, 'minmax' or a (lo, hi) pair of numbers, got {_describe(value_range)}"
        )
    lo, hi = float(value_range[0]), float(value_range[1])
    if not (_isfinite(lo) and _isfinite(hi)):
        raise ValueError(f"{fn}: value_range must be finite, got {tuple(value_range)!r}")
    if lo >= hi:
        raise ValueError(f"{fn}: value_range must have lo < hi, got {tuple(value_range)!r}")
    return (lo, hi)


def check_options(owner: str, fn, options: dict) -> None:
    """Validate a module's or loss's stored keyword arguments for ``fn`` when it is built.

    Names must be keyword arguments of ``fn``; ``reduction``, ``kernel_size`` / ``sigma`` and a
    numeric ``data_range`` are checked now, so a typo fails at construction, not at the first
    batch. (Checks that need the images run in ``fn`` itself.)
    """
    import inspect

    params = inspect.signature(fn).parameters
    accepted = [p for p in params if p not in ("x", "y")]
    for name in options:
        if name not in accepted:
            raise TypeError(
                f"{owner}: unexpected keyword argument {name!r}; {fn.__name__}() accepts {', '.join(accepted)}"
            )
    if "reduction" in options:
        check_reduction(owner, options["reduction"])
    if "kernel_size" in options:
        check_kernel(owner, options["kernel_size"], options.get("sigma", 1.0))
    dr = options.get("data_range")
    if dr is not None and not isinstance(dr, torch.Tensor):
        if isinstance(dr, bool) or not isinstance(dr, (int, float)) or not _isfinite(dr) or dr <= 0:
            raise ValueError(f"{owner}: data_range must be a positive finite number or a tensor of shape (N,), got {dr!r}")
