"""Where results go: text tables, CSV and JSON, with one rule per format for numbers and files.

* :func:`format_table`: an aligned ``metric / value / note`` table (``compare``, ``demo``).
* :class:`Table`: fixed-width per-image rows printed as they come and a mean row (``score``).
* :class:`CsvSink`: one row per image, flushed after every batch, failures as rows with an ``error``.
* :class:`JsonSink`: a JSON document whose rows are streamed (one per line), so a run that stops
  half way still leaves every computed row; closed with a summary.
* :func:`dump_json`: a whole document at once (``dedup``).
* :func:`open_output`, :func:`write_png`: files opened or written for a command; a path that
  cannot be written is a :class:`CliError`, one line.

Numbers: a missing value is ``n/a`` in tables, empty in CSV, ``null`` in JSON; CSV holds
``repr(float)``; non-finite values are ``inf`` / ``-inf`` / ``nan`` in tables and the strings
``"inf"`` / ``"-inf"`` / ``"nan"`` in JSON (strict JSON has no such numbers).
"""

from __future__ import annotations

import csv
import json
import math
import os
from typing import IO, Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from ._errors import CliError

Row = Dict[str, Any]  # "name" and one value per column key (None where a metric does not apply)
Failure = Tuple[int, str, str]  # (index, name, one-line error)


class Column(NamedTuple):
    key: str  # key in a row, and the CSV / JSON name
    title: str  # table header
    digits: int = 4  # decimals in the table


def json_value(v: Optional[float]) -> Any:
    """A float for strict JSON: finite numbers and None as they are, non-finite as a string."""
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def cell(v: Optional[float], digits: int) -> str:
    """A table cell: ``n/a`` for None, ``inf`` / ``-inf``, else ``digits`` decimals."""
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def open_output(path: str) -> IO[str]:
    """``path`` opened for writing text (UTF-8, ``newline=""`` as :mod:`csv` wants)."""
    try:
        return open(path, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise CliError(1, f"{path}: cannot write ({exc.strerror or exc})") from None


def write_png(image, path: str) -> None:
    """Write a ``(C, H, W)`` uint8 picture as PNG, creating the folder; failures are one line."""
    from torchsim.io import write_png as _write_png

    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        _write_png(image, path)
    except (OSError, RuntimeError) as exc:
        raise CliError(1, f"{path}: cannot write ({exc})") from None


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


class CsvSink:
    """``name, <columns...>, error`` rows, flushed after every batch."""

    def __init__(self, path: str, keys: Sequence[str]) -> None:
        self.fh = open_output(path)
        self.keys = list(keys)
        self.writer = csv.writer(self.fh)
        self.writer.writerow(["name", *self.keys, "error"])
        self.fh.flush()

    def write(self, rows: Sequence[Row], failures: Sequence[Failure] = ()) -> None:
        for r in rows:
            self.writer.writerow([r["name"], *("" if r.get(k) is None else repr(float(r[k])) for k in self.keys), ""])
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
