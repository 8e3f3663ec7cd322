"""``python tests/rank_fault.py FAULT score ...``: the ``torchsim`` command with a fault in one rank.

Run by ``torchrun`` in tests/test_cli_score.py to check that a rank that fails does not leave
the others waiting. ``FAULT`` happens in rank 1 (``RANK``), at its second batch:

* ``raise``: ``PSNR.update`` raises a ``RuntimeError`` (a bug, a device error);
* ``exit``: the process dies at once (``os._exit(3)``: no clean-up, no collective);
* ``hang``: the process stops answering (sleeps far longer than the test's ``--dist-timeout``).
"""

import os
import sys
import time

import torchsim
from torchsim.cli import main


def _inject(fault: str) -> None:
    real = torchsim.PSNR.update
    calls = []

    def update(self, x, y):
        calls.append(1)
        if len(calls) == 2:
            if fault == "raise":
                raise RuntimeError("injected failure in rank 1")
            if fault == "exit":
                os._exit(3)
            if fault == "hang":
                time.sleep(3600)
        return real(self, x, y)

    torchsim.PSNR.update = update


if __name__ == "__main__":
    fault, argv = sys.argv[1], sys.argv[2:]
    if os.environ.get("RANK") == "1":
        _inject(fault)
    sys.exit(main(argv))
