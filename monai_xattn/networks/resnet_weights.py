"""One loader for ResNet trunk weights, shared by the U-Net encoder, the linear probe and the ROI detector.

:func:`load_encoder_weights` initialises any network whose ``state_dict`` keys are those of a MONAI ResNet trunk
(``conv1.weight``, ``layer1.0...``): :class:`monai_xattn.networks.CXRResNetEncoder`, the linear probe's trunk
(:func:`monai_xattn.engines.linear_probe.load_trunk_weights`) and the ROI detector's FPN body
(:func:`monai_xattn.networks.load_backbone_weights`).

Weight sources (:func:`read_encoder_state_dict`):

- ``gloria``: a ``monai_xattn`` GLoRIA checkpoint (``bundles/gloria_pretrain``), read with
  :func:`monai_xattn.networks.load_gloria_image_encoder`; learned in MONAI's ``(W, H)`` frame, loaded as is.
  An official GLoRIA checkpoint (torchvision keys under ``gloria.img_encoder.model.``) is read like ImageNet
  weights.
- ``imagenet``: a torchvision ResNet state dict on disk (nothing is downloaded); ``fc.*`` is dropped.

Containers (``state_dict``, ``model``, ``network``) are unwrapped and the trunk's key prefix is found as the part
before ``layer1.0.conv1.weight``. Weights learned on ``(H, W)`` arrays (torchvision, official GLoRIA) have every
2D kernel transposed, so that the network computes on MONAI's ``(W, H)`` image exactly the transposed features of
the original network on the upright image. A 3-channel first convolution is summed over its input channels for a
1-channel network (exact for replicated grey images), a 1-channel one replicated for N channels. torchvision's
shortcut convolutions have no bias; MONAI's are set to zero (the same function) and reported as ``zero_filled``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from monai_xattn.networks.gloria import load_gloria_image_encoder

__all__ = [
    "ENCODER_INITS",
    "EncoderLoadResult",
    "load_encoder_weights",
    "read_encoder_state_dict",
]

logger = logging.getLogger(__name__)

#: ways to initialise a ResNet encoder (:class:`monai_xattn.networks.CXRUNet`'s ``init``).
ENCODER_INITS = ("random", "gloria", "imagenet")

_STEM_PROBE = "layer1.0.conv1.weight"  # present in every ResNet trunk, whatever the prefix
_HEAD_PREFIXES = ("fc.",)  # classifier heads of torchvision / official checkpoints: not encoder weights


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
    """Read a state dict with ``weights_only=True``, naming the file in every error.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be read with ``weights_only=True`` or holds no mapping.
    """
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
    """Initialise a ResNet encoder (:class:`~monai_xattn.networks.CXRResNetEncoder`, or any MONAI ``ResNet``) from a checkpoint.

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
