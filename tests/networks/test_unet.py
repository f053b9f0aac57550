"""CXRUNet: FlexibleUNet on a GLoRIA-layout ResNet encoder; weight transfer from GLoRIA, torchvision, random."""

from __future__ import annotations

import pytest
import torch
import torchvision

from monai_xattn.networks import CXRUNet, GloriaImageEncoder, load_encoder_weights
from monai_xattn.networks.unet import CXRResNetEncoder


@pytest.fixture(scope="module")
def gloria_checkpoint(tmp_path_factory):
    """A checkpoint as bundles/gloria_pretrain writes it, with every trunk tensor (BN statistics too) non-default."""
    torch.manual_seed(0)
    encoder = GloriaImageEncoder(embed_dim=16, depth=18)
    with torch.no_grad():
        for name, tensor in encoder.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
            elif name.endswith("num_batches_tracked"):
                tensor.fill_(7)
    path = tmp_path_factory.mktemp("gloria") / "model.pt"
    torch.save({"image_encoder": encoder.state_dict(), "text_encoder": {"model.x": torch.zeros(1)}}, path)
    return path, encoder.backbone.state_dict()


def test_every_encoder_tensor_equals_the_gloria_checkpoint(gloria_checkpoint):
    path, trunk = gloria_checkpoint
    net = CXRUNet(depth=18, init="gloria", weights=path)
    encoder_state = net.encoder.state_dict()
    assert set(encoder_state) == set(trunk)
    for key, value in trunk.items():
        assert torch.equal(encoder_state[key], value), key
    result = net.init_result
    assert sorted(result.loaded) == sorted(trunk)
    assert not (result.missing or result.unexpected or result.mismatched or result.zero_filled)


def test_gloria_checkpoint_of_another_depth_is_an_error_unless_not_strict(gloria_checkpoint):
    path, trunk = gloria_checkpoint
    with pytest.raises(ValueError, match=r"model\.pt.*missing.*strict=False"):
        CXRUNet(depth=34, init="gloria", weights=path)
    net = CXRUNet(depth=34, init="gloria", weights=path, strict=False)
    result = net.init_result
    assert result.missing and not result.mismatched  # resnet34 = resnet18 + blocks: the shared ones load
    assert torch.equal(net.encoder.state_dict()["layer1.0.conv1.weight"], trunk["layer1.0.conv1.weight"])


def test_unexpected_key_is_reported(gloria_checkpoint):
    _, trunk = gloria_checkpoint
    state = {f"backbone.{k}": v for k, v in trunk.items()} | {"backbone.layer5.0.conv1.weight": torch.zeros(1)}
    encoder = CXRResNetEncoder("cxr_resnet18")
    with pytest.raises(ValueError, match="1 unexpected.*layer5"):
        load_encoder_weights(encoder, state, "gloria")
    result = load_encoder_weights(encoder, state, "gloria", strict=False)
    assert result.unexpected == ["layer5.0.conv1.weight"]


def test_imagenet_weights_compute_torchvision_features_in_monai_frame(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet18()
    with torch.no_grad():  # non-trivial BN statistics, so the check covers them
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), path)
    net = CXRUNet(depth=18, init="imagenet", weights=path).eval()
    result = net.init_result
    assert result.ignored == ["fc.bias", "fc.weight"]
    assert result.zero_filled == [f"layer{i}.0.downsample.0.bias" for i in (2, 3, 4)]
    assert not (result.missing or result.unexpected)

    grey = torch.rand(2, 1, 64, 96)  # (B, 1, H, W) as torchvision sees it: replicated to 3 channels
    tv.eval()
    with torch.no_grad():
        x = tv.maxpool(tv.relu(tv.bn1(tv.conv1(grey.repeat(1, 3, 1, 1)))))
        expected = tv.layer4(tv.layer3(tv.layer2(tv.layer1(x))))
        ours = net.encoder(grey.transpose(-1, -2))[-1]  # MONAI (W, H) frame
    torch.testing.assert_close(ours.transpose(-1, -2), expected, atol=1e-4, rtol=1e-4)


def test_forward_shape_frozen_encoder_and_init_errors(gloria_checkpoint):
    path, trunk = gloria_checkpoint
    net = CXRUNet(depth=18, init="gloria", weights=path, freeze_encoder=True).train()
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert all(p.requires_grad for p in net.decoder.parameters())
    assert not net.encoder.training and net.decoder.training
    out = net(torch.rand(2, 1, 64, 96))
    assert out.shape == (2, 1, 64, 96)
    out.mean().backward()
    # frozen: batch-norm running statistics did not move in the forward pass
    assert torch.equal(net.encoder.bn1.running_mean, trunk["bn1.running_mean"])
    with pytest.raises(ValueError, match="needs weights"):
        CXRUNet(depth=18, init="gloria")
    with pytest.raises(ValueError, match="init='random'"):
        CXRUNet(depth=18, weights=path)
    with pytest.raises(ValueError, match="depth"):
        CXRUNet(depth=26)
    with pytest.raises(ValueError, match="no ResNet trunk"):
        load_encoder_weights(net.encoder, {"foo.weight": torch.zeros(1)}, "imagenet")
