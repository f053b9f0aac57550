"""Phrase grounding on the phantom MS-CXR layout (issue 22): the bundles' configs parse, and GLoRIA's maps of
pneumonia phrases separate the phrase's box from the background more than an untrained GLoRIA's (whose maps are as
structured, but learned nothing) and the uniform floor.

The image-only detector's top box, the phrase-agnostic floor of the demo's table, is not asserted against: trained on
pneumonia boxes, it finds the pneumonia on the phantom better than GLoRIA's 5 x 5 maps (docs/grounding.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def _parser(bundle: str, configs: list[str], **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(BUNDLES / bundle / "configs" / c) for c in configs])
    for key, value in overrides.items():
        parser[key] = value
    return parser


@pytest.mark.parametrize(
    "bundle, configs",
    [
        ("gloria_eval", ["evaluate.json", "evaluate_grounding.json"]),
        ("cxr_xattn", ["train.json", "evaluate_grounding.json"]),
    ],
)
def test_grounding_configs_name_the_ms_cxr_layout_and_write_their_table(bundle, configs):
    parser = _parser(bundle, configs)
    assert parser["prepare_data"]["layout"] == "ms-cxr"
    assert parser["prepare_data"]["adapter"] == "$monai_xattn.data.build_ms_cxr_datalist"
    assert any("write_grounding" in str(step) for step in parser["run"])
    assert set(parser["grounding"]["methods"]) >= (
        {"GLoRIA similarity", "uniform"} if bundle == "gloria_eval" else {"cross-attention", "detector top box"}
    )


def test_gloria_grounds_pneumonia_phrases_above_the_floors(gloria_pretraining, tmp_path):
    from monai_xattn.engines import grounding
    from monai_xattn.networks import GLoRIA

    torch.set_num_threads(min(2, torch.get_num_threads()))
    parser = _parser(
        "gloria_eval",
        ["evaluate.json", "evaluate_grounding.json"],
        bundle_root=str(tmp_path),  # the default grounding phantom: 200 MS-CXR-layout studies, seed 2
        checkpoint=str(gloria_pretraining.checkpoint),
        grounding_categories=["Pneumonia"],
    )
    parser.get_parsed_content("initialize")  # phantom, datalist, the checkpoint into the network
    torch.manual_seed(0)
    untrained = GLoRIA(**{k: parser[k] for k in ("depth", "in_channels", "max_length")})
    methods = {
        "GLoRIA similarity": parser.get_parsed_content("grounding#methods#GLoRIA similarity"),
        "uniform": parser.get_parsed_content("grounding#methods#uniform"),
        "untrained GLoRIA similarity": grounding.GloriaPhraseMap(untrained),
    }
    items = parser.get_parsed_content("grounding#items")
    rows = grounding.evaluate_grounding(methods, items, parser.get_parsed_content("grounding#transform"))
    summary = grounding.summarize_grounding(rows, {"Pneumonia": ["Pneumonia"]})["Pneumonia"]
    print(json.dumps(summary, indent=1))
    gloria, untrained = summary["GLoRIA similarity"], summary["untrained GLoRIA similarity"]
    assert gloria["n"] >= 60 and summary["uniform"]["cnr"][0] == 0.0
    # MS-CXR's (unsigned) CNR: the pretrained map separates the phrase's box from the rest of the image more than
    # the same network untrained does (whose random maps have a CNR above 0 too: 0.45). Two pretrainings of the
    # same config measured 0.64 and 0.91. Their *signed* CNR was +0.31 and -0.83 (thread count the only
    # difference): which side of the box is brighter is not what GLoRIA's loss trains (docs/grounding.md), so the
    # sign, the peak and the phrase accuracy are reported, not asserted.
    assert gloria["cnr"][0] > untrained["cnr"][0] + 0.1
    assert gloria["cnr"][1] > untrained["cnr"][0]
