"""CAM / GradCAM localization baselines of Bhalodia et al. (MICCAI 2021, Table 1): an image-level pneumonia
classifier whose class-activation map is turned into boxes.

Maps come from :mod:`monai.visualize` (``CAM`` / ``GradCAM``) with an identity post-processing -- MONAI's
default normaliser inverts the map (min -> 1) -- and are min-max scaled per image here. Boxes: the map is
thresholded (at a fraction of its range, or keeping a fraction of its pixels), each 8-connected component
(``skimage.measure.label``) gives its bounding box, scored by the map's maximum inside the component; the
highest-scored box is the one the IoU@t metric reads. This is the usual CAM-to-box recipe (Zhou et al. 2016 use
20 % of the maximum). No fixed threshold suits every classifier and map resolution: the bundle chooses it on the
validation split (:func:`monai_xattn.engines.cam.tune_cam_threshold`); 0.5 of the range is only the untuned
default. Each map's peak is returned as well, for the pointing game (:func:`monai_xattn.metrics.pointing_accuracy`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from monai.visualize import CAM, GradCAM
from skimage.measure import label, regionprops
from torch import Tensor, nn

from monai_xattn.networks.trunk import resnet_trunk

__all__ = [
    "CAM_METHODS",
    "THRESHOLD_MODES",
    "create_cam_classifier",
    "pneumonia_label_entries",
    "map_peaks",
    "maps_to_boxes",
    "CAMLocalizer",
]

CAM_METHODS = ("cam", "gradcam")
#: how :func:`maps_to_boxes` reads its threshold: a fraction of the map's range, or the fraction of pixels kept
THRESHOLD_MODES = ("range", "area")


def create_cam_classifier(
    depth: int = 18, in_channels: int = 1, num_classes: int = 1, output_stride: int = 16
) -> nn.Module:
    """MONAI ResNet-``depth`` image classifier (one logit per class); its ``layer4`` / ``fc`` feed CAM.

    Args:
        depth: 18, 34 or 50.
        in_channels: image channels.
        num_classes: logits.
        output_stride: stride of ``layer4`` (the CAM map): 16 is MONAI's ResNet as is (its first conv has
            stride 1), 8 drops the downsampling of ``layer4``, 4 also that of ``layer3``. The strides are dropped,
            not replaced by dilation, so the last layers' units also see less of the image (ResNet-18's
            theoretical receptive field: 221 px at 16, 173 at 8, 117 at 4). A finer, more local map can outline a
            finding (64 px at stride 16 is a 4 x 4 map); Zhou et al. (2016) likewise cut their networks to a
            14 x 14 map for CAM. On the 128 px phantom 4 localizes best (``docs/bundles/cxr_cam_baseline.md``),
            at ~5 times the multiply-adds of 16 (11.9 against 2.3 G per 128 px image for ResNet-18).
    """
    # MONAI's stride-1 stem, unlike the other trunks: the output strides below count on it
    net = resnet_trunk(depth, in_channels, stem_stride=1, num_classes=num_classes, depths=(18, 34, 50))
    undone = {16: (), 8: ("layer4",), 4: ("layer3", "layer4")}
    if output_stride not in undone:
        raise ValueError(f"output_stride must be one of {sorted(undone)}, got {output_stride}.")
    for name in undone[output_stride]:
        # the first block of a stage holds its stride-2 convs (the 3x3 and the shortcut's 1x1)
        for module in getattr(net, name)[0].modules():
            if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
                module.stride = (1, 1)
    return net


def pneumonia_label_entries(entries: Iterable[Mapping[str, Any]], finding: str = "Pneumonia") -> list[dict[str, Any]]:
    """Classifier training entries ``{"image", "label"}`` from datalist entries with study ``labels``.

    ``label`` is a ``(1,)`` float tensor: 1 for a positive ``finding``, 0 for negative or blank. Uncertain (-1)
    entries are left out, as are entries without labels.
    """
    out = []
    for entry in entries:
        value = (entry.get("labels") or {}).get(finding)
        if "labels" not in entry or value == -1:
            continue
        out.append({"image": entry["image"], "label": torch.tensor([float(value == 1)])})
    if not out:
        raise ValueError(f"no entry carries a {finding!r} label: the CAM classifier needs image-level labels.")
    return out


def _threshold_masks(scaled: np.ndarray, threshold: float, mode: str) -> np.ndarray:
    """``(B, W, H)`` boolean regions of ``[0, 1]``-scaled maps (see :func:`maps_to_boxes`)."""
    if mode == "range":
        return scaled >= threshold
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"an 'area' threshold is the fraction of pixels kept, in (0, 1], got {threshold}.")
    # the (1 - threshold) quantile of each map: at least a `threshold` fraction of its pixels reach it
    cut = np.quantile(scaled.reshape(len(scaled), -1), 1.0 - threshold, axis=1)
    # a flat map (scaled to all zeros) has no region, as in the "range" mode
    flat = scaled.reshape(len(scaled), -1).max(1) <= 0
    return (scaled >= cut[:, None, None]) & ~flat[:, None, None]


def map_peaks(maps: Tensor) -> Tensor:
    """``(B, 2)`` centres ``(x, y)`` of each map's highest pixel (the first one on ties).

    Args:
        maps: ``(B, 1, W, H)`` or ``(B, W, H)`` maps in MONAI's frame (axis 0 is x).
    """
    if maps.ndim == 4:
        maps = maps[:, 0]
    if maps.ndim != 3:
        raise ValueError(f"maps must be (B, 1, W, H) or (B, W, H), got {tuple(maps.shape)}.")
    flat = maps.detach().flatten(1).argmax(1)
    # pixel i covers [i, i + 1) in the boxes' frame
    return torch.stack([flat // maps.shape[2], flat % maps.shape[2]], 1).float().cpu() + 0.5


def maps_to_boxes(
    maps: Tensor, threshold: float = 0.5, min_size: int = 2, mode: str = "range"
) -> list[dict[str, Tensor]]:
    """Boxes from activation maps by thresholding and connected components, and each map's peak.

    Args:
        maps: ``(B, 1, W, H)`` (or ``(B, W, H)``) maps in MONAI's frame; scaled to ``[0, 1]`` per image here.
        threshold: with ``mode="range"``, the fraction of each map's range above which a pixel belongs to a
            region; with ``mode="area"``, the fraction of each map's pixels kept (the highest; 0.05 keeps the top
            5 %), which fixes the regions' total size whatever the map's contrast.
        min_size: boxes narrower or lower than this (pixels) are dropped.
        mode: ``"range"`` or ``"area"`` (:data:`THRESHOLD_MODES`).

    Returns:
        One dict per image: ``boxes`` ``(K, 4)`` StandardMode ``[x0, y0, x1, y1]``, ``labels_scores`` ``(K,)``
        (the map's maximum in the region), ``labels`` ``(K,)`` zeros, highest score first; ``peak`` ``(2,)`` the
        ``(x, y)`` centre of the map's highest pixel (the first one on ties), the point of the pointing game
        (:func:`monai_xattn.metrics.pointing_accuracy`).
    """
    if mode not in THRESHOLD_MODES:
        raise ValueError(f"mode must be one of {THRESHOLD_MODES}, got {mode!r}.")
    if maps.ndim == 4:
        maps = maps[:, 0]
    if maps.ndim != 3:
        raise ValueError(f"maps must be (B, 1, W, H) or (B, W, H), got {tuple(maps.shape)}.")
    flat = maps.detach().float().flatten(1)
    lo, hi = flat.min(1).values[:, None, None], flat.max(1).values[:, None, None]
    scaled = ((maps.detach().float() - lo) / (hi - lo).clamp(min=1e-8)).cpu().numpy()
    peaks = map_peaks(maps)
    out = []
    for m, mask, peak in zip(scaled, _threshold_masks(scaled, threshold, mode), peaks, strict=True):
        # axis 0 of a MONAI map is x, so regionprops' (min_row, min_col, max_row, max_col) is (x0, y0, x1, y1)
        regions = regionprops(label(mask, connectivity=2), intensity_image=m)
        boxes = np.array([r.bbox for r in regions], dtype=np.float32).reshape(-1, 4)
        scores = np.array([r.intensity_max for r in regions], dtype=np.float32)
        keep = ((boxes[:, 2:] - boxes[:, :2]) >= min_size).all(1)
        boxes, scores = boxes[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")
        out.append(
            {
                "boxes": torch.from_numpy(boxes[order]),
                "labels_scores": torch.from_numpy(scores[order]),
                "labels": torch.zeros(len(order), dtype=torch.long),
                "peak": peak,
            }
        )
    return out


class CAMLocalizer(nn.Module):
    """A trained image classifier + CAM or GradCAM -> boxes, in ``RetinaNetDetector``'s output format.

    In training mode it is the classifier (``forward`` returns logits ``(B, num_classes)``); in eval mode it
    returns one detection dict per image (:func:`maps_to_boxes`), so the detector's evaluation config and metrics
    apply unchanged. GradCAM needs gradients: they are enabled inside ``forward`` even under MONAI's evaluator
    (which runs ``torch.no_grad``).

    Args:
        classifier: e.g. :func:`create_cam_classifier`.
        method: ``"cam"`` or ``"gradcam"``.
        target_layers: layer whose activations make the map (MONAI ResNet: ``"layer4"``).
        fc_layers: CAM's linear layer (MONAI ResNet: ``"fc"``).
        threshold, min_size: see :func:`maps_to_boxes`; ``threshold`` is what
            :func:`monai_xattn.engines.cam.tune_cam_threshold` sets from the validation split.
        threshold_mode: ``mode`` of :func:`maps_to_boxes` (``"range"`` or ``"area"``).
    """

    def __init__(
        self,
        classifier: nn.Module,
        method: str = "gradcam",
        target_layers: str = "layer4",
        fc_layers: str = "fc",
        threshold: float = 0.5,
        min_size: int = 2,
        threshold_mode: str = "range",
    ) -> None:
        super().__init__()
        if method not in CAM_METHODS:
            raise ValueError(f"method must be one of {CAM_METHODS}, got {method!r}.")
        if threshold_mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {threshold_mode!r}.")
        self.classifier, self.method, self.threshold, self.min_size = classifier, method, threshold, min_size
        self.threshold_mode = threshold_mode
        self.target_layers, self.fc_layers = target_layers, fc_layers

    def class_activation_maps(self, images: Tensor) -> Tensor:
        """``(B, 1, W, H)`` maps of the top class (``class_idx=None``; MONAI's ``CAM`` rejects an int index)."""
        identity = lambda x: x  # noqa: E731  (MONAI's default normaliser inverts the map)
        if self.method == "cam":
            cam = CAM(self.classifier, self.target_layers, fc_layers=self.fc_layers, postprocessing=identity)
        else:
            cam = GradCAM(self.classifier, self.target_layers, postprocessing=identity)
        with torch.enable_grad():
            maps = cam(images)
        return maps.detach()

    def forward(self, images: Tensor | list[Tensor], targets: Any = None) -> Tensor | list[dict[str, Tensor]]:
        """Logits ``(B, num_classes)`` in training mode, detections in eval mode; ``targets`` is ignored (it lets
        the detector's ``network(images, targets)`` engine pieces drive this module)."""
        if isinstance(images, (list, tuple)):
            images = torch.stack(list(images))
        if self.training:
            return self.classifier(images)
        maps = self.class_activation_maps(images)
        detections = maps_to_boxes(maps, self.threshold, self.min_size, self.threshold_mode)
        return [{k: v.to(images.device) for k, v in d.items()} for d in detections]
