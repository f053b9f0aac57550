"""The cxr_cam_baseline bundle: metadata, configs, a real train + evaluate run (CAM and GradCAM, both phantoms);
CAM-to-box conversion."""

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

from monai_xattn.networks.classifier_cam import (
    CAMLocalizer,
    create_cam_classifier,
    maps_to_boxes,
    pneumonia_label_entries,
)

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cxr_cam_baseline"
CONFIGS = BUNDLE / "configs"
TINY = ["--phantom_studies", "16", "--phantom_size", "64", "--image_size", "64", "--progress", "False"]


def _run(root: Path, names: tuple[str, ...], *args: str) -> str:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str([f"configs/{n}.json" for n in names])]
    cmd += ["--bundle_root", str(root), *TINY, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=BUNDLE, capture_output=True, text=True, timeout=900, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def test_configs_parse():
    for names in (("train",), ("train", "evaluate")):
        parser = ConfigParser()
        parser.read_config([str(CONFIGS / f"{n}.json") for n in names])
        parser["bundle_root"] = "unused"
        parser.parse()
        assert "run" in parser.config


def test_maps_to_boxes_follow_monai_axes():
    maps = torch.zeros(2, 1, 20, 30)  # (B, 1, W, H)
    maps[0, 0, 2:6, 10:21] = 1.0  # x 2..5, y 10..20
    maps[0, 0, 12:15, 3:6] = 0.7
    boxes = maps_to_boxes(maps, threshold=0.5)
    assert boxes[0]["boxes"].tolist() == [[2, 10, 6, 21], [12, 3, 15, 6]]
    torch.testing.assert_close(boxes[0]["labels_scores"], torch.tensor([1.0, 0.7]))
    assert len(boxes[1]["boxes"]) == 0  # a flat map has no region above its range
    assert len(maps_to_boxes(maps, threshold=0.8)[0]["boxes"]) == 1
    with pytest.raises(ValueError, match="maps"):
        maps_to_boxes(torch.zeros(4, 4))


def test_cam_localizer_modes_and_gradcam_under_no_grad():
    torch.manual_seed(0)
    loc = CAMLocalizer(create_cam_classifier(), "gradcam")
    assert loc.train()(torch.rand(2, 1, 32, 32)).shape == (2, 1)
    loc.eval()
    with torch.no_grad():  # as in SupervisedEvaluator
        dets = loc(torch.rand(2, 1, 32, 32))
    assert len(dets) == 2 and all(len(d["boxes"]) >= 1 for d in dets)
    maps = loc.class_activation_maps(torch.rand(1, 1, 32, 32))
    assert maps.shape == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="method"):
        CAMLocalizer(create_cam_classifier(), "occlusion")


@pytest.mark.parametrize("stride", [16, 8, 4])
def test_classifier_output_stride_sets_the_map_resolution(stride):
    net = create_cam_classifier(output_stride=stride)
    seen = {}
    net.layer4.register_forward_hook(lambda module, args, out: seen.update(shape=tuple(out.shape)))
    assert net(torch.rand(1, 1, 64, 64)).shape == (1, 1)
    assert seen["shape"] == (1, 512, 64 // stride, 64 // stride)


def test_classifier_rejects_unknown_stride():
    with pytest.raises(ValueError, match="output_stride"):
        create_cam_classifier(output_stride=32)


def test_label_entries():
    entries = [
        {"image": "a", "labels": {"Pneumonia": 1}},
        {"image": "b", "labels": {"Pneumonia": 0}},
        {"image": "c", "labels": {"Pneumonia": -1}},
        {"image": "d"},
        {"image": "e", "labels": {"Pneumonia": None}},
    ]
    out = pneumonia_label_entries(entries)
    assert [(e["image"], float(e["label"])) for e in out] == [("a", 1.0), ("b", 0.0), ("e", 0.0)]
    with pytest.raises(ValueError, match="Pneumonia"):
        pneumonia_label_entries([{"image": "d"}])


@pytest.mark.slow
def test_train_and_evaluate(tmp_path, mlflow_tracking):
    _run(tmp_path, ("train",), "--epochs", "1", *mlflow_tracking.args())
    assert (tmp_path / "models" / "model.pt").is_file()
    mlflow_tracking.assert_one_finished_run("train_loss")  # no validation during training: the loss alone
    assert list((tmp_path / "models").glob("events.out.tfevents.*"))  # TensorBoard beside it
    # the 16-study phantom's validation split has no box: the first run keeps cam_threshold and says so; the
    # second tunes on the training split's boxes (the classifier saw their labels only) to exercise the tuning
    for dataset, method, split in (("mimic-cxr", "cam", "validation"), ("chestxray8", "gradcam", "training")):
        _run(
            tmp_path,
            ("train", "evaluate"),
            "--eval_dataset",
            dataset,
            "--cam_method",
            method,
            "--cam_tune_split",
            split,
        )
        out = tmp_path / "models" / f"eval_{dataset}_{method}"
        metrics = dict(line.split(",") for line in (out / "metrics.csv").read_text().split())
        assert {"val_acc_iou25", "val_acc_iou50", "val_acc_iou75", "val_peak_in_box"} <= set(metrics)
        # nan where the tiny test split has no box: then so is every IoU cell
        peak, acc = float(metrics["val_peak_in_box"]), float(metrics["val_acc_iou25"])
        assert math.isnan(peak) == math.isnan(acc) and (math.isnan(peak) or 0.0 <= peak <= 1.0), metrics
        tuning = json.loads((out / "threshold_tuning.json").read_text())
        assert tuning["method"] == method and tuning["tuned"] == (split == "training"), tuning
        if tuning["tuned"]:
            assert len(tuning["curve"]) == 17 and tuning["images"] > 0
            assert (tuning["mode"], tuning["threshold"]) in {(c["mode"], c["threshold"]) for c in tuning["curve"]}
        else:
            assert (tuning["mode"], tuning["threshold"]) == ("area", 0.1)  # the configured fallback
