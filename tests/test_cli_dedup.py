"""``torchsim dedup DIR``: exact and near duplicate groups, errors, JSON output."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.helpers import photo_u8
from torchsim.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("dedup")
    astro = Image.fromarray(photo_u8("astronaut")).resize((192, 192), Image.LANCZOS)
    astro.save(d / "astro.png")
    shutil.copy(d / "astro.png", d / "astro_copy.png")  # exact duplicate
    astro.save(d / "astro_q85.jpg", quality=85)  # near duplicate: JPEG re-encode
    astro.resize((176, 176), Image.BICUBIC).save(d / "astro_small.png")  # near duplicate: slight resize
    Image.fromarray(photo_u8("coffee")).resize((200, 133)).save(d / "coffee.png")  # distinct
    Image.fromarray(photo_u8("camera")).resize((128, 128)).save(d / "camera.png")  # distinct, gray
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))  # corrupt
    (d / "notes.txt").write_text("not an image, ignored")
    return d


def _run(capsys, *argv):
    code = main(["dedup", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_groups_and_error_line(folder, capsys):
    code, out, err = _run(capsys, folder, "--no-progress")
    assert code == 1  # one file failed
    broken = [line for line in err.splitlines() if "broken.png" in line]
    assert len(broken) == 1 and "not a readable image" in broken[0]
    assert broken[0].startswith("torchsim dedup: ")
    assert "7 image file(s)" in out and "6 hashed" in out and "1 failed" in out
    exact_part, near_part = out.split("near duplicates")
    assert "1 group(s)" in exact_part and "astro_copy.png" in exact_part and "astro_q85" not in exact_part
    assert "1 group(s)" in near_part
    for name in ("astro.png", "astro_copy.png", "astro_q85.jpg", "astro_small.png"):
        assert name in near_part
    assert "coffee" not in out and "camera" not in out and "notes.txt" not in out


def test_json(folder, capsys):
    code, out, err = _run(capsys, folder, "--json", "--hash", "dhash", "--batch-size", "2", "--no-progress")
    assert code == 1
    doc = json.loads(out)
    assert doc["hash"] == "dhash" and doc["threshold"] == 4 and doc["hash_size"] == 8
    assert (doc["files"], doc["hashed"], doc["failed"]) == (7, 6, 1)
    assert [os.path.basename(p) for p in doc["exact_groups"][0]["files"]] == ["astro.png", "astro_copy.png"]
    assert len(doc["near_groups"]) == 1
    members = {os.path.basename(f["path"]): f for f in doc["near_groups"][0]["files"]}
    assert set(members) == {"astro.png", "astro_copy.png", "astro_q85.jpg", "astro_small.png"}
    assert all(0 <= f["distance"] <= 4 and len(f["hash"]) == 16 for f in members.values())
    assert members["astro.png"]["hash"] == members["astro_copy.png"]["hash"]
    assert [os.path.basename(e["path"]) for e in doc["errors"]] == ["broken.png"]


def test_hashes_equal_imagehash(folder, capsys):
    import imagehash

    code, out, _ = _run(capsys, folder, "--json", "--hash", "ahash", "--threshold", "64", "--no-progress")
    doc = json.loads(out)
    (group,) = doc["near_groups"]  # threshold 64 joins everything
    assert len(group["files"]) == 6
    for f in group["files"]:
        if f["path"].endswith(".png"):  # same decoder output as Pillow for PNG
            assert f["hash"] == str(imagehash.average_hash(Image.open(f["path"])))


def test_progress_bar_and_clean_folder(tmp_path, capsys):
    a = np.arange(64 * 48 * 3, dtype=np.uint8).reshape(48, 64, 3)
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(a[::-1].copy()).save(tmp_path / "b.png")
    code, out, err = _run(capsys, tmp_path)
    assert code == 0
    assert "torchsim dedup" in err and "%" in err  # tqdm bar on stderr
    assert "exact duplicates (same MD5): 0 group(s)" in out


def test_bad_arguments(tmp_path, capsys):
    code, _, err = _run(capsys, tmp_path / "missing")
    assert code == 2 and "DIR is not a folder" in err
    code, _, err = _run(capsys, tmp_path, "--threshold", "-1")
    assert code == 2 and "--threshold must be >= 0" in err
    with pytest.raises(SystemExit):
        main(["dedup", str(tmp_path), "--hash", "whash"])


@pytest.mark.cuda
def test_cuda_same_report(folder, capsys):
    _, cpu_out, _ = _run(capsys, folder, "--json", "--no-progress")
    _, cuda_out, _ = _run(capsys, folder, "--json", "--no-progress", "--device", "cuda")
    assert json.loads(cuda_out) == json.loads(cpu_out)
