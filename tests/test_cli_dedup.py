"""``torchsim dedup DIR``: exact and near (star) groups, keep policies, actions, outputs, cache.

Real files written by the tests: photographs from skimage.data saved as PNG and JPEG, with
re-encoded, resized, brightened and cropped copies, byte-identical copies, a chain of copies
rotated 1.5 degrees apart, a corrupt file and a text file. Distances are checked against
imagehash on the same files (Pillow decodes both sides).
"""

import csv
import re
import json
import os
import shutil

import imagehash
import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

import torchsim
from tests.helpers import photo_u8
from torchsim.cli import _dedup_plan, _dedup_scan, main


def _astro() -> Image.Image:
    return Image.fromarray(photo_u8("astronaut")).resize((256, 256), Image.LANCZOS)


def _write_folder(d):
    """The fixture folder; returns {name: role} for the files that matter."""
    astro = _astro()
    w, h = astro.size
    astro.save(d / "astro.png")
    shutil.copy(d / "astro.png", d / "astro_copy.png")  # exact copy
    (d / "sub").mkdir()
    shutil.copy(d / "astro.png", d / "sub" / "astro_copy2.png")  # exact copy in a sub-folder (-r)
    astro.save(d / "astro_q70.jpg", quality=70)  # re-encoded
    astro.resize((192, 192), Image.BICUBIC).save(d / "astro_small.png")  # resized
    ImageEnhance.Brightness(astro.resize((240, 240), Image.LANCZOS)).enhance(1.15).save(d / "astro_bright.png")  # brightened
    astro.crop((w // 50, h // 50, w - w // 50, h - h // 50)).save(d / "astro_crop.png")  # cropped 2 %
    coffee = Image.fromarray(photo_u8("coffee"))
    coffee.save(d / "coffee.png")
    coffee.save(d / "coffee_q80.jpg", quality=80)
    Image.fromarray(photo_u8("camera")).resize((128, 128)).save(d / "camera.png")  # distinct, gray
    Image.fromarray(photo_u8("chelsea")).save(d / "chelsea.jpg", quality=90)  # distinct
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))  # corrupt
    (d / "notes.txt").write_text("not an image, ignored")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("dedup")
    _write_folder(d)
    return d


@pytest.fixture()
def work(tmp_path):
    """A fresh copy of the fixture folder that a test may change."""
    d = tmp_path / "photos"
    d.mkdir()
    _write_folder(d)
    return d


