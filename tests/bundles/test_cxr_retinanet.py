"""The cxr_retinanet bundle: metadata, configs, and real runs (train, resume, evaluate, inference, torchrun DDP)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from PIL import Image

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cxr_retinanet"
CONFIGS = BUNDLE / "configs"
# a tiny phantom and network input keep each run to seconds of compute
TINY = ["--phantom_studies", "16", "--phantom_size", "64", "--image_size", "64", "--progress", "False"]


def _configs(*names: str) -> str:
    return str([f"configs/{n}.json" for n in names])


def _run(root: Path, names: tuple[str, ...], *args: str, torchrun: bool = False) -> str:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", _configs(*names)]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
        cmd += ["-m", "monai.bundle", "run", "--config_file", _configs(*names)]
    cmd += ["--bundle_root", str(root), *TINY, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, text=True, timeout=600, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def test_metadata_declares_a_detection_dict():
    # the keys every bundle's metadata holds: tests/bundles/test_bundle_metadata.py
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["network_data_format"]["outputs"]["pred"]["format"] == "dict"


@pytest.mark.parametrize(
    "names", [("train",), ("train", "evaluate"), ("train", "inference"), ("train", "multi_gpu_train")]
)
def test_configs_parse_and_build_the_detector(names):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f"{n}.json") for n in names])
    parser["bundle_root"] = "unused"
    parser.parse()
    assert "run" in parser.config and "initialize" in parser.config
    if names == ("train",):
        parser["depth"] = 18
        det = parser.get_parsed_content("network_def")
        assert det.n_rois == parser.get_parsed_content("n_rois")
        assert det.target_box_key == "boxes" and det.target_label_key == "labels"


@pytest.mark.slow
def test_train_resume_evaluate_infer(tmp_path):
    models = tmp_path / "models"
    _run(tmp_path, ("train",), "--epochs", "1")
    assert {"last.pt", "model.pt", "datalist.json"} <= {p.name for p in models.iterdir()}
    assert (tmp_path / "data" / "phantom_rsna" / "stage_2_train_labels.csv").is_file()  # generated on first run
    first = torch.load(models / "last.pt", weights_only=True)
    per_epoch = first["trainer"]["iteration"]
    assert per_epoch > 0 and {"network", "optimizer", "lr_scheduler", "best_saver"} <= set(first)

    log = _run(tmp_path, ("train",), "--epochs", "2", "--resume", "True")
    assert "resumed at epoch 1" in log
    assert torch.load(models / "last.pt", weights_only=True)["trainer"]["iteration"] == 2 * per_epoch

    _run(tmp_path, ("train", "evaluate"))
    metrics = (models / "eval" / "metrics.csv").read_text()
    assert "val_acc_iou25" in metrics and "val_mAP" in metrics

    _run(tmp_path, ("train", "inference"), "--overlays", "True", "--min_score", "0.0", "--overlay_size", "96")
    datalist = json.loads((models / "datalist.json").read_text())
    records = json.loads((models / "predictions" / "predictions.json").read_text())
    assert len(records) == len(datalist["test"]) > 0
    first_record = records[0]
    assert first_record["frame"] == "original" and len(first_record["boxes"]) == len(first_record["scores"]) > 0
    width, height = datalist["test"][0]["image_size"]
    boxes = torch.tensor([r for rec in records for r in rec["boxes"]])
    assert boxes[:, 2].max() <= width and boxes[:, 3].max() <= height  # back in original pixels
    # overlays at --overlay_size on the long side of the (64 px, square) original, not the network input's size
    for record in records:
        with Image.open(models / "predictions" / f"{Path(record['image_id']).stem}.png") as overlay:
            assert overlay.size == (96, 96)


@pytest.mark.slow
def test_multi_gpu_config_with_torchrun_gloo(tmp_path, mlflow_tracking):
    log = _run(tmp_path, ("train", "multi_gpu_train"), "--epochs", "1", *mlflow_tracking.args(), torchrun=True)
    assert "train_loss" in log
    mlflow_tracking.assert_one_finished_run("train_loss", "val_mAP")
    state = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    # saved from the unwrapped network: loadable without DDP's "module." prefix
    assert not any(k.startswith("module.") for k in state["network"])
    # DistributedSampler splits the training set: each rank runs half of the single-process iterations
    n_train = len(json.loads((tmp_path / "models" / "datalist.json").read_text())["training"])
    assert state["trainer"]["iteration"] == math.ceil(math.ceil(n_train / 2) / 4)
