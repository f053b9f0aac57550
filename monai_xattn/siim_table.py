"""``monai-xattn siim-table``: GLoRIA's Table 4 (SIIM Dice at 1 / 10 / 100 % of the training data, per encoder init).

Every run is one ``bundles/siim_unet`` training (``train.json`` with ``--init``, ``--fraction`` and ``--seed``),
then two evaluations on the test split (``evaluate.json`` with ``--eval_checkpoint best`` and ``last``), each
through ``python -m monai.bundle run`` -- the table is a user of the bundle, not a second training loop. A cell is
the mean and the sample standard deviation over the training seeds; the data (phantom and split) stays fixed by
``data_seed``, so a seed changes the drawn training fraction, the initial decoder weights and the batch order.

Both checkpoints are reported because they answer different questions: ``best`` (the best validation Kaggle Dice)
is what a practitioner keeps, ``last`` is what GLoRIA's official code tests. Beside every Kaggle Dice stands the
all-empty prediction's score on the same test images (measured by the evaluation, ``val_empty_kaggle_dice``): the
Kaggle Dice gives an empty ground truth 1 for an empty prediction, so a model that finds nothing scores the share
of negative images, and a cell is only worth reading above that.

Finished runs are kept (``run.json`` per run), so an interrupted table resumes; ``--force`` recomputes. The result
is printed as Markdown and written to ``siim_table.md`` and ``siim_table.json`` in the output folder.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_xattn.bundles_cli import PROFILES, bundle_command, load_profile, profile_config

__all__ = [
    "CHECKPOINTS",
    "DATA",
    "SEEDS",
    "add_arguments",
    "format_spread",
    "format_table",
    "read_metrics",
    "run",
    "run_siim_table",
    "summarize",
]

# The training settings of each profile are the bundle's own (``bundles/siim_unet/configs/profiles/<profile>.json``,
# which `monai-xattn demo` uses too): "paper" is GLoRIA's official setting (ResNet-50, 512 px, batch 8, Adam 5e-4,
# up to 100 epochs with early stopping on the validation Dice after 20 epochs without improvement); "cpu" runs a
# cell in a few minutes on a 2-core CPU; "tiny" is for tests.
#: training seeds per profile (the demo uses as many, counted from its --seed)
SEEDS: dict[str, tuple[int, ...]] = {"tiny": (0,), "cpu": (0, 1, 2), "paper": (0, 1, 2)}
#: the data each profile makes: a generated phantom, or (paper) the real dataset given with --data
DATA: dict[str, dict[str, Any]] = {
    "tiny": {"phantom_studies": 48, "phantom_size": 64},
    "cpu": {"phantom_studies": 200, "phantom_size": 64},
    "paper": {"make_phantom": False},
}
#: ``evaluate.json``'s ``eval_checkpoint`` -> the folder its metrics go to
CHECKPOINTS = {"best": "eval", "last": "eval_last"}

_METRICS = ("val_kaggle_dice", "val_positive_dice")
_EMPTY = "val_empty_kaggle_dice"


def _bundle_command(configs: Sequence[str], profile: str, overrides: dict[str, Any]) -> list[str]:
    # the profile's overrides come after the configs, the command line's after both; unset keys keep the default
    configs = [*configs, profile_config("siim_unet", profile)]
    return bundle_command("siim_unet", configs, {k: v for k, v in overrides.items() if v is not None})


def read_metrics(eval_dir: Path) -> dict[str, float]:
    path = eval_dir / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"evaluation wrote no {path}")
    with open(path, newline="") as f:
        return {row[0]: float(row[1]) for row in csv.reader(f) if row}


def format_spread(values: Sequence[float], digits: int = 3) -> str:
    """``"mean ± sample standard deviation"`` of ``values``; the value alone for one; ``"-"`` for none."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def summarize(cells: Sequence[Mapping[str, Any]]) -> dict[tuple[str, float], dict[str, dict[str, list[float]]]]:
    """Group the runs of a table by (init, fraction): ``{(init, fraction): {checkpoint: {metric: [one per seed]}}}``.

    The seeds are taken in ascending order, so the lists of two checkpoints or metrics line up.
    """
    grouped: dict[tuple[str, float], dict[str, dict[str, list[float]]]] = {}
    for cell in sorted(cells, key=lambda c: c.get("seed", 0)):
        group = grouped.setdefault((cell["init"], cell["fraction"]), {})
        for checkpoint, metrics in cell["metrics"].items():
            for name, value in metrics.items():
                group.setdefault(checkpoint, {}).setdefault(name, []).append(value)
    return grouped


