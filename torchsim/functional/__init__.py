"""Pure tensor functions: validate, call one kernel, reduce."""

from ..color import pil_luma, rgb_to_y
from .histogram import histogram, histogram_similarity
from .information import mutual_information, normalized_mutual_information
from .hashing import ahash, dhash, hamming_distance, hash_to_hex, hex_to_hash, pairwise_hamming, phash
from .pixel import cosine_similarity, mse, psnr
from .pixelmatch import pixelmatch
from .regions import diff_regions
from .ssim import MS_SSIM_WEIGHTS, ms_ssim, ssim

__all__ = [
    "histogram",
    "histogram_similarity",
    "mutual_information",
    "normalized_mutual_information",
    "MS_SSIM_WEIGHTS",
    "ahash",
    "dhash",
    "hamming_distance",
    "hash_to_hex",
    "hex_to_hash",
    "pairwise_hamming",
    "phash",
    "pil_luma",
    "cosine_similarity",
    "ms_ssim",
    "mse",
    "psnr",
    "rgb_to_y",
    "ssim",
    "pixelmatch",
    "diff_regions",
]
