"""Boxes for chest X-ray detection: dataset formats -> ``StandardMode``, validation, and aligned pipelines.

Everything box-geometric that MONAI already has is used as is (``monai.data.box_utils`` and
``monai.apps.detection.transforms``: ``ZoomBox``, ``RandFlipBoxd``, ``ClipBoxToImaged``, ``StandardizeEmptyBoxd``,
``BoxToMaskd``/``MaskToBoxd``). What is added:

- :func:`validate_boxes` (error / clip / drop policies); :func:`xywh_to_xyxy` is re-exported from
  :mod:`monai_xattn.utils.boxes`, with which the adapters convert every dataset box once;
- :class:`ResizeBox`/:class:`ResizeBoxd`: resize to a fixed size whatever the input size. MONAI has no
  ``ResizeBoxd``, and ``ZoomBoxd`` takes a fixed zoom factor (and rewrites it on its first call), which cannot
  bring chest X-rays of different sizes to one ``S x S``;
- :class:`BoxLabelsToIndex`/:class:`BoxLabelsToIndexd`: finding names -> class indices;
- :func:`detection_train_transforms`/:func:`detection_eval_transforms`, and :func:`boxes_to_original` to map
  predictions back to the original pixels.

Boxes are ``[x0, y0, x1, y1]`` in MONAI's frame, where spatial axis 0 of a ``(C, W, H)`` image is the image x;
coordinates are pixel edges (a box covering the whole image is ``[0, 0, W, H]``), as ``monai.data.box_utils``
assumes (``TO_REMOVE = 0``).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.apps.detection.transforms.array import ZoomBox
from monai.apps.detection.transforms.dictionary import ClipBoxToImaged, RandFlipBoxd, StandardizeEmptyBoxd
from monai.config import KeysCollection
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    MapTransform,
    NormalizeIntensityd,
    Resize,
    SpatialPadd,
    Transform,
)
from monai.utils import ensure_tuple_rep

from monai_xattn.transforms.io import LoadCXRd
from monai_xattn.utils.boxes import xywh_to_xyxy

__all__ = [
    "BOX_SCALE_KEY",
    "DEFAULT_LABEL_NAMES",
    "BoxLabelsToIndex",
    "BoxLabelsToIndexd",
    "ResizeBox",
    "ResizeBoxd",
    "boxes_to_original",
    "detection_eval_transforms",
    "detection_train_transforms",
    "validate_boxes",
    "xywh_to_xyxy",
]

logger = logging.getLogger(__name__)

#: default finding name -> class index of the detection pipelines.
DEFAULT_LABEL_NAMES: dict[str, int] = {"Pneumonia": 0}
#: meta key (on the image) holding the per-axis factor the boxes were scaled by.
BOX_SCALE_KEY = "box_scale"


def validate_boxes(
    boxes: Sequence[Sequence[float]] | np.ndarray,
    image_size: Sequence[int],
    *,
    sample: str,
    policy: str = "error",
    tolerance: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Check that ``StandardMode`` boxes are well formed and inside a ``[W, H]`` image.

    Args:
        boxes: ``(N, 4)`` ``[x0, y0, x1, y1]`` boxes in pixels.
        image_size: ``[W, H]`` of the image the boxes belong to.
        sample: id or path of the sample, named in errors and warnings.
        policy: what to do with a box reaching outside the image: ``"error"`` raises, ``"clip"`` clips it to the
            image (a warning counts them), ``"drop"`` removes it (likewise counted).
        tolerance: pixels a box may overhang the image before it counts as outside (annotation tools often
            write ``x1 = W + 0.5``); within the tolerance boxes are clipped silently.

    Returns:
        ``(boxes, n_changed)``: the float64 ``(M, 4)`` boxes kept and how many were clipped or dropped.

    Raises:
        ValueError: non-finite or inverted (``x1 <= x0`` or ``y1 <= y0``) boxes, whatever the policy, or boxes
            outside the image under ``policy="error"``.
    """
    if policy not in ("error", "clip", "drop"):
        raise ValueError(f"policy must be 'error', 'clip' or 'drop', got {policy!r}.")
    array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(array).all():
        raise ValueError(f"{sample}: non-finite box coordinates {array.tolist()}.")
    inverted = (array[:, 2] <= array[:, 0]) | (array[:, 3] <= array[:, 1])
    if inverted.any():
        raise ValueError(f"{sample}: boxes with x1 <= x0 or y1 <= y0: {array[inverted].tolist()}.")
    upper = np.asarray([*image_size, *image_size], dtype=np.float64)
    outside = ((array < -tolerance) | (array > upper + tolerance)).any(axis=1)
    if outside.any():
        if policy == "error":
            raise ValueError(
                f"{sample}: {int(outside.sum())} box(es) outside the {list(image_size)} image: "
                f"{array[outside].tolist()}."
            )
        logger.warning("%s: %s %d box(es) outside the %s image.", sample, policy, int(outside.sum()), image_size)
        if policy == "drop":
            array = array[~outside]
    clipped = np.clip(array, 0.0, upper)
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    if empty.any():  # clipping a box lying wholly outside leaves nothing of it
        if policy == "error":
            raise ValueError(f"{sample}: box(es) with no area inside the image: {array[empty].tolist()}.")
        clipped = clipped[~empty]
    return clipped, int(outside.sum())


