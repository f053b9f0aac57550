"""Zero-shot classification metrics as GLoRIA's Table 3: accuracy, sensitivity, specificity, PPV, NPV, F1.

Per class the counts are one-vs-rest, from MONAI's ``get_confusion_matrix`` / ``compute_confusion_matrix_metric``
(a class with no positive and no predicted case gets NaN where a ratio is undefined). The summary row:

- ``accuracy`` is the multi-class (top-1) accuracy, the fraction of images whose predicted class is their class
  (one-vs-rest accuracy would count every correct rejection and inflate it);
- ``sensitivity`` ... ``f1`` are the macro means of the per-class values, or, with ``positive`` (binary tasks such
  as RSNA pneumonia vs normal), the positive class's values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from monai.metrics import compute_confusion_matrix_metric, compute_roc_auc, get_confusion_matrix
from torch import Tensor

__all__ = ["CLASSIFICATION_METRICS", "confusion_counts", "classification_metrics", "macro_auroc", "attribute_metrics"]

#: our names -> MONAI's ``compute_confusion_matrix_metric`` names
CLASSIFICATION_METRICS = {
    "accuracy": "accuracy",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "ppv": "precision",
    "npv": "negative predictive value",
    "f1": "f1 score",
}


def confusion_counts(pred: Tensor | Sequence[int], target: Tensor | Sequence[int], num_classes: int) -> Tensor:
    """One-vs-rest confusion counts per class.

    Args:
        pred: ``(N,)`` predicted class indices.
        target: ``(N,)`` true class indices.
        num_classes: ``C``.

    Returns:
        ``(C, 4)`` float: ``[TP, FP, TN, FN]`` per class (MONAI's order).
    """
    pred = torch.as_tensor(pred, dtype=torch.long).flatten()
    target = torch.as_tensor(target, dtype=torch.long).flatten()
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same length, got {pred.numel()} and {target.numel()}")
    for name, t in (("pred", pred), ("target", target)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise ValueError(f"{name} holds class indices outside 0..{num_classes - 1}")
    eye = torch.eye(num_classes)
    return get_confusion_matrix(eye[pred], eye[target], include_background=True).sum(dim=0)


def classification_metrics(
    pred: Tensor | Sequence[int],
    target: Tensor | Sequence[int],
    class_names: Sequence[str],
    positive: str | None = None,
) -> dict[str, dict[str, float]]:
    """Table-3 metrics of single-label predictions.

    Args:
        pred: ``(N,)`` predicted class indices (e.g. :func:`monai_xattn.networks.zero_shot_classify`'s).
        target: ``(N,)`` true class indices.
        class_names: the ``C`` class names, index order.
        positive: for a binary task, the class whose one-vs-rest values form the summary row; ``None``: macro.

    Returns:
        ``{"summary": {metric: value}, <class name>: {metric: value}, ...}`` with the metrics of
        :data:`CLASSIFICATION_METRICS`; per-class ``accuracy`` is one-vs-rest, the summary's is top-1.
    """
    names = list(class_names)
    if positive is not None and positive not in names:
        raise ValueError(f"positive class {positive!r} is not one of {names}")
    counts = confusion_counts(pred, target, len(names))
    per_class = {
        ours: compute_confusion_matrix_metric(monai_name, counts) for ours, monai_name in CLASSIFICATION_METRICS.items()
    }  # each (C,)
    out: dict[str, dict[str, float]] = {
        name: {metric: float(values[c]) for metric, values in per_class.items()} for c, name in enumerate(names)
    }
    n = counts[0].sum()
    if positive is None:
        summary = {metric: float(values.nanmean()) for metric, values in per_class.items()}
    else:
        summary = dict(out[positive])
    summary["accuracy"] = float(counts[:, 0].sum() / n) if n > 0 else float("nan")
    return {"summary": summary, **out}


def macro_auroc(scores: Tensor | Sequence, targets: Tensor | Sequence) -> tuple[float, list[float]]:
    """ROC AUC per task and their mean: the one macro AUC of the package (linear probes, attribute heads).

    Args:
        scores: ``(N, T)`` scores or probabilities.
        targets: ``(N, T)`` 0/1 targets; entries < 0 are unknown (uncertain attributes) and left out of their task.

    Returns:
        ``(mean, per_task)``: a task whose known targets lack one of the classes is NaN and left out of the mean
        (NaN when no task has both).
    """
    scores = torch.as_tensor(scores, dtype=torch.float32)
    targets = torch.as_tensor(targets, dtype=torch.float32)
    per_task = []
    for task in range(targets.shape[1]):  # tasks keep their own known entries: not one batched call
        known = targets[:, task] >= 0
        y = targets[known, task]
        per_task.append(float(compute_roc_auc(scores[known, task], y)) if 0 < y.sum() < len(y) else math.nan)
    finite = [v for v in per_task if not math.isnan(v)]
    return (sum(finite) / len(finite) if finite else math.nan), per_task


def attribute_metrics(probs, targets) -> dict[str, float]:
    """Attribute classification accuracy (all attribute decisions at 0.5) and macro ROC AUC.

    Args:
        probs: ``(N, A)`` probabilities; targets: ``(N, A)`` multi-hot (entries < 0 are unknown and skipped).

    Returns:
        ``accuracy``, ``auc`` (mean over attributes with both classes in the targets; ``nan`` if none) and
        ``auc_attributes`` (how many attributes entered the AUC).
    """
    probs, targets = torch.as_tensor(probs, dtype=torch.float32), torch.as_tensor(targets, dtype=torch.float32)
    known = targets >= 0
    accuracy = ((probs >= 0.5).float() == targets)[known].float().mean()
    auc, per_attribute = macro_auroc(probs, targets)
    return {
        "accuracy": float(accuracy),
        "auc": auc,
        "auc_attributes": float(sum(not math.isnan(v) for v in per_attribute)),
    }
