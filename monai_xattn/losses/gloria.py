"""GLoRIA global and local image-report contrastive losses (Huang et al., ICCV 2021), batched.

Temperatures follow the official code's names and act as multipliers (the paper numbers them differently
and writes them as divisors):

- ``temp1`` (4.0) sharpens the word-to-region attention,
- ``temp2`` (5.0) scales word relevance before the log-sum-exp over words,
- ``temp3`` (10.0) scales the image-caption logits fed to the cross-entropy.

Global loss, for image codes ``v_i`` and report codes ``t_j``:
``S_ij = temp3 * cos(v_i, t_j)``, ``L = CE(S, diag) + CE(S^T, diag)``.

Local loss: ``S = temp3 * R`` with ``R`` the word-region matching score of every (image, caption) pair
(:func:`monai_xattn.networks.gloria_attention.local_similarity`, where its formulas, batching and padding rules
are written), ``L = CE(S, diag) + CE(S^T, diag)``.

The official training loss's word slots are ``[CLS]`` + the words (``cap_len = n_words + 1``);
:class:`monai_xattn.networks.GloriaTextEncoder` reproduces that with ``official_word_slots=True`` (only the mask
changes, not this loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# local_similarity is the networks' word-region attention (retrieval and figures use it too); re-exported here
from monai_xattn.networks.gloria_attention import LOCAL_AGGREGATIONS, LOCAL_ATTENTIONS, local_similarity

__all__ = ["global_loss", "local_similarity", "local_loss", "GloriaLoss"]


def _contrastive(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of a square (image, caption) logit matrix against its diagonal, both directions."""
    labels = torch.arange(logits.shape[0], device=logits.device)
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels)


def global_loss(
    img: torch.Tensor, txt: torch.Tensor, temp3: float = 10.0, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Global image-report contrastive loss.

    Args:
        img: image codes, ``(B, D)``.
        txt: report codes of the same ``B`` studies, ``(B, D)``; row ``i`` pairs with image ``i``.
        temp3: multiplier of the cosine similarities.
        eps: lower bound of the norm product, as the official code.

    Returns:
        ``(loss_i2t, loss_t2i)``: mean cross-entropy of picking each image's report among the batch's reports,
        and of picking each report's image.
    """
    if img.ndim != 2 or txt.ndim != 2 or img.shape != txt.shape:
        raise ValueError(
            f"global_loss expects img and txt of the same shape (B, D), got {tuple(img.shape)} and {tuple(txt.shape)}"
        )
    norms = img.norm(dim=1, keepdim=True) * txt.norm(dim=1, keepdim=True).t()
    logits = temp3 * (img @ txt.t()) / norms.clamp_min(eps)
    return _contrastive(logits)


def local_loss(
    regions: torch.Tensor,
    words: torch.Tensor,
    word_mask: torch.Tensor,
    temp1: float = 4.0,
    temp2: float = 5.0,
    temp3: float = 10.0,
    agg: str = "sum",
    attention: str = "double",
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local word-region contrastive loss over all (image, caption) pairs of a batch.

    Args:
        regions: local image features, ``(B, D, H, W)``.
        words: word embeddings, ``(B, D, T)``; caption ``i`` pairs with image ``i``.
        word_mask: ``(B, T)`` bool, True for real words.
        temp1, temp2, temp3, agg, attention, chunk_size: see :func:`local_similarity` and the module docstring.

    Returns:
        ``(loss_i2t, loss_t2i, attention)`` with ``attention`` ``(B, T, H, W)``: each image's attention over its
        regions for each word of its own caption (zero at padded words).
    """
    if regions.shape[0] != words.shape[0]:
        raise ValueError(
            f"local_loss pairs image i with caption i: got {regions.shape[0]} images and {words.shape[0]} captions"
        )
    scores, attn = local_similarity(regions, words, word_mask, temp1, temp2, agg, attention, chunk_size)
    loss_i2t, loss_t2i = _contrastive(temp3 * scores)
    return loss_i2t, loss_t2i, attn


class GloriaLoss(nn.Module):
    """Weighted sum of the GLoRIA global and local losses (official weights 1 and 1).

    Args:
        global_weight: weight of ``global_i2t + global_t2i``.
        local_weight: weight of ``local_i2t + local_t2i``.
        temp1, temp2, temp3, agg, attention, chunk_size: forwarded to :func:`local_loss` (``temp3`` also to
            :func:`global_loss`).
    """

    def __init__(
        self,
        global_weight: float = 1.0,
        local_weight: float = 1.0,
        temp1: float = 4.0,
        temp2: float = 5.0,
        temp3: float = 10.0,
        agg: str = "sum",
        attention: str = "double",
        chunk_size: int | None = None,
    ) -> None:
        super().__init__()
        if agg not in LOCAL_AGGREGATIONS:
            raise ValueError(f"agg must be one of {LOCAL_AGGREGATIONS}, got {agg!r}")
        if attention not in LOCAL_ATTENTIONS:
            raise ValueError(f"attention must be one of {LOCAL_ATTENTIONS}, got {attention!r}")
        self.global_weight = global_weight
        self.local_weight = local_weight
        self.temp1, self.temp2, self.temp3 = temp1, temp2, temp3
        self.agg, self.attention, self.chunk_size = agg, attention, chunk_size

    def forward(
        self,
        image_local: torch.Tensor,
        image_global: torch.Tensor,
        words: torch.Tensor,
        word_mask: torch.Tensor,
        text_global: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """Compute the loss terms.

        Args:
            image_local: ``(B, D, H, W)``. image_global: ``(B, D)``.
            words: ``(B, D, T)``. word_mask: ``(B, T)`` bool. text_global: ``(B, D)``.

        Returns:
            ``{"loss", "global_i2t", "global_t2i", "local_i2t", "local_t2i", "attention"}``; ``loss`` is the
            weighted total, ``attention`` ``(B, T, H, W)`` as in :func:`local_loss`.
        """
        g_i2t, g_t2i = global_loss(image_global, text_global, self.temp3)
        l_i2t, l_t2i, attn = local_loss(
            image_local, words, word_mask, self.temp1, self.temp2, self.temp3, self.agg, self.attention, self.chunk_size
        )
        total = self.global_weight * (g_i2t + g_t2i) + self.local_weight * (l_i2t + l_t2i)
        return {
            "loss": total,
            "global_i2t": g_i2t,
            "global_t2i": g_t2i,
            "local_i2t": l_i2t,
            "local_t2i": l_t2i,
            "attention": attn,
        }
