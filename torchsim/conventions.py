"""Published SSIM, MS-SSIM and PSNR conventions by name: presets of torchsim's own arguments.

"Why does library X give a different number from library Y?" Because each publishes its
own convention: a different window, border, covariance estimate, downsampling, channel
handling or cap. Every convention below is a preset of arguments torchsim's functions
already take, so ``ssim(x, y, data_range=1.0, convention="torchmetrics")`` is
``ssim(x, y, data_range=1.0, padding="reflect")`` and nothing else. A preset only changes
the defaults: any argument the caller passes explicitly wins over it.

API::

    from torchsim import conventions

    conventions.names()               # every convention, in the order of the table below
    conventions.names("ms_ssim")      # those that publish an MS-SSIM
    conventions.get("piq")            # a Convention record: .settings, .references, .differs
    conventions.settings("ssim", "ssim", "piq")   # {"downsample": "avg_pool"}

``None`` (the default of every ``convention=`` argument) is ``"wang"``: the defaults.
The table (also in the README) is generated from :data:`CONVENTIONS` by
:func:`markdown_table`; ``docs/AGREEMENT.md`` shows how closely each preset equals
its reference on real photographs.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar

__all__ = ["Convention", "CONVENTIONS", "METRICS", "get", "names", "settings", "presets", "markdown_table"]

#: the functions that take ``convention=``
METRICS = ("ssim", "ms_ssim", "psnr")

# ffmpeg's ssim filter (libavfilter/vf_ssim.c, after x264) works on integer sums over 8x8 blocks
# of 8-bit pixels, n = 64: ssim_c1 = (int)(.01*.01*255*255*64 + .5) = 416 and ssim_c2 =
# (int)(.03*.03*255*255*64*63 + .5) = 235963 against n^2 = 4096 times the means and n (n - 1)
# times the sample (co)variances. In SSIM's own terms: a sample covariance with C2 = 235963 / 4032
# (Wang's, rounded) and C1 = 416 / 4096 on the 0..255 scale, 64 times smaller than Wang's.
_FFMPEG_C1 = int(0.01 * 0.01 * 255 * 255 * 64 + 0.5)
_FFMPEG_C2 = int(0.03 * 0.03 * 255 * 255 * 64 * 63 + 0.5)
_FFMPEG_K1 = math.sqrt(_FFMPEG_C1 / 64**2) / 255
_FFMPEG_K2 = math.sqrt(_FFMPEG_C2 / (64 * 63)) / 255


@dataclass(frozen=True)
class Convention:
    """One published convention: what it sets per metric and which reference it reproduces.

    Attributes:
        name: the name passed as ``convention=``.
        title: the project or document it comes from.
        settings: per metric (``"ssim"``, ``"ms_ssim"``, ``"psnr"``) the arguments the preset
            sets; a metric the convention does not publish is absent.
        references: per metric, the reference call the preset equals.
        differs: one line on how this convention's numbers differ from the default ones
            (window, border, covariance, downsampling, channels, data range).
        notes: per metric, a remark on calling the reference (optional).
    """

    name: str
    title: str
    settings: Mapping[str, Mapping[str, Any]]
    references: Mapping[str, str]
    differs: str
    notes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = (set(self.settings) | set(self.references)) - set(METRICS)
        if unknown or set(self.settings) != set(self.references):
            raise ValueError(f"Convention {self.name!r}: settings and references must name the same metrics of {METRICS}")
        frozen = {m: MappingProxyType(dict(s)) for m, s in self.settings.items()}
        object.__setattr__(self, "settings", MappingProxyType(frozen))
        object.__setattr__(self, "references", MappingProxyType(dict(self.references)))
        object.__setattr__(self, "notes", MappingProxyType(dict(self.notes)))


_SKIMAGE_PSNR = "skimage.metrics.peak_signal_noise_ratio(x, y, data_range=L)"

_TABLE = (
    Convention(
        name="wang",
        title="Wang et al. 2004 / scikit-image Gaussian / pytorch-msssim (the defaults)",
        settings={"ssim": {}, "ms_ssim": {}, "psnr": {}},
        references={
            "ssim": (
                "skimage.metrics.structural_similarity(x, y, data_range=L, gaussian_weights=True, sigma=1.5, "
                "use_sample_covariance=False)"
            ),
            "ms_ssim": "pytorch_msssim.ms_ssim(x, y, data_range=L, size_average=False)",
            "psnr": _SKIMAGE_PSNR,
        },
        differs=(
            "Gaussian 11x11, sigma 1.5, population (co)variances, mean over the valid region (no padding), "
            "channels scored separately and averaged; MS-SSIM halves odd sides with one counted zero; "
            "PSNR per image, +inf for identical images"
        ),
    ),
    Convention(
        name="skimage",
        title="scikit-image structural_similarity defaults",
        settings={"ssim": {"gaussian": False, "kernel_size": 7, "sample_covariance": True}, "psnr": {}},
        references={
            "ssim": "skimage.metrics.structural_similarity(x, y, data_range=L, channel_axis=0)",
            "psnr": _SKIMAGE_PSNR,
        },
        differs=(
            "uniform 7x7 window and sample (co)variances (n / (n - 1)); its full=True map is the "
            "symmetric-padded same-size map (padding='symmetric'), but its mean is over the valid region"
        ),
    ),
    Convention(
        name="matlab",
        title="Wang's reference ssim.m (2009) and MATLAB psnr",
        settings={"ssim": {"downsample": "matlab"}, "psnr": {}},
        references={
            "ssim": "ssim.m (Z. Wang), transcribed in NumPy: f = max(1, round(min(M, N) / 256)) box filter and subsampling",
            "psnr": "MATLAB psnr(x, y, L) = 10 log10(L^2 / mean((x - y)^2))",
        },
        differs=(
            "first an f x f mean filter (symmetric border) and every f-th pixel, f = round(min(H, W) / 256) "
            "rounded half away from zero; MATLAB's uint8 rgb2ycbcr rounds Y (rgb_to_y(..., y_round=True))"
        ),
    ),
    Convention(
        name="basicsr",
        title="BasicSR calculate_ssim / calculate_psnr (the super-resolution benchmark code)",
        settings={"ssim": {}, "psnr": {}},
        references={
            "ssim": "basicsr.metrics.calculate_ssim(img, img2, crop_border=0), transcribed (cv2 Gaussian, [5:-5] crop)",
            "psnr": "basicsr.metrics.calculate_psnr(img, img2, crop_border=0) = 10 log10(255^2 / mse)",
        },
        differs=(
            "the defaults on 0..255 images (data_range=255); papers add test_y_channel (rgb_to_y, float, "
            "unrounded Y) and crop_border (torchsim score --y-channel --crop-border N)"
        ),
    ),
    Convention(
        name="pytorch_msssim",
        title="pytorch-msssim (VainF)",
        settings={"ssim": {}, "ms_ssim": {}},
        references={
            "ssim": "pytorch_msssim.ssim(x, y, data_range=L, size_average=False)",
            "ms_ssim": "pytorch_msssim.ms_ssim(x, y, data_range=L, size_average=False)",
        },
        differs="the defaults; its window is built in float32, so float64 agrees to float32 precision",
    ),
    Convention(
        name="piq",
        title="piq (PyTorch Image Quality)",
        settings={"ssim": {"downsample": "avg_pool"}, "ms_ssim": {"pooling": "replicate_start"}, "psnr": {"eps": 1e-8}},
        references={
            "ssim": "piq.ssim(x, y, data_range=L, reduction='none')  (downsample=True, its default)",
            "ms_ssim": "piq.multi_scale_ssim(x, y, data_range=L, reduction='none')",
            "psnr": "piq.psnr(x, y, data_range=L, reduction='none')",
        },
        differs=(
            "SSIM first average-pools f x f blocks (f = round(min(H, W) / 256), Python's half-to-even "
            "rounding, remainder dropped); MS-SSIM repeats the first row and column on every axis "
            "when any side is odd; PSNR adds 1e-8 to the MSE in units of L^2 (80 dB for identical images)"
        ),
    ),
    Convention(
        name="torchmetrics",
        title="torchmetrics (Lightning AI)",
        settings={
            "ssim": {"padding": "reflect"},
            "ms_ssim": {"pooling": "floor", "channel_mean": "first", "padding": "reflect"},
            "psnr": {"pooled": True},
        },
        references={
            "ssim": "torchmetrics.functional.image.structural_similarity_index_measure(x, y, data_range=L, reduction='none')",
            "ms_ssim": (
                "torchmetrics.functional.image.multiscale_structural_similarity_index_measure"
                "(x, y, data_range=L, reduction='none')"
            ),
            "psnr": "torchmetrics.functional.image.peak_signal_noise_ratio(x, y, data_range=L)",
        },
        differs=(
            "reflect-padded same-size SSIM map averaged in full (border windows count); the Gaussian's "
            "taps come from sigma (2 int(3.5 sigma + 0.5) + 1 = 11 for 1.5), variances clamped at 0; "
            "MS-SSIM drops odd rows, averages channels before the product and takes the coarsest SSIM "
            "from the padded map; PSNR of the batch's pooled MSE"
        ),
        notes={"ssim": "its data_range=None infers max - min from the data; pass data_range"},
    ),
    Convention(
        name="kornia",
        title="kornia.metrics.ssim / psnr",
        settings={"ssim": {"padding": "reflect"}, "psnr": {"pooled": True}},
        references={
            "ssim": "kornia.metrics.ssim(x, y, 11, max_val=L, eps=0.0).mean((1, 2, 3))",
            "psnr": "kornia.metrics.psnr(x, y, max_val=L)",
        },
        differs=(
            "reflect-padded same-size map, averaged in full (as torchmetrics); its default eps=1e-12 in the "
            "denominator moves dark flat windows (up to ~1e-6 at L = 1); PSNR of the batch's pooled MSE"
        ),
    ),
    Convention(
        name="monai",
        title="MONAI SSIMMetric / MultiScaleSSIMMetric / PSNRMetric",
        settings={"ssim": {}, "ms_ssim": {"pooling": "floor", "channel_mean": "first"}, "psnr": {}},
        references={
            "ssim": "monai.metrics.SSIMMetric(spatial_dims=2, data_range=L, reduction='none')(x, y)",
            "ms_ssim": "monai.metrics.MultiScaleSSIMMetric(spatial_dims=2, data_range=L, reduction='none')(x, y)",
            "psnr": "monai.metrics.PSNRMetric(max_val=L, reduction='none')(x, y)",
        },
        differs=(
            "the default SSIM, always computed in float32; MS-SSIM drops odd rows and averages channels "
            "before the product over scales"
        ),
    ),
    Convention(
        name="tensorflow",
        title="TensorFlow tf.image.ssim / ssim_multiscale / psnr",
        settings={"ssim": {}, "ms_ssim": {"pooling": "symmetric_end"}, "psnr": {}},
        references={
            "ssim": "tf.image.ssim(x, y, max_val=L)  (NHWC)",
            "ms_ssim": "tf.image.ssim_multiscale(x, y, max_val=L)",
            "psnr": "tf.image.psnr(x, y, max_val=L)",
        },
        differs=(
            "the default SSIM in float32 (its Gaussian is a softmax of squared distances); MS-SSIM repeats "
            "the last row / column of odd sides before pooling"
        ),
    ),
    Convention(
        name="ffmpeg",
        title="FFmpeg's ssim and psnr filters (libavfilter vf_ssim.c, after x264)",
        settings={
            "ssim": {
                "kernel_size": 8,
                "gaussian": False,
                "stride": 4,
                "sample_covariance": True,
                "k1": _FFMPEG_K1,
                "k2": _FFMPEG_K2,
            },
            "psnr": {},
        },
        references={
            "ssim": "ffmpeg -i x.png -i y.png -lavfi ssim  (gray / Y plane, 8-bit)",
            "psnr": "ffmpeg -i x.png -i y.png -lavfi psnr",
        },
        differs=(
            "8x8 uniform blocks every 4 pixels (overlapping by half), sample covariance, C1 64 times "
            "smaller than Wang's (x264's integer constants); planes of different size are weighted by area"
        ),
        notes={"ssim": "k1 = sqrt(416 / 64^2) / 255, k2 = sqrt(235963 / (64 * 63)) / 255 (x264's integer constants)"},
    ),
    Convention(
        name="libvmaf",
        title="libvmaf's psnr feature (VMAF)",
        settings={"psnr": {"max_db": 60.0}},
        references={"psnr": "libvmaf psnr: min(10 log10(peak^2 / mse), 6 N + 12) for N-bit video (60 dB at 8 bits)"},
        differs="PSNR clamped at 6N + 12 dB for N-bit video: 60 dB for 8-bit (pass max_db=72.0 for 10-bit)",
    ),
)

#: every convention by name, in table order (read-only)
CONVENTIONS: Mapping[str, Convention] = MappingProxyType({c.name: c for c in _TABLE})


def names(metric: Optional[str] = None) -> List[str]:
    """Names of the conventions (those that publish ``metric`` when given), in table order."""
    return [c.name for c in _TABLE if metric is None or metric in c.settings]


def get(name: str) -> Convention:
    """The :class:`Convention` called ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    try:
        return CONVENTIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"torchsim.conventions: unknown convention {name!r}; known: {', '.join(CONVENTIONS)}") from None


