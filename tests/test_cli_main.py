"""``torchsim.cli.main``: CliError lines and exit codes, start-up without torch, the metric look-up."""

import json
import os
import subprocess
import sys

import pytest
import torch

import torchsim
from torchsim.cli import CliError, compare, main
from torchsim.cli._metrics import resolve
from torchsim.io import write_png

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(torchsim.__file__)))

# ----------------------------------------------------------------------------------------------
# CliError -> "torchsim <command>: <message>" on stderr, one line per problem, and its exit code
# ----------------------------------------------------------------------------------------------


def test_cli_error_becomes_prefixed_lines_and_the_exit_code(monkeypatch, capsys):
    def fail(args):
        raise CliError(3, "first problem\nsecond problem")

    monkeypatch.setattr(compare, "run", fail)
    assert main(["compare", "a.png", "b.png"]) == 3
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == ["torchsim compare: first problem", "torchsim compare: second problem"]


def test_argument_error_is_exit_code_2_and_one_line(tmp_path, capsys):
    assert main(["score", str(tmp_path), str(tmp_path), "--batch-size", "0"]) == 2
    assert capsys.readouterr().err == "torchsim score: --batch-size must be >= 1, got 0\n"
    assert main(["dedup", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err == f"torchsim dedup: {tmp_path / 'nope'}: DIR is not a folder\n"


def test_two_unreadable_files_are_two_lines_and_exit_code_1(tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    b.write_text("not an image")
    assert main(["compare", str(a), str(b)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert err[0] == f"torchsim compare: {a}: no such file"
    assert err[1].startswith(f"torchsim compare: {b}: not a readable image")


def test_output_that_cannot_be_written_is_one_line(tmp_path, capsys):
    x = torch.randint(0, 256, (3, 24, 24), dtype=torch.uint8)
    for d in ("ref", "test"):
        (tmp_path / d).mkdir()
        write_png(x, tmp_path / d / "a.png")
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    out_csv = blocker / "scores.csv"
    code = main(["score", str(tmp_path / "ref"), str(tmp_path / "test"), "--csv", str(out_csv), "--workers", "0",
                 "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f"torchsim score: {out_csv}: cannot write (Not a directory)"]
    code = main(["diff", str(tmp_path / "ref" / "a.png"), str(tmp_path / "test" / "a.png"), "-o", str(blocker / "d.png")])
    assert code == 2  # diff's exit codes are a CI step's: 1 means "the images differ", any failure is 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"torchsim diff: {blocker / 'd.png'}: cannot write")


# ----------------------------------------------------------------------------------------------
# start-up: help and argument errors without torch; compare without torchvision
# ----------------------------------------------------------------------------------------------

_STARTUP = r"""
import json, sys
from torchsim.cli import main

def code(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code

codes = [code(argv) for argv in json.loads(sys.argv[1])]
loaded = sorted(m for m in ("torch", "torchvision") if m in sys.modules)
if sys.argv[2:]:
    codes.append(code(["compare", *sys.argv[2:]]))
    loaded.append("after compare: " + ",".join(m for m in ("torchvision",) if m in sys.modules))
print(json.dumps({"codes": codes, "loaded": loaded}))
"""


def test_help_and_argument_errors_do_not_import_torch(tmp_path):
    folder = str(tmp_path)
    missing = str(tmp_path / "missing")
    argvs = [
        ["--help"],
        ["--version"],
        *([command, "--help"] for command in ("demo", "compare", "score", "diff", "dedup")),
        ["compare"],  # argparse: missing arguments
        ["diff", "a.png"],  # argparse: no second image
        ["diff", "a.png", "b.png", "out.gif"],  # an output format diff cannot write, refused before any work
        ["dedup", folder, "--hash", "whash"],  # argparse: bad choice
        ["score", missing, folder],
        ["score", folder, folder, "--metrics", "psnr,bogus"],
        ["score", folder, folder, "--crop-border", "-1"],
        ["score", folder, folder, "--device", "tpu"],
        ["dedup", missing],
        ["dedup", folder, "--threshold", "-1"],
        ["dedup", folder, "--device", "tpu"],
    ]
    x = torch.randint(0, 256, (3, 40, 48), dtype=torch.uint8)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_png(x, a)
    write_png(x.flip(-1).contiguous(), b)
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-c", _STARTUP, json.dumps(argvs), str(a), str(b)],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["codes"] == [0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0]
    assert result["loaded"] == ["after compare: "]  # no torch before compare; compare decodes PNG without torchvision


def test_import_torchsim_is_lazy_and_complete():
    code = ("import sys, torchsim; assert 'torch' not in sys.modules; "
            "assert callable(torchsim.ssim) and 'torch' in sys.modules; "
            "from torchsim import *; print(len(torchsim.__all__), sorted(set(torchsim.__all__) - set(dir(torchsim))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    count, missing = proc.stdout.split(" ", 1)
    assert int(count) == len(torchsim.__all__) and missing.strip() == "[]"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        torchsim.nope


def test_torch_free_modules_import_without_torch():
    """The modules ``torchsim diff`` runs pixelmatch with (and ``torchsim.ops``' lazy package) load
    without torch; ``torchsim.ops`` still gives every name it lists."""
    code = ("import sys; import torchsim.kernels.pixelmatch, torchsim.ops.yiq_color, torchsim.io, torchsim.cli._files, "
            "torchsim.cli._picture, torchsim.cli.diff; assert 'torch' not in sys.modules, 'torch imported'; "
            "import torchsim.ops as ops; missing = [n for n in ops.__all__ if not hasattr(ops, n)]; "
            "assert not missing, missing; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ----------------------------------------------------------------------------------------------
# the metric look-up: one function, and what it says matches the library
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [
    ("psnr", {"data_range": 255.0}),
    ("ssim", {"data_range": 255.0}),
    ("mse", {}),
    ("histogram_similarity", {"value_range": (0.0, 255.0)}),
    ("phash", {}),
])
def test_resolve_options(name, options):
    info = resolve(name)
    assert info.function is getattr(torchsim, name) and info.options == options
    if info.module is not None:
        module = info.build()
        assert isinstance(module, torchsim.Metric) and module.options.items() >= options.items()


@pytest.mark.parametrize("name", ["ssim", "ms_ssim", "psnr"])
def test_resolve_min_size_is_the_library_minimum(name):
    info = resolve(name, data_range=1.0)
    n = info.min_size
    x = torch.rand(1, 1, n, n, dtype=torch.float64)
    info.function(x, x, **info.options)  # the smallest side that applies
    if n > 1:
        y = x[..., : n - 1, : n - 1]
        with pytest.raises(ValueError, match="at least"):
            info.function(y, y, **info.options)