def _run(capsys, *argv):
    code = main(["dedup", *map(str, argv), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys, *argv):
    code, out, err = _run(capsys, *argv, "--json")
    return code, json.loads(out), err


def _names(paths):
    return sorted(os.path.basename(p) for p in paths)


def _phash(path):
    return imagehash.phash(Image.open(path))


# ---------------------------------------------------------------------------------------- groups


def test_text_report(folder, capsys):
    code, out, err = _run(capsys, folder)
    assert code == 1  # one file failed
    broken = [line for line in err.splitlines() if "broken.png" in line]
    assert len(broken) == 1 and broken[0].startswith("torchsim dedup: ") and "not a readable image" in broken[0]
    assert "11 image file(s)" in out and "10 hashed" in out and "1 failed" in out
    exact_part, near_part = out.split("near duplicates")
    assert "exact duplicates (same MD5): 1 group(s)" in exact_part
    assert "keep    " + str(folder / "astro.png") in exact_part and "remove  " + str(folder / "astro_copy.png") in exact_part
    assert "astro_copy" not in near_part  # an exact copy is reported once, with its exact group
    assert "2 group(s)" in near_part
    for name in ("astro_q70.jpg", "astro_small.png", "astro_bright.png", "astro_crop.png", "coffee_q80.jpg"):
        assert f"remove  {folder / name}" in near_part
    assert "keep    " + str(folder / "coffee.png") in near_part
    assert "camera" not in out and "chelsea" not in out and "notes.txt" not in out
    assert "files to remove: 6 (" in out and "nothing was changed" in out


def test_json_groups_are_stars_with_imagehash_distances(folder, capsys):
    code, doc, _ = _json(capsys, folder, "-r")
    assert code == 1 and doc["complete"] is True and doc["threshold"] == 4 and doc["keep"] == "largest"
    assert (doc["files"], doc["hashed"], doc["failed"]) == (12, 11, 1)
    (exact,) = doc["exact_groups"]
    assert _names(exact["files"]) == ["astro.png", "astro_copy.png", "astro_copy2.png"]
    assert os.path.basename(exact["keep"]) == "astro.png" and _names(exact["remove"]) == ["astro_copy.png", "astro_copy2.png"]
    assert exact["md5"] == torchsim.file_md5(folder / "astro.png")
    groups = {os.path.basename(g["keep"]): g for g in doc["near_groups"]}
    assert set(groups) == {"astro.png", "coffee.png"}
    assert _names(f["path"] for f in groups["astro.png"]["files"]) == [
        "astro.png", "astro_bright.png", "astro_crop.png", "astro_q70.jpg", "astro_small.png"]
    for g in doc["near_groups"]:
        keep = _phash(g["keep"])
        for f in g["files"]:
            assert f["distance"] == keep - _phash(f["path"]) <= 4  # within the threshold of the kept file
            assert f["hash"] == str(_phash(f["path"]))
            assert f["bytes"] == os.path.getsize(f["path"]) and (f["width"], f["height"]) == Image.open(f["path"]).size
    removed = _names(doc["remove"])
    assert removed == _names([*exact["remove"], *(f["path"] for g in doc["near_groups"] for f in g["files"] if f["role"] == "remove")])
    assert len(removed) == len(set(removed)) == 7
    assert doc["remove_bytes"] == sum(os.path.getsize(p) for p in doc["remove"])
    assert [os.path.basename(e["path"]) for e in doc["errors"]] == ["broken.png"]


def test_rotation_chain_is_not_one_group(tmp_path, capsys):
    """12 copies rotated 1.5 degrees apart: neighbours are within the threshold, the ends far apart.
    A chained (connected-components) grouping puts all 12 in one group; stars do not."""
    astro = _astro()
    for k in range(12):
        astro.rotate(1.5 * k, resample=Image.BICUBIC).save(tmp_path / f"rot{k:02d}.png")
    hashes = {p.name: _phash(p) for p in sorted(tmp_path.glob("*.png"))}
    names = sorted(hashes)
    threshold = 6
    # the chain: every step within the threshold, so the components are one group of 12 ...
    assert all(hashes[a] - hashes[b] <= threshold for a, b in zip(names, names[1:]))
    assert hashes[names[0]] - hashes[names[-1]] > 3 * threshold
    code, doc, _ = _json(capsys, tmp_path, "--threshold", threshold, "--keep", "first")
    assert code == 0
    groups = doc["near_groups"]
    assert len(groups) >= 2 and all(len(g["files"]) < 12 for g in groups)
    for g in groups:  # ... but every member of a star is within the threshold of its kept file
        keep = hashes[os.path.basename(g["keep"])]
        for f in g["files"]:
            assert f["distance"] == keep - hashes[os.path.basename(f["path"])] <= threshold
        others = [hashes[os.path.basename(f["path"])] for f in g["files"]]
        assert max(a - b for a in others for b in others) <= 2 * threshold
        # kept: the first in path order among the members within the threshold of every other member
        names_in = sorted(os.path.basename(f["path"]) for f in g["files"])
        centres = [a for a in names_in if all(hashes[a] - hashes[b] <= threshold for b in names_in)]
        assert os.path.basename(g["keep"]) == centres[0]


def test_group_is_centred_where_it_covers_its_neighbourhood(tmp_path, capsys):
    """A true group (the photograph, re-encoded, resized, cropped, brightened) whose best-ranked file
    is not within the threshold of every copy. Stars built best first (the rule before) centre the
    group on that file, so the copy it does not reach is split off; the group is one star around
    the file that reaches them all, and the best-ranked file is a member, not the kept one."""
    big = Image.fromarray(photo_u8("astronaut"))  # 512 x 512
    astro = big.resize((256, 256), Image.LANCZOS)
    w, h = astro.size
    astro.save(tmp_path / "astro.png")
    ImageEnhance.Brightness(big).enhance(1.7).save(tmp_path / "astro_bright.png")  # the largest: ranked first
    astro.crop((w * 3 // 100, h * 3 // 100, w - w * 3 // 100, h - h * 3 // 100)).save(tmp_path / "astro_crop.png")
    astro.save(tmp_path / "astro_q70.jpg", quality=70)
    astro.resize((192, 192), Image.BICUBIC).save(tmp_path / "astro_small.png")
    Image.fromarray(photo_u8("coffee")).resize((256, 256), Image.LANCZOS).save(tmp_path / "coffee.png")  # unrelated
    hashes = {p.name: _phash(p) for p in tmp_path.iterdir()}
    threshold = 8
    copies = ["astro_bright.png", "astro_crop.png", "astro_q70.jpg", "astro_small.png"]
    # the geometry that split the group before: the original reaches every copy, the best-ranked
    # copy (largest) does not reach the crop
    assert all(hashes["astro.png"] - hashes[c] <= threshold for c in copies)
    assert hashes["astro_bright.png"] - hashes["astro_crop.png"] > threshold
    assert all(hashes["coffee.png"] - hashes[c] > threshold for c in hashes if c != "coffee.png")
    code, doc, _ = _json(capsys, tmp_path, "--threshold", threshold)
    assert code == 0
    (group,) = doc["near_groups"]
    assert _names(f["path"] for f in group["files"]) == sorted(["astro.png", *copies])
    # kept: the best-ranked (largest) of the files within the threshold of every other member;
    # astro_q70.jpg reaches them all too, with as many pixels but fewer bytes
    assert os.path.basename(group["keep"]) == "astro.png"
    assert {os.path.basename(f["path"]): f["distance"] for f in group["files"]} == {
        c: hashes["astro.png"] - hashes[c] for c in ["astro.png", *copies]}


def _random_infos(rng, n_centres, spread, md5_copies=10):
    """Synthetic files: hashes around random centres (a few bits flipped), random sizes, some
    byte-identical copies (the same MD5 and hash)."""
    infos = []
    for _ in range(n_centres):
        centre = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
        for _ in range(int(rng.integers(1, 7))):
            v = centre
            for bit in rng.choice(64, size=int(rng.integers(0, spread + 1)), replace=False):
                v ^= 1 << int(bit)
            k = len(infos)
            infos.append(_dedup_scan.FileInfo(k, f"/photos/{k:05d}.jpg", size=int(rng.integers(1000, 2000)),
                                              md5=f"md5-{k}", width=64, height=64, hash=f"{v:016x}"))
    for _ in range(md5_copies):
        src = infos[int(rng.integers(len(infos)))]
        k = len(infos)
        infos.append(_dedup_scan.FileInfo(k, f"/photos/{k:05d}.jpg", size=src.size, md5=src.md5, width=64, height=64,
                                          hash=src.hash))
    return infos


@pytest.mark.parametrize("seed,threshold,spread", [(0, 4, 4), (1, 10, 12), (2, 6, 14), (3, 10, 24)])
def test_near_groups_properties_on_random_hashes(seed, threshold, spread):
    """Every member within the threshold of its kept file (the distance reported is the Hamming
    distance), every file in at most one group and one file per MD5, the kept file the best-ranked
    of the members it could be swapped with, and the same groups whatever the order of the input."""
    rng = np.random.default_rng(seed)
    infos = _random_infos(rng, 150, spread)
    key = _dedup_plan.rank_key("largest", [])
    groups = _dedup_plan.near_groups(infos, key, 8, threshold, "cpu")
    assert groups  # planted near duplicates are found
    dist = lambda i, j: bin(int(infos[i].hash, 16) ^ int(infos[j].hash, 16)).count("1")  # noqa: E731
    seen = []
    for g in groups:
        files = [g.keep] + [i for i, _ in g.members]
        seen += files
        assert g.members and all(d == dist(g.keep, i) <= threshold for i, d in g.members)
        could_keep = [i for i in files if all(dist(i, j) <= threshold for j in files)]
        assert g.keep == min(could_keep, key=lambda i: key(infos[i]))
    assert len(seen) == len(set(seen))
    assert len({infos[i].md5 for i in seen}) == len(seen)  # byte-identical copies are left to the exact groups
    for again in (infos[::-1], list(rng.permutation(infos))):
        assert _dedup_plan.near_groups(again, key, 8, threshold, "cpu") == groups


# ---------------------------------------------------------------------------------------- keep policy


def test_keep_policies(work, capsys):
    def kept(*argv):
        _, doc, _ = _json(capsys, work, *argv)
        return {os.path.basename(g["keep"]) for g in doc["near_groups"]}, doc

    assert kept()[0] == {"astro.png", "coffee.png"}  # largest: 256x256 over the 192x192 and the crop
    # lossless: the PNG, even when a larger JPEG is there
    _astro().resize((300, 300), Image.LANCZOS).save(work / "astro_big.jpg", quality=95)
    assert "astro_big.jpg" in kept("--keep", "largest")[0]
    lossless = kept("--keep", "lossless")[0]
    assert "astro_big.jpg" not in lossless and any(n.startswith("astro") and n.endswith(".png") for n in lossless)
    # oldest / newest by modification time
    for k, name in enumerate(sorted(os.listdir(work))):
        if name.endswith((".png", ".jpg")):
            os.utime(work / name, ns=(10**18 + k * 10**9, 10**18 + k * 10**9))
    os.utime(work / "astro_small.png", ns=(10**17, 10**17))
    assert "astro_small.png" in kept("--keep", "oldest")[0]
    newest = max((n for n in os.listdir(work) if n.startswith("astro")), key=lambda n: os.stat(work / n).st_mtime_ns)
    assert newest in kept("--keep", "newest")[0]
    assert "astro.png" in kept("--keep", "first")[0]
    # a preferred folder wins over the policy; byte-identical copies follow it too
    names, doc = kept("-r", "--prefer", work / "sub")
    assert "astro_copy2.png" in names and os.path.basename(doc["exact_groups"][0]["keep"]) == "astro_copy2.png"


# ---------------------------------------------------------------------------------------- actions


def _tree(d):
    return {str(p.relative_to(d)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(d.rglob("*")) if p.is_file()}


def test_dry_run_changes_nothing(work, capsys):
    before = _tree(work)
    for action in (["delete"], ["move", str(work.parent / "dupes")], ["hardlink"]):
        code, out, _ = _run(capsys, work, "--action", *action)
        assert code == 1 and "dry run" in out and "nothing was changed" in out
        assert _tree(work) == before and not (work.parent / "dupes").exists()
    _, out, _ = _run(capsys, work, "--action", "delete")
    assert out.count("  would delete  ") == 6


def test_apply_delete_keeps_every_kept_file(work, capsys):
    _, doc, _ = _json(capsys, work, "-r")
    kept = {g["keep"] for g in doc["near_groups"]} | {g["keep"] for g in doc["exact_groups"]}
    code, out, err = _run(capsys, work, "-r", "--action", "delete", "--apply")
    assert code == 1  # the corrupt file; every deletion was done
    assert "--action delete: 7 of 7 file(s) done" in out
    assert all(not os.path.exists(p) for p in doc["remove"])
    assert all(os.path.exists(p) for p in kept)
    assert sorted(_tree(work)) == ["astro.png", "broken.png", "camera.png", "chelsea.jpg", "coffee.png", "notes.txt"]
    code, out, _ = _run(capsys, work, "-r")
    assert "files to remove: 0" in out


def test_apply_move_keeps_relative_paths_and_never_overwrites(work, tmp_path, capsys):
    dupes = tmp_path / "dupes"
    (dupes / "sub").mkdir(parents=True)
    (dupes / "sub" / "astro_copy2.png").write_bytes(b"already here")
    code, doc, err = _json(capsys, work, "-r", "--action", "move", dupes, "--apply")
    moved = {os.path.relpath(f["target"], dupes) for f in doc["action"]["files"] if f["done"]}
    assert moved == {"astro_copy.png", "astro_q70.jpg", "astro_small.png", "astro_bright.png", "astro_crop.png", "coffee_q80.jpg"}
    assert (dupes / "sub" / "astro_copy2.png").read_bytes() == b"already here"  # not overwritten
    assert (work / "sub" / "astro_copy2.png").exists()  # left where it was, with one line saying why
    assert any("astro_copy2.png" in line and "already there" in line for line in err.splitlines())
    assert code == 1
    for rel in moved:  # the moved files are intact
        assert (dupes / rel).stat().st_size > 1000 and not (work / rel).exists()


def test_move_into_the_folder_searched_is_not_searched_again(work, capsys):
    dupes = work / "sub" / "dupes"
    code, doc, _ = _json(capsys, work, "-r", "--action", "move", dupes, "--apply")
    moved = sorted(f["path"] for f in doc["action"]["files"] if f["done"])
    assert len(moved) == 7 and not any(os.path.exists(p) for p in moved)
    assert sorted(p.name for p in dupes.rglob("*.*")) == _names(moved)
    code, doc, _ = _json(capsys, work, "-r", "--action", "move", dupes, "--apply")  # the same command again
    assert doc["remove"] == [] and doc["files"] == 5 and doc["action"]["files"] == []
    _, doc, _ = _json(capsys, work, "-r")  # without the action the moved files are searched, and found
    assert _names(doc["remove"]) == _names(moved)
    code, _, err = _run(capsys, work, "--action", "move", work)
    assert code == 2 and "--action move DIR is the folder searched" in err


def test_apply_hardlink_replaces_only_exact_copies(work, capsys):
    code, out, err = _run(capsys, work, "-r", "--action", "hardlink", "--apply")
    for name in ("astro_copy.png", "sub/astro_copy2.png"):
        assert os.path.samefile(work / name, work / "astro.png")
    assert (work / "astro_q70.jpg").exists() and not os.path.samefile(work / "astro_q70.jpg", work / "astro.png")
    assert "--action hardlink: 2 of 2 file(s) done" in out
    assert "5 near duplicate(s) left: hardlink replaces only byte-identical copies" in out
    assert sum("hardlink replaces only exact copies" in line for line in err.splitlines()) == 5


def test_hard_links_of_the_kept_file_are_not_copies(work, tmp_path, capsys):
    """After --action hardlink the copies are the kept file under other paths: a second run lists
    them as links, removes nothing of them and links only a copy that is new (as czkawka ignores
    hard links)."""
    _run(capsys, work, "-r", "--action", "hardlink", "--apply")
    near_dupes = ["astro_bright.png", "astro_crop.png", "astro_q70.jpg", "astro_small.png", "coffee_q80.jpg"]
    code, doc, _ = _json(capsys, work, "-r")
    assert doc["exact_groups"] == [] and _names(doc["remove"]) == near_dupes
    assert not any("astro_copy" in f["path"] for g in doc["near_groups"] for f in g["files"])
    shutil.copy(work / "astro.png", work / "astro_copy3.png")  # a new byte-identical copy, another file
    out_csv = tmp_path / "groups.csv"
    code, doc, _ = _json(capsys, work, "-r", "--csv", out_csv)
    (exact,) = doc["exact_groups"]
    assert os.path.basename(exact["keep"]) == "astro.png" and _names(exact["links"]) == ["astro_copy.png", "astro_copy2.png"]
    assert _names(exact["remove"]) == ["astro_copy3.png"] and len(exact["files"]) == 4
    assert _names(doc["remove"]) == sorted(["astro_copy3.png", *near_dupes])
    roles = {os.path.basename(r["path"]): r["role"] for r in csv.DictReader(out_csv.open()) if r["kind"] == "exact"}
    assert roles == {"astro.png": "keep", "astro_copy.png": "link", "astro_copy2.png": "link", "astro_copy3.png": "remove"}
    code, out, err = _run(capsys, work, "-r", "--action", "hardlink", "--apply")
    assert "--action hardlink: 1 of 1 file(s) done" in out and "same file as its kept file" not in err
    assert "    link    " + str(work / "astro_copy.png") in out
    assert all(os.path.samefile(work / n, work / "astro.png") for n in ("astro_copy.png", "sub/astro_copy2.png", "astro_copy3.png"))
    code, doc, _ = _json(capsys, work, "-r", "--action", "delete", "--apply")  # deleting near duplicates only
    assert all((work / n).exists() for n in ("astro.png", "astro_copy.png", "sub/astro_copy2.png", "astro_copy3.png"))
    assert _names(f["path"] for f in doc["action"]["files"] if f["done"]) == near_dupes


def test_safety_checks_before_acting(work):
    """A file changed since it was read, or an exact copy whose bytes changed at the same size and
    time, or a 'duplicate' that is the kept file through a link: never removed."""
    infos = []
    for k, name in enumerate(["astro.png", "astro_copy.png"]):
        f = _dedup_scan.FileInfo(k, str(work / name))
        st = os.stat(f.path)
        f.size, f.mtime_ns, f.md5 = st.st_size, st.st_mtime_ns, torchsim.file_md5(f.path)
        infos.append(f)
    keep, copy = infos
    assert _dedup_plan.check_removal(copy, keep, "exact") is None
    data = bytearray((work / "astro_copy.png").read_bytes())
    data[-20] ^= 1  # same size, same time, other bytes
    (work / "astro_copy.png").write_bytes(bytes(data))
    os.utime(copy.path, ns=(copy.mtime_ns, copy.mtime_ns))
    assert "no longer byte-identical" in _dedup_plan.check_removal(copy, keep, "exact")
    os.utime(copy.path, ns=(copy.mtime_ns + 10**9, copy.mtime_ns + 10**9))
    assert "changed since it was read" in _dedup_plan.check_removal(copy, keep, "exact")
    os.remove(copy.path)
    os.symlink(keep.path, copy.path)  # the "copy" is now the kept file itself
    st = os.stat(copy.path)
    copy.size, copy.mtime_ns = st.st_size, st.st_mtime_ns
    assert "the same file as its kept file" in _dedup_plan.check_removal(copy, keep, "exact")
    os.remove(copy.path)
    shutil.copy(keep.path, copy.path)
    st = os.stat(copy.path)
    copy.size, copy.mtime_ns = st.st_size, st.st_mtime_ns
    assert _dedup_plan.check_removal(copy, keep, "near") is None
    os.remove(keep.path)
    assert "its kept file" in _dedup_plan.check_removal(copy, keep, "near")


# ---------------------------------------------------------------------------------------- outputs


def test_csv_and_sheet(folder, tmp_path, capsys):
    out_csv, sheet = tmp_path / "groups.csv", tmp_path / "sheet.png"
    code, doc, _ = _json(capsys, folder, "--csv", out_csv, "--sheet", sheet)
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["role"] for r in rows].count("keep") == 3 and [r["role"] for r in rows].count("remove") == 6
    assert {r["kind"] for r in rows} == {"exact", "near"} and rows[0]["kind"] == "exact"
    for r in rows:
        assert int(r["bytes"]) == os.path.getsize(r["path"]) and r["md5"] == torchsim.file_md5(r["path"])
        assert r["role"] == "keep" or int(r["distance"]) <= 4
    assert sorted(r["path"] for r in rows if r["role"] == "remove") == sorted(doc["remove"])
    im = np.asarray(Image.open(sheet).convert("RGB"))
    assert im.shape[0] > 3 * 150 and im.shape[1] >= 5 * 150  # 3 rows, up to 5 thumbnails
    green = (np.abs(im.astype(int) - (30, 140, 60)).sum(-1) < 10).sum()
    red = (np.abs(im.astype(int) - (200, 40, 40)).sum(-1) < 10).sum()
    assert green > 3 * 4 * 100 and red > 6 * 4 * 100  # a frame per kept file, per file to remove


def test_progress_bar_counts_files(folder, capsys):
    assert main(["dedup", str(folder), "--no-cache"]) == 1
    err = capsys.readouterr().err
    reading, hashing = err.split("torchsim dedup: hashing", 1)
    assert "torchsim dedup: reading" in reading and "11/11" in reading  # 11 image files read
    assert "11/11" in hashing  # then 11 hashed (one fails): files, not steps
    assert not re.search(r"\d+/22\b", err)  # no bar counts 22 (two steps per file)


# ---------------------------------------------------------------------------------------- cache, speed


def test_cache_hashes_only_new_or_changed_files(work, tmp_path, capsys, monkeypatch):
    calls = []
    real = _dedup_scan.load

    def counting(path, *args, **kwargs):
        calls.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(_dedup_scan, "load", counting)
    reads = []  # files read for their MD5 before hashing: those that share their size with another
    real_read = _dedup_scan._read_one
    monkeypatch.setattr(_dedup_scan, "_read_one", lambda info: reads.append(os.path.basename(info.path)) or real_read(info))
    loads = []  # files read once for both their MD5 and their decode
    real_bytes = _dedup_scan._read_bytes
    monkeypatch.setattr(_dedup_scan, "_read_bytes", lambda path: loads.append(os.path.basename(path)) or real_bytes(path))
    cache = tmp_path / "hashes.sqlite"
    _, first, _ = _json(capsys, work, "--cache", cache)
    assert sorted(reads) == ["astro.png", "astro_copy.png"]  # the byte-identical pair
    assert len(set(loads + reads)) == len(loads + reads) == 11  # every image file read once
    # one decode per distinct content (the exact copy is not decoded), the corrupt file tried once
    assert sorted(calls) == sorted(["astro.png", "astro_q70.jpg", "astro_small.png", "astro_bright.png", "astro_crop.png",
                                    "coffee.png", "coffee_q80.jpg", "camera.png", "chelsea.jpg", "broken.png"])
    calls.clear()
    reads.clear()
    loads.clear()
    _, again, _ = _json(capsys, work, "--cache", cache)
    assert calls == ["broken.png"] and again["cached"] == 10 and reads == [] and loads == []
    assert again["near_groups"] == first["near_groups"] and again["exact_groups"] == first["exact_groups"]
    # the folder grows, one file changes: only those are decoded
    Image.fromarray(photo_u8("rocket")).save(work / "rocket.png")
    shutil.copy(work / "rocket.png", work / "rocket_copy.png")
    ImageEnhance.Contrast(Image.open(work / "camera.png")).enhance(1.2).save(work / "camera.png")
    calls.clear()
    reads.clear()
    loads.clear()
    _, grown, _ = _json(capsys, work, "--cache", cache)
    assert sorted(calls) == ["broken.png", "camera.png", "rocket.png"]
    assert sorted(reads) == ["rocket.png", "rocket_copy.png"] and loads == ["camera.png"] and grown["cached"] == 9
    assert _names(grown["exact_groups"][1]["files"]) == ["rocket.png", "rocket_copy.png"]
    calls.clear()
    _json(capsys, work, "--no-cache")
    assert len(calls) == 11  # the 10 distinct contents of before, one changed, and the new one


def test_default_cache_is_per_folder_under_xdg(work, capsys):
    path = _dedup_scan.default_cache_path(str(work))
    assert path.startswith(os.environ["XDG_CACHE_HOME"]) and not os.path.exists(path)
    _json(capsys, work)
    assert os.path.isfile(path) and not any(p.suffix == ".sqlite" for p in work.rglob("*"))


def test_parallel_and_fast_decode(folder, capsys):
    _, exact, _ = _json(capsys, folder, "--no-cache", "--workers", 0)
    _, pooled, _ = _json(capsys, folder, "--no-cache", "--workers", 3, "--batch-size", 2)
    assert pooled["near_groups"] == exact["near_groups"] and pooled["exact_groups"] == exact["exact_groups"]
    _, fast, _ = _json(capsys, folder, "--no-cache", "--fast-decode")
    report = fast["fast_decode"]
    assert report["checked"] == 3 and 0 <= report["differing"] <= 3 and report["mean_bits"] <= 4  # the 3 JPEGs
    assert {g["keep"] for g in fast["near_groups"]} == {g["keep"] for g in exact["near_groups"]}
    files = lambda doc: {f["path"]: f for g in doc["near_groups"] for f in g["files"]}  # noqa: E731
    for path, f in files(fast).items():
        if path.endswith(".png"):  # only JPEGs are decoded at a reduced size
            assert f["hash"] == files(exact)[path]["hash"]
        assert (f["width"], f["height"]) == Image.open(path).size  # full sizes, for --keep largest


def test_fast_decode_draft_sizes(folder):
    image, full, lossless = _dedup_scan.load(str(folder / "coffee_q80.jpg"), {}, (32, 32), fast=True)
    assert full == (600, 400) and not lossless
    assert image.shape[0] == 1 and min(image.shape[1:]) >= 64 and image.shape[2] <= 600 // 4
    image, full, lossless = _dedup_scan.load(str(folder / "coffee.png"), {}, (32, 32), fast=True)
    assert tuple(image.shape) == (1, 400, 600) and full == (600, 400) and lossless


def test_lossless_is_read_from_the_file(tmp_path):
    """--keep lossless: PNG, BMP, TIFF, GIF and lossless WebP (a VP8L chunk) are lossless; JPEG and lossy WebP not."""
    astro = _astro()
    saves = {"a.png": {}, "a.bmp": {}, "a.tif": {}, "a.gif": {}, "l.webp": {"lossless": True},
             "y.webp": {"quality": 90}, "a.jpg": {"quality": 95}}
    for name, kw in saves.items():
        astro.save(tmp_path / name, **kw)
    lossless = {name: _dedup_scan.load(str(tmp_path / name), {}, (32, 32))[2] for name in saves}
    assert lossless == {"a.png": True, "a.bmp": True, "a.tif": True, "a.gif": True, "l.webp": True,
                        "y.webp": False, "a.jpg": False}


def test_luma_decode_hashes_equal_the_rgb_decode(folder, tmp_path):
    """Pillow's straight-to-luma decode gives the hashes of the RGB decode the other commands use,
    on every file of the folder and on modes that take the RGB path (palette, RGBA, 16-bit)."""
    astro = _astro()
    astro.convert("P").save(tmp_path / "palette.png")
    astro.convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray((np.asarray(astro.convert("L")).astype(np.uint16) * 257)).save(tmp_path / "gray16.png")
    paths = [p for p in sorted(folder.iterdir()) if p.suffix in (".png", ".jpg") and p.name != "broken.png"]
    for path in [*paths, *sorted(tmp_path.iterdir())]:
        luma, full, _ = _dedup_scan.load(str(path), {}, (32, 32))
        rgb, rgb_full, _ = _dedup_scan._rgb(str(path), {})
        assert full == rgb_full == Image.open(path).size
        for fn in (torchsim.phash, torchsim.dhash, torchsim.ahash):
            assert torch.equal(fn(luma[None]), fn(rgb[None])), (path.name, fn.__name__)


# ---------------------------------------------------------------------------------------- arguments


def test_bad_arguments(tmp_path, capsys):
    code, _, err = _run(capsys, tmp_path / "missing")
    assert code == 2 and "DIR is not a folder" in err
    code, _, err = _run(capsys, tmp_path, "--threshold", "-1")
    assert code == 2 and "--threshold must be >= 0" in err
    code, _, err = _run(capsys, tmp_path, "--action", "move")
    assert code == 2 and "--action move takes one folder" in err
    code, _, err = _run(capsys, tmp_path, "--action", "shred")
    assert code == 2 and "--action must be one of report, move DIR, hardlink, delete; got 'shred'" in err
    code, _, err = _run(capsys, tmp_path, "--apply")
    assert code == 2 and "--apply needs an --action" in err
    code, _, err = _run(capsys, tmp_path, "--prefer", tmp_path / "nope")
    assert code == 2 and "--prefer is not a folder" in err
    with pytest.raises(SystemExit):
        main(["dedup", str(tmp_path), "--hash", "whash"])
    with pytest.raises(SystemExit):
        main(["dedup", str(tmp_path), "--keep", "prettiest"])


@pytest.mark.cuda
def test_cuda_same_report(folder, capsys):
    _, cpu, _ = _json(capsys, folder, "--no-cache")
    _, cuda, _ = _json(capsys, folder, "--no-cache", "--device", "cuda")
    assert cuda == cpu


def test_interrupted_rerun_still_reports_a_new_copy_of_a_cached_file(tmp_path, capsys, monkeypatch):
    """A file with the size of another (here a cached one) is MD5'd before hashing starts, so the
    exact group is reported even when the run stops before the copy is decoded."""
    folder = tmp_path / "d"
    folder.mkdir()
    Image.fromarray(photo_u8("coffee")).resize((96, 64)).save(folder / "a.png")
    Image.fromarray(photo_u8("camera")).resize((64, 80)).save(folder / "c.png")
    cache = tmp_path / "hashes.sqlite"
    _json(capsys, folder, "--cache", cache, "--workers", "1")
    shutil.copy(folder / "a.png", folder / "b.png")  # a new byte-identical copy of a cached file

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_dedup_scan, "load", interrupt)
    monkeypatch.setattr(_dedup_scan, "_read_bytes", interrupt)
    code, doc, _ = _json(capsys, folder, "--cache", cache, "--workers", "1")
    assert code == 130 and doc["complete"] is False
    assert [_names(g["files"]) for g in doc["exact_groups"]] == [["a.png", "b.png"]]
