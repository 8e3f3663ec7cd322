"""``torchsim score REF_DIR TEST_DIR``: score every pair of images with the same stem in two folders.

Pipeline: pair files by stem (``--match``) -> decode in a pool of ``--workers`` threads
(``_decode_pool``: JPEGs on the GPU with ``--device cuda``), crop to multiples of ``--modcrop``
-> batches of same-size pairs (``_files.collate_by_size`` splits a batch by image size) ->
optional border crop and BT.601 Y channel -> the library's streaming metric modules
(``update`` gives the per-image values of the table, ``compute`` the means) -> a per-image
table and the means on stdout, CSV / JSON written and flushed after every batch -> the
``--worst K`` pairs, and their contact sheet (``_sheet``).

Decisions:

* Pairing is by stem over the image files of each folder (not recursive; hidden files and
  files without an image extension are ignored), whatever the extensions: ``a.png`` pairs
  with ``a.jpg``. ``--match '{stem}_x4_SR'`` (or ``--suffix _x4_SR``) names the test image of
  reference ``0801.png`` as SR result folders do (``0801_x4_SR.png``); rows are named after the
  reference. A file left unpaired (no partner, or a stem two files of its folder share) is one
  line on stderr naming it and why, counted as a failure (exit code 1); every other pair is
  still scored.
* ``--modcrop S`` crops both images to multiples of ``S`` — the bottom and right rows go, as
  BasicSR's ``mod_crop`` and MATLAB's ``modcrop`` — *before* their sizes are compared, so a
  ground truth of 1356 rows is scored against an x4 result of 1352. ``--crop-border N``
  (``--shave N``) then crops ``N`` pixels from every side, as BasicSR's ``crop_border``.
* ``--convention NAME`` scores SSIM, MS-SSIM and PSNR as a published convention does
  (:mod:`torchsim.conventions`: ``wang`` = ``basicsr`` the defaults, ``skimage``, ``matlab``,
  ``piq``, ``torchmetrics``, ``ffmpeg``, ...); ``--ssim-convention NAME`` sets SSIM's alone.
* A file that cannot be decoded, or a pair whose sizes differ, gets one line on stderr naming
  the file, is counted as a failure, and the rest is scored.
* A metric that does not apply to an image (MS-SSIM on a side below 161 px,
  SSIM below 11 px) leaves that cell empty ("n/a"); its mean is over the
  images it applies to. ``psnr_pooled`` is torchmetrics' PSNR: its rows are each image's PSNR,
  its "mean" the PSNR of the MSE pooled over every pixel (not the mean of the rows).
* ``--worst K`` lists the K pairs with the worst ``--worst-by`` value (NaN first) after the
  means, and in the JSON summary; ``--sheet FILE`` draws them (test, reference, SSIM map,
  scores) in a labelled PNG, decoding those pairs again.
* ``--json FILE`` writes a JSON document (rows streamed as they are
  computed, so a run that stops half way leaves every computed row on its own
  line); ``--json`` alone prints the document on stdout instead of the
  table. JSON numbers are numbers: a non-finite value (PSNR of identical
  images) is ``null`` with the row's ``"non_finite": {"psnr": "inf"}`` flag.
* Means are over the finite values; ``non_finite_counts`` (JSON) and a line
  under the table say how many were left out. CSV values are rounded to
  ``--precision`` decimals (default 6). The table's first line states the
  settings (channel, crop border, data range).
* 16-bit PNG / TIFF are scored at full precision, as float ``x / 257`` on the
  0..255 scale of 8-bit images (PSNR and SSIM equal the 16-bit values with
  data range 65535; MSE is in 8-bit levels); a pair of an 8-bit and a 16-bit
  image is one line (a failure), not a silent conversion.
* Under ``torchrun`` (``RANK`` / ``WORLD_SIZE`` set) the process group is
  initialised (gloo; NCCL with ``--device cuda``), each rank scores every
  ``WORLD_SIZE``-th pair, writes its rows to ``FILE.rank<k>`` part files as
  it goes, and rank 0 gathers the rows, prints the merged table and writes
  the merged files with data-set-wide means (``compute()`` all-reduces),
  then the part files are removed. A rank that fails (its part file cannot be
  written, its folders cannot be read, an exception while scoring) still hands
  its rows to rank 0: rank 0 prints ``rank K stopped: <why>; N of its M pair(s)
  were not scored``, merges the rest (JSON ``"complete": false``) and exits 1.
  A rank that dies or hangs makes the others give up after ``--dist-timeout``
  (one line, their rows kept in the ``FILE.rank<k>`` part files, exit 1).

Exit codes: 0 all pairs scored, 1 some file failed (the rest was scored),
2 bad arguments or nothing to score.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import os
import sys
import traceback
from typing import Any, Dict, List, Optional, Tuple

import torchsim  # the metrics (and torch) load on first use

from . import _metrics
from ._errors import CliError, check_at_least, check_device, check_folder, warn
from ._decode_pool import decoded_batches
from ._files import _match_regex, add_decode_options, decode_options, pair_files
from ._sinks import Column, CsvSink, JsonSink, Table, check_output, json_value, open_output, signals_held, write_png

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
    options: Tuple[Tuple[str, Any], ...] = ()  # keyword options on top of data_range (convention=)

    @property
    def column(self) -> Column:
        return Column(self.name, self.title, self.digits)

    def resolve(self) -> _metrics.MetricInfo:
        return _metrics.resolve(self.metric, data_range=255.0, **dict(self.options))

    def build(self) -> Any:
        """A new streaming module (a ``torchsim.Metric``) for images on 0..255."""
        return self.resolve().build()


METRICS: Dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("psnr", "psnr", "PSNR", digits=2),
        MetricSpec("psnr_pooled", "psnr_pooled", "PSNR pooled", digits=2),
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

# --convention / --ssim-convention: the library's published conventions (torchsim.conventions), the one table.
def _ssim_conventions() -> List[str]:
    from torchsim import conventions

    return conventions.names("ssim")


def _ssim_convention(args) -> str:
    """The convention SSIM is scored in: --ssim-convention, else --convention, else wang (the defaults)."""
    return args.ssim_convention or args.convention or "wang"


def _convention_options(metric: str, args) -> Tuple[Tuple[str, Any], ...]:
    """A metric's ``convention=`` option: SSIM's from :func:`_ssim_convention`; MS-SSIM's and PSNR's
    from --convention (checked against the metric by :func:`_check_args`)."""
    from torchsim import conventions

    if metric == "ssim":
        return (("convention", _ssim_convention(args)),)
    if args.convention is not None and metric in conventions.METRICS:
        return (("convention", args.convention),)
    return ()


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
        help="score every pair of images with the same stem in two folders",
        description=(
            "Pair the images of REF_DIR and TEST_DIR by stem (a.png with a.jpg; with --match or --suffix, "
            "0801.png with 0801_x4_SR.png), score each pair, print a per-image table and the means. "
            "Unpaired, unreadable or size-mismatched files get one line on stderr each and make the exit "
            "code 1; the other pairs are still scored. Under torchrun each process scores a shard and "
            "rank 0 writes the merged report."
        ),
    )
    p.add_argument("ref_dir", metavar="REF_DIR", help="folder of reference images")
    p.add_argument("test_dir", metavar="TEST_DIR", help="folder of images to score (same stems, or --match)")
    naming = p.add_mutually_exclusive_group()
    naming.add_argument("--match", default="{stem}", metavar="PATTERN",
                        help="the stem of the test image of reference STEM.*, e.g. '{stem}_x4_SR' (default '{stem}'); "
                             "extensions are ignored")
    naming.add_argument("--suffix", default=None, metavar="S", help="short for --match '{stem}S', e.g. --suffix _x4_SR")
    p.add_argument("--modcrop", type=int, default=0, metavar="S",
                   help="crop both images to multiples of S (bottom and right rows go, as BasicSR's mod_crop) "
                        "before comparing their sizes; the SR scale, e.g. 4")
    p.add_argument("--metrics", default=DEFAULT_METRICS,
                   help=f"comma-separated metrics (default {DEFAULT_METRICS}); available: {', '.join(available_metrics())}, "
                        f"or any other per-image score of torchsim.registry (e.g. gmsd)")
    p.add_argument("--y-channel", action="store_true",
                   help="score the BT.601 luma Y (MATLAB rgb2ycbcr, as BasicSR's test_y_channel) on 0..255")
    p.add_argument("--crop-border", "--shave", type=int, default=0, metavar="N",
                   help="crop N pixels from each side before scoring (BasicSR's crop_border; --shave in SR scripts)")
    _metrics.add_convention_argument(p)
    p.add_argument("--ssim-convention", default=None, metavar="NAME", choices=_ssim_conventions(),
                   help="SSIM alone as this convention (overrides --convention for SSIM): wang = basicsr (Gaussian "
                        "11/1.5, the default), skimage (uniform 7x7, sample covariance), ... one of "
                        f"{', '.join(_ssim_conventions())}")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="pairs per batch (default 8)")
    p.add_argument("--workers", type=int, default=default_workers(), metavar="W",
                   help=f"decoding threads (default {default_workers()}: half the cores, at most 4; 0 decodes in "
                        f"the main thread). On CPU the metrics use the remaining cores.")
    p.add_argument("--decode", default="auto", choices=["auto", "cpu"],
                   help="auto: with --device cuda, JPEGs are decoded on the GPU (nvJPEG; pixels may differ from "
                        "libjpeg's by a level or two); cpu: every file on the CPU")
    p.add_argument("--worst", type=int, default=0, metavar="K",
                   help="list the K worst pairs by --worst-by after the means (8 with --sheet)")
    p.add_argument("--worst-by", default=None, metavar="METRIC",
                   help="the metric that ranks --worst (default: ssim if scored, else the first of --metrics)")
    p.add_argument("--sheet", default=None, metavar="FILE",
                   help="draw the --worst pairs (test, reference, SSIM map, scores) in a labelled PNG")
    p.add_argument("--csv", default=None, metavar="FILE", help="write one row per image to FILE as it goes")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="write a JSON report to FILE as it goes; without FILE print it on stdout instead of the table")
    p.add_argument("--precision", type=int, default=6, metavar="D",
                   help="decimals of the CSV values (default 6; JSON keeps every digit of the float64 value)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dist-timeout", type=float, default=None, metavar="SECONDS",
                   help="under torchrun: how long a process waits for the others to hand over their results "
                        "before it gives up and keeps its own rows in FILE.rank<k> (default: torch's, 30 min with gloo)")
    add_decode_options(p)
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
    check_at_least("--modcrop", args.modcrop, 0)
    check_at_least("--batch-size", args.batch_size, 1)
    check_at_least("--workers", args.workers, 0)
    check_at_least("--worst", args.worst, 0)
    check_at_least("--precision", args.precision, 0)
    if args.dist_timeout is not None and not args.dist_timeout > 0:
        raise CliError(2, f"--dist-timeout must be > 0 seconds, got {args.dist_timeout}")
    check_device(args.device)
    for path in (args.csv, args.json if args.json != "-" else None):
        if path:
            check_output(path)  # before any scoring: a missing folder, a folder, no permission
    if args.sheet:
        check_output(args.sheet)
    specs = _parse_metrics(args.metrics)
    for spec in specs:
        problem = _metrics.convention_problem(spec.metric, args.convention)
        if problem and not (spec.metric == "ssim" and args.ssim_convention):
            raise CliError(2, problem)
    if args.suffix is not None:
        args.match = "{stem}" + args.suffix
    _match_regex(args.match)
    if args.sheet and not args.worst:
        args.worst = 8
    specs = [dataclasses.replace(s, options=_convention_options(s.metric, args)) for s in specs]
    by = args.worst_by or ("ssim" if any(s.name == "ssim" for s in specs) else specs[0].name)
    by = by.strip().lower().replace("-", "_")
    if args.worst and by not in {s.name for s in specs}:
        raise CliError(2, f"--worst-by {by}: not one of --metrics {', '.join(s.name for s in specs)}")
    args.worst_by = by
    return specs


def _part(path: str, rank: int, world: int) -> str:
    return path if world == 1 else f"{path}.rank{rank}"


def run(args) -> int:
    specs = _check_args(args)
    import torch

    from torchsim import _distributed

    created = _distributed.init_distributed_from_env(args.device, args.dist_timeout)
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


@dataclasses.dataclass
class _Shard:
    """What this process scored (its shard under ``torchrun``): rows, file failures, and the
    ``(exit code, message)`` of the error that stopped it early (``None``: it got to the end)."""

    pairs: List[Any] = dataclasses.field(default_factory=list)
    rows: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    failures: List[Tuple[int, str, str]] = dataclasses.field(default_factory=list)
    json_sink: Optional[JsonSink] = None
    error: Optional[Tuple[int, str]] = None


def _score(args, specs: List[MetricSpec]) -> int:
    import torch

    from torchsim import _distributed

    rank, world = _distributed.rank_and_world()
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None and world > 1:
        device = torch.device("cuda", torch.cuda.current_device())
    metrics = {s.name: s.resolve() for s in specs}
    modules = {name: m.build().to(device) for name, m in metrics.items()}
    header = {
        "ref_dir": os.path.abspath(args.ref_dir), "test_dir": os.path.abspath(args.test_dir),
        "metrics": [s.name for s in specs], "y_channel": bool(args.y_channel), "crop_border": args.crop_border,
        "match": args.match, "modcrop": args.modcrop, "convention": args.convention,
        "ssim_convention": _ssim_convention(args), "data_range": 255, "torchsim": torchsim.__version__,
    }
    columns = [s.column for s in specs]
    json_stdout = args.json == "-"
    shard = _Shard()
    if world == 1:
        _score_shard(args, specs, metrics, modules, device, header, shard)
    else:
        # Under torchrun a rank that fails (its part file, its folders, an exception while scoring)
        # must still reach the collectives below, or the others wait there for ever: its error
        # travels with its rows to rank 0, which reports it and merges what every rank scored.
        saved = _states(modules)
        try:
            _score_shard(args, specs, metrics, modules, device, header, shard, saved)
        except Exception as exc:
            if not isinstance(exc, CliError):
                traceback.print_exc()  # an unexpected error: its traceback, on the rank it happened
            shard.error = _error_of(exc)
            _restore(modules, saved)  # the means cover the rows kept, not half a batch

    # ---- means and rows to rank 0 (collectives: every rank calls compute() for every metric) ----
    means: Dict[str, Optional[float]] = {}
    counts: Dict[str, int] = {}
    try:
        for spec in specs:
            try:
                means[spec.name] = float(modules[spec.name].compute())
            except _distributed.PeerFailure:
                raise
            except RuntimeError:  # no image seen (on any rank)
                means[spec.name] = None
        gathered = _distributed.gather_to_rank0((shard.rows, shard.failures, shard.error))
    except _distributed.PeerFailure as exc:  # another rank died or did not answer in --dist-timeout
        kept = [_part(p, rank, world) for p in (args.csv, None if json_stdout else args.json) if p]
        raise CliError(1, f"rank {rank}: the ranks could not exchange their results ({exc})"
                          + (f"; the rows this rank scored are in {', '.join(kept)}" if kept else "")) from None
    if rank != 0:
        try:
            _distributed.barrier()  # rank 0 has written the merged files
        except _distributed.PeerFailure:
            return 1  # rank 0 died: the part files are all that is left
        _remove_parts(args, rank, world)
        if shard.error is not None:
            return shard.error[0]
        return 1 if shard.failures else 0

    pairs = shard.pairs
    all_rows = sorted((r for rs, _, _ in gathered for r in rs), key=lambda r: r["index"])
    all_failures = [f for _, fs, _ in gathered for f in fs]
    stopped = [(k, err) for k, (_, _, err) in enumerate(gathered) if err is not None]
    if stopped and len(stopped) == world and len({msg for _, (_, msg) in stopped}) == 1:
        # the same error on every rank (no image files, a bad option): said once, as without torchrun
        _distributed.barrier()
        _remove_parts(args, rank, world)
        raise CliError(*stopped[0][1])
    for k, (_, msg) in stopped:
        line = f"rank {k} stopped: {msg}"
        if pairs:  # rank 0 paired the folders: how many of rank k's pairs went unscored
            done = {f[0] for f in gathered[k][1]} | {r["index"] for r in gathered[k][0]}
            todo = [index for index, _, _ in pairs[k::world]]
            line += f"; {sum(index not in done for index in todo)} of its {len(todo)} pair(s) were not scored"
        warn(COMMAND, line)
        all_failures.append((-1, f"rank {k}", line))
    non_finite: Dict[str, int] = {}
    for spec in specs:
        values = [r[spec.name] for r in all_rows if r.get(spec.name) is not None]
        counts[spec.name] = len(values)
        finite = [v for v in values if math.isfinite(v)]
        non_finite[spec.name] = len(values) - len(finite)
        if non_finite[spec.name]:  # PSNR of identical images is inf: the mean is over the finite values, and says so
            means[spec.name] = math.fsum(finite) / len(finite) if finite else None
    by_spec = next(s for s in specs if s.name == args.worst_by) if args.worst else None
    worst = _worst_rows(all_rows, by_spec, args.worst) if args.worst else []
    summary = {
        "failures": _failure_dicts(all_failures),
        "means": {k: json_value(v) for k, v in means.items()},  # over the finite values
        "count": len(all_rows),
        "counts": counts,
        "non_finite_counts": non_finite,  # per metric: images left out of the mean (inf, nan)
        "complete": not stopped,
    }
    if args.worst:
        summary["worst"] = {"by": args.worst_by, "names": [r["name"] for r in worst]}
    table = Table(columns, [p[1] for p in pairs] or [r["name"] for r in all_rows])
    if world > 1:
        if args.csv:
            merged = CsvSink(args.csv, [c.key for c in columns], args.precision)
            merged.write(all_rows, sorted(all_failures, key=lambda f: f[1]))
            merged.close()
        if args.json and not json_stdout:
            with open_output(args.json) as fh:
                sink = JsonSink(fh, header)
                sink.write(all_rows)
                sink.close(summary)
    elif shard.json_sink is not None:
        shard.json_sink.close(summary)
        shard.json_sink.fh.close()

    if json_stdout:
        buf = io.StringIO()
        sink = JsonSink(buf, header)
        sink.write(all_rows)
        sink.close(summary)
        sys.stdout.write(buf.getvalue())
    else:
        if world > 1:  # world 1 printed the rows as it scored them
            print("\n".join([_settings(args)] + table.header() + [table.row(r) for r in all_rows]))
        print("\n".join(table.footer(means, len(all_rows))))
        for name, k in non_finite.items():
            if k:
                print(f"{name}: mean over the {counts[name] - k} finite value(s); {k} non-finite left out "
                      f"(PSNR is inf for identical images)")
        skipped = {s.name: len(all_rows) - counts[s.name] for s in specs if counts[s.name] < len(all_rows)}
        for name, k in skipped.items():
            print(f"{name}: n/a for {k} image(s) smaller than {metrics[name].min_size} px", file=sys.stderr)
        if args.worst:
            print("\n".join(_worst_lines(worst, specs, by_spec)))
    sys.stdout.flush()
    files = {index: files for index, _, files in pairs}
    worst = [r for r in worst if r["index"] in files]  # rank 0 paired the folders (it may have stopped before)
    try:
        if args.sheet and worst:
            _write_sheet(args, worst, files, specs, by_spec, device)
    finally:  # the merged files are written: the other ranks may remove their parts, even if the sheet fails
        _distributed.barrier()
        _remove_parts(args, rank, world)
    if all_failures and not json_stdout:
        n_files = len(all_failures) - len(stopped)
        what = ([f"{n_files} file(s) failed"] if n_files or not stopped else []) + (
            [f"{len(stopped)} rank(s) stopped"] if stopped else [])
        raise CliError(1, ", ".join(what + [f"{len(all_rows)} pair(s) scored"]))
    return 1 if all_failures else 0


def _score_shard(args, specs, metrics, modules, device, header, shard: _Shard, saved=None) -> None:
    """Pair the folders and score this rank's shard into ``shard`` (the rows, the files that failed),
    writing CSV / JSON (part files under torchrun) after every batch; the table too when alone.
    ``saved`` (under torchrun): the modules' states, updated after every batch scored."""
    from tqdm import tqdm

    from torchsim import _distributed

    rank, world = _distributed.rank_and_world()
    pairs, unpaired = pair_files(args.ref_dir, args.test_dir, args.match)
    shard.pairs = pairs
    test_file = {index: files[1] for index, _, files in pairs}
    if not pairs and not unpaired:
        raise CliError(2, f"no image files in {args.ref_dir} or {args.test_dir}")
    failures = shard.failures
    if rank == 0:
        for name, msg in unpaired:
            warn(COMMAND, msg)
            failures.append((-1, name, msg))
    mine = pairs[rank::world]
    columns = [s.column for s in specs]
    json_stdout = args.json == "-"
    table = Table(columns, [p[1] for p in pairs])
    live_table = world == 1 and not json_stdout
    csv_sink = CsvSink(_part(args.csv, rank, world), [c.key for c in columns], args.precision) if args.csv else None
    json_sink = None
    try:
        if args.json and not json_stdout:
            json_sink = shard.json_sink = JsonSink(open_output(_part(args.json, rank, world)), header)
    except BaseException:
        if csv_sink is not None:
            csv_sink.close()
        raise
    if rank == 0 and csv_sink is not None and failures:
        csv_sink.write([], failures)
    rows = shard.rows
    gpu_jpeg = str(device) if device.type == "cuda" and args.decode == "auto" else None
    loader = decoded_batches(mine, args.batch_size, workers=args.workers, modcrop=args.modcrop, jpeg_device=gpu_jpeg,
                             options={**decode_options(args), "keep16": True})
    bar = tqdm(total=len(mine), unit="img", desc=PROG, file=sys.stderr, dynamic_ncols=True,
               disable=args.no_progress or rank != 0)
    complete = False
    try:
        if live_table:
            for line in [_settings(args)] + table.header():
                tqdm.write(line, file=sys.stdout)
            sys.stdout.flush()  # a full disk or closed stdout shows now, not after the scoring
        for groups, errors in loader:
            batch_rows, batch_failures = [], []
            for index, name, msg in errors:
                warn(COMMAND, msg)
                batch_failures.append((index, name, msg))
            for indices, names, (x, y) in groups:
                x, y = _prepare(_on_255(x.to(device, non_blocking=True)), _on_255(y.to(device, non_blocking=True)), args)
                if x is None:
                    for index, name in zip(indices, names):
                        msg = (f"{test_file[index]}: {y[-1]}x{y[-2]} image is too small for --crop-border "
                               f"{args.crop_border}")
                        warn(COMMAND, msg)
                        batch_failures.append((index, name, msg))
                    continue
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
            with signals_held():  # every output gets the batch, or none does
                rows.extend(batch_rows)
                failures.extend(batch_failures)
                if saved is not None:
                    saved.update(_states(modules))
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


