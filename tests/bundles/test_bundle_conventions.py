"""What every bundle does the same way (issue 16 item 4): one data-preparation step, the same data keys, handlers
given to the engines as lists and picked by kind or key in the multi-GPU overlays, never by list position."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from monai_xattn.bundles_cli import PROFILES
from monai_xattn.demo import BUNDLES as BUNDLES_RUN_BY_DEMO

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
CONFIGS = sorted(p for p in BUNDLES.glob("*/configs/*.json") if p.name != "metadata.json")
TRAINING = sorted(p.parent.parent.name for p in BUNDLES.glob("*/configs/train.json"))


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


#: what a trainer gets as ``train_handlers``: the list itself, or, for an engine that does not decollate, the list
#: made readable to MONAI's ``--tracking mlflow`` (``monai_xattn.engines.track_dict_output``)
TRAIN_HANDLERS = {True: "@train#handlers", False: "$monai_xattn.engines.track_dict_output(@train#handlers)"}


def _handlers(config: dict):
    """Every inline handler dict of a config's handler lists (``...handlers`` and ``...checkpointing`` keys)."""
    for key, value in config.items():
        if isinstance(value, dict):
            yield from _handlers(value)
        elif isinstance(value, list) and (key.endswith("handlers") or key.endswith("checkpointing")):
            yield from (h for h in value if isinstance(h, dict))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_data_is_prepared_by_the_one_step(path):
    text = path.read_text()
    for old in ("write_datalist", "phantom.generate", "make_phantom(", "datalist_path", "phantom_images", "rank0_only"):
        assert old not in text, old
    config = _json(path)
    if any("@prepare_data" == item for item in config.get("initialize", [])):
        return
    # configs whose initialize leaves the data to train.json (inference) or that have none of their own
    assert "initialize" not in config or not any("datalist" in str(item) for item in config["initialize"])


@pytest.mark.parametrize("bundle", TRAINING)
def test_training_bundles_share_keys_and_attach_handlers_one_way(bundle):
    config = _json(BUNDLES / bundle / "configs" / "train.json")
    for key in (
        "dataset_dir",
        "datalist_file",
        "adapter",
        "make_phantom",
        "phantom_studies",
        "phantom_size",
        "phantom_difficulty",
        "prepare_data",
    ):
        assert key in config, key
    assert config["prepare_data"]["_target_"] == "monai_xattn.data.prepare_datalist"
    assert "@prepare_data" in config["initialize"]
    trainer = config["train"]["trainer"]
    assert trainer["train_handlers"] == TRAIN_HANDLERS[trainer.get("decollate", True)]
    if "validate" in config:  # cxr_cam_baseline validates only in evaluate.json
        assert config["validate"]["evaluator"]["val_handlers"] == "@validate#handlers"
    # only the handlers that hold the trainer itself (resume, checkpoints) are attached in run
    attach = [item for item in config["run"] if ".attach(" in item]
    assert len(attach) == 1 and "@train#checkpointing" in attach[0]


@pytest.mark.parametrize("path", sorted(BUNDLES.glob("*/configs/multi_gpu_train.json")), ids=lambda p: p.parts[-3])
def test_multi_gpu_overlays_pick_handlers_by_kind_or_key(path):
    overlay = _json(path)
    assert not [k for k in overlay if re.search(r"#\d+(#|$)", k)], "an overlay key names a list position"
    assert "rank" in overlay and "@prepare_data" in overlay["initialize"]
    decollate = _json(path.with_name("train.json"))["train"]["trainer"].get("decollate", True)
    handlers = TRAIN_HANDLERS[decollate].removeprefix("$")
    assert overlay["train#trainer#train_handlers"] == f"$monai_xattn.engines.handlers_for_rank({handlers})"
    assert overlay["validate#evaluator#val_handlers"] == "$monai_xattn.engines.handlers_for_rank(@validate#handlers)"
    # a TensorBoard handler writes its event file when built: other ranks must not build it at all
    train = _json(path.with_name("train.json"))
    for handler in _handlers(train):
        if handler["_target_"] == "TensorBoardStatsHandler":
            assert "@rank > 0" in handler.get("_disabled_", ""), handler


@pytest.mark.parametrize("bundle", sorted(p.parts[-4] for p in BUNDLES.glob("*/configs/profiles/cpu.json")))
def test_profiles_ship_with_each_bundle_and_name_only_its_keys(bundle):
    """``configs/profiles/{tiny,cpu,paper}.json`` (issue 16 item 1): pure overrides of keys the bundle defines, so a
    misspelt key fails here instead of being added silently by ``monai.bundle run``."""
    configs = BUNDLES / bundle / "configs"
    keys = set().union(*(_json(p) for p in configs.glob("*.json") if p.name != "metadata.json"))
    for name in PROFILES:
        profile = _json(configs / "profiles" / f"{name}.json")
        assert set(profile) <= keys, (name, set(profile) - keys)
    # the paper profile is the published setting, never the CPU defaults
    assert _json(configs / "profiles" / "paper.json"), "paper profile is empty"


def test_every_bundle_the_demo_runs_has_the_profiles():
    assert {p.parts[-4] for p in BUNDLES.glob("*/configs/profiles/cpu.json")} == set(BUNDLES_RUN_BY_DEMO)
