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

