"""Pieces that let MONAI's stock ``SupervisedTrainer`` / ``SupervisedEvaluator`` train and evaluate a detector.

Detection batches are lists of per-image dicts (``collate_fn=monai.data.utils.no_collation``, images may differ in
size) and the engines run with ``decollate=False``. :class:`DetectionPrepareBatch` turns such a batch into
``detector(images, targets)`` calls: in training mode ``RetinaNetDetector`` returns its loss dict, which
:class:`DetectionLoss` sums; in evaluation mode it ignores the targets and returns detections, which the metric
handlers of :mod:`monai_xattn.metrics.localization` compare with the targets.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.engines.utils import PrepareBatch
from torch import Tensor, nn

from monai_xattn.transforms.box import BOX_SCALE_KEY, boxes_to_original
from monai_xattn.transforms.io import LoadCXR
from monai_xattn.utils.display import detection_overlay

__all__ = [
    "DetectionPrepareBatch",
    "DetectionLoss",
    "DetectionWriter",
    "compile_detector",
    "distribute_detector",
    "loss_output",
]

logger = logging.getLogger(__name__)


class DetectionPrepareBatch(PrepareBatch):
    """Turn a list of sample dicts into ``(images, targets, (targets,), {})`` for MONAI's engines.

    The engine then calls ``network(images, targets)`` and ``loss_function(pred, targets)``.

    Args:
        image_key: key of the ``(C, W, H)`` image in a sample.
        box_key: key of the ``(N, 4)`` StandardMode boxes in a sample.
        label_key: key of the ``(N,)`` integer class labels in a sample (``box_labels`` in our datalists).
        target_keys: ``(box, label)`` keys of the target dicts, the detector's ``target_box_key`` and
            ``target_label_key``.
        require_targets: ``False`` for inference on images without annotations: a sample without boxes then
            gets an empty target.
    """

    def __init__(
        self,
        image_key: str = "image",
        box_key: str = "boxes",
        label_key: str = "labels",
        target_keys: Sequence[str] = ("boxes", "labels"),
        require_targets: bool = True,
    ) -> None:
        self.image_key, self.box_key, self.label_key = image_key, box_key, label_key
        self.require_targets = require_targets
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
            needed = (self.image_key, self.box_key, self.label_key) if self.require_targets else (self.image_key,)
            missing = [k for k in needed if k not in item]
            if missing:
                name = item.get("image_id", item.get(f"{self.image_key}_meta_dict", {}).get("filename_or_obj", i))
                raise KeyError(f"sample {name!r} has no {missing} (keys: {sorted(item)}).")
            images.append(torch.as_tensor(item[self.image_key]).to(device=device, non_blocking=non_blocking, **kwargs))
            boxes = torch.as_tensor(item.get(self.box_key, []), dtype=torch.float32).reshape(-1, 4)
            labels = torch.as_tensor(item.get(self.label_key, []), dtype=torch.long).reshape(-1)
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
    loss = output["loss"]
    return float(loss.detach()) if isinstance(loss, Tensor) else float(loss)


def distribute_detector(detector: RetinaNetDetector, **ddp_kwargs: Any) -> RetinaNetDetector:
    """Wrap ``detector.network`` (where all parameters live) in ``DistributedDataParallel``; returns ``detector``.

    On CUDA the network must already be on its device; ``device_ids`` defaults to that device and
    ``find_unused_parameters`` to ``True`` (batches without boxes).
    """
    net = detector.network
    device = next(net.parameters()).device
    if device.type == "cuda":
        ddp_kwargs.setdefault("device_ids", [device.index])
    # a rank whose batch holds no box leaves the box-regression head out of its loss; without this its gradient
    # all-reduce falls out of step with the other ranks' (gloo: "collective mismatch"), as on RSNA, 3/4 negative
    ddp_kwargs.setdefault("find_unused_parameters", True)
    detector.network = nn.parallel.DistributedDataParallel(net, **ddp_kwargs)
    return detector


def compile_detector(detector: RetinaNetDetector, enabled: bool = True, **compile_kwargs: Any) -> RetinaNetDetector:
    """``torch.compile`` the network of a detector (not the detector: its box selection is data-dependent)."""
    if enabled:
        detector.network = torch.compile(detector.network, **compile_kwargs)
    return detector


class DetectionWriter:
    """Ignite handler writing each image's detections as JSON and, optionally, a picture a person can read.

    Boxes are mapped back to the original image pixels with
    :func:`monai_xattn.transforms.box.boxes_to_original` when the image went through ``ResizeBoxd`` (the
    evaluation pipeline); otherwise they stay in the network's input frame. One ``<image_id>.json`` per image and
    ``predictions.json`` gathering all of them when the run completes, each record::

        {"image": path, "image_id": id,
         "boxes": [[x0, y0, x1, y1], ...],  # MONAI's (W, H) frame: x = column; every box scoring >= score_thresh
         "scores": [...], "labels": [...],  # in the network's order (best first for the bundles')
         "frame": "original" | "network_input",
         "attribute_probs": [...],          # each of image_keys the prediction has (the localizer's, (A,))
         "attributes": {name: prob, ...}}   # with attribute_names: the predicted attributes, most probable first

    The overlay (``overlays=True``), ``<image_id>.png``, is :func:`monai_xattn.utils.display.detection_overlay`:
    the original radiograph, read again with ``loader``, resized so its long side is ``overlay_size`` pixels, with
    the ``overlay_top_k`` best boxes scoring at least ``overlay_min_score`` and their scores, and, with
    ``attribute_names``, the predicted attributes as a caption below it. Where the original cannot be read (an
    in-memory image, a moved file) the network input is drawn instead, its end padding cut off, at the same size.
    The JSON keeps every box above ``score_thresh``, so fewer boxes may be drawn than written.

    Args:
        output_dir: folder for the files (created).
        box_key, score_key, label_key: keys of the detection dicts.
        overlays: also write ``<image_id>.png``.
        score_thresh: boxes below this score are not written (JSON) nor drawn.
        image_keys: per-image (not per-box) entries of the detection dict written when present, as lists (the
            cross-attention localizer's ``attribute_probs``).
        overlay_size: long side of the radiograph in the overlay, pixels.
        overlay_top_k: at most this many boxes are drawn, the highest-scored; ``None`` draws every written box.
        overlay_min_score: boxes below this score are not drawn (they are still written).
        attribute_names: names of the attributes of ``attribute_keys[0]``, in its order (the localizer's
            vocabulary); ``None`` writes and draws no attribute names.
        attribute_keys: ``(probabilities, decisions)`` keys of the detection dict: the ``(A,)`` attribute
            probabilities and the model's ``(A,)`` bool decisions (``attribute_pred``); without the decisions an
            attribute is predicted at probability >= 0.5.
        loader: reads ``image``'s source file for the overlay, returning ``(C, W, H)``; default
            :class:`~monai_xattn.transforms.io.LoadCXR` with its defaults (the bundles' pipelines load with it).

    Raises:
        ValueError: ``attribute_names`` and the predicted probabilities differ in length.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike,
        box_key: str = "boxes",
        score_key: str = "labels_scores",
        label_key: str = "labels",
        overlays: bool = False,
        score_thresh: float = 0.0,
        image_keys: Sequence[str] = ("attribute_probs",),
        overlay_size: int = 1024,
        overlay_top_k: int | None = 3,
        overlay_min_score: float = 0.0,
        attribute_names: Sequence[str] | None = None,
        attribute_keys: Sequence[str] = ("attribute_probs", "attribute_pred"),
        loader: Callable[[str], Any] | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.image_keys = tuple(image_keys)
        self.box_key, self.score_key, self.label_key = box_key, score_key, label_key
        self.overlays, self.score_thresh = overlays, score_thresh
        self.overlay_size, self.overlay_top_k, self.overlay_min_score = overlay_size, overlay_top_k, overlay_min_score
        self.attribute_names = None if attribute_names is None else [str(n) for n in attribute_names]
        self.attribute_keys = tuple(attribute_keys)
        self.loader = LoadCXR() if loader is None else loader
        self._fell_back = False
        self.records: list[dict[str, Any]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self._write_all)

    def _reset(self, engine: Engine) -> None:
        self.records = []
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, engine: Engine) -> None:
        batch, images, preds = engine.state.batch, engine.state.output["image"], engine.state.output["pred"]
        for i, (item, image, pred) in enumerate(zip(batch, images, preds, strict=True)):
            keep = pred[self.score_key] >= self.score_thresh
            boxes = pred[self.box_key][keep].detach().cpu()
            scores = pred[self.score_key][keep].detach().cpu()
            meta = getattr(image, "meta", {})
            source = str(meta.get("filename_or_obj", item.get("image", "")))
            image_id = str(item.get("image_id") or Path(source).stem or f"{engine.state.iteration}_{i}")
            original = BOX_SCALE_KEY in meta
            out_boxes = boxes_to_original(boxes, meta) if original else boxes
            record = {
                "image": source,
                "image_id": image_id,
                "boxes": out_boxes.tolist(),
                "scores": scores.tolist(),
                "labels": pred[self.label_key][keep].detach().cpu().tolist(),
                "frame": "original" if original else "network_input",
            }
            record.update({k: torch.as_tensor(pred[k]).detach().cpu().tolist() for k in self.image_keys if k in pred})
            attributes = self._attributes(pred)
            if attributes is not None:
                record["attributes"] = attributes
            self.records.append(record)
            stem = self.output_dir / Path(image_id).stem
            stem.with_suffix(".json").write_text(json.dumps(record))
            if self.overlays:
                picture, drawn_boxes = self._picture(image, source, boxes, out_boxes, original)
                detection_overlay(
                    picture,
                    drawn_boxes,
                    scores,
                    size=self.overlay_size,
                    top_k=self.overlay_top_k,
                    min_score=self.overlay_min_score,
                    attributes=attributes,
                ).save(stem.with_suffix(".png"), compress_level=1)  # 3x faster than zlib's 6 at 1024 px, 1/3 larger

    def _attributes(self, pred: Mapping[str, Any]) -> dict[str, float] | None:
        """Predicted attribute name -> probability, most probable first; ``None`` without names or probabilities."""
        prob_key, pred_key = (*self.attribute_keys, None)[:2]
        if self.attribute_names is None or prob_key not in pred:
            return None
        probs = torch.as_tensor(pred[prob_key]).detach().cpu().float().reshape(-1)
        if len(probs) != len(self.attribute_names):
            raise ValueError(f"{len(self.attribute_names)} attribute names for {len(probs)} attribute probabilities.")
        chosen = torch.as_tensor(pred[pred_key]).cpu().bool().reshape(-1) if pred_key in pred else probs >= 0.5
        ranked = sorted((k for k in range(len(probs)) if chosen[k]), key=lambda k: -float(probs[k]))
        return {self.attribute_names[k]: round(float(probs[k]), 4) for k in ranked}

    def _picture(
        self, image: Tensor, source: str, boxes: Tensor, out_boxes: Tensor, original: bool
    ) -> tuple[Tensor, Tensor]:
        """The ``(C, W, H)`` image the overlay draws on and the boxes in its pixels.

        The original file when it reads again at the meta's ``original_size``; else the network input without
        ``keep_aspect``'s end padding, resized to the original's aspect ratio (the pipeline may have stretched it)
        at the overlay's size, with the original-pixel boxes scaled to match.
        """
        if not original:
            return image, boxes
        meta = image.meta
        size = [int(v) for v in torch.as_tensor(meta["original_size"]).reshape(-1)[:2]]
        try:
            loaded = self.loader(source)
            if list(loaded.shape[-2:]) == size:
                return loaded, out_boxes
            reason = f"it reads as {list(loaded.shape[-2:])}, not the original_size {size}"
        except Exception as e:  # any unreadable source: the picture falls back, the predictions stand
            reason = f"{type(e).__name__}: {e}"
        # once at warning level: a run over in-memory images would otherwise repeat it for every image
        level = logging.DEBUG if self._fell_back else logging.WARNING
        logger.log(level, "overlay of %s drawn on the network input (%s).", source, reason)
        self._fell_back = True
        zoom = torch.as_tensor(meta[BOX_SCALE_KEY]).reshape(-1)[:2].tolist()
        w, h = (max(1, round(s * z)) for s, z in zip(size, zoom, strict=True))
        crop = torch.as_tensor(image).detach().cpu().float().reshape(-1, *image.shape[-2:])[:1, :w, :h]
        scale = self.overlay_size / max(size)
        target = [max(1, round(s * scale)) for s in size]
        picture = torch.nn.functional.interpolate(crop[None], size=target, mode="bilinear", align_corners=False)[0]
        return picture, out_boxes * scale

    def _write_all(self, engine: Engine) -> None:
        (self.output_dir / "predictions.json").write_text(json.dumps(self.records, indent=1))
