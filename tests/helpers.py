"""Shared test utilities, written once for every test file.

* Random inputs: ``rand`` (seeded, drawn in float64 on the CPU, then cast and moved, so every
  dtype and device sees the same numbers) and ``pair`` (an image and a noisy copy).
* Real photographs and realistic distortions: ``PHOTOS``, ``load_photos``, ``photo_u8``,
  ``crop``, ``photo_pair``, ``to_nchw``, ``u8``, ``noise`` / ``blur`` / ``jpeg``, ``DISTORTIONS``.
* Tolerances: ``TOL[kind][dtype]`` for ``torch.testing.assert_close``.
* Gradients: ``assert_gradcheck`` (float64 ``torch.autograd.gradcheck``), ``value_and_grads``,
  ``assert_finite_gradients`` and ``degenerate_pairs`` (identical, constant and
  zero-variance inputs; ``IDENTICAL`` names those where x equals y).
* ``METRIC_CASES``: the metric configurations that every device test runs.
* ``free_port`` for the torch.distributed tests.

Reference implementations ported from other projects live in ``tests/reference/ports.py``.
"""

from __future__ import annotations

import functools
import io
import socket
from typing import Callable, Dict, Optional, Tuple

import numpy as np
import torch
from torch.autograd import gradcheck

import torchsim

# --------------------------------------------------------------------------- random inputs


