"""Every user-facing input check and its message, in one place.

Each check raises ``ValueError`` or ``TypeError`` with a message of the form
``"<function>: <argument> must be <expected>, got <received>"``. Messages are
only formatted on the failing path, so the checks cost nothing under
``torch.compile`` beyond the comparisons themselves, and none of them reads
tensor *values* (no host-device synchronisation) except where noted.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch

Number = Union[int, float]
DataRange = Union[Number, torch.Tensor, None]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
from ._common import INTEGER_MAX
_REDUCTIONS = ("mean", "sum", "none")


def is_real(v: object) -> bool:
    """A real number: Python ``int``/``float``, a NumPy scalar (``np.float32(1.0)``) or a symbolic
    number of ``torch.compile(dynamic=True)``, never a bool."""
    if isinstance(v, (torch.SymFloat, torch.SymInt)):
        return True
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def is_integer(v: object) -> bool:
    """An integer: Python ``int``, a NumPy integer scalar or a symbolic ``torch.SymInt``, never a bool."""
    if isinstance(v, torch.SymInt):
        return True
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}, dtype {x.dtype} on {x.device}"
    shape = getattr(x, "shape", None)
    if shape is not None and hasattr(x, "dtype"):  # numpy arrays and the like: never their whole repr
        return f"{type(x).__name__} of shape {tuple(shape)}, dtype {x.dtype}"
    text = repr(x)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(x).__name__} {text}"


def integer_max(dtype: torch.dtype) -> Optional[float]:
    """The full-scale value of an integer image dtype (255 for uint8, 65535 for uint16), else None."""
    return INTEGER_MAX.get(dtype)


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
    if x.dtype not in _FLOAT_DTYPES and x.dtype not in INTEGER_MAX:
        raise TypeError(
            f"{fn}: {name} must have dtype float16, bfloat16, float32, float64, uint8 or uint16 "
            f"(uint8 is read as 0..255, uint16 as 0..65535), got {x.dtype}; convert other integer "
            f"images with x.float() (and pass data_range where the metric takes one)"
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
    if x.is_floating_point() != y.is_floating_point() or (not x.is_floating_point() and x.dtype != y.dtype):
        raise TypeError(
            f"{fn}: x and y must both be floating, both uint8 or both uint16, got {x.dtype} and "
            f"{y.dtype}; convert one of them (a uint8 image reaches the 16-bit scale as "
            f"x.to(torch.int32) * 257)"
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
        full = integer_max(x.dtype)
        if full is not None:
            return full
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
    if not is_real(data_range):
        raise TypeError(
            f"{fn}: data_range must be a positive finite number or a tensor of shape (N,), got {_describe(data_range)}"
        )
    if not _isfinite(data_range) or data_range <= 0:
        raise ValueError(f"{fn}: data_range must be positive and finite, got {data_range!r}")
    return float(data_range)


def check_kernel(fn: str, kernel_size: object, sigma: object = None, *, check_sigma: bool = False) -> int:
    """An odd positive ``kernel_size`` (returned as ``int``) and, when given or ``check_sigma``, a usable ``sigma``.

    ``sigma`` must be a positive finite number whose Gaussian window does not underflow
    (``2 sigma^2`` must be a normal float: below about 1e-154 every tap but the centre is 0/0).
    """
    if not is_integer(kernel_size) or kernel_size <= 0 or kernel_size % 2 == 0:
        raise ValueError(f"{fn}: kernel_size must be an odd positive integer, got {kernel_size!r}")
    if sigma is not None or check_sigma:
        check_sigma_value(fn, "sigma", sigma)
    return int(kernel_size)


def check_kernel_sizes(fn: str, kernel_size: object, spatial: int, *, allow_even: bool = False) -> Tuple[int, ...]:
    """``kernel_size`` as one window length per spatial axis: an int for every axis, or a sequence
    of ``spatial`` of them (``(k_H, k_W)`` or ``(k_D, k_H, k_W)``). Each must be odd and positive
    (any positive length with ``allow_even``: a uniform block window has no centre to keep)."""
    kind = "a positive integer" if allow_even else "an odd positive integer"

    def bad(k: object) -> bool:
        return not is_integer(k) or k <= 0 or (k % 2 == 0 and not allow_even)

    if isinstance(kernel_size, (tuple, list)):
        if len(kernel_size) != spatial or any(bad(k) for k in kernel_size):
            raise ValueError(
                f"{fn}: kernel_size must be {kind} or a sequence of {spatial} of them (one per spatial axis), "
                f"got {kernel_size!r}"
            )
        return tuple(int(k) for k in kernel_size)
    if bad(kernel_size):
        hint = "" if allow_even else " (even sizes only for a uniform window, gaussian=False)"
        raise ValueError(f"{fn}: kernel_size must be {kind}, got {kernel_size!r}{hint if is_integer(kernel_size) and kernel_size > 0 else ''}")
    return (int(kernel_size),) * spatial


def check_sigmas(fn: str, sigma: object, spatial: int) -> Tuple[float, ...]:
    """``sigma`` as one Gaussian standard deviation per spatial axis (a number or a sequence of ``spatial``)."""
    if isinstance(sigma, (tuple, list)):
        if len(sigma) != spatial:
            raise ValueError(
                f"{fn}: sigma must be a number or a sequence of {spatial} (one per spatial axis), got {sigma!r}"
            )
        return tuple(check_sigma_value(fn, "sigma", s) for s in sigma)
    return (check_sigma_value(fn, "sigma", sigma),) * spatial


def check_sigma_value(fn: str, name: str, sigma: object) -> float:
    """A Gaussian standard deviation: positive, finite, and large enough that ``2 sigma^2 > 0``."""
    if not is_real(sigma) or not _isfinite(sigma) or sigma <= 0:
        raise ValueError(f"{fn}: {name} must be a positive finite number, got {_describe(sigma)}")
    if 2.0 * float(sigma) ** 2 < 2.2250738585072014e-308:
        raise ValueError(
            f"{fn}: {name} must be at least 1e-150 (a smaller Gaussian underflows to 0/0), got {sigma!r}; "
            f"for no smoothing use a kernel_size of 1"
        )
    return float(sigma)


#: ``padding`` of the SSIM family: valid windows only, or a same-size map padded in one of these modes
SSIM_PADDINGS = ("valid", "symmetric", "reflect", "zero", "replicate")
#: ``channel_mean`` of MS-SSIM: channels averaged after the product over scales, or first
CHANNEL_MEANS = ("last", "first")
#: ``downsample`` of SSIM (``True`` is ``"matlab"``)
DOWNSAMPLES = ("matlab", "avg_pool")


def check_downsample(fn: str, value: object) -> Optional[str]:
    """SSIM's ``downsample``: ``False`` (none), ``True`` or ``"matlab"``, or ``"avg_pool"``; the mode or None."""
    if value is False or (type(value).__name__ == "bool_" and not value):
        return None
    if value is True or (type(value).__name__ == "bool_" and value):
        return "matlab"
    if isinstance(value, str) and value in DOWNSAMPLES:
        return value
    raise ValueError(f"{fn}: downsample must be False, True, 'matlab' or 'avg_pool', got {_describe(value)}")


