"""``torchsim diff A B [OUT]``: where two images differ, as a CI check (exit code), a report and a picture.

Two methods:

* ``--method ssim`` (default): regions of low SSIM (:func:`torchsim.diff_regions`: the
  scikit-image + OpenCV recipe with an absolute floor ``--min-ssim``, so images that
  look the same have no region); the differing pixels are the regions' pixels.
* ``--method pixelmatch``: mapbox pixelmatch v7 (:func:`torchsim.pixelmatch`), the
  per-pixel count of pixelmatch, odiff and BlazeDiff; ``--threshold`` and
  ``--antialiasing`` / ``--include-aa`` as their users know them. ``--threshold 0``
  tolerates nothing: every pixel whose colours differ at all counts (anti-aliased ones
  too with ``--include-aa``). The count is pixelmatch v7's to the pixel; odiff and
  BlazeDiff count a little differently on the same pair, by design (odiff truncates
  its fixed-point colour distance, blends with white and calls more pixels anti-aliased;
  BlazeDiff visits the neighbours in another order; both count anti-aliased pixels
  unless given ``--antialiasing``): see :func:`torchsim.pixelmatch`, *Convention*.

Exit codes, as a CI step wants them: 0 the images match (no differing pixel, or no more
than ``--fail-threshold``: a count ``500`` or a percentage ``0.5%``); 1 they differ; 2 bad
input (a missing or unreadable file, images of different sizes -- never "identical" --,
a bad option, an output that cannot be written), with one line on stderr.

Reports: one line on stdout (and ``--output-diff-lines`` / ``--output-diff-cols``, the
rows and columns with differing pixels, as odiff prints them), or ``--json [FILE]``: the
count, percentage, regions (box, pixel count, mean SSIM), rows and columns when asked,
and every setting. Picture (``OUT`` or ``-o OUT``; its extension picks PNG, JPEG or
WebP): ``--output-mode overlay`` (the differing pixels in red over a faded grey copy of
A, as pixelmatch draws it), ``mask`` (only the differing pixels, on transparent) or
``side-by-side`` (A | B | the diff; for SSIM, A and B with the boxes and the SSIM map).
``--ignore x0,y0,x1,y1`` (repeatable) and ``--mask FILE`` (non-zero pixels) leave pixels
out: they neither count nor differ.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from ._errors import CliError
from ._files import add_decode_options, decode_options
from ._picture import FORMATS, picture_format
from ._sinks import check_output, json_value

if TYPE_CHECKING:
    import torch

_BOX_COLOR = (255, 0, 0)
_DEFAULT_MODE = {"ssim": "side-by-side", "pixelmatch": "overlay"}


def _fail_threshold(text: str) -> Tuple[str, float]:
    """``"500"`` -> ``("count", 500)``; ``"0.5%"`` -> ``("percent", 0.5)``."""
    try:
        if text.endswith("%"):
            value = float(text[:-1])
            if 0 <= value <= 100:
                return ("percent", value)
        else:
            count = int(text)
            if count >= 0:
                return ("count", count)
    except ValueError:
        pass
    raise CliError(2, f"--fail-threshold must be a pixel count (500) or a percentage (0.5%), got {text!r}")


def rectangle(text: str) -> Tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` (x1, y1 exclusive) -> a tuple of four integers."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not (0 <= values[0] < values[2] and 0 <= values[1] < values[3]):
        raise CliError(2, f"--ignore must be x0,y0,x1,y1 with 0 <= x0 < x1 and 0 <= y0 < y1 (x1, y1 exclusive), got {text!r}")
    return values  # type: ignore[return-value]


def _number(option: str, text: str, lo: float, hi: float, none: bool = False) -> Optional[float]:
    """A number in ``[lo, hi]`` (or ``none``) given on the command line."""
    if none and text.lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not lo <= value <= hi:
        raise CliError(2, f"{option} must be a number in [{lo:g}, {hi:g}]{' or none' if none else ''}, got {text!r}")
    return value


def _check_args(args: argparse.Namespace) -> Optional[str]:
    """Parse and check the options in place (one line and exit 2 if wrong, before any image is
    read); return the picture's path (``OUT`` or ``-o``), its format checked."""
    args.threshold = _number("--threshold", args.threshold, 0.0, 1.0)
    args.min_ssim = _number("--min-ssim", args.min_ssim, -1.0, 1.0, none=True)
    args.fail_threshold = _fail_threshold(args.fail_threshold)
    args.ignore = [rectangle(r) for r in args.ignore]
    if args.min_area < 0:
        raise CliError(2, f"--min-area must be >= 0, got {args.min_area}")
    if args.out and args.output and args.out != args.output:
        raise CliError(2, f"two outputs given: {args.out} and -o {args.output}; give one")
    out = args.out or args.output
    if out is not None:
        picture_format(out)
    if args.json not in (None, "-") and os.path.splitext(args.json)[1].lower() in FORMATS:
        raise CliError(2, f"--json {args.json}: that is an image name; put the picture before --json, or write --json=FILE.json")
    for path in (out, None if args.json == "-" else args.json):
        if path is not None:
            check_output(path)  # before decoding and computing
    return out


