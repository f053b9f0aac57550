"""``monai-xattn demo``: runs the chain on a tiny profile, resumes, and never takes over a foreign folder."""

import json

import pytest

from monai_xattn.cli import main


def test_demo_tiny_profile_runs_and_resumes(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--profile", "tiny"]) == 0
    marker = json.loads((out / "steps" / "phantom.done.json").read_text())
    assert marker["result"]["layouts"]["chestxray8"]
    assert (out / "data" / "chestxray8" / "BBox_List_2017.csv").is_file()
    # the bundles ran through monai.bundle, wrote into the demo folder, and their metrics reached the summary
    assert (out / "cxr_retinanet" / "model.pt").is_file()
    metrics = json.loads((out / "steps" / "cxr_retinanet_evaluate.done.json").read_text())["result"]["metrics"]
    assert set(metrics) >= {"val_acc_iou25", "val_acc_iou50", "val_acc_iou75"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    capsys.readouterr()
    (out / "steps" / "cxr_retinanet_evaluate.done.json").unlink()  # as if interrupted during the last step
    assert main(["demo", "--out", str(out), "--profile", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "phantom: done before, skipped" in printed and "cxr_retinanet_train: done before, skipped" in printed
    assert "cxr_retinanet_evaluate: finished" in printed


def test_demo_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "my_dataset.csv").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        main(["demo", "--out", str(tmp_path), "--profile", "tiny"])
    assert (tmp_path / "my_dataset.csv").read_text() == "precious"
