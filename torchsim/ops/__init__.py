"""Image operators: each written once, shared by every metric, tested on their own.

The layer under :mod:`torchsim.functional` (a metric reads: validate -> ops ->
formula -> reduce): pure tensor math without argument checks, public inside the
package (not part of the ``torchsim`` top-level API), each tested against the
reference it reproduces in ``tests/ops/``.

* :mod:`~torchsim.ops.filters`: windows, separable filtering with one window per
  axis and valid / full / symmetric / reflect / zero / replicate padding, exact box sums,
  same-size padding, the downsampling and halving steps of the SSIM conventions.
* :mod:`~torchsim.ops.tiling`: the CPU row-tile chunk geometry of windowed kernels.
* :mod:`~torchsim.ops.parallel`: a kernel's chunks run on single-threaded CPU workers,
  committed in chunk order (bit-identical to the serial loop, no barrier per op).
* :mod:`~torchsim.ops.components`: Otsu's threshold, connected components, boxes.
* :mod:`~torchsim.ops.color`: colour conversions and 8-bit rules (BT.601 / MATLAB Y,
  Pillow luma, OpenCV grey, pixelmatch's YIQ, quantisation).
* :mod:`~torchsim.ops.resize`: Pillow-exact Lanczos and box resizing of 8-bit images.
* :mod:`~torchsim.ops.binning`: bin edges and indices, exact and soft (differentiable)
  histograms and joint histograms.
* :mod:`~torchsim.ops.bits`: packed hash words, popcount, and the pairs of hashes within a
  Hamming radius (multi-index hashing or blocked brute force).
"""

from .binning import (
    SoftHistogram,
    SoftJointHistogram,
    ValueRange,
    bin_bounds,
    bin_edges,
    bin_index,
    bin_positions,
    count_dtype,
    count_rows,
    histograms,
    joint_histogram,
    level_bins,
    precise,
    safe_sqrt,
    soft_histogram,
    soft_joint_histogram,
    soft_taps,
)
from .bits import Plan, block_keys, distance_dtype, make_plan, pack_bits, pairs_within, popcount
from .color import blend_white, matlab_uint8, matlab_y, opencv_gray, pil_luma, quantize_u8, yiq, yiq_distance, yiq_y
from .components import component_boxes, component_regions, label_components, otsu_threshold
from .filters import (
    HALVING_MODES,
    PADDING_MODES,
    box_sum,
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
from .resize import clip8, pil_matrix, pil_resize, pil_resize_u8
from .tiling import RowTiles

__all__ = [
    # binning
    "SoftHistogram",
    "SoftJointHistogram",
    "ValueRange",
    "bin_bounds",
    "bin_edges",
    "bin_index",
    "bin_positions",
    "count_dtype",
    "count_rows",
    "histograms",
    "joint_histogram",
    "level_bins",
    "precise",
    "safe_sqrt",
    "soft_histogram",
    "soft_joint_histogram",
    "soft_taps",
    # bits
    "Plan",
    "block_keys",
    "distance_dtype",
    "make_plan",
    "pack_bits",
    "pairs_within",
    "popcount",
    # color
    "blend_white",
    "matlab_uint8",
    "matlab_y",
    "opencv_gray",
    "pil_luma",
    "quantize_u8",
    "yiq",
    "yiq_distance",
    "yiq_y",
    # components
    "component_boxes",
    "component_regions",
    "label_components",
    "otsu_threshold",
    # filters
    "HALVING_MODES",
    "PADDING_MODES",
    "box_sum",
    "box_window",
    "gaussian_window",
    "halve",
    "matlab_downsample",
    "matlab_round",
    "pad_same",
    "pool_downsample",
    "separable_filter",
    "symmetric_pad",
    # resize
    "clip8",
    "pil_matrix",
    "pil_resize",
    "pil_resize_u8",
    # tiling
    "RowTiles",
]
