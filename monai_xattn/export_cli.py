"""``monai-xattn export``: a trained bundle's image network as TorchScript, a ``torch.export`` program or ONNX.

The networks a deployment serves (``docs/export.md``): the ``siim_unet`` U-Net, the ``cxr_cam_baseline`` classifier
and the ``cxr_retinanet`` RetinaNet network (backbone + FPN + heads, returning the head outputs; anchors, box
decoding and NMS stay in Python, as in MONAI's detection bundles). Each format is written next to the checkpoint
by default (``models/model.ts``, ``model.pt2``, ``model.onnx``) and checked against the eager network:

- ``torchscript``: MONAI's ``python -m monai.bundle ckpt_export`` (deprecated by torch from 2.14);
- ``exported_program``: :func:`monai_xattn.networks.export.export_program`, saved with the bundle's metadata and
  configs; ``configs/inference_exported.json`` of ``siim_unet`` and ``cxr_retinanet`` runs it;
- ``onnx``: the same program through ``torch.onnx`` (needs the optional ``onnx`` and ``onnxscript``; the check needs
  ``onnxruntime``).

Example::

    monai-xattn export siim_unet --format torchscript exported_program --set output_dir=runs/siim
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser, ckpt_export
from torch import Tensor, nn

from monai_xattn.bundles_cli import PROFILES, bundle_root, profile_config
from monai_xattn.networks.export import (
    EXPORT_FORMATS,
    FILE_SUFFIXES,
    export_onnx,
    export_program,
    flatten_outputs,
    load_exported_network,
    network_attributes,
    onnx_available,
    run_onnx,
    save_exported_program,
)
from monai_xattn.utils.checkpoints import read_state_dict

__all__ = [
    "BundleNetwork",
    "BUNDLE_NETWORKS",
    "bundle_parser",
    "bundle_network",
    "example_image",
    "export_bundle",
    "exported_outputs",
    "max_difference",
    "add_arguments",
    "run",
]


@dataclass(frozen=True)
class BundleNetwork:
    """Where a bundle's exportable network is.

    Attributes:
        net_id: config id of the network (what ``ckpt_export --net_id`` takes); its weights are the checkpoint's
            ``"network"`` entry.
        size_key: config key of the (square) input size the bundle resizes images to.
        spatial_multiple: what every spatial size must be a multiple of (``--dynamic-spatial``); ``None``: read the
            network's ``size_divisible``.
    """

    net_id: str
    size_key: str
    spatial_multiple: int | None = None


#: the bundles whose network a deployment serves; ``model`` is the network the checkpoint holds (the classifier
#: inside the CAM localizer, the RetinaNet inside the detector)
BUNDLE_NETWORKS: dict[str, BundleNetwork] = {
    "siim_unet": BundleNetwork("network_def", "spatial_size", 32),  # five halvings of the encoder
    "cxr_cam_baseline": BundleNetwork("model", "image_size", 16),  # max-pool then at most three stride-2 stages
    "cxr_retinanet": BundleNetwork("model", "image_size"),
}

#: the checkpoint entry holding the network's state dict (every bundle's ``model.pt``)
CHECKPOINT_KEY = "network"


def _config_files(bundle: str, configs: Sequence[str], profile: str | None, root: Path) -> list[str]:
    names = [*configs, *([profile_config(bundle, profile)] if profile else [])]
    return [str(root / bundle / "configs" / name) for name in names]


def _parser_overrides(bundle: str, overrides: Mapping[str, Any] | None, root: Path) -> dict[str, Any]:
    # the bundle folder as bundle_root, as `monai.bundle run --bundle_root` is used in this project; export on CPU
    # (a program is moved to its device when loaded)
    return {"bundle_root": str(root / bundle), "device": "$torch.device('cpu')", **(overrides or {})}


def bundle_parser(
    bundle: str,
    configs: Sequence[str] = ("train.json",),
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    root: str | os.PathLike | None = None,
) -> ConfigParser:
    """The bundle's configs (then its ``profile``), metadata and ``overrides``, parsed on CPU.

    Args:
        bundle: a key of :data:`BUNDLE_NETWORKS`.
        configs: config files of ``bundles/<bundle>/configs``, merged in order.
        profile: one of :data:`monai_xattn.bundles_cli.PROFILES`, merged last (``None``: none).
        overrides: config id -> value, as ``monai.bundle run --id value``.
        root: the folder holding the bundles (default: the shipped ones).
    """
    root = bundle_root() if root is None else Path(root)
    parser = ConfigParser()
    parser.read_meta(str(root / bundle / "configs" / "metadata.json"))
    parser.read_config(_config_files(bundle, configs, profile, root))
    parser.update(_parser_overrides(bundle, overrides, root))
    return parser


def bundle_network(parser: ConfigParser, bundle: str, ckpt_file: str | os.PathLike | None = None) -> nn.Module:
    """The bundle's exportable network (:data:`BUNDLE_NETWORKS`), with the checkpoint's weights, in eval mode.

    Args:
        parser: from :func:`bundle_parser`.
        bundle: the bundle's name.
        ckpt_file: read with ``weights_only=True``; ``None``: ``<output_dir>/model.pt``.

    Raises:
        FileNotFoundError: no checkpoint file.
        RuntimeError: the checkpoint belongs to another network (``load_state_dict``'s message).
    """
    network = parser.get_parsed_content(BUNDLE_NETWORKS[bundle].net_id)
    ckpt_file = _checkpoint(parser, ckpt_file)
    network.load_state_dict(read_state_dict(ckpt_file, what=f"{bundle} checkpoint").state_dict)
    return network.eval()


def _checkpoint(parser: ConfigParser, ckpt_file: str | os.PathLike | None) -> str:
    path = os.path.join(parser.get_parsed_content("output_dir"), "model.pt") if ckpt_file is None else ckpt_file
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint (train the bundle first, or pass the file)")
    return os.fspath(path)


def example_image(parser: ConfigParser, bundle: str, batch_size: int = 2, seed: int = 0) -> Tensor:
    """A ``(batch_size, C, S, S)`` uniform random image batch of the bundle's input size (``C`` from its metadata)."""
    size = int(parser.get_parsed_content(BUNDLE_NETWORKS[bundle].size_key))
    channels = int(parser.get_parsed_content("_meta_#network_data_format#inputs#image#num_channels"))
    return torch.rand(batch_size, channels, size, size, generator=torch.Generator().manual_seed(seed))


def export_bundle(
    bundle: str,
    fmt: str,
    filepath: str | os.PathLike | None = None,
    ckpt_file: str | os.PathLike | None = None,
    configs: Sequence[str] = ("train.json",),
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    root: str | os.PathLike | None = None,
    dynamic_spatial: bool = False,
) -> str:
    """Export a trained bundle's network in one format.

    Args:
        bundle: a key of :data:`BUNDLE_NETWORKS`.
        fmt: one of :data:`monai_xattn.networks.export.EXPORT_FORMATS`.
        filepath: the file to write; ``None``: ``<output_dir>/model`` + the format's suffix.
        ckpt_file: the checkpoint (``None``: ``<output_dir>/model.pt``).
        configs, profile, overrides, root: as :func:`bundle_parser`; the network must be built as it was trained
            (same depth, channels, anchors).
        dynamic_spatial: ``exported_program`` / ``onnx`` take any multiple of the network's stride as spatial size
            (default: the bundle's input size only; the batch size is dynamic in every format).

    Returns:
        the written file.

    Raises:
        ValueError: an unknown bundle or format.
        ImportError: ``onnx`` without the optional ``onnx`` / ``onnxscript`` packages.
    """
    if bundle not in BUNDLE_NETWORKS:
        raise ValueError(f"bundle must be one of {sorted(BUNDLE_NETWORKS)}, got {bundle!r}")
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"fmt must be one of {list(EXPORT_FORMATS)}, got {fmt!r}")
    if fmt == "onnx" and not onnx_available():
        raise ImportError(
            'ONNX export needs the optional packages onnx and onnxscript: pip install "monai_xattn[export]"'
        )
    root = bundle_root() if root is None else Path(root)
    parser = bundle_parser(bundle, configs, profile, overrides, root)
    ckpt_file = _checkpoint(parser, ckpt_file)
    if filepath is None:
        filepath = os.path.join(parser.get_parsed_content("output_dir"), "model" + FILE_SUFFIXES[fmt])
    filepath = os.fspath(filepath)
    os.makedirs(os.path.dirname(os.path.abspath(filepath)), exist_ok=True)
    if fmt == "torchscript":
        # MONAI's own exporter, exactly as `python -m monai.bundle ckpt_export` runs it
        ckpt_export(
            net_id=BUNDLE_NETWORKS[bundle].net_id,
            filepath=filepath,
            ckpt_file=ckpt_file,
            meta_file=str(root / bundle / "configs" / "metadata.json"),
            config_file=_config_files(bundle, configs, profile, root),
            key_in_ckpt=CHECKPOINT_KEY,
            **_parser_overrides(bundle, overrides, root),
        )
        return filepath
    network = bundle_network(parser, bundle, ckpt_file)
    example = example_image(parser, bundle)
    multiple = None
    if dynamic_spatial:
        multiple = BUNDLE_NETWORKS[bundle].spatial_multiple or max(network_attributes(network)["size_divisible"])
    program = export_program(network, example, dynamic_batch=True, spatial_multiple=multiple)
    if fmt == "onnx":
        return export_onnx(program, filepath, example)
    files = _config_files(bundle, configs, profile, root)
    return save_exported_program(
        program,
        filepath,
        meta=parser.get("_meta_"),
        configs={os.path.relpath(f, root / bundle / "configs"): ConfigParser.load_config_file(f) for f in files},
        attributes=network_attributes(network),
    )


