"""The CAM / GradCAM map threshold chosen on a validation split, as the other Table 1 methods are selected on it.

:class:`~monai_xattn.networks.classifier_cam.CAMLocalizer` turns a class-activation map into boxes by thresholding
it; the threshold decides the boxes' size, and a fixed one (0.5 of the map's range) gives regions far larger than a
pneumonia box. Here each candidate of a grid -- fractions of the map's range (``"range"``) and fractions of the
image kept (``"area"``) -- is scored by the top-1 localization accuracy it gives on the validation images with
boxes, and the best is set on the localizer before the test split is evaluated. The maps are computed once per
validation image and every candidate is scored on them.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import Tensor

from monai_xattn.metrics.localization import points_in_boxes, top1_overlap
from monai_xattn.networks.classifier_cam import THRESHOLD_MODES, map_peaks, maps_to_boxes

__all__ = [
    "DEFAULT_THRESHOLD_GRID",
    "TUNING_CRITERIA",
    "threshold_candidates",
    "cam_threshold_overlaps",
    "select_cam_threshold",
    "tune_cam_threshold",
    "untuned_result",
    "CAMThresholdTuner",
]

#: the candidates of :func:`tune_cam_threshold`: fractions of the map's range (Zhou et al. 2016 use 0.2 of the
#: maximum) and fractions of the image kept (pneumonia boxes cover ~1-10 % of a chest film)
DEFAULT_THRESHOLD_GRID: dict[str, tuple[float, ...]] = {
    "range": (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    "area": (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3),
}
#: selection criteria: the mean of the IoU@0.25/0.5/0.75 accuracies (Table 1's three cells), or one of them
TUNING_CRITERIA = ("mean_acc", "acc_iou25", "acc_iou50", "acc_iou75")
_IOU_THRESHOLDS = (0.25, 0.5, 0.75)

logger = logging.getLogger(__name__)


def threshold_candidates(grid: Mapping[str, Iterable[float]] | None = None) -> list[tuple[str, float]]:
    """``[(mode, threshold), ...]`` of a ``{mode: thresholds}`` grid (default :data:`DEFAULT_THRESHOLD_GRID`)."""
    grid = DEFAULT_THRESHOLD_GRID if grid is None else grid
    unknown = set(grid) - set(THRESHOLD_MODES)
    if unknown:
        raise ValueError(f"threshold grid modes must be among {THRESHOLD_MODES}, got {sorted(unknown)}.")
    candidates = [(mode, float(t)) for mode, values in grid.items() for t in values]
    if not candidates:
        raise ValueError("the threshold grid is empty.")
    return candidates


def cam_threshold_overlaps(
    maps: Tensor, gt_boxes: Sequence[Any], candidates: Sequence[tuple[str, float]], min_size: int = 2
) -> Tensor:
    """Top-1 IoU of every image under every candidate threshold.

    Args:
        maps: ``(B, 1, W, H)`` or ``(B, W, H)`` activation maps in MONAI's frame.
        gt_boxes: per image ``(G_i, 4)`` StandardMode ground-truth boxes in the maps' frame.
        candidates: ``(mode, threshold)`` pairs (:func:`threshold_candidates`).
        min_size: see :func:`~monai_xattn.networks.classifier_cam.maps_to_boxes`.

    Returns:
        ``(B, C)``: the best IoU of each image's top-scored box with its ground truth (``nan`` without ground truth).
    """
    columns = []
    for mode, threshold in candidates:
        dets = maps_to_boxes(maps, threshold, min_size, mode)
        columns.append(top1_overlap([d["boxes"] for d in dets], [d["labels_scores"] for d in dets], gt_boxes))
    return torch.stack(columns, 1)


def select_cam_threshold(
    overlaps: Tensor, candidates: Sequence[tuple[str, float]], criterion: str = "mean_acc"
) -> dict[str, Any]:
    """The candidate with the best validation localization, and the whole validation curve.

    Ties (frequent on a few validation images) go to the higher mean top-1 IoU, then to the earlier candidate.

    Args:
        overlaps: ``(N, C)`` top-1 IoUs (:func:`cam_threshold_overlaps`); rows without ground truth (``nan``) are
            left out.
        candidates: the ``C`` ``(mode, threshold)`` pairs.
        criterion: one of :data:`TUNING_CRITERIA`.

    Returns:
        ``{"mode", "threshold", "criterion", "score", "images", "curve"}``; ``curve`` lists per candidate its
        ``mode``, ``threshold``, ``acc_iou25`` / ``acc_iou50`` / ``acc_iou75``, ``mean_acc`` and ``mean_iou``.
    """
    if criterion not in TUNING_CRITERIA:
        raise ValueError(f"criterion must be one of {TUNING_CRITERIA}, got {criterion!r}.")
    if overlaps.ndim != 2 or overlaps.shape[1] != len(candidates):
        raise ValueError(f"overlaps must be (N, {len(candidates)}), got {tuple(overlaps.shape)}.")
    valid = overlaps[~torch.isnan(overlaps).any(1)]
    if len(valid) == 0:
        raise ValueError("no validation image has a ground-truth box: the threshold cannot be tuned.")
    acc = (valid[:, :, None] >= torch.tensor(_IOU_THRESHOLDS)).float().mean(0)  # (C, 3)
    curve = [
        {
            "mode": mode,
            "threshold": threshold,
            "acc_iou25": float(a[0]),
            "acc_iou50": float(a[1]),
            "acc_iou75": float(a[2]),
            "mean_acc": float(a.mean()),
            "mean_iou": float(iou),
        }
        for (mode, threshold), a, iou in zip(candidates, acc, valid.mean(0), strict=True)
    ]
    best = max(range(len(curve)), key=lambda i: (curve[i][criterion], curve[i]["mean_iou"], -i))
    return {
        "mode": curve[best]["mode"],
        "threshold": curve[best]["threshold"],
        "criterion": criterion,
        "score": curve[best][criterion],
        "images": len(valid),
        "curve": curve,
    }


def _items(batch: Any, image_key: str, box_key: str) -> list[tuple[Tensor, Tensor]]:
    """``(image (C, W, H), boxes (G, 4))`` of the items of a batch with ground truth (a list of dicts, as
    ``no_collation`` gives, or one dict)."""
    items = batch if isinstance(batch, (list, tuple)) else [batch]
    out = []
    for item in items:
        boxes = torch.as_tensor(item.get(box_key, []), dtype=torch.float32).reshape(-1, 4)
        if len(boxes):
            # a plain tensor: MetaTensor's per-op metadata bookkeeping would slow every layer of the backward pass
            out.append((torch.as_tensor(item[image_key]).as_subclass(Tensor), boxes))
    return out


def tune_cam_threshold(
    localizer: torch.nn.Module,
    data: Iterable[Any],
    grid: Mapping[str, Iterable[float]] | None = None,
    criterion: str = "mean_acc",
    device: torch.device | str | None = None,
    image_key: str = "image",
    box_key: str = "boxes",
    apply: bool = True,
    save_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Choose a :class:`~monai_xattn.networks.classifier_cam.CAMLocalizer`'s threshold on validation images.

    Each image with ground-truth boxes gets its map once; every ``(mode, threshold)`` candidate of ``grid`` is
    scored by ``criterion`` (:func:`select_cam_threshold`), and the best is set on the localizer
    (``threshold``, ``threshold_mode``). Without any validation image with boxes (real MIMIC-CXR, or a tiny
    phantom) the localizer keeps its threshold and the result says so (``"tuned": false``) with a warning.

    Args:
        localizer: a ``CAMLocalizer`` (its weights loaded).
        data: batches of preprocessed samples (lists of dicts, e.g. a ``DataLoader`` with ``no_collation``, or
            single dicts) with ``image_key`` ``(C, W, H)`` and ``box_key`` ``(G, 4)`` in the image's frame.
        grid: ``{mode: thresholds}`` (default :data:`DEFAULT_THRESHOLD_GRID`).
        criterion: one of :data:`TUNING_CRITERIA`.
        device: where the maps are computed (default: the localizer's parameters').
        image_key, box_key: keys of the samples.
        apply: set the chosen threshold on ``localizer``.
        save_path: write the result as JSON there.

    Returns:
        :func:`select_cam_threshold`'s dict with ``"tuned"``, ``"method"`` and the validation ``peak_in_box``
        rate (a property of the maps, the same for every threshold); ``{"tuned": False, "reason", "mode",
        "threshold", ...}`` without validation boxes.
    """
    candidates = threshold_candidates(grid)
    if device is None:
        device = next(localizer.parameters()).device
    was_training = localizer.training
    localizer.eval()
    overlaps, peaks_in = [], []
    for batch in data:
        items = _items(batch, image_key, box_key)
        if not items:
            continue
        images = torch.stack([image for image, _ in items]).to(device)
        maps = localizer.class_activation_maps(images).cpu()
        boxes = [b for _, b in items]
        overlaps.append(cam_threshold_overlaps(maps, boxes, candidates, localizer.min_size))
        peaks_in.append(points_in_boxes(list(map_peaks(maps)), boxes))
    localizer.train(was_training)
    if not overlaps:
        result = untuned_result(localizer, "no validation image has a ground-truth box", criterion)
        logger.warning(
            f"CAM threshold not tuned ({result['reason']}): keeping {result['mode']} threshold {result['threshold']}."
        )
    else:
        hits = torch.cat(peaks_in)
        result = {
            "tuned": True,
            "method": getattr(localizer, "method", None),
            **select_cam_threshold(torch.cat(overlaps), candidates, criterion),
            "peak_in_box": float(hits.mean()) if len(hits) else math.nan,
        }
        if apply:
            localizer.threshold, localizer.threshold_mode = result["threshold"], result["mode"]
        logger.info(
            f"CAM threshold ({result['method']}) on {result['images']} validation images: {result['mode']} "
            f"{result['threshold']} ({criterion} {result['score']:.3f})."
        )
    _save(result, save_path)
    return result