def check_bool(fn: str, name: str, value: object) -> bool:
    """A flag: ``True`` or ``False`` (or a NumPy bool), never a string or number."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"{fn}: {name} must be True or False, got {_describe(value)}")
    return bool(value)


def check_weights(fn: str, weights: object) -> Tuple[float, ...]:
    """MS-SSIM scale weights: a 1-D sequence (or 1-D tensor / array) of finite numbers >= 0, not all 0."""
    if isinstance(weights, (str, bytes)) or isinstance(weights, dict):
        raise TypeError(f"{fn}: weights must be a sequence of numbers, got {_describe(weights)}")
    if isinstance(weights, torch.Tensor) or hasattr(weights, "ndim"):
        if getattr(weights, "ndim", 1) != 1:
            raise ValueError(f"{fn}: weights must be 1-D (one weight per scale), got {_describe(weights)}")
        values = [float(w) for w in weights.tolist()]  # type: ignore[union-attr]
    else:
        try:
            items = list(weights)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(f"{fn}: weights must be a sequence of numbers, got {_describe(weights)}") from None
        if not all(is_real(w) for w in items):
            raise TypeError(f"{fn}: weights must be a sequence of numbers, got {_describe(weights)}")
        values = [float(w) for w in items]
    if not values:
        raise ValueError(f"{fn}: weights must hold at least one scale weight, got {_describe(weights)}")
    if not all(_isfinite(w) and w >= 0 for w in values) or sum(values) <= 0:
        raise ValueError(f"{fn}: weights must be finite numbers >= 0, not all zero, got {values!r}")
    return tuple(values)


def device_memory_bytes(device: torch.device) -> int:
    """Total memory of ``device`` (physical RAM for the CPU), used to refuse hopeless allocations."""
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 1 << 40


def check_allocation(fn: str, name: str, what: str, nbytes: float, device: torch.device) -> None:
    """Refuse an option (``bins``, ``hash_size``, ...) whose buffers could never fit in ``device``'s memory.

    ``what`` describes the request (``"l1_sigma=1e7"``); the message gives the size it would need.
    Not checked while ``torch.compile`` / ``torch.export`` trace: the sizes may be symbolic, and a
    guard on them would bound the batch size of the compiled or exported graph.
    """
    if torch.compiler.is_compiling():
        return
    limit = device_memory_bytes(device)
    if nbytes > limit:
        raise ValueError(
            f"{fn}: {what} would need {nbytes / 2**30:.1f} GiB for one buffer, more than the "
            f"{limit / 2**30:.1f} GiB of memory on {device}; use a smaller {name}"
        )


def check_window_fits(fn: str, shape: Sequence[int], kernel_size: Union[int, Sequence[int]], what: str = "kernel_size") -> None:
    """The image (spatial dims of ``shape``) must hold at least one full window (one length per axis or for all)."""
    spatial = tuple(shape[2:])
    if not isinstance(kernel_size, int):
        sizes = tuple(kernel_size)
        if len(set(sizes)) > 1:
            if any(s < k for s, k in zip(spatial, sizes)):
                raise ValueError(
                    f"{fn}: every spatial dimension must be at least its {what} {sizes}, got spatial size "
                    f"{spatial}; pass smaller kernel sizes or a larger image"
                )
            return
        kernel_size = sizes[0]
    if min(spatial) < kernel_size:
        raise ValueError(
            f"{fn}: every spatial dimension must be at least {what}={kernel_size}, got "
            f"spatial size {spatial}; pass a smaller odd kernel_size or a larger image"
        )


def ms_ssim_min_side(kernel_size: Union[int, Sequence[int]], scales: int, pooling: str = "zero") -> int:
    """Smallest spatial side MS-SSIM accepts: the window still fits the coarsest of ``scales`` scales.

    Each scale halves the side, rounding up (``(kernel_size - 1) * 2**(scales - 1) + 1``, 161
    for the defaults) or, with ``pooling="floor"``, down (``kernel_size * 2**(scales - 1)``).
    With one kernel size per axis, the largest. :mod:`torchsim.registry` gives it to callers
    as ``min_size``.
    """
    k = kernel_size if isinstance(kernel_size, int) else max(kernel_size)
    if pooling == "floor":
        return k * 2 ** (scales - 1)
    return (k - 1) * 2 ** (scales - 1) + 1


def check_scales_fit(fn: str, shape: Sequence[int], kernel_size: Union[int, Sequence[int]], scales: int, pooling: str = "zero") -> None:
    sizes = (kernel_size,) * (len(shape) - 2) if isinstance(kernel_size, int) else tuple(kernel_size)
    short = [
        (s, ms_ssim_min_side(k, scales, pooling)) for s, k in zip(shape[2:], sizes) if s < ms_ssim_min_side(k, scales, pooling)
    ]
    if short:
        min_side = max(need for _, need in short)
        k = sizes[0] if len(set(sizes)) == 1 else sizes
        rule = f"kernel_size * 2**{scales - 1}" if pooling == "floor" else f"(kernel_size - 1) * 2**{scales - 1} + 1"
        raise ValueError(
            f"{fn}: every spatial dimension must be at least {min_side} for kernel_size={k} "
            f"and {scales} scales ({rule}), got spatial size "
            f"{tuple(shape[2:])}; use a smaller kernel_size, fewer weights, or ssim()"
        )


def check_positive(fn: str, name: str, value: object, integer: bool = False, allow_zero: bool = False) -> None:
    ok_type = is_integer(value) if integer else is_real(value)
    if not ok_type or not _isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "integer" if integer else "number"
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{fn}: {name} must be a finite {kind} {bound}, got {value!r}")


def check_channels(fn: str, name: str, x: torch.Tensor, allowed: Sequence[int]) -> None:
    if x.shape[1] not in allowed:
        opts = " or ".join(str(a) for a in allowed)
        raise ValueError(f"{fn}: {name} must have {opts} channels (dim 1), got shape {tuple(x.shape)}")


def check_int_at_least(fn: str, name: str, value: object, minimum: int) -> int:
    """An integer option with a lower bound (e.g. ``hash_size >= 2``)."""
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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
    if not is_real(value) or not _isfinite(value) or not 0 <= value <= 1:
        raise ValueError(f"{fn}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_in_range(fn: str, name: str, value: object, lo: float, hi: float) -> float:
    """A finite number in ``[lo, hi]`` (``diff_regions``' ``min_ssim`` in [-1, 1])."""
    if not is_real(value) or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"{fn}: {name} must be a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def check_rgb_color(fn: str, name: str, value: object) -> Tuple[int, int, int]:
    """Three numbers in 0..255 (truncated to int, as pixelmatch writes them)."""
    try:
        vals = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        vals = ()
    if len(vals) != 3 or not all(
        is_real(v) and _isfinite(v) and 0 <= v < 256 for v in vals
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
        or not all(is_real(v) for v in value_range)
    ):
        raise ValueError(
            f"{fn}: value_range must be None, 'minmax' or a (lo, hi) pair of numbers, got {_describe(value_range)}"
        )
    lo, hi = float(value_range[0]), float(value_range[1])
    if not (_isfinite(lo) and _isfinite(hi)):
        raise ValueError(f"{fn}: value_range must be finite, got {tuple(value_range)!r}")
    if lo >= hi:
        raise ValueError(f"{fn}: value_range must have lo < hi, got {tuple(value_range)!r}")
    if not _isfinite(hi - lo):
        raise ValueError(
            f"{fn}: value_range must have a finite width hi - lo (below about 1.8e308), got {tuple(value_range)!r}"
        )
    return (lo, hi)


def check_histogram_args(
    fn: str, bins: object, value_range: object, bandwidth: object
) -> Tuple[int, Union[None, str, Tuple[float, float]], float]:
    """The binning options shared by the histogram, MI and NMI functions: ``(bins, value_range, bandwidth)``."""
    b = check_bins(fn, bins)
    vr = check_value_range(fn, value_range)
    check_positive(fn, "bandwidth", bandwidth, allow_zero=True)
    return b, vr, float(bandwidth)  # type: ignore[arg-type]


def check_options(owner: str, fn, options: dict) -> None:
    """Validate a module's or loss's stored keyword arguments for ``fn`` when it is built.

    Names must be keyword arguments of ``fn``; ``reduction``, ``kernel_size`` / ``sigma``, a
    numeric ``data_range``, ``alpha`` and ``l1_sigma`` are checked now, so a typo fails at
    construction, not at the first batch. (Checks that need the images run in ``fn`` itself.)
    """
    import inspect

    params = inspect.signature(fn).parameters
    accepted = [p for p in params if p not in ("x", "y")]
    for name in options:
        if name not in accepted:
            raise TypeError(
                f"{owner}: unexpected keyword argument {name!r}; {fn.__name__}() accepts {', '.join(accepted)}"
            )
    from .ops.filters import HALVING_MODES

    if "reduction" in options:
        check_reduction(owner, options["reduction"])
    if "kernel_size" in options:
        ks = options["kernel_size"]
        spatial = len(ks) if isinstance(ks, (tuple, list)) and len(ks) in (2, 3) else 2
        check_kernel_sizes(owner, ks, spatial, allow_even=options.get("gaussian", True) is False)
    if "sigma" in options:
        sg = options["sigma"]
        check_sigmas(owner, sg, len(sg) if isinstance(sg, (tuple, list)) and len(sg) in (2, 3) else 2)
    for flag in ("gaussian", "sample_covariance", "return_map", "pooled", "y_round"):
        if flag in options:
            check_bool(owner, flag, options[flag])
    if "downsample" in options:
        check_downsample(owner, options["downsample"])
    if "padding" in options:
        check_choice(owner, "padding", options["padding"], SSIM_PADDINGS)
    if "pooling" in options:
        check_choice(owner, "pooling", options["pooling"], HALVING_MODES)
    if "channel_mean" in options:
        check_choice(owner, "channel_mean", options["channel_mean"], CHANNEL_MEANS)
    if "stride" in options:
        check_int_at_least(owner, "stride", options["stride"], 1)
    if options.get("max_db") is not None:
        check_positive(owner, "max_db", options["max_db"])
    if "eps" in options:
        check_positive(owner, "eps", options["eps"], allow_zero=True)
    if options.get("convention") is not None:
        from .conventions import settings

        settings(owner, fn.__name__, options["convention"])
    for k in ("k1", "k2"):
        if k in options:
            check_positive(owner, k, options[k])
    if "weights" in options:
        check_weights(owner, options["weights"])
    if "bins" in options:
        check_bins(owner, options["bins"])
    if "value_range" in options:
        check_value_range(owner, options["value_range"])
    if "bandwidth" in options:
        check_positive(owner, "bandwidth", options["bandwidth"], allow_zero=True)
    if "alpha" in options:
        check_unit_interval(owner, "alpha", options["alpha"])
    if "l1_sigma" in options:
        check_sigma_value(owner, "l1_sigma", options["l1_sigma"])
    dr = options.get("data_range")
    if dr is not None and not isinstance(dr, torch.Tensor):
        if not is_real(dr) or not _isfinite(dr) or dr <= 0:
            raise ValueError(
                f"{owner}: data_range must be a positive finite number or a tensor of shape (N,), got {_describe(dr)}"
            )


_MASK_FORMS = "a bool tensor (N, 1, H, W) (True = ignore) or a list of rectangles [(x0, y0, x1, y1), ...]"


def check_mask(fn: str, mask: object, x: torch.Tensor, name: str = "mask") -> Optional[torch.Tensor]:
    """Pixels to ignore in the images ``x`` ``(N, C, H, W)``: ``None`` or a bool tensor ``(N, 1, H, W)``.

    ``mask`` is ``None``; a bool tensor ``(N, 1, H, W)`` (``(N, 1, D, H, W)`` for volumes),
    True where pixels are ignored (same device as ``x``); or, for images, rectangles ``(x0, y0, x1, y1)`` in pixels
    (``x1``, ``y1`` exclusive, as ``diff_regions`` returns them) ignored in every
    image, given as a list or an integer tensor ``(K, 4)``. An empty list ignores
    nothing (``None``). Reads the values of a rectangle tensor (one host sync).
    """
    import operator

    if mask is None:
        return None
    if isinstance(mask, torch.Tensor) and mask.dtype == torch.bool:
        want = (x.shape[0], 1, *x.shape[2:])  # (N, 1, H, W), or (N, 1, D, H, W) for volumes
        if tuple(mask.shape) != want:
            dims = "(N, 1, H, W)" if x.dim() == 4 else "(N, 1, D, H, W)"
            raise ValueError(f"{fn}: {name} must have shape {dims} = {want} like the images, got {tuple(mask.shape)}")
        if mask.device != x.device:
            raise ValueError(f"{fn}: {name} must be on the images' device {x.device}, got {mask.device}")
        return mask
    if x.dim() != 4:
        raise TypeError(f"{fn}: {name} of volumes must be a bool tensor (N, 1, D, H, W) (rectangles are for images), got {_describe(mask)}")
    n, _, h, w = x.shape
    if isinstance(mask, torch.Tensor):
        if mask.dtype.is_floating_point or mask.dtype.is_complex or mask.dim() != 2 or mask.shape[1] != 4:
            raise TypeError(f"{fn}: {name} must be {_MASK_FORMS}, got {_describe(mask)}; convert a 0/1 mask with mask > 0")
        mask = mask.tolist()
    if not isinstance(mask, (list, tuple)):
        raise TypeError(f"{fn}: {name} must be {_MASK_FORMS}, got {_describe(mask)}")
    rects = []
    for i, r in enumerate(mask):
        try:
            vals = [operator.index(v) if not isinstance(v, bool) else None for v in r]  # type: ignore[union-attr]
        except TypeError:
            vals = []
        if len(vals) != 4 or None in vals:
            hint = "; wrap a single rectangle in a list: [(x0, y0, x1, y1)]" if not isinstance(r, (list, tuple, torch.Tensor)) else ""
            raise ValueError(f"{fn}: {name} rectangle {i} must be four integers (x0, y0, x1, y1), got {r!r}{hint}")
        x0, y0, x1, y1 = vals
        if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
            raise ValueError(
                f"{fn}: {name} rectangle {i} must satisfy 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} "
                f"(x1, y1 exclusive), got {tuple(vals)}"
            )
        rects.append(vals)
    if not rects:
        return None
    m = torch.zeros((h, w), dtype=torch.bool, device=x.device)
    for x0, y0, x1, y1 in rects:
        m[y0:y1, x0:x1] = True
    return m.expand(n, 1, h, w)
