"""Phrase grounding metrics of MS-CXR (Boecking et al., ECCV 2022): how well a map over the image singles out the
annotated box(es) of a phrase.

- **CNR** (contrast-to-noise ratio): ``|mean_in - mean_out| / sqrt(var_in + var_out)`` over the pixels inside and
  outside the union of the phrase's boxes (population variances). It is invariant to the map's offset and scale,
  0 for a uniform map, and grows as the map separates box from background. A map with no noise at all (exactly
  box-shaped) would divide by zero: the denominator is bounded below by ``eps`` times the map's range.
  The absolute value makes any non-constant map score above 0, a random one included, and scores a map that
  lights up everything *but* the box as well as one that lights up the box; **signed CNR** (ours) keeps the sign,
  ``(mean_in - mean_out) / sqrt(var_in + var_out)``, so that only maps brighter in the box score above 0.
- **mIoU**: the map is min-max normalised to ``[0, 1]``, thresholded at each of ``thresholds`` (``map >= t``) and
  compared with the box mask; the IoUs are averaged over the thresholds. The thresholds (0.1 ... 0.5) are our
  reading of BioViL's evaluation, configurable; they apply to a normalised map because the maps compared here
  (softmax attention, ROI weights, box indicators) have no common absolute scale.
- **Peak in box**: the share of the map's maximal pixels that lie in the box -- 0 or 1 for a map with one
  peak, the box's area fraction (chance) for a uniform map.

Maps and masks follow MONAI's frame, ``(W, H)``; boxes are ``StandardMode`` (``x0, y0, x1, y1``) in pixels of the
frame they are drawn in. A pixel belongs to a box when its centre does (``x0 <= i + 0.5 < x1``), so adjoining boxes
share no pixel and a box's mask area is its area for integer corners.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "GROUNDING_METRICS",
    "MIOU_THRESHOLDS",
    "box_masks",
    "box_union_mask",
    "contrast_to_noise_ratio",
    "thresholded_iou",
    "peak_in_box",
    "grounding_metrics",
    "mask_metrics",
    "upsample_map",
]

#: the per-phrase metrics :func:`grounding_metrics` returns
GROUNDING_METRICS = ("cnr", "signed_cnr", "miou", "peak_in_box")
#: thresholds of the min-max normalised map averaged by the mIoU
MIOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


def box_masks(boxes: Tensor | Sequence[Sequence[float]], spatial_size: Sequence[int]) -> Tensor:
    """``(N, W, H)`` bool masks, one per box of ``boxes`` ``(N, 4)``, of the pixels whose centre lies in it."""
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    w, h = (int(s) for s in spatial_size)
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    in_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])  # (N, W)
    in_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])  # (N, H)
    return in_x[:, :, None] & in_y[:, None, :]


def box_union_mask(boxes: Tensor | Sequence[Sequence[float]], spatial_size: Sequence[int]) -> Tensor:
    """``(W, H)`` bool mask of the pixels whose centre lies in any of ``boxes`` ``(N, 4)``."""
    return box_masks(boxes, spatial_size).any(dim=0)


def _check(heatmap: Tensor, mask: Tensor) -> None:
    if heatmap.shape != mask.shape or heatmap.ndim != 2:
        raise ValueError(f"expected a 2D map and mask of one shape, got {tuple(heatmap.shape)} and {tuple(mask.shape)}")
    inside = int(mask.sum())
    if inside == 0 or inside == mask.numel():
        raise ValueError(
            f"the box mask covers {inside} of {mask.numel()} pixels: inside and outside must both be non-empty"
        )
    if not torch.isfinite(heatmap).all():
        raise ValueError("the map holds NaN or infinite values")


def contrast_to_noise_ratio(heatmap: Tensor, mask: Tensor, signed: bool = False, eps: float = 1e-6) -> float:
    """CNR of ``heatmap`` ``(W, H)`` between the pixels of ``mask`` ``(W, H)`` and the others (see module doc).

    Args:
        heatmap: the map. mask: the box pixels.
        signed: keep the sign of ``mean_in - mean_out`` (ours); MS-CXR's CNR is its absolute value.
        eps: bounds the noise below by ``eps`` times the map's range (a noiseless box-shaped map).
    """
    heatmap, mask = torch.as_tensor(heatmap, dtype=torch.float64), torch.as_tensor(mask, dtype=torch.bool)
    _check(heatmap, mask)
    inside, outside = heatmap[mask], heatmap[~mask]
    contrast = inside.mean() - outside.mean()
    spread = float(heatmap.max() - heatmap.min())
    noise = (inside.var(unbiased=False) + outside.var(unbiased=False)).sqrt()
    cnr = float(contrast / max(float(noise), eps * spread, 1e-300))
    return cnr if signed else abs(cnr)


def _normalised(heatmap: Tensor) -> Tensor:
    low, high = heatmap.min(), heatmap.max()
    return (heatmap - low) / (high - low) if high > low else torch.zeros_like(heatmap)


def thresholded_iou(heatmap: Tensor, mask: Tensor, thresholds: Sequence[float] = MIOU_THRESHOLDS) -> float:
    """Mean over ``thresholds`` of the IoU between ``normalised(heatmap) >= t`` and ``mask``.

    A uniform map normalises to zeros: nothing passes a positive threshold, IoU 0.
    """
    heatmap, mask = torch.as_tensor(heatmap, dtype=torch.float64), torch.as_tensor(mask, dtype=torch.bool)
    _check(heatmap, mask)
    if not thresholds:
        raise ValueError("thresholded_iou needs at least one threshold")
    levels = torch.as_tensor(list(thresholds), dtype=torch.float64)
    regions = _normalised(heatmap)[None] >= levels[:, None, None]  # (T, W, H)
    intersection = (regions & mask).flatten(1).sum(1)
    union = (regions | mask).flatten(1).sum(1)
    return float((intersection / union).mean())


def peak_in_box(heatmap: Tensor, mask: Tensor) -> float:
    """Share of the map's maximal pixels that lie in ``mask``."""
    heatmap, mask = torch.as_tensor(heatmap, dtype=torch.float64), torch.as_tensor(mask, dtype=torch.bool)
    _check(heatmap, mask)
    peak = heatmap == heatmap.max()
    return float((peak & mask).sum() / peak.sum())