def add_ignore_options(p) -> None:
    """``--ignore x0,y0,x1,y1`` (repeatable) and ``--mask FILE``: pixels left out (``diff``, ``compare``)."""
    p.add_argument("--ignore", action="append", default=[], metavar="x0,y0,x1,y1",
                   help="ignore a rectangle (x1, y1 exclusive); repeatable")
    p.add_argument("--mask", default=None, metavar="FILE", help="ignore the pixels that are not black in this image (same size)")


class _Intermixed(argparse.ArgumentParser):
    """Positionals may follow options (``diff a b --method pixelmatch out.png``), as odiff's users
    write them: plain argparse hands ``out.png`` back as unrecognised once ``a b`` were read."""

    _inner = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inner:  # parse_known_intermixed_args parses in two passes through this method
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "diff",
        help="where two images differ: exit code, report and picture",
        description="Find where two images of the same size differ. Exit code 0: they match "
        "(within --fail-threshold); 1: they differ; 2: bad input (missing or unreadable file, "
        "different sizes, bad option, output not writable).",
    )
    p.add_argument("a", help="first image file (the reference)")
    p.add_argument("b", help="second image file (same size)")
    p.add_argument("out", nargs="?", default=None, metavar="OUT", help="picture to write: .png, .jpg/.jpeg or .webp (optional)")
    p.add_argument("-o", "--output", default=None, metavar="OUT", help="the same as OUT")
    p.add_argument("--method", choices=("ssim", "pixelmatch"), default="ssim", help="how to find differences (default: ssim)")
    p.add_argument("--threshold", default="0.1",
                   help="pixelmatch: colour difference threshold in [0, 1], smaller is stricter, 0 tolerates nothing (default 0.1)")
    aa = p.add_mutually_exclusive_group()
    aa.add_argument("--antialiasing", "--aa", dest="include_aa", action="store_false", default=False,
                    help="pixelmatch: do not count anti-aliased pixels (the default, as pixelmatch; odiff's --antialiasing)")
    aa.add_argument("--include-aa", dest="include_aa", action="store_true",
                    help="pixelmatch: count anti-aliased pixels too (pixelmatch's includeAA; odiff's default)")
    p.add_argument("--min-ssim", default="0.9",
                   help="ssim: pixels of SSIM >= this never differ (default 0.9); 'none' for the bare Otsu split")
    p.add_argument("--min-area", type=int, default=0, help="ssim: drop regions of fewer pixels (default 0)")
    p.add_argument("--fail-threshold", default="0", metavar="LIMIT",
                   help="exit 1 only when more pixels differ than this count (500) or percentage (0.5%%) (default 0)")
    add_ignore_options(p)
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="write the result as JSON to FILE, or to stdout without FILE")
    p.add_argument("--output-mode", choices=("overlay", "mask", "side-by-side"), default=None,
                   help="picture: overlay (diff over a faded copy of A), mask (differing pixels on transparent) "
                   "or side-by-side (A | B | diff); default: side-by-side for ssim, overlay for pixelmatch")
    p.add_argument("--output-diff-lines", action="store_true", help="report the rows (y) that have differing pixels")
    p.add_argument("--output-diff-cols", action="store_true", help="report the columns (x) that have differing pixels")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.__class__ = _Intermixed  # the subparsers action builds every command's parser with one class
    add_decode_options(p)
    return p


def _has_alpha(path: str) -> bool:
    """Whether an image file may hold transparency (from its header; True when it cannot be read,
    so that decoding reports why). Opaque files are decoded as RGB, without torchvision."""
    from PIL import Image

    from ._files import check_readable

    try:
        check_readable(path)  # never open a FIFO or a device
        with Image.open(path) as im:
            return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    except Exception:  # unreadable: decoding says why
        return True


