"""Focal loss against hand-computed values; alpha really applies; the reference class weights."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.losses import FocalLoss, class_weights

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
TARGET = torch.tensor([0, 2])


def _by_hand(alpha, gamma):
    """Worked out with plain math, one sample at a time (no torch)."""
    out = []
    for row, y in (((2.0, 0.0, -1.0), 0), ((0.5, 0.5, 0.0), 2)):
        z = sum(math.exp(v) for v in row)
        p = math.exp(row[y]) / z
        out.append(alpha[y] * (1 - p) ** gamma * -math.log(p))
    return out


def test_hand_computed_value():
    # Sample 0: p = e^2 / (e^2 + 1 + e^-1) = 7.389056 / 8.756935 = 0.843795;
    #   loss = 0.25 * (0.156205)^2 * 0.169846 = 0.00103606.
    # Sample 1: p = 1 / (2 e^0.5 + 1) = 1 / 4.297443 = 0.232697;
    #   loss = 3.0 * (0.767303)^2 * 1.458020 = 2.575248.
    alpha, gamma = (0.25, 2.0, 3.0), 2.0
    per = FocalLoss(alpha, gamma, reduction="none")(LOGITS, TARGET)
    assert per.tolist() == pytest.approx([0.00103606, 2.575248], rel=1e-5)
    assert per.tolist() == pytest.approx(_by_hand(alpha, gamma), rel=1e-6)
    mean = FocalLoss(alpha, gamma)(LOGITS, TARGET)
    assert float(mean) == pytest.approx((0.00103606 + 2.575248) / 2, rel=1e-5)
    assert float(FocalLoss(alpha, gamma, reduction="sum")(LOGITS, TARGET)) == pytest.approx(
        0.00103606 + 2.575248, rel=1e-5)


def test_alpha_is_applied_and_only_to_its_class():
    base = FocalLoss((1.0, 1.0, 1.0), 2.0, reduction="none")(LOGITS, TARGET)
    heavier = FocalLoss((1.0, 1.0, 10.0), 2.0, reduction="none")(LOGITS, TARGET)
    assert float(heavier[1]) == pytest.approx(10 * float(base[1]), rel=1e-6)  # class 2 sample
    assert float(heavier[0]) == float(base[0])  # class 0 sample untouched
    # the focusing term uses the model's own p (not exp(-weighted CE) as the reference bot):
    # with gamma = 0 the loss is exactly alpha-weighted cross-entropy per sample
    ce = F.cross_entropy(LOGITS, TARGET, reduction="none")
    g0 = FocalLoss((0.5, 1.0, 4.0), 0.0, reduction="none")(LOGITS, TARGET)
    assert g0.tolist() == pytest.approx((ce * torch.tensor([0.5, 4.0])).tolist(), rel=1e-6)


def test_no_alpha_and_gamma_zero_is_cross_entropy():
    got = FocalLoss(None, 0.0)(LOGITS, TARGET)
    assert float(got) == pytest.approx(float(F.cross_entropy(LOGITS, TARGET)), rel=1e-6)


def test_gradient_flows_and_focuses_on_hard_samples():
    logits = LOGITS.clone().requires_grad_(True)
    FocalLoss(None, 2.0)(logits, TARGET).backward()
    g = logits.grad.abs().sum(dim=1)
    assert float(g[1]) > 10 * float(g[0])  # the confident, correct sample barely pushes


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(None, -1.0)
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss((1.0, -2.0, 1.0))


def test_reference_class_weights():
    # N / (3 count), BUY and SELL x 2: 1000 / 2400, 1000 / 300 * 2, 1000 / 300 * 2
    assert class_weights([800, 100, 100]) == pytest.approx([1000 / 2400, 20 / 3, 20 / 3])
    assert class_weights([900, 100, 0]) == pytest.approx([1000 / 2700, 2 * 1000 / 300, 1.0])
