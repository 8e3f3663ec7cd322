"""pixelmatch (``compat="mapbox"``, the default) vs mapbox pixelmatch v7: equal counts, byte-identical diffs.

Two references:

* mapbox's own test suite: the fixtures of pixelmatch v7.2.0 (``fixtures/pixelmatch``, ISC, see
  its README) with the counts its ``test/test.js`` expects and its expected diff images; these
  need no node;
* the real pixelmatch 7.2.0 from npm, run by node (``pixelmatch_v7.mjs``) on the same RGBA bytes
  as torchsim: mapbox's cases again, real photographs with realistic distortions, semi-transparent
  RGBA, small palette images that reach every anti-aliasing rule, each option combination, and
  ignore masks. The session fixture installs it once with ``npm install --prefix <cache>``
  (``$TORCHSIM_NODE_CACHE``, default ``~/.cache/torchsim-tests/node``); those tests skip with the
  reason where node or npm is missing or the npm registry cannot be reached.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from skimage import data

import torchsim

from ..helpers import blur, jpeg, noise

pm = importlib.import_module("torchsim.functional.pixelmatch")  # the module (the package exports the function)

VERSION = "7.2.0"
HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures" / "pixelmatch"
RUNNER = HERE / "pixelmatch_v7.mjs"

# mapbox/pixelmatch v7.2.0, test/test.js: (img1, img2, expected diff image, options, expected count).
MAPBOX_CASES = [
    ("1a", "1b", "1diff", {"threshold": 0.05}, 143),
    ("1a", "1b", "1diffdefaultthreshold", {}, 106),
    ("1a", "1b", "1diffmask", {"threshold": 0.05, "include_aa": False, "diff_mask": True}, 143),
    ("1a", "1a", "1emptydiffmask", {"threshold": 0.0, "diff_mask": True}, 0),
    ("2a", "2b", "2diff", {"threshold": 0.05, "alpha": 0.5, "aa_color": (0, 192, 0), "diff_color": (255, 0, 255)}, 12437),
    ("3a", "3b", "3diff", {"threshold": 0.05}, 212),
    ("4a", "4b", "4diff", {"threshold": 0.05}, 36049),
    ("5a", "5b", "5diff", {"threshold": 0.05}, 6),
    ("6a", "6b", "6diff", {"threshold": 0.05}, 51),
    ("6a", "6a", "6empty", {"threshold": 0.0}, 0),
    ("7a", "7b", "7diff", {"diff_color_alt": (0, 255, 0)}, 2448),
    ("8a", "5b", "8diff", {"threshold": 0.05}, 32896),
]

_JS_NAMES = {
    "threshold": "threshold",
    "include_aa": "includeAA",
    "alpha": "alpha",
    "aa_color": "aaColor",
    "diff_color": "diffColor",
    "diff_color_alt": "diffColorAlt",
    "diff_mask": "diffMask",
    "checkerboard": "checkerboard",
}


# ---------------------------------------------------------------------------------------------
# the reference, run by node


class Mapbox:
    """Runs pixelmatch from npm on ``(H, W, 4)`` uint8 arrays, many pairs per node process."""

    def __init__(self, node: str, index: Path, work: Path):
        self.node, self.index, self.work = node, index, work
        self.calls = 0

    def run(self, jobs):
        """``jobs``: ``[(a, b, options), ...]`` -> ``[(count, diff (H, W, 4) uint8), ...]``."""
        self.calls += 1
        spec = []
        for i, (a, b, opts) in enumerate(jobs):
            assert a.shape == b.shape and a.shape[2] == 4 and a.dtype == np.uint8
            stem = self.work / f"{self.calls}_{i}"
            paths = [f"{stem}_{k}.rgba" for k in "abd"]
            for arr, path in zip((a, b), paths):
                Path(path).write_bytes(np.ascontiguousarray(arr).tobytes())
            js = {_JS_NAMES[k]: (list(v) if isinstance(v, tuple) else v) for k, v in opts.items() if v is not None}
            spec.append({"a": paths[0], "b": paths[1], "out": paths[2], "width": a.shape[1], "height": a.shape[0], "options": js})
        done = subprocess.run(
            [self.node, str(RUNNER), str(self.index)], input=json.dumps(spec), capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        counts = json.loads(done.stdout)
        out = []
        for (a, _, _), job, count in zip(jobs, spec, counts):
            diff = np.frombuffer(Path(job["out"]).read_bytes(), dtype=np.uint8).reshape(a.shape)
            out.append((count, diff))
            for key in ("a", "b", "out"):
                os.remove(job[key])
        return out


@pytest.fixture(scope="session")
def mapbox(tmp_path_factory) -> Mapbox:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the mapbox pixelmatch reference needs node and npm on PATH; not found")
    cache = Path(os.environ.get("TORCHSIM_NODE_CACHE", Path.home() / ".cache" / "torchsim-tests" / "node"))
    package = cache / "node_modules" / "pixelmatch"

    def installed() -> bool:
        try:
            return json.loads((package / "package.json").read_text())["version"] == VERSION
        except (OSError, ValueError, KeyError):
            return False

    if not installed():
        cmd = [npm, "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--no-package-lock"]
        cmd += ["--fetch-retries=1", "--fetch-retry-maxtimeout=10000", f"pixelmatch@{VERSION}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install pixelmatch@{VERSION} timed out (is the npm registry reachable?)")
        if done.returncode != 0 or not installed():
            said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip() not in ("", "npm error")]
            pytest.skip(f"npm could not install pixelmatch@{VERSION} (is the npm registry reachable?): {' | '.join(said[:4])}")
    return Mapbox(node, package / "index.js", tmp_path_factory.mktemp("pixelmatch_v7"))


# ---------------------------------------------------------------------------------------------
# torchsim, in both code paths


def _t(a: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` uint8 -> ``(1, C, H, W)``."""
    return torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].contiguous()


