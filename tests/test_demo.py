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
    capsys.readouterr()
    assert main(["demo", "--out", str(out), "--profile", "tiny"]) == 0
    assert "phantom: done before, skipped" in capsys.readouterr().out


def test_demo_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "my_dataset.csv").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        main(["demo", "--out", str(tmp_path), "--profile", "tiny"])
    assert (tmp_path / "my_dataset.csv").read_text() == "precious"
