"""monai-xattn detection-transfer: the cxr_retinanet bundle's fraction / data_seed keys, the statistics, and the
table end to end in the tiny profile (real bundle runs, a GLoRIA-format checkpoint made in place)."""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

from monai_xattn import detection_transfer
from monai_xattn.cli import main
from monai_xattn.detection_transfer import (
    check_backbone,
    format_table,
    mean_interval,
    run_detection_transfer,
    summarize,
    t_quantile,
)
from monai_xattn.report.paper import MGCA_RSNA_DETECTION

CONFIGS = Path(detection_transfer.__file__).resolve().parents[1] / "bundles" / "cxr_retinanet" / "configs"


@pytest.fixture(scope="module")
def gloria_checkpoint(tmp_path_factory) -> Path:
    """A GLoRIA checkpoint as bundles/gloria_pretrain saves ``models/model.pt`` (``{"image_encoder": ...,
    "text_encoder": ...}``; the image encoder a ResNet-18 on one channel, as its defaults), untrained: the text
    encoder is left empty, the detector reads only the image trunk."""
    from monai_xattn.networks.gloria import GloriaImageEncoder

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("gloria") / "model.pt"
    torch.save(
        {"image_encoder": GloriaImageEncoder(32, depth=18, in_channels=1).state_dict(), "text_encoder": {}}, path
    )
    return path


