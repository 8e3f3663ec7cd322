"""Perceptual hashes and Hamming distances: torchsim (batched tensors) vs imagehash and numpy.

* ``phash`` / ``ahash`` / ``dhash`` of 256 RGB uint8 photo crops of 256×256
  (``benchmarks/inputs.py``): torchsim hashes the ``(256, 3, 256, 256)`` batch in one call on
  the device; imagehash loops over the same pixels as PIL images (built once, outside the
  timing). Both give the same bits (tests/reference/test_hashing_reference.py).
* ``pairwise_hamming`` of 20 000 64-bit hashes into a ``(N, N)`` int64 matrix: torchsim
  (row blocks, one matrix product each) vs numpy (bits packed into uint64 words, XOR and
  ``numpy.bitwise_count`` in row blocks — the usual numpy approach).

Run: ``python -m benchmarks.run hashing [--device cuda]``.
"""

from __future__ import annotations

import torch

from benchmarks.harness import Registry, import_backend
from benchmarks.inputs import hash_bits, images, shape_name, sized

IMAGES_SHAPE = (256, 3, 256, 256)
N_HASHES = 20_000
QUICK_HASHES = 2_000
NP_BLOCK = 1024


def _hash_backends(name: str, ih_name: str, shape, device: str):
    def ours():
        ts = import_backend("torchsim")
        x = images(shape, dtype=torch.uint8, device=device)
        fn = getattr(ts, name)
        return lambda: fn(x)

    def theirs():
        ih = import_backend("imagehash")
        Image = import_backend("PIL.Image")
        pil = [Image.fromarray(a.permute(1, 2, 0).numpy()) for a in images(shape, dtype=torch.uint8)]
        fn = getattr(ih, ih_name)
        return lambda: [fn(im) for im in pil]

    return {"torchsim": ours, "imagehash": theirs}


def _pairwise_backends(n: int, device: str):
    def ours():
        ts = import_backend("torchsim")
        h = hash_bits(n).to(device)
        return lambda: ts.pairwise_hamming(h)

    def numpy_packed():
        np = import_backend("numpy")
        words = np.packbits(hash_bits(n).numpy(), axis=1).view(">u8")[:, 0].astype(np.uint64)

        def run():
            out = np.empty((n, n), dtype=np.int64)
            for s in range(0, n, NP_BLOCK):
                out[s : s + NP_BLOCK] = np.bitwise_count(words[s : s + NP_BLOCK, None] ^ words[None, :])
            return out

        return run

    return {"torchsim": ours, "numpy (uint64 XOR + bitwise_count)": numpy_packed}


def cases(device: str, quick: bool = False) -> Registry:
    shape = sized(IMAGES_SHAPE, quick)
    n = QUICK_HASHES if quick else N_HASHES
    out = {
        f"{name} {shape_name(shape)} uint8": _hash_backends(name, ih_name, shape, device)
        for name, ih_name in (("phash", "phash"), ("ahash", "average_hash"), ("dhash", "dhash"))
    }
    out[f"pairwise_hamming {n} x 64-bit"] = _pairwise_backends(n, device)
    return out


if __name__ == "__main__":  # check that both backends of every hash case agree
    import numpy as np

    for name, backends in list(cases("cpu").items())[:3]:
        a = backends["torchsim"]()()
        b = np.stack([h.hash.flatten() for h in backends["imagehash"]()()])
        print(name, "identical" if np.array_equal(a.numpy(), b) else f"{int((a.numpy() != b).sum())} bits differ")
