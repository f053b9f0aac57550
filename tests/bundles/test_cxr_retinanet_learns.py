"""The cxr_retinanet bundle, as shipped (CPU profile: ResNet-18, 128 px), learns to localize pneumonia on the
phantom in the paper's protocol (issue 18): trained on RSNA's boxes, evaluated on every ChestX-ray8 image with a
pneumonia box (another dataset, never trained on); its IoU@0.25 beats, by a margin and on the same images, the
best image-blind box learned from the training boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monai_xattn.metrics.localization import localization_accuracy

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cxr_retinanet"


@pytest.mark.slow
def test_default_profile_beats_an_image_blind_box_on_easy_phantom(
    rsna_detector, bundle_runner, fixed_box_baseline, tmp_path
):
    out = rsna_detector.out
    evaluation = {"eval_dataset": "chestxray8", "eval_dataset_dir": tmp_path / "chestxray8", "eval_split": "all"}
    eval_dir = tmp_path / "eval"
    bundle_runner(
        BUNDLE,
        ["train.json", "evaluate.json"],
        tmp_path,
        output_dir=out,
        dataset_dir=rsna_detector.data,
        eval_dir=eval_dir,
        eval_datalist_file=tmp_path / "datalist_chestxray8.json",
        phantom_studies=240,
        phantom_difficulty="easy",
        progress=False,
        **evaluation,
    )
    metrics = dict(line.split(",") for line in (eval_dir / "metrics.csv").read_text().splitlines())
    detector = float(metrics["val_acc_iou25"])

    training = json.loads((out / "datalist.json").read_text())["training"]
    evaluated = json.loads((tmp_path / "datalist_chestxray8.json").read_text())
    test = [e for split in evaluated.values() for e in split if e["boxes"]]
    assert len(test) >= 40, "too few images with boxes for a meaningful comparison"
    # the phantoms are written at the network's input size (128 px), so datalist boxes and predictions share a frame
    assert all(e["image_size"] == [128, 128] for e in test)
    prior = fixed_box_baseline(training)
    baseline = localization_accuracy(
        [prior[None]] * len(test), [np.ones(1)] * len(test), [np.asarray(e["boxes"]) for e in test]
    )[0.25]
    print(
        f"IoU@0.25: detector {detector:.3f}, best fixed box {baseline:.3f} ({len(test)} ChestX-ray8 images with boxes)"
    )
    # measured (88 images, one image = 0.011): detector 0.636, best fixed box 0.489 -- on the phantom a box that
    # sees no image already hits half the lesions at IoU 0.25 (they cluster in the lower lung fields)
    assert baseline > 0.1, "the image-blind baseline should work: lesions cluster in the lung fields"
    assert detector >= baseline + 0.08
