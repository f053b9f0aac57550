"""One loader for ResNet trunk weights, shared by the U-Net encoder, the linear probe and the ROI detector.

:func:`load_encoder_weights` initialises any network whose ``state_dict`` keys are those of a MONAI ResNet trunk
(``conv1.weight``, ``layer1.0...``): :class:`monai_xattn.networks.CXRResNetEncoder`, the linear probe's trunk
(:func:`monai_xattn.engines.linear_probe.load_trunk_weights`) and the ROI detector's FPN body
(:func:`monai_xattn.networks.load_backbone_weights`).

Weight sources (:func:`read_encoder_state_dict`):

- ``gloria``: a ``monai_xattn`` GLoRIA checkpoint (``bundles/gloria_pretrain``; learned in MONAI's ``(W, H)``
  frame, loaded as is) or the official GLoRIA checkpoint (PyTorch-Lightning, torchvision keys under
  ``gloria.img_encoder.model.``, learned on ``(H, W)`` arrays).
- ``imagenet``: a torchvision ResNet state dict on disk (nothing is downloaded); ``fc.*`` is dropped.

Files are read by the package's one checkpoint reader, :func:`monai_xattn.utils.read_state_dict` (containers,
DDP prefixes and Lightning files included); the trunk's key prefix is found as the part before
``layer1.0.conv1.weight``, and the frame from the key names (:func:`weights_frame`). Weights learned on ``(H, W)`` arrays (torchvision, official GLoRIA) have every
2D kernel transposed, so that the network computes on MONAI's ``(W, H)`` image exactly the transposed features of
the original network on the upright image. A 3-channel first convolution is summed over its input channels for a
1-channel network (exact for replicated grey images), a 1-channel one replicated for N channels. torchvision's
shortcut convolutions have no bias; MONAI's are set to zero (the same function) and reported as ``zero_filled``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import torch
from torch import Tensor, nn

from monai_xattn.utils.checkpoints import read_state_dict

__all__ = [
    "ENCODER_INITS",
    "EncoderLoadResult",
    "convert_trunk_state",
    "describe_trunk",
    "load_encoder_weights",
    "read_encoder_state_dict",
    "weights_frame",
]

logger = logging.getLogger(__name__)

#: ways to initialise a ResNet encoder (:class:`monai_xattn.networks.CXRUNet`'s ``init``).
ENCODER_INITS = ("random", "gloria", "imagenet")

_STEM_PROBE = "layer1.0.conv1.weight"  # present in every ResNet trunk, whatever the prefix
_HEAD_PREFIXES = ("fc.",)
_WH_PREFIXES = (
    "image_encoder.backbone.",
    "backbone.",
)  # monai_xattn GLoRIA checkpoints, learned in (W, H)  # classifier heads of torchvision / official checkpoints: not encoder weights


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


def weights_frame(keys: Iterable[str]) -> str:
    """The frame a weight file's 2D kernels were learned in, from its key names.

    Returns:
        ``"WH"`` for ``monai_xattn`` GLoRIA checkpoints (keys under ``image_encoder.backbone.`` or ``backbone.``,
        learned on MONAI's ``(W, H)`` images), ``"HW"`` for everything else (torchvision ResNets, the official GLoRIA
        checkpoint, other ``(H, W)``-array code). A plain MONAI-frame trunk saved without those prefixes cannot be
        told apart: state it with ``transpose_kernels=False``.
    """
    return "WH" if any(str(k).startswith(_WH_PREFIXES) for k in keys) else "HW"


def read_encoder_state_dict(
    source: str | os.PathLike | Mapping[str, Tensor], kind: str = "imagenet", prefix: str | None = None
) -> tuple[dict[str, Tensor], bool]:
    """Read a ResNet trunk's state dict, keys relative to the trunk, and say which frame it was learned in.

    Any file :func:`monai_xattn.utils.read_state_dict` reads is accepted (plain state dicts, containers, DDP
    prefixes, ``monai_xattn`` GLoRIA checkpoints, the official Lightning GLoRIA checkpoint).

    Args:
        source: checkpoint file or state dict.
        kind: ``"gloria"`` or ``"imagenet"``: what the caller asked for, for messages; the layout is recognised
            from the keys either way.
        prefix: key prefix of the trunk; found automatically as the part before ``layer1.0.conv1.weight``.

    Returns:
        ``(state, hw_frame)``: trunk tensors (classifier head included, if any) and whether they were learned on
        ``(H, W)`` arrays (:func:`weights_frame`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when it is not a checkpoint or holds no (or more than one) ResNet trunk.
    """
    if kind not in ENCODER_INITS[1:]:
        raise ValueError(f"kind must be one of {ENCODER_INITS[1:]}, got {kind!r}")
    checkpoint = read_state_dict(source, what=f"{kind} encoder weights")
    state, name = checkpoint.state_dict, checkpoint.name
    hw_frame = weights_frame(state) == "HW"
    if prefix is None:
        prefixes = sorted({k[: -len(_STEM_PROBE)] for k in state if k.endswith(_STEM_PROBE)})
        if len(prefixes) != 1:
            found = f"several ResNet trunks (prefixes {prefixes})" if prefixes else "no ResNet trunk"
            raise ValueError(
                f"encoder weights {name}: {found} -- no key ends with '{_STEM_PROBE}' uniquely; pass prefix=..."
            )
        prefix = prefixes[0]
    trunk = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not trunk:
        raise ValueError(f"encoder weights {name}: no key starts with prefix {prefix!r}")
    return trunk, hw_frame


def _zero_filled(state: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> set[str]:
    return {
        k
        for k in target
        if k.endswith("downsample.0.bias") and k not in state and k[: -len("bias")] + "weight" in state
    }


def convert_trunk_state(
    state: Mapping[str, Tensor], target: Mapping[str, Tensor], transpose_kernels: bool, name: str = "<state dict>"
) -> dict[str, Tensor]:
    """Bring a ResNet trunk's tensors to a target trunk's conventions (keys relative to the trunk).

    Args:
        state: source tensors.
        target: the target trunk's ``state_dict()`` (read for shapes).
        transpose_kernels: transpose every 2D kernel (``(H, W)``-learned weights into MONAI's ``(W, H)`` frame).
        name: the source, for messages.

    Returns:
        the converted tensors: the first convolution summed over its input channels (3 -> 1, exact for a
        replicated grey image) or replicated (1 -> N); kernels transposed if asked; the shortcut-convolution biases
        the target has and the source lacks (torchvision) set to zero, the same function.

    Raises:
        ValueError: a first convolution whose input channels cannot be adapted.
    """
    state = dict(state)
    conv1 = state.get("conv1.weight")
    if conv1 is not None and "conv1.weight" in target:
        have, want = conv1.shape[1], target["conv1.weight"].shape[1]
        if have != want:
            if want == 1:  # a grey image replicated over 3 channels meets the summed kernel: same response
                state["conv1.weight"] = conv1.sum(dim=1, keepdim=True)
            elif have == 1:
                state["conv1.weight"] = conv1.repeat(1, want, *([1] * (conv1.ndim - 2))) / want
            else:
                raise ValueError(
                    f"encoder weights {name}: conv1 takes {have} input channels, the encoder {want}; "
                    "only 3 -> 1 (sum) and 1 -> N (replicate) are defined"
                )
    if transpose_kernels:
        state = {k: v.transpose(-1, -2) if v.ndim == 4 else v for k, v in state.items()}
    for k in _zero_filled(state, target):
        state[k] = torch.zeros_like(target[k])
    return state


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

    if transpose_kernels is None:
        transpose_kernels = hw_frame
    zero_filled = sorted(_zero_filled(state, target))
    state = convert_trunk_state(state, target, transpose_kernels, name)
    missing = sorted(k for k in target if k not in state)
    unexpected = sorted(k for k in state if k not in target)
    mismatched = sorted(
        f"{k}: {tuple(state[k].shape)} vs {tuple(target[k].shape)}"
        for k in state
        if k in target and state[k].shape != target[k].shape
    )
    if missing or unexpected or mismatched:
        detail = (
            f"{len(missing)} missing {missing[:6]}, {len(unexpected)} unexpected {unexpected[:6]}, "
            f"{len(mismatched)} shape mismatches {mismatched[:4]}"
        )
        if strict:
            raise ValueError(
                f"encoder weights {name} ({kind}) do not fit the encoder: {detail}; is the depth "
                "right? pass strict=False to load only the tensors that fit"
            )
        logger.warning("encoder weights %s (%s), strict=False: %s", name, kind, detail)
    bad = {m.split(":", 1)[0] for m in mismatched}
    loadable = {k: v for k, v in state.items() if k in target and k not in bad}
    encoder.load_state_dict(loadable, strict=False)
    loaded = sorted(k for k in loadable if k not in zero_filled)
    return EncoderLoadResult(loaded, missing, unexpected, mismatched, zero_filled, ignored)


# blocks per stage -> depth; Bottleneck trunks (a conv3 in their blocks) are 50/101/152
_DEPTHS = {((2, 2, 2, 2), False): 18, ((3, 4, 6, 3), False): 34, ((3, 4, 6, 3), True): 50,
           ((3, 4, 23, 3), True): 101, ((3, 8, 36, 3), True): 152}  # fmt: skip


def describe_trunk(state: Mapping[str, Tensor]) -> dict | None:
    """What ResNet trunk a state dict holds, from its key names and shapes.

    Returns:
        ``None`` when there is no trunk, else ``{"prefix", "depth" (None if the block counts match no standard
        depth), "blocks" (per stage present), "in_channels", "frame" ("HW"/"WH", :func:`weights_frame`),
        "classifier" (an ``fc`` head is present)}``.
    """
    prefixes = sorted({k[: -len(_STEM_PROBE)] for k in state if k.endswith(_STEM_PROBE)})
    if len(prefixes) != 1:
        return None
    prefix = prefixes[0]
    blocks = []
    for stage in range(1, 5):
        ids = {int(k[len(prefix) :].split(".")[1]) for k in state if k.startswith(f"{prefix}layer{stage}.")}
        if not ids:
            break
        blocks.append(max(ids) + 1)
    bottleneck = f"{prefix}layer1.0.conv3.weight" in state
    conv1 = state.get(f"{prefix}conv1.weight")
    return {
        "prefix": prefix,
        "depth": _DEPTHS.get((tuple(blocks), bottleneck)),
        "blocks": blocks,
        "in_channels": None if conv1 is None else int(conv1.shape[1]),
        "frame": weights_frame(state),
        "classifier": any(k.startswith(f"{prefix}fc.") for k in state),
    }
