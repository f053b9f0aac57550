"""Attribute cross-attention head of Bhalodia et al., "Improving Pneumonia Localization via Cross-Attention
on Medical Images and Reports" (MICCAI 2021).

Notation follows the paper. For image ``I`` with ``N`` ROIs (feature ``r_i``, detector score ``s_i``,
geometry ``g_i``) and report ``T`` with ``M`` attribute words (Word2Vec vectors ``m_j``)::

    phi_i  = W1 r_i + W2 [LN(Wg g_i) | LN(Ws s_i)]
    v      = sum_i alpha_i phi_i                      -> multi-label attribute logits
    s_ij   = cos(phi_i, m_j)
    a_ij   = softmax_j(lambda_a s_ij)                 b_ij = softmax_i(lambda_b s_ij)
    A_j    = sum_i alpha_i phi_i a_ij                 B_i  = sum_j m_j b_ij
    R_text^j = cos(A_j, m_j)                          R_roi^i = cos(B_i, phi_i)
    S_text = mean_j R_text^j                          S_roi  = mean_i R_roi^i

Choices the paper leaves open (all constructor arguments, defaults documented in ``docs/xattn.md``):

- ``alpha``: ``alpha_mode="learned"`` (default, the paper's "computed weights") is ``softmax_i(f(phi_i))`` with a
  linear ``f``; ``phi`` carries the detector score through ``LN(Ws s_i)``. Only the report losses shape it (BCE
  through ``v``, ``S_text`` through ``A_j``). ``"residual"`` (ours, a labelled variant) is
  ``softmax_i(logit(s_i) + b tanh(f(phi_i)))`` with ``f`` initialised to zero: training starts from the
  detector's ranking and the report can only re-rank near ties. ``"detector"`` is the softmax of the detector's
  logits, ``"uniform"`` the plain mean.
- ``phi`` lives in the word space: by default ``embed_dim`` equals the Word2Vec size and ``m_j`` is used as
  is, so ``s_ij`` compares ROIs with the very vectors the paper names. ``text_projection=True`` adds a
  learned linear map of ``m_j`` for an ``embed_dim`` of your choice.
- lambda_a = lambda_b = 9 (SCAN's region temperature, the closest published formulation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.data.box_utils import batched_nms
from torch import nn

__all__ = [
    "cross_attention_scores",
    "masked_softmax",
    "select_boxes_by_alpha",
    "AttributeCrossAttention",
    "ALPHA_MODES",
]

ALPHA_MODES = ("residual", "learned", "detector", "uniform")


def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax over ``dim`` restricted to ``mask``; a slice with no valid entry gives all zeros (not NaN)."""
    logits = logits.masked_fill(~mask, float("-inf"))
    # a fully masked slice would be exp(-inf) / 0; shift it to a finite row and zero it afterwards
    any_valid = mask.any(dim=dim, keepdim=True)
    weights = torch.softmax(torch.where(any_valid, logits, torch.zeros_like(logits)), dim=dim)
    return weights * mask


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last dim of the valid entries; 0 where none is valid."""
    count = mask.sum(-1)
    return (values * mask).sum(-1) / count.clamp(min=1)


def cross_attention_scores(
    phi: torch.Tensor,
    alpha: torch.Tensor,
    words: torch.Tensor,
    roi_mask: torch.Tensor,
    word_mask: torch.Tensor,
    lambda_a: float = 9.0,
    lambda_b: float = 9.0,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Image-report matching scores ``S_roi(I, T)`` and ``S_text(I, T)`` of the seed's cross-attention.

    Args:
        phi: ROI features ``(B, N, D)``.
        alpha: ROI weights ``(B, N)`` (zero on invalid ROIs).
        words: attribute word vectors ``(B, M, D)``, already in phi's space.
        roi_mask: valid ROIs ``(B, N)`` bool.
        word_mask: valid words ``(B, M)`` bool (a report lists a variable number of attributes).
        lambda_a: inverse temperature of the softmax over words.
        lambda_b: inverse temperature of the softmax over ROIs.
        eps: guards the cosine of zero vectors.

    Returns:
        ``(s_roi, s_text)``, each ``(B,)``. A sample without a valid word (or ROI) scores 0 — callers drop such
        samples from the triplet loss (see :class:`monai_xattn.losses.XAttnLoss`).
    """
    roi_mask, word_mask = roi_mask.bool(), word_mask.bool()
    phi_n = F.normalize(phi, dim=-1, eps=eps)
    words_n = F.normalize(words, dim=-1, eps=eps)
    sim = phi_n @ words_n.transpose(1, 2)  # (B, N, M): s_ij
    pair_mask = roi_mask[:, :, None] & word_mask[:, None, :]
    a = masked_softmax(lambda_a * sim, pair_mask, dim=2)  # over words j
    b = masked_softmax(lambda_b * sim, pair_mask, dim=1)  # over ROIs i
    attended_rois = torch.einsum("bn,bnd,bnm->bmd", alpha, phi, a)  # A_j
    attended_words = torch.einsum("bnm,bmd->bnd", b, words)  # B_i
    r_text = F.cosine_similarity(attended_rois, words, dim=-1, eps=eps)  # (B, M)
    r_roi = F.cosine_similarity(attended_words, phi, dim=-1, eps=eps)  # (B, N)
    # an ROI with no valid word has B_i = 0; leave it out of S_roi like a padded ROI
    roi_valid = roi_mask & word_mask.any(dim=1, keepdim=True)
    return _masked_mean(r_roi, roi_valid), _masked_mean(r_text, word_mask & roi_mask.any(dim=1, keepdim=True))


