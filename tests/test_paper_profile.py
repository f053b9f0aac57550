"""The demo's ``paper`` profile reaches the GLoRIA bundles as the paper ran them.

Each bundle command is resolved the way ``python -m monai.bundle run`` resolves it (python-fire reads every value,
``monai.bundle.update_kwargs`` merges the overrides and drops ``None``), then the objects the run would build are
checked: the optimizer's groups, the encoders, the text model. The offline MiniLM folder stands in for the local
Bio_ClinicalBERT folder a user passes with ``--text-model``.
"""

from __future__ import annotations

import json

import pytest
import torch
from fire.parser import DefaultParseValue
from monai.bundle import ConfigParser, update_kwargs

from monai_xattn.bundles_cli import bundle_command
from monai_xattn.demo import demo_steps
from monai_xattn.networks import resolve_text_model


def _resolve(cmd: list[str]) -> ConfigParser:
    """The config ``python -m monai.bundle run <cmd>`` would run."""
    args = cmd[cmd.index("run") + 1 :]
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    configs = json.loads(pairs.pop("--config_file"))
    pairs.pop("--meta_file"), pairs.pop("--logging_file", None)
    overrides = update_kwargs({}, **{k.removeprefix("--"): DefaultParseValue(v) for k, v in pairs.items()})
    parser = ConfigParser()
    parser.read_config(configs)
    parser.update(overrides)
    return parser


@pytest.fixture(scope="module")
def paper_steps(tmp_path_factory):
    text_model = resolve_text_model(None)
    steps = {s.name: s.action for s in demo_steps("paper", "medium", 0, text_model)}
    return steps, text_model, tmp_path_factory.mktemp("paper")


def test_gloria_pretrain_resolves_to_the_papers_settings(paper_steps):
    steps, text_model, out = paper_steps
    parser = _resolve(steps["gloria_pretrain_train"].command(out))
    assert (parser["depth"], parser["resize"], parser["crop"], parser["batch_size"]) == (50, 256, 224, 48)
    optimizer = parser.get_parsed_content("optimizer")
    assert isinstance(optimizer, torch.optim.Adam)
    assert [g["lr"] for g in optimizer.param_groups] == [5e-5, 5e-5]  # one rate for both encoders
    assert all(g["betas"] == (0.5, 0.999) and g["weight_decay"] == 1e-6 for g in optimizer.param_groups)
    network = parser.get_parsed_content("network_def")
    assert network.image_encoder.input_size == (299, 299)
    assert network.text_encoder.model_name_or_path == text_model
    frozen = [n for n, p in network.text_encoder.model.named_parameters() if not p.requires_grad]
    assert all(n.startswith("pooler.") for n in frozen)  # the whole BERT trains (the pooler is never used)
    with torch.no_grad():
        local, _ = network.image_encoder(torch.zeros(1, 1, 224, 224))
    assert local.shape[2:] == (19, 19)  # the official local grid


def test_gloria_eval_resolves_to_the_papers_encoders(paper_steps):
    steps, text_model, out = paper_steps
    parser = _resolve(steps["gloria_eval_evaluate"].command(out))
    assert parser["image_input_size"] == 299 and parser["depth"] == 50 and parser["text_model"] == text_model


def test_paper_profile_needs_a_text_model_and_none_never_reaches_a_bundle():
    with pytest.raises(ValueError, match="--text-model DIR"):
        demo_steps("paper", "medium", 0)
    with pytest.raises(ValueError, match=r"\['image_learning_rate'\] of gloria_pretrain are None"):
        bundle_command("gloria_pretrain", ["train.json"], {"image_learning_rate": None})
