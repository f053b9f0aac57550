"""``monai-xattn bundles``: list the MONAI bundles shipped with the project, or copy them out to edit and run."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "PROFILES",
    "bundle_root",
    "profile_config",
    "load_profile",
    "list_bundles",
    "copy_bundles",
    "cli_value",
    "bundle_command",
    "add_arguments",
    "run",
]

#: the settings every training bundle ships as ``configs/profiles/<name>.json`` (overrides merged after its configs):
#: ``tiny`` runs a few iterations (tests), ``cpu`` minutes on a 2-core CPU (for most bundles their defaults: an empty
#: file), ``paper`` is the published setting (a GPU and the real datasets)
PROFILES = ("tiny", "cpu", "paper")


#: what a bundle ships (``setup.py`` copies the same into a wheel); a run in place writes data/, models/, ... beside
SHIPPED = ("LICENSE", "configs", "docs")


def bundle_root() -> Path:
    """The folder holding the bundles.

    An installed wheel carries them as package data, ``monai_xattn/bundles`` (``setup.py`` copies them there); a
    source checkout (the editable install ``make`` makes) keeps them at the repository's top level, ``bundles/``.
    """
    packaged = resources.files("monai_xattn") / "bundles"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "bundles"


def profile_config(bundle: str, profile: str) -> str:
    """The config name (relative to the bundle's ``configs/``) of ``bundle``'s ``profile`` overrides.

    Raises:
        ValueError: an unknown profile.
        FileNotFoundError: the bundle ships no such profile.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {list(PROFILES)}, got {profile!r}")
    name = f"profiles/{profile}.json"
    if not (bundle_root() / bundle / "configs" / name).is_file():
        raise FileNotFoundError(f"bundle {bundle!r} has no configs/{name}")
    return name


def load_profile(bundle: str, profile: str) -> dict[str, Any]:
    """The overrides ``bundle``'s ``profile`` holds (``{}``: the bundle's defaults)."""
    return json.loads((bundle_root() / bundle / "configs" / profile_config(bundle, profile)).read_text())


def cli_value(value: Any) -> str:
    """Spell ``value`` so that ``python -m monai.bundle run --key VALUE`` (python-fire) parses it back unchanged.

    Fire reads Python literals: JSON's ``false``/``null`` would arrive as the strings ``'false'``/``'null'``
    (truthy), so bools, ``None``, numbers and containers are written with ``repr``; strings and paths as they are.
    """
    return str(value) if isinstance(value, (str, os.PathLike)) else repr(value)


def bundle_command(bundle: str, configs: Sequence[str], overrides: Mapping[str, Any]) -> list[str]:
    """``python -m monai.bundle run`` of ``bundles/<bundle>/configs/<configs>`` (merged in order) with overrides.

    The bundle's ``metadata.json`` and, when it has one, ``logging.conf`` are passed too.

    Raises:
        ValueError: an override is ``None``, which MONAI's command line would drop silently.
    """
    config_dir = bundle_root() / bundle / "configs"
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        json.dumps([str(config_dir / c) for c in configs]),
        "--meta_file",
        str(config_dir / "metadata.json"),
    ]
    if (config_dir / "logging.conf").is_file():
        cmd += ["--logging_file", str(config_dir / "logging.conf")]
    dropped = sorted(k for k, v in overrides.items() if v is None)
    if dropped:
        # monai.bundle's override parser skips None values: the run would keep the config's default unnoticed
        raise ValueError(
            f"overrides {dropped} of {bundle} are None, which `python -m monai.bundle run` drops; use "
            "the key's documented spelling (e.g. image_learning_rate 'same', trainable_text_layers "
            "'all') or leave the key out"
        )
    for key, value in overrides.items():
        cmd += [f"--{key}", cli_value(value)]
    return cmd


def list_bundles(root: Path | None = None) -> list[tuple[str, str, str]]:
    """Return ``(name, version, description)`` for every folder of ``root`` holding ``configs/metadata.json``."""
    root = bundle_root() if root is None else Path(root)
    found = []
    for meta_file in sorted(root.glob("*/configs/metadata.json")):
        meta = json.loads(meta_file.read_text())
        found.append((meta_file.parent.parent.name, str(meta.get("version", "?")), str(meta.get("description", ""))))
    return found


def copy_bundles(target: str | os.PathLike, names: Sequence[str] = (), root: Path | None = None) -> list[Path]:
    """Copy bundles to ``target/<name>``: self-contained folders to edit and run with ``python -m monai.bundle run``.

    Only what a bundle ships is copied (``LICENSE``, ``configs/``, ``docs/``), not what a run in place wrote. The
    copies need ``monai_xattn`` importable, nothing of the source tree; bundles that read another's output by default
    (``cxr_xattn`` the detector of ``../cxr_retinanet``, ``gloria_eval`` ``../gloria_pretrain``) find it when copied
    side by side.

    Args:
        target: the folder to copy into (created).
        names: the bundles to copy; empty: all.
        root: where the bundles are (default :func:`bundle_root`).

    Returns:
        The copied bundle folders.

    Raises:
        ValueError: an unknown bundle name.
        FileExistsError: ``target/<name>`` exists; nothing is overwritten (nothing was copied).
    """
    root = bundle_root() if root is None else Path(root)
    available = [name for name, _, _ in list_bundles(root)]
    unknown = sorted(set(names) - set(available))
    if unknown:
        raise ValueError(f"unknown bundle(s) {unknown}; the bundles under {root} are {available}")
    chosen = list(names) or available
    destinations = [Path(target) / name for name in chosen]
    existing = [str(d) for d in destinations if d.exists()]
    if existing:
        raise FileExistsError(f"{existing} exist: refusing to overwrite; remove them or choose another folder")
    for name, destination in zip(chosen, destinations, strict=True):
        for part in SHIPPED:
            source = root / name / part
            if source.is_dir():
                shutil.copytree(source, destination / part, ignore=shutil.ignore_patterns("__pycache__"))
            elif source.is_file():
                destination.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination / part)
    return destinations


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", help="bundles to copy with --copy-to (default: all)")
    parser.add_argument(
        "--root", type=Path, default=None, help="folder holding the bundles (default: the shipped ones)"
    )
    parser.add_argument(
        "--copy-to",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy the bundles (or those named) to DIR/<name>, to edit and run with `python -m monai.bundle run`",
    )


def run(args: argparse.Namespace) -> int:
    if args.copy_to is not None:
        try:
            copied = copy_bundles(args.copy_to, args.names, args.root)
        except (ValueError, FileExistsError) as e:
            print(f"monai-xattn bundles: {e}", file=sys.stderr)
            return 1
        for folder in copied:
            print(folder)
        return 0
    if args.names:
        print("monai-xattn bundles: bundle names go with --copy-to DIR", file=sys.stderr)
        return 2
    bundles = list_bundles(args.root)
    if not bundles:
        print(f"no bundles found under {args.root or bundle_root()}")
        return 1
    width = max(len(name) for name, _, _ in bundles)
    for name, version, description in bundles:
        print(f"{name:<{width}}  {version:<7} {description}")
    return 0
