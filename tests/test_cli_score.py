"""``torchsim score REF_DIR TEST_DIR``: BasicSR equality on real photos, failures, reports, torchrun.

BasicSR's ``calculate_psnr`` / ``calculate_ssim`` (cv2 BGR images on 0..255, ``crop_border``,
``test_y_channel``; ported in tests/reference/ports.py) are compared with the command's CSV.
"""

import csv
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

import torchsim
from torchsim.cli import main
from torchsim.io import write_png

from tests.helpers import DISTORTIONS, free_port, photo_u8, u8
from tests.reference.ports import basicsr_calculate_psnr, basicsr_calculate_ssim


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------


def _write(path, hwc_float01):
    write_png(torch.from_numpy(u8(hwc_float01)).permute(2, 0, 1), path)


@pytest.fixture(scope="module")
def photo_dirs(tmp_path_factory):
    """REF/ and TEST/ with real photos (three sizes, one odd) and noise / blur / JPEG distortions."""
    root = tmp_path_factory.mktemp("score")
    ref, test = root / "ref", root / "test"
    ref.mkdir()
    test.mkdir()
    photos = {name: photo_u8(name) for name in ("astronaut", "coffee", "chelsea")}
    for (pname, img), (dname, distort) in zip(photos.items(), DISTORTIONS.items()):
        f = img / 255.0
        _write(str(ref / f"{pname}_{dname}.png"), f)
        _write(str(test / f"{pname}_{dname}.png"), distort(f))
    # one more pair per photo with a second distortion, so batches mix sizes
    for (pname, img), dname in zip(photos.items(), ["blur", "jpeg", "noise"]):
        f = img / 255.0
        _write(str(ref / f"{pname}_{dname}.png"), f)
        _write(str(test / f"{pname}_{dname}.png"), DISTORTIONS[dname](f))
    return ref, test


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _run(capsys, *argv):
    code = main(["score", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------------------
# BasicSR equality
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("y_channel", [True, False], ids=["y", "rgb"])
def test_equals_basicsr_on_real_photos(photo_dirs, tmp_path, capsys, y_channel):
    ref, test = photo_dirs
    out_csv = tmp_path / "scores.csv"
    args = [ref, test, "--metrics", "psnr,ssim", "--crop-border", 4, "--csv", out_csv, "--workers", 0, "--no-progress"]
    code, out, err = _run(capsys, *(args + (["--y-channel"] if y_channel else [])))
    assert code == 0, err
    rows = _read_csv(out_csv)
    assert len(rows) == 6
    for row in rows:
        a = cv2.imread(str(ref / row["name"]), cv2.IMREAD_COLOR)  # BGR, as BasicSR reads
        b = cv2.imread(str(test / row["name"]), cv2.IMREAD_COLOR)
        want_psnr = basicsr_calculate_psnr(a, b, 4, test_y_channel=y_channel)
        want_ssim = basicsr_calculate_ssim(a, b, 4, test_y_channel=y_channel)
        assert float(row["psnr"]) == pytest.approx(want_psnr, abs=1e-4), row["name"]
        assert float(row["ssim"]) == pytest.approx(want_ssim, abs=2e-6), row["name"]
    # the printed means are the means of the per-image values
    mean_line = [line for line in out.splitlines() if line.startswith("mean (6 images)")]
    assert len(mean_line) == 1
    psnr_mean, ssim_mean = map(float, mean_line[0].split()[-2:])
    assert psnr_mean == pytest.approx(np.mean([float(r["psnr"]) for r in rows]), abs=0.006)
    assert ssim_mean == pytest.approx(np.mean([float(r["ssim"]) for r in rows]), abs=6e-5)


def test_json_means_come_from_streaming_modules(photo_dirs, tmp_path, capsys):
    ref, test = photo_dirs
    out_json = tmp_path / "scores.json"
    code, out, err = _run(capsys, ref, test, "--metrics", "psnr,ssim,mse,cosine,ms_ssim", "--json", out_json,
                          "--batch-size", 4, "--workers", 2)
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["complete"] is True and doc["failures"] == [] and doc["count"] == 6
    names = sorted(os.listdir(ref))
    assert [r["name"] for r in doc["images"]] == names
    for metric, fn, kwargs in [("psnr", torchsim.psnr, {}), ("ssim", torchsim.ssim, {}), ("mse", torchsim.mse, {}),
                               ("cosine", torchsim.cosine_similarity, {}), ("ms_ssim", torchsim.ms_ssim, {})]:
        per_image = []
        for r in doc["images"]:
            x = torchsim.io.read_image(ref / r["name"])[None]
            y = torchsim.io.read_image(test / r["name"])[None]
            v = fn(x, y, **kwargs).item()
            assert r[metric] == pytest.approx(v, rel=1e-6, abs=1e-9), (metric, r["name"])
            per_image.append(v)
        assert doc["means"][metric] == pytest.approx(np.mean(per_image), rel=1e-6)
    # the progress bar went to stderr, the table to stdout
    assert "img" in err and "100%" in err
    assert "mean (6 images)" in out


def test_json_flag_alone_prints_json(photo_dirs, capsys):
    ref, test = photo_dirs
    code, out, err = _run(capsys, ref, test, "--metrics", "mse", "--json", "--workers", 0, "--no-progress")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["count"] == 6 and set(doc["means"]) == {"mse"}


def test_grouping_by_size_does_not_change_values(photo_dirs, tmp_path, capsys):
    ref, test = photo_dirs
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert _run(capsys, ref, test, "--metrics", "psnr,ssim", "--csv", a, "--batch-size", 1, "--workers", 0, "--no-progress")[0] == 0
    assert _run(capsys, ref, test, "--metrics", "psnr,ssim", "--csv", b, "--batch-size", 6, "--workers", 1, "--no-progress")[0] == 0
    ra, rb = _read_csv(a), _read_csv(b)
    assert [r["name"] for r in ra] == [r["name"] for r in rb]
    for r1, r2 in zip(ra, rb):  # float32 sums in another order: equal to rounding
        for m in ("psnr", "ssim"):
            assert float(r1[m]) == pytest.approx(float(r2[m]), rel=1e-6)


# ----------------------------------------------------------------------------------------------
# failures: one line each, the rest scored, non-zero exit
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def messy_dirs(tmp_path):
    ref, test = tmp_path / "ref", tmp_path / "test"
    ref.mkdir()
    test.mkdir()
    g = torch.Generator().manual_seed(0)
    for name in ("good1.png", "good2.png", "corrupt.png", "mismatch.png"):
        x = torch.randint(0, 256, (3, 40, 48), generator=g, dtype=torch.uint8)
        write_png(x, ref / name)
        write_png(torch.clamp(x.int() + 5, 0, 255).to(torch.uint8), test / name)
    (test / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    write_png(torch.zeros(3, 40, 40, dtype=torch.uint8), test / "mismatch.png")
    write_png(torch.zeros(3, 40, 48, dtype=torch.uint8), ref / "only_in_ref.png")
    write_png(torch.zeros(3, 40, 48, dtype=torch.uint8), test / "only_in_test.png")
    (ref / "notes.txt").write_text("not an image, ignored")
    return ref, test


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_files_one_line_each_rest_scored(messy_dirs, tmp_path, capsys, workers):
    ref, test = messy_dirs
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    code, out, err = _run(capsys, ref, test, "--metrics", "psnr,mse", "--csv", out_csv, "--json", out_json,
                          "--workers", workers, "--no-progress")
    assert code == 1
    lines = err.strip().splitlines()
    for bad in ("corrupt.png", "mismatch.png", "only_in_ref.png", "only_in_test.png"):
        hits = [line for line in lines if bad in line and "failed" not in line]
        assert len(hits) == 1, (bad, lines)
    assert any(str(test / "corrupt.png") in line and "not a readable image" in line for line in lines)
    assert any(str(test / "mismatch.png") in line and "size mismatch" in line for line in lines)
    assert any(str(ref / "only_in_ref.png") in line and "unpaired" in line for line in lines)
    assert any(str(test / "only_in_test.png") in line and "unpaired" in line for line in lines)
    assert not any("notes.txt" in line for line in lines)
    assert "4 file(s) failed, 2 pair(s) scored" in lines[-1]
    # the good pairs are scored and reported
    rows = {r["name"]: r for r in _read_csv(out_csv)}
    assert {n for n, r in rows.items() if not r["error"]} == {"good1.png", "good2.png"}
    assert {n for n, r in rows.items() if r["error"]} == {"corrupt.png", "mismatch.png", "only_in_ref.png", "only_in_test.png"}
    assert float(rows["good1.png"]["mse"]) == pytest.approx(25.0, abs=1.0)
    doc = json.loads(out_json.read_text())
    assert [r["name"] for r in doc["images"]] == ["good1.png", "good2.png"]
    assert len(doc["failures"]) == 4
    assert "good1.png" in out and "mean (2 images)" in out


def test_crop_border_too_big_is_a_failure(messy_dirs, capsys):
    ref, test = messy_dirs
    code, out, err = _run(capsys, ref, test, "--crop-border", 20, "--workers", 0, "--no-progress")
    assert code == 1
    assert sum("too small for --crop-border 20" in line for line in err.splitlines()) == 2


def test_identical_images_give_inf_psnr(tmp_path, capsys):
    ref, test = tmp_path / "r", tmp_path / "t"
    ref.mkdir()
    test.mkdir()
    x = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    write_png(x, ref / "a.png")
    write_png(x, test / "a.png")
    code, out, err = _run(capsys, ref, test, "--json", tmp_path / "o.json", "--workers", 0, "--no-progress")
    assert code == 0
    doc = json.loads((tmp_path / "o.json").read_text())  # strict JSON: inf is null with a flag (issue 9)
    assert doc["images"][0]["psnr"] is None and doc["images"][0]["non_finite"] == {"psnr": "inf"}
    assert doc["means"]["psnr"] is None and doc["non_finite_counts"] == {"psnr": 1, "ssim": 0}
    assert doc["images"][0]["ssim"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{missing}", "{test}"], "is not a folder"),
        (["{ref}", "{test}", "--metrics", "psnr,bogus"], "unknown metric bogus"),
        (["{ref}", "{test}", "--crop-border", "-1"], "--crop-border must be >= 0"),
        (["{ref}", "{test}", "--device", "tpu"], "--device must be cpu or cuda"),
        (["{ref}", "{test}", "--dist-timeout", "0"], "--dist-timeout must be > 0 seconds, got 0.0"),
    ],
)
def test_bad_arguments(messy_dirs, tmp_path, capsys, argv, message):
    ref, test = messy_dirs
    argv = [a.format(ref=ref, test=test, missing=tmp_path / "nope") for a in argv]
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err


def test_metric_table_lists_what_the_library_has():
    from torchsim.cli import score

    names = score.available_metrics()
    assert {"psnr", "ssim", "ms_ssim", "mse", "cosine"} <= set(names)
    for name in names:
        assert isinstance(score.METRICS[name].build(), torchsim.Metric)


# ----------------------------------------------------------------------------------------------
# torchrun, two CPU processes
# ----------------------------------------------------------------------------------------------


@pytest.mark.distributed
def test_torchrun_two_processes_merge(photo_dirs, tmp_path, capsys):
    ref, test = photo_dirs
    # add a failure so merging of failures and the exit code are exercised
    bad_ref, bad_test = tmp_path / "ref", tmp_path / "test"
    bad_ref.mkdir()
    bad_test.mkdir()
    for name in os.listdir(ref):
        os.symlink(ref / name, bad_ref / name)
        os.symlink(test / name, bad_test / name)
    (bad_test / "zz_corrupt.png").write_bytes(b"junk")
    (bad_ref / "zz_corrupt.png").write_bytes(b"junk")
    single_csv, multi_csv, multi_json = tmp_path / "single.csv", tmp_path / "multi.csv", tmp_path / "multi.json"
    metrics = "psnr,ssim,mse"
    code, out, err = _run(capsys, bad_ref, bad_test, "--metrics", metrics, "--y-channel", "--crop-border", 4,
                          "--csv", single_csv, "--json", tmp_path / "single.json", "--workers", 0, "--no-progress")
    assert code == 1
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(torchsim.__file__)))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), "-m", "torchsim", "score", str(bad_ref), str(bad_test),
           "--metrics", metrics, "--y-channel", "--crop-border", "4", "--csv", str(multi_csv), "--json", str(multi_json),
           "--batch-size", "2", "--workers", "0", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0, proc.stderr  # the corrupt file makes the job fail, after scoring the rest
    assert "zz_corrupt.png" in proc.stderr
    single, multi = _read_csv(single_csv), _read_csv(multi_csv)
    key = lambda r: r["name"]  # noqa: E731
    assert sorted(multi, key=key) == sorted(single, key=key)
    doc, single_doc = json.loads(multi_json.read_text()), json.loads((tmp_path / "single.json").read_text())
    assert doc["count"] == 6 and len(doc["failures"]) == 1
    for m in metrics.split(","):
        assert doc["means"][m] == pytest.approx(single_doc["means"][m], rel=1e-12)
    # the merged table is printed once (rank 0) and the part files are gone
    assert proc.stdout.count("mean (6 images)") == 1
    assert sorted(p.name for p in tmp_path.iterdir() if ".rank" in p.name) == []


