"""Time ``torchsim score`` in-process for ``benchmarks/score_throughput.py``, under whichever
``torchsim`` ``PYTHONPATH`` names (this checkout, or an earlier revision's worktree).

``python benchmarks/_score_driver.py '<argv as JSON>' ROUNDS`` prints one JSON line:
``{"times": [...], "code": ..., "torchsim": "<where it was imported from>"}`` — one warm-up run
(imports, first decode) and then ``ROUNDS`` timed runs. A standalone script, not a module of the
``benchmarks`` package, so an older checkout without it can still be timed.
"""

import contextlib
import json
import os
import sys
import time

import torchsim
from torchsim.cli import main

argv, rounds = json.loads(sys.argv[1]), int(sys.argv[2])
times = []
for k in range(rounds + 1):
    t = time.perf_counter()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        code = main(argv)
    if k:
        times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "code": code, "torchsim": os.path.dirname(torchsim.__file__)}))