def _hwc(d: torch.Tensor) -> np.ndarray:
    return d.permute(1, 2, 0).numpy()


def _rgba(a: np.ndarray) -> np.ndarray:
    """What pixelmatch is given for ``a``: gray and RGB made RGBA as Pillow's ``convert("RGBA")``."""
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 4:
        return a
    rgb = np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a
    return np.concatenate([rgb, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2)


def _ours(a: np.ndarray, b: np.ndarray, dense: bool = False, **kw):
    """torchsim's count and diff ``(H, W, 4)`` for one pair; ``dense=True`` forces the CUDA path's code."""
    x, y = _t(a if a.ndim == 3 else a[..., None]), _t(b if b.ndim == 3 else b[..., None])
    if "mask" in kw and isinstance(kw["mask"], np.ndarray):
        kw["mask"] = torch.from_numpy(kw["mask"])[None, None]
    if dense:
        with mock.patch.object(pm, "_kernel", functools.partial(pm._kernel, sparse=False)):
            count, diff = torchsim.pixelmatch(x, y, return_diff=True, **kw)
    else:
        count, diff = torchsim.pixelmatch(x, y, return_diff=True, **kw)
    return int(count[0]), _hwc(diff[0])


def _same(got, want, what=""):
    (c1, d1), (c2, d2) = got, want
    bad = int((d1 != d2).any(-1).sum())
    assert (c1, bad) == (c2, 0), f"{what}: count {c1} vs reference {c2}, {bad} diff pixels differ"


def _compare(mapbox: Mapbox, pairs, combos, dense_every: int = 4):
    """Every pair under every option combination: torchsim (sparse, and dense for every
    ``dense_every``-th) against one node run."""
    jobs = [(a, b, kw) for a, b in pairs for kw in combos]
    refs = mapbox.run([(_rgba(a), _rgba(b), kw) for a, b, kw in jobs])
    for i, ((a, b, kw), ref) in enumerate(zip(jobs, refs)):
        _same(_ours(a, b, **kw), ref, f"job {i} {kw}")
        if i % dense_every == 0:
            _same(_ours(a, b, dense=True, **kw), ref, f"job {i} {kw} (dense)")
    return refs


# ---------------------------------------------------------------------------------------------
# mapbox's own test suite


def _fixture(name: str) -> np.ndarray:
    with Image.open(FIXTURES / f"{name}.png") as img:
        return np.asarray(img.convert("RGBA")).copy()


@pytest.mark.slow
@pytest.mark.parametrize("case", MAPBOX_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}")
def test_mapbox_test_suite_fixtures(case):
    """Each case of pixelmatch v7's test/test.js: its count and its expected diff image, byte for byte."""
    a, b, diff, opts, expected = case
    img1, img2, want = _fixture(a), _fixture(b), _fixture(diff)
    for dense in (False, True):
        count, got = _ours(img1, img2, dense=dense, **opts)
        assert count == expected
        assert np.array_equal(got, want), f"{int((got != want).any(-1).sum())} pixels of {diff}.png differ"


def test_mapbox_checkerboard_option_case():
    """test.js: 50 % black and opaque grey look alike on white, not on the dark checkerboard."""
    a = torch.tensor([0, 0, 0, 128], dtype=torch.uint8).reshape(1, 4, 1, 1)
    b = torch.tensor([127, 127, 127, 255], dtype=torch.uint8).reshape(1, 4, 1, 1)
    assert torchsim.pixelmatch(a, b, checkerboard=False).tolist() == [0]
    assert torchsim.pixelmatch(a, b).tolist() == [1]


def test_mapbox_fixtures_with_node(mapbox):
    """The same cases through the real pixelmatch (also checks that Pillow decodes the fixtures as
    pngjs does: the reference reproduces the stored diffs from Pillow's bytes)."""
    jobs = [(_fixture(a), _fixture(b), opts) for a, b, _, opts, _ in MAPBOX_CASES]
    for (img1, img2, opts), ref, case in zip(jobs, mapbox.run(jobs), MAPBOX_CASES):
        assert ref[0] == case[4] and np.array_equal(ref[1], _fixture(case[2]))
        _same(_ours(img1, img2, **opts), ref, case[2])


# ---------------------------------------------------------------------------------------------
# real photographs, realistic distortions, every option

H, W = 112, 128  # not square: a swapped axis cannot pass


def _photo(name: str) -> np.ndarray:
    img = Image.fromarray(getattr(data, name)())
    return np.asarray(img.convert("RGB").resize((W, H), Image.BILINEAR))


def _float(a: np.ndarray) -> np.ndarray:
    return a / 255.0


def _u8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def _edited(a: np.ndarray) -> np.ndarray:
    img = Image.fromarray(a)
    d = ImageDraw.Draw(img)
    d.rectangle([20, 30, 60, 55], fill=(20, 180, 40))
    d.text((40, 80), "torchsim", fill=(255, 255, 255))
    d.line([0, H - 1, W - 1, 50], fill=(0, 0, 0), width=2)
    return np.asarray(img)


def _shapes(shift: int) -> np.ndarray:
    """Anti-aliased shapes: drawn at 4x and downscaled with a filter."""
    big = Image.new("RGB", (4 * W, 4 * H), "white")
    d = ImageDraw.Draw(big)
    d.ellipse([40 + shift, 40, 400 + shift, 300], outline="black", width=12)
    d.polygon([(300, 60), (480, 200 + shift), (260, 420)], fill=(30, 60, 200))
    d.line([0, 440, 500, shift], fill=(200, 0, 0), width=8)
    return np.asarray(big.resize((W, H), Image.LANCZOS))


def _text(dx: int) -> np.ndarray:
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    d.text((4 + dx, 4), "Hello, world", fill="black")
    d.text((4, 30), "pixelmatch v7", fill=(40, 40, 160))
    return np.asarray(img)


def _with_alpha(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb, alpha[..., None].astype(np.uint8)], axis=2)


