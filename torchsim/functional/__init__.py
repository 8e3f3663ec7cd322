"""Pure tensor functions: validate, call one kernel, reduce."""

from ..color import rgb_to_y
from .pixel import cosine_similarity, mse, psnr
from .ssim import MS_SSIM_WEIGHTS, ms_ssim, ssim

__all__ = [
    "MS_SSIM_WEIGHTS",
    "cosine_similarity",
    "ms_ssim",
    "mse",
    "psnr",
    "rgb_to_y",
    "ssim",
]
