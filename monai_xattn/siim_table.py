"""``monai-xattn siim-table``: GLoRIA's Table 4 (SIIM Dice at 1 / 10 / 100 % of the training data, per encoder init).

Every cell is one run of ``bundles/siim_unet``: ``train.json`` with ``--init`` and ``--fraction``, then
``evaluate.json`` on the test split, each through ``python -m monai.bundle run`` -- the table is a user of the
bundle, not a second training loop. Finished cells are kept (``cell.json`` per run), so an interrupted table
resumes; ``--force`` recomputes. The result is printed as Markdown and written to ``siim_table.md`` and
``siim_table.json`` in the output folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_xattn.bundles_cli import bundle_command

__all__ = ["PROFILES", "add_arguments", "format_table", "run", "run_siim_table"]

# bundle overrides per profile; "demo" runs on a CPU in minutes per cell, "paper" is GLoRIA's setting on real data
PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {"phantom_images": 48, "phantom_size": 64, "spatial_size": 64, "depth": 18,
             "decoder_channels": [64, 32, 16, 16, 8], "epochs": 1, "batch_size": 8},
    "demo": {"phantom_images": 200, "phantom_size": 64, "spatial_size": 64, "depth": 18,
             "decoder_channels": [64, 32, 16, 16, 8], "epochs": 8, "batch_size": 8},
    "paper": {"make_phantom": False, "spatial_size": 512, "depth": 50, "epochs": 100, "batch_size": 8,
              "learning_rate": 0.0005},
}  # fmt: skip

_METRICS = ("val_kaggle_dice", "val_positive_dice")


def _bundle_command(configs: Sequence[str], overrides: dict[str, Any]) -> list[str]:
    # unset keys keep the config's default
    return bundle_command("siim_unet", configs, {k: v for k, v in overrides.items() if v is not None})


def _read_metrics(eval_dir: Path) -> dict[str, float]:
    path = eval_dir / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"evaluation wrote no {path}")
    with open(path, newline="") as f:
        return {row[0]: float(row[1]) for row in csv.reader(f) if row}


def format_table(cells: Sequence[dict[str, Any]], metric: str, fractions: Sequence[float]) -> str:
    """Markdown table, one row per init, one column per fraction, for ``metric``."""
    header = "| init | " + " | ".join(f"{100 * f:g} %" for f in fractions) + " |"
    lines = [header, "|---" * (len(fractions) + 1) + "|"]
    for init in dict.fromkeys(c["init"] for c in cells):
        by_fraction = {c["fraction"]: c["metrics"].get(metric) for c in cells if c["init"] == init}
        values = [f"{by_fraction[f]:.3f}" if by_fraction.get(f) is not None else "-" for f in fractions]
        lines.append(f"| {init} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def run_siim_table(
    out_dir: str | Path,
    inits: Sequence[str] = ("random", "gloria"),
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    gloria: str | Path | None = None,
    imagenet: str | Path | None = None,
    profile: str = "demo",
    difficulty: str = "medium",
    seed: int = 0,
    data_dir: str | Path | None = None,
    checkpoint: str = "best",
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train and evaluate one ``siim_unet`` run per (init, fraction); return the table.

    Args:
        out_dir: output folder (one sub-folder per run, the phantom data, the tables).
        inits: encoder initialisations, from ``random``, ``gloria``, ``imagenet``.
        fractions: training-data fractions (GLoRIA: 0.01, 0.1, 1.0).
        gloria: GLoRIA checkpoint (``bundles/gloria_pretrain`` ``models/model.pt``), needed for ``gloria``.
        imagenet: torchvision ResNet state dict file, needed for ``imagenet``.
        profile: bundle overrides from :data:`PROFILES`.
        difficulty: phantom difficulty (ignored with ``data_dir``).
        seed: phantom, split and fraction seed.
        data_dir: a SIIM folder (``train-rle.csv`` + ``dicom-images-train``) instead of the phantom.
        checkpoint: evaluate the ``best`` (validation Kaggle Dice, GLoRIA's protocol) or the ``last`` weights.
        overrides: further bundle overrides (e.g. ``{"freeze_encoder": True}``).
        force: recompute finished cells.

    Returns:
        ``{"cells": [{"init", "fraction", "metrics", "seconds"}], "settings": {...}, "tables": {metric: md}}``.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    weights = {"random": None, "gloria": gloria, "imagenet": imagenet}
    for init in inits:
        if init not in weights:
            raise ValueError(f"unknown init {init!r}; choose from {sorted(weights)}")
        if init != "random" and weights[init] is None:
            raise ValueError(f"init {init!r} needs its checkpoint (--{init} PATH); for GLoRIA, train "
                             "bundles/gloria_pretrain first (its models/model.pt)")  # fmt: skip
        if weights[init] is not None and not Path(weights[init]).is_file():
            raise FileNotFoundError(f"--{init} {weights[init]}: no such file")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = {**PROFILES[profile], "phantom_difficulty": difficulty, "seed": seed, **(overrides or {})}
    if data_dir is not None:
        settings.update(make_phantom=False, dataset_dir=str(Path(data_dir).resolve()))
    else:
        settings["dataset_dir"] = str(out / "data" / f"phantom_siim_{difficulty}")
    settings["datalist_file"] = str(out / "datalist.json")

    cells = []
    for init in inits:
        for fraction in fractions:
            run_dir = out / "runs" / f"{init}_{100 * fraction:g}pct"
            done = run_dir / "cell.json"
            if done.is_file() and not force:
                cells.append(json.loads(done.read_text()))
                continue
            start = time.monotonic()
            run_settings = {**settings, "bundle_root": str(run_dir), "init": init, "weights": weights[init],
                            "fraction": fraction}  # fmt: skip
            if weights[init] is not None:
                run_settings["weights"] = str(Path(weights[init]).resolve())
            subprocess.run(_bundle_command(["train.json"], run_settings), check=True, cwd=out)
            eval_settings = {**run_settings, "eval_split": "test",
                             "checkpoint": str(run_dir / "models" / ("model.pt" if checkpoint == "best" else "last.pt"))}
            eval_settings.pop("weights")
            eval_settings.pop("init")
            subprocess.run(_bundle_command(["train.json", "evaluate.json"], eval_settings), check=True, cwd=out)
            metrics = _read_metrics(run_dir / "models" / "eval")
            cell = {"init": init, "fraction": fraction, "metrics": metrics, "seconds": time.monotonic() - start}
            done.write_text(json.dumps(cell, indent=1) + "\n")
            cells.append(cell)

    tables = {m: format_table(cells, m, fractions) for m in _METRICS}
    result = {"cells": cells, "settings": {**settings, "profile": profile, "checkpoint": checkpoint}, "tables": tables}
    (out / "siim_table.json").write_text(json.dumps(result, indent=1) + "\n")
    text = (f"SIIM test Dice (profile {profile}, {checkpoint} checkpoint)\n\nKaggle Dice (empty ground truth scores 1 "
            f"only for an empty prediction):\n\n{tables['val_kaggle_dice']}\n\nDice on pneumothorax-positive test "
            f"images:\n\n{tables['val_positive_dice']}\n")  # fmt: skip
    (out / "siim_table.md").write_text(text)
    print(text)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("siim_table"), help="output folder (default: %(default)s)")
    parser.add_argument("--init", nargs="+", default=["random", "gloria"], choices=["random", "gloria", "imagenet"],
                        help="encoder initialisations, one table row each (default: random gloria)")
    parser.add_argument("--fraction", nargs="+", type=float, default=[0.01, 0.1, 1.0],
                        help="training-data fractions, one column each (default: 0.01 0.1 1.0)")
    parser.add_argument("--gloria", type=Path, help="GLoRIA checkpoint (bundles/gloria_pretrain models/model.pt)")
    parser.add_argument("--imagenet", type=Path, help="torchvision ResNet state dict file (nothing is downloaded)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="demo", help="bundle settings (default: demo)")
    parser.add_argument("--difficulty", default="medium", help="phantom difficulty (default: medium)")
    parser.add_argument("--data", type=Path, help="a SIIM folder to use instead of the phantom")
    parser.add_argument("--checkpoint", choices=["best", "last"], default="best",
                        help="evaluate the best-validation (GLoRIA) or the last weights (default: best)")
    parser.add_argument("--freeze-encoder", action="store_true", help="frozen encoder (MGCA) instead of fine-tuning")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="recompute finished cells")


def run(args: argparse.Namespace) -> int:
    run_siim_table(args.out, inits=args.init, fractions=args.fraction, gloria=args.gloria, imagenet=args.imagenet,
                   profile=args.profile, difficulty=args.difficulty, seed=args.seed, data_dir=args.data,
                   checkpoint=args.checkpoint, overrides={"freeze_encoder": True} if args.freeze_encoder else None,
                   force=args.force)  # fmt: skip
    return 0
