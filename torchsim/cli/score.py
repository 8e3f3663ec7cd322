"""``torchsim score REF_DIR TEST_DIR``: score every pair of same-named images in two folders.

Pipeline: pair files by name -> decode with ``torchvision.io`` in a
``DataLoader`` (``--workers`` processes) -> batches of same-size pairs (the
collate function splits a batch by image size) -> optional border crop and
BT.601 Y channel -> the library's streaming metric modules (``update`` gives
the per-image values of the table, ``compute`` the means) -> a per-image
table and the means on stdout, CSV / JSON written and flushed after every
batch.

Decisions:

* Pairing is by exact file name, over the image files of each folder (not
  recursive; hidden files and files without an image extension are ignored).
  A file present in only one folder is *unpaired*: one line on stderr naming
  it, counted as a failure (exit code 1); every other pair is still scored.
* A file that cannot be decoded, or a pair whose sizes differ, gets one line
  on stderr naming the file, is counted as a failure, and the rest is scored.
* A metric that does not apply to an image (MS-SSIM on a side below 161 px,
  SSIM below 11 px) leaves that cell empty ("n/a"); its mean is over the
  images it applies to.
* ``--json FILE`` writes a JSON document (rows streamed as they are
  computed, so a run that stops half way leaves every computed row on its own
  line); ``--json`` alone prints the document on stdout instead of the
  table. Non-finite values (PSNR of identical images) are written as the
  strings ``"inf"`` / ``"nan"`` so the file stays strict JSON.
* Under ``torchrun`` (``RANK`` / ``WORLD_SIZE`` set) the process group is
  initialised (gloo; NCCL with ``--device cuda``), each rank scores every
  ``WORLD_SIZE``-th pair, writes its rows to ``FILE.rank<k>`` part files as
  it goes, and rank 0 gathers the rows, prints the merged table and writes
  the merged files with data-set-wide means (``compute()`` all-reduces),
  then the part files are removed.

Exit codes: 0 all pairs scored, 1 some file failed (the rest was scored),
2 bad arguments or nothing to score.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import io
import json
import math
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

import torchsim
from torchsim import _distributed as streaming  # process groups (old name kept for the CLI restructure)
from torchsim.io import ImageReadError, read_image

from ._common import device_problem, is_image_name

PROG = "torchsim score"


# --------------------------------------------------------------------------------------------
# The metric table: one entry per metric. Inputs are uint8 0..255 (or the float Y channel on
# 0..255), so data_range is 255 and histograms bin over (0, 255).
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str  # command-line name and column
    module: str  # class name in torchsim
    title: str  # column header
    digits: int = 4  # decimals in the table
    min_side: int = 1  # smallest image side the metric applies to
    options: Tuple[Tuple[str, Any], ...] = ()  # extra keyword arguments of the module

    def available(self) -> bool:
        return hasattr(torchsim, self.module)

    def build(self) -> "torchsim.Metric":
        cls = getattr(torchsim, self.module)
        params = inspect.signature(cls.__init__).parameters
        kwargs: Dict[str, Any] = dict(self.options)
        if "data_range" in params:
            kwargs["data_range"] = 255.0
        if "value_range" in params:
            kwargs["value_range"] = (0.0, 255.0)
        return cls(**kwargs)


METRICS: Dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("psnr", "PSNR", "PSNR", digits=2),
        MetricSpec("ssim", "SSIM", "SSIM", min_side=11),
        MetricSpec("ms_ssim", "MSSSIM", "MS-SSIM", min_side=161),
        MetricSpec("mse", "MSE", "MSE", digits=2),
        MetricSpec("cosine", "CosineSimilarity", "cosine", digits=6),
        MetricSpec("histogram", "HistogramSimilarity", "hist corr"),
        MetricSpec("mi", "MutualInformation", "MI"),
        MetricSpec("nmi", "NMI", "NMI"),
    )
}
DEFAULT_METRICS = "psnr,ssim"


def available_metrics() -> List[str]:
    return [name for name, spec in METRICS.items() if spec.available()]


# --------------------------------------------------------------------------------------------
# Data: pairs, a dataset that decodes in DataLoader workers, a collate that groups by size
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Item:
    index: int
    name: str
    x: Optional[torch.Tensor] = None
    y: Optional[torch.Tensor] = None
    error: Optional[str] = None


class PairDataset(torch.utils.data.Dataset):
    """``(index, name, ref_path, test_path)`` -> decoded uint8 ``(3, H, W)`` pair, or an error."""

    def __init__(self, pairs: Sequence[Tuple[int, str, str, str]]) -> None:
        self.pairs = list(pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> Item:
        index, name, ref, test = self.pairs[i]
        try:
            x = read_image(ref, mode="RGB")
            y = read_image(test, mode="RGB")
        except ImageReadError as exc:  # "<file>: <why>"
            return Item(index, name, error=str(exc))
        except Exception as exc:  # nothing about one pair may stop the run
            return Item(index, name, error=f"{ref} / {test}: cannot decode ({type(exc).__name__}: {exc})")
        if x.shape != y.shape:
            return Item(index, name, error=(
                f"{test}: size mismatch: {y.shape[2]}x{y.shape[1]} here, {x.shape[2]}x{x.shape[1]} "
                f"in the reference {ref}"))
        return Item(index, name, x, y)


def collate_by_size(items: List[Item]):
    """A batch as ``(groups, errors)``: one stacked ``(idx, names, x, y)`` group per image size."""
    groups: Dict[Tuple[int, ...], List[Item]] = {}
    errors = []
    for it in items:
        if it.error is not None:
            errors.append((it.index, it.name, it.error))
        else:
            groups.setdefault(tuple(it.x.shape), []).append(it)
    out = [
        ([it.index for it in g], [it.name for it in g], torch.stack([it.x for it in g]), torch.stack([it.y for it in g]))
        for g in groups.values()
    ]
    return out, errors


def _image_files(folder: str) -> Dict[str, str]:
    out = {}
    for entry in os.scandir(folder):
        if not is_image_name(entry.name):
            continue
        if entry.is_file():
            out[entry.name] = entry.path
    return out


def pair_files(ref_dir: str, test_dir: str):
    """``(pairs, unpaired)``: pairs ``(index, name, ref, test)`` sorted by name; unpaired ``(name, message)``."""
    ref, test = _image_files(ref_dir), _image_files(test_dir)
    names = sorted(set(ref) | set(test))
    pairs, unpaired = [], []
    for name in names:
        if name in ref and name in test:
            pairs.append((len(pairs), name, ref[name], test[name]))
        elif name in ref:
            unpaired.append((name, f"{ref[name]}: unpaired: no file named {name} in {test_dir}"))
        else:
            unpaired.append((name, f"{test[name]}: unpaired: no file named {name} in {ref_dir}"))
    return pairs, unpaired


# --------------------------------------------------------------------------------------------
# Output: table, CSV, JSON
# --------------------------------------------------------------------------------------------


def _json_value(v: Optional[float]):
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _cell(v: Optional[float], digits: int) -> str:
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


class Table:
    """Fixed-width text table: the name column is as wide as the longest name."""

    def __init__(self, specs: List[MetricSpec], names: Sequence[str], out) -> None:
        self.specs, self.out = specs, out
        self.name_w = max([len("image"), len(f"mean ({len(names)} images)")] + [len(n) for n in names])
        self.widths = [max(len(s.title), 10) for s in specs]

    def _line(self, first: str, cells: Sequence[str]) -> str:
        parts = [first.ljust(self.name_w)] + [c.rjust(w) for c, w in zip(cells, self.widths)]
        return "  ".join(parts).rstrip()

    def header(self) -> List[str]:
        return [self._line("image", [s.title for s in self.specs]),
                self._line("-" * self.name_w, ["-" * w for w in self.widths])]

    def row(self, row: Dict[str, Any]) -> str:
        return self._line(row["name"], [_cell(row.get(s.name), s.digits) for s in self.specs])

    def footer(self, means: Dict[str, Optional[float]], count: int) -> List[str]:
        return [self._line("-" * self.name_w, ["-" * w for w in self.widths]),
                self._line(f"mean ({count} images)", [_cell(means.get(s.name), s.digits) for s in self.specs])]


class CsvSink:
    """``name, <metrics...>, error`` rows, flushed after every batch."""

    def __init__(self, path: str, specs: List[MetricSpec]) -> None:
        self.fh = open(path, "w", newline="", encoding="utf-8")
        self.cols = [s.name for s in specs]
        self.writer = csv.writer(self.fh)
        self.writer.writerow(["name", *self.cols, "error"])
        self.fh.flush()

    def write(self, rows: List[Dict[str, Any]], failures: List[Tuple[int, str, str]] = ()) -> None:
        for r in rows:
            self.writer.writerow([r["name"], *("" if r.get(c) is None else repr(float(r[c])) for c in self.cols), ""])
        for _, name, msg in failures:
            self.writer.writerow([name, *([""] * len(self.cols)), msg])
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class JsonSink:
    """A JSON document whose ``images`` rows are written (one per line) and flushed as they come."""

    def __init__(self, fh, header: Dict[str, Any]) -> None:
        self.fh, self.first = fh, True
        fh.write("{\n")
        for k, v in header.items():
            fh.write(f"{json.dumps(k)}: {json.dumps(v)},\n")
        fh.write('"images": [')
        fh.flush()

    def write(self, rows: List[Dict[str, Any]], failures=()) -> None:
        for r in rows:
            clean = {k: (_json_value(v) if k != "name" else v) for k, v in r.items() if k != "index"}
            self.fh.write(("\n" if self.first else ",\n") + json.dumps(clean))
            self.first = False
        self.fh.flush()

    def close(self, summary: Dict[str, Any]) -> None:
        self.fh.write("\n],\n")
        items = list(summary.items())
        for i, (k, v) in enumerate(items):
            self.fh.write(f"{json.dumps(k)}: {json.dumps(v)}{',' if i < len(items) - 1 else ''}\n")
        self.fh.write("}\n")
        self.fh.flush()


# --------------------------------------------------------------------------------------------
# Command
# --------------------------------------------------------------------------------------------


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "score",
        help="score every pair of same-named images in two folders",
        description=(
            "Pair the images of REF_DIR and TEST_DIR by file name, score each pair, print a per-image "
            "table and the means. Unpaired, unreadable or size-mismatched files get one line on stderr "
            "each and make the exit code 1; the other pairs are still scored. Under torchrun each "
            "process scores a shard and rank 0 writes the merged report."
        ),
    )
    p.add_argument("ref_dir", metavar="REF_DIR", help="folder of reference images")
    p.add_argument("test_dir", metavar="TEST_DIR", help="folder of images to score (same file names)")
    p.add_argument("--metrics", default=DEFAULT_METRICS,
                   help=f"comma-separated metrics (default {DEFAULT_METRICS}); available: {', '.join(available_metrics())}")
    p.add_argument("--y-channel", action="store_true",
                   help="score the BT.601 luma Y (MATLAB rgb2ycbcr, as BasicSR's test_y_channel) on 0..255")
    p.add_argument("--crop-border", type=int, default=0, metavar="N",
                   help="crop N pixels from each side before scoring (BasicSR's crop_border)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="pairs per batch (default 8)")
    p.add_argument("--workers", type=int, default=default_workers(), metavar="W",
                   help=f"decoding processes (default {default_workers()}: half the cores, at most 4; 0 decodes in "
                        f"the main process). On CPU the metrics use the remaining cores.")
    p.add_argument("--csv", default=None, metavar="FILE", help="write one row per image to FILE as it goes")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="write a JSON report to FILE as it goes; without FILE print it on stdout instead of the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def default_workers() -> int:
    return min(4, max(1, _cpu_count() // 2))


def _err(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"{PROG}: {msg}", file=sys.stderr)


def _parse_metrics(text: str) -> List[MetricSpec]:
    names = [n.strip().lower().replace("-", "_") for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--metrics must name at least one metric")
    unknown = [n for n in names if n not in METRICS or not METRICS[n].available()]
    if unknown:
        raise ValueError(f"--metrics: unknown metric {', '.join(unknown)}; available: {', '.join(available_metrics())}")
    return [METRICS[n] for n in dict.fromkeys(names)]


def _check_args(args) -> Optional[str]:
    for attr, label in (("ref_dir", "REF_DIR"), ("test_dir", "TEST_DIR")):
        if not os.path.isdir(getattr(args, attr)):
            return f"{getattr(args, attr)}: {label} is not a folder"
    if args.crop_border < 0:
        return f"--crop-border must be >= 0, got {args.crop_border}"
    if args.batch_size < 1:
        return f"--batch-size must be >= 1, got {args.batch_size}"
    if args.workers < 0:
        return f"--workers must be >= 0, got {args.workers}"
    return device_problem(args.device)


def _part(path: str, rank: int, world: int) -> str:
    return path if world == 1 else f"{path}.rank{rank}"


def run(args) -> int:
    problem = _check_args(args)
    if problem is None:
        try:
            specs = _parse_metrics(args.metrics)
        except ValueError as exc:
            problem = str(exc)
    if problem is not None:
        _err(problem)
        return 2
    created = streaming.init_distributed_from_env(args.device)
    threads = torch.get_num_threads()
    if not args.device.startswith("cuda"):
        # The decoding workers take cores: leave them free, or the metric threads and the decoders
        # oversubscribe the CPU (several times slower on a small or busy machine).
        torch.set_num_threads(max(1, min(threads, _cpu_count() - args.workers)))
    try:
        return _score(args, specs)
    finally:
        torch.set_num_threads(threads)
        if created:
            streaming.shutdown_distributed()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _score(args, specs: List[MetricSpec]) -> int:
    from tqdm import tqdm

    rank, world = streaming.rank_and_world()
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None and world > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    pairs, unpaired = pair_files(args.ref_dir, args.test_dir)
    if not pairs and not unpaired:
        if rank == 0:
            _err(f"no image files in {args.ref_dir} or {args.test_dir}")
        return 2
    failures: List[Tuple[int, str, str]] = []
    if rank == 0:
        for name, msg in unpaired:
            _err(msg)
            failures.append((-1, name, msg))
    shard = pairs[rank::world]
    modules = {s.name: s.build().to(device) for s in specs}
    header = {
        "ref_dir": os.path.abspath(args.ref_dir), "test_dir": os.path.abspath(args.test_dir),
        "metrics": [s.name for s in specs], "y_channel": bool(args.y_channel), "crop_border": args.crop_border,
        "torchsim": torchsim.__version__,
    }
    json_stdout = args.json == "-"
    table = Table(specs, [p[1] for p in pairs], sys.stdout)
    live_table = world == 1 and not json_stdout
    csv_sink = CsvSink(_part(args.csv, rank, world), specs) if args.csv else None
    json_sink = None
    if args.json and not json_stdout:
        json_sink = JsonSink(open(_part(args.json, rank, world), "w", encoding="utf-8"), header)
    if rank == 0 and csv_sink is not None and failures:
        csv_sink.write([], failures)
    rows: List[Dict[str, Any]] = []
    loader = torch.utils.data.DataLoader(
        PairDataset(shard), batch_size=args.batch_size, shuffle=False, num_workers=args.workers,
        collate_fn=collate_by_size, pin_memory=device.type == "cuda",
    )
    bar = tqdm(total=len(shard), unit="img", desc=PROG, file=sys.stderr, dynamic_ncols=True,
               disable=args.no_progress or rank != 0)
    if live_table:
        for line in table.header():
            tqdm.write(line, file=sys.stdout)
    complete = False
    try:
        for groups, errors in loader:
            batch_rows, batch_failures = [], []
            for index, name, msg in errors:
                _err(msg)
                batch_failures.append((index, name, msg))
            for indices, names, x, y in groups:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                c = args.crop_border
                if c:
                    if min(x.shape[-2:]) <= 2 * c:
                        for index, name in zip(indices, names):
                            msg = (f"{os.path.join(args.test_dir, name)}: {x.shape[-1]}x{x.shape[-2]} image is too "
                                   f"small for --crop-border {c}")
                            _err(msg)
                            batch_failures.append((index, name, msg))
                        continue
                    x, y = x[..., c:-c, c:-c], y[..., c:-c, c:-c]
                if args.y_channel:
                    x, y = torchsim.rgb_to_y(x), torchsim.rgb_to_y(y)
                values: Dict[str, Optional[List[float]]] = {}
                for spec in specs:
                    if min(x.shape[-2:]) >= spec.min_side:
                        values[spec.name] = modules[spec.name].update(x, y).double().cpu().tolist()
                    else:
                        values[spec.name] = None
                for k, (index, name) in enumerate(zip(indices, names)):
                    row = {"index": index, "name": name}
                    for spec in specs:
                        v = values[spec.name]
                        row[spec.name] = None if v is None else v[k]
                    batch_rows.append(row)
            batch_rows.sort(key=lambda r: r["index"])
            rows.extend(batch_rows)
            failures.extend(batch_failures)
            for sink in (csv_sink, json_sink):
                if sink is not None:
                    sink.write(batch_rows, batch_failures)
            if live_table:
                for r in batch_rows:
                    tqdm.write(table.row(r), file=sys.stdout)
            bar.update(len(batch_rows) + len(batch_failures))
        complete = True
    finally:
        bar.close()
        if csv_sink is not None:
            csv_sink.close()
        if json_sink is not None and not (complete and world == 1):
            # interrupted, or a part file of a distributed run: terminate the document as it stands
            json_sink.close({"failures": _failure_dicts(failures), "complete": False if not complete else "part"})
            json_sink.fh.close()

    # ---- means (collective: every rank calls compute() for every metric) -------------------
    means: Dict[str, Optional[float]] = {}
    counts: Dict[str, int] = {}
    for spec in specs:
        try:
            means[spec.name] = float(modules[spec.name].compute())
        except RuntimeError:
            means[spec.name] = None
    gathered = streaming.gather_to_rank0((rows, failures))
    n_failed_local = len(failures)
    if rank != 0:
        streaming.barrier()
        _remove_parts(args, rank, world)
        return 1 if n_failed_local else 0

    all_rows = sorted((r for rs, _ in gathered for r in rs), key=lambda r: r["index"])
    all_failures = [f for _, fs in gathered for f in fs]
    for spec in specs:
        counts[spec.name] = sum(1 for r in all_rows if r.get(spec.name) is not None)
    summary = {
        "failures": _failure_dicts(all_failures),
        "means": {k: _json_value(v) for k, v in means.items()},
        "count": len(all_rows),
        "counts": counts,
        "complete": True,
    }
    if world > 1:
        if args.csv:
            merged = CsvSink(args.csv, specs)
            merged.write(all_rows, sorted(all_failures, key=lambda f: f[1]))
            merged.close()
        if args.json and not json_stdout:
            with open(args.json, "w", encoding="utf-8") as fh:
                sink = JsonSink(fh, header)
                sink.write(all_rows)
                sink.close(summary)
    elif json_sink is not None:
        json_sink.close(summary)
        json_sink.fh.close()

    if json_stdout:
        buf = io.StringIO()
        sink = JsonSink(buf, header)
        sink.write(all_rows)
        sink.close(summary)
        sys.stdout.write(buf.getvalue())
    else:
        if not live_table:
            print("\n".join(table.header() + [table.row(r) for r in all_rows]))
        print("\n".join(table.footer(means, len(all_rows))))
        skipped = {s.name: len(all_rows) - counts[s.name] for s in specs if counts[s.name] < len(all_rows)}
        for name, k in skipped.items():
            print(f"{name}: n/a for {k} image(s) smaller than {METRICS[name].min_side} px", file=sys.stderr)
        if all_failures:
            print(f"{PROG}: {len(all_failures)} file(s) failed, {len(all_rows)} pair(s) scored", file=sys.stderr)
    sys.stdout.flush()
    streaming.barrier()
    _remove_parts(args, rank, world)
    return 1 if all_failures else 0


def _failure_dicts(failures) -> List[Dict[str, str]]:
    return [{"name": name, "error": msg} for _, name, msg in failures]


def _remove_parts(args, rank: int, world: int) -> None:
    if world == 1:
        return
    for path in (args.csv, args.json if args.json != "-" else None):
        if path:
            try:
                os.remove(_part(path, rank, world))
            except OSError:
                pass
