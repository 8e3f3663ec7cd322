"""The quick agreement report: every convention and metric family within its stated tolerance.

``python -m benchmarks.agreement --quick`` on one photograph crop and two distortions, in
float32 and float64. References installed by the test extra must run (a skip there is a
failure); ffmpeg and TensorFlow may be absent and skip with a reason. Then the section on
references that claim the same convention and disagree: its numbers are the references' own,
and torchsim's presets differ from each other by the same amounts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import agreement

OPTIONAL = ("ffmpeg", "tensorflow")


@pytest.fixture(scope="module")
def results():
    return agreement.run(quick=True)


def test_every_row_is_within_its_tolerance(results):
    failed = [
        f"{r.row.family} {r.row.convention} {r.dtype}: max abs {r.max_abs:.3e}, max rel {r.max_rel:.3e} > {r.tolerance}"
        for r in results
        if not r.passed
    ]
    assert not failed, "\n".join(failed)


def test_only_optional_references_skip(results):
    skipped = [f"{r.row.family} {r.row.convention}: {r.skipped}" for r in results if r.skipped and r.row.package not in OPTIONAL]
    assert not skipped, "\n".join(skipped)
    for r in results:
        if r.skipped:
            assert r.skipped.strip(), "a skip must give its reason"
        else:
            assert r.images > 0, f"{r.row.family} {r.row.convention} {r.dtype} scored no image"


def test_every_preset_and_family_has_a_row(results):
    from torchsim import conventions, registry

    covered = {(r.row.family, r.row.convention) for r in results}
    for metric in conventions.METRICS:
        for name in conventions.names(metric):
            assert (metric, name) in covered, f"no agreement row for {metric}(convention={name!r})"
    families = {r.row.family for r in results}
    assert set(registry.names(kind=("score", "count", "hash"))) - {"ms_ssim_l1"} <= families


def test_report_renders(results):
    text = agreement.markdown(results, quick=True, seconds=1.0)
    assert text.startswith("# Agreement with the reference implementations")
    assert text.count("\n| `") == len(results)
    assert "**FAIL**" not in text
    assert "## Where references that claim the same convention disagree" in text
    assert text.count("| SSIM of Wang et al. 2004") == 1 and "| MS-SSIM of Wang et al. 2003" in text


def test_cross_checks_cover_every_claim(results):
    checks = agreement.cross_checks(results)
    ran = {(r.row.family, r.row.convention) for r in results if not r.skipped}
    for claim, metric, names in agreement.CLAIMS:
        expected = {n for n in names[1:] if (metric, n) in ran}
        got = {c.other.row.convention for c in checks if c.claim == claim}
        assert got == expected, claim
    for c in checks:
        assert c.images > 0 and np.isfinite(c.max_abs) and 0 <= c.mean_abs <= c.max_abs
    by = {(c.claim.split()[0], c.other.row.convention): c for c in checks}
    # the known disagreements are there, and so are the references that agree
    assert by[("SSIM", "torchmetrics")].max_abs > 1e-3 and by[("SSIM", "basicsr")].max_abs < 1e-9
    assert by[("PSNR", "torchmetrics")].pooled and by[("PSNR", "torchmetrics")].max_abs > 1e-2
    assert 0 < by[("PSNR", "piq")].max_abs < 1e-3 and by[("PSNR", "matlab")].max_abs < 1e-9


def test_references_differ_as_torchsims_presets_do(results):
    """Each cross-check's difference between two references is, within both rows' tolerances, the
    difference between torchsim's two presets on the same photographs: the table measures the
    conventions, not an accident of one reference."""
    images = agreement.photos(quick=True)
    for c in agreement.cross_checks(results):
        diffs = []
        for photo in images:
            if photo.name not in c.other.values:
                continue
            values = []
            for res in (c.base, c.other):
                x, y = agreement._prepare(photo, res.row, agreement._DTYPES[res.dtype], True)
                values.append(np.asarray(torch.as_tensor(res.row.ours(x, y)).double()).reshape(-1))
            base, other = values
            if c.pooled:
                base = np.asarray([base.mean()])
            diffs.append(np.abs(other - base))
        ours = float(np.concatenate(diffs).max())
        slack = sum(
            r.row.tol[r.dtype][0] + r.row.tol[r.dtype][1] * max(float(np.abs(v).max()) for v in r.values.values())
            for r in (c.base, c.other)
        )
        assert abs(ours - c.max_abs) <= slack, f"{c.claim}: {c.other.row.convention} {c.max_abs:.3e} vs presets {ours:.3e}"


def test_the_committed_report_covers_every_preset_and_passes():
    """docs/AGREEMENT.md (the full run, committed) has a passing row for every preset (TensorFlow and
    ffmpeg may be skipped rows) and the section on references that disagree; regenerate it with ``python -m benchmarks.agreement --out docs/AGREEMENT.md``."""
    import pathlib

    from torchsim import conventions

    text = (pathlib.Path(__file__).parents[1] / "docs" / "AGREEMENT.md").read_text(encoding="utf-8")
    assert text.startswith("# Agreement with the reference implementations")
    assert "by `python -m benchmarks.agreement` (" in text  # the full run, not --quick
    assert "**FAIL**" not in text
    for metric in conventions.METRICS:
        for name in conventions.names(metric):
            rows = [ln for ln in text.splitlines() if ln.startswith(f"| `{metric}` | `{name}` |")]
            assert rows, f"docs/AGREEMENT.md has no row for {metric}(convention={name!r})"
            ran = [ln for ln in rows if ln.rstrip().endswith("| pass |")]
            optional = all("skipped:" in ln for ln in rows) and any(f" {p} " in " ".join(rows) for p in ("TensorFlow", "ffmpeg"))
            assert ran or optional, f"docs/AGREEMENT.md: {metric} {name} did not run"
    section = text.split("## Where references that claim the same convention disagree")[1]
    assert section.count("\n| ") > 10
