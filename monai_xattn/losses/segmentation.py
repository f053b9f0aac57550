"""GLoRIA's SIIM segmentation loss, 10 x focal - log(soft Dice), built from MONAI's losses.

The official code (``gloria/loss/segmentation_loss.py``, ``MixedLoss``) computes, on logits ``x`` and a binary
target ``y``:

- a sigmoid focal loss with ``gamma = 2`` and no class weight, averaged over every pixel of the batch: MONAI's
  ``FocalLoss(gamma=2, use_softmax=False)`` computes the same expression;
- a soft Dice coefficient over the whole batch flattened, ``(2 sum(p y) + 1) / (sum(p) + sum(y) + 1)`` with
  ``p = sigmoid(x)``: ``1 - DiceLoss(sigmoid=True, batch=True, smooth_nr=1, smooth_dr=1)`` per channel.

The total is ``focal_weight * focal - log(dice)`` (``focal_weight = 10``).
"""

from __future__ import annotations

import torch
from monai.losses import DiceLoss, FocalLoss
from torch import Tensor, nn

__all__ = ["FocalLogDiceLoss"]


class FocalLogDiceLoss(nn.Module):
    """``focal_weight * FocalLoss - log(soft Dice)`` on logits (GLoRIA's SIIM loss).

    Args:
        focal_weight: weight of the focal term (GLoRIA: 10).
        gamma: focal exponent (GLoRIA: 2).
        smooth: Dice smoothing added to numerator and denominator (GLoRIA: 1).
        batch: Dice over the whole batch at once (GLoRIA), else per image and averaged (then ``-log`` of each
            image's Dice is averaged).

    Inputs: logits and binary targets, ``(B, C, W, H)``; with ``C > 1`` every channel is a separate binary task
    (sigmoid, not softmax), and the Dice term is averaged over channels.
    """

    def __init__(self, focal_weight: float = 10.0, gamma: float = 2.0, smooth: float = 1.0, batch: bool = True) -> None:
        super().__init__()
        if smooth <= 0:
            raise ValueError(f"smooth must be positive (log of the Dice), got {smooth}")
        self.focal_weight = focal_weight
        self.batch = batch
        self.focal = FocalLoss(gamma=gamma, use_softmax=False, reduction="mean")
        self.dice = DiceLoss(sigmoid=True, batch=batch, smooth_nr=smooth, smooth_dr=smooth, reduction="none")

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """Loss of ``input`` logits ``(B, C, W, H)`` against ``target`` in ``{0, 1}`` of the same shape."""
        if input.shape != target.shape:
            raise ValueError(f"logits {tuple(input.shape)} and target {tuple(target.shape)} differ in shape")
        target = target.to(input.dtype)
        dice = 1.0 - self.dice(input, target)  # (C,) with batch=True, else (B, C), plus singleton spatial dims
        return self.focal_weight * self.focal(input, target) - torch.log(dice).mean()
