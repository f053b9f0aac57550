"""Box localization metrics: IoU@t accuracy (Bhalodia et al.), IoBB accuracy (Wang et al.), recall@k, COCO mAP, and
the pointing game (Zhang et al.): whether a map's peak falls inside a ground-truth box.

All boxes are ``StandardMode`` ``[x0, y0, x1, y1]`` in one frame per image. Functional forms take per-image
lists; the metric classes are MONAI ``Cumulative`` metrics fed per batch with the detector's output (a list of
``{"boxes", "labels_scores"}`` dicts) and the targets (a list of ``{"boxes"}`` dicts or box tensors); the
``Ignite`` handlers wrap them for ``SupervisedEvaluator``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.apps.detection.metrics.coco import COCOMetric
from monai.apps.detection.metrics.matching import matching_batch
from monai.data.box_utils import box_area, box_iou
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import Cumulative, CumulativeIterationMetric
from torch import Tensor

__all__ = [
    "box_iobb",
    "top1_overlap",
    "localization_accuracy",
    "box_recall_at_k",
    "coco_map",
    "points_in_boxes",
    "pointing_accuracy",
    "LocalizationAccuracyMetric",
    "BoxRecallMetric",
    "COCOMAPMetric",
    "PointingGameMetric",
    "LocalizationAccuracy",
    "BoxRecall",
    "COCOMAP",
    "PointingGame",
]

BoxesLike = Tensor | np.ndarray | Sequence[Sequence[float]]


def _boxes(x: BoxesLike | Mapping, key: str = "boxes") -> Tensor:
    if isinstance(x, Mapping):
        x = x[key]
    t = torch.as_tensor(x, dtype=torch.float32)
    if t.numel() == 0:
        return t.reshape(0, 4)
    if t.ndim != 2 or t.shape[-1] != 4:
        raise ValueError(f"expected (N, 4) StandardMode boxes, got shape {tuple(t.shape)}.")
    return t


def box_iobb(pred: Tensor, gt: Tensor) -> Tensor:
    """Intersection over the detected box's area, ``|P & G| / |P|`` (Wang et al., CVPR 2017).

    Args:
        pred: ``(N, 4)`` predicted boxes.
        gt: ``(M, 4)`` ground-truth boxes.

    Returns:
        ``(N, M)`` IoBB; 0 for degenerate predicted boxes.
    """
    lo = torch.maximum(pred[:, None, :2], gt[None, :, :2])
    hi = torch.minimum(pred[:, None, 2:], gt[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area = box_area(pred).to(inter)[:, None]
    return torch.where(area > 0, inter / area.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


_OVERLAPS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "iou": lambda p, g: torch.as_tensor(box_iou(p, g)),
    "iobb": box_iobb,
}


def _overlap_fn(overlap: str) -> Callable[[Tensor, Tensor], Tensor]:
    if overlap not in _OVERLAPS:
        raise ValueError(f"overlap must be one of {sorted(_OVERLAPS)}, got {overlap!r}.")
    return _OVERLAPS[overlap]


def _ranked(boxes: BoxesLike, scores: BoxesLike | None, k: int | None = None) -> Tensor:
    b = _boxes(boxes)
    if scores is not None and len(b):
        s = torch.as_tensor(scores, dtype=torch.float32).flatten()
        if len(s) != len(b):
            raise ValueError(f"{len(b)} predicted boxes but {len(s)} scores.")
        b = b[torch.argsort(s, descending=True, stable=True)]
    return b if k is None else b[:k]


def top1_overlap(
    pred_boxes: Sequence[BoxesLike],
    pred_scores: Sequence[BoxesLike],
    gt_boxes: Sequence[BoxesLike],
    overlap: str = "iou",
) -> Tensor:
    """Per image, the best overlap of the top-scored predicted box with any ground-truth box.

    Returns:
        ``(n_images,)`` float tensor: ``nan`` for images without ground truth, 0 for images without predictions.
    """
    if not len(pred_boxes) == len(pred_scores) == len(gt_boxes):
        raise ValueError(
            f"per-image lists differ in length: {len(pred_boxes)} boxes, {len(pred_scores)} scores, {len(gt_boxes)} gt."
        )
    fn = _overlap_fn(overlap)
    out = torch.full((len(gt_boxes),), float("nan"))
    for i, (p, s, g) in enumerate(zip(pred_boxes, pred_scores, gt_boxes, strict=True)):
        g = _boxes(g)
        if len(g) == 0:
            continue
        top = _ranked(p, s, k=1)
        out[i] = fn(top, g).max() if len(top) else 0.0
    return out


def _accuracy_from_top1(best: Tensor, thresholds: Sequence[float]) -> Tensor:
    valid = best[~torch.isnan(best)]
    t = torch.as_tensor(thresholds, dtype=best.dtype)
    if len(valid) == 0:
        return torch.full_like(t, float("nan"))
    return (valid[:, None] >= t[None]).float().mean(0)


def localization_accuracy(
    pred_boxes: Sequence[BoxesLike],
    pred_scores: Sequence[BoxesLike],
    gt_boxes: Sequence[BoxesLike],
    thresholds: Sequence[float] = (0.25, 0.5, 0.75),
    overlap: str = "iou",
) -> dict[float, float]:
    """Localization accuracy at overlap thresholds (the IoU@t of Bhalodia et al., MICCAI 2021, Table 1).

    Over the images that have at least one ground-truth box, the fraction whose top-ranked predicted box has
    overlap ``>= t`` with some ground-truth box. Images without ground truth are skipped; an image with ground
    truth and no prediction counts as a miss. ``overlap="iobb"`` gives the IoBB variant of Wang et al. 2017.

    Args:
        pred_boxes: per image ``(P_i, 4)`` predicted boxes.
        pred_scores: per image ``(P_i,)`` scores (the top-ranked box is the highest score).
        gt_boxes: per image ``(G_i, 4)`` ground-truth boxes.
        thresholds: overlap thresholds.
        overlap: ``"iou"`` or ``"iobb"``.

    Returns:
        ``{t: accuracy}``; ``nan`` when no image has ground truth.
    """
    acc = _accuracy_from_top1(top1_overlap(pred_boxes, pred_scores, gt_boxes, overlap), thresholds)
    return {float(t): float(a) for t, a in zip(thresholds, acc, strict=True)}


def _recall_counts(p: BoxesLike, s: BoxesLike | None, g: BoxesLike, k: int, thresholds: Tensor, fn) -> Tensor:
    """``(T + 1,)``: ground-truth boxes hit by a top-k box at each threshold, then the number of boxes."""
    g = _boxes(g)
    top = _ranked(p, s, k=k)
    if len(g) == 0 or len(top) == 0:
        return torch.cat([torch.zeros(len(thresholds)), torch.tensor([float(len(g))])])
    best = fn(top, g).max(dim=0).values  # (G,) best overlap of each ground-truth box
    hits = (best[:, None] >= thresholds[None]).float().sum(0)
    return torch.cat([hits, torch.tensor([float(len(g))])])


def box_recall_at_k(
    pred_boxes: Sequence[BoxesLike],
    pred_scores: Sequence[BoxesLike],
    gt_boxes: Sequence[BoxesLike],
    k: int = 10,
    thresholds: Sequence[float] = (0.25, 0.5, 0.75),
    overlap: str = "iou",
) -> dict[float, float]:
    """Box recall at top-k: the fraction of all ground-truth boxes overlapped ``>= t`` by one of the k
    top-scored predicted boxes of their image.

    Returns:
        ``{t: recall}``; ``nan`` when there is no ground-truth box.
    """
    fn, t = _overlap_fn(overlap), torch.as_tensor(thresholds, dtype=torch.float32)
    counts = torch.stack(
        [_recall_counts(p, s, g, k, t, fn) for p, s, g in zip(pred_boxes, pred_scores, gt_boxes, strict=True)]
    )
    total = counts.sum(0)
    recall = total[:-1] / total[-1] if total[-1] > 0 else torch.full_like(t, float("nan"))
    return {float(a): float(b) for a, b in zip(thresholds, recall, strict=True)}


def coco_map(
    pred_boxes: Sequence[BoxesLike],
    pred_scores: Sequence[BoxesLike],
    gt_boxes: Sequence[BoxesLike],
    iou_list: Sequence[float] = (0.1, 0.5, 0.75),
    iou_range: Sequence[float] = (0.1, 0.5, 0.05),
    max_detection: Sequence[int] = (1, 5, 100),
) -> dict[str, float]:
    """Single-class COCO-style mAP/mAR with MONAI's ``COCOMetric`` (note: its default ``iou_range`` is
    nnDetection's 0.10-0.50; pass ``(0.5, 0.95, 0.05)`` for COCO's)."""
    metric = COCOMetric(classes=["pneumonia"], iou_list=iou_list, iou_range=iou_range, max_detection=max_detection)
    preds = [_boxes(p).numpy() for p in pred_boxes]
    gts = [_boxes(g).numpy() for g in gt_boxes]
    results = matching_batch(
        iou_fn=box_iou,
        iou_thresholds=metric.iou_thresholds,
        pred_boxes=preds,
        pred_classes=[np.zeros(len(p), dtype=int) for p in preds],
        pred_scores=[torch.as_tensor(s, dtype=torch.float32).flatten().numpy() for s in pred_scores],
        gt_boxes=gts,
        gt_classes=[np.zeros(len(g), dtype=int) for g in gts],
    )
    return {k: float(v) for k, v in metric(results)[0].items()}


def _point(x: BoxesLike | None) -> Tensor:
    """``(P, 2)`` points from one ``(2,)`` point or ``(P, 2)`` ranked points (``None`` or empty: ``(0, 2)``)."""
    if x is None:
        return torch.empty(0, 2)
    t = torch.as_tensor(x, dtype=torch.float32)
    if t.numel() == 0:
        return t.reshape(0, 2)
    t = t.reshape(1, -1) if t.ndim == 1 else t
    if t.ndim != 2 or t.shape[-1] != 2:
        raise ValueError(f"expected a (2,) point or (P, 2) points (x, y), got shape {tuple(t.shape)}.")
    return t


def points_in_boxes(
    points: Sequence[BoxesLike | None], gt_boxes: Sequence[BoxesLike], tolerance: float = 0.0
) -> Tensor:
    """Per image, whether its point falls inside a ground-truth box (the pointing game of Zhang et al., ECCV 2016).

    A point is ``(x, y)`` in the boxes' frame; with pixel-indexed maps, pixel ``(i, j)`` is the point
    ``(i + 0.5, j + 0.5)`` and the box ``[x0, y0, x1, y1]`` covers pixels ``x0 .. x1 - 1``. Box edges count as
    inside. Zhang et al. allow a tolerance of 15 pixels at 224 px (``tolerance``: the largest distance from the
    point to a box that still counts).

    Args:
        points: per image a ``(2,)`` point or ``(P, 2)`` points, best first (only the first is scored); ``None``
            or empty: no point (a miss).
        gt_boxes: per image ``(G_i, 4)`` ground-truth boxes.
        tolerance: distance in pixels.

    Returns:
        ``(n_images,)`` float tensor: 1 (hit), 0 (miss), ``nan`` for images without ground truth.
    """
    if len(points) != len(gt_boxes):
        raise ValueError(f"per-image lists differ in length: {len(points)} points, {len(gt_boxes)} gt.")
    out = torch.full((len(gt_boxes),), float("nan"))
    for i, (p, g) in enumerate(zip(points, gt_boxes, strict=True)):
        g = _boxes(g)
        if len(g) == 0:
            continue
        p = _point(p)
        if len(p) == 0:
            out[i] = 0.0
            continue
        # distance from the point to each box: 0 inside or on an edge
        gap = torch.maximum(g[:, :2] - p[:1], p[:1] - g[:, 2:]).clamp(min=0)
        out[i] = float(bool((gap.norm(dim=1) <= tolerance).any()))
    return out


def pointing_accuracy(
    points: Sequence[BoxesLike | None], gt_boxes: Sequence[BoxesLike], tolerance: float = 0.0
) -> float:
    """Pointing-game accuracy: over the images with ground truth, the fraction whose point falls inside a box
    (:func:`points_in_boxes`).

    Returns:
        the rate; ``nan`` when no image has ground truth.
    """
    hits = points_in_boxes(points, gt_boxes, tolerance)
    hits = hits[~torch.isnan(hits)]
    return float(hits.mean()) if len(hits) else float("nan")


def _split(y_pred: Sequence[Any], y: Sequence[Any], box_key: str, score_key: str):
    if y is None or len(y_pred) != len(y):
        raise ValueError(f"need one prediction per target, got {len(y_pred)} predictions and {len(y or [])} targets.")
    boxes = [_boxes(p, box_key) for p in y_pred]
    scores = [torch.as_tensor(p[score_key]) if isinstance(p, Mapping) else None for p in y_pred]
    if any(s is None for s in scores):
        raise ValueError(f"predictions must be dicts holding {box_key!r} and {score_key!r}.")
    gts = [_boxes(g, box_key) for g in y]
    return boxes, scores, gts


class LocalizationAccuracyMetric(CumulativeIterationMetric):
    """Cumulative :func:`localization_accuracy`: buffers each image's top-1 overlap, aggregates over images.

    Args:
        thresholds: one threshold (``aggregate`` gives a scalar) or several (a ``(T,)`` tensor).
        overlap: ``"iou"`` or ``"iobb"``.
        box_key, score_key: keys of boxes and scores in the prediction dicts (targets use ``box_key`` too).
    """

    def __init__(
        self,
        thresholds: float | Sequence[float] = 0.25,
        overlap: str = "iou",
        box_key: str = "boxes",
        score_key: str = "labels_scores",
    ) -> None:
        super().__init__()
        self.scalar = isinstance(thresholds, (int, float))
        self.thresholds = [float(thresholds)] if self.scalar else [float(t) for t in thresholds]
        _overlap_fn(overlap)
        self.overlap, self.box_key, self.score_key = overlap, box_key, score_key

    def _compute_list(self, y_pred, y=None, **kwargs) -> Tensor:  # type: ignore[override]
        boxes, scores, gts = _split(y_pred, y, self.box_key, self.score_key)
        return top1_overlap(boxes, scores, gts, self.overlap)[:, None]

    def _compute_tensor(self, y_pred: Tensor, y: Tensor | None = None, **kwargs) -> Tensor:
        raise ValueError("pass per-image lists of prediction dicts and targets, not a batch tensor.")

    def aggregate(self) -> Tensor:
        buffer = self.get_buffer()
        best = buffer.flatten() if isinstance(buffer, Tensor) else torch.empty(0)
        acc = _accuracy_from_top1(best.float().cpu(), self.thresholds)
        return acc[0] if self.scalar else acc


class BoxRecallMetric(LocalizationAccuracyMetric):
    """Cumulative :func:`box_recall_at_k`.

    Args:
        k: number of top-scored boxes per image.
        thresholds, overlap, box_key, score_key: as :class:`LocalizationAccuracyMetric`.
    """

    def __init__(self, k: int = 10, thresholds: float | Sequence[float] = 0.5, overlap: str = "iou", **kwargs) -> None:
        super().__init__(thresholds=thresholds, overlap=overlap, **kwargs)
        self.k = int(k)

    def _compute_list(self, y_pred, y=None, **kwargs) -> Tensor:  # type: ignore[override]
        boxes, scores, gts = _split(y_pred, y, self.box_key, self.score_key)
        t, fn = torch.as_tensor(self.thresholds), _overlap_fn(self.overlap)
        return torch.stack([_recall_counts(b, s, g, self.k, t, fn) for b, s, g in zip(boxes, scores, gts, strict=True)])

    def aggregate(self) -> Tensor:
        buffer = self.get_buffer()
        if not isinstance(buffer, Tensor) or buffer.numel() == 0:
            recall = torch.full((len(self.thresholds),), float("nan"))
        else:
            total = buffer.sum(0)
            recall = total[:-1] / total[-1] if total[-1] > 0 else torch.full_like(total[:-1], float("nan"))
        return recall[0] if self.scalar else recall


class COCOMAPMetric(Cumulative):
    """Cumulative :func:`coco_map`; ``aggregate`` returns one entry of its dict (``metric_key``) or the dict.

    Args:
        metric_key: e.g. ``"mAP_IoU_0.10_0.50_0.05_MaxDet_100"``; ``None`` returns every value.
        iou_list, iou_range, max_detection: see :func:`coco_map`.
        box_key, score_key: keys of boxes and scores in the prediction dicts.
    """

    def __init__(
        self,
        metric_key: str | None = "mAP_IoU_0.10_0.50_0.05_MaxDet_100",
        iou_list: Sequence[float] = (0.1, 0.5, 0.75),
        iou_range: Sequence[float] = (0.1, 0.5, 0.05),
        max_detection: Sequence[int] = (1, 5, 100),
        box_key: str = "boxes",
        score_key: str = "labels_scores",
    ) -> None:
        super().__init__()
        self.metric_key, self.box_key, self.score_key = metric_key, box_key, score_key
        self.kwargs = {"iou_list": iou_list, "iou_range": iou_range, "max_detection": max_detection}
        self._records: list[tuple[Tensor, Tensor, Tensor]] = []

    def reset(self) -> None:
        super().reset()
        self._records = []

    def __call__(self, y_pred: Sequence[Any], y: Sequence[Any]) -> None:
        # COCO matching needs every box of every image, which do not fit the fixed-shape tensor buffers
        self._records.extend(zip(*_split(y_pred, y, self.box_key, self.score_key), strict=True))

    def aggregate(self) -> float | dict[str, float]:
        if not self._records:
            raise ValueError("COCOMAPMetric.aggregate() called before any prediction was added.")
        boxes, scores, gts = zip(*self._records, strict=True)
        result = coco_map(boxes, scores, gts, **self.kwargs)
        if self.metric_key is None:
            return result
        if self.metric_key not in result:
            raise KeyError(f"{self.metric_key!r} is not among the COCO metric keys {sorted(result)}.")
        return result[self.metric_key]


class PointingGameMetric(CumulativeIterationMetric):
    """Cumulative :func:`pointing_accuracy` of detection dicts: buffers each image's hit, aggregates over images.

    The point of an image is its prediction's ``point_key`` entry (``CAMLocalizer``: the map's peak); a prediction
    without one (a box detector) is scored by the centre of its top-scored box, so every Table 1 method gets the
    metric; a prediction with neither is a miss.

    Args:
        point_key: key of the ``(2,)`` or ``(P, 2)`` point(s) ``(x, y)`` in the prediction dicts.
        tolerance: see :func:`points_in_boxes`.
        box_key, score_key: keys of boxes and scores in the prediction dicts (targets use ``box_key`` too).
    """

    def __init__(
        self,
        point_key: str = "peak",
        tolerance: float = 0.0,
        box_key: str = "boxes",
        score_key: str = "labels_scores",
    ) -> None:
        super().__init__()
        self.point_key, self.tolerance, self.box_key, self.score_key = point_key, float(tolerance), box_key, score_key

    def _point_of(self, pred: Mapping) -> Tensor | None:
        if self.point_key in pred:
            return _point(pred[self.point_key])
        top = _ranked(pred[self.box_key], pred.get(self.score_key), k=1)
        return (top[:, :2] + top[:, 2:]) / 2 if len(top) else None

    def _compute_list(self, y_pred, y=None, **kwargs) -> Tensor:  # type: ignore[override]
        if y is None or len(y_pred) != len(y):
            raise ValueError(
                f"need one prediction per target, got {len(y_pred)} predictions and {len(y or [])} targets."
            )
        if not all(isinstance(p, Mapping) for p in y_pred):
            raise ValueError(f"predictions must be dicts holding {self.point_key!r} or {self.box_key!r}.")
        points = [self._point_of(p) for p in y_pred]
        return points_in_boxes(points, [_boxes(g, self.box_key) for g in y], self.tolerance)[:, None]

    def _compute_tensor(self, y_pred: Tensor, y: Tensor | None = None, **kwargs) -> Tensor:
        raise ValueError("pass per-image lists of prediction dicts and targets, not a batch tensor.")

    def aggregate(self) -> Tensor:
        buffer = self.get_buffer()
        hits = buffer.flatten().float().cpu() if isinstance(buffer, Tensor) else torch.empty(0)
        hits = hits[~torch.isnan(hits)]
        return hits.mean() if len(hits) else torch.tensor(float("nan"))


_DEFAULT_OUTPUT = from_engine(["pred", "label"])


class LocalizationAccuracy(IgniteMetricHandler):
    """Ignite handler of :class:`LocalizationAccuracyMetric` for one threshold (usable as a key metric).

    The default ``output_transform`` reads ``(pred, label)`` of a ``SupervisedEvaluator`` run with
    ``decollate=False`` (detections and target dicts per image).
    """

    def __init__(
        self,
        threshold: float = 0.25,
        overlap: str = "iou",
        output_transform: Callable = _DEFAULT_OUTPUT,
        save_details: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(
            metric_fn=LocalizationAccuracyMetric(threshold, overlap, **kwargs),
            output_transform=output_transform,
            save_details=save_details,
        )


class BoxRecall(IgniteMetricHandler):
    """Ignite handler of :class:`BoxRecallMetric` for one threshold."""

    def __init__(
        self,
        k: int = 10,
        threshold: float = 0.5,
        overlap: str = "iou",
        output_transform: Callable = _DEFAULT_OUTPUT,
        save_details: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(
            metric_fn=BoxRecallMetric(k, threshold, overlap, **kwargs),
            output_transform=output_transform,
            save_details=save_details,
        )


class COCOMAP(IgniteMetricHandler):
    """Ignite handler of :class:`COCOMAPMetric` (a scalar ``metric_key``)."""

    def __init__(
        self,
        metric_key: str = "mAP_IoU_0.10_0.50_0.05_MaxDet_100",
        output_transform: Callable = _DEFAULT_OUTPUT,
        **kwargs,
    ) -> None:
        super().__init__(
            metric_fn=COCOMAPMetric(metric_key, **kwargs),  # type: ignore[arg-type]
            output_transform=output_transform,
            save_details=False,
        )


class PointingGame(IgniteMetricHandler):
    """Ignite handler of :class:`PointingGameMetric` (the bundles' ``val_peak_in_box``).

    The default ``output_transform`` reads ``(pred, label)`` of a ``SupervisedEvaluator`` run with
    ``decollate=False``.
    """

    def __init__(
        self,
        point_key: str = "peak",
        tolerance: float = 0.0,
        output_transform: Callable = _DEFAULT_OUTPUT,
        save_details: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(
            metric_fn=PointingGameMetric(point_key, tolerance, **kwargs),
            output_transform=output_transform,
            save_details=save_details,
        )
