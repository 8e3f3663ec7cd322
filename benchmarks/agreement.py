"""The agreement report: every convention and metric family against its reference implementation.

    python -m benchmarks.agreement [--quick] [--out docs/AGREEMENT.md] [--only TEXT]

Each row scores real photographs (``skimage.data``) against realistic distortions of
themselves (JPEG, blur, noise, a bicubic down-and-up resize, a colour shift) with
torchsim and with the reference — the installed PyPI package, a transcription of a
reference that is not on PyPI (Wang's ``ssim.m``, BasicSR), or a binary (``ffmpeg``) —
in float32 and float64, and reports the number of images, the largest absolute and
relative difference and whether both are within the row's stated tolerance. A
reference that cannot run here (not installed, no binary) gives a skipped row with the
reason; ``TensorFlow`` runs in this interpreter when it imports, else in the
interpreter named by ``TORCHSIM_TF_PYTHON`` (an environment with ``tensorflow-cpu``
and NumPy only), else it is skipped.

``--quick`` scores three small crops with three distortions (a few seconds; the CI test
``tests/test_agreement.py`` runs it); the full run writes ``docs/AGREEMENT.md``.
The reference callables are importable (``tests/reference`` compares against them).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.metadata
import inspect
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

import torchsim
from tests.reference import ports
from torchsim import conventions

Array = np.ndarray


class Skip(Exception):
    """A reference that cannot run here; the message is the reason."""


# --------------------------------------------------------------------------- images


#: (name, crop) of the photographs: ``skimage.data`` names, cropped to at most ``crop`` per side
#: RGB portraits, a food and an animal photo, a gray photo, a microscope slide and a telescope field;
#: hubble_deep_field's 640 px crop is where ssim.m's and piq's downsampling factors differ (3 and 2)
FULL_IMAGES = ("astronaut", "coffee", "chelsea", "camera", "immunohistochemistry", "hubble_deep_field")
FULL_CROP = 640
QUICK_IMAGES = {"astronaut": (176, 181)}  # MS-SSIM needs 176 px; an odd side
QUICK_DISTORTIONS = ("jpeg", "noise")
QUICK_SIDE = 97  # the other rows see a smaller crop in --quick


@dataclasses.dataclass
class Photo:
    """One photograph and its distortions: ``ref`` ``(1, C, H, W)`` and ``dist`` ``(D, C, H, W)``, float64 in [0, 1]."""

    name: str
    ref: torch.Tensor
    dist: torch.Tensor
    distortions: Tuple[str, ...]

    def pair(self, dtype: torch.dtype) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``: the photo repeated and its distortions, ``(D, C, H, W)`` in ``dtype`` (uint8 quantised)."""
        x = self.ref.expand_as(self.dist)
        if dtype == torch.uint8:
            return _u8(x), _u8(self.dist)
        return x.to(dtype).contiguous(), self.dist.to(dtype).contiguous()


def _u8(t: torch.Tensor) -> torch.Tensor:
    return torch.round(t.clamp(0, 1) * 255).to(torch.uint8)


def _center(a: Array, h: int, w: int) -> Array:
    top, left = (a.shape[0] - h) // 2, (a.shape[1] - w) // 2
    return a[top : top + h, left : left + w]


def photos(quick: bool = False) -> List[Photo]:
    """The photographs and their distortions (8-bit sources, read as float64 in [0, 1])."""
    from skimage import data

    from tests.helpers import ALL_DISTORTIONS, to_nchw

    names = QUICK_DISTORTIONS if quick else tuple(ALL_DISTORTIONS)
    out = []
    for name in QUICK_IMAGES if quick else FULL_IMAGES:
        img = getattr(data, name)()
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        if quick:
            img = _center(img, *QUICK_IMAGES[name])
        else:
            img = _center(img, min(img.shape[0], FULL_CROP), min(img.shape[1], FULL_CROP))
        a = np.ascontiguousarray(img).astype(np.float64) / 255.0
        dist = [np.round(ALL_DISTORTIONS[d](a) * 255) / 255 for d in names]  # what an 8-bit file holds
        out.append(Photo(name, to_nchw(a), torch.cat([to_nchw(d) for d in dist]), names))
    return out


# --------------------------------------------------------------------------- binaries: ffmpeg, TensorFlow


def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise Skip("the ffmpeg binary is not on PATH (Debian: apt-get install ffmpeg)")
    return exe


def ffmpeg_version() -> str:
    out = subprocess.run([_ffmpeg(), "-version"], capture_output=True, text=True, check=True).stdout
    return out.split()[2] if out.startswith("ffmpeg version") else "?"


def ffmpeg_score(a: Array, b: Array, filt: str, simd: bool = False) -> float:
    """ffmpeg's ``ssim`` or ``psnr`` filter on two 8-bit images, HxW (gray8) or HxWx3 (rgb24, which
    ffmpeg scores as gbrp planes): its "All" / "average" value over the planes.

    ``simd=False`` runs the filter's C code (``-cpuflags 0``); ``True`` its default, the x86 SIMD
    code, which in FFmpeg 5.1 computes a different SSIM (by ~3e-3) when ``W / 4 ≡ 2 (mod 4)``."""
    from PIL import Image

    exe = _ffmpeg()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f"{i}.png") for i in range(2)]
        for p, img in zip(paths, (a, b)):
            Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8)).save(p)
        flags = [] if simd else ["-cpuflags", "0"]
        cmd = [exe, "-hide_banner", "-nostats", *flags, "-i", paths[0], "-i", paths[1], "-lavfi", filt, "-f", "null", "-"]
        err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    # uninit's summary: "SSIM Y:0.923451 (11.1) All:0.923451 (11.1)" / "PSNR y:37.22 average:37.223456 min:..."
    head, key = ("SSIM ", "All:") if filt == "ssim" else ("PSNR ", "average:")
    line = next(ln for ln in err.splitlines() if head in ln and key in ln)
    return float(line.split(key)[1].split()[0])