def _rgba_pairs():
    """Semi-transparent RGBA: an alpha ramp with noise, a changed opacity, inverted colours, a hole;
    and a photo whose opacity is another photo, JPEG-compressed, with a fully transparent patch of
    unrelated colours (invisible on any backdrop)."""
    rng = np.random.default_rng(0)
    coffee = _photo("coffee")
    ramp = np.clip(np.linspace(0, 255, W)[None, :] + rng.normal(0, 10, (H, W)), 0, 255)
    a = _with_alpha(coffee, ramp)
    b = a.copy()
    b[40:70, 30:90, 3] = 128
    b[80:100, 10:50, :3] = 255 - b[80:100, 10:50, :3]
    b[95:110, 60:120, 3] = 0
    cam = np.asarray(Image.fromarray(data.camera()).resize((W, H), Image.BILINEAR))
    c = _with_alpha(_photo("astronaut"), cam)
    d = _with_alpha(_u8(jpeg(_float(c[..., :3]), quality=40)), cam)
    c[:16, :16, 3] = d[:16, :16, 3] = 0
    d[:16, :16, :3] = rng.integers(0, 256, (16, 16, 3))
    return [(a, b), (c, d)]


def _opaque_pairs():
    astro, chelsea, coffee = _photo("astronaut"), _photo("chelsea"), _photo("coffee")
    cam = np.asarray(Image.fromarray(data.camera()).resize((W, H), Image.BILINEAR))
    return [
        (astro, _edited(astro)),
        (chelsea, _u8(jpeg(_float(chelsea), quality=30))),
        (coffee, _u8(noise(_float(coffee), sigma=0.02))),
        (_shapes(0), _shapes(6)),
        (_text(0), _text(1)),
        (cam, _u8(blur(_float(cam), sigma=1.0))),  # gray: one channel
    ]