def exported_outputs(fmt: str, filepath: str | os.PathLike, image: Tensor) -> list[Tensor] | None:
    """The flattened outputs (:func:`~monai_xattn.networks.export.flatten_outputs`) of an exported file on ``image``.

    Returns:
        ``None`` for ``onnx`` without ``onnxruntime``.
    """
    if fmt == "onnx":
        return run_onnx(filepath, image) if onnx_available(runtime=True) else None
    # TorchScript files run their own code when loaded, as .pt2 files may: only load exports you trust
    loaded = torch.jit.load(os.fspath(filepath)) if fmt == "torchscript" else load_exported_network(filepath)
    with torch.no_grad():
        return flatten_outputs(loaded(image))


def max_difference(expected: Sequence[Tensor], actual: Sequence[Tensor]) -> float:
    """Largest absolute difference between two lists of same-shaped tensors (``inf`` when the shapes differ)."""
    if len(expected) != len(actual) or any(a.shape != b.shape for a, b in zip(expected, actual, strict=True)):
        return float("inf")
    return max(float((a.float() - b.float()).abs().max()) for a, b in zip(expected, actual, strict=True))


def _override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:  # a bare string (a path, a name)
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", choices=sorted(BUNDLE_NETWORKS), help="the bundle whose network to export")
    parser.add_argument(
        "--format",
        dest="formats",
        nargs="+",
        choices=EXPORT_FORMATS,
        default=["exported_program"],
        help="formats to write (default: exported_program)",
    )
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default: <output_dir>/model.pt)")
    parser.add_argument(
        "--out-dir", type=Path, default=None, help="folder for model.ts / .pt2 / .onnx (default: <output_dir>)"
    )
    parser.add_argument(
        "--configs", nargs="+", default=["train.json"], help="bundle configs the network is built from, in order"
    )
    parser.add_argument("--profile", choices=PROFILES, default=None, help="the bundle's profile the run used")
    parser.add_argument(
        "--set",
        dest="overrides",
        type=_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override as the training run had it (VALUE read as JSON when it parses, else a string)",
    )
    parser.add_argument("--root", type=Path, default=None, help="folder holding the bundles (default: the shipped)")
    parser.add_argument(
        "--dynamic-spatial", action="store_true", help="exported_program/onnx: any multiple of the stride as size"
    )
    parser.add_argument("--no-check", action="store_true", help="skip comparing each export with the eager network")


