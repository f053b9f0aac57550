"""Cross-attention head: the batched formulas against a per-element transcription of the paper."""

import math

import pytest
import torch

from monai_xattn.losses.xattn import XAttnLoss, triplet_margin_loss
from monai_xattn.networks.xattn import AttributeCrossAttention, cross_attention_scores, select_boxes_by_alpha


def _cos(u, v):
    return float(torch.dot(u, v) / (u.norm() * v.norm()))


def reference_scores(phi, alpha, words, lambda_a, lambda_b):
    """The seed's formulas, one element at a time, for ONE image with only valid ROIs and words."""
    n_rois, n_words = phi.shape[0], words.shape[0]
    s = [[_cos(phi[i], words[j]) for j in range(n_words)] for i in range(n_rois)]
    a = [
        [
            math.exp(lambda_a * s[i][j]) / sum(math.exp(lambda_a * s[i][k]) for k in range(n_words))
            for j in range(n_words)
        ]
        for i in range(n_rois)
    ]
    b = [
        [
            math.exp(lambda_b * s[i][j]) / sum(math.exp(lambda_b * s[k][j]) for k in range(n_rois))
            for j in range(n_words)
        ]
        for i in range(n_rois)
    ]
    big_a = [sum(alpha[i] * phi[i] * a[i][j] for i in range(n_rois)) for j in range(n_words)]
    big_b = [sum(words[j] * b[i][j] for j in range(n_words)) for i in range(n_rois)]
    r_text = [_cos(big_a[j], words[j]) for j in range(n_words)]
    r_roi = [_cos(big_b[i], phi[i]) for i in range(n_rois)]
    return sum(r_roi) / n_rois, sum(r_text) / n_words


@pytest.mark.parametrize("lambdas", [(9.0, 9.0), (1.0, 4.0)])
def test_scores_match_per_element_transcription_with_padding(lambdas):
    g = torch.Generator().manual_seed(0)
    batch, n_max, m_max, dim = 4, 6, 5, 7
    phi = torch.randn(batch, n_max, dim, generator=g, dtype=torch.float64)
    words = torch.randn(batch, m_max, dim, generator=g, dtype=torch.float64)
    n_valid, m_valid = [6, 3, 1, 4], [5, 2, 1, 3]
    roi_mask = torch.arange(n_max)[None] < torch.tensor(n_valid)[:, None]
    word_mask = torch.arange(m_max)[None] < torch.tensor(m_valid)[:, None]
    alpha = torch.rand(batch, n_max, generator=g, dtype=torch.float64) * roi_mask
    alpha = alpha / alpha.sum(1, keepdim=True)
    # garbage in the padding must not leak into the result
    phi = phi.masked_fill(~roi_mask[..., None], 1e3)
    words = words.masked_fill(~word_mask[..., None], -1e3)
    s_roi, s_text = cross_attention_scores(phi, alpha, words, roi_mask, word_mask, *lambdas)
    for k in range(batch):
        n, m = n_valid[k], m_valid[k]
        ref_roi, ref_text = reference_scores(phi[k, :n], alpha[k, :n], words[k, :m], *lambdas)
        assert s_roi[k].item() == pytest.approx(ref_roi, abs=1e-6)
        assert s_text[k].item() == pytest.approx(ref_text, abs=1e-6)


def test_no_words_gives_zero_scores_and_finite_gradients():
    phi = torch.randn(2, 4, 5, dtype=torch.float64, requires_grad=True)
    words = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    roi_mask = torch.ones(2, 4, dtype=torch.bool)
    word_mask = torch.tensor([[True, True, False], [False, False, False]])
    alpha = torch.full((2, 4), 0.25, dtype=torch.float64)
    s_roi, s_text = cross_attention_scores(phi, alpha, words, roi_mask, word_mask)
    assert s_roi[1] == 0 and s_text[1] == 0 and s_roi[0] != 0
    (s_roi.sum() + s_text.sum()).backward()
    assert torch.isfinite(phi.grad).all() and torch.isfinite(words.grad).all()


def test_matching_words_score_higher_than_unrelated_words():
    # ROIs that ARE the word vectors must match their words better than random words do
    g = torch.Generator().manual_seed(1)
    words = torch.randn(1, 4, 16, generator=g)
    phi = words.clone()
    alpha = torch.full((1, 4), 0.25)
    mask = torch.ones(1, 4, dtype=torch.bool)
    s_roi, s_text = cross_attention_scores(phi, alpha, words, mask, mask)
    s_roi_rand, s_text_rand = cross_attention_scores(phi, alpha, torch.randn(1, 4, 16, generator=g), mask, mask)
    assert s_roi > s_roi_rand and s_text > s_text_rand


