"""``torchsim score REF_DIR TEST_DIR``: score every pair of same-named images in two folders.

Pipeline: pair files by name -> decode in a ``DataLoader`` (``--workers``
processes) -> batches of same-size pairs (``_files.batches``: the collate
function splits a batch by image size) -> optional border crop and
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
import dataclasses
import io
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import torchsim  # the metrics (and torch) load on first use

from . import _metrics
from ._errors import CliError, check_at_least, check_device, check_folder, warn
from ._files import batches, pair_files
from ._sinks import Column, CsvSink, JsonSink, Table, json_value, open_output

COMMAND = "score"
PROG = f"torchsim {COMMAND}"


# --------------------------------------------------------------------------------------------
# The metrics of --metrics: command-line name, the library's metric, column. Inputs are uint8
# 0..255 (or the float Y channel on 0..255), so data_range is 255 and histograms bin (0, 255).
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MetricSpec:
    name: str  # command-line name, column key
    metric: str  # the library's function name (see _metrics.resolve)
    title: str  # column header
    digits: int = 4  # decimals in the table

    @property
    def column(self) -> Column:
        return Column(self.name, self.title, self.digits)

    def resolve(self, convention: Optional[str] = None) -> _metrics.MetricInfo:
        return _metrics.resolve(self.metric, data_range=255.0, convention=convention)

    def build(self) -> Any:
        """A new streaming module (a ``torchsim.Metric``) for images on 0..255."""
        return self.resolve().build()


METRICS: Dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("psnr", "psnr", "PSNR", digits=2),
        MetricSpec("ssim", "ssim", "SSIM"),
        MetricSpec("ms_ssim", "ms_ssim", "MS-SSIM"),
        MetricSpec("mse", "mse", "MSE", digits=2),
        MetricSpec("cosine", "cosine_similarity", "cosine", digits=6),
        MetricSpec("histogram", "histogram_similarity", "hist corr"),
        MetricSpec("mi", "mutual_information", "MI"),
        MetricSpec("nmi", "normalized_mutual_information", "NMI"),
    )
}
DEFAULT_METRICS = "psnr,ssim"


def available_metrics() -> List[str]:
    """The names ``--help`` lists (no torch import); every other per-image score with a module in
    :mod:`torchsim.registry` (such as ``gmsd``) is accepted too (:func:`_registry_metric`)."""
    return list(METRICS)


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
                   help=f"comma-separated metrics (default {DEFAULT_METRICS}); available: {', '.join(available_metrics())}, "
                        f"or any other per-image score of torchsim.registry (e.g. gmsd)")
    p.add_argument("--y-channel", action="store_true",
                   help="score the BT.601 luma Y (MATLAB rgb2ycbcr, as BasicSR's test_y_channel) on 0..255")
    p.add_argument("--crop-border", type=int, default=0, metavar="N",
                   help="crop N pixels from each side before scoring (BasicSR's crop_border)")
    _metrics.add_convention_argument(p)
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


def _parse_metrics(text: str) -> List[MetricSpec]:
    names = [n.strip().lower().replace("-", "_") for n in text.split(",") if n.strip()]
    if not names:
        raise CliError(2, "--metrics must name at least one metric")
    specs = [METRICS.get(n) or _registry_metric(n) for n in dict.fromkeys(names)]
    unknown = [n for n, spec in zip(dict.fromkeys(names), specs) if spec is None]
    if unknown:
        raise CliError(2, f"--metrics: unknown metric {', '.join(unknown)}; available: {', '.join(available_metrics())}")
    return specs


def _registry_metric(name: str):
    """Any other per-image score of :mod:`torchsim.registry` with a metric module (e.g. ``gmsd``),
    titled by its record's label: a metric added to the library is scorable without touching the CLI."""
    from torchsim import registry

    try:
        record = registry.get(name)
    except ValueError:
        return None
    if record.kind != "score" or not record.module_name:
        return None
    return MetricSpec(name, name, record.label)


def _check_args(args) -> List[MetricSpec]:
    """The metrics asked for, after checking every argument (CliError, exit code 2)."""
    check_folder(args.ref_dir, "REF_DIR")
    check_folder(args.test_dir, "TEST_DIR")
    check_at_least("--crop-border", args.crop_border, 0)
    check_at_least("--batch-size", args.batch_size, 1)
    check_at_least("--workers", args.workers, 0)
    check_device(args.device)
    specs = _parse_metrics(args.metrics)
    for spec in specs:
        problem = _metrics.convention_problem(spec.metric, args.convention)
        if problem:
            raise CliError(2, problem)
    return specs


