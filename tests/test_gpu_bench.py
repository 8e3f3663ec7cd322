"""benchmarks/gpu_bench.py stays runnable without a GPU (``--device cpu --quick``)."""

from __future__ import annotations

import json

from benchmarks import gpu_bench


def test_quick_cpu_run_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    out = tmp_path / "gpu.md"
    rc = gpu_bench.main([str(out), "--device", "cpu", "--quick", "--rounds", "1", "--filter", "ssim fwd 2x3x48x50 float32"])
    assert rc == 0
    text = out.read_text()
    assert "### ssim fwd 2x3x48x50 float32" in text
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ") and "---" not in line}
    assert "1.00×" in rows["pytorch-msssim"]  # the baseline of the ratio column
    assert "(+0.0e+00)" in rows["torchsim"] and " MiB " in rows["torchsim"]
    assert "TRITON_INTERPRET=1" in rows["torchsim-triton"]  # skipped, with the reason
    assert "skipped" in rows["fused-ssim"]
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["cases"]["ssim fwd 2x3x48x50 float32"]["torchsim"]["median_s"] > 0
