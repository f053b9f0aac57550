"""U-Net for chest X-ray segmentation whose ResNet encoder starts from GLoRIA, ImageNet or random weights.

The network is MONAI's :class:`~monai.networks.nets.FlexibleUNet` (its decoder follows segmentation_models.pytorch's
``Unet``, the network GLoRIA fine-tuned on SIIM). Its built-in ``resnet*`` backbones cannot take our weights:
they are MONAI's MedicalNet ResNets, in which ResNet-18/34 use parameter-free "A" shortcuts (no
``downsample.*`` tensors at all) and ResNet-50+ have no bias in the shortcut convolution. GLoRIA's image encoder
(:class:`monai_xattn.networks.GloriaImageEncoder`) and the ROI detector's backbone are ``resnetXX(spatial_dims=2,
conv1_t_stride=2, feed_forward=False)`` -- torchvision's layout plus a shortcut bias. :class:`CXRResNetEncoder`
is exactly that network returning FlexibleUNet's five feature maps, registered in MONAI's backbone registry as
``cxr_resnet18`` ... ``cxr_resnet152``, so every tensor of a GLoRIA trunk has a place of the same name and shape.

Weight sources (:func:`load_encoder_weights`):

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

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from monai.networks.blocks import BaseEncoder
from monai.networks.nets import FlexibleUNet
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE
from monai.networks.nets.resnet import ResNet, ResNetFeatures, get_inplanes, resnet_params
from torch import Tensor, nn

from monai_xattn.networks.gloria import load_gloria_image_encoder

__all__ = [
    "ENCODER_INITS",
    "CXRResNetEncoder",
    "CXRUNet",
    "EncoderLoadResult",
    "load_encoder_weights",
    "read_encoder_state_dict",
]

logger = logging.getLogger(__name__)

#: ways to initialise the encoder of :class:`CXRUNet`.
ENCODER_INITS = ("random", "gloria", "imagenet")

_STEM_PROBE = "layer1.0.conv1.weight"  # present in every ResNet trunk, whatever the prefix
_HEAD_PREFIXES = ("fc.",)  # classifier heads of torchvision / official checkpoints: not encoder weights


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

    backbone_names = ["cxr_resnet18", "cxr_resnet34", "cxr_resnet50", "cxr_resnet101", "cxr_resnet152"]

    def __init__(self, model_name: str, pretrained: bool = False, spatial_dims: int = 2, in_channels: int = 1) -> None:
        if model_name not in self.backbone_names:
            raise ValueError(f"model_name must be one of {self.backbone_names}, got {model_name!r}")
        if pretrained:
            raise ValueError(f"{model_name}: pretrained weights are loaded with load_encoder_weights (or "
                             "CXRUNet(init=...)); nothing is downloaded")  # fmt: skip
        block, layers = resnet_params[model_name.removeprefix("cxr_")][:2]
        # ResNetFeatures' own constructor builds the MedicalNet variant; only its forward is wanted
        ResNet.__init__(
            self,
            block=block,
            layers=layers,
            block_inplanes=get_inplanes(),
            spatial_dims=spatial_dims,
            n_input_channels=in_channels,
            conv1_t_stride=2,
            feed_forward=False,
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


class EncoderLoadResult(NamedTuple):
    """What :func:`load_encoder_weights` did, key by key (encoder-relative names).

    Attributes:
        loaded: encoder tensors set from the source.
        missing: encoder tensors the source lacks (left as they were).
        unexpected: source tensors with no place in the encoder.
        mismatched: ``"key: source shape vs encoder shape"`` for same-named tensors of different shapes.
        zero_filled: shortcut biases absent from a torchvision-layout source, set to 0 (the same function).
        ignored: classifier-head tensors of the source (``fc.*``), never part of an encoder.
    """

    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]
    zero_filled: list[str]
    ignored: list[str]


def _load_file(path: str | os.PathLike) -> Mapping[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"encoder weights {os.fspath(path)!r}: no such file") from None
    except Exception as err:  # unpickling errors name no file
        raise ValueError(f"cannot load encoder weights {os.fspath(path)!r} with weights_only=True ({err}); save a "
                         "plain state dict: torch.save(model.state_dict(), path)") from err  # fmt: skip
    if not isinstance(state, Mapping):
        raise ValueError(f"encoder weights {os.fspath(path)!r}: expected a state dict, got {type(state).__name__}")
    return state


def read_encoder_state_dict(
    source: str | os.PathLike | Mapping[str, Tensor], kind: str = "imagenet", prefix: str | None = None
) -> tuple[dict[str, Tensor], bool]:
    """Read a ResNet trunk's state dict, keys relative to the trunk, and say which frame it was learned in.

    Args:
        source: checkpoint file or state dict.
        kind: ``"gloria"`` (a ``monai_xattn`` GLoRIA checkpoint; an official one is read as torchvision layout) or
            ``"imagenet"`` (torchvision layout, e.g. ``torchvision.models.resnet50`` weights).
        prefix: key prefix of the trunk; found automatically as the part before ``layer1.0.conv1.weight``.

    Returns:
        ``(state, hw_frame)``: trunk tensors (classifier head included, if any) and whether they were learned on
        ``(H, W)`` arrays (True for torchvision layout; False for ``monai_xattn`` GLoRIA checkpoints).

    Raises:
        ValueError: the source holds no (or more than one) ResNet trunk.
    """
    if kind not in ENCODER_INITS[1:]:
        raise ValueError(f"kind must be one of {ENCODER_INITS[1:]}, got {kind!r}")
    name = "<state dict>" if isinstance(source, Mapping) else os.fspath(source)
    if kind == "gloria" and not isinstance(source, Mapping) and prefix is None:
        try:
            return load_gloria_image_encoder(source), False
        except KeyError:
            pass  # not a monai_xattn checkpoint: an official (torchvision-layout) one is read below
    state = dict(source) if isinstance(source, Mapping) else dict(_load_file(source))
    for container in ("state_dict", "model", "network"):  # Lightning, MONAI bundle checkpoints
        if isinstance(state.get(container), Mapping):
            state = dict(state[container])
    if kind == "gloria" and isinstance(state.get("image_encoder"), Mapping):
        state = {f"image_encoder.{k}": v for k, v in state["image_encoder"].items()}
    hw_frame = not any(k.startswith(("image_encoder.backbone.", "backbone.")) for k in state)
    if prefix is None:
        prefixes = sorted({k[: -len(_STEM_PROBE)] for k in state if k.endswith(_STEM_PROBE)})
        if len(prefixes) != 1:
            found = f"several ResNet trunks (prefixes {prefixes})" if prefixes else "no ResNet trunk"
            raise ValueError(f"encoder weights {name}: {found} -- no key ends with '{_STEM_PROBE}' uniquely; "
                             "pass prefix=...")  # fmt: skip
        prefix = prefixes[0]
    trunk = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not trunk:
        raise ValueError(f"encoder weights {name}: no key starts with prefix {prefix!r}")
    return trunk, hw_frame


def load_encoder_weights(
    encoder: nn.Module,
    source: str | os.PathLike | Mapping[str, Tensor],
    kind: str = "gloria",
    strict: bool = True,
    transpose_kernels: bool | None = None,
    prefix: str | None = None,
) -> EncoderLoadResult:
    """Initialise a ResNet encoder (:class:`CXRResNetEncoder`, or any MONAI ``ResNet``) from a checkpoint.

    Args:
        encoder: the network whose ``state_dict`` keys are ResNet trunk keys (``conv1.weight``, ``layer1.0...``).
        source: checkpoint file or state dict (see :func:`read_encoder_state_dict`).
        kind: ``"gloria"`` or ``"imagenet"``.
        strict: raise when an encoder tensor is missing from the source, a source tensor has no place in the
            encoder, or shapes differ. ``False`` loads what matches and logs the rest.
        transpose_kernels: transpose every 2D kernel (weights learned on ``(H, W)`` arrays). ``None``: decided by
            the source (torchvision layout: yes; ``monai_xattn`` GLoRIA checkpoints: no).
        prefix: key prefix of the trunk in the source (found automatically).

    Returns:
        :class:`EncoderLoadResult`; missing/unexpected keys are also logged.

    Raises:
        ValueError: with ``strict``, naming the source and the offending keys; or a first convolution whose
            input channels cannot be adapted.
    """
    name = "<state dict>" if isinstance(source, Mapping) else os.fspath(source)
    state, hw_frame = read_encoder_state_dict(source, kind, prefix)
    ignored = sorted(k for k in state if k.startswith(_HEAD_PREFIXES))
    state = {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}
    target = encoder.state_dict()

    conv1 = state.get("conv1.weight")
    if conv1 is not None and "conv1.weight" in target:
        have, want = conv1.shape[1], target["conv1.weight"].shape[1]
        if have != want:
            if want == 1:  # a grey image replicated over 3 channels meets the summed kernel: same response
                state["conv1.weight"] = conv1.sum(dim=1, keepdim=True)
            elif have == 1:
                state["conv1.weight"] = conv1.repeat(1, want, *([1] * (conv1.ndim - 2))) / want
            else:
                raise ValueError(f"encoder weights {name}: conv1 takes {have} input channels, the encoder {want}; "
                                 "only 3 -> 1 (sum) and 1 -> N (replicate) are defined")  # fmt: skip
    if transpose_kernels is None:
        transpose_kernels = hw_frame
    if transpose_kernels:
        state = {k: v.transpose(-1, -2) if v.ndim == 4 else v for k, v in state.items()}

    zero_filled = sorted(
        k for k in target if k.endswith("downsample.0.bias") and k not in state and k[: -len("bias")] + "weight" in state
    )
    for k in zero_filled:
        state[k] = torch.zeros_like(target[k])
    missing = sorted(k for k in target if k not in state)
    unexpected = sorted(k for k in state if k not in target)
    mismatched = sorted(
        f"{k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)}"
        for k in state
        if k in target and state[k].shape != target[k].shape
    )
    if missing or unexpected or mismatched:
        detail = (f"{len(missing)} missing {missing[:6]}, {len(unexpected)} unexpected {unexpected[:6]}, "
                  f"{len(mismatched)} shape mismatches {mismatched[:4]}")  # fmt: skip
        if strict:
            raise ValueError(f"encoder weights {name} ({kind}) do not fit the encoder: {detail}; is the depth "
                             "right? pass strict=False to load only the tensors that fit")  # fmt: skip
        logger.warning("encoder weights %s (%s), strict=False: %s", name, kind, detail)
    bad = {m.split(":", 1)[0] for m in mismatched}
    loadable = {k: v for k, v in state.items() if k in target and k not in bad}
    encoder.load_state_dict(loadable, strict=False)
    loaded = sorted(k for k in loadable if k not in zero_filled)
    return EncoderLoadResult(loaded, missing, unexpected, mismatched, zero_filled, ignored)


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
