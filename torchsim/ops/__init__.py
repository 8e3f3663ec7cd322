"""Image operators: each written once, shared by every metric, tested on their own.

The layer under :mod:`torchsim.functional` (a metric reads: validate -> ops ->
formula -> reduce). Public inside the package; not part of the ``torchsim``
top-level API.

* :mod:`~torchsim.ops.filters`: windows, separable filtering with one window per
  axis and valid / full / symmetric / reflect / zero / replicate padding, same-size
  padding, the downsampling and halving steps of the SSIM conventions.
* :mod:`~torchsim.ops.tiling`: the CPU row-tile chunk geometry of windowed kernels.
* :mod:`~torchsim.ops.components`: Otsu's threshold, connected components, boxes.
"""

from .components import component_boxes, label_components, otsu_threshold
from .filters import (
    HALVING_MODES,
    PADDING_MODES,
    box_window,
    gaussian_window,
    halve,
    matlab_downsample,
    matlab_round,
    pad_same,
    pool_downsample,
    separable_filter,
    symmetric_pad,
)
from .tiling import RowTiles

__all__ = [
    # components
    "component_boxes",
    "label_components",
    "otsu_threshold",
    # filters
    "HALVING_MODES",
    "PADDING_MODES",
    "box_window",
    "gaussian_window",
    "halve",
    "matlab_downsample",
    "matlab_round",
    "pad_same",
    "pool_downsample",
    "separable_filter",
    "symmetric_pad",
    # tiling
    "RowTiles",
]