@pytest.mark.parametrize("alpha_mode", ["residual", "learned", "detector", "uniform"])
def test_head_shapes_alpha_masking_and_backward(alpha_mode):
    torch.manual_seed(0)
    head = AttributeCrossAttention(roi_dim=32, num_attributes=22, word_dim=24, geometry_dim=8, alpha_mode=alpha_mode)
    batch, n, m = 3, 5, 4
    roi_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    word_mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=torch.bool)
    out = head(
        torch.randn(batch, n, 32),
        torch.rand(batch, n),
        torch.rand(batch, n, 8),
        roi_mask,
        torch.randn(batch, m, 24),
        word_mask,
    )
    assert out["phi"].shape == (batch, n, 24) and out["attribute_logits"].shape == (batch, 22)
    assert torch.allclose(out["alpha"].sum(1), torch.ones(batch)) and (out["alpha"][~roi_mask] == 0).all()
    loss = XAttnLoss()(
        out["s_roi"],
        out["s_roi"].detach() * 0.5,
        out["s_text"],
        out["s_text"].detach() * 0.5,
        word_mask.any(1),
        out["attribute_logits"],
        torch.zeros(batch, 22),
    )
    loss["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)


def test_residual_alpha_starts_at_the_detector_ranking_and_reranks_near_ties_only():
    torch.manual_seed(0)
    kwargs = {"roi_dim": 8, "num_attributes": 3, "word_dim": 6}
    residual = AttributeCrossAttention(alpha_mode="residual", residual_bound=0.25, **kwargs)
    detector = AttributeCrossAttention(alpha_mode="detector", **kwargs)
    rois, geometry = torch.randn(2, 4, 8), torch.rand(2, 4, 9)
    # logits: image 0 -> 0.41, 0.20, 0.0, -2.2 (ROI 1 within 2 * 0.25 of ROI 0, ROI 3 far below)
    scores = torch.tensor([[0.6, 0.55, 0.5, 0.1], [0.3, 0.8, 0.1, 0.6]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], dtype=torch.bool)
    alpha = residual(rois, scores, geometry, mask)["alpha"]
    assert torch.allclose(alpha, detector(rois, scores, geometry, mask)["alpha"]) and alpha[0].argmax() == 0

    def push_up(roi: int) -> torch.Tensor:
        # the zero-initialised residual still gets a gradient: train it to favour one ROI of image 0
        head = AttributeCrossAttention(alpha_mode="residual", residual_bound=0.25, **kwargs)
        optimizer = torch.optim.SGD(head.alpha_score.parameters(), lr=5.0)
        for _ in range(30):
            optimizer.zero_grad()
            (-head(rois, scores, geometry, mask)["alpha"][0, roi].log()).backward()
            optimizer.step()
        return head(rois, scores, geometry, mask)["alpha"][0]

    assert push_up(1).argmax() == 1  # a near tie is re-ranked
    assert push_up(3).argmax() != 3  # a low-scored ROI cannot overtake: the residual is bounded


def test_head_without_words_is_image_only():
    head = AttributeCrossAttention(roi_dim=8, num_attributes=3, word_dim=6)
    out = head(torch.randn(1, 2, 8), torch.rand(1, 2), torch.rand(1, 2, 9), torch.ones(1, 2, dtype=torch.bool))
    assert set(out) == {"phi", "alpha", "attribute_logits"}


def test_embed_dim_other_than_word_dim_needs_projection():
    with pytest.raises(ValueError, match="text_projection"):
        AttributeCrossAttention(roi_dim=8, num_attributes=3, word_dim=6, embed_dim=10)
    head = AttributeCrossAttention(roi_dim=8, num_attributes=3, word_dim=6, embed_dim=10, text_projection=True)
    out = head(
        torch.randn(1, 2, 8),
        torch.rand(1, 2),
        torch.rand(1, 2, 9),
        torch.ones(1, 2, dtype=torch.bool),
        torch.randn(1, 3, 6),
        torch.ones(1, 3, dtype=torch.bool),
    )
    assert out["s_roi"].shape == (1,)


def test_triplet_margin_loss_values():
    pos, neg = torch.tensor([0.9, 0.1, 0.5]), torch.tensor([0.1, 0.3, 0.45])
    # hinge: [0, 0.4, 0.15]; with the middle sample invalid the mean is over samples 0 and 2
    assert triplet_margin_loss(pos, neg, 0.2).item() == pytest.approx((0.4 + 0.15) / 3)
    assert triplet_margin_loss(pos, neg, 0.2, torch.tensor([True, False, True])).item() == pytest.approx(0.075)
    assert triplet_margin_loss(pos, neg, 0.2, torch.zeros(3, dtype=torch.bool)).item() == 0


def test_loss_without_bce_is_the_ablation():
    s = torch.tensor([0.5, 0.5])
    out = XAttnLoss(margin=0.2, use_bce=False)(s, s, s, s, torch.tensor([True, True]))
    assert out["bce"] == 0 and out["loss"].item() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="attribute_logits"):
        XAttnLoss()(s, s, s, s, torch.tensor([True, True]))


def test_select_boxes_by_alpha_topk_mask_and_nms():
    boxes = torch.tensor(
        [
            [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [20, 20, 30, 30]],
            [[0, 0, 5, 5], [10, 10, 20, 20], [0, 0, 5, 5], [30, 30, 40, 40]],
        ],
        dtype=torch.float32,
    )
    alpha = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.6, 0.1]])
    roi_mask = torch.tensor([[True, True, True, True], [True, True, False, True]])
    out = select_boxes_by_alpha(boxes, alpha, roi_mask, top_k=3, nms_thresh=0.5)
    # image 0: top-3 by alpha are ROIs 0, 1, 2; ROI 1 overlaps ROI 0 (IoU 0.68) and is suppressed
    assert out[0]["boxes"].tolist() == [[0, 0, 10, 10], [50, 50, 60, 60]]
    assert out[0]["scores"].tolist() == pytest.approx([0.4, 0.2])
    # image 1: ROI 2 (highest alpha) is padding and must never be chosen
    assert out[1]["boxes"].tolist()[0] == [10, 10, 20, 20] and len(out[1]["boxes"]) == 3
    combined = select_boxes_by_alpha(
        boxes, alpha, roi_mask, torch.tensor([[0.1, 1, 1, 1], [1, 1, 1, 1.0]]), top_k=1, score_mode="alpha_x_detector"
    )
    assert combined[0]["scores"].tolist() == pytest.approx([0.04])
    with pytest.raises(ValueError, match="detector_scores"):
        select_boxes_by_alpha(boxes, alpha, roi_mask, score_mode="alpha_x_detector")
