"""bundles/siim_unet: learns on the easy phantom, evaluates, writes masks + an RLE CSV; multi-GPU overlay on gloo."""

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
from monai.bundle import ConfigWorkflow
from PIL import Image

from monai_xattn.data.siim import rle_decode

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "siim_unet"
CONFIGS = BUNDLE / "configs"
# small enough for a shared 2-core CPU: 64 px images, ResNet-18
FAST = {"phantom_images": 96, "phantom_size": 64, "spatial_size": 64, "batch_size": 8, "learning_rate": 0.001}


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
    ev = _workflow(["train.json", "evaluate.json"], "eval", checkpoint=str(root / "models" / "last.pt"),
                   eval_split="validation", **settings)  # fmt: skip
    ev.run()
    metrics = ev.parser.get_parsed_content("validate#evaluator").state.metrics
    datalist = json.loads((root / "models" / "datalist.json").read_text())
    n_pos = sum(bool(e["rle"]) for e in datalist["validation"])
    assert n_pos >= 3, "the phantom split should hold some positives"
    assert metrics["val_positive_dice"] > 0.3, metrics
    assert (root / "models" / "eval" / "metrics.csv").is_file()


def test_inference_writes_png_masks_and_matching_rle_csv(trained):
    root, settings = trained
    wf = _workflow(["train.json", "inference.json"], "infer", checkpoint=str(root / "models" / "last.pt"),
                   **settings)  # fmt: skip
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


def test_multi_gpu_overlay_trains_on_gloo(tmp_path):
    overrides = {
        "bundle_root": str(tmp_path),
        **FAST,
        "phantom_images": 24,
        "spatial_size": 32,
        "epochs": 1,
        "decoder_channels": [64, 32, 16, 16, 8],
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
           "-m", "monai.bundle", "run", "--config_file",
           json.dumps([str(CONFIGS / "train.json"), str(CONFIGS / "multi_gpu_train.json")]),
           "--meta_file", str(CONFIGS / "metadata.json"), "--logging_file", str(CONFIGS / "logging.conf")]  # fmt: skip
    for key, value in overrides.items():
        cmd += [f"--{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "models" / "last.pt").is_file() and (tmp_path / "models" / "model.pt").is_file()


def test_inference_writes_nifti_masks_matching_rle_csv(trained):
    root, settings = trained
    out = root / "models" / "inference_nii"
    wf = _workflow(["train.json", "inference.json"], "infer", checkpoint=str(root / "models" / "last.pt"),
                   mask_format=".nii.gz", infer_dir=str(out), **settings)  # fmt: skip
    wf.run()
    with open(out / "submission.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert rows
    for image_id, rle in rows:
        mask = np.asarray(nib.load(out / f"{image_id}_mask.nii.gz").dataobj).squeeze()  # (W, H): MONAI's frame
        assert np.array_equal(mask > 0, rle_decode(rle, mask.shape[1], mask.shape[0]).T.astype(bool)), image_id
