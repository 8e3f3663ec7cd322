"""Compute kernels behind the metrics: custom ops for the compiler, Triton, and NumPy CPU kernels.

* :mod:`.ssim_op` — ``torchsim::ssim`` / ``torchsim::ssim_backward``: the SSIM kernel as one
  opaque op for ``torch.compile`` and ``torch.export``, and the backend choice
  (``"auto"``, ``"torch"``, ``"triton"``).
* :mod:`.triton_ssim` — fused SSIM forward and backward in Triton (CUDA; the CPU runs
  them only through Triton's interpreter, for tests). Imports ``triton`` lazily.
* :mod:`.pixelmatch` — pixelmatch's per-pixel arithmetic (for torch tensors and NumPy arrays)
  and its sparse CPU kernel on NumPy arrays (``torchsim diff`` runs it without torch).
* :mod:`.histogram_op` — ``torchsim::soft_histogram`` / ``torchsim::soft_joint_histogram`` (and
  their ``_backward`` ops): the soft-histogram kernels of :mod:`torchsim.ops.binning` as opaque
  ops for the compiler.
"""