def format_table(
    cells: Sequence[Mapping[str, Any]],
    metric: str,
    fractions: Sequence[float],
    checkpoints: Sequence[str] = tuple(CHECKPOINTS),
) -> str:
    """Markdown table of ``metric``: one row per init, one column per (fraction, checkpoint).

    Each cell is :func:`format_spread` over the seeds. For the Kaggle Dice a last row gives the all-empty
    prediction's score on the same test images (``val_empty_kaggle_dice`` of the same evaluations).
    """
    grouped = summarize(cells)
    header = "| init | " + " | ".join(f"{100 * f:g} % {c}" for f in fractions for c in checkpoints) + " |"
    lines = [header, "|---" * (len(fractions) * len(checkpoints) + 1) + "|"]

    def row(name: str, key: str, init: str | None) -> str:
        values = []
        for fraction in fractions:
            for checkpoint in checkpoints:
                groups = [g for (i, f), g in grouped.items() if f == fraction and (init is None or i == init)]
                values.append(format_spread([v for g in groups for v in g.get(checkpoint, {}).get(key, [])]))
        return f"| {name} | " + " | ".join(values) + " |"

    lines += [row(init, metric, init) for init in dict.fromkeys(c["init"] for c in cells)]
    if metric == "val_kaggle_dice":
        lines.append(row("all-empty prediction", _EMPTY, None))
    return "\n".join(lines)


