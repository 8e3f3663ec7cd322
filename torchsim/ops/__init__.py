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
  Pillow luma, OpenCV grey, quantisation), and :mod:`~torchsim.ops.yiq_color`, pixelmatch's YIQ
  (plain arithmetic: torch tensors or NumPy arrays).
* :mod:`~torchsim.ops.resize`: Pillow-exact Lanczos and box resizing of 8-bit images.
* :mod:`~torchsim.ops.binning`: bin edges and indices, exact and soft (differentiable)
  histograms and joint histograms.
* :mod:`~torchsim.ops.bits`: packed hash words, popcount, and the pairs of hashes within a
  Hamming radius (multi-index hashing or blocked brute force).

The submodules are imported on first use of one of their names, so a torch-free one
(:mod:`.yiq_color`) loads without the others.
"""

import importlib
from typing import Any, List

_SUBMODULE = {  # public name -> the submodule that defines it (imported on first use)
    "SoftHistogram": "binning",
    "SoftJointHistogram": "binning",
    "ValueRange": "binning",
    "bin_bounds": "binning",
    "bin_edges": "binning",
    "bin_index": "binning",
    "bin_positions": "binning",
    "count_dtype": "binning",
    "count_rows": "binning",
    "histograms": "binning",
    "joint_histogram": "binning",
    "level_bins": "binning",
    "precise": "binning",
    "safe_sqrt": "binning",
    "soft_histogram": "binning",
    "soft_joint_histogram": "binning",
    "soft_taps": "binning",
    "Plan": "bits",
    "block_keys": "bits",
    "distance_dtype": "bits",
    "make_plan": "bits",
    "pack_bits": "bits",
    "pairs_within": "bits",
    "popcount": "bits",
    "blend_white": "yiq_color",
    "matlab_uint8": "color",
    "matlab_y": "color",
    "opencv_gray": "color",
    "pil_luma": "color",
    "quantize_u8": "color",
    "yiq": "yiq_color",
    "yiq_distance": "yiq_color",
    "yiq_y": "yiq_color",
    "component_boxes": "components",
    "component_regions": "components",
    "label_components": "components",
    "otsu_threshold": "components",
    "HALVING_MODES": "filters",
    "PADDING_MODES": "filters",
    "box_sum": "filters",
    "box_window": "filters",
    "gaussian_window": "filters",
    "halve": "filters",
    "matlab_downsample": "filters",
    "matlab_round": "filters",
    "pad_same": "filters",
    "pool_downsample": "filters",
    "separable_filter": "filters",
    "symmetric_pad": "filters",
    "clip8": "resize",
    "pil_matrix": "resize",
    "pil_luma_resize": "resize",
    "pil_resize": "resize",
    "pil_resize_u8": "resize",
    "RowTiles": "tiling",
}


def __getattr__(name: str) -> Any:
    """Import a name's submodule on first use, so that a torch-free submodule (:mod:`.yiq_color`)
    can be imported without the others (which import torch)."""
    module = _SUBMODULE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_SUBMODULE))


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
    "pil_luma_resize",
    "pil_resize",
    "pil_resize_u8",
    # tiling
    "RowTiles",
]