def run(args: argparse.Namespace) -> int:
    overrides = dict(args.overrides)
    common = {"configs": args.configs, "profile": args.profile, "overrides": overrides, "root": args.root}
    written = []
    for fmt in args.formats:
        filepath = None if args.out_dir is None else args.out_dir / ("model" + FILE_SUFFIXES[fmt])
        try:
            path = export_bundle(args.bundle, fmt, filepath, args.ckpt, dynamic_spatial=args.dynamic_spatial, **common)
        except (FileNotFoundError, ImportError, ValueError) as e:
            print(f"monai-xattn export: {fmt}: {e}", file=sys.stderr)
            return 1
        written.append((fmt, path))
    if args.no_check:
        for fmt, path in written:
            print(f"{fmt}: {path}")
        return 0
    parser = bundle_parser(args.bundle, **common)
    network = bundle_network(parser, args.bundle, args.ckpt)
    image = example_image(parser, args.bundle, batch_size=1, seed=1)  # another batch size than the export's
    with torch.no_grad():
        expected = flatten_outputs(network(image))
    for fmt, path in written:
        actual = exported_outputs(fmt, path, image)
        if actual is None:
            check = "not checked: onnxruntime is not installed"
        else:
            check = f"max |exported - eager| = {max_difference(expected, actual):.3g} on a {tuple(image.shape)} image"
        print(f"{fmt}: {path} ({check})")
    return 0
