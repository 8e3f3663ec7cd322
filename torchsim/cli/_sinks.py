"""Where results go: text tables, CSV and JSON, with one rule per format for numbers and files.

* :func:`format_table`: an aligned ``metric / value / note`` table (``compare``, ``demo``).
* :class:`Table`: fixed-width per-image rows printed as they come and a mean row (``score``).
* :class:`CsvSink`: one row per image, flushed after every batch, failures as rows with an ``error``.
* :class:`JsonSink`: a JSON document whose rows are streamed (one per line), so a run that stops
  half way still leaves every computed row; closed with a summary.
* :func:`dump_json`: a whole document at once (``dedup``).
* :func:`open_output`, :func:`write_png`: files opened or written for a command; a path that
  cannot be written is a :class:`CliError`, one line.

Numbers: a missing value is ``n/a`` in tables, empty in CSV, ``null`` in JSON; CSV values are
rounded to ``precision`` decimals (default 6: float32 noise is not written); non-finite values
are ``inf`` / ``-inf`` / ``nan`` in tables and CSV, and in JSON (strict JSON has no such numbers)
``null`` with the row's ``"non_finite"`` flag naming the metric and the value: JSON numbers are
always numbers.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import signal
import stat
from typing import IO, Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from ._errors import CliError

Row = Dict[str, Any]  # "name" and one value per column key (None where a metric does not apply)
Failure = Tuple[int, str, str]  # (index, name, one-line error)


class Column(NamedTuple):
    key: str  # key in a row, and the CSV / JSON name
    title: str  # table header
    digits: int = 4  # decimals in the table


def json_value(v: Optional[float]) -> Optional[float]:
    """A number for strict JSON: finite numbers as they are, None and non-finite values as null."""
    return v if v is not None and math.isfinite(v) else None


def non_finite(values: Dict[str, Any]) -> Dict[str, str]:
    """``{key: "inf" | "-inf" | "nan"}`` for the non-finite floats of ``values`` (JSON's flag next to their nulls)."""
    return {k: ("nan" if math.isnan(v) else "inf" if v > 0 else "-inf")
            for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)}


def csv_value(v: Optional[float], precision: int) -> str:
    """A CSV cell: empty for None, ``inf`` / ``-inf`` / ``nan``, else rounded to ``precision`` decimals."""
    if v is None:
        return ""
    v = float(v)
    return repr(round(v, precision)) if math.isfinite(v) else repr(v)


def cell(v: Optional[float], digits: int) -> str:
    """A table cell: ``n/a`` for None, ``inf`` / ``-inf``, else ``digits`` decimals."""
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