def _torchrun(ref, test, *argv, fault=None, timeout=240):
    """``torchsim score REF TEST ARGV`` in two gloo processes (``fault``: tests/rank_fault.py's, in rank 1)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(torchsim.__file__)))
    program = ["-m", "torchsim"] if fault is None else [os.path.join(os.path.dirname(__file__), "rank_fault.py"), fault]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), *program, "score", str(ref), str(test), *map(str, argv)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def single_rows(photo_dirs, tmp_path_factory):
    """Every pair of photo_dirs scored by one process (psnr, ssim), by name; and the pairs in rank order."""
    from torchsim.cli._files import pair_files

    ref, test = photo_dirs
    out = tmp_path_factory.mktemp("single") / "single.csv"
    assert main(["score", str(ref), str(test), "--metrics", "psnr,ssim", "--csv", str(out), "--workers", "0",
                 "--no-progress"]) == 0
    pairs, _ = pair_files(str(ref), str(test))
    return {r["name"]: r for r in _read_csv(out)}, [name for _, name, _ in pairs]


def _check_merged(rows, single, names):
    """``rows`` (CSV rows of a run) are exactly the single-process rows of ``names``."""
    assert sorted(r["name"] for r in rows) == sorted(names)
    for r in rows:
        assert r == single[r["name"]]


@pytest.mark.distributed
def test_torchrun_rank_that_cannot_start_is_reported_and_the_rest_merged(photo_dirs, single_rows, tmp_path):
    """Rank 1 fails before scoring anything (its part file is a folder): rank 0 still merges and reports it."""
    ref, test = photo_dirs
    single, names = single_rows
    out_csv, out_json = tmp_path / "m.csv", tmp_path / "m.json"
    (tmp_path / "m.csv.rank1").mkdir()
    proc = _torchrun(ref, test, "--metrics", "psnr,ssim", "--csv", out_csv, "--json", out_json, "--workers", 0,
                     "--no-progress")
    assert proc.returncode != 0
    assert (f"torchsim score: rank 1 stopped: {tmp_path / 'm.csv.rank1'}: cannot write (Is a directory); "
            f"3 of its 3 pair(s) were not scored") in proc.stderr.splitlines()
    rows = _read_csv(out_csv)
    _check_merged([r for r in rows if r["error"] == ""], single, names[0::2])
    assert [r["name"] for r in rows if r["error"]] == ["rank 1"]
    doc = json.loads(out_json.read_text())
    assert doc["complete"] is False and doc["count"] == 3 and doc["failures"][0]["name"] == "rank 1"
    for m in ("psnr", "ssim"):
        want = np.mean([float(single[n][m]) for n in names[0::2]])
        assert doc["means"][m] == pytest.approx(want, rel=1e-5)
    assert "mean (3 images)" in proc.stdout
    assert not (tmp_path / "m.csv.rank0").exists() and not (tmp_path / "m.json.rank0").exists()


@pytest.mark.distributed
def test_torchrun_rank_that_raises_while_scoring_keeps_its_rows(photo_dirs, single_rows, tmp_path):
    """Rank 1 raises at its second pair: its first pair and rank 0's are merged, the means over exactly those."""
    ref, test = photo_dirs
    single, names = single_rows
    out_csv, out_json = tmp_path / "m.csv", tmp_path / "m.json"
    proc = _torchrun(ref, test, "--metrics", "psnr,ssim", "--csv", out_csv, "--json", out_json, "--workers", 0,
                     "--batch-size", 1, "--no-progress", fault="raise")
    assert proc.returncode != 0
    assert ("torchsim score: rank 1 stopped: RuntimeError: injected failure in rank 1; 2 of its 3 pair(s) were not "
            "scored") in proc.stderr.splitlines()
    scored = names[0::2] + names[1:2]
    _check_merged([r for r in _read_csv(out_csv) if r["error"] == ""], single, scored)
    doc = json.loads(out_json.read_text())
    assert doc["complete"] is False and doc["count"] == 4
    for m in ("psnr", "ssim"):  # compute() all-reduced rank 1's state as it was after its last whole batch
        assert doc["means"][m] == pytest.approx(np.mean([r[m] for r in doc["images"]]), rel=1e-9)
        assert doc["means"][m] == pytest.approx(np.mean([float(single[n][m]) for n in scored]), rel=1e-5)


