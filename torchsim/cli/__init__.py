"""The ``torchsim`` command line: ``torchsim <command> ...``.

Each command lives in its own module exposing ``add_parser(subparsers)`` and
``run(args) -> int`` (the exit code). The CLI imports the library, never the
reverse.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

# command name -> module (relative to this package)
COMMANDS = {
    "demo": ".demo",
    "compare": ".compare",
    "score": ".score",
    "diff": ".diff",
    "dedup": ".dedup",
}


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(prog="torchsim", description="Image similarity metrics for PyTorch.")
    parser.add_argument("--version", action="version", version=f"torchsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname, __name__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(__name__):
                continue  # command not built yet
            raise
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("torchsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
