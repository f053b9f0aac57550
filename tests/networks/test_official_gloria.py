"""The official GLoRIA checkpoint initialises every network that takes GLoRIA weights, in MONAI's frame.

The file is the stand-in built by ``tests/conftest.py::official_gloria`` (Lightning 1.1 structure, foreign classes
absent at load time, a torchvision ResNet-50 trunk with non-trivial batch-norm statistics).
"""

from __future__ import annotations

import pytest
import torch

from monai_xattn.engines.linear_probe import gloria_trunk
from monai_xattn.networks import (
    CXRUNet,
    GLoRIA,
    create_roi_detector,
    load_backbone_weights,
    load_gloria_weights,
    weights_frame,
)
from monai_xattn.networks.roi_detector import _unwrap

TRUNK = "gloria.img_encoder.model."


def _in_our_frame(official, key: str, target: torch.Tensor) -> torch.Tensor:
    """The file's trunk tensor as our 1-channel (W, H) network must hold it."""
    value = official.state.get(TRUNK + key)
    if value is None:  # MONAI's shortcut bias, absent from torchvision: zero is the same function
        assert key.endswith("downsample.0.bias"), key
        return torch.zeros_like(target)
    if key == "conv1.weight" and target.shape[1] == 1:
        value = value.sum(dim=1, keepdim=True)
    return value.transpose(-1, -2) if value.ndim == 4 else value


def _assert_trunk_equals_file(
    official, trunk_state: dict[str, torch.Tensor], stages=("layer1", "layer2", "layer3", "layer4")
) -> None:
    checked = 0
    for key, value in trunk_state.items():
        if key.split(".")[0] in ("conv1", "bn1", *stages):
            torch.testing.assert_close(value, _in_our_frame(official, key, value), rtol=0, atol=0, msg=key)
            checked += 1
    assert checked >= 100  # a ResNet-50 trunk, not an empty intersection


def test_frame_is_detected_from_the_keys(official_gloria):
    assert weights_frame(official_gloria.state) == "HW"
    assert weights_frame(["image_encoder.backbone.conv1.weight"]) == "WH"


def test_unet_detector_probe_and_gloria_hold_the_files_trunk(official_gloria):
    unet = CXRUNet(depth=50, init="gloria", weights=official_gloria.path)
    _assert_trunk_equals_file(official_gloria, unet.encoder.state_dict())
    assert not (unet.init_result.missing or unet.init_result.unexpected or unet.init_result.mismatched)

    detector = create_roi_detector(depth=50, returned_layers=(1, 2, 3))
    load_backbone_weights(detector, official_gloria.path)
    body = _unwrap(detector.network).feature_extractor.body
    _assert_trunk_equals_file(official_gloria, body.state_dict(), stages=("layer1", "layer2", "layer3"))

    _assert_trunk_equals_file(official_gloria, gloria_trunk(official_gloria.path, depth=50).state_dict())

    model = load_gloria_weights(GLoRIA(depth=50, image_input_size=299), official_gloria.path)
    _assert_trunk_equals_file(official_gloria, model.image_encoder.backbone.state_dict())
    heads = {
        "global_proj.weight": "global_embedder.weight",
        "global_proj.bias": "global_embedder.bias",
        "local_proj.weight": "local_embedder.weight",
    }
    for ours, theirs in heads.items():
        assert torch.equal(
            model.image_encoder.state_dict()[ours], official_gloria.state[f"gloria.img_encoder.{theirs}"]
        )
    text = model.text_encoder.model.state_dict()
    for key, value in text.items():
        assert torch.equal(value, official_gloria.state[f"gloria.text_encoder.model.{key}"]), key


def test_network_from_the_file_computes_torchvisions_features(official_gloria):
    """Our encoder on the (W, H) grey image = torchvision's on the upright 3-channel replicated image, transposed."""
    model = load_gloria_weights(GLoRIA(depth=50, image_input_size=None), official_gloria.path).eval()
    tv = official_gloria.trunk.eval()
    upright = torch.rand(2, 1, 96, 128, generator=torch.Generator().manual_seed(0))  # (B, 1, H, W)
    with torch.no_grad():
        x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(upright.expand(-1, 3, -1, -1)))))
        layer3 = tv.layer3(tv.layer2(tv.layer1(x)))
        pooled = tv.avgpool(tv.layer4(layer3)).flatten(1)
        w = official_gloria.state
        local_ref = torch.nn.functional.conv2d(layer3, w["gloria.img_encoder.local_embedder.weight"])
        global_ref = torch.nn.functional.linear(
            pooled, w["gloria.img_encoder.global_embedder.weight"], w["gloria.img_encoder.global_embedder.bias"]
        )
        local, global_ = model.image_encoder(upright.transpose(-1, -2))  # MONAI frame: (B, 1, W, H)
    torch.testing.assert_close(local, local_ref.transpose(-1, -2), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(global_, global_ref, atol=1e-4, rtol=1e-4)


def test_a_trunk_only_file_is_not_a_gloria(tmp_path, official_gloria):
    path = tmp_path / "resnet50.pth"
    torch.save(official_gloria.trunk.state_dict(), path)
    unet = CXRUNet(depth=50, init="imagenet", weights=path)  # a torchvision ResNet initialises the U-Net ...
    _assert_trunk_equals_file(official_gloria, unet.encoder.state_dict())
    with pytest.raises(ValueError, match=r"resnet50\.pth: not a GLoRIA checkpoint .* it holds no text encoder"):
        load_gloria_weights(GLoRIA(depth=50), path)  # ... but not GLoRIA's two encoders
    with pytest.raises(ValueError, match=r"chexpert_resnet50\.ckpt: the weights do not fit this GLoRIA .* depth 50"):
        load_gloria_weights(GLoRIA(depth=18), official_gloria.path)


def test_own_gloria_checkpoint_loads_as_it_is_everywhere(tmp_path):
    """``gloria_pretrain`` output was learned in MONAI's frame: no network may transpose it (the frame comes from
    the keys)."""
    from monai_xattn.networks import GloriaImageEncoder

    encoder = GloriaImageEncoder(embed_dim=8, depth=18)
    path = tmp_path / "model.pt"
    torch.save({"image_encoder": encoder.state_dict(), "text_encoder": {}}, path)
    trunk = encoder.backbone.state_dict()
    assert weights_frame(["image_encoder.backbone.conv1.weight"]) == "WH"
    detector = create_roi_detector(depth=18, returned_layers=(1, 2, 3))
    load_backbone_weights(detector, path)
    body = _unwrap(detector.network).feature_extractor.body.state_dict()
    unet = CXRUNet(depth=18, init="gloria", weights=path).encoder.state_dict()
    probe = gloria_trunk(path, depth=18).state_dict()
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer3.1.conv2.weight", "layer2.0.downsample.0.weight"):
        for loaded in (body, unet, probe):
            assert torch.equal(loaded[key], trunk[key]), key
