"""Table 1 from a demo run's outputs: intervals pooled over seeds, paired differences, the ablation, the CLI.

The bundle runs are replaced by the files they leave (step markers, ``metrics.csv`` and MetricsSaver's per-image
``val_acc_iou25_raw.csv``), so the table logic is tested on known numbers. The learning test that runs the bundles
is ``tests/test_table1_learns.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from monai_xattn import table1
from monai_xattn.cli import build_parser
from monai_xattn.report.builder import localization_tables

IMAGES = [f"/data/img{k:03d}.dcm" for k in range(40)]


def _write_run(out: Path, step: str, folder: str, overlaps: list[float]) -> None:
    """What one evaluation step leaves: its marker (with the metrics path) and the per-image top-1 IoUs."""
    (out / folder).mkdir(parents=True, exist_ok=True)
    rows = [f"{image},{value},{value}" for image, value in zip(IMAGES, overlaps, strict=True)]
    (out / folder / "val_acc_iou25_raw.csv").write_text("filename,class0,mean\n" + "\n".join(rows) + "\n")
    iou25 = float(np.mean(np.asarray(overlaps) >= 0.25))
    (out / folder / "metrics.csv").write_text(f"val_acc_iou25,{iou25}\n")
    marker = {"step": step, "seconds": 1.0, "result": {"metrics_path": f"{folder}/metrics.csv", "metrics": {}}}
    (out / "steps").mkdir(exist_ok=True)
    (out / "steps" / f"{step}.done.json").write_text(json.dumps(marker))


def _fake_demo(out: Path, ablation: bool = False) -> None:
    rng = np.random.default_rng(0)
    retinanet = rng.random(len(IMAGES)) * 0.6  # IoU@0.25 ~ 0.58
    for ds in ("mimic-cxr", "chestxray8"):
        _write_run(out, f"cxr_retinanet_evaluate_{ds}", f"cxr_retinanet/eval_{ds}", list(retinanet))
        for k, suffix in enumerate(("", "_seed1", "_seed2")):
            better = np.where(np.arange(len(IMAGES)) < 10 + k, 0.9, retinanet)  # Proposed fixes 10-12 images
            _write_run(out, f"cxr_xattn{suffix}_evaluate_{ds}", f"cxr_xattn{suffix}/eval_{ds}", list(better))
            _write_run(out, f"cxr_xattn_no_bce{suffix}_evaluate_{ds}", f"nobce{suffix}/eval_{ds}", list(retinanet))
            if ablation:
                _write_run(out, f"cxr_xattn_all_studies{suffix}_evaluate_{ds}", f"all{suffix}/eval_{ds}", [0.0] * 40)


def test_table1_pools_seeds_with_intervals_and_pairs_proposed_with_retinanet(tmp_path):
    _fake_demo(tmp_path)
    table, comparison = (t.markdown() for t in localization_tables(tmp_path))
    retinanet = float(np.mean(np.random.default_rng(0).random(40) * 0.6 >= 0.25))
    # RetinaNet: one run; its IoU@0.25 cell is the measured accuracy with an interval around it
    row = next(line for line in table.splitlines() if line.startswith("| RetinaNet | ours"))
    assert re.search(rf"\| RetinaNet \| ours, phantom \| 1 \| {retinanet:.3f} \[0\.\d{{3}}, 0\.\d{{3}}\] \|", row)
    # Proposed pools three seeds (10, 11, 12 images moved to 0.9 over RetinaNet's)
    assert "| Proposed | ours, phantom | 3 |" in table
    # the paired difference of Proposed over RetinaNet excludes 0; w/o classification equals RetinaNet exactly
    proposed = next(line for line in comparison.splitlines() if line.startswith("| Proposed - RetinaNet"))
    low = float(re.search(r"\| \+0\.\d{3} \[([+-]\d\.\d{3}),", proposed).group(1))
    assert low > 0
    assert "| Proposed w/o classification - RetinaNet | ours, phantom | +0.000 [+0.000, +0.000] |" in comparison
    # rows without runs print "-" rather than a number; the paper's rows are labelled
    assert "| CAM | ours, phantom | - |" in table and "| Proposed | paper, real data | - | 0.529 |" in table
    assert "ablation" not in table.lower()


def test_cam_rows_get_the_pointing_game_pooled_over_seeds(tmp_path):
    _fake_demo(tmp_path)
    for k, suffix in enumerate(("", "_seed1")):
        folder = tmp_path / f"cam{suffix}" / "eval_chestxray8_gradcam"
        _write_run(
            tmp_path, f"cxr_cam_baseline{suffix}_evaluate_gradcam_chestxray8", folder.relative_to(tmp_path), [0.1] * 40
        )
        # seed 0 points into a box on the first 10 images, seed 1 on the first 20; images without a box are nan
        hits = [1.0 if i < 10 * (k + 1) else 0.0 for i in range(38)] + [float("nan")] * 2
        rows = [f"{image},{hit},{hit}" for image, hit in zip(IMAGES, hits, strict=True)]
        (folder / "val_peak_in_box_raw.csv").write_text("filename,class0,mean\n" + "\n".join(rows) + "\n")
    tables = [t.markdown() for t in localization_tables(tmp_path)]
    pointing = next(t for t in tables if "pointing game" in t)
    # (10 + 20) hits over 2 x 38 scored images; no CAM run, no CAM row; MIMIC-CXR has no GradCAM run: "-"
    assert f"| GradCAM | ours, phantom | - | - | {30 / 76:.3f} [" in pointing and "| 38 |" in pointing
    assert "| CAM |" not in pointing
    # the IoU rows of the same runs: every top-1 IoU is 0.1, so 0 at every threshold
    assert re.search(r"\| GradCAM \| ours, phantom \| 2 \| - \| - \| - \| 0\.000 \[", tables[0])


def test_ablation_table_appears_with_its_runs(tmp_path):
    _fake_demo(tmp_path, ablation=True)
    tables = [t.markdown() for t in localization_tables(tmp_path)]
    assert len(tables) == 3 and "ablation" in tables[2].lower()
    row = next(line for line in tables[2].splitlines() if line.startswith("| every study with a report trains"))
    assert "| 0.000 [0.000, 0.000] |" in row and "-0." in row


def test_run_table1_runs_the_localization_part_only_and_writes_table1_md(tmp_path, monkeypatch):
    calls = []

    def fake_run_demo(out, profile, difficulty, seed, force, parts, ablation):
        calls.append((profile, parts, ablation))
        _fake_demo(out)

    monkeypatch.setattr(table1, "run_demo", fake_run_demo)
    text = table1.run_table1(tmp_path, profile="tiny", ablation=True)
    assert calls == [("tiny", ("localization",), True)]
    assert (tmp_path / "table1.md").read_text() == text and "Localization, Table 1" in text


def test_cli_registers_table1():
    args = build_parser().parse_args(["table1", "--out", "x", "--difficulty", "easy", "--ablation"])
    assert args._module == "monai_xattn.table1" and args.profile == "cpu" and args.ablation and args.seed == 0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["table1", "--out", "x", "--profile", "huge"])