_TF_WORKER = r"""
import json, sys
import numpy as np
import tensorflow as tf
for line in sys.stdin:
    req = json.loads(line)
    data = np.load(req["path"])
    x, y = tf.constant(data["x"]), tf.constant(data["y"])
    fn = {"ssim": tf.image.ssim, "ms_ssim": tf.image.ssim_multiscale, "psnr": tf.image.psnr}[req["fn"]]
    out = fn(x, y, max_val=req["max_val"]).numpy().astype("float64").tolist()
    print(json.dumps({"out": out, "version": tf.__version__}), flush=True)
"""


class _TF:
    """``tf.image`` in this interpreter, or in ``$TORCHSIM_TF_PYTHON`` through one worker process."""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.version: Optional[str] = None
        self.local = None

    def _start(self) -> None:
        if self.local is not None or self.proc is not None:
            return
        try:
            import tensorflow as tf  # noqa: F401

            self.local, self.version = tf, tf.__version__
            return
        except ImportError:
            pass
        exe = os.environ.get("TORCHSIM_TF_PYTHON")
        if not exe:
            raise Skip(
                "TensorFlow is not installed here (pip install tensorflow-cpu, or point TORCHSIM_TF_PYTHON at "
                "a Python that has it)"
            )
        self.proc = subprocess.Popen(
            [exe, "-c", _TF_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
        )

    def __call__(self, fn: str, x: torch.Tensor, y: torch.Tensor, max_val: float) -> Array:
        """``tf.image.<fn>`` of NCHW tensors (sent as NHWC in their dtype): one value per image."""
        self._start()
        xn = x.permute(0, 2, 3, 1).numpy()
        yn = y.permute(0, 2, 3, 1).numpy()
        if self.local is not None:
            tf = self.local
            f = {"ssim": tf.image.ssim, "ms_ssim": tf.image.ssim_multiscale, "psnr": tf.image.psnr}[fn]
            return np.asarray(f(tf.constant(xn), tf.constant(yn), max_val=max_val), dtype=np.float64)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "xy.npz")
            np.savez(path, x=xn, y=yn)
            assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(json.dumps({"path": path, "fn": fn, "max_val": max_val}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise Skip(f"the TensorFlow worker ({os.environ.get('TORCHSIM_TF_PYTHON')}) failed to start or crashed")
        reply = json.loads(line)
        self.version = reply["version"]
        return np.asarray(reply["out"], dtype=np.float64)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            self.proc.wait(timeout=30)
            self.proc = None


TF = _TF()


# --------------------------------------------------------------------------- rows


Fn = Callable[[torch.Tensor, torch.Tensor], object]


@dataclasses.dataclass(frozen=True)
class Row:
    """One comparison: torchsim's ``ours(x, y)`` against ``theirs(x, y)`` on every photo, per dtype.

    Both return per-image values (``(D,)``; a scalar for a batch-level metric such as a pooled
    PSNR). ``tol`` maps a dtype name to ``(atol, rtol)``: a value passes when
    ``|ours - theirs| <= atol + rtol * |theirs|``. ``max_side`` crops larger photos (slow
    pure-Python references).
    """

    family: str
    convention: str
    reference: str
    package: str
    ours: Fn
    theirs: Fn
    tol: Dict[str, Tuple[float, float]]
    dtypes: Tuple[str, ...] = ("float64", "float32")
    max_side: Optional[int] = None
    note: str = ""


_DTYPES = {"float64": torch.float64, "float32": torch.float32, "uint8": torch.uint8}
T64 = {"float64": (1e-10, 1e-10), "float32": (2e-5, 2e-5)}  # tight in float64; float32 rounding otherwise
T32 = {"float64": (1e-5, 1e-5), "float32": (2e-5, 2e-5)}  # a float32 window (pytorch-msssim)
# MONAI and TensorFlow compute in float32 whatever the input, with unshifted moments (E[x²] - μ²):
# ~1e-4 off on flat regions of 8-bit photographs, up to ~1e-3 where the colour shift saturates
# them at 1.0 (the float32 rounding of E[x²] there is not small against C2 = 9e-4)
F32REF = {"float64": (2e-3, 0.0), "float32": (2e-3, 0.0)}
EXACT = {"uint8": (0.0, 0.0), "float64": (0.0, 0.0), "float32": (0.0, 0.0)}


def _np(t: torch.Tensor) -> Array:
    return t.detach().cpu().numpy()


def _per_image(fn: Callable[[Array, Array], float]) -> Fn:
    """A reference on one HxW(xC) image pair -> per-image values of an NCHW batch."""

    def run(x: torch.Tensor, y: torch.Tensor) -> Array:
        return np.array([fn(_hwc(a), _hwc(b)) for a, b in zip(_np(x), _np(y))], dtype=np.float64)

    return run


def _planes(fn: Callable[[Array, Array], float]) -> Callable[[Array, Array], float]:
    """A per-plane reference applied to each plane of HxWxC images and averaged (equal-size planes)."""
    return lambda a, b: fn(a, b) if a.ndim == 2 else float(np.mean([fn(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def _hwc(a: Array) -> Array:
    return a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)


def _dr(x: torch.Tensor) -> float:
    return 255.0 if x.dtype == torch.uint8 else 1.0


def _ours(metric: str, convention: Optional[str], **kw) -> Fn:
    fn = getattr(torchsim, metric)

    def run(x: torch.Tensor, y: torch.Tensor):
        return fn(x, y, data_range=_dr(x), convention=convention, reduction="none", **kw)

    return run


def _mod(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise Skip(f"{name} is not installed ({exc})") from None


def torch_ref(module: str, call: Callable) -> Fn:
    """A reference in a PyTorch library: ``call(module, x, y)`` -> per-image values (``module`` imported, or Skip)."""

    def run(x, y):
        return np.asarray(_np(torch.as_tensor(call(_mod(module), x, y))), dtype=np.float64).reshape(-1)

    return run


def _ssim_rows() -> List[Row]:
    def ref(c: str) -> str:
        return conventions.get(c).references["ssim"]

    def skimage(**kw) -> Fn:
        from skimage.metrics import structural_similarity

        return _per_image(lambda a, b: structural_similarity(a, b, data_range=1.0, channel_axis=-1 if a.ndim == 3 else None, **kw))

    gauss = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    rows = [
        Row("ssim", "wang", ref("wang"), "scikit-image", _ours("ssim", None), skimage(**gauss), T64),
        Row("ssim", "skimage", ref("skimage"), "scikit-image", _ours("ssim", "skimage"), skimage(), T64),
        Row(
            "ssim", "matlab", ref("matlab"), "numpy", _ours("ssim", "matlab"),
            _per_image(lambda a, b: ports.ssim_m_channels(a, b, 1.0)), T64,
        ),
        Row(
            "ssim", "basicsr", ref("basicsr"), "opencv-python-headless",
            lambda x, y: torchsim.ssim(x * 255, y * 255, data_range=255.0, convention="basicsr", reduction="none"),
            _per_image(lambda a, b: ports.basicsr_calculate_ssim(a * 255, b * 255, crop_border=0)),
            {"float64": (1e-9, 1e-9), "float32": (2e-5, 2e-5)},
            note="cv2.filter2D filters 11x11 windows through the DFT: ~1e-10 in float64",
        ),
        Row(
            "ssim", "pytorch_msssim", ref("pytorch_msssim"), "pytorch-msssim", _ours("ssim", "pytorch_msssim"),
            torch_ref("pytorch_msssim", lambda m, x, y: m.ssim(x, y, data_range=1.0, size_average=False)), T32,
            note="its Gaussian window is built in float32",
        ),
        Row(
            "ssim", "piq", ref("piq"), "piq", _ours("ssim", "piq"),
            torch_ref("piq", lambda m, x, y: m.ssim(x, y, data_range=1.0, reduction="none")), T64,
        ),
        Row(
            "ssim", "torchmetrics", ref("torchmetrics"), "torchmetrics", _ours("ssim", "torchmetrics"),
            torch_ref(
                "torchmetrics.functional.image",
                lambda m, x, y: m.structural_similarity_index_measure(x, y, data_range=1.0, reduction="none"),
            ),
            T64,
        ),
        Row(
            "ssim", "kornia", ref("kornia"), "kornia", _ours("ssim", "kornia"),
            torch_ref("kornia.metrics", lambda m, x, y: m.ssim(x, y, 11, max_val=1.0, eps=0.0).mean((1, 2, 3))), T64,
        ),
        Row(
            "ssim", "kornia", "kornia.metrics.ssim(x, y, 11, max_val=L).mean((1, 2, 3))  (its default eps=1e-12)",
            "kornia", _ours("ssim", "kornia"),
            torch_ref("kornia.metrics", lambda m, x, y: m.ssim(x, y, 11, max_val=1.0).mean((1, 2, 3))),
            {"float64": (2e-6, 0.0), "float32": (2e-5, 2e-5)},
            note="kornia's eps=1e-12 in the denominator, which torchsim does not add",
        ),
        Row(
            "ssim", "monai", ref("monai"), "monai", _ours("ssim", "monai"),
            torch_ref(
                "monai.metrics", lambda m, x, y: m.SSIMMetric(spatial_dims=2, data_range=1.0, reduction="none")(x, y)
            ),
            F32REF, note="MONAI computes in float32",
        ),
        Row(
            "ssim", "tensorflow", ref("tensorflow"), "tensorflow", _ours("ssim", "tensorflow"),
            lambda x, y: TF("ssim", x, y, 1.0), F32REF, note="tf.image.ssim computes in float32",
        ),
        Row(
            "ssim", "ffmpeg", "libavfilter/vf_ssim.c ssim_plane, ported to NumPy (int64 sums, float64 ratio)", "numpy",
            _ours("ssim", "ffmpeg"), _per_image(_planes(ports.ffmpeg_ssim_plane)), {"uint8": (1e-5, 0.0)},
            dtypes=("uint8",), note="torchsim computes uint8 in float32; RGB: the mean of the planes",
        ),
        Row(
            "ssim", "ffmpeg", ref("ffmpeg") + "  with its default x86 SIMD code", "ffmpeg", _ours("ssim", "ffmpeg"),
            _per_image(lambda a, b: ffmpeg_score(a, b, "ssim", simd=True)), {"uint8": (5e-3, 0.0)}, dtypes=("uint8",),
            note="FFmpeg 5.1's SIMD path differs from its own C code by ~3e-3 where W / 4 ≡ 2 (mod 4), e.g. 600 px "
            "(coffee); elsewhere it equals it",
        ),
        Row(
            "ssim", "ffmpeg", ref("ffmpeg"), "ffmpeg", _ours("ssim", "ffmpeg"),
            _per_image(lambda a, b: ffmpeg_score(a, b, "ssim")), {"uint8": (1e-5, 0.0)}, dtypes=("uint8",),
            note="the filter's C code (-cpuflags 0); ffmpeg prints 6 decimals and sums in float32; RGB as gbrp planes",
        ),
    ]
    return rows


def _ms_ssim_rows() -> List[Row]:
    def ref(c: str) -> str:
        return conventions.get(c).references["ms_ssim"]

    return [
        Row(
            "ms_ssim", "wang", ref("wang"), "pytorch-msssim", _ours("ms_ssim", None),
            torch_ref("pytorch_msssim", lambda m, x, y: m.ms_ssim(x, y, data_range=1.0, size_average=False)), T32,
            note="its Gaussian window is built in float32",
        ),
        Row(
            "ms_ssim", "pytorch_msssim", ref("pytorch_msssim"), "pytorch-msssim", _ours("ms_ssim", "pytorch_msssim"),
            torch_ref("pytorch_msssim", lambda m, x, y: m.ms_ssim(x, y, data_range=1.0, size_average=False)), T32,
            note="its Gaussian window is built in float32",
        ),
        Row(
            "ms_ssim", "piq", ref("piq"), "piq", _ours("ms_ssim", "piq"),
            torch_ref("piq", lambda m, x, y: m.multi_scale_ssim(x, y, data_range=1.0, reduction="none")), T64,
        ),
        Row(
            "ms_ssim", "torchmetrics", ref("torchmetrics"), "torchmetrics", _ours("ms_ssim", "torchmetrics"),
            torch_ref(
                "torchmetrics.functional.image",
                lambda m, x, y: m.multiscale_structural_similarity_index_measure(x, y, data_range=1.0, reduction="none"),
            ),
            {"float64": (1e-7, 1e-7), "float32": (2e-5, 2e-5)}, note="its scale weights are a float32 tensor",
        ),
        Row(
            "ms_ssim", "monai", ref("monai"), "monai", _ours("ms_ssim", "monai"),
            torch_ref(
                "monai.metrics",
                lambda m, x, y: m.MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, reduction="none")(x, y),
            ),
            F32REF, note="MONAI computes in float32",
        ),
        Row(
            "ms_ssim", "tensorflow", ref("tensorflow"), "tensorflow", _ours("ms_ssim", "tensorflow"),
            lambda x, y: TF("ms_ssim", x, y, 1.0), F32REF, note="tf.image.ssim_multiscale computes in float32",
        ),
    ]


def _psnr_rows() -> List[Row]:
    def ref(c: str) -> str:
        return conventions.get(c).references["psnr"]

    def skimage(a, b):
        from skimage.metrics import peak_signal_noise_ratio

        return peak_signal_noise_ratio(a, b, data_range=1.0)

    def scalar(module: str, call: Callable) -> Fn:
        return lambda x, y: np.asarray(float(call(_mod(module), x, y)), dtype=np.float64).reshape(1)

    def pooled(convention: str) -> Fn:
        return lambda x, y: torchsim.psnr(x, y, data_range=1.0, convention=convention).reshape(1)

    P64 = {"float64": (1e-10, 1e-12), "float32": (1e-4, 1e-5)}
    P32 = {"float64": (1e-4, 1e-5), "float32": (1e-4, 1e-5)}
    return [
        Row("psnr", "wang", ref("wang"), "scikit-image", _ours("psnr", None), _per_image(skimage), P64),
        Row("psnr", "skimage", ref("skimage"), "scikit-image", _ours("psnr", "skimage"), _per_image(skimage), P64),
        Row(
            "psnr", "matlab", ref("matlab"), "numpy", _ours("psnr", "matlab"),
            _per_image(lambda a, b: 10 * np.log10(1.0 / np.mean((a - b) ** 2))), P64,
        ),
        Row(
            "psnr", "basicsr", ref("basicsr"), "numpy",
            lambda x, y: torchsim.psnr(x * 255, y * 255, data_range=255.0, convention="basicsr", reduction="none"),
            _per_image(lambda a, b: ports.basicsr_calculate_psnr(a * 255, b * 255, crop_border=0)), P64,
        ),
        Row(
            "psnr", "piq", ref("piq"), "piq", _ours("psnr", "piq"),
            lambda x, y: _np(_mod("piq").psnr(x, y, data_range=1.0, reduction="none")).astype(np.float64), P64,
        ),
        Row(
            "psnr", "torchmetrics", ref("torchmetrics"), "torchmetrics", pooled("torchmetrics"),
            scalar("torchmetrics.functional.image", lambda m, x, y: m.peak_signal_noise_ratio(x, y, data_range=1.0)),
            P32, note="one PSNR per batch (the pooled MSE of an image's distortions); its data_range is a float32 tensor",
        ),
        Row(
            "psnr_pooled", "—", ref("torchmetrics"), "torchmetrics",
            lambda x, y: torchsim.psnr_pooled(x, y, data_range=1.0).reshape(1),
            scalar("torchmetrics.functional.image", lambda m, x, y: m.peak_signal_noise_ratio(x, y, data_range=1.0)),
            P32, note="its data_range is a float32 tensor",
        ),
        Row(
            "psnr", "kornia", ref("kornia"), "kornia", pooled("kornia"),
            scalar("kornia.metrics", lambda m, x, y: m.psnr(x, y, max_val=1.0)), P64,
            note="one PSNR per batch (the pooled MSE)",
        ),
        Row(
            "psnr", "monai", ref("monai"), "monai", _ours("psnr", "monai"),
            lambda x, y: _np(_mod("monai.metrics").PSNRMetric(max_val=1.0, reduction="none")(x, y)).astype(np.float64).reshape(-1),
            P64,
        ),
        Row(
            "psnr", "tensorflow", ref("tensorflow"), "tensorflow", _ours("psnr", "tensorflow"),
            lambda x, y: TF("psnr", x, y, 1.0), P32, note="tf.image.psnr computes in float32",
        ),
        Row(
            "psnr", "ffmpeg", ref("ffmpeg"), "ffmpeg", _ours("psnr", "ffmpeg"),
            _per_image(lambda a, b: ffmpeg_score(a, b, "psnr")), {"uint8": (1e-5, 0.0)}, dtypes=("uint8",),
            note="ffmpeg prints 6 decimals; torchsim computes uint8 in float32",
        ),
        Row(
            "psnr", "libvmaf", "libvmaf/src/feature/integer_psnr.c psnr per 8-bit plane, ported to NumPy", "numpy",
            _planes_with_identical(lambda x, y: torchsim.psnr(x, y, convention="libvmaf", reduction="none")),
            _planes_with_identical(lambda x, y: torch.tensor([ports.libvmaf_psnr_plane(a[0], b[0]) for a, b in zip(_np(x), _np(y))])),
            {"uint8": (1e-4, 0.0)}, dtypes=("uint8",),
            note="one value per plane; each image also against itself (the 60 dB cap); torchsim computes uint8 in float32",
        ),
    ]


def _planes_with_identical(fn: Fn) -> Fn:
    """``fn`` on every plane of ``(x, y)`` and of ``(x, x)`` as its own ``(N·C·2, 1, H, W)`` batch (libvmaf's per-plane PSNR)."""

    def run(x: torch.Tensor, y: torch.Tensor) -> Array:
        a = torch.cat([x, x]).flatten(0, 1)[:, None]
        b = torch.cat([y, x]).flatten(0, 1)[:, None]
        return np.asarray(_np(torch.as_tensor(fn(a, b)).double()), dtype=np.float64).reshape(-1)

    return run


# pixelmatch-py's algorithm: the default before mapbox v7 became it (then ``compat="pixelmatch-py"``)
_PIXELMATCH_PY = {"compat": "pixelmatch-py"} if "compat" in inspect.signature(torchsim.pixelmatch).parameters else {}


def _family_rows() -> List[Row]:
    """The other metric families, each at its default convention."""

    def mse_ref(a, b):
        from skimage.metrics import mean_squared_error

        return mean_squared_error(a, b)

    def cos_ref(a, b):
        a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    def u8_pairs(fn: Callable[[Array, Array], float]) -> Fn:
        return _per_image(lambda a, b: fn(np.round(a * 255).astype(np.uint8), np.round(b * 255).astype(np.uint8)))

    def compare_hist(method_name: str):
        import cv2

        method = {"correlation": cv2.HISTCMP_CORREL, "bhattacharyya": cv2.HISTCMP_BHATTACHARYYA}[method_name]

        def one(a, b):
            a3, b3 = (a[..., None] if a.ndim == 2 else a), (b[..., None] if b.ndim == 2 else b)
            vals = []
            for c in range(a3.shape[2]):
                h1 = cv2.calcHist([np.ascontiguousarray(a3[..., c])], [0], None, [256], [0, 256])
                h2 = cv2.calcHist([np.ascontiguousarray(b3[..., c])], [0], None, [256], [0, 256])
                vals.append(cv2.compareHist(h1 / h1.sum(), h2 / h2.sum(), method))
            return float(np.mean(vals))

        return u8_pairs(one)

    def mi_ref(norm: bool):
        from sklearn.metrics import mutual_info_score, normalized_mutual_info_score

        def one(a, b):
            la, lb = a.ravel().astype(np.int64), b.ravel().astype(np.int64)
            return normalized_mutual_info_score(la, lb) if norm else mutual_info_score(la, lb)

        return u8_pairs(one)

    def hash_rows() -> List[Row]:
        rows = []
        for name in ("ahash", "dhash", "phash"):
            def theirs(x, y, name=name):
                import imagehash
                from PIL import Image

                fn = {"ahash": imagehash.average_hash, "dhash": imagehash.dhash, "phash": imagehash.phash}[name]
                out = []
                for img in _np(y):
                    pil = Image.fromarray(np.ascontiguousarray(_hwc(img)))
                    out.append(np.asarray(fn(pil).hash, dtype=np.float64).ravel())
                return np.stack(out)

            rows.append(
                Row(
                    name, "imagehash", f"imagehash.{ {'ahash': 'average_hash'}.get(name, name)}(PIL image)", "ImageHash",
                    lambda x, y, name=name: getattr(torchsim, name)(y).to(torch.float64),
                    theirs, {"uint8": (1.0, 0.0)}, dtypes=("uint8",),
                    note="a difference is one differing bit (SPEC: equal on >= 99 % of images, never more than 2 bits)",
                )
            )
        return rows

    def pixelmatch_ref(x, y):
        from PIL import Image
        from pixelmatch.contrib.PIL import pixelmatch

        out = []
        for a, b in zip(_np(x), _np(y)):
            ia = Image.fromarray(np.ascontiguousarray(_hwc(a))).convert("RGBA")
            ib = Image.fromarray(np.ascontiguousarray(_hwc(b))).convert("RGBA")
            out.append(pixelmatch(ia, ib, threshold=0.1))
        return np.asarray(out, dtype=np.float64)

    def y_ref(kind: str) -> Fn:
        def run(x, y):
            out = []
            for img in _np(y):
                rgb = _hwc(img)
                if kind == "limited":
                    from skimage.color import rgb2ycbcr

                    out.append(rgb2ycbcr(rgb)[..., 0] / 255.0)
                elif kind == "full":
                    import cv2

                    out.append(cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float64))
                else:
                    out.append(ports.matlab_rgb2ycbcr_y_uint8(rgb))
            return np.stack(out).reshape(len(out), -1)

        return run

    def y_ours(**kw) -> Fn:
        return lambda x, y: torchsim.rgb_to_y(y, data_range=_dr(y), **kw).flatten(1)

    def calc_hist(x, y):
        import cv2

        def one(img):
            return np.concatenate([cv2.calcHist([np.ascontiguousarray(c)], [0], None, [256], [0, 256]).ravel() for c in img])

        return np.stack([one(img) for img in _np(y)]).astype(np.float64)

    def luma_ref(x, y):
        from PIL import Image

        return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(_hwc(i))).convert("L"), np.float64).ravel() for i in _np(y)])

    H = {"float64": (1e-12, 1e-12), "float32": (2e-5, 2e-5)}
    U8F32 = {"uint8": (1e-6, 1e-6)}
    HIST_NOTE = "OpenCV's histograms are float32"
    rows = [
        Row("mse", "—", "skimage.metrics.mean_squared_error(x, y)", "scikit-image",
            lambda x, y: torchsim.mse(x, y, reduction="none"), _per_image(mse_ref), H),
        Row("gmsd", "—", "piq.gmsd(x, y, data_range=L, reduction='none')", "piq",
            lambda x, y: torchsim.gmsd(x, y, data_range=1.0, reduction="none"),
            torch_ref("piq", lambda m, x, y: m.gmsd(x, y, data_range=1.0, reduction="none")), H),
        Row("cosine_similarity", "—", "numpy: dot(a, b) / (norm(a) norm(b))", "numpy",
            lambda x, y: torchsim.cosine_similarity(x, y, reduction="none"), _per_image(cos_ref), H),
        Row("histogram", "—", "cv2.calcHist([c], [0], None, [256], [0, 256]) per channel", "opencv-python-headless",
            lambda x, y: torchsim.histogram(y).flatten(1).double(), calc_hist, EXACT, dtypes=("uint8",)),
        Row("histogram_similarity", "—", "cv2.compareHist(h1/h1.sum(), h2/h2.sum(), HISTCMP_CORREL), channel mean",
            "opencv-python-headless", lambda x, y: torchsim.histogram_similarity(x, y, reduction="none"),
            compare_hist("correlation"), U8F32, dtypes=("uint8",), note=HIST_NOTE),
        Row("histogram_similarity", "—", "the same with HISTCMP_BHATTACHARYYA", "opencv-python-headless",
            lambda x, y: torchsim.histogram_similarity(x, y, method="bhattacharyya", reduction="none"),
            compare_hist("bhattacharyya"), U8F32, dtypes=("uint8",), note=HIST_NOTE),
        Row("mutual_information", "—", "sklearn.metrics.mutual_info_score of the 8-bit levels", "scikit-learn",
            lambda x, y: torchsim.mutual_information(x, y, reduction="none"), mi_ref(False), U8F32,
            dtypes=("uint8",), note="uint8 input gives a float32 result"),
        Row("normalized_mutual_information", "—", "sklearn.metrics.normalized_mutual_info_score (arithmetic)",
            "scikit-learn", lambda x, y: torchsim.normalized_mutual_information(x, y, reduction="none"), mi_ref(True),
            U8F32, dtypes=("uint8",), note="uint8 input gives a float32 result"),
        *hash_rows(),
        Row("pixelmatch", "pixelmatch-py", "pixelmatch.contrib.PIL.pixelmatch(a, b, threshold=0.1) (RGBA)", "pixelmatch",
            lambda x, y: torchsim.pixelmatch(x, y, **_PIXELMATCH_PY).double(), pixelmatch_ref, EXACT,
            dtypes=("uint8",), max_side=160, note="pure-Python reference: photos cropped to 160 px"),
        Row("rgb_to_y", "limited", "skimage.color.rgb2ycbcr(rgb)[..., 0] / 255", "scikit-image",
            y_ours(), y_ref("limited"), {"float64": (1e-12, 0.0), "float32": (1e-6, 0.0)}),
        Row("rgb_to_y", "full", "cv2.cvtColor(float32 rgb, COLOR_RGB2YCrCb)[..., 0]", "opencv-python-headless",
            y_ours(y_range="full"), y_ref("full"), {"float64": (1e-6, 0.0), "float32": (1e-6, 0.0)},
            note="OpenCV converts float32 only"),
        Row("rgb_to_y", "matlab uint8", "MATLAB rgb2ycbcr(uint8) Y, transcribed (double, then uint8 rounding)", "numpy",
            y_ours(y_round=True), y_ref("round"), EXACT, dtypes=("uint8",)),
        Row("pil_luma", "—", "PIL.Image.convert('L')", "Pillow", lambda x, y: torchsim.pil_luma(y).flatten(1).double(),
            luma_ref, EXACT, dtypes=("uint8",)),
    ]
    return rows