class Output:
    """A text file a command writes, by path: every write or flush that fails is a :class:`CliError`
    naming the path (a full disk, a device such as ``/dev/full``), and closing after a failure is quiet."""

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self.fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self.failed = False

    def _fail(self, exc: OSError) -> CliError:
        self.failed = True
        return CliError(1, f"{self.path}: cannot write ({exc.strerror or exc})")

    def write(self, text: str) -> int:
        try:
            return self.fh.write(text)
        except OSError as exc:
            raise self._fail(exc) from None

    def flush(self) -> None:
        try:
            self.fh.flush()
        except OSError as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        if self.fh.closed:
            return
        try:
            self.fh.close()  # releases the lock
        except OSError as exc:
            if not self.failed:
                raise self._fail(exc) from None
            try:
                self.fh.close()
            except OSError:
                pass

    def __enter__(self) -> "Output":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def check_output(path: str) -> None:
    """Refuse an output path that cannot be written, before any work starts (one line, exit code 1).

    A missing folder is created (as the picture outputs always did); one that cannot be
    (a regular file in the way, no permission) is the error. ``path`` must not be a folder,
    and the folder (or the existing file) must be writable. A full disk shows only when
    writing: :class:`Output` and :func:`write_png` report it.
    """
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise CliError(1, f"{path}: cannot write (Is a directory)")
    try:
        os.makedirs(parent, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a regular file where a folder should be
        raise CliError(1, f"{path}: cannot write (Not a directory)") from None
    except OSError as exc:
        raise CliError(1, f"{path}: cannot write ({exc.strerror or exc})") from None
    if not os.access(path if os.path.exists(path) else parent, os.W_OK):
        raise CliError(1, f"{path}: cannot write (Permission denied)")


def open_output(path: str) -> Output:
    """``path`` opened for writing text (UTF-8, ``newline=""`` as :mod:`csv` wants), locked.

    A regular file is locked (``fcntl.flock``, exclusive, not waiting) *before* it is
    truncated, so a second ``torchsim`` process pointed at the same file refuses with one line
    instead of interleaving its rows with the first one's; the lock goes with the file's close
    (or the process's end).
    """
    check_output(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
    except OSError as exc:
        raise CliError(1, f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            _lock(fd, path)
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return Output(path, fd)


def _lock(fd: int, path: str) -> None:
    try:
        import fcntl
    except ImportError:  # not on a POSIX system: no lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise CliError(1, f"{path}: in use by another process (locked); wait for it or choose another file") from None
    except OSError:  # a file system without locks (some network mounts): write unlocked
        pass


def write_png(image, path: str) -> None:
    """Write a ``(C, H, W)`` uint8 picture as PNG; an unwritable path or a full disk is one line.

    The PNG is encoded in memory and written with Python's file calls, whose errors are
    reported (torchvision's ``write_png`` reports success on ``/dev/full``).
    """
    from torchvision.io import encode_png

    check_output(path)
    data = encode_png(image.detach().to("cpu").contiguous()).numpy().tobytes()
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise CliError(1, f"{path}: cannot write ({exc.strerror or exc})") from None


def format_table(rows: Sequence[Sequence[str]], headers: Tuple[str, ...] = ("metric", "value", "note")) -> str:
    """A plain aligned text table."""
    cols = list(zip(*([headers] + [tuple(r) for r in rows]))) if rows else [[h] for h in headers]
    widths = [max(len(str(c)) for c in col) for col in cols]
    line = "  ".join("{:<%d}" % w for w in widths)
    out = [line.format(*headers), line.format(*("-" * w for w in widths))]
    out.extend(line.format(*map(str, r)) for r in rows)
    return "\n".join(s.rstrip() for s in out)


class Table:
    """Fixed-width text table: the name column is as wide as the longest name."""

    def __init__(self, columns: Sequence[Column], names: Sequence[str]) -> None:
        self.columns = list(columns)
        self.name_w = max([len("image"), len(f"mean ({len(names)} images)")] + [len(n) for n in names])
        self.widths = [max(len(c.title), 10) for c in self.columns]

    def _line(self, first: str, cells: Sequence[str]) -> str:
        parts = [first.ljust(self.name_w)] + [c.rjust(w) for c, w in zip(cells, self.widths)]
        return "  ".join(parts).rstrip()

    def _rule(self) -> str:
        return self._line("-" * self.name_w, ["-" * w for w in self.widths])

    def header(self) -> List[str]:
        return [self._line("image", [c.title for c in self.columns]), self._rule()]

    def row(self, row: Row) -> str:
        return self._line(row["name"], [cell(row.get(c.key), c.digits) for c in self.columns])

    def footer(self, means: Dict[str, Optional[float]], count: int) -> List[str]:
        return [self._rule(), self._line(f"mean ({count} images)", [cell(means.get(c.key), c.digits) for c in self.columns])]


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a batch's rows go to every output (CSV, JSON, the table),
    so that an interrupt never leaves one output a row ahead of another; a signal that came is
    handled as usual right after. Outside the main thread (signals cannot be set there) it holds
    nothing."""
    caught: List[int] = []
    previous = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            previous[s] = signal.signal(s, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main thread
        for s, h in previous.items():
            signal.signal(s, h)
        yield
        return
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)  # Python's SIGINT handler, or the CLI's SIGTERM one: they raise
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), caught[0])


class CsvSink:
    """``name, <columns...>, error`` rows, flushed after every batch."""

    def __init__(self, path: str, keys: Sequence[str], precision: int = 6) -> None:
        self.fh = open_output(path)
        self.keys = list(keys)
        self.precision = precision
        self.writer = csv.writer(self.fh)
        self.writer.writerow(["name", *self.keys, "error"])
        self.fh.flush()

    def write(self, rows: Sequence[Row], failures: Sequence[Failure] = ()) -> None:
        for r in rows:
            self.writer.writerow([r["name"], *(csv_value(r.get(k), self.precision) for k in self.keys), ""])
        for _, name, msg in failures:
            self.writer.writerow([name, *([""] * len(self.keys)), msg])
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class JsonSink:
    """A JSON document whose ``images`` rows are written (one per line) and flushed as they come."""

    def __init__(self, fh: IO[str], header: Dict[str, Any]) -> None:
        self.fh, self.first = fh, True
        fh.write("{\n")
        for k, v in header.items():
            fh.write(f"{json.dumps(k)}: {json.dumps(v)},\n")
        fh.write('"images": [')
        fh.flush()

    def write(self, rows: Sequence[Row], failures: Sequence[Failure] = ()) -> None:
        """Append ``rows``; failures go in the summary, not among the images."""
        for r in rows:
            clean = {k: (json_value(v) if k != "name" else v) for k, v in r.items() if k != "index"}
            flags = non_finite({k: v for k, v in r.items() if k not in ("name", "index")})
            if flags:
                clean["non_finite"] = flags
            self.fh.write(("\n" if self.first else ",\n") + json.dumps(clean))
            self.first = False
        self.fh.flush()

    def close(self, summary: Dict[str, Any]) -> None:
        """End the ``images`` list, write ``summary``'s keys and close the document (not the file)."""
        self.fh.write("\n],\n")
        items = list(summary.items())
        for i, (k, v) in enumerate(items):
            self.fh.write(f"{json.dumps(k)}: {json.dumps(v)}{',' if i < len(items) - 1 else ''}\n")
        self.fh.write("}\n")
        self.fh.flush()


def dump_json(doc: Dict[str, Any], fh: IO[str]) -> None:
    """A whole JSON document, indented, with a final newline."""
    json.dump(doc, fh, indent=1)
    fh.write("\n")
