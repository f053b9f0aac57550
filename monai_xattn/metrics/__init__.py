"""monai_xattn.metrics."""

from monai_xattn.metrics.classification import CLASSIFICATION_METRICS, classification_metrics, confusion_counts
from monai_xattn.metrics.localization import (
    COCOMAP,
    BoxRecall,
    BoxRecallMetric,
    COCOMAPMetric,
    LocalizationAccuracy,
    LocalizationAccuracyMetric,
    PointingGame,
    PointingGameMetric,
    box_iobb,
    box_recall_at_k,
    coco_map,
    localization_accuracy,
    pointing_accuracy,
    points_in_boxes,
    top1_overlap,
)
from monai_xattn.metrics.retrieval import encode_labels, hit_at_k, precision_at_k, retrieval_metrics
from monai_xattn.metrics.segmentation import KaggleDice, KaggleDiceMetric, kaggle_dice

__all__ = [
    "COCOMAP",
    "BoxRecall",
    "BoxRecallMetric",
    "COCOMAPMetric",
    "LocalizationAccuracy",
    "LocalizationAccuracyMetric",
    "PointingGame",
    "PointingGameMetric",
    "box_iobb",
    "box_recall_at_k",
    "coco_map",
    "localization_accuracy",
    "pointing_accuracy",
    "points_in_boxes",
    "top1_overlap",
    "CLASSIFICATION_METRICS",
    "classification_metrics",
    "confusion_counts",
    "encode_labels",
    "hit_at_k",
    "precision_at_k",
    "retrieval_metrics",
    "KaggleDice",
    "KaggleDiceMetric",
    "kaggle_dice",
]
