"""Table 1: formatting, attribute metrics and the CLI registration.

The learning test (Proposed beats CAM and GradCAM at IoU@0.5 on phantom easy) is ``tests/test_table1_learns.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from monai_xattn.cli import build_parser
from monai_xattn.table1 import METHODS, THRESHOLDS, attribute_metrics, format_table1, run_table1


def _result(value: float) -> dict:
    cells = {f"IoU@{t}": value * (1 - t) for t in THRESHOLDS}
    return {
        "rows": {m: {"mimic-cxr": cells, "chestxray8": cells} for m in METHODS},
        "attributes": {"Proposed": {"accuracy": 0.9, "auc": 0.8, "auc_attributes": 5.0}},
        "settings": {
            "difficulty": "easy",
            "n": 10,
            "size": 64,
            "seed": 0,
            "device": "cpu",
            "test_images_with_boxes": {"mimic-cxr": 3, "chestxray8": 4},
        },
        "seconds": 1.0,
    }


def test_format_lists_every_method_with_measured_and_paper_numbers():
    text = format_table1(_result(0.8))
    for method in METHODS:
        assert f"| {method} |" in text
    assert "0.600 / 0.400 / 0.200" in text  # measured cells, from the result
    assert "0.529 / 0.428 / 0.123" in text  # the paper's Proposed row, labelled as real data
    assert "paper, real data" in text and "| Proposed | 0.900 | 0.800 |" in text
    assert "0.600" not in format_table1(_result(0.5))


def test_attribute_metrics():
    targets = torch.tensor([[1, 0, -1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.float32)
    probs = torch.tensor([[0.9, 0.2, 0.9], [0.1, 0.8, 0.4], [0.7, 0.6, 0.3], [0.2, 0.4, 0.1]])
    m = attribute_metrics(probs, targets)
    assert m["accuracy"] == 1.0  # the -1 entry (0.9 vs unknown) is skipped
    assert m["auc"] == 1.0 and m["auc_attributes"] == 2  # column 2 has one class only: no AUC
    flipped = attribute_metrics(1 - probs, targets)
    assert flipped["accuracy"] == 0.0 and flipped["auc"] == 0.0
    assert math.isnan(attribute_metrics(probs[:, 2:], targets[:, 2:])["auc"])


def test_run_table1_rejects_unknown_methods(tmp_path):
    with pytest.raises(ValueError, match="unknown methods"):
        run_table1(tmp_path, methods=("Proposed", "SAM"))


def test_cli_registers_table1():
    args = build_parser().parse_args(["table1", "--out", "x", "--n", "12", "--difficulty", "easy"])
    assert args._module == "monai_xattn.table1" and args.n == 12 and args.detector_weights is None
    assert args.alpha_mode == "residual" and args.methods == list(METHODS)
    args = build_parser().parse_args(["table1", "--out", "x", "--methods", "CAM", "Proposed", "--residual-bound", "0"])
    assert args.methods == ["CAM", "Proposed"] and args.residual_bound == 0