def rows() -> List[Row]:
    """Every row of the report, in the order it prints."""
    return _ssim_rows() + _ms_ssim_rows() + _psnr_rows() + _family_rows()


# --------------------------------------------------------------------------- running


@dataclasses.dataclass
class Result:
    row: Row
    dtype: str
    images: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    passed: bool = True
    skipped: Optional[str] = None  # the reason a reference could not run
    version: str = ""
    #: the reference's values per photo name (float64 and uint8 rows), for :func:`cross_checks`
    values: Dict[str, Array] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def tolerance(self) -> str:
        atol, rtol = self.row.tol[self.dtype]
        return f"{atol:.0e} abs + {rtol:.0e} rel" if rtol else f"{atol:.0e} abs"


def _version(package: str) -> str:
    if package == "ffmpeg":
        return ffmpeg_version()
    if package == "tensorflow":
        return TF.version or "?"
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _prepare(photo: Photo, row: Row, dtype: torch.dtype, quick: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    x, y = photo.pair(dtype)
    side = row.max_side
    if quick and row.family != "ms_ssim":
        side = min(side or QUICK_SIDE, QUICK_SIDE)
    if side is not None:
        x, y = x[..., :side, :side], y[..., :side, :side]
    if row.family in ("rgb_to_y", "pil_luma") and x.shape[1] != 3:
        return x[:0], y[:0]  # colour conversions: RGB photos only
    return x.contiguous(), y.contiguous()


_HASHES = ("ahash", "dhash", "phash")


def _differences(row: Row, ours: Array, theirs: Array) -> Tuple[Array, Array]:
    """Absolute and relative differences per compared value (per image for a hash: differing bits)."""
    diff = np.abs(ours - theirs).reshape(len(theirs), -1) if theirs.ndim else np.abs(ours - theirs).reshape(1, 1)
    ref = np.abs(theirs).reshape(diff.shape)
    if row.family in _HASHES:
        return diff.sum(axis=1), np.zeros(len(diff))
    same = (ours.reshape(diff.shape) == theirs.reshape(diff.shape)) | (diff == 0)  # equal infinities too
    diff = np.where(same, 0.0, diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(same, 0.0, diff / ref)
    return diff, rel


def run_row(row: Row, dtype: str, images: Sequence[Photo], quick: bool = False) -> Result:
    """Score every photo with ``row`` in ``dtype`` (``quick``: smaller crops)."""
    res = Result(row, dtype)
    atol, rtol = row.tol[dtype]
    try:
        for photo in images:
            x, y = _prepare(photo, row, _DTYPES[dtype], quick)
            if x.shape[0] == 0 or (row.family == "ms_ssim" and min(x.shape[2:]) < 176):
                continue
            # float32 rows: the reference sees the same values in float64, so the row measures torchsim's
            # float32 arithmetic, not the reference's (references that compute in float32 cast back)
            xr, yr = (x.double(), y.double()) if dtype == "float32" else (x, y)
            theirs = np.asarray(row.theirs(xr, yr), dtype=np.float64)
            ours = np.asarray(_np(torch.as_tensor(row.ours(x, y)).double()), dtype=np.float64).reshape(theirs.shape)
            diff, rel = _differences(row, ours, theirs)
            limit = atol + (0.0 if row.family in _HASHES else rtol * np.abs(theirs).reshape(diff.shape))
            res.passed &= bool(np.all(diff <= limit))  # NaN on either side fails
            res.max_abs = max(res.max_abs, float(np.max(diff)))
            res.max_rel = max(res.max_rel, float(np.max(rel)))
            res.images += int(x.shape[0])
            if dtype != "float32":
                res.values[photo.name] = theirs
        res.version = _version(row.package)
    except Skip as exc:
        res.skipped = str(exc)
    return res


def run(quick: bool = False, only: Optional[str] = None, progress: bool = False) -> List[Result]:
    """Every row (those whose family or convention contains ``only``) in each of its dtypes."""
    images = photos(quick)
    results = []
    for row in rows():
        if only and only not in row.family and only not in row.convention:
            continue
        for dtype in row.dtypes:
            t0 = time.perf_counter()
            results.append(run_row(row, dtype, images, quick))
            if progress:
                r = results[-1]
                state = "skipped" if r.skipped else ("ok" if r.passed else "FAIL")
                print(f"{row.family:30s} {row.convention:16s} {dtype:8s} {state:8s} abs {r.max_abs:.2e} "
                      f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    TF.close()
    return results


#: (claim, metric, conventions): references that each claim to compute ``claim``; the first is the
#: one the others are measured against (with their own presets, i.e. as their users call them)
CLAIMS = (
    (
        "SSIM of Wang et al. 2004 (Gaussian 11x11, sigma 1.5, K = (0.01, 0.03))", "ssim",
        ("wang", "pytorch_msssim", "basicsr", "monai", "tensorflow", "torchmetrics", "kornia", "piq", "ffmpeg"),
    ),
    ("SSIM \"as MATLAB's ssim.m\" (Wang's reference code)", "ssim", ("matlab", "piq", "basicsr")),
    ("MS-SSIM of Wang et al. 2003 (5 scales, the paper's weights)", "ms_ssim", ("pytorch_msssim", "piq", "torchmetrics", "monai", "tensorflow")),
    ("PSNR = 10 log10(L^2 / MSE)", "psnr", ("wang", "matlab", "basicsr", "monai", "tensorflow", "ffmpeg", "piq", "torchmetrics", "kornia")),
)


@dataclasses.dataclass
class CrossCheck:
    """How far reference ``other`` is from reference ``base`` on the same photographs (float64 / 8-bit)."""

    claim: str
    base: Result
    other: Result
    images: int = 0
    max_abs: float = 0.0
    mean_abs: float = 0.0
    pooled: bool = False  # ``other`` gives one value per batch: compared with the mean of ``base``'s


def _claim_result(results: Sequence[Result], metric: str, convention: str) -> Optional[Result]:
    """The last row of ``metric`` / ``convention`` that ran (kornia's default eps; ffmpeg's binary, C code, before its port)."""
    found = [r for r in results if r.row.family == metric and r.row.convention == convention and r.values]
    return found[-1] if found else None


def cross_checks(results: Sequence[Result]) -> List[CrossCheck]:
    """Every reference of each :data:`CLAIMS` group against the group's first, from the values the rows kept.

    References that could not run here (skipped rows) are left out.
    """
    out = []
    for claim, metric, names_ in CLAIMS:
        base = _claim_result(results, metric, names_[0])
        if base is None:
            continue
        for name in names_[1:]:
            other = _claim_result(results, metric, name)
            if other is None:
                continue
            c = CrossCheck(claim, base, other)
            diffs = []
            for photo, theirs in other.values.items():
                ref = base.values.get(photo)
                if ref is None:
                    continue
                if theirs.size == 1 and ref.size > 1:  # a batch-level value against the batch's mean
                    c.pooled, ref = True, np.asarray([ref.mean()])
                diffs.append(np.abs(theirs.reshape(-1) - ref.reshape(-1)))
                c.images += ref.size if not c.pooled else base.values[photo].size
            if diffs:
                d = np.concatenate(diffs)
                c.max_abs, c.mean_abs = float(d.max()), float(d.mean())
                out.append(c)
    return out


def _call_name(row: Row) -> str:
    """The reference's function (or command) without its arguments: ``piq.ssim``, ``ffmpeg -lavfi ssim``."""
    if row.reference.startswith("ffmpeg"):
        return f"ffmpeg -lavfi {row.family}"
    return row.reference.split("(")[0].strip().replace("|", "\\|")


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.1e}"


def result_line(r: Result) -> str:
    """One row of the report's table."""
    ref = r.row.reference.replace("|", "\\|")
    if r.row.note:
        ref += f" — {r.row.note}"
    if r.skipped:
        return (
            f"| `{r.row.family}` | `{r.row.convention}` | {ref} | — | {r.dtype} | — | — | — | {r.tolerance} | "
            f"skipped: {r.skipped} |"
        )
    return (
        f"| `{r.row.family}` | `{r.row.convention}` | {ref} | {r.row.package} {r.version} | {r.dtype} | {r.images} | "
        f"{_fmt(r.max_abs)} | {_fmt(r.max_rel)} | {r.tolerance} | {'pass' if r.passed else '**FAIL**'} |"
    )


def cross_check_lines(results: Sequence[Result]) -> List[str]:
    """The rows of the table of references that claim the same convention (claim named once per group)."""
    lines, claim = [], None
    for c in cross_checks(results):
        other = f"`{_call_name(c.other.row)}`" + (" (one value per batch, against the batch's mean)" if c.pooled else "")
        lines.append(
            f"| {c.claim if c.claim != claim else ''} | {other} | `{_call_name(c.base.row)}` | {c.images} | "
            f"{_fmt(c.max_abs)} | {_fmt(c.mean_abs)} |"
        )
        claim = c.claim
    return lines


def markdown(results: Iterable[Result], quick: bool, seconds: float) -> str:
    """``docs/AGREEMENT.md``."""
    results = list(results)
    images = photos(quick)
    lines = [
        "# Agreement with the reference implementations",
        "",
        f"Generated on {time.strftime('%Y-%m-%d', time.gmtime())} by `python -m benchmarks.agreement"
        + (" --quick" if quick else "") + "` "
        f"(torchsim {torchsim.__version__}, torch {torch.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()} CPU, {seconds:.0f} s). CI runs `--quick` as `tests/test_agreement.py`.",
        "",
        f"Photographs: {len(images)} from `skimage.data` ({', '.join(p.name for p in images)}), cropped to at most "
        f"{QUICK_SIDE if quick else FULL_CROP} px per side{' (176 for MS-SSIM)' if quick else ''}, each against "
        f"{len(images[0].distortions)} distortions "
        f"of itself ({', '.join(images[0].distortions)}) saved as 8-bit, so **images** counts image pairs. "
        "Floating inputs are in [0, 1] with `data_range=1.0`; `uint8` rows read 0..255. "
        "MS-SSIM rows skip photos under 176 px.",
        "",
        "A value passes when `|torchsim - reference| <= abs + rel·|reference|`; **max abs** and **max rel** are the "
        "largest differences over all images. A float32 row gives torchsim float32 images and the reference the same "
        "values in float64, so it measures torchsim's float32 arithmetic (float32 references such as piq's or "
        "torchmetrics' run on float32 input lose up to ~1.5e-4 on flat regions of 8-bit photos: E[x²] - μ² cancels; "
        "torchsim takes moments about a value near the data). Where a reference computes in float32 whatever its input "
        "(pytorch-msssim's window, MONAI, TensorFlow, torchmetrics' MS-SSIM weights and PSNR range) its float64 row has "
        "that reference's tolerance. For the hashes a difference is a number of differing bits.",
        "",
        "How the conventions differ, and what each preset sets: the README's "
        "[table of conventions](../README.md#conventions-which-preset-reproduces-which-reference).",
        "",
        "| metric | convention | reference | version | dtype | images | max abs | max rel | tolerance | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [result_line(r) for r in results]
    lines += ["", _DISAGREEMENTS_HEAD, ""]
    lines += [
        "| claim | reference | against | images | max abs difference | mean abs difference |",
        "|---|---|---|---|---|---|",
    ]
    lines += cross_check_lines(results)
    lines += ["", _DISAGREEMENTS, ""]
    return "\n".join(lines)


_DISAGREEMENTS_HEAD = """## Where references that claim the same convention disagree

Each reference against another that claims the same thing, both as their users call them (their own
defaults), on the photographs above in float64 (8-bit for ffmpeg): the differences below are between the
references themselves, not torchsim (whose preset for each equals it, in the table above). References that
cannot run here are left out."""

_DISAGREEMENTS = """Why:

* **"SSIM as in Wang et al."** — scikit-image (Gaussian, `use_sample_covariance=False`), pytorch-msssim,
  BasicSR, MONAI and TensorFlow agree (valid windows, mean over the valid map; pytorch-msssim, MONAI and
  TensorFlow compute in float32: up to ~1e-3 where the colour shift saturates a region at 1.0); torchmetrics and kornia claim the same paper but pad with `reflect` and
  average the same-size map, so border windows count; piq defaults to `downsample=True` and scores a
  half-size image from 384 px up (a third-size one from 640 px).
* **"SSIM as in MATLAB"** — Wang's `ssim.m` downsamples by `f = round(min(H, W) / 256)` with MATLAB's
  rounding, an `f x f` mean filter anchored as `imfilter(..., 'symmetric', 'same')` and every f-th pixel;
  piq documents the same step but rounds half to even (min side 640 px: f = 2 against ssim.m's 3; 1152 px:
  4 against 5) and averages `f x f` blocks from the first pixel, dropping the remainder: for odd f
  every block is one pixel off ssim.m's centred window, for even f only the last partial block differs.
  BasicSR's `calculate_ssim` ("the same outputs as MATLAB's") does not downsample at all, so from 384 px up
  it is another image size.
* **MS-SSIM (Wang 2003)** — pytorch-msssim, piq, TensorFlow, torchmetrics and MONAI all use the paper's
  weights and clamp negative terms, but halve odd sides four different ways (a counted zero before,
  the first sample repeated, the last repeated, the last dropped) and torchmetrics and MONAI average
  channels before the product over scales; torchmetrics also takes the coarsest SSIM from its padded map.
* **ffmpeg's `ssim`** claims Wang's SSIM but, after x264, uses 8x8 blocks every 4 pixels with a sample
  covariance and a luminance constant C1 64 times smaller than the paper's. FFmpeg even disagrees with
  itself: in 5.1 its x86 SIMD code (the default) gives a different SSIM than its C code (`-cpuflags 0`,
  which the preset equals) when the width divided by 4 is 2 modulo 4 (568, 584, 600 px...): ~3e-3 on
  coffee's 600 px width (the "default x86 SIMD code" row above).
* **PSNR** — scikit-image, MATLAB, BasicSR, MONAI, TensorFlow and ffmpeg report the mean of per-image PSNRs
  (+inf for identical images); torchmetrics and kornia report the PSNR of the batch's pooled MSE; piq adds
  1e-8 to the MSE (80 dB for identical images, and every value a little lower); libvmaf clamps at
  6N + 12 dB.
* **kornia's SSIM** adds `eps=1e-12` to the denominator: up to ~1e-6 on dark flat regions of these photos (its own row above).
"""


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.agreement", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="three small crops, three distortions (seconds)")
    p.add_argument("--out", default=None, help="write the Markdown report here (docs/AGREEMENT.md)")
    p.add_argument("--only", default=None, help="only rows whose metric or convention contains this text")
    args = p.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    t0 = time.perf_counter()
    results = run(args.quick, args.only, progress=True)
    text = markdown(results, args.quick, time.perf_counter() - t0)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        print(text)
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"FAIL: {r.row.family} {r.row.convention} {r.dtype}: max abs {r.max_abs:.3e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
