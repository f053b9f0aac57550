"""Localization metrics on hand-made cases with exact expected values."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine

from monai_xattn.metrics import (
    COCOMAP,
    BoxRecallMetric,
    COCOMAPMetric,
    LocalizationAccuracy,
    LocalizationAccuracyMetric,
    box_iobb,
    box_recall_at_k,
    coco_map,
    localization_accuracy,
)

GT = [0.0, 0.0, 10.0, 10.0]
# image 0: perfect top box; image 1: top box shifted by half (IoU 1/3), a perfect box ranked second;
# image 2: no ground truth (skipped); image 3: ground truth but no prediction (a miss)
PRED_BOXES = [[GT], [[5.0, 0.0, 15.0, 10.0], GT], [[1.0, 1.0, 4.0, 4.0]], []]
PRED_SCORES = [[0.9], [0.8, 0.1], [0.7], []]
GT_BOXES = [[GT], [GT], [], [[20.0, 20.0, 30.0, 40.0]]]


def test_localization_accuracy_exact():
    acc = localization_accuracy(PRED_BOXES, PRED_SCORES, GT_BOXES, thresholds=(0.25, 1 / 3, 0.5, 1.0))
    assert acc == pytest.approx({0.25: 2 / 3, 1 / 3: 2 / 3, 0.5: 1 / 3, 1.0: 1 / 3})


def test_top_box_is_chosen_by_score_not_order():
    # same boxes listed in the other order: the higher score still decides
    acc = localization_accuracy([[GT, [5.0, 0.0, 15.0, 10.0]]], [[0.1, 0.8]], [[GT]], thresholds=(0.5,))
    assert acc == {0.5: 0.0}


def test_any_ground_truth_box_counts():
    gts = [[[50.0, 50.0, 60.0, 60.0], GT]]
    assert localization_accuracy([[GT]], [[1.0]], gts, thresholds=(0.9,)) == {0.9: 1.0}


def test_iobb_variant():
    inside = [0.0, 0.0, 5.0, 10.0]  # half of the ground truth: IoU 0.5, IoBB 1
    assert box_iobb(torch.tensor([inside]), torch.tensor([GT])).item() == pytest.approx(1.0)
    iou = localization_accuracy([[inside]], [[1.0]], [[GT]], thresholds=(0.75,))
    iobb = localization_accuracy([[inside]], [[1.0]], [[GT]], thresholds=(0.75,), overlap="iobb")
    assert iou == {0.75: 0.0} and iobb == {0.75: 1.0}
    assert box_iobb(torch.tensor([[3.0, 3.0, 3.0, 8.0]]), torch.tensor([GT])).item() == 0.0  # degenerate box


def test_empty_and_no_ground_truth():
    assert math.isnan(localization_accuracy([[GT]], [[1.0]], [[]], thresholds=(0.5,))[0.5])
    assert localization_accuracy([[]], [[]], [[GT]], thresholds=(0.1,)) == {0.1: 0.0}
    with pytest.raises(ValueError, match="length"):
        localization_accuracy([[GT]], [], [[GT]])
    with pytest.raises(ValueError, match="scores"):
        localization_accuracy([[GT]], [[1.0, 2.0]], [[GT]])


def test_recall_at_k():
    # 3 ground-truth boxes, in images 0, 1 and 3; image 1's perfect box is second-ranked
    r1 = box_recall_at_k(PRED_BOXES, PRED_SCORES, GT_BOXES, k=1, thresholds=(0.25, 0.75))
    r2 = box_recall_at_k(PRED_BOXES, PRED_SCORES, GT_BOXES, k=2, thresholds=(0.25, 0.75))
    assert r1 == pytest.approx({0.25: 2 / 3, 0.75: 1 / 3})
    assert r2 == pytest.approx({0.25: 2 / 3, 0.75: 2 / 3})


def test_coco_map():
    perfect = coco_map([[GT]], [[0.9]], [[GT]])
    assert perfect["mAP_IoU_0.10_0.50_0.05_MaxDet_100"] == pytest.approx(1.0)
    missed = coco_map([[[50.0, 50.0, 60.0, 60.0]]], [[0.9]], [[GT]])
    assert missed["mAP_IoU_0.10_0.50_0.05_MaxDet_100"] == pytest.approx(0.0)


def _as_outputs(boxes, scores, gts):
    preds = [
        {"boxes": torch.tensor(b).reshape(-1, 4), "labels_scores": torch.tensor(s)}
        for b, s in zip(boxes, scores, strict=True)
    ]
    targets = [{"boxes": torch.tensor(g).reshape(-1, 4)} for g in gts]
    return preds, targets


def test_cumulative_metrics_match_functional_over_batches():
    preds, targets = _as_outputs(PRED_BOXES, PRED_SCORES, GT_BOXES)
    acc = LocalizationAccuracyMetric(thresholds=(0.25, 0.5))
    rec = BoxRecallMetric(k=2, thresholds=0.75)
    for lo, hi in ((0, 3), (3, 4)):  # two batches of different size
        acc(preds[lo:hi], targets[lo:hi])
        rec(preds[lo:hi], targets[lo:hi])
    torch.testing.assert_close(acc.aggregate(), torch.tensor([2 / 3, 1 / 3]))
    assert rec.aggregate().item() == pytest.approx(2 / 3)
    acc.reset()
    acc(preds[:1], targets[:1])
    torch.testing.assert_close(acc.aggregate(), torch.tensor([1.0, 1.0]))


def test_ignite_handlers():
    preds, targets = _as_outputs(PRED_BOXES, PRED_SCORES, GT_BOXES)
    batches = [(preds[:2], targets[:2]), (preds[2:], targets[2:])]
    engine = Engine(lambda e, batch: {"pred": batch[0], "label": batch[1]})
    LocalizationAccuracy(threshold=0.5).attach(engine, "acc_0.5")
    COCOMAP().attach(engine, "map")
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics["acc_0.5"] == pytest.approx(1 / 3)
    expected_map = coco_map(PRED_BOXES, PRED_SCORES, GT_BOXES)["mAP_IoU_0.10_0.50_0.05_MaxDet_100"]
    assert engine.state.metrics["map"] == pytest.approx(expected_map)
    assert 0 < expected_map < 1


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="StandardMode"):
        localization_accuracy([[[0.0, 1.0, 2.0]]], [[1.0]], [[GT]])
    with pytest.raises(ValueError, match="dicts"):
        LocalizationAccuracyMetric()([torch.zeros(1, 4)], [torch.zeros(1, 4)])
    with pytest.raises(ValueError, match="before"):
        COCOMAPMetric().aggregate()
