"""Chunk-parallel CPU execution (``torchsim.ops.parallel``): same results as the serial loop, in order."""

from __future__ import annotations

import threading
import time

import pytest
import torch

import torchsim
from torchsim.ops import parallel
from torchsim.ops.tiling import RowTiles

from ..helpers import photo_pair, photo_u8, to_nchw

CPU = torch.device("cpu")


@pytest.fixture
def two_threads(monkeypatch):
    """Two intra-op threads (the pool needs two), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.delenv("TORCHSIM_CHUNK_WORKERS", raising=False)
    yield
    torch.set_num_threads(before)


def test_commits_run_in_chunk_order_on_the_workers(two_threads):
    """Computes finish out of order (even chunks sleep); commits still come 0, 1, 2, ..."""
    order, threads = [], set()

    def compute(i, scratch):
        threads.add(threading.get_ident())
        scratch.setdefault("seen", []).append(i)
        if i % 2 == 0:
            time.sleep(0.01)
        return i * i

    def commit(i, result):
        assert result == i * i
        order.append(i)

    parallel.run_chunks(12, compute, commit, CPU)
    assert order == list(range(12))
    assert threading.get_ident() not in threads  # the work ran on the pool, not in the caller
    assert len(threads) == 2


def test_workers_run_single_threaded_ops(two_threads):
    seen = []
    parallel.run_chunks(4, lambda i, s: seen.append(torch.get_num_threads()), lambda i, r: None, CPU)
    assert seen == [1, 1, 1, 1]
    assert torch.get_num_threads() == 2  # the caller keeps its own count


def test_one_worker_or_one_chunk_runs_serially_in_the_caller(two_threads, monkeypatch):
    me = threading.get_ident()
    ran = []
    parallel.run_chunks(1, lambda i, s: ran.append(threading.get_ident()), lambda i, r: None, CPU)
    monkeypatch.setenv("TORCHSIM_CHUNK_WORKERS", "1")
    assert parallel.chunk_workers() == 1
    parallel.run_chunks(3, lambda i, s: ran.append(threading.get_ident()), lambda i, r: None, CPU)
    assert ran == [me] * 4


def test_an_error_in_a_chunk_reaches_the_caller_and_the_pool_still_works(two_threads):
    def compute(i, scratch):
        if i == 3:
            raise ValueError("chunk 3 failed")
        return i

    with pytest.raises(ValueError, match="chunk 3 failed"):
        parallel.run_chunks(8, compute, lambda i, r: None, CPU)
    out = []
    parallel.run_chunks(5, lambda i, s: i, lambda i, r: out.append(r), CPU)
    assert out == [0, 1, 2, 3, 4]


def _ssim_grads(fn, x, y, **kw):
    x = x.clone().requires_grad_()
    y = y.clone().requires_grad_()
    v = fn(x, y, data_range=1.0, **kw)
    v.sum().backward()
    return v.detach(), x.grad, y.grad


@pytest.mark.parametrize("fn", [torchsim.ssim, torchsim.ms_ssim], ids=["ssim", "ms_ssim"])
def test_ssim_bit_identical_to_the_serial_kernel(two_threads, monkeypatch, fn):
    """Values and both input gradients, on a photograph with JPEG artefacts, equal bit for bit."""
    ref, test = photo_pair(photo_u8("astronaut", rgb=True), "jpeg", 200, 232)
    x, y = to_nchw(ref, torch.float32) / 255, to_nchw(test, torch.float32) / 255
    x = torch.cat([x.roll(17 * i, -1) for i in range(6)])  # 18 planes of 2 tiles: 3 chunks
    y = torch.cat([y.roll(17 * i, -1) for i in range(6)])
    assert len(RowTiles(x, 11).chunks) > 1  # the case exercises several chunks
    parallel_run = _ssim_grads(fn, x, y)
    monkeypatch.setenv("TORCHSIM_CHUNK_WORKERS", "1")
    serial_run = _ssim_grads(fn, x, y)
    for a, b in zip(parallel_run, serial_run):
        assert torch.equal(a, b)


def test_ssim_map_and_inference_mode(two_threads):
    """The map is written in order; inference-mode tensors are accumulated inside inference mode."""
    ref, test = photo_pair(photo_u8("coffee", rgb=True), "noise", 160, 200)
    x, y = to_nchw(ref, torch.float32) / 255, to_nchw(test, torch.float32) / 255
    x, y = torch.cat([x] * 3), torch.cat([y] * 3)
    with torch.inference_mode():
        value, smap = torchsim.ssim(x, y, data_range=1.0, return_map=True)
    assert torch.allclose(smap.mean(dim=(1, 2, 3)), value, atol=1e-6)
