"""torchsim: image similarity metrics for PyTorch.

Batched NCHW tensor metrics on CPU or CUDA, differentiable where the math
allows, equal to the reference implementations (scikit-image, OpenCV,
scikit-learn, imagehash, pixelmatch, pytorch-msssim) to the digit.
"""

from . import functional, io, registry
from .functional import *  # noqa: F401,F403  (re-exported; see __all__)
from .functional import __all__ as _functional_all
from .losses import *  # noqa: F401,F403
from .losses import __all__ as _losses_all
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all

__version__ = "0.1.0"

__all__ = [*_functional_all, *_modules_all, *_losses_all, "functional", "registry", "__version__"]
