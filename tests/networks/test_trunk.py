"""``resnet_trunk``: the same module as MONAI's ``resnet<depth>`` with the same arguments -- keys, shapes, draws."""

import pytest
import torch
from monai.networks import nets

from monai_xattn.networks.trunk import TRUNK_DEPTHS, resnet_trunk, resnet_trunk_arguments


def _monai_resnet(depth, in_channels=1, stem_stride=2, num_classes=None, bias_downsample=True):
    kwargs = {
        "spatial_dims": 2,
        "n_input_channels": in_channels,
        "conv1_t_stride": stem_stride,
        "bias_downsample": bias_downsample,
    }
    kwargs.update({"feed_forward": False} if num_classes is None else {"num_classes": num_classes})
    return getattr(nets, f"resnet{depth}")(**kwargs)


def _seeded(factory, seed=0):
    torch.manual_seed(seed)
    return factory()


CASES = [
    (18, {}),
    (34, {"in_channels": 3}),
    (50, {"stem_stride": 1, "num_classes": 4}),
    (18, {"bias_downsample": False, "num_classes": 2}),
    (101, {}),
]


@pytest.mark.parametrize("depth, options", CASES)
def test_same_state_dict_keys_shapes_and_weights_as_monai(depth, options):
    ours = _seeded(lambda: resnet_trunk(depth, **options)).state_dict()
    theirs = _seeded(lambda: _monai_resnet(depth, **options)).state_dict()
    assert list(ours) == list(theirs)
    for key, value in ours.items():
        assert value.shape == theirs[key].shape, key
        assert torch.equal(value, theirs[key]), key


def test_seed_matters_so_the_weight_check_can_fail():
    a = _seeded(lambda: resnet_trunk(18), seed=0).state_dict()["conv1.weight"]
    b = _seeded(lambda: resnet_trunk(18), seed=1).state_dict()["conv1.weight"]
    assert not torch.equal(a, b)


def test_trunk_features_and_stem():
    trunk = resnet_trunk(18).eval()
    assert "fc.weight" not in trunk.state_dict()
    assert trunk.conv1.stride == (2, 2) and trunk.conv1.weight.shape == (64, 1, 7, 7)
    with torch.no_grad():
        assert trunk(torch.rand(2, 1, 64, 48)).shape == (2, 512)
        assert resnet_trunk(50).eval()(torch.rand(1, 1, 64, 64)).shape == (1, 2048)
    assert resnet_trunk(34, num_classes=3, stem_stride=1).conv1.stride == (1, 1)


def test_shortcut_bias_follows_bias_downsample():
    keys = resnet_trunk(18).state_dict()
    assert "layer2.0.downsample.0.bias" in keys
    assert "layer2.0.downsample.0.bias" not in resnet_trunk(18, bias_downsample=False).state_dict()


def test_depths_are_checked():
    assert TRUNK_DEPTHS == (18, 34, 50, 101)
    with pytest.raises(ValueError, match="depth"):
        resnet_trunk(152)  # a MONAI depth the trunk does not accept by default
    with pytest.raises(ValueError, match="depth"):
        resnet_trunk_arguments(19, depths=(19,))  # no MONAI ResNet of that depth
    assert resnet_trunk_arguments(152, depths=(152,))["layers"] == [3, 8, 36, 3]
