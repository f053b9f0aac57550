"""``monai-xattn phantom``: write synthetic chest X-ray datasets in the real datasets' layouts."""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run"]

# kept here (and this module outside the phantom package) so that building the CLI parser imports nothing heavy
_LAYOUTS = ("mimic-cxr", "mimic-cxr-jpg", "chestxray8", "rsna", "siim", "chexpert", "covid", "ms-cxr")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--layout", required=True, choices=[*_LAYOUTS, "all"], help="dataset layout ('all': one sub-folder each)"
    )
    parser.add_argument(
        "--out", required=True, help="output folder (must be empty or a phantom written before, with --overwrite)"
    )
    parser.add_argument("--n", type=int, default=100, help="studies per layout (default 100)")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    parser.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    parser.add_argument("--overwrite", action="store_true", help="replace a phantom previously written to --out")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")


def run(args: argparse.Namespace) -> int:
    from monai_xattn.data.phantom.generate import LAYOUT_NAMES, generate

    assert tuple(LAYOUT_NAMES) == _LAYOUTS, "phantom CLI layout list is out of date"
    try:
        summary = generate(
            args.out,
            layout=args.layout,
            n=args.n,
            size=args.size,
            seed=args.seed,
            difficulty=args.difficulty,
            overwrite=args.overwrite,
            workers=args.workers,
        )
    except (FileExistsError, ValueError) as err:
        print(f"phantom: {err}")
        return 2
    print(json.dumps(summary, indent=1))
    return 0
