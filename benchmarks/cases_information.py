"""Histograms, MI and NMI — timed side by side with scikit-learn, scikit-image, OpenCV, kornia and MONAI.

Inputs are photo crops (gray: BT.601 luma) and a noisy copy of them
(``benchmarks/inputs.py``): real intensity distributions; random noise would have nearly
empty joint histograms. Exact cases use uint8 images and 256 bins, which is
what every reference computes there: scikit-learn's ``normalized_mutual_info_score``
on the flattened uint8 values (labels), scikit-image's
``normalized_mutual_information(bins=256)`` (its own Studholme NMI over min..max),
OpenCV's ``calcHist`` + ``compareHist``. Soft (differentiable) cases time forward +
backward of a loss on float32 images in [0, 1]; MONAI's and kornia's MI losses use
their own kernels and default bin counts (23 and 64), torchsim uses 256 bins with its
triangular kernel of one bin half-width (also shown at 64 bins). ``python -m
benchmarks.cases_information`` prints the values each backend computes on the
benchmark input.

Each ``_<backend>(shape, device, ...)`` below is a factory: it builds the inputs and returns
the callable that is measured.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from benchmarks.harness import Registry, Skip, import_backend
from benchmarks.inputs import pair, shape_name, sized

BINS = 256
NMI_SHAPE = (4, 1, 256, 256)
HIST_SHAPE = (4, 3, 256, 256)
SOFT_SHAPE = (4, 1, 256, 256)
MEMORY_SHAPE = (1, 1, 1024, 1024)


def _u8_pair(shape, device: str):
    return pair(shape, dtype=torch.uint8, device=device)


def _cpu_only(device: str) -> None:
    if device != "cpu":
        raise Skip("CPU library; timed on the CPU case only")


# --------------------------------------------------------------------------- exact NMI


def _nmi_torchsim(shape, device: str, **kw) -> Callable[[], object]:
    ts = import_backend("torchsim")
    x, y = _u8_pair(shape, device)
    return lambda: ts.normalized_mutual_information(x, y, bins=BINS, **kw)


def _nmi_sklearn(shape, device: str) -> Callable[[], object]:
    _cpu_only(device)
    metrics = import_backend("sklearn.metrics")
    x, y = _u8_pair(shape, "cpu")
    a = [t.numpy().ravel() for t in x]
    b = [t.numpy().ravel() for t in y]
    return lambda: [metrics.normalized_mutual_info_score(p, q) for p, q in zip(a, b)]


def _nmi_skimage(shape, device: str) -> Callable[[], object]:
    _cpu_only(device)
    metrics = import_backend("skimage.metrics")
    x, y = _u8_pair(shape, "cpu")
    a = [t.numpy() for t in x]
    b = [t.numpy() for t in y]
    return lambda: [metrics.normalized_mutual_information(p, q, bins=BINS) for p, q in zip(a, b)]


# --------------------------------------------------------------------------- histogram similarity


def _hist_torchsim(shape, device: str) -> Callable[[], object]:
    ts = import_backend("torchsim")
    x, y = _u8_pair(shape, device)
    return lambda: ts.histogram_similarity(x, y, bins=BINS, method="correlation")


def _hist_opencv(shape, device: str) -> Callable[[], object]:
    _cpu_only(device)
    cv2 = import_backend("cv2")
    x, y = _u8_pair(shape, "cpu")
    a = [np.ascontiguousarray(t.permute(1, 2, 0).numpy()) for t in x]
    b = [np.ascontiguousarray(t.permute(1, 2, 0).numpy()) for t in y]

    def run():
        out = []
        for p, q in zip(a, b):
            vals = []
            for c in range(p.shape[2]):
                h1 = cv2.calcHist([p], [c], None, [BINS], [0, 256])
                h2 = cv2.calcHist([q], [c], None, [BINS], [0, 256])
                vals.append(cv2.compareHist(h1 / h1.sum(), h2 / h2.sum(), cv2.HISTCMP_CORREL))
            out.append(sum(vals) / len(vals))
        return out

    return run


# --------------------------------------------------------------------------- soft NMI / MI losses, forward + backward


def _fwd_bwd(x: torch.Tensor, loss: Callable[[], torch.Tensor]) -> Callable[[], object]:
    def run():
        x.grad = None
        value = loss()
        value.backward()
        return value

    return run


def _soft_torchsim(shape, device: str, bins: int = BINS) -> Callable[[], object]:
    ts = import_backend("torchsim")
    x, y = pair(shape, device=device, requires_grad=True)
    return _fwd_bwd(x, lambda: 1 - ts.normalized_mutual_information(x, y, bins=bins, bandwidth=1.0))


def _soft_monai(shape, device: str) -> Callable[[], object]:
    losses = import_backend("monai.losses")
    loss_fn = losses.GlobalMutualInformationLoss(num_bins=23)  # Gaussian Parzen window, its default
    x, y = pair(shape, device=device, requires_grad=True)
    return _fwd_bwd(x, lambda: loss_fn(x, y))


def _soft_kornia(shape, device: str) -> Callable[[], object]:
    kl = import_backend("kornia.losses")
    fn = getattr(kl, "normalized_mutual_information_loss_2d", None)
    if fn is None:
        raise Skip("this kornia has no normalized_mutual_information_loss_2d")
    x, y = pair(shape, device=device, requires_grad=True)
    return _fwd_bwd(x, lambda: fn(x[:, 0], y[:, 0], num_bins=64).mean())  # Xu kernel, its default 64 bins


def _soft_backends(shape, device: str, with_64_bins: bool = True):
    out = {"torchsim": lambda: _soft_torchsim(shape, device)}
    if with_64_bins:
        out["torchsim (64 bins)"] = lambda: _soft_torchsim(shape, device, bins=64)
    out["monai GlobalMutualInformationLoss (23 bins)"] = lambda: _soft_monai(shape, device)
    out["kornia normalized_mutual_information_loss_2d (64 bins)"] = lambda: _soft_kornia(shape, device)
    return out


# --------------------------------------------------------------------------- registry


def cases(device: str, quick: bool = False) -> Registry:
    nmi, hist, soft = (sized(s, quick) for s in (NMI_SHAPE, HIST_SHAPE, SOFT_SHAPE))
    return {
        f"exact NMI, 256 bins, {shape_name(nmi)} uint8": {
            "torchsim": lambda: _nmi_torchsim(nmi, device),
            "torchsim (studholme, minmax)": lambda: _nmi_torchsim(
                nmi, device, value_range="minmax", normalization="studholme"
            ),
            "sklearn normalized_mutual_info_score": lambda: _nmi_sklearn(nmi, device),
            "skimage normalized_mutual_information": lambda: _nmi_skimage(nmi, device),
        },
        f"histogram correlation, 256 bins, {shape_name(hist)} uint8": {
            "torchsim": lambda: _hist_torchsim(hist, device),
            "opencv calcHist+compareHist": lambda: _hist_opencv(hist, device),
        },
        f"soft NMI loss forward+backward, {shape_name(soft)} float32": _soft_backends(soft, device),
    }


def memory_cases(device: str, quick: bool = False) -> Registry:
    mem = sized(MEMORY_SHAPE, quick)
    return {
        f"soft NMI loss forward+backward peak memory, {shape_name(mem)} float32": _soft_backends(
            mem, device, with_64_bins=False
        ),
    }


if __name__ == "__main__":
    import torchsim

    x, y = _u8_pair(NMI_SHAPE, "cpu")
    print("exact NMI (arithmetic):", torchsim.normalized_mutual_information(x, y, reduction="none").tolist())
    print("sklearn               :", _nmi_sklearn(NMI_SHAPE, "cpu")())
    print("torchsim studholme    :", torchsim.normalized_mutual_information(
        x, y, value_range="minmax", normalization="studholme", reduction="none").tolist())
    print("skimage               :", _nmi_skimage(NMI_SHAPE, "cpu")())
    xh, yh = _u8_pair(HIST_SHAPE, "cpu")
    print("hist correlation      :", torchsim.histogram_similarity(xh, yh, reduction="none").tolist())
    print("opencv                :", _hist_opencv(HIST_SHAPE, "cpu")())
