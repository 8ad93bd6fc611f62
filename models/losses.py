"""Multi-class focal loss whose class weights (alpha) actually apply.

For a sample of class ``y`` with predicted probabilities ``p = softmax(logits)``:

    loss = alpha[y] * (1 - p[y]) ** gamma * (-log p[y])

and the batch loss is the mean over samples (``reduction="mean"``; Lin et al. 2017, eq. 5, with
a per-class alpha). ``p[y]`` is the model's own probability: the reference bot took it as
``exp(-weighted CE)``, which folded the class weight into the focusing term (rare classes looked
less confident than they were) and ignored its ``alpha`` argument altogether (its bug 19).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn


class FocalLoss(nn.Module):
    """Focal loss over logits ``[B, C]`` and integer targets ``[B]``.

    Args:
        alpha: per-class weights (length C), or None for 1.
        gamma: focusing exponent (0 gives weighted cross-entropy).
        reduction: ``mean`` over samples, ``sum``, or ``none`` (per-sample losses).
    """

    def __init__(self, alpha: Sequence[float] | torch.Tensor | None = None, gamma: float = 2.0,
                 reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss gamma must be >= 0, got {gamma}")
        a = None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        if a is not None and (a.ndim != 1 or bool((a < 0).any())):
            raise ValueError(f"focal loss alpha must be a 1-D list of weights >= 0, got {alpha}")
        self.register_buffer("alpha", a)
        self.gamma = float(gamma)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        logp_t = logp.gather(1, target.long().unsqueeze(1)).squeeze(1)
        p_t = logp_t.exp()
        loss = -((1.0 - p_t) ** self.gamma) * logp_t
        if self.alpha is not None:
            loss = loss * self.alpha.to(logits.device)[target.long()]
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


def class_weights(counts: Sequence[int] | NDArray[np.int64],
                  signal_boost: float = 2.0) -> list[float]:
    """The reference bot's weights: ``N / (C * count_c)``, BUY and SELL times ``signal_boost``.

    A class absent from the training set gets weight 1 (nothing to balance).
    """
    c = np.asarray(counts, dtype=np.float64)
    total, k = c.sum(), c.shape[0]
    w = total / (k * np.maximum(c, 1.0))
    w[1:] *= signal_boost  # classes 1 (BUY) and 2 (SELL)
    w[c == 0] = 1.0
    return [float(x) for x in w]
