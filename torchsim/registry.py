"""The metric registry: one record per metric, the one description every caller reads.

A record says what a caller needs to know about a metric without reading its code:
its function, its module and loss classes, whether it needs ``data_range``, the
smallest image it accepts for given options, whether it is differentiable, which
way is better, what kind of result it returns and which reference it equals.
The command line, the benchmarks and the parametrised tests read it instead of
keeping lists of their own.

API::

    from torchsim import registry

    rec = registry.get("ms_ssim")       # a MetricRecord; an unknown name is a ValueError listing the known ones
    rec.function                        # torchsim.ms_ssim
    rec.module, rec.loss                # torchsim.MSSSIM, torchsim.MSSSIMLoss (None where the metric has none)
    rec.options                         # {"data_range": None, "kernel_size": 11, ...}: keyword options and defaults
    rec.min_size(kernel_size=7)         # smallest spatial side for these options (others at their defaults): 97
    rec.needs_data_range                # True: floating input without data_range is a TypeError
    rec.differentiable, rec.grad_options  # True, {}: gradients with these options (soft histograms: bandwidth=1.0)
    rec.higher_is_better                # True (None for hashes and regions)
    rec.kind                            # "score" | "count" | "hash" | "regions" | "pooled" (see KINDS)
    rec.pooling                         # a "pooled" record's Pooling (psnr_pooled: torchmetrics' PSNR), else None
    rec.label, rec.reference            # "MS-SSIM", "pytorch_msssim.ms_ssim(...)"
    rec.conventions                     # ["wang", "pytorch_msssim", "piq", ...]: names it takes as convention=

    registry.names()                    # every name, in registration order
    registry.names(kind="score", has_module=True)   # filtered: also differentiable=, needs_data_range=, has_loss=
    registry.records(kind="hash")       # the records themselves, same filters
    registry.REGISTRY                   # read-only {name: record} mapping (iterate, ``in``, ``len``)

Adding a metric (e.g. GMSD) takes three files: its function in ``functional/``
(exported from ``torchsim.functional``), one :class:`MetricRecord` in ``_RECORDS``
below, and its reference test. Naming a ``module`` and a ``loss`` in the record is
enough for :mod:`torchsim.modules` and :mod:`torchsim.losses` to generate
``torchsim.<Module>`` and ``torchsim.<Loss>`` — constructors with exactly the
function's keyword options and defaults, options checked when built, streaming
``update`` / ``compute`` / ``reset`` on the module — and to export them.
``tests/test_registry.py`` then checks the record against the function.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterable, List, Mapping, Optional, Union

from . import conventions  # torch-free, like this module

# No torch here: records name their functions, resolved on first use, so that
# ``import torchsim.registry`` (the command line's --help, its argument checks) stays light.

__all__ = ["MetricRecord", "Pooling", "KINDS", "REGISTRY", "get", "names", "records"]

#: What a record's function returns, per kind.
KINDS = MappingProxyType(
    {
        "score": "one float per image pair, (N,) with reduction='none' (a scalar mean by default)",
        "count": "one int64 count per image pair, (N,)",
        "hash": "one bool hash per image, (N, bits); compare two with torchsim.hamming_distance",
        "regions": "a list of N int64 (K, 4) boxes x0, y0, x1, y1 per image pair",
        "pooled": "one float for the whole batch: a per-image statistic pooled over every value (see Pooling)",
    }
)

#: the loss of a record is ``form(f(x, y))`` per image, then reduced
LOSS_FORMS = ("1 - f", "-f", "f")


# -- minimum spatial sizes: a rule receives every keyword option of the function -----------------


def _any_size(**options: Any) -> int:
    return 1


def _window_fits(*, kernel_size: Any, **options: Any) -> int:
    # ssim: the window fits the image (with downsample=True also for kernel_size < 384, where
    # an image of kernel_size pixels is not downsampled); diff_regions: the same check.
    return kernel_size if isinstance(kernel_size, int) else max(kernel_size)


def _scales_fit(*, kernel_size: Any, weights: Any, pooling: str = "zero", **options: Any) -> int:
    from ._validation import ms_ssim_min_side

    return ms_ssim_min_side(kernel_size, len(weights), pooling)


def _resolve(ref: Union[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A function given by its dotted name under :mod:`torchsim.functional` (``"ssim"``,
    ``"pixel.psnr_from_mse"``), imported on first use; a callable as it is."""
    if not isinstance(ref, str):
        return ref
    import importlib

    module, _, attr = ("functional." + ref).rpartition(".")
    return getattr(importlib.import_module(f"{__package__}.{module}"), attr)