@pytest.mark.distributed
@pytest.mark.parametrize("fault", ["exit", "hang"])
def test_torchrun_rank_that_dies_or_hangs_does_not_hang_the_others(photo_dirs, single_rows, tmp_path, fault):
    """Rank 1 dies (no clean-up) or stops answering: rank 0 gives up (torchrun's SIGTERM, or --dist-timeout),
    exits non-zero, and what it scored is in its part file."""
    ref, test = photo_dirs
    single, names = single_rows
    out_csv = tmp_path / "m.csv"
    proc = _torchrun(ref, test, "--metrics", "psnr,ssim", "--csv", out_csv, "--workers", 0, "--batch-size", 1,
                     "--no-progress", "--dist-timeout", 5, fault=fault, timeout=200)
    assert proc.returncode != 0
    if fault == "hang":
        assert any(line.startswith("torchsim score: rank 0: the ranks could not exchange their results (all_reduce "
                                   "failed: Timed out") and line.endswith(f"are in {out_csv}.rank0")
                   for line in proc.stderr.splitlines()), proc.stderr
        _check_merged(_read_csv(f"{out_csv}.rank0"), single, names[0::2])
    else:  # torchrun ends rank 0 (SIGTERM) when rank 1 dies: whatever it had scored is kept
        rows = _read_csv(f"{out_csv}.rank0")
        _check_merged(rows, single, [r["name"] for r in rows])
        assert set(r["name"] for r in rows) <= set(names[0::2])
    assert not out_csv.exists()


