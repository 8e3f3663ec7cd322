"""The command line under failures it must survive (issue 9): outputs that cannot be written,
signals, two runs on one file. Every test writes real files (and sends real signals); every
subprocess runs under a timeout, so a regression hangs nothing."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from torchsim.cli import main
from torchsim.cli._sinks import open_output
from torchsim.io import read_image, write_png

from tests.helpers import photo_u8

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
TIMEOUT = 240


def _cli(*argv, **kwargs):
    """``python -m torchsim ARGV`` as a child process (this worktree's torchsim)."""
    return subprocess.run([sys.executable, "-m", "torchsim", *map(str, argv)], env=ENV, capture_output=True,
                          text=True, timeout=TIMEOUT, **kwargs)


def _dirs(tmp_path_factory, name):
    root = tmp_path_factory.mktemp(name)
    for d in ("ref", "test"):
        (root / d).mkdir()
    return root / "ref", root / "test"


@pytest.fixture(scope="module")
def small_dirs(tmp_path_factory):
    """REF/ and TEST/ with three pairs of 48x48 crops of a real photo, the test side noisy."""
    ref, test = _dirs(tmp_path_factory, "fail")
    photo = torch.from_numpy(photo_u8("astronaut")).permute(2, 0, 1)
    g = torch.Generator().manual_seed(0)
    for k in range(3):
        x = photo[:, 100 * k : 100 * k + 48, 100 : 148].contiguous()
        y = (x.float() + 8 * torch.randn(x.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)
        write_png(x, ref / f"{k}.png")
        write_png(y, test / f"{k}.png")
    return ref, test


@pytest.fixture(scope="module")
def many_dirs(tmp_path_factory):
    """60 pairs of 256x256 photo crops: slow enough (MS-SSIM, one pair per batch) to be interrupted."""
    ref, test = _dirs(tmp_path_factory, "many")
    photo = torch.from_numpy(photo_u8("astronaut")).permute(2, 0, 1)
    for k in range(60):
        i, j = 20 * (k % 10), 20 * (k // 10)
        x = photo[:, i : i + 256, j : j + 256].contiguous()
        write_png(x, ref / f"{k:03d}.png")
        write_png((x // 4) * 4, test / f"{k:03d}.png")
    return ref, test


# ----------------------------------------------------------------------------------------------
# outputs: one line and a non-zero exit, checked before the work where it can be
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("option", ["--csv", "--json"])
def test_full_disk_output_is_one_line_before_scoring(small_dirs, capsys, option):
    ref, test = small_dirs
    code = main(["score", str(ref), str(test), option, "/dev/full", "--workers", "0", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.splitlines() == ["torchsim score: /dev/full: cannot write (No space left on device)"]
    assert "0.png" not in captured.out  # refused before the first pair was scored


def test_output_that_is_a_folder_or_under_a_file(small_dirs, tmp_path, capsys):
    ref, test = small_dirs
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    for option, path, why in [("--csv", tmp_path, "Is a directory"), ("--json", blocker / "x.json", "Not a directory")]:
        code = main(["score", str(ref), str(test), option, str(path), "--workers", "0", "--no-progress"])
        captured = capsys.readouterr()
        assert code == 1 and captured.err.splitlines() == [f"torchsim score: {path}: cannot write ({why})"]
        assert captured.out == ""  # argument check: nothing scored


def test_missing_output_folder_is_created(small_dirs, tmp_path, capsys):
    ref, test = small_dirs
    out = tmp_path / "new" / "deeper" / "s.csv"
    assert main(["score", str(ref), str(test), "--csv", str(out), "--workers", "0", "--no-progress"]) == 0
    assert len(list(csv.DictReader(out.open()))) == 3


def test_pictures_to_a_full_disk_are_not_reported_written(small_dirs, tmp_path):
    ref, _ = small_dirs
    # diff picks the format from the extension: a full disk behind a .png name (exit 2, bad input,
    # in diff's CI exit codes: 1 means "the images differ")
    full = tmp_path / "full.png"
    full.symlink_to("/dev/full")
    r = _cli("diff", ref / "0.png", ref / "1.png", "-o", full)
    assert r.returncode == 2 and "wrote" not in r.stdout
    assert r.stderr.splitlines() == [f"torchsim diff: {full}: cannot write (No space left on device)"]
    r = _cli("demo", "-o", "/dev/full")
    assert r.returncode == 1 and "wrote" not in r.stdout
    assert r.stderr.splitlines() == ["torchsim demo: /dev/full: cannot write (No space left on device)"]


def test_demo_in_a_folder_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = _cli("demo", "-o", blocker / "demo.png")  # the check runs before the metrics
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.splitlines() == [f"torchsim demo: {blocker / 'demo.png'}: cannot write (Not a directory)"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_demo_in_a_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = _cli("demo", "-o", ro / "demo.png")
    finally:
        ro.chmod(0o700)
    assert r.returncode == 1 and r.stderr.splitlines() == [f"torchsim demo: {ro / 'demo.png'}: cannot write (Permission denied)"]


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_stdout_to_a_full_disk_is_one_line_and_exit_1(small_dirs, extra):
    ref, test = small_dirs
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "torchsim", "score", str(ref), str(test), "--workers", "0",
                            "--no-progress", *extra], env=ENV, stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=TIMEOUT)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["torchsim score: stdout: cannot write (No space left on device)"]


# ----------------------------------------------------------------------------------------------
# interruptions: SIGTERM as SIGINT, nothing computed is lost; one CSV, one writer
# ----------------------------------------------------------------------------------------------


def _interrupt(argv, ready, sig, deadline=120.0):
    """``python -m torchsim ARGV``, sent ``sig`` as soon as ``ready()`` holds: ``(exit code, stdout, stderr)``."""
    proc = subprocess.Popen([sys.executable, "-m", "torchsim", *map(str, argv)], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        start = time.monotonic()
        while not ready():
            if proc.poll() is not None:
                pytest.fail(f"finished before it could be interrupted: {proc.communicate()}")
            if time.monotonic() - start > deadline:
                pytest.fail("no progress in time")
            time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


@pytest.mark.parametrize("sig, code, word, workers", [(signal.SIGTERM, 143, "terminated", 0),
                                                       (signal.SIGINT, 130, "interrupted", 0),
                                                       (signal.SIGTERM, 143, "terminated", 2)])
def test_signal_keeps_rows_and_valid_json(many_dirs, tmp_path, sig, code, word, workers):
    """Also with decoding workers busy reading ahead: one line on stderr (no worker traceback, no EOFError)."""
    ref, test = many_dirs
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    got, out, err = _interrupt(
        ["score", ref, test, "--metrics", "psnr,ms_ssim", "--batch-size", 1, "--workers", workers, "--no-progress",
         "--csv", out_csv, "--json", out_json],
        lambda: out_csv.exists() and len(out_csv.read_text().splitlines()) > 1, sig)
    assert got == code, err
    assert len(err.splitlines()) == 1 and err.startswith(f"torchsim score: {word}"), err
    rows = list(csv.DictReader(out_csv.open()))
    assert 1 <= len(rows) < 60
    assert all(float(r["psnr"]) > 20 and 0.9 < float(r["ms_ssim"]) <= 1 for r in rows)  # whole rows only
    doc = json.loads(out_json.read_text())
    assert doc["complete"] is False
    assert [r["name"] for r in doc["images"]] == [r["name"] for r in rows]
    assert len(out.splitlines()) == 3 + len(rows)  # settings, table header, rule, the rows scored


def test_second_writer_of_a_csv_refuses(small_dirs, tmp_path, capsys):
    ref, test = small_dirs
    out_csv = tmp_path / "s.csv"
    first = open_output(str(out_csv))  # another run holding the file
    first.write("name,psnr,error\nfirst,1.0,\n")
    first.flush()
    try:
        code = main(["score", str(ref), str(test), "--csv", str(out_csv), "--workers", "0", "--no-progress"])
        captured = capsys.readouterr()
    finally:
        first.close()
    assert code == 1
    assert captured.err.splitlines() == [f"torchsim score: {out_csv}: in use by another process (locked); "
                                         "wait for it or choose another file"]
    assert out_csv.read_text() == "name,psnr,error\nfirst,1.0,\n"  # not truncated, not interleaved
    assert main(["score", str(ref), str(test), "--csv", str(out_csv), "--workers", "0", "--no-progress"]) == 0


def test_dedup_interrupted_prints_what_it_grouped(tmp_path, capsys, monkeypatch):
    import torchsim.cli.dedup as dedup

    photo = torch.from_numpy(photo_u8("coffee")).permute(2, 0, 1).contiguous()
    for k in range(4):
        write_png(photo, tmp_path / f"{k}.png")  # four byte-identical files: one exact group
    real = dedup.hash_files

    def stop_after_md5(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(dedup, "hash_files", stop_after_md5)
    code = main(["dedup", str(tmp_path), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 130 and "interrupted" in captured.err
    assert "interrupted: the groups below are over the 4 file(s) read and 0 hashed so far" in captured.out
    assert "exact duplicates (same MD5): 1 group(s)" in captured.out
    code = main(["dedup", str(tmp_path), "--no-progress", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 130 and doc["complete"] is False and len(doc["exact_groups"][0]["files"]) == 4
    monkeypatch.setattr(dedup, "hash_files", real)
    assert main(["dedup", str(tmp_path), "--no-progress", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["complete"] is True


@pytest.fixture(scope="module")
def dedup_dir(tmp_path_factory):
    """200 distinct 1024x1024 JPEGs (shifted crops of an enlarged photo: near duplicates) and one
    byte-identical copy: enough decoding to be interrupted while hashing."""
    import cv2

    d = tmp_path_factory.mktemp("dedup_big")
    big = cv2.resize(photo_u8("astronaut")[..., ::-1], (1224, 1224), interpolation=cv2.INTER_CUBIC)
    for k in range(200):
        i, j = 10 * (k % 20), 10 * (k // 20)
        ok, data = cv2.imencode(".jpg", big[i : i + 1024, j : j + 1024], [cv2.IMWRITE_JPEG_QUALITY, 90])
        (d / f"{k:03d}.jpg").write_bytes(data.tobytes())
    (d / "000_copy.jpg").write_bytes((d / "000.jpg").read_bytes())
    return d


def _cached_hashes(cache):
    import sqlite3

    try:
        with sqlite3.connect(cache, timeout=5) as db:
            return db.execute("SELECT count(*) FROM hashes").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


@pytest.mark.parametrize("sig, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_dedup_signal_reports_and_writes_what_it_grouped(dedup_dir, tmp_path, sig, code, word):
    """A real signal while dedup hashes: the groups so far on stdout (JSON complete: false) and in
    the CSV, no action, the cache keeps the hashes (a re-run takes them), one line on stderr."""
    cache, out_csv = tmp_path / "c.sqlite", tmp_path / "g.csv"
    argv = ["dedup", dedup_dir, "--json", "--csv", out_csv, "--cache", cache, "--workers", 1, "--batch-size", 1,
            "--no-progress", "--action", "delete", "--apply"]
    got, out, err = _interrupt(argv, lambda: _cached_hashes(cache) >= 1, sig)
    assert got == code, err
    assert len(err.splitlines()) == 1 and err.startswith(f"torchsim dedup: {word}"), err
    doc = json.loads(out)
    assert doc["complete"] is False and doc["files"] == 201 and 1 <= doc["hashed"] < 201
    assert doc["exact_groups"][0]["files"] == [str(dedup_dir / "000.jpg"), str(dedup_dir / "000_copy.jpg")]
    assert doc["action"]["applied"] is False and len(os.listdir(dedup_dir)) == 201  # nothing deleted
    rows = list(csv.DictReader(out_csv.open()))
    groups = len(doc["exact_groups"]) + len(doc["near_groups"])
    assert len({r["group"] for r in rows}) == groups and sorted(r["path"] for r in rows if r["group"] == "1") == \
        doc["exact_groups"][0]["files"]
    kept = _cached_hashes(cache)
    assert 1 <= kept <= doc["hashed"]
    if sig == signal.SIGTERM:  # the re-run reads the hashes kept from the cache
        again = _cli(*argv[:-3])
        redo = json.loads(again.stdout)
        assert again.returncode == 0 and redo["complete"] is True and redo["cached"] >= kept


def test_dedup_csv_is_checked_before_the_work(tmp_path, capsys):
    """dedup's CSV on a full disk, or held by another run, is one line before any file is read."""
    photo = torch.from_numpy(photo_u8("coffee")).permute(2, 0, 1).contiguous()
    write_png(photo, tmp_path / "a.png")
    write_png(photo, tmp_path / "b.png")
    code = main(["dedup", str(tmp_path), "--csv", "/dev/full", "--no-cache", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.splitlines() == ["torchsim dedup: /dev/full: cannot write (No space left on device)"]
    held = tmp_path / "out" / "g.csv"
    first = open_output(str(held))
    try:
        code = main(["dedup", str(tmp_path), "--csv", str(held), "--no-cache", "--no-progress"])
        captured = capsys.readouterr()
    finally:
        first.close()
    assert code == 1 and captured.out == ""
    assert captured.err.splitlines() == [f"torchsim dedup: {held}: in use by another process (locked); "
                                         "wait for it or choose another file"]
    # a missing folder is created, for the CSV and the sheet
    out_csv, sheet = tmp_path / "new" / "deep" / "g.csv", tmp_path / "new2" / "s.png"
    assert main(["dedup", str(tmp_path), "--csv", str(out_csv), "--sheet", str(sheet), "--no-cache",
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert [r["role"] for r in csv.DictReader(out_csv.open())] == ["keep", "remove"]
    assert read_image(sheet).shape[0] in (3, 4)


@pytest.mark.parametrize("option", [[], ["--json"]])
def test_dedup_stdout_to_a_full_disk_is_one_line(tmp_path, option):
    write_png(torch.from_numpy(photo_u8("coffee")).permute(2, 0, 1).contiguous(), tmp_path / "a.png")
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "torchsim", "dedup", str(tmp_path), "--no-cache", "--no-progress",
                            *option], env=ENV, stdout=full, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    assert r.returncode == 1
    assert r.stderr.splitlines() == ["torchsim dedup: stdout: cannot write (No space left on device)"]


def test_dedup_cache_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    """The hash cache fails to commit (a full disk: SQLite's error, simulated): one line, and the
    report is the one without a cache. A cache that cannot be opened at all (/dev/full) likewise."""
    import sqlite3

    from torchsim.cli import _dedup_scan as scan

    d = tmp_path / "d"
    d.mkdir()
    photo = torch.from_numpy(photo_u8("coffee")).permute(2, 0, 1).contiguous()
    write_png(photo, d / "a.png")
    write_png(photo[:, :, :-8].contiguous(), d / "b.png")  # a near duplicate
    write_png(photo, d / "c.png")  # an exact one
    assert main(["dedup", str(d), "--json", "--no-cache", "--no-progress"]) == 0
    want = json.loads(capsys.readouterr().out)

    class FullDisk:
        def __init__(self, db):
            self.db = db

        def __getattr__(self, name):
            return getattr(self.db, name)

        def __enter__(self):
            return self.db.__enter__()

        def __exit__(self, *exc):
            return self.db.__exit__(*exc)

        def executemany(self, *args):
            raise sqlite3.OperationalError("database or disk is full")

    connect = sqlite3.connect
    monkeypatch.setattr(scan.sqlite3, "connect", lambda *a, **k: FullDisk(connect(*a, **k)))
    cache = tmp_path / "c.sqlite"
    for path, line in [(cache, f"{cache}: cannot write the hash cache (database or disk is full); going on without it"),
                       ("/dev/full", "/dev/full: cannot use the hash cache (database or disk is full); hashing every file")]:
        code = main(["dedup", str(d), "--json", "--cache", str(path), "--no-progress"])
        captured = capsys.readouterr()
        assert code == 0 and captured.err.splitlines() == [f"torchsim dedup: {line}"]
        got = json.loads(captured.out)
        assert got["complete"] is True
        assert got["exact_groups"] == want["exact_groups"] and got["near_groups"] == want["near_groups"]


# ----------------------------------------------------------------------------------------------
# numbers in reports
# ----------------------------------------------------------------------------------------------


def test_identical_pair_does_not_make_the_mean_inf(small_dirs, tmp_path, capsys):
    ref, _ = small_dirs
    test = tmp_path / "test"
    test.mkdir()
    for name in ("0.png", "1.png"):
        (test / name).write_bytes((ref / name).read_bytes())  # 0.png identical
    photo = read_image(ref / "1.png")
    noisy = (photo.int() + torch.arange(photo.numel()).reshape(photo.shape) % 7 - 3).clamp(0, 255).to(torch.uint8)
    write_png(noisy, test / "1.png")
    (ref / "2.png").rename(tmp_path / "2.png")  # two pairs only
    try:
        out_json, out_csv = tmp_path / "s.json", tmp_path / "s.csv"
        code = main(["score", str(ref), str(test), "--json", str(out_json), "--csv", str(out_csv), "--workers", "0",
                     "--no-progress", "--y-channel", "--crop-border", "2", "--precision", "3"])
        captured = capsys.readouterr()
    finally:
        (tmp_path / "2.png").rename(ref / "2.png")
    assert code == 0, captured.err
    text = out_json.read_text()
    assert '"inf"' not in text.replace('"non_finite": {"psnr": "inf"}', "")  # no number written as a string
    doc = json.loads(text)
    finite = [r["psnr"] for r in doc["images"] if r["psnr"] is not None]
    assert len(finite) == 1 and doc["images"][0]["non_finite"] == {"psnr": "inf"}
    assert doc["means"]["psnr"] == pytest.approx(finite[0]) and doc["non_finite_counts"]["psnr"] == 1
    assert doc["means"]["ssim"] == pytest.approx(sum(r["ssim"] for r in doc["images"]) / 2)
    assert doc["data_range"] == 255 and doc["y_channel"] is True and doc["crop_border"] == 2
    out = captured.out.splitlines()
    assert out[0] == ("settings: Y channel (BT.601, as BasicSR), crop border 2, data range 255 "
                      "(16-bit images at full precision on the same scale)")
    assert "psnr: mean over the 1 finite value(s); 1 non-finite left out (PSNR is inf for identical images)" in out
    assert f"{finite[0]:.2f}" in [line for line in out if line.startswith("mean (2 images)")][0]
    rows = list(csv.DictReader(out_csv.open()))
    assert rows[0]["psnr"] == "inf"
    assert rows[1]["psnr"] == repr(round(finite[0], 3)) and len(rows[1]["ssim"].split(".")[1]) <= 3


def test_signals_held_until_every_output_has_the_batch():
    """A SIGINT or SIGTERM that comes while a batch goes to the outputs is acted on after it: the
    CSV and the JSON never differ by a row (score writes both inside ``signals_held``)."""
    from torchsim.cli import Terminated, _on_sigterm
    from torchsim.cli._sinks import signals_held

    wrote = []
    with pytest.raises(KeyboardInterrupt):
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler would have run here
            wrote.append("csv")
            wrote.append("json")
    assert wrote == ["csv", "json"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with pytest.raises(Terminated):
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                wrote.append("after SIGTERM")
        assert wrote[-1] == "after SIGTERM"
    finally:
        signal.signal(signal.SIGTERM, previous)
    with signals_held():  # nothing came: nothing raised
        wrote.append("quiet")