def ignore_mask(args: argparse.Namespace, height: int, width: int, device: str) -> Optional["torch.Tensor"]:
    """The ``(1, 1, H, W)`` bool mask of ``--ignore`` rectangles (parsed by :func:`rectangle`) and
    ``--mask`` pixels, or None; one line and exit 2 for a rectangle outside or a mask of another size."""
    import torch

    from ._files import decode

    rects = _rectangles(args, height, width)
    if rects is None and args.mask is None:
        return None
    mask = torch.zeros((1, 1, height, width), dtype=torch.bool) if rects is None else torch.from_numpy(rects)[None]
    if args.mask is not None:
        from torchsim.io import ImageReadError

        try:
            m = decode(args.mask, "GRAY", **decode_options(args))
        except ImageReadError as exc:
            raise CliError(2, f"--mask {exc}") from None
        if tuple(m.shape[1:]) != (height, width):
            raise CliError(2, f"--mask {args.mask}: size {m.shape[2]}x{m.shape[1]} differs from the {width}x{height} images")
        mask |= (m > 0)[None]
    return mask.to(device)


def _rectangles(args: argparse.Namespace, height: int, width: int):
    """The ``(1, H, W)`` bool NumPy mask of the ``--ignore`` rectangles, or None without any."""
    if not args.ignore:
        return None
    import numpy as np

    mask = np.zeros((1, height, width), dtype=bool)
    for x0, y0, x1, y1 in args.ignore:
        if x1 > width or y1 > height:
            raise CliError(2, f"--ignore {x0},{y0},{x1},{y1}: outside the {width}x{height} images")
        mask[:, y0:y1, x0:x1] = True
    return mask


def _lines(diff) -> Tuple[List[int], List[int]]:
    """Rows and columns of a ``(H, W)`` bool mask (tensor or NumPy array) that hold a True pixel."""
    import numpy as np

    d = np.asarray(diff)
    return np.flatnonzero(d.any(1)).tolist(), np.flatnonzero(d.any(0)).tolist()


def _faded(a: "torch.Tensor") -> "torch.Tensor":
    """A faded grey copy of ``a`` ``(3, H, W)``, as pixelmatch draws its background (alpha 0.1)."""
    import torch

    gray = a.to(torch.float32).mean(0)
    return (255 - (255 - gray) * 0.1).round().to(torch.uint8).expand(3, -1, -1).contiguous()


