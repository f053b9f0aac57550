"""The one factory of the package's 2D ResNets, so that a trunk's weights move between every network built on it.

GLoRIA's image encoder, the linear probe, the ROI detector's backbone and the U-Net encoder all use the same
trunk: MONAI's :class:`~monai.networks.nets.ResNet` with torchvision's stride-2 7 x 7 stem and "B" shortcuts, so
their ``state_dict`` keys (``conv1.weight``, ``layer1.0...``) are those :mod:`monai_xattn.networks.resnet_weights`
loads. The CAM classifier keeps MONAI's stride-1 stem and its ``fc`` head. Weights are not this module's concern:
each network loads its own with :func:`monai_xattn.networks.load_encoder_weights` (the sources and strictness
differ between them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monai.networks.nets.resnet import ResNet, get_inplanes, resnet_params

__all__ = ["TRUNK_DEPTHS", "resnet_trunk", "resnet_trunk_arguments"]

#: ResNet depths the trunk factory builds unless a caller narrows or widens them
TRUNK_DEPTHS = (18, 34, 50, 101)


def resnet_trunk_arguments(
    depth: int,
    in_channels: int = 1,
    *,
    stem_stride: int = 2,
    num_classes: int | None = None,
    bias_downsample: bool = True,
    spatial_dims: int = 2,
    depths: Sequence[int] = TRUNK_DEPTHS,
) -> dict[str, Any]:
    """The keyword arguments of :class:`~monai.networks.nets.ResNet` for a ResNet-``depth`` trunk.

    For a subclass that must call ``ResNet.__init__`` itself (a FlexibleUNet encoder); everything else calls
    :func:`resnet_trunk`.

    Args:
        depth: ResNet depth, one of ``depths``.
        in_channels: image channels (1 for grey; 3 to take weights learned on replicated grey images as they are).
        stem_stride: stride of the 7 x 7 first convolution: 2 is torchvision's (and GLoRIA's), 1 MONAI's default.
        num_classes: ``None``: no classifier, the trunk ends in the average pool and returns ``(B, F)`` features;
            else a ``fc`` layer with that many outputs.
        bias_downsample: bias in the shortcut convolutions (MONAI's default; torchvision has none).
        spatial_dims: 2 for chest X-rays.
        depths: the depths the caller accepts.

    Returns:
        ``block``, ``layers``, ``block_inplanes`` and the options above under ``ResNet``'s names.

    Raises:
        ValueError: ``depth`` is not in ``depths`` (or has no MONAI ResNet).
    """
    if depth not in depths or f"resnet{depth}" not in resnet_params:
        raise ValueError(f"depth must be one of {sorted(depths)}, got {depth}")
    block, layers = resnet_params[f"resnet{depth}"][:2]
    arguments: dict[str, Any] = {
        "block": block,
        "layers": layers,
        "block_inplanes": get_inplanes(),
        "spatial_dims": spatial_dims,
        "n_input_channels": in_channels,
        "conv1_t_stride": stem_stride,
        "bias_downsample": bias_downsample,
    }
    if num_classes is None:
        arguments["feed_forward"] = False
    else:
        arguments["num_classes"] = num_classes
    return arguments


def resnet_trunk(depth: int, in_channels: int = 1, **options: Any) -> ResNet:
    """A MONAI ResNet-``depth`` trunk (randomly initialised) mapping ``(B, C, W, H)`` to ``(B, F)``.

    The same module, with the same ``state_dict`` keys and the same draws from the random generator, as
    ``monai.networks.nets.resnet<depth>(spatial_dims, n_input_channels=in_channels, conv1_t_stride=stem_stride,
    ...)``.

    Args:
        depth: ResNet depth.
        in_channels: image channels.
        options: ``stem_stride``, ``num_classes``, ``bias_downsample``, ``spatial_dims``, ``depths`` of
            :func:`resnet_trunk_arguments`.

    Returns:
        the network; ``F`` is 512 for depths 18/34 and 2048 from 50 on (``num_classes`` when a classifier is asked
        for).
    """
    return ResNet(**resnet_trunk_arguments(depth, in_channels, **options))