def _datalist(path: Path, n_train: int = 200, n_positive: int = 40) -> Path:
    def entry(i: int, positive: bool) -> dict:
        boxes = [[10.0, 10.0, 40.0, 50.0]] if positive else []
        return {
            "image": f"img{i}.dcm",
            "image_id": f"img{i}",
            "boxes": boxes,
            "box_labels": ["Pneumonia"] * len(boxes),
            "labels": {"Pneumonia": int(positive)},
        }

    training = [entry(i, i % (n_train // n_positive) == 0) for i in range(n_train)]
    path.write_text(json.dumps({"training": training, "validation": [entry(-1, True)], "test": [entry(-2, True)]}))
    return path


def _parser(names: tuple[str, ...], **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / n) for n in names])
    parser.update({"bundle_root": "unused", **overrides})
    parser.parse()
    return parser


@pytest.mark.parametrize("fraction, images, positives", [(1.0, 200, 40), (0.1, 20, 4), (0.01, 2, 0)])
def test_fraction_cuts_the_training_set_keeping_the_positive_share(tmp_path, fraction, images, positives):
    datalist = _datalist(tmp_path / "datalist.json")
    parser = _parser(("train.json",), datalist_file=str(datalist), dataset_dir=str(tmp_path), fraction=fraction)
    data = parser.get_parsed_content("train#dataset#data")
    assert len(data) == images and sum(bool(e["boxes"]) for e in data) == positives
    # the validation split is never cut; the same seed draws the same images, another seed others
    assert len(parser.get_parsed_content("validate#dataset#data")) == 1
    again = _parser(("train.json",), datalist_file=str(datalist), dataset_dir=str(tmp_path), fraction=fraction)
    assert again.get_parsed_content("train#dataset#data") == data
    if fraction < 1.0:
        other = _parser(
            ("train.json",), datalist_file=str(datalist), dataset_dir=str(tmp_path), fraction=fraction, seed=1
        )
        assert other.get_parsed_content("train#dataset#data") != data
    # balance=False keeps RSNA's ratio, and 1 % of 40 positives rounds to none: balanced_fraction keeps at least one
    # image, not at least one positive, so the table's phantom is sized to hold one (DATA["cpu"])


def test_data_seed_follows_seed_unless_given():
    default = _parser(("train.json", "evaluate.json"), seed=3)
    assert default.get_parsed_content("adapter_kwargs") == {"split_seed": 3}
    assert default.config["prepare_data"]["phantom_seed"] == "@data_seed"
    assert default.get_parsed_content("data_seed") == 3
    fixed = _parser(("train.json", "evaluate.json"), seed=3, data_seed=0)
    assert fixed.get_parsed_content("adapter_kwargs") == {"split_seed": 0}
    assert fixed.get_parsed_content("prepare_data#adapter_kwargs") == {"split_seed": 0}  # the RSNA test split
    for name in ("mimic-cxr", "chestxray8"):  # evaluation-only datasets split by the data seed too
        assert fixed.get_parsed_content(f"eval_adapters#{name}").keywords["split_seed"] == 0


def test_t_interval_and_paired_difference(monkeypatch):
    with_scipy = [t_quantile(df) for df in range(1, 31)]
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # without scipy: the table, then the expansion
    assert [t_quantile(df) for df in range(1, 31)] == pytest.approx(with_scipy, abs=1e-3)
    with pytest.raises(ValueError, match="scipy"):
        t_quantile(3, level=0.9)
    monkeypatch.undo()
    stats = mean_interval([0.1, 0.2, 0.6])
    half = 4.302653 * statistics.stdev([0.1, 0.2, 0.6]) / math.sqrt(3)
    assert stats["mean"] == pytest.approx(0.3) and stats["ci"] == pytest.approx([0.3 - half, 0.3 + half])
    assert mean_interval([0.5])["ci"] is None
    with pytest.raises(ValueError, match="df"):
        t_quantile(0)

    def cell(init, seed, value):
        return {"init": init, "fraction": 0.1, "seed": seed, "metrics": {"val_mAP": value, "val_acc_iou50": value}}

    cells = [cell("random", 0, 0.1), cell("random", 1, 0.3), cell("gloria", 0, 0.2), cell("gloria", 1, 0.5)]
    summary = summarize(cells, [0.1])
    diff = summary["differences"]["val_mAP"]["0.1"]
    assert diff["values"] == pytest.approx([0.1, 0.2]) and diff["seeds"] == [0, 1]
    summary["settings"] = {"profile": "cpu", "data_seed": 0, "fractions": [0.1], "seeds": [0, 1]}
    summary["published"] = {"label": "published", "fractions": [0.01, 0.1, 1.0], "map": [11.6, 16.1, 24.8]}
    text = format_table(summary)
    assert "mean ± sample sd over 2 seeds [95 % t-interval of the mean]" in text
    assert "| random | 0.200 ± 0.141 [-1.071, 1.471] |" in text
    assert "| GLoRIA - random (paired by seed) | +0.150 ± 0.071 [-0.485, +0.785] |" in text
    assert "| published | 0.161 |" in text and text.count("| published |") == 1  # mAP only


def test_arguments_are_checked_before_any_run(tmp_path, gloria_checkpoint):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        run_detection_transfer(tmp_path, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="--data"):
        run_detection_transfer(tmp_path, gloria_checkpoint, profile="paper")
    with pytest.raises(ValueError, match="seed"):
        run_detection_transfer(tmp_path, gloria_checkpoint, seeds=[])
    # a checkpoint of another depth: told before anything trains, naming the depth
    with pytest.raises(ValueError, match=r"ResNet-50 backbone: backbone weights .* another shape"):
        run_detection_transfer(tmp_path, gloria_checkpoint, profile="tiny", overrides={"depth": 50})
    with pytest.raises(ValueError, match=r"leaves \d+ tensors .* ResNet-34"):  # same shapes, blocks missing
        check_backbone(gloria_checkpoint, 34, [2, 3])
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_tiny_table_end_to_end_and_resumed(tmp_path, gloria_checkpoint, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the bundle runs, as tests/bundles/test_cxr_retinanet.py runs them
    out = tmp_path / "table"
    result = run_detection_transfer(out, gloria_checkpoint, fractions=[0.5, 1.0], profile="tiny", seeds=[0])
    runs = {(r["init"], r["fraction"]): r for r in result["runs"]}
    assert set(runs) == {(i, f) for i in ("random", "gloria") for f in (0.5, 1.0)}
    for run in runs.values():
        for metric in ("val_mAP", "val_acc_iou50"):
            assert 0.0 <= run["metrics"][metric] <= 1.0, run
    # one phantom and one split for every run; the fraction really cuts the training set
    assert len(list((out / "data").iterdir())) == 1
    assert runs["random", 0.5]["train_images"] < runs["random", 1.0]["train_images"]
    assert runs["random", 0.5]["train_images"] == runs["gloria", 0.5]["train_images"]
    # the gloria runs started from the checkpoint's trunk, the random ones did not
    assert runs["gloria", 0.5]["backbone"]["cosine_to_gloria"] > 0.9
    assert abs(runs["random", 0.5]["backbone"]["cosine_to_gloria"]) < 0.2
    assert result["settings"]["gloria_load"]["missing"] == [] and result["settings"]["depth"] == 18

    for metric in ("val_mAP", "val_acc_iou50"):
        for init in ("random", "gloria"):
            for fraction in ("0.5", "1"):
                stats = result["cells"][metric][init][fraction]
                assert stats["n"] == 1 and math.isfinite(stats["mean"]) and 0.0 <= stats["mean"] <= 1.0
        assert set(result["differences"][metric]) == {"0.5", "1"}
    text = (out / "detection_transfer.md").read_text()
    assert text == result["tables"] == format_table(json.loads((out / "detection_transfer.json").read_text()))
    assert f"| {result['published']['label']} | - | {MGCA_RSNA_DETECTION['GLoRIA-MIMIC'][2] / 100:.3f} |" in text
    assert "not comparable in value" in text and "| gloria | " in text and "GLoRIA - random (paired by seed)" in text

    # a rerun through the command line resumes from the run.json files: nothing is trained or evaluated
    def no_run(*args, **kwargs):
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(detection_transfer.subprocess, "run", no_run)
    before = {p: p.stat().st_mtime for p in out.glob("runs/*/run.json")}
    argv = ["detection-transfer", "--profile", "tiny", "--gloria-checkpoint", str(gloria_checkpoint)]
    assert main([*argv, "--fractions", "0.5", "1.0", "--seeds", "0", "--out", str(out)]) == 0
    assert {p: p.stat().st_mtime for p in out.glob("runs/*/run.json")} == before and len(before) == 4
    assert json.loads((out / "detection_transfer.json").read_text())["runs"] == result["runs"]
    assert "| random |" in capsys.readouterr().out