def untuned_result(localizer: torch.nn.Module, reason: str, criterion: str = "mean_acc") -> dict[str, Any]:
    """What :func:`tune_cam_threshold` reports when it leaves the localizer's threshold as configured."""
    return {
        "tuned": False,
        "reason": reason,
        "method": getattr(localizer, "method", None),
        "mode": localizer.threshold_mode,
        "threshold": localizer.threshold,
        "criterion": criterion,
        "images": 0,
        "curve": [],
    }


def _save(result: Mapping[str, Any], save_path: str | os.PathLike | None) -> None:
    if save_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(save_path)), exist_ok=True)
        with open(save_path, "w") as f:
            json.dump(result, f, indent=1)


class CAMThresholdTuner:
    """Ignite handler: at the evaluator's start, :func:`tune_cam_threshold` on ``data`` for ``engine.network``.

    Attach it after the ``CheckpointLoader`` (handlers of one event run in attach order) so the maps come from the
    trained weights. The result is kept in ``self.result`` and written to ``save_path``.

    Args:
        data: validation batches (see :func:`tune_cam_threshold`); evaluated once, at the first start.
        grid, criterion, image_key, box_key: see :func:`tune_cam_threshold`.
        save_path: JSON of the choice and the validation curve.
        enabled: ``False`` leaves the localizer's threshold as configured (and ``save_path`` says so, so an
            evaluation's outputs always name the threshold its boxes came from).
    """

    def __init__(
        self,
        data: Iterable[Any],
        grid: Mapping[str, Iterable[float]] | None = None,
        criterion: str = "mean_acc",
        save_path: str | os.PathLike | None = None,
        image_key: str = "image",
        box_key: str = "boxes",
        enabled: bool = True,
    ) -> None:
        threshold_candidates(grid)  # a bad grid fails when the config is parsed, not after the checkpoint loads
        if criterion not in TUNING_CRITERIA:
            raise ValueError(f"criterion must be one of {TUNING_CRITERIA}, got {criterion!r}.")
        self.data, self.grid, self.criterion, self.save_path = data, grid, criterion, save_path
        self.image_key, self.box_key, self.enabled = image_key, box_key, enabled
        self.result: dict[str, Any] | None = None

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if self.result is not None:
            return
        network = engine.network  # type: ignore[attr-defined]
        if not self.enabled:
            self.result = untuned_result(network, "tuning disabled (cam_tune false)", self.criterion)
            _save(self.result, self.save_path)
            return
        self.result = tune_cam_threshold(
            network,
            self.data,
            self.grid,
            self.criterion,
            device=getattr(engine.state, "device", None),
            image_key=self.image_key,
            box_key=self.box_key,
            save_path=self.save_path,
        )
