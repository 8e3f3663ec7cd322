#!/usr/bin/env bash
# The GPU check in one go (at most 8 minutes on one GPU): the CUDA tests, then the GPU benchmark.
#
#   bash benchmarks/gpu.sh [OUT.md]        (default: benchmarks/gpu_results.md)
#
# 1. pytest -m cuda: every CUDA test (tests/test_cuda.py, the device-parametrised tests, the
#    compiled Triton kernels of tests/test_triton.py against the reference kernel);
# 2. benchmarks/gpu_bench.py: SSIM and MS-SSIM forward and forward+backward, float32 and
#    bfloat16, torchsim (default and backend="triton") next to pytorch-msssim, piq,
#    torchmetrics, kornia and fused-ssim, with peak memory, and the Triton tile sweep;
#    writes the markdown table to OUT.md (and OUT.json), case by case.
#
# fused-ssim / fussim build against CUDA and are not test extras: where neither imports, this
# script tries `pip install fussim` once (a machine without a package index skips it quickly);
# on an offline machine, pass a folder of wheels or sdists prepared elsewhere
# (pip download fussim -d DIR) as TORCHSIM_GPU_WHEELS=DIR. Without them the table says
# "skipped" for that column. Exit status: non-zero if the tests or the benchmark failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/gpu_results.md}"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET  # the compiled kernels, not the interpreter

if ! python -c "import torch, torchsim, pytest" 2>/dev/null; then
    echo "gpu.sh: $(command -v python) cannot import torch, torchsim and pytest: activate the environment first (pip install -e '.[test,bench]')"
    exit 2
fi
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu.sh: no CUDA device visible to torch; nothing to do (use: python -m benchmarks.gpu_bench OUT.md --device cpu --quick)"
    exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
python -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"

if ! python -c "import fused_ssim" 2>/dev/null && ! python -c "import fussim" 2>/dev/null; then
    if [ -n "${TORCHSIM_GPU_WHEELS:-}" ]; then
        timeout 120 python -m pip install -q --no-index --find-links "$TORCHSIM_GPU_WHEELS" fussim \
            || echo "gpu.sh: fussim did not install from $TORCHSIM_GPU_WHEELS (the benchmark skips fused-ssim)"
    else
        timeout 90 python -m pip install -q --timeout 5 --retries 0 fussim 2>/dev/null \
            || echo "gpu.sh: fussim not installable here (the benchmark skips fused-ssim)"
    fi
fi

status=0
start=$SECONDS
echo "== CUDA tests"
timeout 210 python -m pytest -q -p no:cacheprovider -m cuda tests -rfE || status=1
echo "== GPU benchmark (tests took $((SECONDS - start)) s)"
timeout 240 python -m benchmarks.gpu_bench "$out" --device cuda --sweep || status=1
echo "== done in $((SECONDS - start)) s; table: $out"
exit $status