def rand(*shape, seed: int = 0, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """U[0, 1) of ``shape`` (sizes or one tuple), drawn in float64 on the CPU from ``seed``, then
    cast to ``dtype`` and moved to ``device``: the same numbers, up to rounding, everywhere."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)


def pair(*shape, seed: int = 0, noise: float = 0.2, dtype: torch.dtype = torch.float64, device=None):
    """``(x, y)``: x ~ U[0, 1) and ``y = clamp(x + noise * (U[0, 1) - 0.5), 0, 1)``, computed in
    float64 (seeds ``seed`` and ``seed + 1``), then cast and moved."""
    x = rand(*shape, seed=seed)
    y = (x + noise * (rand(*shape, seed=seed + 1) - 0.5)).clamp(0, 1)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


# --------------------------------------------------------------------------- real photographs

PHOTOS = ("astronaut", "coffee", "chelsea", "camera")  # camera is gray


@functools.lru_cache(maxsize=None)
def _skimage_photo(name: str) -> np.ndarray:
    from skimage import data

    a = getattr(data, name)()
    a.setflags(write=False)
    return a


def photo_u8(name: str, *, size: Optional[Tuple[int, int]] = None, rgb: bool = False) -> np.ndarray:
    """``skimage.data.<name>()`` as a writable uint8 array (HxW, HxWx3 or HxWx4).

    ``rgb=True`` converts with Pillow's ``convert("RGB")``; ``size=(width, height)`` resizes with
    Pillow's bilinear filter.
    """
    a = _skimage_photo(name)
    if not rgb and size is None:
        return a.copy()
    from PIL import Image

    img = Image.fromarray(a)
    if rgb:
        img = img.convert("RGB")
    if size is not None:
        img = img.resize(size, Image.BILINEAR)
    return np.asarray(img).copy()


def load_photos() -> Dict[str, np.ndarray]:
    """The ``PHOTOS`` as float64 arrays in [0, 1] (HxWx3, camera HxW)."""
    return {name: photo_u8(name) / 255.0 for name in PHOTOS}


def crop(img: np.ndarray, h: int, w: int, top: int = 0, left: int = 0) -> np.ndarray:
    return np.ascontiguousarray(img[top : top + h, left : left + w])


def photo_pair(img: np.ndarray, distortion: str, h: int, w: int, top: int = 0, left: int = 0, gray: bool = False):
    """``(reference, distorted)``: an ``h`` x ``w`` crop of ``img`` and ``DISTORTIONS[distortion]``
    of it (``gray=True``: of its ``skimage.color.rgb2gray`` first)."""
    if gray and img.ndim == 3:
        from skimage.color import rgb2gray

        img = rgb2gray(img)
    ref = crop(img, h, w, top, left)
    return ref, DISTORTIONS[distortion](ref)


def to_nchw(a: np.ndarray, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
    """HxW or HxWxC numpy image -> (1, C, H, W) tensor (same dtype unless ``dtype`` is given)."""
    t = torch.from_numpy(np.array(a, copy=True))
    t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
    return t[None].contiguous().to(device=device, dtype=dtype)


def u8(a: np.ndarray) -> np.ndarray:
    """A [0, 1] float image quantised to uint8 as an 8-bit file stores it."""
    return np.round(np.clip(a, 0.0, 1.0) * 255).astype(np.uint8)


def noise(img: np.ndarray, sigma: float = 0.05, seed: int = 0) -> np.ndarray:
    """Additive Gaussian noise on a [0, 1] float image, clipped to [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(img + rng.normal(0.0, sigma, img.shape), 0.0, 1.0)


def blur(img: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Gaussian blur of each channel (scipy.ndimage)."""
    from scipy.ndimage import gaussian_filter

    s = (sigma, sigma) + ((0,) if img.ndim == 3 else ())
    return gaussian_filter(img, sigma=s)


def jpeg(img: np.ndarray, quality: int = 20) -> np.ndarray:
    """JPEG round trip with Pillow at ``quality``; returns float in [0, 1]."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(u8(img)).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf)).astype(np.float64) / 255.0


def bicubic(img: np.ndarray, scale: int = 4) -> np.ndarray:
    """Super-resolution baseline: Pillow bicubic down by ``scale`` and back up to the same size
    (8-bit, as SR folders store it); returns float in [0, 1]."""
    from PIL import Image

    full = Image.fromarray(u8(img))
    w, h = full.size
    small = full.resize((max(1, w // scale), max(1, h // scale)), Image.BICUBIC)
    return np.asarray(small.resize((w, h), Image.BICUBIC)).astype(np.float64) / 255.0


def color_shift(img: np.ndarray) -> np.ndarray:
    """A white-balance / exposure change: per-channel gain and offset (gamma 1.1 on gray), clipped to [0, 1]."""
    if img.ndim == 2:
        return np.clip(img, 0, 1) ** 1.1
    gain = np.array([1.06, 0.97, 1.02])[: img.shape[2]]
    offset = np.array([0.02, -0.01, 0.0])[: img.shape[2]]
    return np.clip(img * gain + offset, 0.0, 1.0)


DISTORTIONS = {"noise": noise, "blur": blur, "jpeg": jpeg}
#: every realistic distortion, for the agreement report (``DISTORTIONS`` keeps the tests' original three)
ALL_DISTORTIONS = {**DISTORTIONS, "resize": lambda img: bicubic(img, 2), "color_shift": color_shift}


# --------------------------------------------------------------------------- tolerances

# ``torch.testing.assert_close`` keyword arguments, by kind of comparison and dtype.
TOL = {
    # torchsim against a reference evaluated (in float64) on the same input values
    "reference": {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-12)},
    # the same call on another device: values, then gradients
    "device": {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)},
    "device_grad": {torch.float32: dict(rtol=1e-4, atol=1e-6), torch.float64: dict(rtol=1e-8, atol=1e-12)},
    # a gradient that must vanish (identical images, at the metric's maximum)
    "zero_grad": {torch.float32: dict(rtol=0, atol=1e-5), torch.float64: dict(rtol=0, atol=1e-10)},
    # a half / bfloat16 input against the float32 result on the unrounded values
    "half": {torch.float16: dict(rtol=2e-3, atol=2e-3), torch.bfloat16: dict(rtol=2e-2, atol=2e-2)},
}


# --------------------------------------------------------------------------- gradients


def assert_gradcheck(fn: Callable, *inputs: torch.Tensor, **kwargs) -> None:
    """``torch.autograd.gradcheck(fn, inputs)`` on float64 copies of ``inputs`` that require grad
    (same device); ``kwargs`` go to gradcheck (e.g. ``fast_mode=True``)."""
    args = tuple(t.detach().to(torch.float64).clone().requires_grad_(True) for t in inputs)
    assert gradcheck(fn, args, **kwargs)


def value_and_grads(fn: Callable, x: torch.Tensor, y: torch.Tensor, **kw):
    """``(out, gx, gy)``: ``fn(x, y, **kw)`` (detached) and the gradients of the sum of its outputs
    (value and map, for a tuple) with respect to copies of ``x`` and ``y``."""
    x = x.detach().clone().requires_grad_(True)
    y = y.detach().clone().requires_grad_(True)
    out = fn(x, y, **kw)
    outs = out if isinstance(out, tuple) else (out,)
    gx, gy = torch.autograd.grad(sum(o.sum() for o in outs), (x, y))
    if isinstance(out, tuple):
        return tuple(o.detach() for o in out), gx, gy
    return out.detach(), gx, gy


def assert_finite_gradients(fn: Callable, x: torch.Tensor, y: torch.Tensor, *, finite_value: bool = True, **kw):
    """``value_and_grads``, asserting finite gradients (and, unless ``finite_value=False``, finite
    outputs: PSNR of identical images is +inf by definition)."""
    out, gx, gy = value_and_grads(fn, x, y, **kw)
    if finite_value:
        for o in out if isinstance(out, tuple) else (out,):
            assert torch.isfinite(o).all(), o
    assert torch.isfinite(gx).all() and torch.isfinite(gy).all()
    return out, gx, gy


# pairs in degenerate_pairs whose two images are equal
IDENTICAL = frozenset({"identical", "const-half", "const-zero", "const-one", "block-identical"})


def degenerate_pairs(*shape, dtype: torch.dtype = torch.float64, device=None, seed: int = 0) -> Dict[str, tuple]:
    """``{name: (x, y)}``: the inputs where a careless formula divides by zero or takes the root
    of zero: identical images, constant images (whole image zero variance), a flat image with
    one bright block (most windows zero variance), a constant against a random image, and an
    image against its negative ``1 - x``."""
    r = rand(*shape, seed=seed)
    zeros = torch.zeros_like(r)
    ones = torch.ones_like(r)
    half = torch.full_like(r, 0.5)
    h, w = r.shape[-2:]
    side = max(2, min(h, w) // 6)
    block = zeros.clone()
    block[..., h * 3 // 8 : h * 3 // 8 + side, w * 5 // 16 : w * 5 // 16 + side] = 1.0
    cases = {
        "identical": (r, r.clone()),
        "const-half": (half, half.clone()),
        "const-zero": (zeros, zeros.clone()),
        "const-one": (ones, ones.clone()),
        "zero-vs-one": (zeros, ones),
        "one-vs-zero": (ones, zeros),
        "const-vs-zero": (half, zeros),
        "const-vs-random": (half, r),
        "zero-vs-random": (zeros, r),
        "random-vs-zero": (r, zeros),
        "block-identical": (block, block.clone()),
        "block-vs-dim-block": (block, 0.7 * block),
        "block-vs-zero": (block, zeros),
        "x-vs-1-x": (r, 1 - r),
    }
    return {k: (a.to(device=device, dtype=dtype), b.to(device=device, dtype=dtype)) for k, (a, b) in cases.items()}


# --------------------------------------------------------------------------- metric configurations

MS_SMALL = dict(kernel_size=3, weights=(0.3, 0.3, 0.4))  # MS-SSIM with min side (3 - 1) * 2**2 + 1 = 9

# (name, function, keyword arguments, image shape): every family's device tests run these
METRIC_CASES = [
    ("mse", torchsim.mse, {}, (2, 3, 32, 33)),
    ("psnr", torchsim.psnr, dict(data_range=1.0), (2, 3, 32, 33)),
    ("cosine_similarity", torchsim.cosine_similarity, {}, (2, 3, 32, 33)),
    ("ssim", torchsim.ssim, dict(data_range=1.0), (2, 3, 32, 33)),
    ("ssim-skimage", torchsim.ssim, dict(data_range=1.0, gaussian=False, kernel_size=7, sample_covariance=True), (2, 3, 32, 33)),
    ("ssim-downsample", torchsim.ssim, dict(data_range=1.0, downsample=True), (1, 3, 640, 650)),
    ("ssim-3d", torchsim.ssim, dict(data_range=1.0), (1, 2, 14, 15, 16)),
    ("ms_ssim", torchsim.ms_ssim, dict(data_range=1.0), (2, 3, 161, 170)),
    ("ms_ssim-small", torchsim.ms_ssim, dict(data_range=1.0, **MS_SMALL), (2, 3, 20, 21)),
]


def metric_cases(*fns: Callable, exclude=()) -> list:
    """``METRIC_CASES`` of the functions ``fns`` (all when none given), minus the names in
    ``exclude``, as ``pytest.param``s with the name as id."""
    import pytest

    return [
        pytest.param(*case, id=case[0])
        for case in METRIC_CASES
        if (not fns or case[1] in fns) and case[0] not in exclude
    ]


# --------------------------------------------------------------------------- the same checks on every device
# Each family's device tests call these with its METRIC_CASES and the ``device`` fixture: on
# CUDA they compare with the CPU; on the CPU they run the same code paths.


def assert_device_equals_cpu(fn: Callable, kw: dict, shape, dtype: torch.dtype, device) -> None:
    """Per-image values and both gradients on ``device`` equal the CPU's."""
    x, y = pair(*shape, dtype=dtype)
    v_cpu, gx_cpu, gy_cpu = value_and_grads(fn, x, y, reduction="none", **kw)
    v, gx, gy = value_and_grads(fn, x.to(device), y.to(device), reduction="none", **kw)
    assert v.device.type == device.type and v.dtype == dtype and gx.dtype == dtype
    torch.testing.assert_close(v.cpu(), v_cpu, **TOL["device"][dtype])
    torch.testing.assert_close(gx.cpu(), gx_cpu, **TOL["device_grad"][dtype])
    torch.testing.assert_close(gy.cpu(), gy_cpu, **TOL["device_grad"][dtype])


def assert_half_computes_in_float32(fn: Callable, kw: dict, shape, low: torch.dtype, device) -> None:
    """float16 / bfloat16 images give a finite float32 result: the float32 computation on the
    same (rounded) values."""
    x, y = pair(*shape, dtype=torch.float32)
    xl, yl = x.to(low).to(device), y.to(low).to(device)
    out = fn(xl, yl, reduction="none", **kw)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, fn(xl.float(), yl.float(), reduction="none", **kw), **TOL["device"][torch.float32])
    assert torch.isfinite(out).all()


def assert_autocast_computes_in_float32(fn: Callable, kw: dict, shape, device) -> None:
    """Under float16 and bfloat16 autocast the result is float32 and equals the float32 result."""
    x, y = pair(*shape, dtype=torch.float32, device=device)
    ref = fn(x, y, reduction="none", **kw)
    for dt in (torch.float16, torch.bfloat16):
        with torch.autocast(device.type, dtype=dt):
            out = fn(x, y, reduction="none", **kw)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)


def assert_per_image_data_range_on_device(fn: Callable, kw: dict, device) -> None:
    """One data_range per image (a tensor on the device), and a CPU scalar tensor range with images
    on the device, give the CPU's values."""
    ranges = torch.tensor([1.0, 255.0, 3.0], dtype=torch.float64)
    x, y = pair(3, 3, 24, 25)
    x, y = x * ranges.reshape(3, 1, 1, 1), y * ranges.reshape(3, 1, 1, 1)
    ref = fn(x, y, data_range=ranges, reduction="none", **kw)
    out = fn(x.to(device), y.to(device), data_range=ranges.to(device), reduction="none", **kw)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        fn(x.to(device), y.to(device), data_range=torch.tensor(255.0), reduction="none", **kw).cpu(),
        fn(x, y, data_range=255.0, reduction="none", **kw),
        rtol=1e-10, atol=1e-12,
    )


def assert_uint8_on_device_equals_cpu(fn: Callable, device) -> None:
    """uint8 images (data_range 255 by default) give the CPU's value on ``device``."""
    x, y = pair(2, 3, 32, 33, dtype=torch.float32)
    xu, yu = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    torch.testing.assert_close(fn(xu.to(device), yu.to(device)).cpu(), fn(xu, yu), rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a torch.distributed rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def planted_hashes(n: int, bits: int, seed: int, flips: int = 6) -> np.ndarray:
    """``(n, bits)`` random bool hashes, the first third copies of later ones with 0..flips bits flipped."""
    g = np.random.default_rng(seed)
    h = g.random((n, bits)) > 0.5
    k = n // 3
    h[:k] = h[g.integers(k, n, k)]
    for t in range(k):
        h[t, g.integers(0, bits, g.integers(0, flips + 1))] ^= True
    return h
