"""Core metrics — SSIM, MS-SSIM, PSNR, MSE — timed side by side with the other libraries.

Inputs: photo crops and a noisy copy (``benchmarks/inputs.py``, float32 in [0, 1]). Every backend is configured for the computation torchsim does by default
(Gaussian window 11 / sigma 1.5, K = (0.01, 0.03), data_range = 1.0, float32,
SSIM averaged over the valid region, per channel, then over channels and
images) as far as its library allows; where a library computes something
else, its helper says so in a comment. ``python -m benchmarks.cases_core``
prints every backend's value next to torchsim's on the benchmark input, so the
"same computation" claim can be checked.

Each ``_<library>()`` helper imports its library (``ImportError`` -> the
harness reports the backend as skipped) and returns ``{op: fn(x, y)}``; an op
a library lacks is simply absent (-> ``Skip``). ``"prepare"`` converts the
torch inputs once, in the factory (scikit-image wants numpy arrays).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Tuple

import torch

from benchmarks.harness import Registry, Skip, import_backend
from benchmarks.inputs import pair, shape_name, sized

DATA_RANGE = 1.0
SSIM_SHAPES = [(16, 3, 256, 256), (1, 3, 1024, 1024), (4, 1, 512, 512)]
MS_SSIM_SHAPE = (8, 3, 256, 256)
MS_SSIM_MIN_SIDE = 176  # five scales of an 11-tap window; torchmetrics wants side // 16 > 10
PIXEL_SHAPE = (16, 3, 256, 256)
MEMORY_SHAPE = (16, 3, 256, 256)

Ops = Dict[str, Callable]


# --------------------------------------------------------------------------- one helper per library


def _torchsim() -> Ops:
    # Read from torchsim.registry, as the command line does: the function, whether it takes
    # data_range, and the loss class its record names (SSIMLoss = 1 - ssim, mean over the batch).
    import_backend("torchsim")
    from torchsim import registry

    def metric(name: str):
        rec = registry.get(name)
        kw = {"data_range": DATA_RANGE} if rec.needs_data_range else {}
        return lambda x, y: rec.function(x, y, **kw)

    def loss(name: str):
        rec = registry.get(name)
        fn = rec.loss(**({"data_range": DATA_RANGE} if rec.needs_data_range else {}))
        return lambda x, y: fn(x, y)

    return {
        "ssim": metric("ssim"),
        "ssim_loss": loss("ssim"),
        "ms_ssim_loss": loss("ms_ssim"),
        "psnr": metric("psnr"),
        "mse": metric("mse"),
    }


def _pytorch_msssim() -> Ops:
    # Same convention as torchsim: separable float32 Gaussian, valid region, per-channel means.
    pm = import_backend("pytorch_msssim")
    kw = dict(data_range=DATA_RANGE, win_size=11, win_sigma=1.5, K=(0.01, 0.03))
    return {
        "ssim": lambda x, y: pm.ssim(x, y, **kw),
        "ssim_loss": lambda x, y: 1 - pm.ssim(x, y, **kw),
        "ms_ssim_loss": lambda x, y: 1 - pm.ms_ssim(x, y, **kw),
    }


def _piq() -> Ops:
    # Valid region, 2-D (non-separable) 11x11 Gaussian conv. downsample=False: piq's default
    # downsample=True would apply Wang's automatic downsampling (f = round(min(H, W) / 256),
    # i.e. a different image at 512 and 1024 px). piq checks on every call that inputs lie in
    # [0, data_range] (a host sync per call); psnr adds eps=1e-8 to the MSE.
    piq = import_backend("piq")
    kw = dict(kernel_size=11, kernel_sigma=1.5, data_range=DATA_RANGE, k1=0.01, k2=0.03)
    return {
        "ssim": lambda x, y: piq.ssim(x, y, downsample=False, **kw),
        "ssim_loss": lambda x, y: 1 - piq.ssim(x, y, downsample=False, **kw),
        "ms_ssim_loss": lambda x, y: 1 - piq.multi_scale_ssim(x, y, **kw),
        "psnr": lambda x, y: piq.psnr(x, y, data_range=DATA_RANGE),
    }


def _torchmetrics() -> Ops:
    # SSIM: reflect-pads by 5 and averages the *full-size* map ("same" region, reflect
    # boundary); to get the valid region as torchsim we take the map (return_full_image=True)
    # and crop its 5-pixel border — same work, plus a slice. MS-SSIM cannot be configured so:
    # its contrast terms are cropped to the valid region, but the last scale's SSIM term is the
    # reflect-padded full-size mean (value differs ~1e-5), and it computes the full SSIM map at
    # every scale. PSNR with dim=(1, 2, 3): one value per image, then the mean (as torchsim);
    # the default dim=None would be the PSNR of the whole batch's MSE.
    tmf = import_backend("torchmetrics.functional")  # mean_squared_error
    tmi = import_backend("torchmetrics.functional.image")  # the image metrics (their non-deprecated home)
    kw = dict(gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=DATA_RANGE, k1=0.01, k2=0.03)

    def ssim(x, y):
        _, ssim_map = tmi.structural_similarity_index_measure(x, y, return_full_image=True, **kw)
        return ssim_map[..., 5:-5, 5:-5].mean()

    return {
        "ssim": ssim,
        "ssim_loss": lambda x, y: 1 - ssim(x, y),
        "ms_ssim_loss": lambda x, y: 1 - tmi.multiscale_structural_similarity_index_measure(x, y, **kw),
        "psnr": lambda x, y: tmi.peak_signal_noise_ratio(x, y, data_range=DATA_RANGE, dim=(1, 2, 3)),
        "mse": lambda x, y: tmf.mean_squared_error(x, y),
    }


def _kornia() -> Ops:
    # kornia.metrics.ssim returns the SSIM map; padding="valid" restricts it to the valid
    # region (kornia's default "same" zero-pads and averages the borders in). The loss is
    # kornia.losses.ssim_loss = mean(clamp((1 - map) / 2, 0, 1)): half of 1 - ssim, same work.
    # kornia.metrics.psnr is the PSNR of the whole batch's MSE, not the mean of per-image PSNRs.
    # No MS-SSIM and no MSE function in kornia.
    kornia = import_backend("kornia")
    return {
        "ssim": lambda x, y: kornia.metrics.ssim(x, y, 11, max_val=DATA_RANGE, padding="valid").mean(),
        "ssim_loss": lambda x, y: kornia.losses.ssim_loss(x, y, 11, max_val=DATA_RANGE, padding="valid"),
        "psnr": lambda x, y: kornia.metrics.psnr(x, y, max_val=DATA_RANGE),
    }


def _monai() -> Ops:
    # Valid region, 2-D Gaussian conv with a sampled, normalised kernel (as torchsim). SSIMMetric
    # is a cumulative metric: each call appends to its buffer, so it is reset after each call.
    monai = import_backend("monai")
    kw = dict(spatial_dims=2, data_range=DATA_RANGE, kernel_type="gaussian", win_size=11, kernel_sigma=1.5, k1=0.01, k2=0.03)
    metric = monai.metrics.SSIMMetric(**kw)
    loss = monai.losses.SSIMLoss(**kw)

    def ssim(x, y):
        value = metric(x, y).mean()  # (N, 1) per-image SSIM
        metric.reset()
        return value

    return {"ssim": ssim, "ssim_loss": loss}


def _skimage() -> Ops:
    # Reference convention (torchsim's default equals it); numpy, forward only, float32 in,
    # a Python loop over the batch. Inputs are converted to numpy once, in the factory.
    skm = import_backend("skimage.metrics")

    def per_image(f, **kw):
        return lambda x, y: sum(f(a, b, **kw) for a, b in zip(x, y)) / len(x)

    return {
        "prepare": lambda t: t.detach().cpu().numpy(),
        "ssim": per_image(
            skm.structural_similarity,
            gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=DATA_RANGE, channel_axis=0,
        ),
        "psnr": per_image(skm.peak_signal_noise_ratio, data_range=DATA_RANGE),
        "mse": per_image(skm.mean_squared_error),
    }


def _torch() -> Ops:
    # Plain-torch baseline for the pixel metrics (the least work anyone could do).
    return {
        "psnr": lambda x, y: (10 * torch.log10(DATA_RANGE**2 / ((x - y) ** 2).mean(dim=(1, 2, 3)))).mean(),
        "mse": lambda x, y: ((x - y) ** 2).mean(),
    }


LIBRARIES: Dict[str, Callable[[], Ops]] = {
    "torchsim": _torchsim,
    "pytorch_msssim": _pytorch_msssim,
    "piq": _piq,
    "torchmetrics": _torchmetrics,
    "kornia": _kornia,
    "monai": _monai,
    "skimage": _skimage,
    "torch": _torch,
}


# --------------------------------------------------------------------------- factories


def _op(lib: str, op: str) -> Tuple[Callable, Callable]:
    ops = LIBRARIES[lib]()
    if op not in ops:
        raise Skip(f"{lib} has no {op}")
    return ops[op], ops.get("prepare", lambda t: t)


def _forward(lib: str, op: str, shape, device: str):
    def factory():
        fn, prepare = _op(lib, op)
        x, y = pair(shape, device=device)
        x, y = prepare(x), prepare(y)

        def call():
            with torch.no_grad():
                return fn(x, y)

        return call

    return factory


def _forward_backward(lib: str, op: str, shape, device: str):
    """``op`` is a loss (1 - similarity); the call runs it, backpropagates to x, clears x.grad."""

    def factory():
        fn, _ = _op(lib, op)
        x, y = pair(shape, device=device, requires_grad=True)

        def call():
            fn(x, y).backward()
            x.grad = None

        return call

    return factory


def _backends(libs: List[str], make, op: str, shape, device: str):
    return {lib: make(lib, op, shape, device) for lib in libs}


SSIM_LIBS = ["torchsim", "pytorch_msssim", "piq", "torchmetrics", "kornia", "monai", "skimage"]
SSIM_GRAD_LIBS = [lib for lib in SSIM_LIBS if lib != "skimage"]  # skimage has no gradient
MS_SSIM_LIBS = ["torchsim", "pytorch_msssim", "piq", "torchmetrics"]
PSNR_LIBS = ["torchsim", "torchmetrics", "piq", "kornia", "skimage", "torch"]
MSE_LIBS = ["torchsim", "torchmetrics", "skimage", "torch"]


def cases(device: str, quick: bool = False) -> Registry:
    out = {}
    for shape in (sized(s, quick) for s in SSIM_SHAPES):
        out[f"ssim fwd {shape_name(shape)}"] = _backends(SSIM_LIBS, _forward, "ssim", shape, device)
    for shape in (sized(s, quick) for s in SSIM_SHAPES):
        out[f"ssim fwd+bwd {shape_name(shape)}"] = _backends(SSIM_GRAD_LIBS, _forward_backward, "ssim_loss", shape, device)
    shape = sized(MS_SSIM_SHAPE, quick, MS_SSIM_MIN_SIDE)
    out[f"ms_ssim fwd+bwd {shape_name(shape)}"] = _backends(MS_SSIM_LIBS, _forward_backward, "ms_ssim_loss", shape, device)
    shape = sized(PIXEL_SHAPE, quick)
    out[f"psnr {shape_name(shape)}"] = _backends(PSNR_LIBS, _forward, "psnr", shape, device)
    out[f"mse {shape_name(shape)}"] = _backends(MSE_LIBS, _forward, "mse", shape, device)
    return out


def memory_cases(device: str, quick: bool = False) -> Registry:
    shape = sized(MEMORY_SHAPE, quick)
    return {
        f"ssim fwd+bwd peak memory {shape_name(shape)}": _backends(
            SSIM_GRAD_LIBS, _forward_backward, "ssim_loss", shape, device
        )
    }


def _check(device: str = "cpu") -> None:
    """Print every backend's value next to torchsim's on the 16x3x256x256 (8x3x256x256 for
    MS-SSIM) benchmark inputs (kornia's ssim_loss is (1 - ssim) / 2 by design)."""
    checks = [("ssim", SSIM_SHAPES[0], SSIM_LIBS), ("ssim_loss", SSIM_SHAPES[0], SSIM_GRAD_LIBS),
              ("ms_ssim_loss", MS_SSIM_SHAPE, MS_SSIM_LIBS),
              ("psnr", PIXEL_SHAPE, PSNR_LIBS), ("mse", PIXEL_SHAPE, MSE_LIBS)]
    for op, shape, libs in checks:
        ref = None
        for lib in libs:
            try:
                fn, prepare = _op(lib, op)
            except (ImportError, Skip) as exc:
                print(f"{op:13s} {lib:15s} skipped: {exc}")
                continue
            x, y = pair(shape, device=device)
            try:
                with torch.no_grad():
                    value = float(fn(prepare(x), prepare(y)))
            except Exception as exc:  # report, as the harness does, and go on
                print(f"{op:13s} {lib:15s} error: {type(exc).__name__}: {exc}")
                continue
            ref = value if ref is None else ref
            print(f"{op:13s} {lib:15s} {value:.7f}  (diff vs torchsim {value - ref:+.2e})")


if __name__ == "__main__":
    _check()
