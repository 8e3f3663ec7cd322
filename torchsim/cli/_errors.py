"""How a command fails: :class:`CliError`, the one-line stderr format, and the shared argument checks."""

from __future__ import annotations

import os
import sys


class CliError(Exception):
    """A failure the user can act on: ``main`` prints ``torchsim <command>: <message>`` and exits.

    Args:
        exit_code: 1 when files failed (missing, corrupt, different sizes, not writable),
            2 when the arguments are wrong or there is nothing to do.
        message: what went wrong, naming the file or option; one line per problem.
    """

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


def warn(command: str, message: str) -> None:
    """``torchsim <command>: <line>`` on stderr for each line of ``message``, above any progress bar."""
    from tqdm import tqdm

    for line in message.splitlines() or [""]:
        tqdm.write(f"torchsim {command}: {line}", file=sys.stderr)


# ---- argument checks shared by the commands: each raises CliError(2, ...) -------------------


def check_device(device: str) -> None:
    """``--device`` must be cpu, cuda or cuda:N, and CUDA must be there for the latter two."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise CliError(2, f"--device must be cpu or cuda, got {device!r}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise CliError(2, "--device cuda: no CUDA device is available")


def check_folder(path: str, label: str) -> None:
    """``path`` (the argument ``label``, e.g. ``DIR``) must be a folder."""
    if not os.path.isdir(path):
        raise CliError(2, f"{path}: {label} is not a folder")


def check_at_least(option: str, value: int, minimum: int) -> None:
    """An integer option must be ``>= minimum``."""
    if value < minimum:
        raise CliError(2, f"{option} must be >= {minimum}, got {value}")
