"""Training loss of the attribute cross-attention head (Bhalodia et al., MICCAI 2021, Eq. 1)::

    L_trip = max(beta - S_roi(I, T) + S_roi(I_n, T), 0) + max(beta - S_text(I, T) + S_text(I, T_n), 0)
    L      = L_trip + L_BCE

``I_n`` are the detector's lowest-ranked ROIs of the same image and ``T_n`` the report's attributes each
replaced by its nearest Word2Vec neighbour that the report does not contain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["triplet_margin_loss", "XAttnLoss"]


def triplet_margin_loss(
    positive: torch.Tensor, negative: torch.Tensor, margin: float, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of ``max(margin - positive + negative, 0)`` over the ``valid`` samples (0 when none is).

    Args:
        positive: matching scores of the true pairs ``(B,)``.
        negative: matching scores of the negative pairs ``(B,)``.
        margin: beta.
        valid: ``(B,)`` bool; samples to include.
    """
    hinge = F.relu(margin - positive + negative)
    if valid is None:
        return hinge.mean()
    valid = valid.to(hinge.dtype)
    return (hinge * valid).sum() / valid.sum().clamp(min=1)


class XAttnLoss(nn.Module):
    """``L = L_trip(ROI) + L_trip(text) + bce_weight * L_BCE``.

    A study whose report names no attribute has no ``T`` to match: it is left out of both triplet terms and
    still trains the attribute classifier (its target is all zeros). ``use_bce=False`` is the paper's
    "Proposed w/o classification" ablation.

    Args:
        margin: beta of Eq. 1 (default 0.2, SCAN's margin; the paper does not give it).
        bce_weight: weight of the attribute classification term.
        use_bce: include the attribute classification term.
    """

    def __init__(self, margin: float = 0.2, bce_weight: float = 1.0, use_bce: bool = True) -> None:
        super().__init__()
        self.margin, self.bce_weight, self.use_bce = margin, bce_weight, use_bce

    def forward(
        self,
        s_roi: torch.Tensor,
        s_roi_negative_rois: torch.Tensor,
        s_text: torch.Tensor,
        s_text_negative_words: torch.Tensor,
        has_words: torch.Tensor,
        attribute_logits: torch.Tensor | None = None,
        attribute_targets: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Args: scores ``(B,)`` each; has_words ``(B,)`` bool; logits and multi-hot targets ``(B, A)``.

        Returns:
            ``loss`` (scalar to optimise), ``triplet_roi``, ``triplet_text`` and ``bce`` (0 when unused).
        """
        triplet_roi = triplet_margin_loss(s_roi, s_roi_negative_rois, self.margin, has_words)
        triplet_text = triplet_margin_loss(s_text, s_text_negative_words, self.margin, has_words)
        bce = triplet_roi.new_zeros(())
        if self.use_bce:
            if attribute_logits is None or attribute_targets is None:
                raise ValueError("use_bce=True needs attribute_logits and attribute_targets")
            bce = F.binary_cross_entropy_with_logits(attribute_logits, attribute_targets.to(attribute_logits.dtype))
        loss = triplet_roi + triplet_text + self.bce_weight * bce
        return {"loss": loss, "triplet_roi": triplet_roi, "triplet_text": triplet_text, "bce": bce}