def _combos(rgba: bool):
    """threshold × include_aa × diff_mask × diff_color_alt, with alpha and the colours varied along;
    ``checkerboard`` on and off for RGBA."""
    out = []
    grid = itertools.product((0.0, 0.05, 0.1, 0.3), (False, True), (False, True), (None, (0, 255, 0)))
    for i, (t, aa, dm, alt) in enumerate(grid):
        kw = {"threshold": t, "include_aa": aa, "diff_mask": dm, "diff_color_alt": alt, "alpha": (0.1, 0.5, 0.0, 1.0)[i % 4]}
        if i % 3 == 1:
            kw.update(aa_color=(0, 192, 0), diff_color=(255, 0, 255))
        out.append(kw)
    if rgba:
        out = out + [dict(kw, checkerboard=False) for kw in out]
    return out


@pytest.mark.slow
def test_photographs_every_option(mapbox):
    refs = _compare(mapbox, _opaque_pairs(), _combos(rgba=False))
    assert min(c for c, _ in refs) == 0 and max(c for c, _ in refs) > 1000  # the options matter


@pytest.mark.slow
def test_semi_transparent_rgba_every_option(mapbox):
    pairs = _rgba_pairs()
    refs = _compare(mapbox, pairs, _combos(rgba=True))
    n = len(_combos(rgba=False))
    on, off = refs[:n], refs[n : 2 * n]  # first pair: checkerboard on, then off
    assert any(c1 != c2 for (c1, _), (c2, _) in zip(on, off))  # the backdrop changes the verdict


def test_antialiasing_is_detected_and_reproduced(mapbox):
    a, b = _shapes(0), _shapes(6)
    (strict, _), (loose, _) = mapbox.run([(_rgba(a), _rgba(b), {}), (_rgba(a), _rgba(b), {"include_aa": True})])
    assert 0 < strict < loose
    assert _ours(a, b)[0] == strict and _ours(a, b, include_aa=True)[0] == loose


@pytest.mark.parametrize("alpha", [0.1, 0.37, 1.0])
def test_identical_images_fast_path(mapbox, alpha):
    a, _ = _rgba_pairs()[1]
    combos = [{"alpha": alpha}, {"alpha": alpha, "diff_mask": True}, {"alpha": alpha, "threshold": 0.0}]
    refs = _compare(mapbox, [(a, a.copy())], combos, dense_every=1)
    assert all(c == 0 for c, _ in refs)


def test_small_palette_images_exercise_every_rule(mapbox):
    """Few colours (opaque and semi-transparent), so many equal neighbours, ties for the darkest and
    brightest neighbour, borders and one-pixel images."""
    rng = np.random.default_rng(7)
    jobs, ours = [], []
    for trial in range(80):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        pal = rng.integers(0, 256, (int(rng.integers(2, 5)), 4), dtype=np.uint8)
        if trial % 2:
            pal[:, 3] = 255
        elif trial % 4 == 0:
            pal[0, 3] = 0
        a = pal[rng.integers(0, len(pal), (h, w))]
        b = a.copy()
        m = rng.random((h, w)) < 0.3
        b[m] = pal[rng.integers(0, len(pal), int(m.sum()))]
        kw = {
            "threshold": float(rng.choice([0.0, 0.05, 0.1])),
            "include_aa": bool(trial % 5 == 0),
            "diff_mask": bool(trial % 3 == 0),
            "diff_color_alt": (0, 0, 255) if trial % 7 == 0 else None,
            "checkerboard": False if trial % 6 == 0 else None,
        }
        jobs.append((a, b, kw))
    for i, ((a, b, kw), ref) in enumerate(zip(jobs, mapbox.run(jobs))):
        _same(_ours(a, b, **kw), ref, f"trial {i}")
        _same(_ours(a, b, dense=True, **kw), ref, f"trial {i} (dense)")


def test_batch_equals_the_reference_pair_by_pair(mapbox):
    pairs = _rgba_pairs() + [(_with_alpha(a, np.full((H, W), 255)), _with_alpha(b, np.full((H, W), 255))) for a, b in _opaque_pairs()[:3]]
    pairs.append((pairs[0][0], pairs[0][0].copy()))  # an identical pair inside the batch
    x = torch.cat([_t(a) for a, _ in pairs])
    y = torch.cat([_t(b) for _, b in pairs])
    count, diff = torchsim.pixelmatch(x, y, diff_color_alt=(0, 0, 255), return_diff=True)
    refs = mapbox.run([(a, b, {"diff_color_alt": (0, 0, 255)}) for a, b in pairs])
    for i, ref in enumerate(refs):
        _same((int(count[i]), _hwc(diff[i])), ref, f"image {i}")


