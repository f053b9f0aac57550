"""XAttnLocalizer: training scores match the head's formulas, the detector stays frozen, inference takes images only."""

from __future__ import annotations

import pytest
import torch

from monai_xattn.networks.localizer import XAttnLocalizer, create_xattn_localizer
from monai_xattn.networks.roi_detector import create_roi_detector
from monai_xattn.networks.xattn import AttributeCrossAttention, cross_attention_scores

A, D = 6, 8


def _localizer(**kwargs) -> XAttnLocalizer:
    torch.manual_seed(0)
    det = create_roi_detector(depth=18, returned_layers=(1, 2), base_anchor_shapes=((8, 8),), n_rois=5, n_negatives=4)
    return create_xattn_localizer(det, A, word_dim=D, **kwargs)


def _words(batch: int, counts: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    words, negatives = torch.randn(batch, A, D, generator=g), torch.randn(batch, A, D, generator=g)
    mask = torch.arange(A)[None] < torch.tensor(counts)[:, None]
    return words * mask[..., None], mask, negatives * mask[..., None]


def test_training_scores_follow_the_head_and_the_negatives():
    loc = _localizer().train()
    images = torch.rand(2, 1, 32, 32)
    words, mask, negatives = _words(2, [3, 0])
    out = loc(images, words=words, word_mask=mask, negative_words=negatives)
    assert {k: tuple(v.shape) for k, v in out.items() if k != "attribute_logits" and k != "alpha"} == {
        "s_roi": (2,),
        "s_roi_negative": (2,),
        "s_text": (2,),
        "s_text_negative": (2,),
        "has_words": (2,),
    }
    assert out["has_words"].tolist() == [True, False]
    assert out["attribute_logits"].shape == (2, A)
    # recompute every score from the detector's ROIs with the published formulas
    rois = loc.detector.forward_rois(images)
    head = loc.head
    phi = head.roi_embedding(rois["rois"]["r"], rois["rois"]["s"], rois["rois"]["g"])
    alpha = head.roi_weights(phi, rois["rois"]["s"], rois["rois"]["mask"])
    s_roi, s_text = cross_attention_scores(phi, alpha, words, rois["rois"]["mask"], mask)
    _, s_text_n = cross_attention_scores(phi, alpha, negatives, rois["rois"]["mask"], mask)
    neg = rois["negatives"]
    phi_n = head.roi_embedding(neg["r"], neg["s"], neg["g"])
    s_roi_n, _ = cross_attention_scores(phi_n, head.roi_weights(phi_n, neg["s"], neg["mask"]), words, neg["mask"], mask)
    for got, want in (
        (out["s_roi"], s_roi),
        (out["s_text"], s_text),
        (out["s_text_negative"], s_text_n),
        (out["s_roi_negative"], s_roi_n),
    ):
        torch.testing.assert_close(got, want)
    # negatives are other boxes than the top ROIs
    assert not torch.equal(rois["negatives"]["boxes"][0, :1], rois["rois"]["boxes"][0, :1])
    assert out["s_roi"][1] == 0 and out["s_text"][1] == 0  # no words: defined, not NaN


def test_frozen_detector_gets_no_gradient_and_keeps_eval_statistics():
    loc = _localizer().train()
    assert not loc.detector.network.training  # batch norm statistics fixed
    words, mask, negatives = _words(2, [2, 3])
    out = loc(torch.rand(2, 1, 32, 32), words=words, word_mask=mask, negative_words=negatives)
    (out["s_roi"].sum() + out["s_text"].sum() + out["attribute_logits"].sum()).backward()
    assert all(p.grad is None for p in loc.detector.parameters())
    grads = [p.grad for p in loc.head.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_fine_tuning_reaches_the_detector():
    loc = _localizer(freeze_detector=False).train()
    words, mask, negatives = _words(2, [2, 3])
    out = loc(torch.rand(2, 1, 32, 32), words=words, word_mask=mask, negative_words=negatives)
    (out["s_roi"].sum() + out["s_text"].sum()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in loc.detector.network.parameters())


def test_inference_is_image_only_and_uses_alpha():
    loc = _localizer(top_k=3).eval()
    images = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        dets = loc(images)
        rois = loc.detector.forward_rois(images)["rois"]
        alpha = loc.head(rois["r"], rois["s"], rois["g"], rois["mask"])["alpha"]
    assert len(dets) == 2
    for d, a, m in zip(dets, alpha, rois["mask"], strict=True):
        assert set(d) == {"boxes", "labels_scores", "labels", "attribute_probs", "attribute_pred"}
        assert 0 < len(d["boxes"]) <= 3 and d["boxes"].shape[1] == 4
        # the top-scored box is the ROI with the largest alpha (NMS never removes the best one)
        torch.testing.assert_close(d["labels_scores"][0], a[m].max())
        assert (d["labels_scores"][:-1] >= d["labels_scores"][1:]).all()
        assert ((d["attribute_probs"] >= 0) & (d["attribute_probs"] <= 1)).all()


def test_training_needs_all_word_inputs_and_a_matching_head():
    loc = _localizer().train()
    words, mask, _ = _words(1, [2])
    with pytest.raises(ValueError, match="negative_words"):
        loc(torch.rand(1, 1, 32, 32), words=words, word_mask=mask)
    with pytest.raises(ValueError, match="roi_dim"):
        XAttnLocalizer(loc.detector, AttributeCrossAttention(roi_dim=7, num_attributes=A, word_dim=D))


def test_detector_weights_are_loaded(tmp_path):
    torch.manual_seed(3)
    det = create_roi_detector(depth=18, returned_layers=(1, 2), base_anchor_shapes=((8, 8),), n_rois=5)
    torch.save({"network": det.network.state_dict()}, tmp_path / "model.pt")
    loc = _localizer(detector_weights=tmp_path / "model.pt")
    for (k, v), w in zip(det.network.state_dict().items(), loc.detector.network.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def test_the_module_mode_picks_scores_or_detections():
    loc = _localizer(top_k=2)
    images = torch.rand(1, 1, 32, 32)
    words, mask, negatives = _words(1, [2])
    # training mode: scores, and without the words it refuses instead of returning detections
    assert "s_roi" in loc.train()(images, words=words, word_mask=mask, negative_words=negatives)
    with pytest.raises(ValueError, match="training mode.*none"):
        loc(images)
    # eval mode: detections, and words are refused rather than silently unused
    with torch.no_grad():
        dets = loc.eval()(images)
    assert isinstance(dets, list) and set(dets[0]) >= {"boxes", "labels_scores"}
    with pytest.raises(ValueError, match="eval mode"):
        loc(images, words=words, word_mask=mask, negative_words=negatives)
    # the frozen detector keeps its eval statistics whatever the localizer's mode
    assert not loc.train().detector.network.training