def test_distribution_metrics_when_present(photo_dirs, tmp_path, capsys):
    from torchsim.cli import score

    wanted = [m for m in ("histogram", "mi", "nmi") if m in score.available_metrics()]
    if not wanted:
        pytest.skip("no distribution metrics in this torchsim")
    ref, test = photo_dirs
    out_json = tmp_path / "d.json"
    code, out, err = _run(capsys, ref, test, "--metrics", ",".join(wanted), "--json", out_json, "--workers", 0,
                          "--no-progress")
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    fns = {"histogram": "histogram_similarity", "mi": "mutual_information", "nmi": "normalized_mutual_information"}
    for r in doc["images"][:2]:
        x = torchsim.io.read_image(ref / r["name"])[None]
        y = torchsim.io.read_image(test / r["name"])[None]
        for m in wanted:  # uint8 input: the library's defaults (value range 0..255)
            assert r[m] == pytest.approx(getattr(torchsim, fns[m])(x, y).item(), rel=1e-5), m


def test_interrupted_run_keeps_what_was_computed(photo_dirs, tmp_path, capsys, monkeypatch):
    ref, test = photo_dirs
    real_update = torchsim.PSNR.update
    calls = []

    def update_then_stop(self, x, y):
        calls.append(x.shape[0])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_update(self, x, y)

    monkeypatch.setattr(torchsim.PSNR, "update", update_then_stop)
    out_csv, out_json = tmp_path / "s.csv", tmp_path / "s.json"
    code, out, err = _run(capsys, ref, test, "--metrics", "psnr", "--csv", out_csv, "--json", out_json,
                          "--batch-size", 1, "--workers", 0, "--no-progress")
    assert code == 130 and "interrupted" in err
    rows = _read_csv(out_csv)
    assert len(rows) == 2 and all(float(r["psnr"]) > 20 for r in rows)
    doc = json.loads(out_json.read_text())  # still a valid document, marked incomplete
    assert doc["complete"] is False and len(doc["images"]) == 2