def _states(modules: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """A copy of every module's streaming state (its ``state_dict``: the sums and counts)."""
    return {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in modules.items()}


def _restore(modules: Dict[str, Any], states: Dict[str, Dict[str, Any]]) -> None:
    """Put back the states :func:`_states` copied."""
    for name, m in modules.items():
        m.load_state_dict(states[name])


def _error_of(exc: BaseException) -> Tuple[int, str]:
    """``(exit code, one line)`` of what stopped a rank."""
    if isinstance(exc, CliError):
        return exc.exit_code, exc.message
    first = (str(exc).strip().splitlines() or [""])[0]
    return 1, f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _prepare(x, y, args):
    """The ``(N, C, H, W)`` pair as scored: border cropped, then the Y channel if asked.

    Returns ``(None, (H, W))`` when the image is too small for ``--crop-border``.
    """
    c = args.crop_border
    if c:
        if min(x.shape[-2:]) <= 2 * c:
            return None, tuple(x.shape[-2:])
        x, y = x[..., c:-c, c:-c], y[..., c:-c, c:-c]
    if args.y_channel:
        x, y = torchsim.rgb_to_y(x), torchsim.rgb_to_y(y)
    return x, y


def _worst_rows(rows: List[Dict[str, Any]], spec: MetricSpec, k: int) -> List[Dict[str, Any]]:
    """The ``k`` rows with the worst ``spec`` value (NaN first; n/a rows are not ranked)."""
    import math

    better_high = spec.resolve().module.record.higher_is_better is not False
    scored = [r for r in rows if r.get(spec.name) is not None]

    def badness(r):
        v = r[spec.name]
        return (0, 0.0) if math.isnan(v) else (1, v if better_high else -v)

    return sorted(scored, key=badness)[:k]


def _worst_lines(worst: List[Dict[str, Any]], specs: List[MetricSpec], by: MetricSpec) -> List[str]:
    lines = [f"worst {len(worst)} by {by.title}:"]
    width = max(len(r["name"]) for r in worst) if worst else 0
    for k, r in enumerate(worst, 1):
        values = "  ".join(f"{s.title} {_fmt(r[s.name], s.digits)}" for s in specs)
        lines.append(f"{k:>4}. {r['name']:<{width}}  {values}")
    return lines


def _fmt(v: Optional[float], digits: int) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _write_sheet(args, worst, files, specs: List[MetricSpec], by: MetricSpec, device) -> None:
    """The contact sheet of the worst pairs: decoded again, prepared as scored, with their SSIM maps."""
    from . import _sheet
    from ._files import FileDataset

    from torchsim import conventions

    name = _ssim_convention(args)
    rows = []
    for r in worst:
        item = FileDataset([(r["index"], r["name"], files[r["index"]])], modcrop=args.modcrop)[0]
        if item.error:  # changed on disk since it was scored
            warn(COMMAND, item.error)
            continue
        ref, test = (t[None].to(device) for t in item.images)
        c = args.crop_border
        shown_ref, shown_test = (t[..., c:-c, c:-c] if c else t for t in (ref, test))
        x, y = _prepare(_on_255(ref), _on_255(test), args)
        kernel = conventions.settings("ssim", "ssim", name).get("kernel_size", 11)
        if min(x.shape[-2:]) < kernel:
            continue
        _, ssim_map = torchsim.ssim(y, x, data_range=255.0, return_map=True, convention=name)
        values = [(s.title, _fmt(r[s.name], s.digits)) for s in specs]
        rows.append(_sheet.SheetRow(r["name"], shown_test[0], shown_ref[0], ssim_map[0].mean(0), values))
    if not rows:
        return
    caption = (f"{os.path.abspath(args.test_dir)} against {os.path.abspath(args.ref_dir)}; SSIM map: "
               f"{name} convention" + (", Y channel" if args.y_channel else "")
               + (f", border {args.crop_border} px cropped" if args.crop_border else "")
               + (f", modcrop {args.modcrop}" if args.modcrop else "") + ".")
    write_png(_sheet.contact_sheet(rows, f"torchsim score: the {len(rows)} worst pairs by {by.title}", caption), args.sheet)


def _settings(args) -> str:
    """The table's first line: what was scored, so that a pasted table says how it was made."""
    channel = "Y channel (BT.601, as BasicSR)" if args.y_channel else "RGB"
    return (f"settings: {channel}, crop border {args.crop_border}, data range 255 "
            f"(16-bit images at full precision on the same scale)")


def _on_255(x: "torch.Tensor") -> "torch.Tensor":
    """16-bit images at full precision on the 0..255 scale of the 8-bit ones (float ``x / 257``):
    PSNR and SSIM equal the 16-bit values with data_range 65535; MSE is in 8-bit levels."""
    import torch

    return x.to(torch.float32) / 257.0 if x.dtype == torch.uint16 else x


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
