"""RoiDetector: ROI outputs in train/eval, axis convention of the ROI features, freezing, weight loading."""

from __future__ import annotations

import argparse

import pytest
import torch
import torchvision
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from torchvision.models.feature_extraction import create_feature_extractor

from monai_xattn.networks import ROI_GEOMETRY_FIELDS, create_roi_detector, load_backbone_weights, load_detector_weights

SIZE = (96, 64)  # (W, H): non-square so that a swapped axis cannot go unnoticed
ANCHORS = ((16, 16), (24, 12), (12, 24))


def _detector(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault("n_rois", 6)
    return create_roi_detector(depth=18, base_anchor_shapes=ANCHORS, **kwargs)


def _targets():
    return [
        {"boxes": torch.tensor([[10.0, 20.0, 50.0, 40.0]]), "labels": torch.tensor([0])},
        {"boxes": torch.tensor([[30.0, 10.0, 90.0, 40.0], [5.0, 5.0, 20.0, 30.0]]), "labels": torch.tensor([0, 0])},
    ]


def _images(seed: int = 0):
    return torch.rand(2, 1, *SIZE, generator=torch.Generator().manual_seed(seed))


def test_shapes_train_and_eval():
    det = _detector(n_negatives=4)
    det.train()
    out = det.forward_rois(_images(), _targets())
    assert set(out["losses"]) == {"classification", "box_regression"}
    assert all(torch.isfinite(v) for v in out["losses"].values())
    rois, neg = out["rois"], out["negatives"]
    assert rois["r"].shape == (2, 6, 256) and rois["s"].shape == (2, 6) and rois["g"].shape == (2, 6, 9)
    assert rois["boxes"].shape == (2, 6, 4) and rois["mask"].dtype == torch.bool
    assert neg["r"].shape == (2, 4, 256)
    assert len(ROI_GEOMETRY_FIELDS) == rois["g"].shape[-1]
    # ranking: top ROIs best first, negatives lowest first and below every top ROI
    assert torch.all(rois["s"][:, :-1] >= rois["s"][:, 1:]) and torch.all(neg["s"][:, :-1] <= neg["s"][:, 1:])
    assert torch.all(neg["s"].max(1).values <= rois["s"].min(1).values)
    # scores and features stay differentiable in training (the cross-attention head may fine-tune the detector)
    (rois["r"].sum() + rois["s"].sum()).backward()
    assert det.network.feature_extractor.body.conv1.weight.grad.abs().sum() > 0

    det.eval()
    with torch.no_grad():
        ev = det.forward_rois(_images())
    assert "losses" not in ev and ev["rois"]["r"].shape == (2, 6, 256)


def test_eval_detections_are_monais():
    # a low threshold gives many detections, so an ordering or NMS difference would show
    det = _detector(score_thresh=0.01, detections_per_img=20)
    det.eval()
    with torch.no_grad():
        ours = det.forward_rois(_images(1))["detections"]
        ref = RetinaNetDetector.forward(det, _images(1))
        assert "detections" not in det.train().forward_rois(_images(1))
    assert sum(len(d["boxes"]) for d in ref) > 5
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a["boxes"], b["boxes"])
        torch.testing.assert_close(a["labels_scores"], b["labels_scores"])