class _Ref:
    """A dataclass field that may hold a function's dotted name (:func:`_resolve`), resolved and
    kept the first time it is read: plain attribute reads afterwards, which ``torch.compile`` traces."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_ref_" + name

    def __get__(self, obj: Any, objtype: Optional[type] = None) -> Any:
        if obj is None:  # the dataclass asks for a default: there is none
            raise AttributeError(self.slot)
        value = obj.__dict__[self.slot]
        if isinstance(value, str):
            value = obj.__dict__[self.slot] = _resolve(value)
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.slot] = value


@dataclass(frozen=True)
class Pooling:
    """How a ``"pooled"`` metric is built from per-image terms, and streamed.

    ``terms(x, y, **options)`` returns a per-image mean ``stat`` ``(N,)`` and the number
    ``n`` of values each image averages over (validating as the function does); the
    metric is ``finish(Σ n·stat / Σ n)`` over every image of the batch — or, in its
    module's streaming state, of every batch seen: the state is the float64 sum
    ``Σ n·stat`` and the count ``Σ n``. ``finish(stat)`` is each image's own value.
    """

    terms: Union[str, Callable[..., Any]] = _Ref()
    finish: Union[str, Callable[[Any], Any]] = _Ref()


@dataclass(frozen=True)
class MetricRecord:
    """Everything a caller needs to know about one metric (frozen; see the module docstring).

    Attributes:
        name: the function's name, ``torchsim.<name>``; the registry key.
        function: the public function (a record may give its name in :mod:`torchsim.functional`,
            imported on first use, so the registry itself imports no torch).
        kind: what it returns, a key of :data:`KINDS`.
        label: a short display name for tables (``"MS-SSIM"``).
        reference: the reference implementation it equals, with its flags.
        needs_data_range: floating input without ``data_range`` is a ``TypeError``.
        differentiable: autograd gives gradients, with ``grad_options`` set.
        higher_is_better: ``True`` for similarities, ``False`` for distances and counts
            (with the default options; ``None`` where there is no order: hashes, regions).
        grad_options: options the function needs for gradients (soft histograms); the
            loss class takes them as its defaults.
        module_name: name of the metric module class in :mod:`torchsim.modules`, or ``None``.
        loss_name: name of the loss class in :mod:`torchsim.losses`, or ``None``.
        loss_form: the loss per image from the function's value ``f``: ``"1 - f"``,
            ``"-f"`` or ``"f"`` (the function is a loss already).
        min_size_rule: smallest spatial side from the function's options (all passed,
            by keyword); call :meth:`min_size` instead.
        pooling: for kind ``"pooled"`` (and only then), its :class:`Pooling`: the module
            streams the pooled sums instead of the mean of per-image values.
    """

    name: str
    function: Union[str, Callable[..., Any]] = _Ref()
    kind: str
    label: str
    reference: str
    needs_data_range: bool = False
    differentiable: bool = False
    higher_is_better: Optional[bool] = None
    grad_options: Mapping[str, Any] = field(default_factory=dict)
    module_name: Optional[str] = None
    loss_name: Optional[str] = None
    loss_form: str = "1 - f"
    min_size_rule: Callable[..., int] = _any_size
    pooling: Optional[Pooling] = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"MetricRecord {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.kind == "pooled") != (self.pooling is not None):
            raise ValueError(f"MetricRecord {self.name!r}: pooling is required for kind 'pooled' and only for it")
        if self.loss_form not in LOSS_FORMS:
            raise ValueError(f"MetricRecord {self.name!r}: loss_form must be one of {LOSS_FORMS}, got {self.loss_form!r}")
        # grad_options must be options of the function: checked here for a function object, and
        # for every record (without importing torch at import time) by tests/test_registry.py
        named = isinstance(self.__dict__["_ref_function"], str)
        unknown = set() if named else set(self.grad_options) - set(self.options)
        if unknown:
            raise ValueError(f"MetricRecord {self.name!r}: grad_options {sorted(unknown)} are not options of {self.name}()")
        object.__setattr__(self, "grad_options", MappingProxyType(dict(self.grad_options)))

    @property
    def options(self) -> Mapping[str, Any]:
        """The function's keyword options and their defaults, in signature order."""
        params = inspect.signature(self.function).parameters.values()
        return MappingProxyType({p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY})

    def min_size(self, **options: Any) -> int:
        """Smallest spatial side (every side of H, W, D) the function accepts with these options.

        Options not given take the function's defaults; an unknown name is a ``TypeError``.
        """
        defaults = self.options
        unknown = set(options) - set(defaults)
        if unknown:
            raise TypeError(f"{self.name}: min_size() got unknown options {sorted(unknown)}; options: {', '.join(defaults)}")
        return self.min_size_rule(**conventions.resolve(self.name, self.name, options, defaults, None))

    @property
    def conventions(self) -> List[str]:
        """Names of the published conventions this metric takes as ``convention=`` (empty if none);
        see :mod:`torchsim.conventions`."""
        return conventions.names(self.name) if self.name in conventions.METRICS else []

    @property
    def module(self) -> Optional[type]:
        """The metric module class (``torchsim.modules.<module_name>``), or ``None``."""
        return _class("modules", self.module_name)

    @property
    def loss(self) -> Optional[type]:
        """The loss class (``torchsim.losses.<loss_name>``), or ``None``."""
        return _class("losses", self.loss_name)