def _target_size(src: Sequence[int], spatial_size: Sequence[int], keep_aspect: bool) -> list[int]:
    if not keep_aspect:
        return [int(s) for s in spatial_size]
    scale = min(t / s for t, s in zip(spatial_size, src, strict=True))
    return [max(1, int(round(s * scale))) for s in src]


class ResizeBox(Transform):
    """Scale boxes to match an image resized from ``src_spatial_size`` to ``spatial_size``.

    Args:
        spatial_size: target ``(W, H)`` (an int for both axes).
        keep_aspect: scale both axes by the same factor so the longer side fits ``spatial_size`` (the image is
            then padded at the end by the pipelines, which leaves box coordinates unchanged).
    """

    def __init__(self, spatial_size: Sequence[int] | int, keep_aspect: bool = False) -> None:
        self.spatial_size = ensure_tuple_rep(spatial_size, 2)
        self.keep_aspect = keep_aspect

    def zoom(self, src_spatial_size: Sequence[int]) -> list[float]:
        """Per-axis factor (resized size / source size) for an image of ``src_spatial_size``."""
        dst = _target_size(src_spatial_size, self.spatial_size, self.keep_aspect)
        return [d / float(s) for d, s in zip(dst, src_spatial_size, strict=True)]

    def __call__(self, boxes: torch.Tensor | np.ndarray, src_spatial_size: Sequence[int]) -> torch.Tensor | np.ndarray:
        """Boxes ``(N, 4)`` of an image of ``src_spatial_size`` -> boxes of the resized image."""
        return ZoomBox(zoom=self.zoom(src_spatial_size), keep_size=False)(boxes, src_spatial_size=src_spatial_size)


