"""How the command line finds a metric of the library: :func:`resolve`, and nothing else does.

The commands name metrics by the library's function names (``"psnr"``, ``"ms_ssim"``,
``"phash"``); :func:`resolve` returns the function, its module class, the keyword options
for images on a ``0..data_range`` scale and the smallest image side it applies to.
Today it reads them from the library's attributes and signatures; with
``torchsim.registry`` it becomes a look-up of one record, and no command changes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Optional

# Module class of each metric function (a registry record's ``module``).
_MODULES = {
    "mse": "MSE",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "ms_ssim": "MSSSIM",
    "cosine_similarity": "CosineSimilarity",
    "histogram_similarity": "HistogramSimilarity",
    "mutual_information": "MutualInformation",
    "normalized_mutual_information": "NMI",
}
# Smallest image side with the default options (a registry record's ``min_size()``): the
# 11-px Gaussian window, and for MS-SSIM that window after 4 halvings.
_MIN_SIZE = {"ssim": 11, "ms_ssim": (11 - 1) * 2**4 + 1}


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


def resolve(name: str, data_range: float = 255.0) -> MetricInfo:
    """The library's metric ``name`` for images on ``0..data_range`` (imports torchsim and torch).

    Raises:
        AttributeError: the library has no function ``name``.
    """
    import inspect

    import torchsim

    function = getattr(torchsim, name)
    module = getattr(torchsim, _MODULES[name]) if name in _MODULES else None
    params = inspect.signature(function).parameters
    options: Dict[str, Any] = {}
    if "data_range" in params:
        options["data_range"] = float(data_range)
    if "value_range" in params:  # histogram binning over the image's scale
        options["value_range"] = (0.0, float(data_range))
    return MetricInfo(name, function, module, options, _MIN_SIZE.get(name, 1))