def settings(fn: str, metric: str, convention: object) -> Mapping[str, Any]:
    """The arguments ``convention`` sets for ``metric`` (empty for ``None``), checked.

    Raises:
        ValueError: naming ``fn``: an unknown convention (listing the known ones), or one that
            does not publish ``metric`` (listing those that do).
    """
    if convention is None:
        return MappingProxyType({})
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        known = ", ".join(repr(n) for n in names(metric))
        raise ValueError(f"{fn}: convention must be None or one of {known}, got {convention!r}")
    found = CONVENTIONS[convention].settings.get(metric)
    if found is None:
        known = ", ".join(repr(n) for n in names(metric))
        raise ValueError(
            f"{fn}: convention {convention!r} publishes no {metric} (only {', '.join(CONVENTIONS[convention].settings)}); "
            f"conventions with {metric}: {known}"
        )
    return found


F = TypeVar("F", bound=Callable[..., Any])


def presets(metric: str) -> Callable[[F], F]:
    """Decorate ``metric``'s function so that ``convention=`` fills in the arguments not passed.

    The wrapper merges the preset under the caller's keyword arguments (explicit ones win) and
    calls the function; the signature, docstring and defaults shown are the function's own.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(x, y, **kwargs):
            convention = kwargs.get("convention")
            if convention is not None:
                kwargs = {**settings(metric, metric, convention), **kwargs}
            return fn(x, y, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _value(v: Any) -> str:
    return f"{v:.6g}" if isinstance(v, float) else repr(v)


def markdown_table(metric: Optional[str] = None) -> str:
    """The conventions as a Markdown table: name, what each metric's preset sets, how it differs.

    Example:
        >>> from torchsim import conventions
        >>> print(conventions.markdown_table().splitlines()[0])
        | convention | `ssim` | `ms_ssim` | `psnr` | how its numbers differ |
    """
    metrics = METRICS if metric is None else (metric,)
    head = "| convention | " + " | ".join(f"`{m}`" for m in metrics) + " | how its numbers differ |"
    rows = [head, "|" + "---|" * (len(metrics) + 2)]
    for c in _TABLE:
        cells = []
        for m in metrics:
            s = c.settings.get(m)
            if s is None:
                cells.append("—")
            elif not s:
                cells.append("defaults")
            else:
                cells.append(", ".join(f"`{k}={_value(v)}`" for k, v in s.items()))
        rows.append(f"| `{c.name}` | " + " | ".join(cells) + f" | {c.differs} |")
    return "\n".join(rows)


def resolve(fn: str, metric: str, options: Dict[str, Any], defaults: Mapping[str, Any], unset: object) -> Dict[str, Any]:
    """Every option of ``metric``: the caller's (values other than ``unset``), else the preset's, else the default.

    Used by the metric modules and losses, whose constructors see every option, and by the
    registry's ``min_size``; errors name ``fn``.
    """
    explicit = {k: v for k, v in options.items() if v is not unset}
    preset = settings(fn, metric, explicit.get("convention")) if metric in METRICS else {}
    resolved = {k: explicit[k] if k in explicit else preset.get(k, d) for k, d in defaults.items()}
    resolved.update((k, v) for k, v in explicit.items() if k not in defaults)  # unknown names: reported by the caller's checks
    return resolved
