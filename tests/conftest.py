"""Fixtures for every test file: ``device`` (CPU, and CUDA where there is one), real
photographs. The helpers themselves are in tests/helpers.py."""

import numpy as np
import pytest
import torch

from tests.helpers import DISTORTIONS, PHOTOS, load_photos


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """Test images are tiny: intra-op threads gain nothing there, and on a busy 2-core
    runner OpenMP threads spin against each other (conv2d up to ~50x slower). The
    benchmarks, not the tests, measure threaded speed."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=DEVICES)
def device(request):
    """Every family's device tests run once per device: the CUDA run is the same test, and
    skips (marker ``cuda``) where there is no GPU."""
    return torch.device(request.param)


@pytest.fixture(scope="session")
def photos():
    """Real photographs from skimage.data as float64 HxWxC arrays in [0, 1] (gray ones HxW)."""
    return load_photos()


@pytest.fixture(scope="session")
def photo_pairs(photos):
    """``{(photo, distortion): (reference, distorted)}``: every photo downscaled by 4 (float64 in
    [0, 1]) with each distortion, clipped to [0, 1]."""
    out = {}
    for name in PHOTOS:
        img = photos[name][::4, ::4]
        for dist, fn in DISTORTIONS.items():
            out[(name, dist)] = (img, np.clip(fn(img), 0, 1))
    return out