def test_checkerboard_matches_javascript_beyond_int32(mapbox):
    """v7's backdrop colours for byte offsets up to and past 2³¹·φ, where ``| 0`` wraps: read from
    node's own evaluation of v7's expressions."""
    from torchsim.kernels import pixelmatch as kernel

    idx = torch.tensor([0, 1, 2, 3, 7, 1000, 123457, 2**27 + 5, 868_000_000, 868_450_000, 900_000_001, 1_500_000_003, 2**31 + 11], dtype=torch.int64)
    script = (
        "const ks = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify(ks.map(i => { const k = 4 * i; return ["
        "48 + 159 * (k % 2), 48 + 159 * ((k / 1.618033988749895 | 0) % 2), 48 + 159 * ((k / 2.618033988749895 | 0) % 2)]; })));"
    )
    done = subprocess.run([mapbox.node, "-e", script, json.dumps(idx.tolist())], capture_output=True, text=True, timeout=60)
    want = json.loads(done.stdout)
    for ids in (idx, idx.numpy()):  # the arithmetic serves torch tensors (dense path) and NumPy arrays (CPU kernel)
        r, g, b = kernel.backdrop("checkerboard", ids)
        got = [[r, int(gg), int(bb)] for gg, bb in zip(g.tolist(), b.tolist())]
        assert got == want
    assert any(-111 in row for row in want)  # the int32 wrap is reached


# ---------------------------------------------------------------------------------------------
# ignore masks: the reference's verdicts outside the mask, background inside


@pytest.mark.parametrize("diff_mask", [False, True])
def test_mask_equals_reference_outside_and_background_inside(mapbox, diff_mask):
    """Ignored pixels are drawn as background (the reference's drawing of ``(x, x)``), every other pixel
    exactly as the reference draws ``(x, y)``; the count drops by the real mismatches inside."""
    opts = {"threshold": 0.05, "diff_mask": diff_mask, "diff_color_alt": (0, 0, 255)}
    cases = [(_rgba(a), _rgba(b)) for a, b in _opaque_pairs()[:2] + _opaque_pairs()[3:4]] + _rgba_pairs()
    rng = np.random.default_rng(3)
    jobs = []
    for a, b in cases:
        jobs += [(a, b, opts), (a, a.copy(), opts), (a, b, dict(opts, diff_mask=True))]
    refs = mapbox.run(jobs)
    for i, (a, b) in enumerate(cases):
        (count, diff), (_, background), (_, only) = refs[3 * i : 3 * i + 3]
        mask = rng.random((H, W)) < 0.1  # scattered pixels
        y0, x0 = int(rng.integers(0, H // 2)), int(rng.integers(0, W // 2))
        mask[y0 : y0 + H // 3, x0 : x0 + W // 3] = True  # and a box
        want = (count - int((only[..., 3] == 255)[mask].sum()), np.where(mask[..., None], background, diff))
        _same(_ours(a, b, mask=mask, **opts), want, f"case {i}")
        _same(_ours(a, b, dense=True, mask=mask, **opts), want, f"case {i} (dense)")
    # the whole difference masked: an identical pair
    a, b = cases[0]
    _same(_ours(a, b, mask=(a != b).any(-1), **opts), (0, refs[1][1]), "all changes masked")


def test_mask_rectangles_from_a_file_of_boxes(mapbox):
    """Rectangles as a tool would pass them (an ignore list), checked against the reference."""
    a, b = _rgba(_photo("astronaut")), _rgba(_edited(_photo("astronaut")))
    rects = [(20, 30, 61, 56), (0, 100, 128, 112)]  # the green box, and the bottom rows
    (count, diff), (_, background), (_, only) = mapbox.run([(a, b, {}), (a, a.copy(), {}), (a, b, {"diff_mask": True})])
    mask = np.zeros((H, W), bool)
    for x0, y0, x1, y1 in rects:
        mask[y0:y1, x0:x1] = True
    want = (count - int((only[..., 3] == 255)[mask].sum()), np.where(mask[..., None], background, diff))
    _same(_ours(a, b, mask=rects), want, "rectangles")
    _same(_ours(a, b, mask=torch.tensor(rects)), want, "rectangles as a tensor")
    assert want[0] < count
