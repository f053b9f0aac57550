"""``monai-xattn bundles``: list the MONAI bundles shipped with the project."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["bundle_root", "list_bundles", "add_arguments", "run"]


def bundle_root() -> Path:
    """The ``bundles/`` folder of the source tree (bundles ship beside the package, not inside it)."""
    return Path(__file__).resolve().parent.parent / "bundles"


def list_bundles(root: Path | None = None) -> list[tuple[str, str, str]]:
    """Return ``(name, version, description)`` for every folder of ``root`` holding ``configs/metadata.json``."""
    root = bundle_root() if root is None else Path(root)
    found = []
    for meta_file in sorted(root.glob("*/configs/metadata.json")):
        meta = json.loads(meta_file.read_text())
        found.append((meta_file.parent.parent.name, str(meta.get("version", "?")), str(meta.get("description", ""))))
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=None, help="folder holding the bundles (default: bundles/)")


def run(args: argparse.Namespace) -> int:
    bundles = list_bundles(args.root)
    if not bundles:
        print(f"no bundles found under {args.root or bundle_root()}")
        return 1
    width = max(len(name) for name, _, _ in bundles)
    for name, version, description in bundles:
        print(f"{name:<{width}}  {version:<7} {description}")
    return 0