def _class(where: str, name: Optional[str]) -> Optional[type]:
    # The classes are built from the records (torchsim.modules / losses import this module), so
    # a record names its classes and finds them once the package is imported.
    if name is None:
        return None
    from . import losses, modules

    return getattr(modules if where == "modules" else losses, name)


_HIST_REF = "cv2.compareHist(h1 / h1.sum(), h2 / h2.sum(), method) of cv2.calcHist histograms"

_RECORDS = (
    MetricRecord(
        name="mse", function="mse", kind="score", label="MSE",
        reference="skimage.metrics.mean_squared_error(x, y)",
        differentiable=True, higher_is_better=False, module_name="MSE",
    ),
    MetricRecord(
        name="psnr", function="psnr", kind="score", label="PSNR",
        reference="skimage.metrics.peak_signal_noise_ratio(x, y, data_range=L)",
        needs_data_range=True, differentiable=True, higher_is_better=True, module_name="PSNR",
    ),
    MetricRecord(
        name="ssim", function="ssim", kind="score", label="SSIM",
        reference=(
            "skimage.metrics.structural_similarity(x, y, gaussian_weights=True, sigma=1.5, "
            "use_sample_covariance=False, data_range=L); pytorch_msssim.ssim(x, y, data_range=L, size_average=False)"
        ),
        needs_data_range=True, differentiable=True, higher_is_better=True,
        module_name="SSIM", loss_name="SSIMLoss", min_size_rule=_window_fits,
    ),
    MetricRecord(
        name="ms_ssim", function="ms_ssim", kind="score", label="MS-SSIM",
        reference="pytorch_msssim.ms_ssim(x, y, data_range=L, size_average=False)",
        needs_data_range=True, differentiable=True, higher_is_better=True,
        module_name="MSSSIM", loss_name="MSSSIMLoss", min_size_rule=_scales_fit,
    ),
    MetricRecord(
        name="ms_ssim_l1", function="ms_ssim_l1", kind="score", label="MS-SSIM+L1",
        reference=(
            "Zhao et al. 2017: alpha * (1 - pytorch_msssim.ms_ssim(x, y)) + (1 - alpha) * "
            "mean(scipy.ndimage.gaussian_filter(|x - y|, l1_sigma, mode='reflect')) / L"
        ),
        needs_data_range=True, differentiable=True, higher_is_better=False,
        loss_name="MSSSIML1Loss", loss_form="f", min_size_rule=_scales_fit,
    ),
    MetricRecord(
        name="cosine_similarity", function="cosine_similarity", kind="score", label="cosine",
        reference="numpy.dot(a, b) / (numpy.linalg.norm(a) * numpy.linalg.norm(b)) per flattened image",
        differentiable=True, higher_is_better=True,
        module_name="CosineSimilarity", loss_name="CosineSimilarityLoss",
    ),
    MetricRecord(
        # any size: zero padding, as GMSD.m's conv2(..., 'same') (the default min_size_rule)
        name="gmsd", function="gmsd", kind="score", label="GMSD",
        reference=(
            "piq.gmsd(x, y, data_range=L, reduction='none'); Xue et al.'s GMSD.m on the same luma, "
            "with std2 over n instead of n - 1"
        ),
        needs_data_range=True, differentiable=True, higher_is_better=False,
        module_name="GMSD", loss_name="GMSDLoss", loss_form="f",
    ),
    MetricRecord(
        # higher is better for the default "correlation" (and "intersection", "overlap"); the
        # chi-square, Bhattacharyya and KL methods are distances
        name="histogram_similarity", function="histogram_similarity", kind="score", label="hist corr",
        reference=_HIST_REF,
        differentiable=True, grad_options={"bandwidth": 1.0}, higher_is_better=True,
        module_name="HistogramSimilarity",
    ),
    MetricRecord(
        name="mutual_information", function="mutual_information", kind="score", label="MI",
        reference="sklearn.metrics.mutual_info_score(a, b) of the bin labels",
        differentiable=True, grad_options={"bandwidth": 1.0}, higher_is_better=True,
        module_name="MutualInformation", loss_name="MILoss", loss_form="-f",
    ),
    MetricRecord(
        name="normalized_mutual_information", function="normalized_mutual_information", kind="score", label="NMI",
        reference=(
            "sklearn.metrics.normalized_mutual_info_score(a, b, average_method=normalization) of the bin labels; "
            "skimage.metrics.normalized_mutual_information for 'studholme'"
        ),
        differentiable=True, grad_options={"bandwidth": 1.0}, higher_is_better=True,
        module_name="NMI", loss_name="NMILoss",
    ),
    MetricRecord(
        name="psnr_pooled", function="psnr_pooled", kind="pooled", label="PSNR pooled",
        reference="torchmetrics.image.PeakSignalNoiseRatio(data_range=L) (PSNR of the MSE over every pixel of every image)",
        needs_data_range=True, differentiable=True, higher_is_better=True, module_name="PSNRPooled",
        pooling=Pooling(terms="pixel.psnr_pooled_terms", finish="pixel.psnr_from_mse"),
    ),
    MetricRecord(
        name="pixelmatch", function="pixelmatch", kind="count", label="pixelmatch",
        reference="pixelmatch-py 0.4.0 pixelmatch.contrib.PIL.pixelmatch (mapbox pixelmatch's algorithm)",
        higher_is_better=False,
    ),
    MetricRecord(
        name="diff_regions", function="diff_regions", kind="regions", label="regions",
        reference=(
            "skimage.metrics.structural_similarity(full=True) map -> (map * 255) as uint8 -> "
            "cv2.threshold(THRESH_BINARY_INV | THRESH_OTSU) -> cv2.boundingRect of each external contour"
        ),
        needs_data_range=True, min_size_rule=_window_fits,
    ),
    MetricRecord(
        name="ahash", function="ahash", kind="hash", label="aHash",
        reference="imagehash.average_hash(img, hash_size)",
    ),
    MetricRecord(
        name="dhash", function="dhash", kind="hash", label="dHash",
        reference="imagehash.dhash(img, hash_size)",
    ),
    MetricRecord(
        name="phash", function="phash", kind="hash", label="pHash",
        reference="imagehash.phash(img, hash_size, highfreq_factor)",
    ),
)

