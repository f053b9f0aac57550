"""``monai-xattn weights``: look inside a weight file, and turn it into a plain, ``weights_only``-safe state dict.

``inspect FILE`` says what the file holds (format, foreign classes read as stand-ins, ResNet trunk depth and
frame, text encoder) and which of this project's networks it can initialise. ``convert FILE OUT`` writes the
file's tensors, keys unchanged, as a plain state dict that ``torch.load(weights_only=True)`` reads with no
stand-in, plus ``OUT.json`` recording where they came from. Every loader of the package reads the original file
just as well; the converted one is for other tools (e.g. segmentation_models.pytorch users who want a GLoRIA
ResNet-50 encoder) and for archiving without Lightning's pickled objects.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from monai_xattn import __version__
from monai_xattn.networks.gloria import gloria_layout
from monai_xattn.networks.resnet_weights import describe_trunk
from monai_xattn.utils.checkpoints import Checkpoint, CheckpointError, read_state_dict

__all__ = ["inspect_weights", "describe_checkpoint", "convert_weights", "format_inspection", "add_arguments", "run"]

_LAYOUT_NAMES = {
    "official": "official GLoRIA (gloria.img_encoder / gloria.text_encoder keys)",
    "monai_xattn": "monai_xattn GLoRIA (image_encoder / text_encoder, bundles/gloria_pretrain)",
}


def _text_encoder(state: Mapping[str, torch.Tensor]) -> dict | None:
    """Hidden size, layer count and vocabulary of a BERT-family text model among the keys, if any."""
    embeddings = [k for k in state if k.endswith("embeddings.word_embeddings.weight")]
    if len(embeddings) != 1:
        return None
    prefix = embeddings[0][: -len("embeddings.word_embeddings.weight")]
    layers = {int(k[len(prefix) :].split(".")[2]) for k in state if k.startswith(f"{prefix}encoder.layer.")}
    vocab, hidden = state[embeddings[0]].shape
    return {"prefix": prefix, "hidden_size": int(hidden), "layers": len(layers), "vocab_size": int(vocab)}


def inspect_weights(source: str | os.PathLike) -> dict[str, Any]:
    """Describe a weight file (see the module docstring); a JSON-ready dict."""
    return describe_checkpoint(read_state_dict(source, what="weight file"))


def describe_checkpoint(checkpoint: Checkpoint) -> dict[str, Any]:
    """The ``inspect`` report of a file already read by :func:`monai_xattn.utils.read_state_dict`."""
    state = checkpoint.state_dict
    trunk = describe_trunk(state)
    text = _text_encoder(state)
    layout = gloria_layout(list(state))
    uses = []
    if trunk is not None and trunk["depth"] is not None:
        depth, stages = trunk["depth"], len(trunk["blocks"])
        init = "gloria" if layout != "trunk" else "imagenet"
        if stages == 4:
            uses.append(f"siim_unet U-Net encoder (--depth {depth} --init {init} --weights FILE)")
            uses.append(f"gloria_eval linear-probe trunk (depth {depth})")
        uses.append(f"RetinaNet backbone of cxr_retinanet / cxr_xattn (depth {depth}; --backbone_weights FILE)")
    if layout != "trunk" and text is not None:
        uses.append(
            f"gloria_eval, both encoders (depth {trunk['depth'] if trunk else '?'}, a text model of hidden "
            f"size {text['hidden_size']} with {text['layers']} layers"
            + (
                "; the official release holds Bio_ClinicalBERT: pass its local folder as text_model, and "
                "image_input_size 299"
                if layout == "official"
                else ""
            )
            + ")"
        )
    return {
        "file": checkpoint.name,
        "format": checkpoint.format,
        "layout": _LAYOUT_NAMES.get(layout, "ResNet trunk" if trunk else "unrecognised"),
        "stood_in": checkpoint.stood_in,
        "info": checkpoint.info,
        "tensors": len(state),
        "parameters": int(sum(v.numel() for v in state.values() if v.is_floating_point())),
        "trunk": trunk,
        "text_encoder": text,
        "can_initialise": uses,
    }


def format_inspection(report: Mapping[str, Any]) -> str:
    """The ``inspect`` report as text."""
    trunk, text = report["trunk"], report["text_encoder"]
    lines = [
        f"file:         {report['file']}",
        f"format:       {report['format']}" + (f" ({report['info']})" if report["info"] else ""),
        f"layout:       {report['layout']}",
        f"tensors:      {report['tensors']} ({report['parameters']:,} floating-point values)",
    ]
    if report["stood_in"]:
        lines.append(f"stand-ins:    {', '.join(report['stood_in'])} (foreign classes, read as inert; no code ran)")
    if trunk:
        frame = {
            "HW": "(H, W): kernels are transposed into MONAI's (W, H) frame when loaded",
            "WH": "(W, H): MONAI's frame, loaded as is",
        }[trunk["frame"]]
        lines.append(
            f"image trunk:  ResNet-{trunk['depth'] or '?'} (blocks {trunk['blocks']}) under "
            f"'{trunk['prefix']}', {trunk['in_channels']} input channel(s), frame {frame}"
        )
    else:
        lines.append("image trunk:  none")
    lines.append(
        f"text model:   hidden {text['hidden_size']}, {text['layers']} layers, vocabulary "
        f"{text['vocab_size']} under '{text['prefix']}'"
        if text
        else "text model:   none"
    )
    lines.append("can initialise:")
    lines += [f"  - {use}" for use in report["can_initialise"]] or ["  - nothing this project builds"]
    return "\n".join(lines)


def convert_weights(source: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> dict[str, Any]:
    """Write ``source``'s tensors as a plain state dict to ``out`` and its provenance to ``out + ".json"``.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is false, or ``out`` is ``source``.
    """
    source, out = Path(source), Path(out)
    if out.exists() and out.resolve() == source.resolve():
        raise FileExistsError(f"{out}: the output would overwrite the input")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --force to overwrite it")
    checkpoint = read_state_dict(source, what="weight file")
    report, state = describe_checkpoint(checkpoint), checkpoint.state_dict
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({k: v.contiguous() for k, v in state.items()}, tmp)
    os.replace(tmp, out)  # never a half-written file under the final name
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    provenance = {
        "source": source.name,
        "source_sha256": digest,
        "converted_by": f"monai-xattn {__version__} (weights convert)",
        "keys": "unchanged",
        **{k: report[k] for k in ("format", "layout", "stood_in", "info", "tensors", "trunk", "text_encoder")},
    }
    Path(f"{out}.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    inspect = sub.add_parser("inspect", help="what a weight file holds and which networks it can initialise")
    inspect.add_argument("file", type=Path)
    inspect.add_argument("--json", action="store_true", help="print the report as JSON")
    convert = sub.add_parser("convert", help="write a plain weights_only-safe state dict + OUT.json of provenance")
    convert.add_argument("file", type=Path)
    convert.add_argument("out", type=Path)
    convert.add_argument("--force", action="store_true", help="overwrite OUT")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "inspect":
            report = inspect_weights(args.file)
            print(json.dumps(report, indent=2) if args.json else format_inspection(report))
        else:
            provenance = convert_weights(args.file, args.out, overwrite=args.force)
            print(f"wrote {args.out} ({provenance['tensors']} tensors, plain state dict) and {args.out}.json")
    except (FileNotFoundError, FileExistsError, CheckpointError) as err:
        print(f"monai-xattn weights: {err}", file=sys.stderr)
        return 1
    return 0
