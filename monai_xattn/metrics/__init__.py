"""monai_xattn.metrics."""

from monai_xattn.metrics.localization import (
    COCOMAP,
    BoxRecall,
    BoxRecallMetric,
    COCOMAPMetric,
    LocalizationAccuracy,
    LocalizationAccuracyMetric,
    box_iobb,
    box_recall_at_k,
    coco_map,
    localization_accuracy,
    top1_overlap,
)

__all__ = [
    "COCOMAP",
    "BoxRecall",
    "BoxRecallMetric",
    "COCOMAPMetric",
    "LocalizationAccuracy",
    "LocalizationAccuracyMetric",
    "box_iobb",
    "box_recall_at_k",
    "coco_map",
    "localization_accuracy",
    "top1_overlap",
]