#: Every record by name, in registration order (read-only).
REGISTRY: Mapping[str, MetricRecord] = MappingProxyType({r.name: r for r in _RECORDS})


def get(name: str) -> MetricRecord:
    """The record of metric ``name`` (a function name such as ``"ssim"``).

    Raises:
        ValueError: unknown name; the message lists the known names.
    """
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"torchsim.registry: unknown metric {name!r}; known metrics: {', '.join(REGISTRY)}") from None


def records(
    kind: Union[None, str, Iterable[str]] = None,
    *,
    has_module: Optional[bool] = None,
    has_loss: Optional[bool] = None,
    differentiable: Optional[bool] = None,
    needs_data_range: Optional[bool] = None,
) -> List[MetricRecord]:
    """The records that match every filter given (``None``: no filter), in registration order.

    ``kind`` is one kind or several (keys of :data:`KINDS`); an unknown kind is a ``ValueError``.
    """
    kinds = None
    if kind is not None:
        kinds = {kind} if isinstance(kind, str) else set(kind)
        unknown = kinds - set(KINDS)
        if unknown:
            raise ValueError(f"torchsim.registry: unknown kind {sorted(unknown)}; kinds: {', '.join(KINDS)}")
    wanted = {
        "has_module": has_module,
        "has_loss": has_loss,
        "differentiable": differentiable,
        "needs_data_range": needs_data_range,
    }
    out = []
    for r in _RECORDS:
        facts = {
            "has_module": r.module_name is not None,
            "has_loss": r.loss_name is not None,
            "differentiable": r.differentiable,
            "needs_data_range": r.needs_data_range,
        }
        if kinds is not None and r.kind not in kinds:
            continue
        if all(want is None or facts[key] == want for key, want in wanted.items()):
            out.append(r)
    return out


def names(
    kind: Union[None, str, Iterable[str]] = None,
    *,
    has_module: Optional[bool] = None,
    has_loss: Optional[bool] = None,
    differentiable: Optional[bool] = None,
    needs_data_range: Optional[bool] = None,
) -> List[str]:
    """Names of the records :func:`records` returns for the same filters."""
    found = records(
        kind, has_module=has_module, has_loss=has_loss, differentiable=differentiable, needs_data_range=needs_data_range
    )
    return [r.name for r in found]
