"""The quick agreement report: every convention and metric family within its stated tolerance.

``python -m benchmarks.agreement --quick`` on one photograph crop and two distortions, in
float32 and float64. References installed by the test extra must run (a skip there is a
failure); ffmpeg, TensorFlow and libvmaf may be absent and skip with a reason.
"""

from __future__ import annotations

import pytest

from benchmarks import agreement

OPTIONAL = ("ffmpeg", "tensorflow", "libvmaf")


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
