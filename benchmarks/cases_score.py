"""``torchsim score`` on a folder of PNG pairs, against a plain scikit-image loop.

One case, ``score N pairs of SxS PNG``: ``N`` pairs of ``S``×``S`` RGB PNGs
(``benchmarks/inputs.png_folder``: photo crops, the test image with Gaussian noise),
generated once in a temporary folder, then timed whole — decoding and file I/O count, as
they do for a user:

* ``torchsim score``: ``torchsim.cli`` ``score`` run in-process (decoding in a pool of
  threads, batched PSNR + SSIM through the streaming modules, CSV written to a temporary
  file, no progress bar);
* ``skimage loop``: for each pair ``skimage.io.imread`` ×2, ``peak_signal_noise_ratio`` and
  ``structural_similarity`` with the same convention (Gaussian 11/1.5, population
  covariance, data_range 255, channel_axis=-1).

One call takes seconds: run it with few rounds (``python -m benchmarks.run score --rounds 2``),
or with ``python -m benchmarks.score_throughput``, which also prints images per second.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import sys
import tempfile
from typing import Optional

from benchmarks.harness import Registry
from benchmarks.inputs import png_folder

N, SIZE, BATCH_SIZE = 200, 512, 8
QUICK_N, QUICK_SIZE = 4, 64


@functools.lru_cache(maxsize=None)
def folder(n: int, size: int, root: Optional[str] = None) -> str:
    """A folder with ``ref/`` and ``test/`` holding ``n`` pairs: ``root`` (kept, reused if it already
    holds them), or a temporary one removed at exit."""
    if root is None:
        root = tempfile.mkdtemp(prefix="torchsim-score-bench-")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    if not os.path.isdir(os.path.join(root, "ref")):
        png_folder(root, n, size)
    return root


def _torchsim(n: int, size: int, device: str, workers: Optional[int], batch_size: int, root: Optional[str]):
    def factory():
        from torchsim.cli import build_parser
        from torchsim.cli.score import default_workers

        where = folder(n, size, root)
        argv = [
            "score", os.path.join(where, "ref"), os.path.join(where, "test"), "--metrics", "psnr,ssim",
            "--workers", str(default_workers() if workers is None else workers), "--batch-size", str(batch_size),
            "--device", device, "--csv", os.path.join(where, "scores.csv"), "--no-progress",
        ]

        def run():
            args = build_parser().parse_args(argv)
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
                code = args._run(args)
            assert code == 0, code

        return run

    return factory


def _skimage(n: int, size: int, root: Optional[str]):
    def factory():
        from skimage.io import imread
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        where = folder(n, size, root)
        ref_dir, test_dir = os.path.join(where, "ref"), os.path.join(where, "test")

        def run():
            values = []
            for name in sorted(os.listdir(ref_dir)):
                a, b = imread(os.path.join(ref_dir, name)), imread(os.path.join(test_dir, name))
                p = peak_signal_noise_ratio(a, b, data_range=255)
                s = structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False)
                values.append((p, s))
            return values

        return run

    return factory


def case_name(n: int, size: int) -> str:
    return f"score {n} pairs of {size}x{size} PNG"


def cases(
    device: str,
    quick: bool = False,
    n: Optional[int] = None,
    size: Optional[int] = None,
    workers: Optional[int] = None,
    batch_size: int = BATCH_SIZE,
    root: Optional[str] = None,
) -> Registry:
    n = n or (QUICK_N if quick else N)
    size = size or (QUICK_SIZE if quick else SIZE)
    return {
        case_name(n, size): {
            "torchsim": _torchsim(n, size, device, workers, batch_size, root),
            "skimage loop": _skimage(n, size, root),
        }
    }


if __name__ == "__main__":
    sys.exit("run: python -m benchmarks.run score, or python -m benchmarks.score_throughput")
