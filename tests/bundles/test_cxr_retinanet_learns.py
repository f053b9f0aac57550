"""The cxr_retinanet bundle, as shipped (CPU profile: ResNet-18, 128 px), learns to localize pneumonia on the
phantom: its test-split IoU@0.25 beats a centre-box baseline computed here on the same images by a margin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monai_xattn.metrics.localization import localization_accuracy

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cxr_retinanet"


def _run(configs: list[str], out: Path, data: Path) -> None:
    files = str([str(BUNDLE / "configs" / c) for c in configs])
    overrides = [
        "--bundle_root",
        str(BUNDLE),
        "--output_dir",
        str(out),
        "--dataset_dir",
        str(data),
        "--phantom_studies",
        "240",
        "--phantom_difficulty",
        "easy",
        "--progress",
        "False",
    ]
    subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", files, *overrides],
        check=True,
        cwd=out.parent,
        capture_output=True,
    )


def _centre_boxes(train: list[dict], test: list[dict]) -> list[np.ndarray]:
    """One box per test image: the mean training box size, centred in the image."""
    sizes = np.array([[b[2] - b[0], b[3] - b[1]] for e in train for b in e["boxes"]])
    w, h = sizes.mean(axis=0)
    boxes = []
    for entry in test:
        cx, cy = entry["image_size"][0] / 2, entry["image_size"][1] / 2
        boxes.append(np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]]))
    return boxes


@pytest.mark.slow
def test_default_profile_beats_centre_box_on_easy_phantom(tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    _run(["train.json"], out, data)
    _run(["train.json", "evaluate.json"], out, data)
    metrics = dict(line.split(",") for line in (out / "eval" / "metrics.csv").read_text().splitlines())
    detector = float(metrics["val_acc_iou25"])

    splits = json.loads((out / "datalist.json").read_text())
    test = [e for e in splits["test"] if e["boxes"]]
    assert len(test) >= 10, "too few test images with boxes for a meaningful comparison"
    # the phantom is written at the network's input size (128 px), so datalist boxes and predictions share a frame
    assert all(e["image_size"] == [128, 128] for e in test)
    centre = _centre_boxes(splits["training"], test)
    baseline = localization_accuracy(centre, [np.ones(1)] * len(test), [np.asarray(e["boxes"]) for e in test])[0.25]
    print(f"IoU@0.25: detector {detector:.3f}, centre box {baseline:.3f} ({len(test)} test images with boxes)")
    assert detector >= baseline + 0.3
