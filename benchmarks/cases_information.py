"""Histograms, MI and NMI — timed side by side with scikit-learn, scikit-image, OpenCV, kornia and MONAI.

Inputs are crops of the ``camera`` photograph from ``skimage.data`` (a real
intensity distribution; random noise would have nearly empty joint histograms)
and a noisy copy of them. Exact cases use uint8 images and 256 bins, which is
what every reference computes there: scikit-learn's ``normalized_mutual_info_score``
on the flattened uint8 values (labels), scikit-image's
``normalized_mutual_information(bins=256)`` (its own Studholme NMI over min..max),
OpenCV's ``calcHist`` + ``compareHist``. Soft (differentiable) cases time forward +
backward of a loss on float32 images in [0, 1]; MONAI's and kornia's MI losses use
their own kernels and default bin counts (23 and 64), torchsim uses 256 bins with its
triangular kernel of one bin half-width (also shown at 64 bins). ``python -m
benchmarks.cases_information`` prints the values each backend computes on the
benchmark input.
"""

from __future__ import annotations

from typing import Callable, List

import numpy as np
import torch

from benchmarks.harness import Case, Skip, import_backend

SEED = 0
NOISE = 0.05
BINS = 256




def _photo_crops(n: int, c: int, size: int) -> np.ndarray:
    """``(n, c, size, size)`` float64 crops in [0, 1] of skimage's camera (tiled when larger)."""
    from skimage import data

    cam = data.camera() / 255.0
    if size > cam.shape[0]:
        reps = -(-size // cam.shape[0])
        cam = np.tile(cam, (reps, reps))
    rng = np.random.default_rng(SEED)
    out = np.empty((n, c, size, size))
    for i in range(n):
        for j in range(c):
            r0, c0 = rng.integers(0, cam.shape[0] - size + 1), rng.integers(0, cam.shape[1] - size + 1)
            out[i, j] = cam[r0:r0 + size, c0:c0 + size]
    return out


def _pair(shape, device: str, uint8: bool, requires_grad: bool = False):
    n, c, h, w = shape
    x = _photo_crops(n, c, h)
    y = np.clip(x + np.random.default_rng(SEED + 1).normal(0.0, NOISE, x.shape), 0.0, 1.0)
    if uint8:
        tx = torch.from_numpy(np.round(x * 255).astype(np.uint8))
        ty = torch.from_numpy(np.round(y * 255).astype(np.uint8))
    else:
        tx, ty = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    tx, ty = tx.to(device), ty.to(device)
    return tx.requires_grad_(requires_grad) if requires_grad else tx, ty


def _cpu_only(device: str) -> None:
    if device != "cpu":
        raise Skip("CPU library; timed on the CPU case only")


# --------------------------------------------------------------------------- exact NMI

NMI_SHAPE = (4, 1, 256, 256)


def _nmi_torchsim(device: str) -> Callable[[], object]:
    ts = import_backend("torchsim")
    x, y = _pair(NMI_SHAPE, device, uint8=True)
    return lambda: ts.normalized_mutual_information(x, y, bins=BINS)


def _nmi_torchsim_studholme(device: str) -> Callable[[], object]:
    ts = import_backend("torchsim")
    x, y = _pair(NMI_SHAPE, device, uint8=True)
    return lambda: ts.normalized_mutual_information(x, y, bins=BINS, value_range="minmax", normalization="studholme")


def _nmi_sklearn(device: str) -> Callable[[], object]:
    _cpu_only(device)
    metrics = import_backend("sklearn.metrics")
    x, y = _pair(NMI_SHAPE, "cpu", uint8=True)
    a = [t.numpy().ravel() for t in x]
    b = [t.numpy().ravel() for t in y]
    return lambda: [metrics.normalized_mutual_info_score(p, q) for p, q in zip(a, b)]


def _nmi_skimage(device: str) -> Callable[[], object]:
    _cpu_only(device)
    metrics = import_backend("skimage.metrics")
    x, y = _pair(NMI_SHAPE, "cpu", uint8=True)
    a = [t.numpy() for t in x]
    b = [t.numpy() for t in y]
    return lambda: [metrics.normalized_mutual_information(p, q, bins=BINS) for p, q in zip(a, b)]


# --------------------------------------------------------------------------- histogram similarity

HIST_SHAPE = (4, 3, 256, 256)


def _hist_torchsim(device: str) -> Callable[[], object]:
    ts = import_backend("torchsim")
    x, y = _pair(HIST_SHAPE, device, uint8=True)
    return lambda: ts.histogram_similarity(x, y, bins=BINS, method="correlation")


def _hist_opencv(device: str) -> Callable[[], object]:
    _cpu_only(device)
    cv2 = import_backend("cv2")
    x, y = _pair(HIST_SHAPE, "cpu", uint8=True)
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

SOFT_SHAPE = (4, 1, 256, 256)
MEMORY_SHAPE = (1, 1, 1024, 1024)


def _fwd_bwd(x: torch.Tensor, loss: Callable[[], torch.Tensor]) -> Callable[[], object]:
    def run():
        x.grad = None
        value = loss()
        value.backward()
        return value

    return run


def _soft_torchsim(shape, bins: int = BINS):
    def factory(device: str) -> Callable[[], object]:
        ts = import_backend("torchsim")
        x, y = _pair(shape, device, uint8=False, requires_grad=True)
        return _fwd_bwd(x, lambda: 1 - ts.normalized_mutual_information(x, y, bins=bins, bandwidth=1.0))

    return factory


def _soft_monai(shape):
    def factory(device: str) -> Callable[[], object]:
        losses = import_backend("monai.losses")
        loss_fn = losses.GlobalMutualInformationLoss(num_bins=23)  # Gaussian Parzen window, its default
        x, y = _pair(shape, device, uint8=False, requires_grad=True)
        return _fwd_bwd(x, lambda: loss_fn(x, y))

    return factory


def _soft_kornia(shape):
    def factory(device: str) -> Callable[[], object]:
        kl = import_backend("kornia.losses")
        fn = getattr(kl, "normalized_mutual_information_loss_2d", None)
        if fn is None:
            raise Skip("this kornia has no normalized_mutual_information_loss_2d")
        x, y = _pair(shape, device, uint8=False, requires_grad=True)
        return _fwd_bwd(x, lambda: fn(x[:, 0], y[:, 0], num_bins=64).mean())  # Xu kernel, its default 64 bins

    return factory


def cases(device: str) -> List[Case]:
    return [
        Case(
            f"exact NMI, 256 bins, {'x'.join(map(str, NMI_SHAPE))} uint8",
            {
                "torchsim": lambda: _nmi_torchsim(device),
                "torchsim (studholme, minmax)": lambda: _nmi_torchsim_studholme(device),
                "sklearn normalized_mutual_info_score": lambda: _nmi_sklearn(device),
                "skimage normalized_mutual_information": lambda: _nmi_skimage(device),
            },
        ),
        Case(
            f"histogram correlation, 256 bins, {'x'.join(map(str, HIST_SHAPE))} uint8",
            {
                "torchsim": lambda: _hist_torchsim(device),
                "opencv calcHist+compareHist": lambda: _hist_opencv(device),
            },
        ),
        Case(
            f"soft NMI loss forward+backward, {'x'.join(map(str, SOFT_SHAPE))} float32",
            {
                "torchsim": lambda: _soft_torchsim(SOFT_SHAPE)(device),
                "torchsim (64 bins)": lambda: _soft_torchsim(SOFT_SHAPE, 64)(device),
                "monai GlobalMutualInformationLoss (23 bins)": lambda: _soft_monai(SOFT_SHAPE)(device),
                "kornia normalized_mutual_information_loss_2d (64 bins)": lambda: _soft_kornia(SOFT_SHAPE)(device),
            },
        ),
        Case(
            f"soft NMI loss forward+backward peak memory, {'x'.join(map(str, MEMORY_SHAPE))} float32",
            {
                "torchsim": lambda: _soft_torchsim(MEMORY_SHAPE)(device),
                "monai GlobalMutualInformationLoss (23 bins)": lambda: _soft_monai(MEMORY_SHAPE)(device),
                "kornia normalized_mutual_information_loss_2d (64 bins)": lambda: _soft_kornia(MEMORY_SHAPE)(device),
            },
            kind="memory",
        ),
    ]


if __name__ == "__main__":
    import torchsim

    x, y = _pair(NMI_SHAPE, "cpu", uint8=True)
    print("exact NMI (arithmetic):", torchsim.normalized_mutual_information(x, y, reduction="none").tolist())
    print("sklearn               :", _nmi_sklearn("cpu")())
    print("torchsim studholme    :", torchsim.normalized_mutual_information(
        x, y, value_range="minmax", normalization="studholme", reduction="none").tolist())
    print("skimage               :", _nmi_skimage("cpu")())
    xh, yh = _pair(HIST_SHAPE, "cpu", uint8=True)
    print("hist correlation      :", torchsim.histogram_similarity(xh, yh, reduction="none").tolist())
    print("opencv                :", _hist_opencv("cpu")())
