"""The whole cross-attention localizer of Bhalodia et al. (MICCAI 2021): a :class:`RoiDetector` proposing ROIs and
an :class:`AttributeCrossAttention` head weighting them.

The module's mode picks what ``forward`` computes, as in torchvision's ``GeneralizedRCNN``. Training
(``model.train()``, word vectors required) returns the four matching scores of Eq. 1 -- ``S_roi(I, T)``,
``S_roi(I_n, T)``, ``S_text(I, T)``, ``S_text(I, T_n)`` -- and the attribute logits, which
:class:`monai_xattn.engines.xattn.XAttnTrainLoss` turns into ``L_trip + L_BCE``. Inference takes images only
(``model.eval()``, no words): the ROI weights ``alpha`` pick the boxes
(:func:`~monai_xattn.networks.xattn.select_boxes_by_alpha`), and the attribute classifier gives the predicted
attributes. The output is a list of per-image dicts in ``RetinaNetDetector``'s format, so the same metrics and
writers serve the detector and the localizer.

Images follow MONAI's convention: ``(B, C, W, H)`` (or a list of ``(C, W, H)``), boxes StandardMode
``[x0, y0, x1, y1]`` in that frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from monai_xattn.networks.roi_detector import RoiDetector, load_detector_weights
from monai_xattn.networks.xattn import AttributeCrossAttention, select_boxes_by_alpha

__all__ = ["XAttnLocalizer", "create_xattn_localizer"]


def _roi_dim(detector: RoiDetector) -> int | None:
    """Channels of the FPN maps the ROIs are pooled from (``None`` for a feature extractor that does not say)."""
    network = getattr(detector.network, "module", detector.network)
    return getattr(getattr(network, "feature_extractor", None), "out_channels", None)


class XAttnLocalizer(nn.Module):
    """A (by default frozen) ROI detector + the attribute cross-attention head.

    Args:
        detector: the ROI detector (a trained ``cxr_retinanet`` checkpoint in practice).
        head: the cross-attention head; its ``roi_dim`` must match the detector's ROI feature size.
        freeze_detector: keep the detector fixed (the paper's setting); ``False`` fine-tunes it through ``r_i``
            and ``s_i`` with the cross-attention loss only (report datasets carry no boxes for its own loss).
        top_k, alpha_threshold, score_mode, nms_thresh: inference selection, see
            :func:`~monai_xattn.networks.xattn.select_boxes_by_alpha`.
        attribute_threshold: probability above which an attribute counts as predicted (``attribute_pred``).
    """

    def __init__(
        self,
        detector: RoiDetector,
        head: AttributeCrossAttention,
        freeze_detector: bool = True,
        top_k: int = 5,
        alpha_threshold: float = 0.0,
        score_mode: str = "alpha",
        nms_thresh: float = 0.5,
        attribute_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        roi_dim = _roi_dim(detector)
        if roi_dim is not None and head.roi_proj.in_features != roi_dim:
            raise ValueError(
                f"head roi_dim ({head.roi_proj.in_features}) != the detector's ROI feature size ({roi_dim})."
            )
        self.detector, self.head = detector, head
        self.detector.freeze(freeze_detector)
        self.top_k, self.alpha_threshold, self.score_mode = top_k, alpha_threshold, score_mode
        self.nms_thresh, self.attribute_threshold = nms_thresh, attribute_threshold

    def forward(
        self,
        images: Tensor | list[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
        *,
        words: Tensor | None = None,
        word_mask: Tensor | None = None,
        negative_words: Tensor | None = None,
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Scores in training mode, detections in eval mode (image-only inference).

        Args:
            images: ``(B, C, W, H)`` or a list of ``(C, W, H)``.
            targets: ignored; accepted so that the detector's engine pieces (``network(images, targets)``, e.g.
                :class:`~monai_xattn.engines.detection.DetectionPrepareBatch`) drive the localizer unchanged.
            words: training only: Word2Vec vectors of each report's attributes ``(B, M, word_dim)`` (padded).
            word_mask: training only: ``(B, M)`` bool, valid words.
            negative_words: training only: ``(B, M, word_dim)``, each word replaced by its nearest absent attribute
                (``T_n``).

        Returns:
            Training (``self.training``): dict ``s_roi``, ``s_roi_negative`` (``S_roi(I_n, T)``), ``s_text``,
            ``s_text_negative`` (``S_text(I, T_n)``), each ``(B,)``; ``has_words`` ``(B,)``; ``attribute_logits``
            ``(B, A)``; ``alpha`` ``(B, N)``.
            Eval: one dict per image with ``boxes`` ``(K, 4)``, ``labels_scores`` ``(K,)``, ``labels`` ``(K,)``
            (all 0, pneumonia), ``attribute_probs`` ``(A,)`` and ``attribute_pred`` ``(A,)``.

        Raises:
            ValueError: training without all three word inputs; words passed in eval mode (inference is
                image-only, so they would be silently unused).
        """
        given = [
            name
            for name, v in (("words", words), ("word_mask", word_mask), ("negative_words", negative_words))
            if v is not None
        ]
        if self.training and len(given) < 3:
            raise ValueError(
                "in training mode the localizer needs words, word_mask and negative_words (T_n) together, got "
                f"{given or 'none'}; call .eval() for image-only inference."
            )
        if not self.training and given:
            raise ValueError(f"in eval mode the localizer takes images only, got {given}; call .train() for scores.")
        out = self.detector.forward_rois(images)
        rois = out["rois"]
        head = self.head(rois["r"], rois["s"], rois["g"], rois["mask"])
        if not self.training:
            return self._detections(rois, head)
        word_mask = word_mask.bool()
        s_roi, s_text = self.head.match(head["phi"], head["alpha"], rois["mask"], words, word_mask)
        # S(I_n, T): the detector's lowest-ranked ROIs, embedded and weighted by the same head
        neg = out["negatives"]
        phi_n = self.head.roi_embedding(neg["r"], neg["s"], neg["g"])
        alpha_n = self.head.roi_weights(phi_n, neg["s"], neg["mask"])
        s_roi_negative, _ = self.head.match(phi_n, alpha_n, neg["mask"], words, word_mask)
        _, s_text_negative = self.head.match(head["phi"], head["alpha"], rois["mask"], negative_words, word_mask)
        return {
            "s_roi": s_roi,
            "s_roi_negative": s_roi_negative,
            "s_text": s_text,
            "s_text_negative": s_text_negative,
            "has_words": word_mask.any(dim=1),
            "attribute_logits": head["attribute_logits"],
            "alpha": head["alpha"],
        }

    def _detections(self, rois: Mapping[str, Tensor], head: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
        selected = select_boxes_by_alpha(
            rois["boxes"],
            head["alpha"],
            rois["mask"],
            detector_scores=rois["s"],
            top_k=self.top_k,
            alpha_threshold=self.alpha_threshold,
            score_mode=self.score_mode,
            nms_thresh=self.nms_thresh,
        )
        probs = torch.sigmoid(head["attribute_logits"])
        return [
            {
                "boxes": sel["boxes"],
                "labels_scores": sel["scores"],
                "labels": torch.zeros(len(sel["boxes"]), dtype=torch.long, device=sel["boxes"].device),
                "attribute_probs": p,
                "attribute_pred": p >= self.attribute_threshold,
            }
            for sel, p in zip(selected, probs, strict=True)
        ]


def create_xattn_localizer(
    detector: RoiDetector,
    num_attributes: int,
    word_dim: int = 300,
    detector_weights: str | os.PathLike | Mapping[str, Tensor] | None = None,
    freeze_detector: bool = True,
    head_kwargs: Mapping | None = None,
    **selection_kwargs,
) -> XAttnLocalizer:
    """Build the localizer on ``detector``, loading its weights first (``weights_only=True``).

    Args:
        detector: e.g. from :func:`~monai_xattn.networks.roi_detector.create_roi_detector` with the settings the
            checkpoint was trained with.
        num_attributes: size of the attribute vocabulary.
        word_dim: Word2Vec size (``phi``'s size unless ``head_kwargs`` sets ``embed_dim``).
        detector_weights: a ``cxr_retinanet`` checkpoint (file or state dict); ``None`` keeps the detector as is.
        freeze_detector: see :class:`XAttnLocalizer`.
        head_kwargs: more arguments of :class:`~monai_xattn.networks.xattn.AttributeCrossAttention`.
        selection_kwargs: ``top_k``, ``alpha_threshold``, ``score_mode``, ``nms_thresh``, ``attribute_threshold``.
    """
    if detector_weights is not None:
        load_detector_weights(detector, detector_weights)
    roi_dim = _roi_dim(detector)
    if roi_dim is None:
        raise ValueError(
            "cannot read the ROI feature size from the detector's feature extractor; build the head yourself."
        )
    head = AttributeCrossAttention(roi_dim, num_attributes, word_dim=word_dim, **dict(head_kwargs or {}))
    return XAttnLocalizer(detector, head, freeze_detector=freeze_detector, **selection_kwargs)
