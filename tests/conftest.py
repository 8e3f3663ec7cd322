import numpy as np
import pytest
import torch


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
    return torch.device(request.param)


@pytest.fixture(scope="session")
def photos():
    """Real photographs from skimage.data as float64 HxWxC arrays in [0, 1] (gray ones HxW)."""
    from skimage import data

    return {
        "astronaut": data.astronaut() / 255.0,
        "coffee": data.coffee() / 255.0,
        "chelsea": data.chelsea() / 255.0,
        "camera": data.camera() / 255.0,
    }

