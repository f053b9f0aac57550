"""The package's one macro AUC: per task, unknown targets (< 0) left out, one-class tasks NaN and out of the mean;
on plain 0/1 labels it is MONAI's ROCAUCMetric per task."""

import math

import torch
from monai.metrics import ROCAUCMetric

from monai_xattn.metrics.classification import attribute_metrics, macro_auroc


def test_matches_monai_on_binary_labels():
    torch.manual_seed(0)
    targets = (torch.rand(40, 3) > 0.5).float()
    scores = targets * 0.3 + torch.rand(40, 3)
    metric = ROCAUCMetric(average="none")
    metric(scores, targets)
    expected = [float(v) for v in metric.aggregate()]
    mean, per_task = macro_auroc(scores, targets)
    assert per_task == expected and math.isclose(mean, sum(expected) / 3)


def test_unknown_targets_and_one_class_tasks():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.8, 0.2, 0.5], [0.1, 0.9, 0.5], [0.2, 0.7, 0.5]])
    targets = torch.tensor([[1.0, -1, 1], [1, 0, 1], [0, 1, 1], [-1, 1, 1]])
    mean, per_task = macro_auroc(scores, targets)
    # task 0 ranks its three known entries perfectly; task 1 too; task 2 has one class only
    assert per_task[:2] == [1.0, 1.0] and math.isnan(per_task[2]) and mean == 1.0
    assert math.isnan(macro_auroc(scores[:, 2:], targets[:, 2:])[0])
    flipped, _ = macro_auroc(1 - scores, targets)
    assert flipped == 0.0
    m = attribute_metrics(scores, targets)
    assert m["auc"] == 1.0 and m["auc_attributes"] == 2.0