def mask_metrics(heatmap: Tensor, mask: Tensor, thresholds: Sequence[float] = MIOU_THRESHOLDS) -> dict[str, float]:
    """The metrics of :data:`GROUNDING_METRICS` of a map against a mask of the same ``(W, H)``."""
    return {
        "cnr": contrast_to_noise_ratio(heatmap, mask),
        "signed_cnr": contrast_to_noise_ratio(heatmap, mask, signed=True),
        "miou": thresholded_iou(heatmap, mask, thresholds),
        "peak_in_box": peak_in_box(heatmap, mask),
    }


def upsample_map(heatmap: Tensor, frame_size: Sequence[int]) -> Tensor:
    """``(W', H')`` map -> ``frame_size`` ``(W, H)``, bilinear (``align_corners=False``), float64."""
    heatmap = torch.as_tensor(heatmap, dtype=torch.float64)
    if heatmap.ndim != 2:
        raise ValueError(f"expected a (W, H) map, got shape {tuple(heatmap.shape)}")
    size = tuple(int(s) for s in frame_size)
    if size == tuple(heatmap.shape):
        return heatmap
    return F.interpolate(heatmap[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def grounding_metrics(
    heatmap: Tensor,
    boxes: Tensor | Sequence[Sequence[float]],
    frame_size: Sequence[int] | None = None,
    thresholds: Sequence[float] = MIOU_THRESHOLDS,
) -> dict[str, float]:
    """CNR, mIoU and peak-in-box of one phrase's map against its boxes.

    Args:
        heatmap: ``(W', H')`` map over the whole image at any resolution (e.g. a 5 x 5 attention grid); it is
            upsampled bilinearly (``align_corners=False``) to ``frame_size``.
        boxes: ``(N, 4)`` ``StandardMode`` boxes of the phrase, in pixels of ``frame_size``.
        frame_size: ``(W, H)`` of the frame the metrics are computed in; ``None``: the map's own size.
        thresholds: of the mIoU.

    Returns:
        ``{"cnr", "signed_cnr", "miou", "peak_in_box"}``.
    """
    heatmap = torch.as_tensor(heatmap, dtype=torch.float64)
    heatmap = upsample_map(heatmap, heatmap.shape if frame_size is None else frame_size)
    return mask_metrics(heatmap, box_union_mask(boxes, heatmap.shape), thresholds)
