"""Losses: ``1 - f``, ``-f`` or ``f`` over the functional core, as the registry record says.

Every registry record that names a ``loss_name`` has a class here, built from the
record: its constructor takes exactly the function's keyword options with the same
defaults — except the record's ``grad_options`` (soft histograms: ``bandwidth=1.0``),
which make the function differentiable — checked when the loss is built. Every loss is
differentiable and reduces with ``reduction="mean"`` by default. Nothing here does
arithmetic on pixels.

As in :mod:`torchsim.modules`, the classes are written out for readers and type checkers;
a record that names a loss without a class statement here gets one generated.
"""

from __future__ import annotations

from typing import Any, Dict

import torch

from ._base import FunctionModule, export_classes
from ._common import reduce
from ._validation import check_positive
from .registry import MetricRecord

_FORMS = {
    "1 - f": lambda v: 1.0 - v,
    "-f": lambda v: -v,
    "f": lambda v: v,
}


class Loss(FunctionModule):
    """Base of the losses: ``forward(x, y) = reduce(form(fn(x, y, reduction="none")))``.

    ``form`` is the record's ``loss_form`` (``1 - f`` for similarities in [0, 1], ``-f``
    for unbounded ones, ``f`` for a function that is a loss already); the per-image
    losses are reduced with the ``reduction`` option.
    """

    @classmethod
    def _defaults(cls, record: MetricRecord) -> Dict[str, Any]:
        return {**record.options, **record.grad_options}

    @classmethod
    def _summary(cls, record: MetricRecord) -> str:
        value = record.loss_form.replace("f", f"{record.name}(x, y)")
        changed = ", ".join(f"``{k}={v!r}``" for k, v in record.grad_options.items())
        text = f"``{value}`` per image, reduced (mean by default); see :func:`torchsim.{record.name}`."
        if changed:
            text += f" Defaults as the function's, but {changed} (differentiable)."
        return text

    def _check_options(self, options: Dict[str, Any]) -> None:
        super()._check_options(options)
        if "bandwidth" in options:  # histogram metrics have gradients only with soft histograms
            check_positive(type(self).__name__, "bandwidth", options["bandwidth"])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        value = self.record.function(x, y, **dict(self.options, reduction="none"))
        return reduce(_FORMS[self.record.loss_form](value), self.options["reduction"])


class SSIMLoss(Loss, metric="ssim"):
    r"""``1 - SSIM(x, y)`` per image, reduced (mean by default).

    Takes the keyword arguments of :func:`torchsim.ssim` (``data_range`` is
    required for floating inputs).

    Example:
        >>> import torch, torchsim
        >>> loss_fn = torchsim.SSIMLoss(data_range=1.0)
        >>> pred = torch.rand(2, 3, 32, 32, requires_grad=True)
        >>> loss = loss_fn(pred, torch.rand(2, 3, 32, 32))
        >>> loss.backward()
    """


class MSSSIMLoss(Loss, metric="ms_ssim"):
    r"""``1 - MS-SSIM(x, y)`` per image, reduced. Keyword arguments of :func:`torchsim.ms_ssim`."""


class CosineSimilarityLoss(Loss, metric="cosine_similarity"):
    r"""``1 - cos(x, y)`` per image (flattened images), reduced."""


class MSSSIML1Loss(Loss, metric="ms_ssim_l1"):
    r"""MS-SSIM + Gaussian-weighted L1 mix of Zhao et al. (2017), :math:`\alpha = 0.84`.

    :func:`torchsim.ms_ssim_l1` per image, reduced: ``alpha (1 - MS-SSIM(x, y)) +
    (1 - alpha) mean(G_l1_sigma * |x - y|) / data_range``.

    Example:
        >>> import torch, torchsim
        >>> loss_fn = torchsim.MSSSIML1Loss(data_range=1.0, kernel_size=3, weights=(0.5, 0.5))
        >>> pred = torch.rand(2, 3, 16, 16, requires_grad=True)
        >>> loss_fn(pred, torch.rand(2, 3, 16, 16)).backward()

    References:
        H. Zhao, O. Gallo, I. Frosio, J. Kautz, "Loss Functions for Image
        Restoration with Neural Networks", IEEE TCI 3(1), 2017.
        doi:10.1109/TCI.2016.2644865
    """


class NMILoss(Loss, metric="normalized_mutual_information"):
    r"""``1 - NMI(x, y)`` per image, reduced; soft histograms by default (``bandwidth=1.0``).

    Takes the keyword arguments of :func:`torchsim.normalized_mutual_information`.
    The default soft joint histogram (triangular kernel, one bin half-width) makes the
    loss differentiable; fewer ``bins`` (e.g. 32-64) give smoother, less sparse
    joint histograms on small images.

    Note:
        A soft joint histogram spreads every pair of values over neighbouring bin pairs,
        so even identical images have a joint histogram that is not diagonal: their soft
        NMI is below 1 (about 0.8 at 256 bins and 0.7 at 32 bins for random 64×64 images,
        closer to 1 with a smaller bandwidth) and the loss's minimum, still at ``x == y``, is
        above 0. For
        the same reason two constant images that sit on a bin boundary score 0. Use
        ``bandwidth=0`` with :func:`torchsim.normalized_mutual_information` to *report* NMI.

    Example:
        >>> import torch, torchsim
        >>> loss_fn = torchsim.NMILoss(bins=32)
        >>> pred = torch.rand(2, 1, 32, 32, requires_grad=True)
        >>> loss = loss_fn(pred, torch.rand(2, 1, 32, 32))
        >>> loss.backward()
    """


class MILoss(Loss, metric="mutual_information"):
    r"""``-MI(x, y)`` (nats) per image, reduced; soft histograms by default (``bandwidth=1.0``).

    Takes the keyword arguments of :func:`torchsim.mutual_information`.
    """


__all__ = ["Loss", *export_classes(Loss, "loss_name", globals())]
