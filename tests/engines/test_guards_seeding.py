"""SeedEachEpoch lives in ``engines.seeding`` and is still reachable where the bundle configs name it."""

import json
from pathlib import Path

import torch
from ignite.engine import Engine
from monai.bundle import ConfigParser

from monai_xattn.engines import guards, seeding
from monai_xattn.engines.seeding import SeedEachEpoch

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def test_guards_re_exports_the_one_class():
    assert guards.SeedEachEpoch is seeding.SeedEachEpoch
    assert "SeedEachEpoch" in guards.__all__ and "SeedEachEpoch" in seeding.__all__


def test_bundle_config_target_still_resolves():
    targets = {
        handler["_target_"]
        for config in BUNDLES.glob("*/configs/train.json")
        for handler in json.loads(config.read_text()).get("train", {}).get("handlers", [])
        if isinstance(handler, dict) and "SeedEachEpoch" in str(handler.get("_target_", ""))
    }
    assert targets == {"monai_xattn.engines.guards.SeedEachEpoch"}  # every bundle names it by its first home
    parser = ConfigParser({"h": {"_target_": "monai_xattn.engines.guards.SeedEachEpoch", "seed": 3}})
    handler = parser.get_parsed_content("h")
    assert isinstance(handler, SeedEachEpoch) and handler.seed == 3 and handler.deterministic


def test_each_epoch_starts_from_seed_plus_epoch():
    draws = {}
    engine = Engine(lambda e, b: draws.setdefault(e.state.epoch, torch.rand(1).item()))
    handler = SeedEachEpoch(5, deterministic=False)
    handler.attach(engine)
    handler.attach(engine)  # attaching twice registers once
    engine.run([0], max_epochs=2)
    torch.manual_seed(5 + 2)
    assert draws[2] == torch.rand(1).item()
    assert draws[1] != draws[2]
