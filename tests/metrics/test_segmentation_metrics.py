"""Kaggle SIIM Dice (empty ground truth scores 1 only for an empty prediction) and the positive-only Dice."""

from __future__ import annotations

import math

import pytest
import torch
from monai.metrics import DiceMetric

from monai_xattn.metrics import KaggleDiceMetric, kaggle_dice


def _masks():
    gt = torch.zeros(4, 1, 6, 5)
    pred = torch.zeros(4, 1, 6, 5)
    pred[1, 0, 0, 0] = 1  # empty GT, one false pixel -> 0
    gt[2, 0, :2, :2] = 1  # 4 GT pixels, 2 predicted of them + 2 outside -> 2*2/(4+4)
    pred[2, 0, 0, :2] = 1
    pred[2, 0, 5, :2] = 1
    gt[3, 0, 3:, 3:] = 1  # positive image, nothing predicted -> 0
    return pred, gt  # image 0: both empty -> 1


def test_edge_cases():
    pred, gt = _masks()
    torch.testing.assert_close(kaggle_dice(pred, gt)[:, 0], torch.tensor([1.0, 0.0, 0.5, 0.0]))
    positive = kaggle_dice(pred, gt, ignore_empty=True)[:, 0]
    assert positive[:2].isnan().all()
    torch.testing.assert_close(positive[2:], torch.tensor([0.5, 0.0]))
    probs = pred * 0.7 + 0.2  # 0.9 where predicted, 0.2 elsewhere
    torch.testing.assert_close(kaggle_dice(probs, gt, threshold=0.5), kaggle_dice(pred, gt))


def test_equals_monai_dice_metric_on_random_masks():
    torch.manual_seed(0)
    gt = (torch.rand(16, 1, 9, 7) > 0.7).float()
    gt[:6] = 0  # some empty ground truths
    pred = (torch.rand(16, 1, 9, 7) > 0.7).float()
    pred[:3] = 0
    for ignore_empty in (False, True):
        ref = DiceMetric(include_background=True, ignore_empty=ignore_empty, reduction="none")(pred, gt)
        torch.testing.assert_close(kaggle_dice(pred, gt, ignore_empty), ref.float(), equal_nan=True)


def test_cumulative_metric_means_over_images():
    pred, gt = _masks()
    metric = KaggleDiceMetric()
    metric(pred[:2], gt[:2])
    metric(pred[2:], gt[2:])
    assert math.isclose(float(metric.aggregate()), 1.5 / 4)
    positive = KaggleDiceMetric(ignore_empty=True, get_not_nans=True)
    positive(pred, gt)
    value, count = positive.aggregate()
    assert math.isclose(float(value), 0.25) and int(count) == 2
    # an all-empty prediction: Kaggle Dice = the fraction of negative images, positive Dice = 0
    empty = KaggleDiceMetric()
    empty(torch.zeros_like(gt), gt)
    assert math.isclose(float(empty.aggregate()), 0.5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in shape"):
        kaggle_dice(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
