"""Mean RoIAlign feature of each ROI over FPN levels, computed as one weighted sum per ROI.

The cross-attention head needs one vector per ROI: torchvision's ``MultiScaleRoIAlign`` (``aligned=False``, a
fixed ``sampling_ratio``) averaged over its ``output_size x output_size`` bins. That mean is linear in the feature
map, and RoIAlign's bilinear sampling is separable: along each axis a sample point spreads its weight over two
neighbouring rows, and a sample outside ``[-1, size]`` counts zero. So the mean is ``sum_{u,v} A_u B_v F[:, u, v]``
with ``A`` and ``B`` the summed per-axis weights of the ``output_size * sampling_ratio`` sample positions of the ROI
along each axis, divided by their count squared. :class:`RoiAlignMean` builds those weights for all ROIs at once
and takes the sum as one batched matrix product per level, forward and backward. On CPU torchvision's RoIAlign
backward is a scalar loop over every sample of every bin and channel (about 90 ms a step at ResNet-18, 128 px, 64
ROIs: three quarters of the ROI path's cost; see ``benchmarks/roi_detector.py``); the matrix products take well
under a millisecond. Values equal torchvision's to rounding (``tests/networks/test_roi_pooling.py``).

Levels follow torchvision's ``LevelMapper`` (Feature Pyramid Network paper, eq. 1): level
``floor(4 + log2(sqrt(area) / 224))``, clipped to the levels present, each map's scale inferred from its size as
``2 ** round(log2(map size / image size))``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torchvision.ops import MultiScaleRoIAlign

__all__ = ["RoiAlignMean", "roi_axis_weights"]


def roi_axis_weights(lo: Tensor, hi: Tensor, size: int, scale: float, bins: int, sampling_ratio: int) -> Tensor:
    """Summed bilinear weights of RoIAlign's sample positions along one axis.

    Args:
        lo, hi: ``(R,)`` ROI start and end along the axis, in image pixels.
        size: the feature map's length along the axis.
        scale: feature map pixels per image pixel.
        bins: RoIAlign output size along the axis. sampling_ratio: sample points per bin along the axis.

    Returns:
        ``(R, size)``: for each ROI, the sum over its ``bins * sampling_ratio`` sample points of the weight each
        feature row gets (torchvision's ``aligned=False`` rules: ROI length at least 1, samples beyond
        ``[-1, size]`` dropped, clamped at the borders).
    """
    start, end = lo * scale, hi * scale
    bin_size = ((end - start).clamp_min(1.0) / bins).unsqueeze(1)  # (R, 1)
    k = torch.arange(bins * sampling_ratio, device=lo.device)
    pos = (
        start.unsqueeze(1) + (k // sampling_ratio) * bin_size + ((k % sampling_ratio) + 0.5) * bin_size / sampling_ratio
    )
    inside = ((pos >= -1.0) & (pos <= size)).to(pos.dtype)
    pos = pos.clamp_min(0.0)
    low = pos.floor().long()
    edge = low >= size - 1
    low = low.clamp_max(size - 1)
    high = torch.where(edge, low, low + 1)
    frac = torch.where(edge, torch.zeros_like(pos), pos - low.to(pos.dtype))
    weights = pos.new_zeros(lo.shape[0], size)
    weights.scatter_add_(1, low, (1.0 - frac) * inside)
    return weights.scatter_add_(1, high, frac * inside)


class RoiAlignMean(nn.Module):
    """``torchvision.ops.MultiScaleRoIAlign(featmap_names, output_size, sampling_ratio)`` averaged over its bins.

    Args:
        featmap_names: feature maps to pool from, finest first.
        output_size: RoIAlign bins per axis.
        sampling_ratio: sample points per bin and axis; ``<= 0`` (torchvision's adaptive count, which differs between
            ROIs) runs torchvision's ``MultiScaleRoIAlign`` and averages its output.
        canonical_scale, canonical_level: ``LevelMapper``'s ``s0`` and ``k0``.

    Example::

        pool = RoiAlignMean(["1", "2"])
        feats = {"1": torch.rand(2, 8, 32, 32), "2": torch.rand(2, 8, 16, 16)}
        pool(feats, torch.tensor([[[4.0, 4.0, 40.0, 60.0]]]).expand(2, 1, 4), (128, 128)).shape  # (2, 1, 8)
    """

    def __init__(
        self,
        featmap_names: Sequence[str],
        output_size: int = 7,
        sampling_ratio: int = 2,
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> None:
        super().__init__()
        self.featmap_names = list(featmap_names)
        # adaptive sampling (sampling_ratio <= 0) gives every ROI its own number of samples: torchvision pools those
        self.adaptive = (
            MultiScaleRoIAlign(self.featmap_names, output_size, sampling_ratio) if sampling_ratio <= 0 else None
        )
        self.output_size, self.sampling_ratio = int(output_size), int(sampling_ratio)
        self.canonical_scale, self.canonical_level = canonical_scale, canonical_level

    def forward(self, features: Mapping[str, Tensor], boxes: Tensor, image_size: Sequence[int]) -> Tensor:
        """Mean RoIAlign feature of every ROI.

        Args:
            features: maps ``(B, C, S0, S1)`` by name.
            boxes: ``(B, R, 4)`` boxes ``[lo0, lo1, hi0, hi1]`` in image pixels, axis 0 along the maps' dim -2
                (MONAI's StandardMode ``[x0, y0, x1, y1]`` on ``(B, C, W, H)`` maps); no gradient flows to them.
            image_size: ``(S0, S1)`` of the (padded) input images, from which each map's scale is inferred.

        Returns:
            ``(B, R, C)``.
        """
        batch, rois = boxes.shape[:2]
        if self.adaptive is not None:  # torchvision's RoIAlign takes the last axis as x: swap the box axes
            swapped = list(boxes.detach()[..., [1, 0, 3, 2]])
            return (
                self.adaptive(features, swapped, [tuple(image_size)] * batch).mean(dim=(-2, -1)).view(batch, rois, -1)
            )
        maps = [features[name] for name in self.featmap_names]
        flat = boxes.detach().reshape(-1, 4).to(maps[0].dtype if maps[0].is_floating_point() else torch.float32)
        scales = [self._scale(m.shape[-2:], image_size) for m in maps]
        if len(maps) > 1:
            k_min, k_max = -math.log2(scales[0]), -math.log2(scales[-1])
            side = ((flat[:, 2] - flat[:, 0]) * (flat[:, 3] - flat[:, 1])).sqrt()
            level = torch.floor(self.canonical_level + torch.log2(side / self.canonical_scale) + 1e-6)
            level = (level.clamp(min=k_min, max=k_max) - k_min).long()
        else:
            level = torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
        bins, ratio = self.output_size, self.sampling_ratio
        out = None
        for index, (fmap, scale) in enumerate(zip(maps, scales, strict=True)):
            s0, s1 = fmap.shape[-2:]
            on_level = (level == index).to(flat.dtype).unsqueeze(1)
            a0 = roi_axis_weights(flat[:, 0], flat[:, 2], s0, scale, bins, ratio) * on_level
            a1 = roi_axis_weights(flat[:, 1], flat[:, 3], s1, scale, bins, ratio)
            kernel = (a0.unsqueeze(2) * a1.unsqueeze(1)).view(batch, rois, s0 * s1)
            pooled = torch.bmm(kernel.to(fmap.dtype), fmap.flatten(2).transpose(1, 2))  # (B, R, C)
            out = pooled if out is None else out + pooled
        return out / float((bins * ratio) ** 2)

    @staticmethod
    def _scale(map_size: Sequence[int], image_size: Sequence[int]) -> float:
        """torchvision's inferred scale: the power of two nearest to ``map size / image size`` (same on both axes)."""
        found = {2.0 ** round(math.log2(float(m) / float(s))) for m, s in zip(map_size, image_size, strict=True)}
        if len(found) != 1:
            raise ValueError(
                f"feature map {tuple(map_size)} has different scales along its axes for image {image_size}"
            )
        return found.pop()