class AttributeCrossAttention(nn.Module):
    """ROI feature extractor, ROI weighting, attribute classifier and cross-attention of Bhalodia et al.

    Args:
        roi_dim: size ``C`` of the pooled ROI feature ``r_i``.
        num_attributes: number of attributes ``A`` in the vocabulary (multi-label classifier outputs).
        word_dim: Word2Vec vector size.
        geometry_dim: size ``G`` of the ROI geometry vector ``g_i`` (9 for :class:`monai_xattn.networks.roi_detector.RoiDetector`).
        embed_dim: size ``D`` of ``phi``; default ``word_dim`` (phi lives in the word space).
        side_dim: width of the geometry and score embeddings before their LayerNorms.
        alpha_mode: one of :data:`ALPHA_MODES`.
        text_projection: learn a linear map of the word vectors into phi's space (needed when
            ``embed_dim != word_dim``).
        lambda_a: inverse temperature of the softmax over words.
        lambda_b: inverse temperature of the softmax over ROIs.
        residual_bound: with ``alpha_mode="residual"``, the learned term is ``residual_bound * tanh(f(phi_i))``
            (``None``: unbounded). A bound lets the report re-rank ROIs whose detector logits are within
            ``2 * residual_bound`` of each other, but not lift a background ROI over a confident detection:
            unbounded, the attribute losses pull ``alpha`` to whatever ROI shows an attribute (measured on the
            phantom: other findings, far from the pneumonia).
    """

    def __init__(
        self,
        roi_dim: int,
        num_attributes: int,
        word_dim: int = 300,
        geometry_dim: int = 9,
        embed_dim: int | None = None,
        side_dim: int = 64,
        alpha_mode: str = "learned",
        text_projection: bool = False,
        lambda_a: float = 9.0,
        lambda_b: float = 9.0,
        residual_bound: float | None = 0.25,
    ) -> None:
        super().__init__()
        if alpha_mode not in ALPHA_MODES:
            raise ValueError(f"alpha_mode must be one of {ALPHA_MODES}, got {alpha_mode!r}")
        embed_dim = word_dim if embed_dim is None else embed_dim
        if embed_dim != word_dim and not text_projection:
            raise ValueError(f"embed_dim ({embed_dim}) != word_dim ({word_dim}) needs text_projection=True")
        self.alpha_mode, self.lambda_a, self.lambda_b = alpha_mode, lambda_a, lambda_b
        self.residual_bound = residual_bound
        self.roi_proj = nn.Linear(roi_dim, embed_dim)  # W1
        self.geometry_embed = nn.Sequential(nn.Linear(geometry_dim, side_dim), nn.LayerNorm(side_dim))  # LN(Wg g)
        self.score_embed = nn.Sequential(nn.Linear(1, side_dim), nn.LayerNorm(side_dim))  # LN(Ws s)
        self.side_proj = nn.Linear(2 * side_dim, embed_dim)  # W2
        self.alpha_score = nn.Linear(embed_dim, 1) if alpha_mode in ("learned", "residual") else None
        if alpha_mode == "residual":
            # zero residual: the head starts as the detector's ranking, the report signal re-ranks from there
            nn.init.zeros_(self.alpha_score.weight)
            nn.init.zeros_(self.alpha_score.bias)
        self.classifier = nn.Linear(embed_dim, num_attributes)
        self.text_proj = nn.Linear(word_dim, embed_dim) if text_projection else nn.Identity()

    def roi_embedding(self, rois: torch.Tensor, scores: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """``phi`` ``(B, N, D)`` from ROI features ``(B, N, C)``, detector scores ``(B, N)`` (probabilities
        in [0, 1]) and geometry ``(B, N, G)``."""
        side = torch.cat([self.geometry_embed(geometry), self.score_embed(scores.unsqueeze(-1))], dim=-1)
        return self.roi_proj(rois) + self.side_proj(side)

    def roi_weights(self, phi: torch.Tensor, scores: torch.Tensor, roi_mask: torch.Tensor) -> torch.Tensor:
        """``alpha`` ``(B, N)``: non-negative, summing to 1 over the valid ROIs of each image."""
        if self.alpha_mode == "learned":
            logits = self.alpha_score(phi).squeeze(-1)
        elif self.alpha_mode == "detector":
            logits = torch.logit(scores.clamp(1e-6, 1 - 1e-6))
        elif self.alpha_mode == "residual":
            residual = self.alpha_score(phi).squeeze(-1)
            if self.residual_bound is not None:
                residual = self.residual_bound * torch.tanh(residual)
            logits = torch.logit(scores.clamp(1e-6, 1 - 1e-6)) + residual
        else:
            logits = torch.zeros_like(scores)
        return masked_softmax(logits, roi_mask.bool(), dim=1)

    def forward(
        self,
        rois: torch.Tensor,
        scores: torch.Tensor,
        geometry: torch.Tensor,
        roi_mask: torch.Tensor,
        words: torch.Tensor | None = None,
        word_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Embed the ROIs, weight them, classify attributes and, when words are given, score the match.

        Args:
            rois: ``(B, N, C)``; scores: ``(B, N)``; geometry: ``(B, N, G)``; roi_mask: ``(B, N)`` bool.
            words: Word2Vec vectors of the report's attributes ``(B, M, word_dim)``; ``None`` at inference.
            word_mask: ``(B, M)`` bool.

        Returns:
            ``phi`` (B, N, D), ``alpha`` (B, N), ``attribute_logits`` (B, A), and with words
            ``s_roi`` (B,) and ``s_text`` (B,).
        """
        phi = self.roi_embedding(rois, scores, geometry)
        alpha = self.roi_weights(phi, scores, roi_mask)
        pooled = torch.einsum("bn,bnd->bd", alpha, phi)  # v
        out = {"phi": phi, "alpha": alpha, "attribute_logits": self.classifier(pooled)}
        if words is not None:
            if word_mask is None:
                raise ValueError("word_mask is required with words")
            out["s_roi"], out["s_text"] = self.match(phi, alpha, roi_mask, words, word_mask)
        return out

    def match(
        self,
        phi: torch.Tensor,
        alpha: torch.Tensor,
        roi_mask: torch.Tensor,
        words: torch.Tensor,
        word_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(S_roi, S_text)`` for already embedded ROIs against raw word vectors ``(B, M, word_dim)``."""
        return cross_attention_scores(
            phi, alpha, self.text_proj(words), roi_mask, word_mask, self.lambda_a, self.lambda_b
        )


def select_boxes_by_alpha(
    boxes: torch.Tensor,
    alpha: torch.Tensor,
    roi_mask: torch.Tensor,
    detector_scores: torch.Tensor | None = None,
    top_k: int = 5,
    alpha_threshold: float = 0.0,
    score_mode: str = "alpha",
    nms_thresh: float = 0.5,
) -> list[dict[str, torch.Tensor]]:
    """Image-only inference of the paper: the ROI weights pick the boxes, then NMS removes duplicates.

    Per image, the ``top_k`` valid ROIs by ``alpha`` with ``alpha >= alpha_threshold`` are kept and scored by
    ``alpha`` (``score_mode="alpha"``, the paper) or ``alpha * detector score`` (``"alpha_x_detector"``), then
    suppressed with MONAI's NMS. All images go through one batched NMS (the image index is the NMS group).

    Args:
        boxes: ROI boxes ``(B, N, 4)`` StandardMode.
        alpha: ROI weights ``(B, N)``.
        roi_mask: valid ROIs ``(B, N)`` bool.
        detector_scores: ``(B, N)`` probabilities; required for ``"alpha_x_detector"``.
        top_k: ROIs kept per image before NMS.
        alpha_threshold: minimum alpha of a kept ROI.
        score_mode: ``"alpha"`` or ``"alpha_x_detector"``.
        nms_thresh: IoU above which the lower-scored of two boxes is dropped.

    Returns:
        One dict per image with ``boxes`` ``(K, 4)`` and ``scores`` ``(K,)``, highest score first.
    """
    if score_mode == "alpha":
        scores = alpha
    elif score_mode == "alpha_x_detector":
        if detector_scores is None:
            raise ValueError("score_mode='alpha_x_detector' needs detector_scores")
        scores = alpha * detector_scores
    else:
        raise ValueError(f"score_mode must be 'alpha' or 'alpha_x_detector', got {score_mode!r}")
    batch, n_rois = alpha.shape
    keep = roi_mask.bool() & (alpha >= alpha_threshold)
    ranked_alpha = alpha.masked_fill(~keep, float("-inf"))
    top = ranked_alpha.topk(min(top_k, n_rois), dim=1).indices  # (B, k)
    chosen = torch.zeros_like(keep).scatter_(1, top, True) & keep
    image_index = torch.arange(batch, device=alpha.device)[:, None].expand(batch, n_rois)[chosen]
    flat_boxes, flat_scores = boxes[chosen], scores[chosen]
    kept = batched_nms(flat_boxes, flat_scores, image_index, nms_thresh)
    kept_image = image_index[kept]
    return [
        {"boxes": flat_boxes[kept[kept_image == b]], "scores": flat_scores[kept[kept_image == b]]} for b in range(batch)
    ]