class ResizeBoxd(MapTransform):
    """Resize images to a fixed size and scale their boxes to match (MONAI's missing ``ResizeBoxd``).

    The factor used is written to each image's meta under ``"box_scale"`` (``[zoom_x, zoom_y]``) for
    :func:`boxes_to_original`.

    Args:
        image_keys: images ``(C, W, H)`` to resize.
        box_keys: boxes ``(N, 4)`` to scale, one per reference image.
        box_ref_image_keys: the image each box key belongs to (its size before resizing sets the factor).
        spatial_size: target ``(W, H)`` (an int for both axes).
        keep_aspect: see :class:`ResizeBox`.
        mode: interpolation of ``monai.transforms.Resize`` (``"area"`` suits downsampling).
        allow_missing_keys: skip absent keys (e.g. no boxes at inference).
    """

    def __init__(
        self,
        image_keys: KeysCollection,
        box_keys: KeysCollection,
        box_ref_image_keys: KeysCollection,
        spatial_size: Sequence[int] | int,
        keep_aspect: bool = False,
        mode: str = "area",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(image_keys, allow_missing_keys)
        self.box_keys = (box_keys,) if isinstance(box_keys, str) else tuple(box_keys)
        refs = (box_ref_image_keys,) if isinstance(box_ref_image_keys, str) else tuple(box_ref_image_keys)
        self.box_ref_image_keys = ensure_tuple_rep(refs[0], len(self.box_keys)) if len(refs) == 1 else refs
        if len(self.box_ref_image_keys) != len(self.box_keys):
            raise ValueError("box_ref_image_keys must name one image per box key.")
        self.box_resizer = ResizeBox(spatial_size, keep_aspect)
        self.mode = mode

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        # boxes first: they need the reference image's size before it is resized
        for box_key, ref_key in zip(self.box_keys, self.box_ref_image_keys, strict=True):
            if box_key in d:
                d[box_key] = self.box_resizer(d[box_key], src_spatial_size=d[ref_key].shape[1:])
            elif not self.allow_missing_keys:
                raise KeyError(f"Key `{box_key}` of transform `{type(self).__name__}` was missing in the data.")
        for key in self.key_iterator(d):
            src = d[key].shape[1:]
            zoom = self.box_resizer.zoom(src)
            dst = [int(round(z * s)) for z, s in zip(zoom, src, strict=True)]
            d[key] = Resize(spatial_size=dst, mode=self.mode)(d[key])
            if hasattr(d[key], "meta"):
                d[key].meta[BOX_SCALE_KEY] = torch.tensor(zoom, dtype=torch.float64)  # tensors: see LoadCXR
                # LoadCXR records the size as read; otherwise the size before resizing is the best there is
                d[key].meta.setdefault("original_size", torch.tensor(src, dtype=torch.int64))
        return d


def _sample_name(d: Mapping[Hashable, Any]) -> str:
    for key in ("image_id", "image"):
        value = d.get(key)
        if isinstance(value, str):
            return value
        if hasattr(value, "meta") and "filename_or_obj" in value.meta:
            return str(value.meta["filename_or_obj"])
    return "<sample>"


class BoxLabelsToIndex(Transform):
    """Finding names (``["Pneumonia", ...]``) -> an int64 tensor of class indices.

    Args:
        label_names: name -> class index; integers given instead of names pass through unchanged.
    """

    def __init__(self, label_names: Mapping[str, int] | None = None) -> None:
        self.label_names = dict(DEFAULT_LABEL_NAMES if label_names is None else label_names)

    def __call__(self, labels: Sequence[str | int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Map ``(N,)`` names or indices to an ``(N,)`` int64 tensor; an unknown name raises ``ValueError``."""
        if isinstance(labels, torch.Tensor) or (isinstance(labels, np.ndarray) and labels.dtype.kind in "iu"):
            return torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        indices = []
        for label in labels:
            if isinstance(label, int | np.integer):
                indices.append(int(label))
            elif label in self.label_names:
                indices.append(self.label_names[label])
            else:
                raise ValueError(f"unknown box label {label!r}; label_names has {sorted(self.label_names)}.")
        return torch.as_tensor(indices, dtype=torch.int64)


class BoxLabelsToIndexd(MapTransform):
    """Dictionary wrapper of :class:`BoxLabelsToIndex`; errors name the sample (``image_id`` or image path).

    Args:
        keys: keys holding per-box label lists.
        label_names: name -> class index (default ``{"Pneumonia": 0}``).
        allow_missing_keys: skip absent keys.
    """

    def __init__(
        self, keys: KeysCollection, label_names: Mapping[str, int] | None = None, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = BoxLabelsToIndex(label_names)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            try:
                d[key] = self.converter(d[key])
            except ValueError as e:
                raise ValueError(f"{_sample_name(d)}: {e}") from e
        return d


def boxes_to_original(boxes: torch.Tensor | np.ndarray, meta: Mapping[str, Any]) -> torch.Tensor | np.ndarray:
    """Map boxes predicted on a pipeline's resized image back to the original pixels.

    Inverts :class:`ResizeBoxd` (and the end padding of ``keep_aspect``) using the image meta it wrote;
    random flips are not undone, so use it with :func:`detection_eval_transforms`.

    Args:
        boxes: ``(N, 4)`` ``StandardMode`` boxes on the resized image.
        meta: the resized image's meta (``img.meta``), with ``"box_scale"`` and ``"original_size"``.

    Returns:
        ``(N, 4)`` boxes of the same type, clipped to the original ``[W, H]``.
    """
    if BOX_SCALE_KEY not in meta:
        raise KeyError(f"meta has no {BOX_SCALE_KEY!r}: the image did not pass through ResizeBoxd.")
    scale = np.asarray(torch.as_tensor(meta[BOX_SCALE_KEY]), dtype=np.float64).reshape(-1)[:2]
    upper = np.asarray(torch.as_tensor(meta["original_size"]), dtype=np.float64).reshape(-1)[:2]
    if isinstance(boxes, torch.Tensor):
        s = torch.as_tensor(np.tile(scale, 2), dtype=boxes.dtype, device=boxes.device)
        u = torch.as_tensor(np.tile(upper, 2), dtype=boxes.dtype, device=boxes.device)
        return torch.minimum((boxes / s).clamp(min=0), u)
    return np.minimum(np.clip(np.asarray(boxes) / np.tile(scale, 2), 0, None), np.tile(upper, 2))


class _ClipBoxToImagedIfPresent(ClipBoxToImaged):
    """``ClipBoxToImaged`` that passes samples without boxes through (it ignores ``allow_missing_keys``)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        if any(key not in data for key in (*self.box_keys, *self.label_keys)):
            return dict(data)
        return super().__call__(data)


def _detection_transforms(
    train: bool,
    image_key: str,
    box_key: str,
    label_key: str,
    size: Sequence[int] | int,
    flip_prob: float,
    flip_axes: Sequence[int],
    label_names: Mapping[str, int] | None,
    keep_aspect: bool,
    normalize: str | tuple[float, float],
    load: bool,
    loader_kwargs: Mapping[str, Any] | None,
    channel_dim: int | str | None,
) -> Compose:
    # inference datalists carry no boxes: the box steps skip them at evaluation
    missing_ok = not train
    size = ensure_tuple_rep(size, 2)
    xforms: list[Any] = []
    if load:
        xforms.append(LoadCXRd(image_key, **dict(loader_kwargs or {})))
    xforms += [
        EnsureChannelFirstd(image_key, channel_dim=channel_dim),
        EnsureTyped(box_key, dtype=torch.float32, track_meta=False, allow_missing_keys=missing_ok),
        StandardizeEmptyBoxd(box_key, box_ref_image_keys=image_key, allow_missing_keys=missing_ok),
        BoxLabelsToIndexd(label_key, label_names, allow_missing_keys=missing_ok),
        ResizeBoxd(image_key, box_key, image_key, size, keep_aspect=keep_aspect, allow_missing_keys=missing_ok),
    ]
    clip = _ClipBoxToImagedIfPresent if missing_ok else ClipBoxToImaged
    xforms.append(clip(box_key, label_key, image_key, remove_empty=True))
    if normalize == "zscore":
        xforms.append(NormalizeIntensityd(image_key))
    elif isinstance(normalize, tuple | list):
        xforms.append(NormalizeIntensityd(image_key, subtrahend=normalize[0], divisor=normalize[1]))
    elif normalize != "none":
        raise ValueError(f"normalize must be 'zscore', 'none' or (mean, std), got {normalize!r}.")
    if keep_aspect:
        # after normalisation, so the padding is the mean and not in the statistics; at the end, so the origin
        # (and every box) stays where it is
        xforms.append(SpatialPadd(image_key, spatial_size=size, method="end"))
    if train:
        for axis in flip_axes:
            xforms.append(RandFlipBoxd(image_key, box_key, image_key, prob=flip_prob, spatial_axis=axis))
    xforms.append(EnsureTyped(image_key, dtype=torch.float32))
    return Compose(xforms)


def detection_train_transforms(
    image_key: str = "image",
    box_key: str = "boxes",
    label_key: str = "box_labels",
    size: Sequence[int] | int = 256,
    flip_prob: float = 0.5,
    flip_axes: Sequence[int] = (0,),
    label_names: Mapping[str, int] | None = None,
    keep_aspect: bool = False,
    normalize: str | tuple[float, float] = "zscore",
    load: bool = True,
    loader_kwargs: Mapping[str, Any] | None = None,
    channel_dim: int | str | None = None,
) -> Compose:
    """Training pipeline for ``monai.apps.detection``'s ``RetinaNetDetector``.

    ``LoadCXRd`` -> channel first -> boxes to a float ``(N, 4)`` tensor -> labels to int64 indices -> resize to
    ``size`` with boxes scaled alike (:class:`ResizeBoxd`) -> clip boxes to the image -> intensity normalisation ->
    (``keep_aspect``) end padding -> random flips (image and boxes together) -> ``EnsureTyped``. The image stays ``(1, W, H)``; the result's
    ``image_key``, ``box_key`` and ``label_key`` feed ``detector(images, targets)`` after
    ``detector.set_target_keys(box_key, label_key)``.

    Args:
        image_key: image path (or loaded image if ``load=False``).
        box_key: ``StandardMode`` boxes in original pixels, ``[]`` for none.
        label_key: one finding name (or index) per box.
        size: output ``(W, H)`` (an int for a square).
        flip_prob: probability of each flip. A horizontal flip swaps the patient's left and right: set 0 when
            the targets or attributes mention laterality (the cross-attention model does).
        flip_axes: spatial axes flipped independently (0 = horizontal, the default; chest films are never
            upside down).
        label_names: finding name -> class index (default ``{"Pneumonia": 0}``).
        keep_aspect: scale the longer side to ``size`` and pad the end of the shorter one (after normalisation,
            so with the mean for ``"zscore"``), instead of stretching.
        normalize: ``"zscore"`` (per image), ``"none"`` (keep ``LoadCXR``'s ``[0, 1]``) or a fixed ``(mean, std)``.
        load: start with ``LoadCXRd``; ``False`` when the image is already loaded (e.g. by ``LoadImaged``).
        loader_kwargs: passed to ``LoadCXRd`` (``voi``, ``window_index``, ``normalize``, ...).
        channel_dim: passed to ``EnsureChannelFirstd``; ``None`` reads it from the image's meta (``LoadCXRd`` and
            ``LoadImaged`` write it), ``0`` for a plain ``(1, W, H)`` tensor, ``"no_channel"`` for ``(W, H)``.
    """
    return _detection_transforms(
        True,
        image_key,
        box_key,
        label_key,
        size,
        flip_prob,
        flip_axes,
        label_names,
        keep_aspect,
        normalize,
        load,
        loader_kwargs,
        channel_dim,
    )


def detection_eval_transforms(
    image_key: str = "image",
    box_key: str = "boxes",
    label_key: str = "box_labels",
    size: Sequence[int] | int = 256,
    label_names: Mapping[str, int] | None = None,
    keep_aspect: bool = False,
    normalize: str | tuple[float, float] = "zscore",
    load: bool = True,
    loader_kwargs: Mapping[str, Any] | None = None,
    channel_dim: int | str | None = None,
) -> Compose:
    """Evaluation/inference pipeline: :func:`detection_train_transforms` without the random flips.

    Boxes and labels are optional (inference datalists have none). Predictions on the resized image map back to
    original pixels with :func:`boxes_to_original` and the output image's meta. Arguments as in
    :func:`detection_train_transforms`.
    """
    return _detection_transforms(
        False,
        image_key,
        box_key,
        label_key,
        size,
        0.0,
        (),
        label_names,
        keep_aspect,
        normalize,
        load,
        loader_kwargs,
        channel_dim,
    )
