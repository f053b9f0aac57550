"""``monai-xattn datalist DATASET --root DIR --output FILE.json``: a dataset folder -> MONAI datalist JSON.

Prints what the adapter found (images, studies, patients, boxes, positives, split sizes) and everything it left
out, with why. The output must lie outside the dataset folder.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from monai_xattn.data.datalist import AdapterReport

__all__ = ["ADAPTERS", "get_adapter", "parse_options", "check_option_types", "add_arguments", "run"]

# dataset name -> "module:function"; imported on use so the CLI stays light
ADAPTERS: dict[str, str] = {
    "mimic-cxr": "monai_xattn.data.mimic_cxr:build_mimic_cxr_datalist",
    "mimic-cxr-jpg": "monai_xattn.data.mimic_cxr:build_mimic_cxr_jpg_datalist",
    "chestxray8": "monai_xattn.data.chestxray8:build_chestxray8_datalist",
    "rsna": "monai_xattn.data.rsna:build_rsna_datalist",
    "siim": "monai_xattn.data.siim:build_siim_datalist",
    "chexpert": "monai_xattn.data.chexpert:build_chexpert_datalist",
    "chexpert-5x200": "monai_xattn.data.chexpert:build_chexpert_5x200_datalist",
    "covid": "monai_xattn.data.covid:build_covid_datalist",
    "ms-cxr": "monai_xattn.data.ms_cxr:build_ms_cxr_datalist",
}


def get_adapter(dataset: str) -> Callable[..., tuple[dict, AdapterReport]]:
    """The ``build_*_datalist`` function registered for ``dataset``."""
    try:
        module, function = ADAPTERS[dataset].split(":")
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {sorted(ADAPTERS)}") from None
    return getattr(importlib.import_module(module), function)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=sorted(ADAPTERS), help="dataset layout of --root")
    parser.add_argument("--root", type=Path, required=True, help="dataset folder (only read)")
    parser.add_argument("--output", type=Path, required=True, help="datalist JSON to write (outside --root)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of per-patient splits (default 0)")
    parser.add_argument(
        "--val-fraction", type=float, default=None, help="fraction of patients for validation (adapter default)"
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="fraction of patients for test where the dataset has no official test split (adapter default)",
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help='adapter option, VALUE read as JSON when it parses (e.g. --set \'views=["PA", "AP"]\', '
        "--set uncertain=ones); repeatable; see docs/datasets.md",
    )


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``["views=[\"PA\"]", "uncertain=ones"]`` -> ``{"views": ["PA"], "uncertain": "ones"}``."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON-parsed ``--set`` value fits the type hint ``hint`` (hints it cannot judge pass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # JSON true/false are bools, which Python would take for 1/0
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint in (str, os.PathLike) or origin is os.PathLike:
        return isinstance(value, str)
    if origin in (Sequence, list, tuple):
        # a bare string is one name where names are expected (``as_names``), never a list of numbers
        if isinstance(value, str):
            return not args or args[0] is str
        return isinstance(value, list) and (not args or all(_matches(v, args[0]) for v in value))
    if origin in (Mapping, dict):
        return isinstance(value, dict) and (not args or all(_matches(v, args[1]) for v in value.values()))
    return True


def check_option_types(adapter: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the option, its value and the expected type when a value does not fit.

    ``--set`` values arrive as JSON or plain strings; without this check ``read_headers="no"`` would count as
    true and a string ``val_fraction`` would fail deep inside the adapter with a bare ``TypeError``.
    """
    hints = typing.get_type_hints(adapter)
    for key, value in options.items():
        if key in hints and not _matches(value, hints[key]):
            hint = hints[key]
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("collections.abc.", "")
            raise ValueError(f"option {key}={value!r} ({type(value).__name__}) does not fit {key}: {expected}")


def run(args: argparse.Namespace) -> int:
    from monai_xattn.data.datalist import DatalistError, ensure_outside, write_datalist  # pandas: only when run

    options = {"split_seed": args.split_seed}
    if args.val_fraction is not None:
        options["val_fraction"] = args.val_fraction
    if args.test_fraction is not None:
        options["test_fraction"] = args.test_fraction
    if args.dataset == "chexpert-5x200":  # a fixed evaluation set: only the sampling seed applies
        options = {"seed": args.split_seed}
    try:
        options.update(parse_options(args.set))
        adapter = get_adapter(args.dataset)
        unknown = sorted(set(options) - set(inspect.signature(adapter).parameters))
        if unknown:
            raise ValueError(f"{args.dataset} has no option(s) {unknown}; see docs/datasets.md")
        check_option_types(adapter, options)
        if not args.root.is_dir():
            raise DatalistError(f"{args.root}: not a folder")
        ensure_outside(args.output, args.root)
        datalist, report = adapter(args.root, **options)
        write_datalist(datalist, args.output)
    except (DatalistError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report)
    print(f"wrote {args.output}")
    return 0
