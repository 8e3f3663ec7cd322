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
import sys
from typing import List, Optional

from . import compare, dedup, demo, diff, score
from ._errors import CliError, warn

COMMANDS = (demo, compare, score, diff, dedup)

__all__ = ["main", "build_parser", "CliError"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="torchsim", description="Image similarity metrics for PyTorch.")
    parser.add_argument("--version", action="version", version=f"torchsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub).set_defaults(_run=command.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CliError as exc:
        warn(args.command, exc.message)
        return exc.exit_code
    except KeyboardInterrupt:
        print("torchsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
