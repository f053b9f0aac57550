"""bundles/siim_unet: learns on the easy phantom, evaluates best and last weights beside the all-empty baseline,
writes masks + an RLE CSV; precise BN, early stopping and the official optimizer settings; starts from the official
GLoRIA checkpoint through ``python -m monai.bundle run``; multi-GPU overlay on gloo."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow
from PIL import Image

from monai_xattn.bundles_cli import bundle_command
from monai_xattn.data.siim import rle_decode

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "siim_unet"
CONFIGS = BUNDLE / "configs"
# small enough for a shared 2-core CPU: 64 px images, ResNet-18
FAST = {"phantom_studies": 96, "phantom_size": 64, "spatial_size": 64, "batch_size": 8, "learning_rate": 0.001}


def _workflow(configs: list[str], workflow_type: str, **overrides) -> ConfigWorkflow:
    wf = ConfigWorkflow(
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        workflow_type=workflow_type,
        **overrides,
    )
    wf.initialize()
    return wf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("siim_unet")
    settings = {"bundle_root": str(root), **FAST}
    wf = _workflow(["train.json"], "train", epochs=8, val_interval=8, **settings)
    wf.run()
    wf.finalize()
    return root, settings


def test_learns_on_easy_phantom(trained):
    root, settings = trained
    # the last checkpoint on validation + test images: Dice on positives vs an all-empty prediction's (0)
    ev = _workflow(
        ["train.json", "evaluate.json"],
        "eval",
        checkpoint=str(root / "models" / "last.pt"),
        eval_split="validation",
        **settings,
    )
    ev.run()
    metrics = ev.parser.get_parsed_content("validate#evaluator").state.metrics
    datalist = json.loads((root / "models" / "datalist.json").read_text())
    n_pos = sum(bool(e["rle"]) for e in datalist["validation"])
    assert n_pos >= 3, "the phantom split should hold some positives"
    assert metrics["val_positive_dice"] > 0.3, metrics
    assert (root / "models" / "eval" / "metrics.csv").is_file()


def _metrics_csv(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {row[0]: float(row[1]) for row in csv.reader(f) if row}


def test_evaluates_best_and_last_beside_the_all_empty_baseline(trained):
    root, settings = trained
    models = root / "models"
    for which, folder, file in (("best", "eval", "model.pt"), ("last", "eval_last", "last.pt")):
        ev = _workflow(["train.json", "evaluate.json"], "eval", eval_checkpoint=which, **settings)
        assert ev.parser.get_parsed_content("checkpoint") == str(models / file)
        ev.run()
        metrics = _metrics_csv(models / folder / "metrics.csv")
        assert set(metrics) == {"val_kaggle_dice", "val_positive_dice", "val_empty_kaggle_dice"}, which
        # the baseline is measured on the same test images: the share of them with an empty ground truth
        test = json.loads((models / "datalist.json").read_text())["test"]
        assert metrics["val_empty_kaggle_dice"] == pytest.approx(sum(not e["rle"] for e in test) / len(test))
    wrong = _workflow(["train.json", "evaluate.json"], "eval", eval_checkpoint="best.pt", **settings)
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the expression's error
        wrong.parser.get_parsed_content("checkpoint")
    assert "eval_checkpoint must be one of ['best', 'last']" in str(raised.value.__cause__)


def _parser(**overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json")])
    parser.update(overrides)
    return parser


def test_precise_bn_runs_before_validation_and_follows_its_switches(tmp_path):
    handlers = _parser()["train#handlers"]
    targets = [h["_target_"] for h in handlers]
    assert targets[:2] == ["monai_xattn.engines.gloria.PreciseBatchNorm", "ValidationHandler"]
    assert _parser().get_parsed_content("train#handlers#0#max_batches") is None  # the whole training loader
    assert _parser(precise_bn_batches=3).get_parsed_content("train#handlers#0#max_batches") == 3
    assert _parser(precise_bn=False).get_parsed_content("train#handlers#0#max_batches") == 0
    # a frozen encoder keeps its statistics: re-estimating them would reset the encoder's (it stays in eval mode)
    assert _parser(freeze_encoder=True).get_parsed_content("train#handlers#0#max_batches") == 0
    # the official segmentation optimizer: Adam, betas (0.5, 0.999), weight decay 1e-6
    optimizer = _parser(bundle_root=str(tmp_path)).get_parsed_content("optimizer")
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["betas"] == (0.5, 0.999) and optimizer.defaults["weight_decay"] == 1e-6


def test_early_stopping_and_precise_bn_shape_the_last_checkpoint(tmp_path):
    # a validation score that never improves stops training after `patience` more validations; last.pt is still
    # written for the epoch it stopped at, with the statistics precise BN re-estimated from one batch
    settings = {
        "bundle_root": str(tmp_path),
        **FAST,
        "phantom_studies": 24,
        "spatial_size": 32,
        "batch_size": 4,
        "decoder_channels": [32, 16, 16, 8, 8],
    }
    wf = _workflow(
        ["train.json"],
        "train",
        epochs=4,
        early_stop_patience=1,
        precise_bn_batches=1,
        **{"validate#early_stop#score_function": "$lambda engine: 0.0"},
        **settings,
    )
    wf.run()
    last = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    trainer = last["trainer"]
    assert trainer["iteration"] // trainer["epoch_length"] == 2
    tracked = {k: int(v) for k, v in last["network"].items() if k.endswith("num_batches_tracked")}
    assert tracked and set(tracked.values()) == {1}, tracked
    assert trainer["epoch_length"] > 1  # so that training alone would have tracked more batches


def test_official_gloria_checkpoint_initialises_trains_and_evaluates(official_gloria, tmp_path):
    # the acceptance: `python -m monai.bundle run` with --init gloria --weights <official checkpoint>
    settings = {
        "bundle_root": tmp_path,
        "phantom_studies": 24,
        "phantom_size": 64,
        "spatial_size": 64,
        "depth": 50,
        "batch_size": 4,
        "epochs": 1,
        "decoder_channels": [32, 16, 16, 8, 8],
    }
    init = {"init": "gloria", "weights": official_gloria.path}
    network = _parser(**{k: str(v) if isinstance(v, Path) else v for k, v in {**settings, **init}.items()})
    network = network.get_parsed_content("network_def")
    result = network.init_result
    assert result.loaded and not (result.missing or result.unexpected or result.mismatched), result
    stem = official_gloria.state["gloria.img_encoder.model.conv1.weight"]  # (64, 3, 7, 7) in the (H, W) frame
    torch.testing.assert_close(network.encoder.conv1.weight, stem.sum(1, keepdim=True).transpose(-1, -2))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    for configs, extra in ((["train.json"], init), (["train.json", "evaluate.json"], {"eval_checkpoint": "last"})):
        proc = subprocess.run(
            bundle_command("siim_unet", configs, {**settings, **extra}),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = _metrics_csv(tmp_path / "models" / "eval_last" / "metrics.csv")
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("val_kaggle_dice", "val_positive_dice", "val_empty_kaggle_dice"))


def test_inference_writes_png_masks_and_matching_rle_csv(trained):
    root, settings = trained
    wf = _workflow(["train.json", "inference.json"], "infer", checkpoint=str(root / "models" / "last.pt"), **settings)
    wf.run()
    out = root / "models" / "inference"
    with open(out / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))
    datalist = json.loads((root / "models" / "datalist.json").read_text())
    assert rows[0] == ["ImageId", "EncodedPixels"]
    assert sorted(r[0] for r in rows[1:]) == sorted(e["image_id"] for e in datalist["test"])
    assert any(r[1] != "-1" for r in rows[1:]), "a trained model should predict something on the test images"
    for image_id, rle in rows[1:]:
        png = np.asarray(Image.open(out / f"{image_id}_mask.png"))  # (H, W) at the DICOM's size
        assert png.shape == (settings["phantom_size"],) * 2
        assert np.array_equal(png > 127, rle_decode(rle, *png.shape).astype(bool)), image_id


def test_multi_gpu_overlay_trains_on_gloo(tmp_path, mlflow_tracking):
    overrides = {
        "bundle_root": str(tmp_path),
        **FAST,
        "phantom_studies": 24,
        "spatial_size": 32,
        "epochs": 1,
        "decoder_channels": [64, 32, 16, 16, 8],
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        json.dumps([str(CONFIGS / "train.json"), str(CONFIGS / "multi_gpu_train.json")]),
        "--meta_file",
        str(CONFIGS / "metadata.json"),
        "--logging_file",
        str(CONFIGS / "logging.conf"),
    ]
    for key, value in overrides.items():
        cmd += [f"--{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    cmd += mlflow_tracking.args()
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "models" / "last.pt").is_file() and (tmp_path / "models" / "model.pt").is_file()
    mlflow_tracking.assert_one_finished_run("train_loss", "val_kaggle_dice", "val_empty_kaggle_dice")
    # TensorBoard beside it (training and validation writers), from one process: rank 0 ("...<host>.<pid>.<n>")
    events = list((tmp_path / "models").glob("events.out.tfevents.*"))
    assert len(events) == 2 and len({e.name.split(".")[-2] for e in events}) == 1, events


def test_inference_writes_nifti_masks_matching_rle_csv(trained):
    root, settings = trained
    out = root / "models" / "inference_nii"
    wf = _workflow(
        ["train.json", "inference.json"],
        "infer",
        checkpoint=str(root / "models" / "last.pt"),
        mask_format=".nii.gz",
        infer_dir=str(out),
        **settings,
    )
    wf.run()
    with open(out / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert rows
    for image_id, rle in rows:
        mask = np.asarray(nib.load(out / f"{image_id}_mask.nii.gz").dataobj).squeeze()  # (W, H): MONAI's frame
        assert np.array_equal(mask > 0, rle_decode(rle, mask.shape[1], mask.shape[0]).T.astype(bool)), image_id
