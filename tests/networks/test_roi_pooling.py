"""RoiAlignMean equals torchvision's MultiScaleRoIAlign averaged over its bins, values and gradients."""

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign

from monai_xattn.networks.roi_pooling import RoiAlignMean


def _reference(features, boxes, image_size, output_size=7, sampling_ratio=2):
    pool = MultiScaleRoIAlign(list(features), output_size, sampling_ratio)
    # torchvision's last axis is x: the boxes' axes swap, the maps stay as they are
    pooled = pool(features, list(boxes[..., [1, 0, 3, 2]]), [tuple(image_size)] * boxes.shape[0])
    return pooled.mean(dim=(-2, -1)).view(*boxes.shape[:2], -1)


def _case(seed, levels=3, image_size=(128, 96), batch=2, rois=24, channels=5):
    g = torch.Generator().manual_seed(seed)
    shapes = {
        str(k): (batch, channels, image_size[0] >> (k + 1), image_size[1] >> (k + 1)) for k in range(1, levels + 1)
    }
    features = {k: torch.randn(v, generator=g, dtype=torch.float64).requires_grad_() for k, v in shapes.items()}
    size = torch.tensor(image_size, dtype=torch.float64)
    lo = torch.rand(batch, rois, 2, generator=g, dtype=torch.float64) * 1.4 * size - 0.2 * size
    # sizes from sub-pixel to larger than the image, cubed so that every level gets ROIs
    wh = torch.rand(batch, rois, 2, generator=g, dtype=torch.float64) ** 3 * size
    boxes = torch.cat([lo, lo + wh], dim=-1)
    boxes[0, 0] = torch.tensor([10.0, 10.0, 10.3, 10.2])  # under a pixel
    boxes[0, 1] = torch.tensor([-50.0, -50.0, -20.0, -30.0])  # outside the image
    boxes[0, 2] = torch.tensor([0.0, 0.0, 0.0, 0.0])  # a padded row of RoiDetector
    boxes[-1, -1] = torch.tensor([image_size[0] - 0.1, 5.0, image_size[0] + 9.0, 50.0])  # over the far border
    return features, boxes


@pytest.mark.parametrize("seed", range(30))
def test_equals_torchvision_values_and_gradients(seed):
    levels = 1 + seed % 3
    image_size = [(128, 96), (64, 64), (96, 160)][seed % 3]
    features, boxes = _case(seed, levels=levels, image_size=image_size)
    pool = RoiAlignMean(list(features))
    ours = pool(features, boxes, image_size)
    ref = _reference(features, boxes, image_size)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)
    weights = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    grads = torch.autograd.grad((ours * weights).sum(), list(features.values()))
    ref_grads = torch.autograd.grad((ref * weights).sum(), list(features.values()))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("output_size, sampling_ratio", [(3, 1), (5, 4), (7, 0), (4, -1)])
def test_other_bins_and_adaptive_sampling(output_size, sampling_ratio):
    features, boxes = _case(7)
    ours = RoiAlignMean(list(features), output_size, sampling_ratio)(features, boxes, (128, 96))
    ref = _reference(features, boxes, (128, 96), output_size, sampling_ratio)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_float32_and_no_gradient_to_boxes():
    features, boxes = _case(3)
    features = {k: v.detach().float().requires_grad_() for k, v in features.items()}
    boxes = boxes.float().requires_grad_()
    ours = RoiAlignMean(list(features))(features, boxes, (128, 96))
    torch.testing.assert_close(ours, _reference(features, boxes.detach(), (128, 96)), rtol=1e-5, atol=1e-6)
    ours.sum().backward()
    assert boxes.grad is None and all(f.grad is not None for f in features.values())


def test_inconsistent_map_scale_is_refused():
    features = {"a": torch.zeros(1, 2, 32, 8)}
    with pytest.raises(ValueError, match="different scales"):
        RoiAlignMean(["a"])(features, torch.zeros(1, 1, 4), (64, 64))
