"""How the command line finds a metric of the library: :func:`resolve`, and nothing else does.

The commands name metrics by the library's function names (``"psnr"``, ``"ms_ssim"``,
``"phash"``); :func:`resolve` reads the metric's record in :mod:`torchsim.registry` and
returns the function, its module class, the keyword options for images on a
``0..data_range`` scale and the smallest image side it applies to.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional

@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """A metric as the command line uses it."""

    name: str  # the library's function name
    function: Callable[..., Any]
    module: Optional[type]  # its torchsim.Metric class; None for the hashes
    options: Dict[str, Any]  # keyword arguments for images on 0..data_range (data_range, value_range)
    min_size: int  # smallest image side it applies to, with these options

    def build(self) -> Any:
        """A new streaming module with :attr:`options`."""
        return self.module(**self.options)


def resolve(name: str, data_range: float = 255.0, **extra: Any) -> MetricInfo:
    """The library's metric ``name`` for images on ``0..data_range`` (imports torchsim and torch),
    with the keyword options ``extra`` on top (e.g. an SSIM convention's flags).

    Raises:
        AttributeError: the library has no function ``name``.
        ValueError: a ``convention`` in ``extra`` that does not publish this metric (:func:`convention_problem`).
    """
    from torchsim import registry

    try:
        record = registry.get(name)
    except ValueError as exc:
        raise AttributeError(str(exc)) from None
    options: Dict[str, Any] = {}
    if record.needs_data_range:
        options["data_range"] = float(data_range)
    if "value_range" in record.options:  # histogram binning over the image's scale
        options["value_range"] = (0.0, float(data_range))
    options.update(extra)
    module = record.module if record.module_name else None
    return MetricInfo(name, record.function, module, options, record.min_size(**options))


def convention_problem(name: str, convention: Optional[str]) -> Optional[str]:
    """Why ``--convention`` cannot apply to metric ``name`` (one line), or None (without torch)."""
    from torchsim import conventions

    if convention is None or name not in conventions.METRICS:
        return None
    try:
        conventions.settings("--convention", name, convention)
    except ValueError as exc:
        return str(exc)
    return None


def add_convention_argument(parser) -> None:
    """``--convention NAME`` (``score``, ``compare``): SSIM / MS-SSIM / PSNR as a published convention."""
    from torchsim import conventions

    names = conventions.names()
    parser.add_argument("--convention", default=None, choices=names, metavar="NAME",
                        help="score SSIM, MS-SSIM and PSNR as this published convention does (default: wang, the "
                             f"library's defaults); one of {', '.join(names)}")
