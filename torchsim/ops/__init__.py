"""Image operators: the building blocks every metric draws from, each written once.

Pure tensor math without argument checks (the public functions in
:mod:`torchsim.functional` validate, then call these), public inside the package
and tested on their own against the reference each one reproduces:

- :mod:`~torchsim.ops.color`: colour conversions and 8-bit rules (BT.601 / MATLAB Y,
  Pillow luma, OpenCV grey, pixelmatch's YIQ, quantisation);
- :mod:`~torchsim.ops.resize`: Pillow-exact Lanczos and box resizing of 8-bit images;
- :mod:`~torchsim.ops.binning`: bin edges and indices, exact and soft (differentiable)
  histograms and joint histograms.
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
    soft_taps,
)
from .color import blend_white, matlab_y, opencv_gray, pil_luma, quantize_u8, yiq, yiq_distance, yiq_y
from .resize import clip8, pil_matrix, pil_resize, pil_resize_u8
