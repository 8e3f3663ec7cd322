"""torchsim: image similarity metrics for PyTorch.

Batched NCHW tensor metrics on CPU or CUDA, differentiable where the math
allows, equal to the reference implementations (scikit-image, OpenCV,
scikit-learn, imagehash, pixelmatch, pytorch-msssim) to the digit.

The metrics (and torch) are imported on first use of any of them, so that
``import torchsim.cli`` and ``torchsim --help`` start without torch.
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any, List

__version__ = "0.1.0"

if TYPE_CHECKING:  # what the lazy loader below publishes, for type checkers and IDEs
    from . import conventions, functional, io, registry
    from .functional import *  # noqa: F401,F403
    from .losses import *  # noqa: F401,F403
    from .modules import *  # noqa: F401,F403


def _load() -> None:
    """Import the metrics (and torch) and publish their public names and ``__all__`` here."""
    names: List[str] = []
    for sub in ("functional", "modules", "losses"):
        module = importlib.import_module(f"{__name__}.{sub}")
        names += module.__all__
        globals().update({name: getattr(module, name) for name in module.__all__})
    globals()["__all__"] = [*names, "functional", "registry", "conventions", "__version__"]


def __getattr__(name: str) -> Any:
    if name.startswith("__") and name != "__all__":  # probes such as __wrapped__
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name.isidentifier() and importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: only it
        return importlib.import_module(f"{__name__}.{name}")
    _load()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> List[str]:
    _load()
    return sorted(globals())
