"""Issue 18 acceptance: in the paper's setting the cross-attention localizer ("Proposed": the paper's alpha, the
pneumonia-scoped attributes, the paper's training rule) learns to pick the pneumonia among the detector's ROIs.

The detector is the shared ``rsna_detector`` (cxr_retinanet on RSNA boxes, fixed); the head trains with the
cxr_xattn bundle's defaults on an easy MIMIC-CXR phantom and is evaluated, image only, on every image of an easy
ChestX-ray8 phantom (never trained on). Its IoU@0.25 must beat, on the same images, a random pick among the same
detector's ROIs (what an alpha that learned nothing selects) by a margin. The image-blind best fixed box is printed
beside it: on this phantom it is the stronger baseline, and Proposed does not beat it (issue 18's finding).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from torchvision.ops import box_iou

from monai_xattn.metrics.localization import localization_accuracy

XATTN = Path(__file__).resolve().parents[1] / "bundles" / "cxr_xattn"


def _random_roi_accuracy(parser: ConfigParser, threshold: float = 0.25) -> tuple[float, int]:
    """Expected IoU@t of picking one of the detector's valid ROIs uniformly at random, over the evaluated images."""
    localizer = parser.get_parsed_content("localizer")
    localizer.eval()
    hits = []
    with torch.no_grad():
        for item in parser.get_parsed_content("validate#dataset"):
            boxes = torch.as_tensor(item["boxes"], dtype=torch.float32).reshape(-1, 4)
            if len(boxes) == 0:
                continue
            rois = localizer.detector.forward_rois(item["image"][None].float())["rois"]
            valid = rois["boxes"][0][rois["mask"][0].bool()]
            hits.append(float((box_iou(valid, boxes).max(dim=1).values >= threshold).float().mean()))
    return float(np.mean(hits)), len(hits)


@pytest.mark.slow
def test_proposed_beats_a_random_roi_of_the_same_detector(rsna_detector, bundle_runner, fixed_box_baseline, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    settings = {
        "output_dir": tmp_path / "xattn",
        "dataset_dir": tmp_path / "mimic-cxr",
        "detector_checkpoint": rsna_detector.checkpoint,
        "phantom_studies": 240,
        "phantom_difficulty": "easy",
        "progress": False,
    }
    evaluation = {"eval_dataset": "chestxray8", "eval_dataset_dir": tmp_path / "chestxray8", "eval_split": "all"}
    try:
        bundle_runner(XATTN, ["train.json"], tmp_path, **settings)
        bundle_runner(XATTN, ["train.json", "evaluate.json"], tmp_path, **settings, **evaluation)
        metrics = dict(
            line.split(",") for line in (tmp_path / "xattn" / "eval_chestxray8" / "metrics.csv").read_text().split()
        )
        proposed = float(metrics["val_acc_iou25"])

        parser = ConfigParser()
        parser.read_config([str(XATTN / "configs" / "train.json"), str(XATTN / "configs" / "evaluate.json")])
        parser.update(
            {"bundle_root": str(XATTN), **{k: str(v) if isinstance(v, Path) else v for k, v in settings.items()}}
        )
        parser.update({k: str(v) if isinstance(v, Path) else v for k, v in evaluation.items()})
        parser["network_def#detector_weights"] = str(rsna_detector.checkpoint)  # evaluate.json loads model.pt instead
        random_roi, n_images = _random_roi_accuracy(parser)
    finally:
        torch.set_num_threads(threads)
    evaluated = json.loads((tmp_path / "xattn" / "datalist_eval_chestxray8.json").read_text())
    test = [e for split in evaluated.values() for e in split if e["boxes"]]
    prior = fixed_box_baseline(json.loads((rsna_detector.out / "datalist.json").read_text())["training"])
    blind = localization_accuracy(
        [prior[None]] * len(test), [np.ones(1)] * len(test), [np.asarray(e["boxes"]) for e in test]
    )
    print(
        f"IoU@0.25 on {n_images} ChestX-ray8 images: Proposed {proposed:.3f}, random ROI {random_roi:.3f}, "
        f"best fixed box {blind[0.25]:.3f}"
    )
    assert n_images == len(test) >= 40
    # measured (88 images, one image = 0.011): Proposed 0.295, random ROI 0.172, best fixed box 0.489, the
    # detector's own top box 0.636 (tests/bundles/test_cxr_retinanet_learns.py): the paper's alpha learns to pick
    # better than chance among the ROIs, and stays far below the detector it re-ranks (docs/bundles/cxr_xattn.md)
    assert proposed >= random_roi + 0.06
