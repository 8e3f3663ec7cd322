"""pixelmatch and diff_regions, timed against pixelmatch-py and the scikit-image + OpenCV recipe.

Inputs: scikit-image's astronaut photo resized to 256×256 and an edited copy
(a filled rectangle, an anti-aliased ellipse outline and text drawn with
Pillow) — the kind of pair pixelmatch is used on. Every backend computes the
same thing:

* ``pixelmatch 256x256 pair``: count and RGBA diff image, torchsim
  ``pixelmatch(x, y, return_diff=True)`` vs ``pixelmatch.contrib.PIL.pixelmatch``
  writing its ``output`` image (pure Python).
* ``pixelmatch 256x256 pair (count only)``: the same without the diff image
  (``output=None``).
* ``pixelmatch batch 32x256x256``: 32 such pairs in one call vs 32 calls (the
  pixelmatch-py time is estimated as 32 × one pair, so this case does not take
  minutes: ``pixelmatch-py (32 × 1 pair)``).
* ``diff_regions 256x256 pair``: torchsim ``diff_regions`` vs the recipe
  (``cvtColor`` gray, ``structural_similarity(full=True)``, ``(m*255).astype(uint8)``,
  Otsu, ``findContours(RETR_EXTERNAL)``, ``boundingRect``).
"""

from __future__ import annotations

import time
import warnings
from typing import List

import numpy as np
import torch

from benchmarks.harness import Case

SIZE = 256
BATCH = 32


def _pair_pil():
    from PIL import Image, ImageDraw
    from skimage import data

    a = Image.fromarray(data.astronaut()).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    b = a.copy()
    d = ImageDraw.Draw(b)
    d.rectangle([30, 40, 90, 80], fill=(20, 180, 40))
    d.ellipse([120, 100, 220, 170], outline=(255, 255, 255), width=3)
    d.text((20, 200), "torchsim pixelmatch", fill=(0, 0, 0))
    return a, b


def _tensors(device: str, n: int = 1):
    a, b = _pair_pil()
    x = torch.from_numpy(np.asarray(a).copy()).permute(2, 0, 1)[None]
    y = torch.from_numpy(np.asarray(b).copy()).permute(2, 0, 1)[None]
    return x.repeat(n, 1, 1, 1).to(device), y.repeat(n, 1, 1, 1).to(device)


def _ours_pixelmatch(device: str, n: int = 1, diff: bool = True):
    def factory():
        import torchsim

        x, y = _tensors(device, n)
        return lambda: torchsim.pixelmatch(x, y, return_diff=diff)

    return factory


def _ref_pixelmatch(diff: bool = True):
    def factory():
        from PIL import Image
        from pixelmatch.contrib.PIL import pixelmatch

        a, b = _pair_pil()
        return lambda: pixelmatch(a, b, Image.new("RGBA", a.size) if diff else None)

    return factory


def _ref_pixelmatch_estimated(n: int):
    """One pixelmatch-py call, timed, then a callable that sleeps n× as long (pure Python scales linearly)."""

    def factory():
        from PIL import Image
        from pixelmatch.contrib.PIL import pixelmatch

        a, b = _pair_pil()
        t0 = time.perf_counter()
        pixelmatch(a, b, Image.new("RGBA", a.size))
        one = time.perf_counter() - t0
        return lambda: time.sleep(one * n)

    return factory


def _ours_regions(device: str):
    def factory():
        import torchsim

        x, y = _tensors(device)
        return lambda: torchsim.diff_regions(x, y)

    return factory


def _recipe_regions():
    def factory():
        import cv2
        from skimage.metrics import structural_similarity

        a, b = (np.asarray(i) for i in _pair_pil())

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


def cases(device: str) -> List[Case]:
    return [
        Case(f"pixelmatch {SIZE}x{SIZE} pair (count + diff image)", {"torchsim": _ours_pixelmatch(device), "pixelmatch-py": _ref_pixelmatch()}),
        Case(
            f"pixelmatch {SIZE}x{SIZE} pair (count only)",
            {"torchsim": _ours_pixelmatch(device, diff=False), "pixelmatch-py": _ref_pixelmatch(diff=False)},
        ),
        Case(
            f"pixelmatch batch {BATCH}x{SIZE}x{SIZE} (count + diff image)",
            {"torchsim": _ours_pixelmatch(device, BATCH), f"pixelmatch-py ({BATCH} × 1 pair)": _ref_pixelmatch_estimated(BATCH)},
        ),
        Case(f"diff_regions {SIZE}x{SIZE} pair", {"torchsim": _ours_regions(device), "skimage+cv2 recipe": _recipe_regions()}),
    ]


if __name__ == "__main__":  # print both backends' answers on the benchmark input
    import torchsim

    x, y = _tensors("cpu")
    print("torchsim pixelmatch:", int(torchsim.pixelmatch(x, y)[0]))
    from pixelmatch.contrib.PIL import pixelmatch

    print("pixelmatch-py:      ", pixelmatch(*_pair_pil()))
    print("torchsim boxes:", torchsim.diff_regions(x, y)[0].tolist())
    print("recipe boxes:  ", sorted((bx, by, bx + w, by + h) for bx, by, w, h in _recipe_regions()()()))
