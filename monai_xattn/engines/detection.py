"""Pieces that let MONAI's stock ``SupervisedTrainer`` / ``SupervisedEvaluator`` train and evaluate a detector.

Detection batches are lists of per-image dicts (``collate_fn=monai.data.utils.no_collation``, images may differ in
size) and the engines run with ``decollate=False``. :class:`DetectionPrepareBatch` turns such a batch into
``detector(images, targets)`` calls: in training mode ``RetinaNetDetector`` returns its loss dict, which
:class:`DetectionLoss` sums; in evaluation mode it ignores the targets and returns detections, which the metric
handlers of :mod:`monai_xattn.metrics.localization` compare with the targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from torch import Tensor, nn

__all__ = ["DetectionPrepareBatch", "DetectionLoss", "loss_output"]


class DetectionPrepareBatch(PrepareBatch):
    """Turn a list of sample dicts into ``(images, targets, (targets,), {})`` for MONAI's engines.

    The engine then calls ``network(images, targets)`` and ``loss_function(pred, targets)``.

    Args:
        image_key: key of the ``(C, W, H)`` image in a sample.
        box_key: key of the ``(N, 4)`` StandardMode boxes in a sample.
        label_key: key of the ``(N,)`` integer class labels in a sample (``box_labels`` in our datalists).
        target_keys: ``(box, label)`` keys of the target dicts, the detector's ``target_box_key`` and
            ``target_label_key``.
    """

    def __init__(
        self,
        image_key: str = "image",
        box_key: str = "boxes",
        label_key: str = "labels",
        target_keys: Sequence[str] = ("boxes", "labels"),
    ) -> None:
        self.image_key, self.box_key, self.label_key = image_key, box_key, label_key
        self.target_box_key, self.target_label_key = target_keys

    def __call__(
        self,
        batchdata: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[list[Tensor], list[dict[str, Tensor]], tuple, dict]:
        if isinstance(batchdata, Mapping):
            raise ValueError(
                "detection batches must be lists of sample dicts: use collate_fn=monai.data.utils.no_collation."
            )
        images, targets = [], []
        for i, item in enumerate(batchdata):
            missing = [k for k in (self.image_key, self.box_key, self.label_key) if k not in item]
            if missing:
                name = item.get("image_id", item.get(f"{self.image_key}_meta_dict", {}).get("filename_or_obj", i))
                raise KeyError(f"sample {name!r} has no {missing} (keys: {sorted(item)}).")
            images.append(torch.as_tensor(item[self.image_key]).to(device=device, non_blocking=non_blocking, **kwargs))
            boxes = torch.as_tensor(item[self.box_key], dtype=torch.float32).reshape(-1, 4)
            labels = torch.as_tensor(item[self.label_key], dtype=torch.long).reshape(-1)
            targets.append(
                {
                    self.target_box_key: boxes.to(device=device, non_blocking=non_blocking),
                    self.target_label_key: labels.to(device=device, non_blocking=non_blocking),
                }
            )
        return images, targets, (targets,), {}


class DetectionLoss(nn.Module):
    """Weighted sum of a detector's loss dict (``RetinaNetDetector`` in training mode).

    Args:
        weights: loss name -> weight; the default weighs ``classification`` and ``box_regression`` equally.
    """

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.weights = dict(weights or {"classification": 1.0, "box_regression": 1.0})

    def forward(self, pred: Mapping[str, Tensor], target: Any = None) -> Tensor:
        if not isinstance(pred, Mapping):
            raise ValueError("DetectionLoss needs the detector's loss dict: is the detector in training mode?")
        missing = [k for k in self.weights if k not in pred]
        if missing:
            raise KeyError(f"detector losses {sorted(pred)} lack {missing}.")
        return sum(w * pred[k] for k, w in self.weights.items())  # type: ignore[return-value]


def loss_output(output: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> float:
    """``StatsHandler`` / ``TensorBoardStatsHandler`` output transform for ``decollate=False`` engines.

    ``from_engine(["loss"], first=True)`` yields a 1-tuple there, which the handlers silently ignore.
    """
    if not isinstance(output, Mapping):
        output = output[0]
    return float(output["loss"])
