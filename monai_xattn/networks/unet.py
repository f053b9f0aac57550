"""U-Net for chest X-ray segmentation whose ResNet encoder starts from GLoRIA, ImageNet or random weights.

The network is MONAI's :class:`~monai.networks.nets.FlexibleUNet` (its decoder follows segmentation_models.pytorch's
``Unet``, the network GLoRIA fine-tuned on SIIM). Its built-in ``resnet*`` backbones cannot take our weights:
they are MONAI's MedicalNet ResNets, in which ResNet-18/34 use parameter-free "A" shortcuts (no
``downsample.*`` tensors at all) and ResNet-50+ have no bias in the shortcut convolution. GLoRIA's image encoder
(:class:`monai_xattn.networks.GloriaImageEncoder`) and the ROI detector's backbone are ``resnetXX(spatial_dims=2,
conv1_t_stride=2, feed_forward=False)`` -- torchvision's layout plus a shortcut bias. :class:`CXRResNetEncoder`
is exactly that network returning FlexibleUNet's five feature maps, registered in MONAI's backbone registry as
``cxr_resnet18`` ... ``cxr_resnet152``, so every tensor of a GLoRIA trunk has a place of the same name and shape.

Weight sources (:func:`load_encoder_weights`, defined in :mod:`monai_xattn.networks.resnet_weights` and
re-exported here):

- ``gloria``: a ``monai_xattn`` GLoRIA checkpoint (``bundles/gloria_pretrain``), read with
  :func:`monai_xattn.networks.load_gloria_image_encoder`; learned in MONAI's ``(W, H)`` frame, loaded as is.
  An official GLoRIA checkpoint (torchvision keys under ``gloria.img_encoder.model.``) is read like ImageNet
  weights.
- ``imagenet``: a torchvision ResNet state dict on disk (nothing is downloaded); ``fc.*`` is dropped.

Weights learned on ``(H, W)`` arrays (torchvision, official GLoRIA) have every 2D kernel transposed, so that the
encoder computes on MONAI's ``(W, H)`` image exactly the transposed features of the original network on the
upright image. A 3-channel first convolution is summed over its input channels for a 1-channel encoder, which is
exact for the replicated grey images GLoRIA and ImageNet models were fed. torchvision's shortcut convolutions have
no bias; the encoder's are set to zero (the same function) and reported as ``zero_filled``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from monai.networks.blocks import BaseEncoder
from monai.networks.nets import FlexibleUNet
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from monai.networks.nets.resnet import ResNet, ResNetFeatures
from torch import Tensor

# the weight loader lives in resnet_weights (shared with the linear probe and the ROI detector); re-exported here
from monai_xattn.networks.resnet_weights import (
    ENCODER_INITS,
    EncoderLoadResult,
    load_encoder_weights,
    read_encoder_state_dict,
)
from monai_xattn.networks.trunk import resnet_trunk_arguments

__all__ = [
    "ENCODER_INITS",
    "CXRResNetEncoder",
    "CXRUNet",
    "EncoderLoadResult",
    "load_encoder_weights",
    "read_encoder_state_dict",
]

_ENCODER_DEPTHS = (18, 34, 50, 101, 152)


class CXRResNetEncoder(ResNetFeatures, BaseEncoder):
    """MONAI ResNet in torchvision's layout returning the five feature maps FlexibleUNet's decoder takes.

    The same network as ``monai.networks.nets.resnetXX(spatial_dims, n_input_channels, conv1_t_stride=2,
    feed_forward=False)`` (7 x 7 stride-2 stem, max-pool, "B" shortcuts with bias), i.e. GLoRIA's image trunk;
    only the output differs: ``[stem, layer1, layer2, layer3, layer4]`` at strides 2, 4, 8, 16, 32.

    Args:
        model_name: ``cxr_resnet18`` ... ``cxr_resnet152``.
        pretrained: must be False: weights come from :func:`load_encoder_weights` (nothing is downloaded).
        spatial_dims: 2 for chest X-rays.
        in_channels: input channels.
    """

    backbone_names = [f"cxr_resnet{depth}" for depth in _ENCODER_DEPTHS]

    def __init__(self, model_name: str, pretrained: bool = False, spatial_dims: int = 2, in_channels: int = 1) -> None:
        if model_name not in self.backbone_names:
            raise ValueError(f"model_name must be one of {self.backbone_names}, got {model_name!r}")
        if pretrained:
            raise ValueError(
                f"{model_name}: pretrained weights are loaded with load_encoder_weights (or "
                "CXRUNet(init=...)); nothing is downloaded"
            )
        depth = int(model_name.removeprefix("cxr_resnet"))
        # ResNetFeatures' own constructor builds the MedicalNet variant; only its forward is wanted
        ResNet.__init__(
            self, **resnet_trunk_arguments(depth, in_channels, spatial_dims=spatial_dims, depths=_ENCODER_DEPTHS)
        )

    @classmethod
    def get_encoder_parameters(cls) -> list[dict]:
        return [
            {"model_name": name, "pretrained": False, "spatial_dims": 2, "in_channels": 1}
            for name in cls.backbone_names
        ]

    @classmethod
    def num_channels_per_output(cls) -> list[tuple[int, ...]]:
        basic, bottleneck = (64, 64, 128, 256, 512), (64, 256, 512, 1024, 2048)
        return [basic, basic, bottleneck, bottleneck, bottleneck]

    @classmethod
    def num_outputs(cls) -> list[int]:
        return [5] * len(cls.backbone_names)

    @classmethod
    def get_encoder_names(cls) -> list[str]:
        return list(cls.backbone_names)


FLEXUNET_BACKBONE.register_class(CXRResNetEncoder)


class CXRUNet(FlexibleUNet):
    """FlexibleUNet with a :class:`CXRResNetEncoder` initialised from GLoRIA, ImageNet or random weights.

    Args:
        in_channels: image channels (1: grey chest X-rays).
        out_channels: output channels (1: a pneumothorax logit map).
        depth: ResNet depth, 18/34/50/101/152 (GLoRIA: 50; 18 runs on a CPU).
        init: ``"random"``, ``"gloria"`` or ``"imagenet"``.
        weights: checkpoint file (or state dict) for ``gloria`` / ``imagenet``.
        strict: see :func:`load_encoder_weights`.
        transpose_kernels: see :func:`load_encoder_weights` (``None``: decided by the source).
        freeze_encoder: keep the encoder fixed, batch-norm statistics included (MGCA's protocol); the default
            fine-tunes the whole network (GLoRIA's).
        decoder_channels: FlexibleUNet's decoder widths.
        kwargs: other :class:`~monai.networks.nets.FlexibleUNet` arguments (``norm``, ``upsample``, ...).

    Input ``(B, in_channels, W, H)`` -> logits ``(B, out_channels, W, H)``; any size (FlexibleUNet pads its skip
    connections), multiples of 32 avoid the padding. The load report is kept as ``init_result``.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 50,
        init: str = "random",
        weights: str | os.PathLike | Mapping[str, Tensor] | None = None,
        strict: bool = True,
        transpose_kernels: bool | None = None,
        freeze_encoder: bool = False,
        decoder_channels: Sequence[int] = (256, 128, 64, 32, 16),
        **kwargs: Any,
    ) -> None:
        backbone = f"cxr_resnet{depth}"
        if backbone not in CXRResNetEncoder.backbone_names:
            raise ValueError(f"depth must be one of 18, 34, 50, 101, 152, got {depth}")
        if init not in ENCODER_INITS:
            raise ValueError(f"init must be one of {ENCODER_INITS}, got {init!r}")
        if init == "random" and weights is not None:
            raise ValueError("weights were given with init='random'; say init='gloria' or 'imagenet'")
        if init != "random" and weights is None:
            raise ValueError(f"init={init!r} needs weights: a checkpoint file on disk (nothing is downloaded)")
        super().__init__(
            in_channels=in_channels,
            out_channels=out_channels,
            backbone=backbone,
            pretrained=False,
            decoder_channels=tuple(decoder_channels),
            spatial_dims=2,
            **kwargs,
        )
        self.depth = depth
        self.init = init
        self.init_result: EncoderLoadResult | None = None
        if weights is not None:
            self.init_result = load_encoder_weights(self.encoder, weights, init, strict, transpose_kernels)
        self.freeze_encoder = freeze_encoder
        if freeze_encoder:
            self.encoder.requires_grad_(False)

    def train(self, mode: bool = True) -> CXRUNet:
        super().train(mode)
        if self.freeze_encoder:
            # a frozen encoder keeps its batch-norm statistics too, or it would still drift with the data
            self.encoder.eval()
        return self
