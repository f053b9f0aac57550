"""The pointing game (peak in a ground-truth box) on hand-made cases with exact expected values."""

from __future__ import annotations

import math

import pytest
import torch
from ignite.engine import Engine

from monai_xattn.metrics import PointingGame, PointingGameMetric, pointing_accuracy, points_in_boxes

GT = [10.0, 20.0, 30.0, 40.0]
# image 0: inside; 1: on the right edge (inside); 2: 3 px right of the box; 3: no ground truth (skipped);
# 4: ground truth but no point (a miss); 5: the second of two boxes holds the point
POINTS = [[15.0, 25.0], [30.0, 40.0], [33.0, 30.0], [5.0, 5.0], None, [[55.0, 55.0], [15.0, 25.0]]]
GT_BOXES = [[GT], [GT], [GT], [], [GT], [GT, [50.0, 50.0, 60.0, 60.0]]]


def test_points_in_boxes_exact():
    hits = points_in_boxes(POINTS, GT_BOXES)
    assert hits[[0, 1, 2, 4, 5]].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0] and math.isnan(hits[3])
    assert pointing_accuracy(POINTS, GT_BOXES) == pytest.approx(3 / 5)


def test_only_the_first_point_is_scored_and_tolerance_reaches_outside():
    assert pointing_accuracy([[[0.0, 0.0], [15.0, 25.0]]], [[GT]]) == 0.0
    # 3 px right of the box: a hit with 3 px of tolerance, not with 2.9; diagonal distances are Euclidean
    assert pointing_accuracy([[33.0, 30.0]], [[GT]], tolerance=3.0) == 1.0
    assert pointing_accuracy([[33.0, 30.0]], [[GT]], tolerance=2.9) == 0.0
    assert pointing_accuracy([[33.0, 44.0]], [[GT]], tolerance=5.0) == 1.0  # (3, 4) from the corner
    assert pointing_accuracy([[33.0, 44.0]], [[GT]], tolerance=4.9) == 0.0


def test_no_ground_truth_and_bad_input():
    assert math.isnan(pointing_accuracy([[1.0, 1.0]], [[]]))
    with pytest.raises(ValueError, match="length"):
        points_in_boxes([[1.0, 1.0]], [])
    with pytest.raises(ValueError, match="point"):
        points_in_boxes([[1.0, 2.0, 3.0]], [[GT]])


def test_metric_reads_the_peak_or_else_the_top_box_centre():
    metric = PointingGameMetric()
    preds = [
        {"peak": torch.tensor([15.0, 25.0]), "boxes": torch.empty(0, 4), "labels_scores": torch.empty(0)},
        # no peak: the centre (20, 30) of the top-scored box is in GT; the lower-scored box's centre is not
        {
            "boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0], [10.0, 20.0, 30.0, 40.0]]),
            "labels_scores": torch.tensor([0.1, 0.9]),
        },
        {"boxes": torch.tensor([[0.0, 0.0, 4.0, 4.0]]), "labels_scores": torch.tensor([0.9])},
        {"boxes": torch.empty(0, 4), "labels_scores": torch.empty(0)},  # nothing to point with: a miss
        {"peak": torch.tensor([0.0, 0.0]), "boxes": torch.empty(0, 4), "labels_scores": torch.empty(0)},
    ]
    targets = [{"boxes": torch.tensor([GT])}] * 4 + [{"boxes": torch.empty(0, 4)}]
    metric(y_pred=preds[:2], y=targets[:2])
    metric(y_pred=preds[2:], y=targets[2:])
    assert metric.aggregate().item() == pytest.approx(2 / 4)
    metric.reset()
    assert math.isnan(metric.aggregate().item())
    with pytest.raises(ValueError, match="batch tensor"):
        metric(y_pred=torch.zeros(2, 4), y=torch.zeros(2, 4))


def test_ignite_handler():
    engine = Engine(lambda e, b: b)
    PointingGame().attach(engine, "val_peak_in_box")
    batches = [
        {"pred": [{"peak": torch.tensor([15.0, 25.0])}], "label": [{"boxes": torch.tensor([GT])}]},
        {"pred": [{"peak": torch.tensor([1.0, 1.0])}], "label": [{"boxes": torch.tensor([GT])}]},
    ]
    engine.run(batches, max_epochs=1)
    assert engine.state.metrics["val_peak_in_box"] == pytest.approx(0.5)