def test_geometry_and_padding_mask():
    # three candidate anchors: at most 3 ROIs survive, the rest is padding
    det = _detector(n_rois=8, roi_candidates=3)
    det.eval()
    with torch.no_grad():
        rois = det.forward_rois(_images())["rois"]
    n_valid = rois["mask"].sum(1)
    assert torch.all(n_valid >= 1) and torch.all(n_valid <= 3)
    assert torch.all(rois["r"][~rois["mask"]] == 0) and torch.all(rois["g"][~rois["mask"]] == 0)
    g, b, m = rois["g"][rois["mask"]], rois["boxes"][rois["mask"]], rois["mask"]
    w, h = SIZE
    torch.testing.assert_close(g[:, 0] * w, b[:, 0])
    torch.testing.assert_close(g[:, 3] * h, b[:, 3])
    torch.testing.assert_close(g[:, 6], (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / (w * h))
    torch.testing.assert_close(g[:, 8] * h, (b[:, 1] + b[:, 3]) / 2)
    assert g.min() >= 0 and g.max() <= 1 and m.any()


def test_roi_features_follow_monai_axes():
    """Replace the FPN maps by coordinate ramps: the pooled ROI feature then reads back the box centre.

    Channel 0 grows along spatial axis 0 (image x), channel 1 along axis 1 (image y). Without the box-axis
    swap for torchvision's RoIAlign the two would come back exchanged.
    """
    det = _detector(n_rois=10)
    det.eval()
    images = _images()

    def ramps(_module, _inputs, output):
        new = {}
        for name, fmap in output.items():
            b, c, fw, fh = fmap.shape
            x = (torch.arange(fw, dtype=fmap.dtype) + 0.5) * SIZE[0] / fw
            y = (torch.arange(fh, dtype=fmap.dtype) + 0.5) * SIZE[1] / fh
            ramp = torch.zeros_like(fmap)
            ramp[:, 0] = x[:, None]
            ramp[:, 1] = y[None, :]
            new[name] = ramp
        return type(output)(new)

    handle = det.network.feature_extractor.register_forward_hook(ramps)
    try:
        with torch.no_grad():
            rois = det.forward_rois(images)["rois"]
    finally:
        handle.remove()
    mask = rois["mask"]
    centre = (rois["boxes"][..., :2] + rois["boxes"][..., 2:]) / 2
    stride = 4  # finest FPN level, where RoIAlign pools boxes of this size
    err = (rois["r"][..., :2] - centre)[mask].abs()
    assert mask.sum() >= 10
    assert err.max() <= stride, err.max()


def test_freeze():
    det = _detector()
    det.freeze()
    det.train()
    assert not det.network.training and all(not p.requires_grad for p in det.network.parameters())
    out = det.forward_rois(_images(), _targets())
    assert "losses" not in out
    assert not out["rois"]["r"].requires_grad and not out["rois"]["s"].requires_grad
    det.freeze(False)
    assert det.network.training and all(p.requires_grad for p in det.network.parameters())


def test_backbone_from_torchvision_resnet(tmp_path):
    tv = torchvision.models.resnet18(weights=None)
    with torch.no_grad():  # non-trivial batch-norm statistics so that they must be loaded, too
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    # a GLoRIA-like checkpoint: the trunk sits under a prefix, inside a "state_dict"
    path = tmp_path / "gloria_like.ckpt"
    torch.save({"state_dict": {f"gloria.img_encoder.model.{k}": v for k, v in tv.state_dict().items()}}, path)
    det = _detector()
    keys = load_backbone_weights(det, path)
    assert keys.missing_keys == []
    assert "fc.weight" in keys.unexpected_keys and any(k.startswith("layer4.") for k in keys.unexpected_keys)

    # the (W, H) backbone on the transposed image equals torchvision on the (H, W) image, transposed back
    tv.eval()
    body = det.network.feature_extractor.body.eval()
    x_hw = torch.rand(1, 1, 64, 96)
    ref = create_feature_extractor(tv, {"layer1": "l1", "layer3": "l3"})(x_hw.repeat(1, 3, 1, 1))
    ours = body(x_hw.transpose(-1, -2))
    torch.testing.assert_close(ours["0"].transpose(-1, -2), ref["l1"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours["2"].transpose(-1, -2), ref["l3"], atol=1e-4, rtol=1e-4)


def test_backbone_loading_errors(tmp_path):
    det = _detector()
    state = torchvision.models.resnet18(weights=None).state_dict()
    two = {**{f"a.{k}": v for k, v in state.items()}, **{f"b.{k}": v for k, v in state.items()}}
    with pytest.raises(ValueError, match="prefix"):
        load_backbone_weights(det, two)
    keys = load_backbone_weights(det, two, prefix="b.")
    assert keys.missing_keys == []
    state.pop("layer1.0.bn1.bias")
    assert load_backbone_weights(det, state).missing_keys == ["layer1.0.bn1.bias"]


def test_detector_checkpoint_roundtrip(tmp_path):
    src, dst = _detector(), create_roi_detector(depth=18, base_anchor_shapes=ANCHORS, n_rois=6)
    path = tmp_path / "model.pt"
    torch.save({"network": src.network.state_dict(), "epoch": torch.tensor(3)}, path)
    load_detector_weights(dst, path)
    src.eval(), dst.eval()
    with torch.no_grad():
        a, b = src.forward_rois(_images()), dst.forward_rois(_images())
    torch.testing.assert_close(a["rois"]["r"], b["rois"]["r"])

    # an argparse.Namespace of options (older Lightning hyper-parameters) is a harmless container: read as a stand-in
    with_options = tmp_path / "options.pt"
    torch.save({"network": src.network.state_dict(), "opts": argparse.Namespace(lr=1.0)}, with_options)
    load_detector_weights(dst, with_options)
    bad = tmp_path / "pickled.pt"
    # a reference to code (here a builtin function) is refused, naming the file and the global
    torch.save({"network": src.network.state_dict(), "hook": print}, bad)
    with pytest.raises(
        ValueError, match=r"pickled.pt: refused by torch.load\(weights_only=True\): it names \['builtins.print'\]"
    ):
        load_detector_weights(dst, bad)