def test_metric_not_applicable_is_na_and_left_out_of_the_mean(messy_dirs, tmp_path, capsys):
    ref, test = messy_dirs  # 40x48 images: too small for MS-SSIM's 161 px
    code, out, err = _run(capsys, ref, test, "--metrics", "psnr,ms_ssim", "--json", tmp_path / "o.json",
                          "--workers", 0, "--no-progress")
    assert code == 1  # the bad files of messy_dirs
    doc = json.loads((tmp_path / "o.json").read_text())
    assert [r["ms_ssim"] for r in doc["images"]] == [None, None]
    assert doc["means"]["ms_ssim"] is None and doc["counts"] == {"psnr": 2, "ms_ssim": 0}
    assert "ms_ssim: n/a for 2 image(s) smaller than 161 px" in err
    mean_line = [line for line in out.splitlines() if line.startswith("mean (2 images)")][0]
    assert mean_line.split()[-1] == "n/a"


def test_any_registry_score_is_scorable_without_touching_the_cli(tmp_path):
    """GMSD is added to the library by its function, one registry record and its test: `score` takes it."""
    import json

    from PIL import Image

    ref, test = tmp_path / "ref", tmp_path / "test"
    ref.mkdir()
    test.mkdir()
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(ref / "a.png")
    Image.fromarray(b).save(test / "a.png")
    out = tmp_path / "r.json"
    assert main(["score", str(ref), str(test), "--metrics", "gmsd", "--json", str(out), "--no-progress", "--workers", "0"]) == 0
    value = json.loads(out.read_text())["images"][0]["gmsd"]
    expected = torchsim.gmsd(torch.from_numpy(b).permute(2, 0, 1)[None], torch.from_numpy(a).permute(2, 0, 1)[None])
    assert value == pytest.approx(expected.item(), rel=1e-5)
