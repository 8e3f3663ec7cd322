"""The per-pair metric report shared by ``torchsim demo`` and ``torchsim compare``.

A report is a list of sections; each section is a function of a :class:`Pair`
that returns rows ``(metric, value, note)``. Metric families register their
section with ``@section`` — adding a family to both commands is one function here.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Tuple

import torch

import torchsim

from . import _metrics
from ._metrics import resolve

Row = Tuple[str, str, str]


@dataclasses.dataclass
class Pair:
    """Two images of the same size, as ``(1, C, H, W)`` uint8 tensors (RGB or gray)."""

    x: torch.Tensor
    y: torch.Tensor
    x_path: Optional[str] = None  # files, where the images came from files
    y_path: Optional[str] = None
    device: str = "cpu"
    mask: Optional[torch.Tensor] = None  # (1, 1, H, W) bool, True = ignored (MSE, PSNR, SSIM, pixelmatch)
    convention: Optional[str] = None  # PSNR / SSIM / MS-SSIM as this published convention (torchsim.conventions)


MASKED = ("MSE", "PSNR", "SSIM", "SSIM (skimage default)", "PSNR (Y channel)", "SSIM (Y channel)", "pixelmatch")


SECTIONS: List[Callable[[Pair], List[Row]]] = []


def section(fn: Callable[[Pair], List[Row]]) -> Callable[[Pair], List[Row]]:
    SECTIONS.append(fn)
    return fn


def _f(v: torch.Tensor, digits: int = 4) -> str:
    v = float(v)
    if v == float("inf"):
        return "inf"
    return f"{v:.{digits}f}"


def _conv(p: Pair, metric: str, note: str) -> Tuple[dict, str]:
    """The ``convention=`` option for ``metric`` (where the pair's convention publishes it) and the row's note."""
    if p.convention is None:
        return {}, note
    if _metrics.convention_problem(metric, p.convention):
        return {}, f"{note} ({p.convention} publishes no {metric}: the defaults)"
    return {"convention": p.convention}, f"convention {p.convention}"


@section
def _pixel(p: Pair) -> List[Row]:
    x, y = p.x.to(p.device), p.y.to(p.device)
    psnr_kw, psnr_note = _conv(p, "psnr", "data_range 255; inf = identical")
    return [
        ("MSE", _f(torchsim.mse(x, y, mask=p.mask), 2), "0..255 scale; 0 = identical"),
        ("PSNR", _f(torchsim.psnr(x, y, mask=p.mask, **psnr_kw), 2) + " dB", psnr_note),
        ("cosine similarity", _f(torchsim.cosine_similarity(x, y), 6), "1 = same direction"),
    ]


@section
def _structural(p: Pair) -> List[Row]:
    x, y = p.x.to(p.device), p.y.to(p.device)
    ssim_kw, ssim_note = _conv(p, "ssim", "Gaussian 11/1.5 (skimage Gaussian, pytorch-msssim, BasicSR)")
    rows = [
        ("SSIM", _f(torchsim.ssim(x, y, mask=p.mask, **ssim_kw)), ssim_note),
        ("SSIM (skimage default)", _f(torchsim.ssim(x, y, gaussian=False, kernel_size=7, sample_covariance=True, mask=p.mask)),
         "uniform 7x7, sample covariance"),
    ]
    if x.shape[1] == 3:
        yx, yy = torchsim.rgb_to_y(x), torchsim.rgb_to_y(y)
        rows.append(("PSNR (Y channel)", _f(torchsim.psnr(yx, yy, data_range=255.0, mask=p.mask), 2) + " dB", "BT.601 luma, as BasicSR"))
        rows.append(("SSIM (Y channel)", _f(torchsim.ssim(yx, yy, data_range=255.0, mask=p.mask)), "BT.601 luma, as BasicSR"))
    ms_kw, ms_note = _conv(p, "ms_ssim", "5 scales, pytorch-msssim weights")
    min_side = resolve("ms_ssim", **ms_kw).min_size
    if min(x.shape[2:]) >= min_side:
        rows.append(("MS-SSIM", _f(torchsim.ms_ssim(x, y, **ms_kw)), ms_note))
    else:
        rows.append(("MS-SSIM", "n/a", f"needs both sides >= {min_side} px"))
    return rows


@section
def _histogram_information(p: Pair) -> List[Row]:
    x, y = p.x.to(p.device), p.y.to(p.device)
    return [
        ("histogram correlation", _f(torchsim.histogram_similarity(x, y)), "256 bins per channel, OpenCV HISTCMP_CORREL; 1 = same"),
        ("histogram Bhattacharyya", _f(torchsim.histogram_similarity(x, y, method="bhattacharyya")), "OpenCV HISTCMP_BHATTACHARYYA (Hellinger); 0 = same"),
        ("NMI", _f(torchsim.normalized_mutual_information(x, y)), "256 bins, arithmetic (sklearn); 1 = same"),
    ]


@section
def _hashes(p: Pair) -> List[Row]:
    import hashlib

    if p.x_path and p.y_path:
        same = torchsim.file_md5(p.x_path) == torchsim.file_md5(p.y_path)
        rows = [("MD5 equal", "yes" if same else "no", "MD5 of the two files' bytes")]
    else:
        dx, dy = (hashlib.md5(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest() for t in (p.x, p.y))
        rows = [("MD5 equal", "yes" if dx == dy else "no", "MD5 of the raw tensor bytes (no files)")]
    x, y = p.x.to(p.device), p.y.to(p.device)
    for name in ("ahash", "dhash", "phash"):
        h = resolve(name).function(torch.cat([x, y]))
        hx, hy = torchsim.hash_to_hex(h)
        dist = int(torchsim.hamming_distance(h[:1], h[1:]))
        rows.append((f"{name} distance", f"{dist} / {h.shape[1]}", f"Hamming; imagehash-exact hashes {hx} vs {hy}"))
    return rows


@section
def _pixelmatch(p: Pair) -> List[Row]:
    x, y = p.x.to(p.device), p.y.to(p.device)
    n = int(torchsim.pixelmatch(x, y, mask=p.mask)[0])
    total = x.shape[2] * x.shape[3]
    return [("pixelmatch", f"{n} px ({100.0 * n / total:.2f}%)", "mismatched pixels, threshold 0.1, anti-aliasing ignored (pixelmatch-py exact)")]


def build_report(pair: Pair) -> List[Row]:
    rows: List[Row] = []
    for fn in SECTIONS:
        rows.extend(fn(pair))
    if pair.mask is not None:  # say which rows the ignored pixels are not left out of
        rows = [r if r[0] in MASKED else (r[0], r[1], f"{r[2]}; whole image (no ignore mask)") for r in rows]
    return rows
