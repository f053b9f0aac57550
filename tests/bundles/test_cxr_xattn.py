"""The cxr_xattn bundle: metadata, configs, and real runs (train on a detector checkpoint, resume, evaluate on both
phantoms, image-only inference, torchrun DDP)."""

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

from monai_xattn.networks.roi_detector import create_roi_detector

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cxr_xattn"
CONFIGS = BUNDLE / "configs"
TINY = ["--phantom_studies", "16", "--phantom_size", "64", "--image_size", "64", "--progress", "False",
        "--word_dim", "16", "--batch_size", "4"]  # fmt: skip


def _run(root: Path, names: tuple[str, ...], *args: str, torchrun: bool = False) -> str:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str([f"configs/{n}.json" for n in names])]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2"]
        cmd += ["-m", "monai.bundle", "run", "--config_file", str([f"configs/{n}.json" for n in names])]
    cmd += ["--bundle_root", str(root), *TINY, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, text=True, timeout=900, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


@pytest.fixture
def detector_checkpoint(tmp_path) -> Path:
    """A cxr_retinanet-shaped checkpoint (untrained: the runs here test the wiring, not the learning)."""
    torch.manual_seed(0)
    det = create_roi_detector(depth=18, returned_layers=(2, 3), base_anchor_shapes=((16, 16), (24, 12), (12, 24)))
    path = tmp_path / "detector.pt"
    torch.save({"network": det.network.state_dict()}, path)
    return path


@pytest.mark.parametrize(
    "names", [("train",), ("train", "evaluate"), ("train", "inference"), ("train", "multi_gpu_train")]
)
def test_configs_parse(names):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / f"{n}.json") for n in names])
    parser["bundle_root"] = "unused"
    parser.parse()
    assert "run" in parser.config and "initialize" in parser.config


def test_inference_config_feeds_no_text():
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json"), str(CONFIGS / "inference.json")])
    text = json.dumps({k: parser.config[k] for k in ("validate", "run", "initialize")})
    assert "word" not in text.lower() and "report" not in text.lower()
    assert parser.config["validate"]["preprocessing"].endswith("attributes=False)")


@pytest.mark.slow
def test_train_resume_evaluate_infer(tmp_path, detector_checkpoint):
    models = tmp_path / "models"
    det = ["--detector_checkpoint", str(detector_checkpoint)]
    _run(tmp_path, ("train",), "--epochs", "1", *det)
    assert {"last.pt", "model.pt", "datalist.json", "word2vec.kv"} <= {p.name for p in models.iterdir()}
    first = torch.load(models / "last.pt", weights_only=True)
    per_epoch = first["trainer"]["iteration"]
    assert per_epoch > 0
    # the frozen detector is saved as loaded; the head has moved
    saved = {k.removeprefix("detector.network."): v for k, v in first["network"].items() if k.startswith("detector.")}
    loaded = torch.load(detector_checkpoint, weights_only=True)["network"]
    assert all(torch.equal(saved[k], v) for k, v in loaded.items())

    log = _run(tmp_path, ("train",), "--epochs", "2", "--resume", "True", *det)
    assert "resumed at epoch 1" in log
    assert torch.load(models / "last.pt", weights_only=True)["trainer"]["iteration"] == 2 * per_epoch

    for dataset in ("mimic-cxr", "chestxray8"):
        _run(tmp_path, ("train", "evaluate"), "--eval_dataset", dataset)
        metrics = (models / f"eval_{dataset}" / "metrics.csv").read_text()
        assert "val_acc_iou25" in metrics and "val_acc_iou75" in metrics

    _run(tmp_path, ("train", "inference"), "--overlays", "True", "--overlay_size", "96")
    records = json.loads((models / "predictions" / "predictions.json").read_text())
    assert len(records) == len(json.loads((models / "datalist.json").read_text())["test"]) > 0
    assert all(0 < len(r["boxes"]) == len(r["scores"]) <= 5 for r in records)  # top_k ROIs by alpha
    assert all(isinstance(r["attributes"], dict) and len(r["attribute_probs"]) > 0 for r in records)
    for record in records:  # --overlay_size wide (the 64 px phantom is square), the attribute caption below
        with Image.open(models / "predictions" / f"{Path(record['image_id']).stem}.png") as overlay:
            assert overlay.width == 96 and overlay.height > 96


@pytest.mark.slow
def test_multi_gpu_config_with_torchrun_gloo(tmp_path, detector_checkpoint, mlflow_tracking):
    log = _run(
        tmp_path,
        ("train", "multi_gpu_train"),
        "--epochs",
        "1",
        "--detector_checkpoint",
        str(detector_checkpoint),
        *mlflow_tracking.args(),
        torchrun=True,
    )
    assert "train_loss" in log
    mlflow_tracking.assert_one_finished_run("train_loss", "val_acc_iou25")
    state = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state["network"])
    # DistributedSampler splits the studies the paper's training rule kept (counted by the bundle)
    n_train = json.loads((tmp_path / "models" / "training_studies.json").read_text())["kept"]
    assert 0 < n_train < len(json.loads((tmp_path / "models" / "datalist.json").read_text())["training"])
    assert state["trainer"]["iteration"] == math.ceil(math.ceil(n_train / 2) / 4)
