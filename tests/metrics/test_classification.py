"""Table-3 metrics: one-vs-rest counts, top-1 accuracy, macro and positive-class summaries."""

import math

import pytest
import torch

from monai_xattn.metrics.classification import classification_metrics, confusion_counts


def test_counts_and_metrics_by_hand():
    target = [0, 0, 1, 1, 2, 2]
    pred = [0, 1, 1, 1, 2, 0]
    counts = confusion_counts(pred, target, 3)
    # class 0: TP 1 (#0), FP 1 (#5), FN 1 (#1), TN 3
    assert counts[0].tolist() == [1, 1, 3, 1]
    out = classification_metrics(pred, target, ["a", "b", "c"])
    assert out["a"]["sensitivity"] == 0.5 and out["a"]["specificity"] == 0.75
    assert out["b"]["ppv"] == pytest.approx(2 / 3) and out["b"]["npv"] == 1.0
    assert out["b"]["f1"] == pytest.approx(0.8)  # 2 * (2/3 * 1) / (2/3 + 1)
    assert out["summary"]["accuracy"] == pytest.approx(4 / 6)  # top-1, not one-vs-rest
    assert out["summary"]["sensitivity"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    binary = classification_metrics([1, 1, 0, 0], [1, 0, 0, 0], ["Normal", "Pneumonia"], positive="Pneumonia")
    assert binary["summary"] == {**binary["Pneumonia"], "accuracy": 0.75}
    assert binary["summary"]["ppv"] == 0.5 and binary["summary"]["specificity"] == pytest.approx(2 / 3)


def test_undefined_ratio_is_nan_and_bad_input_raises():
    out = classification_metrics([0, 0], [0, 0], ["a", "b"])
    assert math.isnan(out["b"]["sensitivity"]) and out["summary"]["sensitivity"] == 1.0
    with pytest.raises(ValueError, match="outside 0..1"):
        confusion_counts(torch.tensor([0, 2]), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match="positive class 'x'"):
        classification_metrics([0], [0], ["a"], positive="x")
