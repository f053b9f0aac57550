"""``monai-xattn table1``: Table 1 of Bhalodia et al. (MICCAI 2021) on phantom data, through the bundles.

The localization half of ``monai-xattn demo`` (:func:`monai_xattn.demo.run_demo` with ``parts=("localization",)``):
``cxr_retinanet`` learns RSNA's pneumonia boxes once and stays fixed; per localization seed, ``cxr_xattn`` trains
Proposed (the paper's alpha), Proposed without attribute classification and our residual-alpha variant on
MIMIC-CXR, and ``cxr_cam_baseline`` the CAM / GradCAM classifier; every row is evaluated on every study of a
held-out MIMIC-CXR phantom and of the ChestX-ray8 phantom. ``--ablation`` adds Proposed with one of the paper's
rules undone at a time. The table (mean [95 % bootstrap interval over images, seeds pooled]) and the paired
differences to RetinaNet are :mod:`monai_xattn.report.builder`'s, printed and written to ``table1.md``; the whole
run's ``report.html`` is written too. One way to produce Table 1: the demo report and this command share it.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from monai_xattn.bundles_cli import PROFILES
from monai_xattn.demo import print_bundle_failure, run_demo
from monai_xattn.report.builder import localization_tables

__all__ = ["run_table1", "add_arguments", "run"]


def run_table1(
    out_dir: str | Path,
    profile: str = "cpu",
    difficulty: str = "medium",
    seed: int = 0,
    ablation: bool = False,
    force: bool = False,
) -> str:
    """Run (or resume) the localization chain into ``out_dir``; write and return Table 1 as Markdown.

    Args:
        out_dir: output folder (phantoms under ``data/``, one folder per bundle run, ``table1.md``).
        profile: the bundles' profile (``configs/profiles/<profile>.json``) and the demo's phantom sizes.
        difficulty: phantom difficulty.
        seed: phantom seed and first localization seed.
        ablation: add the ablation runs and table.
        force: redo finished runs.
    """
    out = Path(out_dir)
    run_demo(out, profile, difficulty, seed, force, parts=("localization",), ablation=ablation)
    text = "\n\n".join(table.markdown() for table in localization_tables(out)) + "\n"
    (out / "table1.md").write_text(text)
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (phantoms, bundle runs, table1.md)")
    parser.add_argument("--profile", choices=PROFILES, default="cpu", help="bundle settings (default: cpu)")
    parser.add_argument("--difficulty", default="medium", choices=("easy", "medium", "hard"))
    parser.add_argument("--seed", type=int, default=0, help="phantom seed and first localization seed")
    parser.add_argument("--ablation", action="store_true", help="add Proposed with each of the paper's rules undone")
    parser.add_argument("--force", action="store_true", help="redo finished runs")


def run(args: argparse.Namespace) -> int:
    try:
        text = run_table1(args.out, args.profile, args.difficulty, args.seed, args.ablation, args.force)
    except subprocess.CalledProcessError as e:
        print_bundle_failure(e)
        return 1
    print(text)
    return 0
