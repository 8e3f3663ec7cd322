"""pixelmatch and diff_regions, timed against pixelmatch-py and the scikit-image + OpenCV recipe.

Inputs (``benchmarks/inputs.edited_pair``): a 256×256 crop of scikit-image's astronaut
photo and an edited copy (a filled rectangle, an ellipse outline and text drawn with
Pillow) — the kind of pair pixelmatch is used on. Every backend computes the same thing:

* ``pixelmatch 256x256 pair``: count and RGBA diff image, torchsim
  ``pixelmatch(x, y, return_diff=True)`` vs ``pixelmatch.contrib.PIL.pixelmatch``
  writing its ``output`` image (pure Python).
* ``pixelmatch 256x256 pair (count only)``: the same without the diff image
  (``output=None``).
* ``pixelmatch batch 32x256x256``: 32 such pairs in one torchsim call. pixelmatch-py has
  no batch call, and 32 calls of it take minutes; its per-pair time is the pair case
  above. (An earlier version printed 32 × that time in this table as if measured; the
  tables report measurements only.)
* ``diff_regions 256x256 pair`` (and ``1024x1024``): torchsim ``diff_regions`` vs the recipe
  (``cvtColor`` gray, ``structural_similarity(full=True)``, ``(m*255).astype(uint8)``,
  Otsu, ``findContours(RETR_EXTERNAL)``, ``boundingRect``).
"""

from __future__ import annotations

import warnings

import numpy as np

from benchmarks.harness import Registry
from benchmarks.inputs import edited_pair, sized, to_nchw

SIZE = 256
BATCH = 32


def _tensors(size: int, device: str, n: int = 1):
    a, b = edited_pair(size)
    return to_nchw(a).repeat(n, 1, 1, 1).to(device), to_nchw(b).repeat(n, 1, 1, 1).to(device)


def _ours_pixelmatch(size: int, device: str, n: int = 1, diff: bool = True):
    def factory():
        import torchsim

        x, y = _tensors(size, device, n)
        return lambda: torchsim.pixelmatch(x, y, return_diff=diff)

    return factory


def _ref_pixelmatch(size: int, diff: bool = True):
    def factory():
        from PIL import Image
        from pixelmatch.contrib.PIL import pixelmatch

        a, b = edited_pair(size)
        return lambda: pixelmatch(a, b, Image.new("RGBA", a.size) if diff else None)

    return factory


def _ours_regions(size: int, device: str):
    def factory():
        import torchsim

        x, y = _tensors(size, device)
        return lambda: torchsim.diff_regions(x, y)

    return factory


def _recipe_regions(size: int):
    def factory():
        import cv2
        from skimage.metrics import structural_similarity

        a, b = (np.asarray(i) for i in edited_pair(size))

        def fn():
            g1, g2 = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)
            _, m = structural_similarity(g1, g2, full=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                u = (m * 255).astype("uint8")
            t = cv2.threshold(u, 0, 255, cv2.THRESH_BINARY_INV | cv2.THRESH_OTSU)[1]
            cs = cv2.findContours(t, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
            return [cv2.boundingRect(c) for c in cs]

        return fn

    return factory


def cases(device: str, quick: bool = False) -> Registry:
    n, _, size, _ = sized((BATCH, 3, SIZE, SIZE), quick)
    return {
        f"pixelmatch {size}x{size} pair (count + diff image)": {
            "torchsim": _ours_pixelmatch(size, device),
            "pixelmatch-py": _ref_pixelmatch(size),
        },
        f"pixelmatch {size}x{size} pair (count only)": {
            "torchsim": _ours_pixelmatch(size, device, diff=False),
            "pixelmatch-py": _ref_pixelmatch(size, diff=False),
        },
        f"pixelmatch batch {n}x{size}x{size} (count + diff image)": {"torchsim": _ours_pixelmatch(size, device, n)},
        f"diff_regions {size}x{size} pair": {
            "torchsim": _ours_regions(size, device),
            "skimage+cv2 recipe": _recipe_regions(size),
        },
        f"diff_regions {4 * size}x{4 * size} pair": {
            "torchsim": _ours_regions(4 * size, device),
            "skimage+cv2 recipe": _recipe_regions(4 * size),
        },
    }


if __name__ == "__main__":  # print both backends' answers on the benchmark input
    import torchsim

    x, y = _tensors(SIZE, "cpu")
    print("torchsim pixelmatch:", int(torchsim.pixelmatch(x, y)[0]))
    from pixelmatch.contrib.PIL import pixelmatch

    print("pixelmatch-py:      ", pixelmatch(*edited_pair(SIZE)))
    print("torchsim boxes:", torchsim.diff_regions(x, y)[0].tolist())
    print("recipe boxes:  ", sorted((bx, by, bx + w, by + h) for bx, by, w, h in _recipe_regions(SIZE)()()))
