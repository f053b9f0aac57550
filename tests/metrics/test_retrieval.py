"""Precision@K / Hit@K on hand-computable rankings."""

import pytest
import torch

from monai_xattn.metrics.retrieval import encode_labels, hit_at_k, precision_at_k, retrieval_metrics


def test_precision_at_k_by_hand():
    # 2 queries, gallery of 4 with classes a a b b
    sim = torch.tensor(
        [
            [0.9, 0.1, 0.8, 0.2],  # ranking: 0(a) 2(b) 3(b) 1(a) for a query of class a
            [0.5, 0.6, 0.7, 0.1],
        ]
    )  # ranking: 2(b) 1(a) 0(a) 3(b) for a query of class b
    q, g = ["a", "b"], ["a", "a", "b", "b"]
    p = precision_at_k(sim, q, g, k=[1, 2, 3, 4])
    # query 0 hits: 1 0 0 1 -> P@1..4 = 1, 1/2, 1/3, 2/4; query 1 hits: 1 0 0 1 -> the same
    torch.testing.assert_close(p, torch.tensor([1.0, 0.5, 1 / 3, 0.5]))
    h = hit_at_k(sim, q, g, k=[1, 2])
    torch.testing.assert_close(h, torch.tensor([1.0, 1.0]))
    sim2 = sim.clone()
    sim2[1] = torch.tensor([0.9, 0.8, 0.1, 0.2])  # query 1 (b): ranking 0(a) 1(a) 3(b) 2(b)
    torch.testing.assert_close(hit_at_k(sim2, q, g, k=[1, 2, 3]), torch.tensor([0.5, 0.5, 1.0]))
    torch.testing.assert_close(precision_at_k(sim2, q, g, k=2), torch.tensor([0.25]))


def test_both_directions_and_errors():
    sim = torch.tensor([[1.0, 0.0, 0.2], [0.0, 1.0, 0.9]])
    out = retrieval_metrics(sim, [0, 1], [0, 1, 1], k=(1, 2))
    assert out["image_to_text"] == {"P@1": 1.0, "P@2": 0.75}
    # text->image: report 0 ranks image 0 first (hit), reports 1 and 2 rank image 1 first (hit); P@2 = 1/2
    assert out["text_to_image"] == {"P@1": 1.0, "P@2": 0.5}
    with pytest.raises(ValueError, match="K must be in 1..3"):
        precision_at_k(sim, [0, 1], [0, 1, 1], k=5)
    with pytest.raises(ValueError, match="2 queries x 3 gallery"):
        precision_at_k(sim, [0, 1, 1], [0, 1, 1], k=1)
    a, b = encode_labels(["x", "y"], ["y", "z", "x"])
    assert a.tolist() == [0, 1] and b.tolist() == [1, 2, 0]
