"""What only a CUDA device can check: no host-device syncs, and torch.compile (inductor) on the GPU.

Every other CUDA check is the family's own test run on the ``device`` fixture (tests/conftest.py):
values and gradients equal to the CPU's, half / autocast / uint8 / per-image ranges /
channels_last / degenerate images in tests/test_pixel.py and tests/test_ssim.py, modules and losses
in tests/test_modules.py and tests/test_losses.py, the reference comparisons in tests/reference/.
Every test here carries the ``cuda`` marker; tests/conftest.py skips them without a GPU.
"""

from __future__ import annotations

import pytest
import torch

import torchsim
from tests.helpers import metric_cases, pair

pytestmark = pytest.mark.cuda


@pytest.mark.parametrize("name, fn, kw, shape", metric_cases(exclude=("ssim-downsample",)))
def test_cuda_no_host_device_sync(name, fn, kw, shape):
    """SPEC: no host-device syncs in the hot path (forward and backward)."""
    x, y = pair(*shape, dtype=torch.float32)
    x = x.cuda().requires_grad_(True)
    y = y.cuda()
    fn(x, y, **kw).backward()  # warm-up: lazy CUDA/cuBLAS/cuDNN init may sync once
    x.grad = None
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = fn(x, y, **kw)
        out.backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()


def test_cuda_compile_equals_eager():
    torch._dynamo.reset()
    x, y = pair(2, 3, 32, 33, dtype=torch.float32, device="cuda")
    compiled = torch.compile(torchsim.ssim, fullgraph=True)
    torch.testing.assert_close(compiled(x, y, data_range=1.0), torchsim.ssim(x, y, data_range=1.0), rtol=1e-5, atol=1e-6)
