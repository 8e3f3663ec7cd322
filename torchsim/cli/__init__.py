"""The ``torchsim`` command line: ``torchsim <command> ...``.

Each command is a module with ``add_parser(subparsers)`` and ``run(args) -> int`` (the exit
code). A failure the user can act on is raised as ``CliError(exit_code, message)`` and
printed by :func:`main` as one line, ``torchsim <command>: <message>``. What the commands
share lives once:

* ``_files``: listing, pairing, decoding and batching of image files;
* ``_sinks``: text tables, CSV, JSON and output files;
* ``_metrics``: ``resolve(name)``, the one way a command finds a metric of the library;
* ``_errors``: ``CliError``, the stderr line format, the shared argument checks;
* ``report`` (the per-pair report of ``compare`` and ``demo``) and ``_draw`` (pictures).

Start-up: importing this package, building the parsers and checking arguments import
neither torch nor torchvision (``torchsim`` itself loads its metrics on first use), so
``torchsim --help`` and argument errors answer at once; each ``run`` imports what it uses.
The CLI imports the library, never the reverse.
"""

from __future__ import annotations

import argparse
import errno
import io
import os
import signal
import sys
from typing import List, Optional

from . import compare, dedup, demo, diff, score
from ._errors import CliError, warn

COMMANDS = (demo, compare, score, diff, dedup)

__all__ = ["main", "build_parser", "CliError", "Terminated"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="torchsim", description="Image similarity metrics for PyTorch.")
    parser.add_argument("--version", action="version", version=f"torchsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(_run=command.run)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops as on Ctrl-C: every ``finally``
    runs, files keep what was computed, and the exit code is 143 (128 + 15) instead of 130."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM during clean-up ends the process
    raise Terminated()


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        code = _run(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return _flush_stdout(args.command, code)


def _run(args) -> int:
    try:
        return int(args._run(args) or 0)
    except CliError as exc:
        warn(args.command, exc.message)
        return exc.exit_code
    except Terminated:
        warn(args.command, "terminated (SIGTERM); results computed so far were kept")
        return 143
    except KeyboardInterrupt:
        warn(args.command, "interrupted; results computed so far were kept")
        return 130
    except OSError as exc:
        if exc.filename is None and exc.errno in _WRITE_ERRORS:  # a write to stdout (files carry their path)
            return _stdout_failed(args.command, exc)
        raise


_WRITE_ERRORS = {errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EPIPE, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _flush_stdout(command: str, code: int) -> int:
    """Flush stdout now, so that a full disk or a closed pipe is a line and an exit code, not a
    success followed by Python's "Exception ignored" at exit."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        return _stdout_failed(command, exc)
    return code


def _stdout_failed(command: str, exc: OSError) -> int:
    try:  # point the stdout descriptor at /dev/null so the interpreter's last flush does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass
    if exc.errno == errno.EPIPE:  # the reader went away (``| head``): quiet, as Unix tools are
        return 141
    warn(command, f"stdout: cannot write ({exc.strerror or exc})")
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
