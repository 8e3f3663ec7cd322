"""Pure tensor functions: validate, call one kernel, reduce."""

from ..io import file_md5
from .color import pil_luma, rgb_to_y
from .gmsd import gmsd
from .hashing import ahash, dhash, hamming_distance, hash_to_hex, hex_to_hash, pairwise_hamming, phash
from .histogram import histogram, histogram_similarity
from .information import mutual_information, normalized_mutual_information
from .pixel import cosine_similarity, mse, psnr, psnr_pooled
from .pixelmatch import pixelmatch
from .regions import diff_regions
from .ssim import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_l1, ssim

__all__ = [
    # full-reference pixel and structural metrics
    "mse",
    "psnr",
    "psnr_pooled",
    "ssim",
    "ms_ssim",
    "MS_SSIM_WEIGHTS",
    "cosine_similarity",
    "gmsd",
    # training losses that are not "1 - metric"
    "ms_ssim_l1",
    # colour
    "rgb_to_y",
    "pil_luma",
    # distributions
    "histogram",
    "histogram_similarity",
    "mutual_information",
    "normalized_mutual_information",
    # hashes and exact duplicates
    "ahash",
    "dhash",
    "phash",
    "hamming_distance",
    "pairwise_hamming",
    "hash_to_hex",
    "hex_to_hash",
    "file_md5",
    # where two images differ
    "pixelmatch",
    "diff_regions",
]