def run_siim_table(
    out_dir: str | Path,
    inits: Sequence[str] = ("random", "gloria"),
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    gloria: str | Path | None = None,
    imagenet: str | Path | None = None,
    profile: str = "cpu",
    difficulty: str = "medium",
    seeds: Sequence[int] | None = None,
    data_seed: int = 0,
    data_dir: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train one ``siim_unet`` run per (init, fraction, seed), evaluate its best and last weights; return the table.

    Args:
        out_dir: output folder (one sub-folder per run, the phantom data, the tables).
        inits: encoder initialisations, from ``random``, ``gloria``, ``imagenet``.
        fractions: training-data fractions (GLoRIA: 0.01, 0.1, 1.0).
        gloria: GLoRIA checkpoint (``bundles/gloria_pretrain`` ``models/model.pt``, or the official
            ``chexpert_resnet50.ckpt`` with the ``paper`` profile's depth 50), needed for ``gloria``.
        imagenet: torchvision ResNet state dict file, needed for ``imagenet``.
        profile: one of :data:`monai_xattn.bundles_cli.PROFILES`: the bundle's ``configs/profiles/<profile>.json``
            and the data of :data:`DATA`.
        difficulty: phantom difficulty (ignored with ``data_dir``).
        seeds: training seeds (fraction draw, initial weights, batch order); default :data:`SEEDS` of the profile.
        data_seed: phantom and split seed, the same for every run (so every run is tested on the same images).
        data_dir: a SIIM folder (``train-rle.csv`` + ``dicom-images-train``) instead of the phantom.
        overrides: further bundle overrides (e.g. ``{"freeze_encoder": True}``).
        force: recompute finished runs.

    Returns:
        ``{"cells": [{"init", "fraction", "seed", "metrics": {"best": {...}, "last": {...}}, "seconds"}],
        "settings": {...}, "tables": {metric: markdown}}``.

    Raises:
        ValueError: an unknown profile or init, an init without its checkpoint, no seed, or the ``paper`` profile
            without ``data_dir``.
        FileNotFoundError: a checkpoint or a ``data_dir`` that does not exist.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {profile!r}")
    seeds = list(SEEDS[profile] if seeds is None else seeds)
    if not seeds:
        raise ValueError("give at least one seed")
    if DATA[profile].get("make_phantom") is False and data_dir is None:
        raise ValueError(f"profile {profile!r} runs on the real dataset: give its folder with --data")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise FileNotFoundError(
            f"--data {data_dir}: no such folder (it should hold train-rle.csv and dicom-images-train/)"
        )
    weights = {"random": None, "gloria": gloria, "imagenet": imagenet}
    for init in inits:
        if init not in weights:
            raise ValueError(f"unknown init {init!r}; choose from {sorted(weights)}")
        if init != "random" and weights[init] is None:
            raise ValueError(
                f"init {init!r} needs its checkpoint (--{init} PATH); for GLoRIA, train "
                "bundles/gloria_pretrain first (its models/model.pt)"
            )
        if weights[init] is not None and not Path(weights[init]).is_file():
            raise FileNotFoundError(f"--{init} {weights[init]}: no such file")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    settings = {**DATA[profile], "phantom_difficulty": difficulty, "data_seed": data_seed, **(overrides or {})}
    if data_dir is not None:
        settings.update(make_phantom=False, dataset_dir=str(Path(data_dir).resolve()))
    else:
        settings["dataset_dir"] = str(out / "data" / f"phantom_siim_{difficulty}_{data_seed}")
    settings["datalist_file"] = str(out / f"datalist_{data_seed}.json")

    cells = []
    for init in inits:
        for fraction in fractions:
            for seed in seeds:
                run_dir = out / "runs" / f"{init}_{100 * fraction:g}pct_seed{seed}"
                done = run_dir / "run.json"
                if done.is_file() and not force:
                    cells.append(json.loads(done.read_text()))
                    continue
                start = time.monotonic()
                run_settings = {
                    **settings,
                    "bundle_root": str(run_dir),
                    "init": init,
                    "fraction": fraction,
                    "seed": seed,
                }
                if weights[init] is not None:
                    run_settings["weights"] = str(Path(weights[init]).resolve())
                subprocess.run(_bundle_command(["train.json"], profile, run_settings), check=True, cwd=out)
                # the evaluation loads the trained network: no encoder initialisation to repeat
                eval_settings = {k: v for k, v in run_settings.items() if k not in ("init", "weights")}
                metrics = {}
                for checkpoint, folder in CHECKPOINTS.items():
                    evaluate = {**eval_settings, "eval_split": "test", "eval_checkpoint": checkpoint}
                    subprocess.run(
                        _bundle_command(["train.json", "evaluate.json"], profile, evaluate), check=True, cwd=out
                    )
                    metrics[checkpoint] = read_metrics(run_dir / "models" / folder)
                cell = {
                    "init": init,
                    "fraction": fraction,
                    "seed": seed,
                    "metrics": metrics,
                    "seconds": time.monotonic() - start,
                }
                done.write_text(json.dumps(cell, indent=1) + "\n")
                cells.append(cell)

    tables = {m: format_table(cells, m, fractions) for m in _METRICS}
    profile_settings = {"profile": profile, "profile_overrides": load_profile("siim_unet", profile), "seeds": seeds}
    result = {"cells": cells, "settings": {**settings, **profile_settings}, "tables": tables}
    (out / "siim_table.json").write_text(json.dumps(result, indent=1) + "\n")
    spread = "one seed" if len(seeds) == 1 else f"mean ± sample standard deviation over {len(seeds)} seeds"
    text = (
        f"SIIM test Dice (profile {profile}; seeds {', '.join(map(str, seeds))}: {spread}; data seed {data_seed}). "
        f"best: weights of the best validation Kaggle Dice; last: the last epoch's (GLoRIA's official test).\n\n"
        f"Kaggle Dice (an empty ground truth scores 1 only for an empty prediction); the last row is an all-empty "
        f"prediction on the same test images:\n\n{tables['val_kaggle_dice']}\n\n"
        f"Dice on pneumothorax-positive test images (an all-empty prediction scores 0):\n\n"
        f"{tables['val_positive_dice']}\n"
    )
    (out / "siim_table.md").write_text(text)
    print(text)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("siim_table"), help="output folder (default: %(default)s)")
    parser.add_argument(
        "--init",
        nargs="+",
        default=["random", "gloria"],
        choices=["random", "gloria", "imagenet"],
        help="encoder initialisations, one table row each (default: random gloria)",
    )
    parser.add_argument(
        "--fraction",
        nargs="+",
        type=float,
        default=[0.01, 0.1, 1.0],
        help="training-data fractions, one column pair each (default: 0.01 0.1 1.0)",
    )
    parser.add_argument(
        "--gloria",
        type=Path,
        help="GLoRIA checkpoint (bundles/gloria_pretrain models/model.pt, or "
        "the official chexpert_resnet50.ckpt with depth 50)",
    )
    parser.add_argument("--imagenet", type=Path, help="torchvision ResNet state dict file (nothing is downloaded)")
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), default="cpu", help="bundle settings (default: cpu); paper needs --data"
    )
    parser.add_argument("--difficulty", default="medium", help="phantom difficulty (default: medium)")
    parser.add_argument(
        "--data", type=Path, help="a SIIM folder (train-rle.csv + dicom-images-train) instead of the phantom"
    )
    parser.add_argument(
        "--seeds",
        "--seed",
        nargs="+",
        type=int,
        default=None,
        help="training seeds, one run each per cell (default: the profile's, "
        + "; ".join(f"{p}: {' '.join(map(str, s))}" for p, s in SEEDS.items())
        + ")",
    )
    parser.add_argument("--data-seed", type=int, default=0, help="phantom and split seed (default: 0)")
    parser.add_argument("--epochs", type=int, help="override the profile's epochs")
    parser.add_argument(
        "--depth",
        type=int,
        help="override the profile's ResNet depth (the --gloria file's: the official checkpoint is a ResNet-50)",
    )
    parser.add_argument("--freeze-encoder", action="store_true", help="frozen encoder (MGCA) instead of fine-tuning")
    parser.add_argument("--force", action="store_true", help="recompute finished runs")


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {"freeze_encoder": True} if args.freeze_encoder else {}
    for key in ("epochs", "depth"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    run_siim_table(
        args.out,
        inits=args.init,
        fractions=args.fraction,
        gloria=args.gloria,
        imagenet=args.imagenet,
        profile=args.profile,
        difficulty=args.difficulty,
        seeds=args.seeds,
        data_seed=args.data_seed,
        data_dir=args.data,
        overrides=overrides,
        force=args.force,
    )
    return 0
