"""Cross-site gap on the phantom: a detector trained on one acquisition site, evaluated on its own site and on
another (issue 17) -- the localization paper's setting (a detector trained on one source, evaluated on
MIMIC-CXR and ChestX-ray8).

Trains the ``cxr_retinanet`` bundle as shipped (CPU profile) on the ``--train`` layout's phantom, evaluates it
on that layout's test split and on the test split of each ``--eval`` layout's phantom (generated here with
``--eval-studies`` studies, so that its test split holds enough boxes) twice: filmed at its own site and, as
the control, the very same studies (same patients, lesions and boxes) filmed at the training layout's site. The
difference between the two is the site gap alone; the difference between the control and the training
layout's own test split is what the other dataset's content (views, devices, findings) adds. Prints IoU@0.25 /
0.5 (localization accuracy) per pair.

Run: ``python benchmarks/phantom_site_gap.py [--train chestxray8] [--eval mimic-cxr] [--studies 400]
[--difficulty easy]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from monai_xattn.data.phantom import generate
from monai_xattn.data.phantom import layouts as phantom_layouts
from monai_xattn.data.phantom.layouts import LAYOUTS

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "cxr_retinanet"


def _bundle(configs: list[str], overrides: dict[str, object], cwd: Path) -> None:
    files = str([str(BUNDLE / "configs" / c) for c in configs])
    args = [x for k, v in overrides.items() for x in (f"--{k}", str(v))]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monai.bundle",
            "run",
            "--config_file",
            files,
            "--bundle_root",
            str(BUNDLE),
            "--progress",
            "False",
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"bundle run failed ({configs}, {overrides}):\n{done.stderr[-3000:]}")


def _metrics(eval_dir: Path) -> dict[str, float]:
    lines = (eval_dir / "metrics.csv").read_text().splitlines()
    return {k: float(v) for k, v in (line.split(",") for line in lines)}


def _generate_at_site(root: Path, layout: str, site: str, **kwargs) -> None:
    """Write ``layout``'s phantom with its studies filmed at ``site`` (the worker processes fork after the swap)."""
    original = phantom_layouts.LAYOUTS[layout]
    phantom_layouts.LAYOUTS[layout] = replace(original, site=site)
    try:
        generate(root, layout=layout, **kwargs)
    finally:
        phantom_layouts.LAYOUTS[layout] = original


def gap(train: str, evals: list[str], studies: int, eval_studies: int, difficulty: str, work: Path) -> dict:
    """``{(trained on, evaluated on, site): metrics}`` for one trained detector."""
    common = {"phantom_studies": studies, "phantom_difficulty": difficulty, "dataset": train}
    out, data = work / f"train_{train}", work / f"data_{train}"
    _bundle(["train.json"], {**common, "output_dir": out, "dataset_dir": data}, work)
    _bundle(["train.json", "evaluate.json"], {**common, "output_dir": out, "dataset_dir": data}, work)
    results = {(train, train, LAYOUTS[train].site): _metrics(out / "eval")}
    for other in evals:
        for site in (LAYOUTS[other].site, LAYOUTS[train].site):
            other_dir = work / f"eval_data_{other}_{site}"
            _generate_at_site(other_dir, other, site, n=eval_studies, size=128, seed=1, difficulty=difficulty)
            _bundle(
                ["train.json", "evaluate.json"],
                {
                    **common,
                    "output_dir": out,
                    "dataset_dir": data,
                    "eval_dataset": other,
                    "eval_dataset_dir": other_dir,
                },
                work,
            )
            results[(train, other, site)] = _metrics(out / f"eval_{other}")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="chestxray8", choices=sorted(LAYOUTS))
    parser.add_argument("--eval", nargs="+", default=["mimic-cxr"], choices=sorted(LAYOUTS))
    parser.add_argument("--studies", type=int, default=400, help="training phantom studies")
    parser.add_argument("--eval-studies", type=int, default=1000, help="studies of each other site's phantom")
    parser.add_argument("--difficulty", default="easy")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = gap(args.train, args.eval, args.studies, args.eval_studies, args.difficulty, Path(tmp))
    print(
        f"cxr_retinanet (CPU profile), trained on {args.studies} {args.train} phantom studies, {args.difficulty}; "
        f"{time.perf_counter() - start:.0f} s"
    )
    print("| trained on | evaluated on (test split) | filmed at site | IoU@0.25 | IoU@0.5 |")
    print("|---|---|---|---|---|")
    for (tr, ev, site), m in results.items():
        print(
            f"| {tr} ({LAYOUTS[tr].site}) | {ev} | {site} | {m.get('val_acc_iou25', float('nan')):.3f} "
            f"| {m.get('val_acc_iou50', float('nan')):.3f} |"
        )


if __name__ == "__main__":
    main()