def _draw_boxes(img: "torch.Tensor", boxes: "torch.Tensor") -> "torch.Tensor":
    """``img`` ``(3, H, W)`` with the outline of every box ``(x0, y0, x1, y1)`` (exclusive ends) in red,
    ``min(H, W) // 128 + 1`` pixels wide, inside the box."""
    import torch

    out = img.clone()
    color = torch.tensor(_BOX_COLOR, dtype=torch.uint8).reshape(3, 1, 1)
    t = max(1, min(img.shape[1:]) // 128 + 1)
    for x0, y0, x1, y1 in boxes.tolist():
        for ys, xs in ((slice(y0, min(y1, y0 + t)), slice(x0, x1)), (slice(max(y0, y1 - t), y1), slice(x0, x1)),
                       (slice(y0, y1), slice(x0, min(x1, x0 + t))), (slice(y0, y1), slice(max(x0, x1 - t), x1))):
            out[:, ys, xs] = color
    return out


def _ssim(args, a, b, ignore) -> Dict[str, Any]:
    import torchsim

    dev = args.device
    boxes, smap, stats, diff = torchsim.diff_regions(
        a[None].to(dev), b[None].to(dev), min_ssim=args.min_ssim, min_area=args.min_area, mask=ignore,
        return_map=True, return_stats=True, return_mask=True,
    )
    pixels, means = stats[0]
    return {"boxes": boxes[0].cpu(), "pixels": pixels.tolist(), "means": means.tolist(), "diff": diff[0, 0].cpu(),
            "map": smap[0, 0].cpu()}


def _pixelmatch(args, a, b, ignore, mode: Optional[str], want_mask: bool) -> Dict[str, Any]:
    """pixelmatch's count, its picture for ``mode`` (None: no picture) and, if ``want_mask`` or
    for ``mode="mask"``, the ``(H, W)`` mask of the counted mismatches. ``a``, ``b``: ``(C, H, W)``
    tensors, or uint8 NumPy arrays (then the CPU kernel runs on them: no torch; ``ignore`` is a
    ``(1, H, W)`` NumPy mask or None)."""
    from torchsim.kernels import pixelmatch as K

    draw = mode in ("overlay", "side-by-side")
    masked = not draw and (mode == "mask" or want_mask)  # drawn on transparent: the mismatches alone
    if type(a).__module__ == "numpy":  # pair_arrays: both are
        count, picture, _ = K.run(a[None], b[None], K.max_delta(args.threshold), args.include_aa, K.ALPHA,
                                  (K.AA_COLOR, K.DIFF_COLOR, None), masked, draw or masked,
                                  mapbox=True, checkerboard=True, ignore=ignore)  # torchsim.pixelmatch's defaults
    else:
        import torchsim

        x, y = a[None].to(args.device), b[None].to(args.device)
        kw = dict(threshold=args.threshold, include_aa=args.include_aa, mask=ignore)
        if draw or masked:
            count, picture = torchsim.pixelmatch(x, y, return_diff=True, diff_mask=masked, **kw)
            picture = picture.cpu()
        else:
            count = torchsim.pixelmatch(x, y, **kw)
    out: Dict[str, Any] = {"count": int(count[0])}
    if draw:
        out["picture"] = picture[0, :3]  # opaque without diff_mask: RGB
        if want_mask:  # the counted mismatches are the red pixels: the background is grey, anti-aliasing yellow
            r, g, b = out["picture"]
            out["diff"] = (r == 255) & (g == 0) & (b == 0)
    elif masked:
        out["diff"] = picture[0, 3] == 255  # drawn opaque: the counted mismatches
        if mode == "mask":
            out["picture"] = picture[0]
    return out


def _regions_of(diff: "torch.Tensor", a, b, ignore, device: str):
    """Box, pixel count and mean SSIM of each 8-connected region of pixelmatch's mismatches."""
    import torchsim
    from torchsim.ops import component_regions

    _, smap = torchsim.diff_regions(a[None].to(device), b[None].to(device), mask=ignore, return_map=True)
    ((boxes, pixels, means),) = component_regions(diff[None].to(device), values=smap[:, 0])
    return boxes.cpu(), pixels.tolist(), means.tolist()


def _picture(args, mode: str, a, b, result: Dict[str, Any]):
    """The picture of ``mode``: a ``(C, H, W)`` uint8 tensor, or the CPU kernel's NumPy array."""
    if args.method == "pixelmatch" and mode != "side-by-side":
        return result["picture"]
    import torch

    from torchsim._common import to_uint8  # 16-bit files are drawn from their high byte

    from . import _draw

    a, b = (to_uint8(v[:3]) for v in (a, b))
    if args.method == "pixelmatch":
        return _draw.grid([[_draw.to_rgb(a), _draw.to_rgb(b), result["picture"]]])
    boxes, diff = result["boxes"], result["diff"]
    if mode == "side-by-side":
        panels = [_draw_boxes(_draw.to_rgb(img), boxes) for img in (a, b)]
        panels.append(_draw.colormap(result["map"], lo=0.0, hi=1.0))
        return _draw.grid([panels])
    if mode == "mask":
        out = torch.zeros((4, *diff.shape), dtype=torch.uint8)
        out[:, diff] = torch.tensor([*_BOX_COLOR, 255], dtype=torch.uint8).reshape(4, 1)
        return out
    out = _faded(_draw.to_rgb(a))
    out[:, diff] = torch.tensor(_BOX_COLOR, dtype=torch.uint8).reshape(3, 1)
    return _draw_boxes(out, boxes)


def _failed(count: int, total: int, threshold: Tuple[str, float]) -> bool:
    kind, value = threshold
    return count > value if kind == "count" else 100.0 * count / total > value


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except CliError as exc:  # any failure is "bad input" to a CI step: never 1, which means "different"
        raise CliError(2, exc.message) from None


def _run(args: argparse.Namespace) -> int:
    out = _check_args(args)
    mode = args.output_mode or _DEFAULT_MODE[args.method]
    from ._files import load_pair, pair_arrays, start_pair

    rgba = args.method == "pixelmatch" and (_has_alpha(args.a) or _has_alpha(args.b))
    pending = start_pair(args.a, args.b, "RGBA" if rgba else "RGB", **decode_options(args))
    # pixelmatch on the CPU of two 8-bit files drawn as overlay or mask, without --json (regions
    # need SSIM) or --mask FILE: the CPU kernel runs on the decoded arrays and torch, whose import
    # takes longer than the whole comparison of two 37-megapixel screenshots, is never imported.
    arrays = None
    if (args.method == "pixelmatch" and args.device == "cpu" and args.json is None and args.mask is None
            and (out is None or mode != "side-by-side")):
        arrays = pair_arrays(pending)
    a, b = arrays if arrays is not None else load_pair(pending, args.device)
    top = 255 if a.dtype.itemsize == 1 else 65535
    if a.shape[0] == 4 and bool((a[3] == top).all()) and bool((b[3] == top).all()):
        a, b = a[:3], b[:3]  # opaque: pixelmatch counts the same on RGB, and the diff is cheaper to draw
    height, width = a.shape[1:]
    total = height * width
    ignore = _rectangles(args, height, width) if arrays is not None else ignore_mask(args, height, width, args.device)
    lines_wanted = args.output_diff_lines or args.output_diff_cols
    try:
        if args.method == "pixelmatch":
            result = _pixelmatch(args, a, b, ignore, mode if out else None, lines_wanted or args.json is not None)
            count = result["count"]
            if args.json is not None:
                boxes, pixels, means = _regions_of(result["diff"], a[:3], b[:3], ignore, args.device)
            else:
                boxes, pixels, means = None, [], []
        else:
            result = _ssim(args, a, b, ignore)
            boxes, pixels, means = result["boxes"], result["pixels"], result["means"]
            count = sum(pixels)
    except ValueError as exc:  # e.g. an image smaller than the SSIM window
        raise CliError(2, str(exc)) from None
    rows, cols = _lines(result["diff"]) if lines_wanted else ([], [])
    failed = _failed(count, total, args.fail_threshold)
    if out is not None:
        from ._picture import write_picture

        write_picture(_picture(args, mode, a, b, result), out)
    percent = 100.0 * count / total
    if args.json is not None:
        doc = {
            "match": not failed,
            "identical": count == 0,
            "method": args.method,
            "count": count,
            "percentage": percent,
            "width": width,
            "height": height,
            "regions": [
                {"box": box, "pixels": n, "mean_ssim": json_value(m)}
                for box, n, m in zip(boxes.tolist() if boxes is not None else [], pixels, means)
            ],
            "settings": {
                "a": args.a, "b": args.b, "output": out, "output_mode": mode if out else None,
                "threshold": args.threshold if args.method == "pixelmatch" else None,
                "include_aa": args.include_aa if args.method == "pixelmatch" else None,
                "min_ssim": args.min_ssim if args.method == "ssim" else None,
                "min_area": args.min_area if args.method == "ssim" else None,
                "fail_threshold": {args.fail_threshold[0]: args.fail_threshold[1]},
                "ignore": [list(r) for r in args.ignore], "mask": args.mask, "device": args.device,
            },
        }
        if args.output_diff_lines:
            doc["diff_lines"] = rows
        if args.output_diff_cols:
            doc["diff_cols"] = cols
        _write_json(doc, args.json)
    if args.json != "-":
        if args.method == "pixelmatch":
            summary = f"{count} mismatched pixels ({percent:.2f}% of {total}), threshold {args.threshold}"
        else:
            k = len(pixels)
            summary = (f"{k} difference region{'s' if k != 1 else ''} (SSIM 7x7 + Otsu, floor {args.min_ssim}): "
                       f"{count} pixels ({percent:.2f}% of {total})")
        verdict = "different" if failed else ("identical" if count == 0 else "within --fail-threshold")
        print(f"{summary}; {verdict}" + (f"; wrote {out}" if out else ""))
        if args.output_diff_lines:
            print("Different lines: " + ", ".join(map(str, rows)))
        if args.output_diff_cols:
            print("Different columns: " + ", ".join(map(str, cols)))
    return 1 if failed else 0


def _write_json(doc: Dict[str, Any], where: str) -> None:
    text = json.dumps(doc) + "\n"
    if where == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        os.makedirs(os.path.dirname(os.path.abspath(where)), exist_ok=True)
        with open(where, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise CliError(2, f"{where}: cannot write ({exc.strerror or exc})") from None
