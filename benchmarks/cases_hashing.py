"""Perceptual hashes and Hamming distances: torchsim (batched tensors) vs imagehash and numpy.

* ``phash`` / ``ahash`` / ``dhash`` of 256 RGB uint8 images of 256×256: torchsim hashes
  the ``(256, 3, 256, 256)`` batch in one call on the device; imagehash loops over the
  same pixels as PIL images (built once, outside the timing). Both give the same bits
  (tests/reference/test_hashing_reference.py).
* ``pairwise_hamming`` of 20 000 64-bit hashes into a ``(N, N)`` int64 matrix: torchsim
  (row blocks, one matrix product each) vs numpy (bits packed into uint64 words, XOR and
  ``numpy.bitwise_count`` in row blocks — the usual numpy approach).

Run: ``python -m benchmarks.run hashing [--device cuda]``.
"""

from __future__ import annotations

from typing import List

import torch

from benchmarks.harness import Case, import_backend

SEED = 0
N_IMAGES, SIDE = 256, 256
N_HASHES = 20_000
NP_BLOCK = 1024




def _images() -> torch.Tensor:
    """Smooth random RGB uint8 images (upsampled noise, so the thumbnails are not flat)."""
    g = torch.Generator().manual_seed(SEED)
    base = torch.rand(N_IMAGES, 3, SIDE // 8, SIDE // 8, generator=g)
    up = torch.nn.functional.interpolate(base, size=(SIDE, SIDE), mode="bicubic", align_corners=False)
    return (up.clamp(0, 1) * 255).round().to(torch.uint8)


def _hash_case(name: str, ih_name: str, device: str) -> Case:
    def ours():
        ts = import_backend("torchsim")
        x = _images().to(device)
        fn = getattr(ts, name)
        return lambda: fn(x)

    def theirs():
        ih = import_backend("imagehash")
        Image = import_backend("PIL.Image")
        pil = [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in _images()]
        fn = getattr(ih, ih_name)
        return lambda: [fn(im) for im in pil]

    return Case(f"{name} {N_IMAGES}x3x{SIDE}x{SIDE} uint8", {"torchsim": ours, "imagehash": theirs})


def _hashes() -> torch.Tensor:
    return torch.rand(N_HASHES, 64, generator=torch.Generator().manual_seed(SEED)) > 0.5


def _pairwise_case(device: str) -> Case:
    def ours():
        ts = import_backend("torchsim")
        h = _hashes().to(device)
        return lambda: ts.pairwise_hamming(h)

    def numpy_packed():
        np = import_backend("numpy")
        words = np.packbits(_hashes().numpy(), axis=1).view(">u8")[:, 0].astype(np.uint64)

        def run():
            out = np.empty((N_HASHES, N_HASHES), dtype=np.int64)
            for s in range(0, N_HASHES, NP_BLOCK):
                out[s : s + NP_BLOCK] = np.bitwise_count(words[s : s + NP_BLOCK, None] ^ words[None, :])
            return out

        return run

    return Case(f"pairwise_hamming {N_HASHES} x 64-bit", {"torchsim": ours, "numpy (uint64 XOR + bitwise_count)": numpy_packed})


def cases(device: str) -> List[Case]:
    return [
        _hash_case("phash", "phash", device),
        _hash_case("ahash", "average_hash", device),
        _hash_case("dhash", "dhash", device),
        _pairwise_case(device),
    ]


if __name__ == "__main__":  # check that both backends of every case agree
    import numpy as np

    for case in cases("cpu")[:3]:
        a = case.backends["torchsim"]()()
        b = np.stack([h.hash.flatten() for h in case.backends["imagehash"]()()])
        print(case.name, "identical" if np.array_equal(a.numpy(), b) else f"{int((a.numpy() != b).sum())} bits differ")
