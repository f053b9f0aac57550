"""Phantom generation: determinism, refusal to overwrite, the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from monai_xattn.cli import main
from monai_xattn.data.phantom import LAYOUT_NAMES, generate


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "phantom.json"
    }


def test_same_seed_same_bytes_whatever_the_workers(tmp_path):
    a = generate(tmp_path / "a", layout="all", n=3, size=48, seed=5, workers=1)
    generate(tmp_path / "b", layout="all", n=3, size=48, seed=5, workers=2)
    generate(tmp_path / "c", layout="all", n=3, size=48, seed=6, workers=1)
    da, db, dc = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted([*LAYOUT_NAMES, "phantom.json"])
    assert len(da) > 8 * 3 and da == db
    images = {v for k, v in da.items() if k.endswith((".png", ".jpg", ".dcm")) and "ground_truth" not in k}
    assert len(images) >= 8 * 3 and images.isdisjoint(dc.values())  # another seed, other images
    assert a["layouts"]["rsna"]["studies"] == 3 and a["workers"] == 1


def test_refuses_non_empty_folders(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(user, layout="rsna", n=1, size=48)
    with pytest.raises(FileExistsError, match="not written by the phantom"):
        generate(user, layout="rsna", n=1, size=48, overwrite=True)
    assert (user / "mine.txt").read_text() == "keep me"
    out = tmp_path / "phantom"
    generate(out, layout="rsna", n=2, size=48)
    with pytest.raises(FileExistsError):
        generate(out, layout="rsna", n=1, size=48)
    generate(out, layout="rsna", n=1, size=48, overwrite=True)
    assert len(list((out / "stage_2_train_images").iterdir())) == 1


@pytest.mark.parametrize("kwargs", [{"layout": "nih"}, {"difficulty": "extreme"}, {"n": 0}, {"size": 8}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(ValueError):
        generate(tmp_path / "x", **{"layout": "rsna", "n": 1, "size": 48, **kwargs})


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "phantom",
        "--layout",
        "siim",
        "--out",
        str(out),
        "--n",
        "2",
        "--size",
        "48",
        "--seed",
        "3",
        "--workers",
        "1",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layouts"]["siim"]["images"] == 2 and (out / "train-rle.csv").is_file()
    assert main(argv) == 2  # not empty
    assert "--overwrite" in capsys.readouterr().out
    assert main([*argv, "--overwrite", "--difficulty", "hard"]) == 0
