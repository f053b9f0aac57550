"""The ``monai-xattn`` command line.

Each sub-command lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``. :func:`main` imports only the module of the command it is asked to run (or to show the
``--help`` of), so ``--help`` and ``--version`` stay fast and a heavy import (torch, monai, transformers) never
slows down the others; the top-level ``--help`` lists every command from :data:`COMMANDS` alone.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Collection, Sequence

from monai_xattn import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

# name -> (module implementing it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "bundles": (
        "monai_xattn.bundles_cli",
        "list the shipped MONAI bundles, or copy them out (--copy-to DIR) to edit and run",
    ),
    "word2vec": ("monai_xattn.text.word2vec_cli", "train the attribute Word2Vec on the cleaned reports of a datalist"),
    "datalist": ("monai_xattn.data.datalist_cli", "turn a dataset folder into a MONAI datalist JSON"),
    "phantom": ("monai_xattn.data.phantom_cli", "write synthetic chest X-rays + reports in the real datasets' layouts"),
    "demo": ("monai_xattn.demo", "run the whole chain on phantom data (resumable); the README's main job"),
    "siim-table": (
        "monai_xattn.siim_table",
        "GLoRIA Table 4: SIIM Dice at 1, 10 and 100 percent of the data per encoder init",
    ),
    "detection-transfer": (
        "monai_xattn.detection_transfer",
        "RSNA pneumonia detector at 1, 10 and 100 percent of the boxes: GLoRIA-initialised backbone vs random",
    ),
    "weights": (
        "monai_xattn.weights_cli",
        "inspect a weight file (official GLoRIA, torchvision, ours) or convert it to a plain state dict",
    ),
    "export": (
        "monai_xattn.export_cli",
        "export a trained bundle's network as TorchScript, a torch.export program (.pt2) or ONNX",
    ),
    "table1": (
        "monai_xattn.table1",
        "cross-attention Table 1 on phantom data through the bundles: IoU@t with intervals, paired to RetinaNet",
    ),
}


def build_parser(commands: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``monai-xattn`` parser: every command of :data:`COMMANDS` listed with its help.

    Args:
        commands: the commands whose arguments are defined, which imports their modules; the others take no
            arguments here. ``None`` defines them all (every module imported).
    """
    parser = argparse.ArgumentParser(
        prog="monai-xattn",
        description="Chest X-ray + report learning on MONAI: cross-attention localization and GLoRIA.",
    )
    parser.add_argument("--version", action="version", version=f"monai-xattn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        cmd.set_defaults(_module=module_name)
        if commands is None or name in commands:
            importlib.import_module(module_name).add_arguments(cmd)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top level has flags only)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser([c for c in [_named_command(argv)] if c in COMMANDS])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
