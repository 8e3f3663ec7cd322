"""compute() under torch.distributed: two gloo processes on 127.0.0.1, uneven shards.

Each rank streams its own shard (different batch sizes, one rank with far
fewer images, one metric seen by one rank only); every rank must get the
single-process value on the concatenated data.
"""

import os

import pytest
import torch
import torch.multiprocessing as mp

import torchsim
from tests.helpers import free_port, pair
from torchsim.modules import Metric

pytestmark = pytest.mark.distributed

WORLD = 2
N = 9
SHARDS = {0: (0, 7), 1: (7, 9)}  # rank 0: 7 images, rank 1: 2 images
BATCHES = {0: [3, 4], 1: [1, 1]}


def _modules():
    # Every metric module, on 32x32 float images in [0, 1] (larger where its record's
    # min_size asks for more: MS-SSIM).
    out = {}
    todo = list(Metric.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        kwargs = {"data_range": 1.0} if "data_range" in cls.__init__.__code__.co_varnames else {}
        out[cls.__name__] = (cls, kwargs)
    return out


def _data(size=32):
    return pair(N, 3, size, size, dtype=torch.float32)


def _value(out):
    return out[0] if isinstance(out, tuple) else out


def _worker(rank, port, out_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        results = {}
        lo, hi = SHARDS[rank]
        for name, (cls, kwargs) in sorted(_modules().items()):
            x, y = _data(max(32, cls.record.min_size(**kwargs)))
            metric = cls(**kwargs)
            try:
                for xb, yb in zip(x[lo:hi].split(BATCHES[rank]), y[lo:hi].split(BATCHES[rank])):
                    metric.update(xb, yb)
            except ValueError:  # a module that cannot score this input: skipped on every rank alike
                continue
            results[name] = metric.compute()
        # a metric that only rank 1 updates
        only = torchsim.MSE()
        if rank == 1:
            x, y = _data()
            only.update(x, y)
        results["only_rank1"] = only.compute()
        # nobody updated: every rank raises, nobody hangs
        try:
            torchsim.PSNR(data_range=1.0).compute()
            results["empty"] = "no error"
        except RuntimeError as exc:
            results["empty"] = str(exc)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_compute_all_reduces_uneven_shards(tmp_path):
    # fork where there is one: the children reuse the imported torch (spawn re-imports it, seconds
    # per process); each child runs single-threaded.
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True, start_method=method)
    per_rank = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    expected = {}
    for name, (cls, kwargs) in _modules().items():
        x, y = _data(max(32, cls.record.min_size(**kwargs)))
        try:
            expected[name] = _value(cls(**kwargs)(x, y)).double()
        except ValueError:
            continue
    assert {"MSE", "PSNR", "SSIM", "MSSSIM", "CosineSimilarity"} <= set(expected)
    x, y = _data()
    for r, results in enumerate(per_rank):
        for name, want in expected.items():
            torch.testing.assert_close(results[name], want, rtol=1e-6, atol=1e-7, msg=f"rank {r}: {name}")
        torch.testing.assert_close(results["only_rank1"], torchsim.mse(x, y).double(), rtol=1e-6, atol=1e-7)
        assert "PSNR.compute(): no images seen on any rank" in results["empty"]