def _part(path: str, rank: int, world: int) -> str:
    return path if world == 1 else f"{path}.rank{rank}"


def run(args) -> int:
    specs = _check_args(args)
    import torch

    from torchsim import _distributed

    created = _distributed.init_distributed_from_env(args.device)
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
            _distributed.shutdown_distributed()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _score(args, specs: List[MetricSpec]) -> int:
    import torch
    from tqdm import tqdm

    from torchsim import _distributed

    rank, world = _distributed.rank_and_world()
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None and world > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    pairs, unpaired = pair_files(args.ref_dir, args.test_dir)
    if not pairs and not unpaired:
        if rank == 0:
            raise CliError(2, f"no image files in {args.ref_dir} or {args.test_dir}")
        return 2
    failures: List[Tuple[int, str, str]] = []
    if rank == 0:
        for name, msg in unpaired:
            warn(COMMAND, msg)
            failures.append((-1, name, msg))
    shard = pairs[rank::world]
    metrics = {s.name: s.resolve(args.convention) for s in specs}
    modules = {name: m.build().to(device) for name, m in metrics.items()}
    header = {
        "ref_dir": os.path.abspath(args.ref_dir), "test_dir": os.path.abspath(args.test_dir),
        "metrics": [s.name for s in specs], "y_channel": bool(args.y_channel), "crop_border": args.crop_border,
        "convention": args.convention,
        "torchsim": torchsim.__version__,
    }
    columns = [s.column for s in specs]
    json_stdout = args.json == "-"
    table = Table(columns, [p[1] for p in pairs])
    live_table = world == 1 and not json_stdout
    csv_sink = CsvSink(_part(args.csv, rank, world), [c.key for c in columns]) if args.csv else None
    json_sink = None
    if args.json and not json_stdout:
        json_sink = JsonSink(open_output(_part(args.json, rank, world)), header)
    if rank == 0 and csv_sink is not None and failures:
        csv_sink.write([], failures)
    rows: List[Dict[str, Any]] = []
    loader = batches(shard, args.batch_size, workers=args.workers, pin_memory=device.type == "cuda")
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
                warn(COMMAND, msg)
                batch_failures.append((index, name, msg))
            for indices, names, (x, y) in groups:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                c = args.crop_border
                if c:
                    if min(x.shape[-2:]) <= 2 * c:
                        for index, name in zip(indices, names):
                            msg = (f"{os.path.join(args.test_dir, name)}: {x.shape[-1]}x{x.shape[-2]} image is too "
                                   f"small for --crop-border {c}")
                            warn(COMMAND, msg)
                            batch_failures.append((index, name, msg))
                        continue
                    x, y = x[..., c:-c, c:-c], y[..., c:-c, c:-c]
                if args.y_channel:
                    x, y = torchsim.rgb_to_y(x), torchsim.rgb_to_y(y)
                values: Dict[str, Optional[List[float]]] = {}
                for spec in specs:
                    if min(x.shape[-2:]) >= metrics[spec.name].min_size:
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
    gathered = _distributed.gather_to_rank0((rows, failures))
    n_failed_local = len(failures)
    if rank != 0:
        _distributed.barrier()
        _remove_parts(args, rank, world)
        return 1 if n_failed_local else 0

    all_rows = sorted((r for rs, _ in gathered for r in rs), key=lambda r: r["index"])
    all_failures = [f for _, fs in gathered for f in fs]
    for spec in specs:
        counts[spec.name] = sum(1 for r in all_rows if r.get(spec.name) is not None)
    summary = {
        "failures": _failure_dicts(all_failures),
        "means": {k: json_value(v) for k, v in means.items()},
        "count": len(all_rows),
        "counts": counts,
        "complete": True,
    }
    if world > 1:
        if args.csv:
            merged = CsvSink(args.csv, [c.key for c in columns])
            merged.write(all_rows, sorted(all_failures, key=lambda f: f[1]))
            merged.close()
        if args.json and not json_stdout:
            with open_output(args.json) as fh:
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
            print(f"{name}: n/a for {k} image(s) smaller than {metrics[name].min_size} px", file=sys.stderr)
    sys.stdout.flush()
    _distributed.barrier()
    _remove_parts(args, rank, world)
    if all_failures and not json_stdout:
        raise CliError(1, f"{len(all_failures)} file(s) failed, {len(all_rows)} pair(s) scored")
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
