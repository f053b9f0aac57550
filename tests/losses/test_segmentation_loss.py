"""FocalLogDiceLoss against GLoRIA's formula written out: 10 * sigmoid focal (gamma 2) - log(batch soft Dice)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_xattn.losses import FocalLogDiceLoss


def _reference(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = torch.sigmoid(logits) * target + (1 - torch.sigmoid(logits)) * (1 - target)
    focal = ((1 - p_true) ** 2 * bce).mean()
    p = torch.sigmoid(logits).flatten()
    t = target.flatten()
    dice = (2 * (p * t).sum() + 1) / (p.sum() + t.sum() + 1)
    return 10 * focal - torch.log(dice)


def test_matches_gloria_formula_and_has_gradients():
    torch.manual_seed(0)
    logits = (3 * torch.randn(3, 1, 16, 12, dtype=torch.float64)).requires_grad_()
    target = (torch.rand(3, 1, 16, 12, dtype=torch.float64) > 0.8).to(torch.float64)
    loss = FocalLogDiceLoss()(logits, target)
    torch.testing.assert_close(loss, _reference(logits, target))
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_lower_for_better_predictions_and_finite_on_empty_targets():
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 2:5, 2:5] = 1
    loss = FocalLogDiceLoss()
    good, bad = 8 * (2 * target - 1), -8 * (2 * target - 1)
    assert loss(good, target) < loss(torch.zeros_like(target), target) < loss(bad, target)
    empty = torch.zeros(2, 1, 8, 8)
    assert torch.isfinite(loss(torch.full_like(empty, -8.0), empty))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        FocalLogDiceLoss()(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
