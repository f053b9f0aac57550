"""Cross-site gap on the phantom: a detector trained on one acquisition site, evaluated on its own site and on
another (issue 17) -- the localization paper's setting (a detector trained on one source, evaluated on
MIMIC-CXR and ChestX-ray8).

Trains the ``cxr_retinanet`` bundle as shipped (CPU profile) on the ``--train`` layout's phantom, evaluates it
on that layout's test split and on the test split of each ``--eval`` layout's phantom (generated here with
``--eval-studies`` studies, so that its test split holds enough boxes), and, with ``--both``, trains on the
first ``--eval`` layout too, so that "the other site is harder" and "the other site is different" can be told
apart. Prints IoU@0.25 / 0.5 (localization accuracy) per (train, eval) pair.

Run: ``python benchmarks/phantom_site_gap.py [--train chestxray8] [--eval mimic-cxr] [--studies 400]
[--difficulty easy] [--both]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from monai_xattn.data.phantom import generate
from monai_xattn.data.phantom.layouts import LAYOUTS

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "cxr_retinanet"


def _bundle(configs: list[str], overrides: dict[str, object], cwd: Path) -> None:
    files = str([str(BUNDLE / "configs" / c) for c in configs])
    args = [x for k, v in overrides.items() for x in (f"--{k}", str(v))]
    done = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", files,
                           "--bundle_root", str(BUNDLE), "--progress", "False", *args],
                          cwd=cwd, capture_output=True, text=True)  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"bundle run failed ({configs}, {overrides}):\n{done.stderr[-3000:]}")


def _metrics(eval_dir: Path) -> dict[str, float]:
    lines = (eval_dir / "metrics.csv").read_text().splitlines()
    return {k: float(v) for k, v in (line.split(",") for line in lines)}


def gap(train: str, evals: list[str], studies: int, eval_studies: int, difficulty: str, work: Path) -> dict:
    """``{(train layout, eval layout): metrics}`` for one trained detector."""
    common = {"phantom_studies": studies, "phantom_difficulty": difficulty, "dataset": train}
    out, data = work / f"train_{train}", work / f"data_{train}"
    _bundle(["train.json"], {**common, "output_dir": out, "dataset_dir": data}, work)
    results = {}
    _bundle(["train.json", "evaluate.json"], {**common, "output_dir": out, "dataset_dir": data}, work)
    results[(train, train)] = _metrics(out / "eval")
    for other in evals:
        other_dir = work / f"eval_data_{other}"
        if not other_dir.exists():
            generate(other_dir, layout=other, n=eval_studies, size=128, seed=1, difficulty=difficulty)
        _bundle(["train.json", "evaluate.json"],
                {**common, "output_dir": out, "dataset_dir": data, "eval_dataset": other,
                 "eval_dataset_dir": other_dir}, work)  # fmt: skip
        results[(train, other)] = _metrics(out / f"eval_{other}")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default="chestxray8", choices=sorted(LAYOUTS))
    parser.add_argument("--eval", nargs="+", default=["mimic-cxr"], choices=sorted(LAYOUTS))
    parser.add_argument("--studies", type=int, default=400, help="training phantom studies")
    parser.add_argument("--eval-studies", type=int, default=1000, help="studies of each other site's phantom")
    parser.add_argument("--difficulty", default="easy")
    parser.add_argument("--both", action="store_true", help="also train on the first --eval layout")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = gap(args.train, args.eval, args.studies, args.eval_studies, args.difficulty, Path(tmp))
        if args.both:
            results.update(gap(args.eval[0], [args.train], args.studies, args.eval_studies, args.difficulty, Path(tmp)))
    print(f"cxr_retinanet (CPU profile), {args.studies} training studies, {args.difficulty}; "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip
    print("| trained on | evaluated on | IoU@0.25 | IoU@0.5 |")
    print("|---|---|---|---|")
    for (tr, ev), m in results.items():
        print(f"| {tr} ({LAYOUTS[tr].site}) | {ev} ({LAYOUTS[ev].site}) | {m.get('val_acc_iou25', float('nan')):.3f} "
              f"| {m.get('val_acc_iou50', float('nan')):.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
