"""The one checkpoint reader: formats it unwraps, Lightning files without Lightning, and what it refuses."""

from __future__ import annotations

import argparse
import os
import sys

import pytest
import torch
from torch import nn

from monai_xattn.utils import CheckpointError, read_state_dict


def _state() -> dict[str, torch.Tensor]:
    return nn.Linear(3, 2).state_dict()


@pytest.mark.parametrize(
    ("wrap", "fmt"),
    [
        (lambda s: s, "state_dict"),
        (lambda s: {"state_dict": s, "epoch": 3}, "container:state_dict"),
        (lambda s: {"model": s, "optimizer": {"state": {}, "param_groups": []}}, "container:model"),
        (lambda s: {"network": s, "trainer": {"epoch": 2}}, "container:network"),
        (lambda s: {f"module.{k}": v for k, v in s.items()}, "state_dict+ddp"),
        (lambda s: {"network": {f"module.{k}": v for k, v in s.items()}}, "container:network+ddp"),
        (lambda s: {"image_encoder": s, "text_encoder": {}, "optimizer": {}}, "monai_xattn_gloria"),
    ],
)
def test_formats_unwrap_to_the_same_tensors(tmp_path, wrap, fmt):
    state = _state()
    path = tmp_path / "w.pt"
    torch.save(wrap(state), path)
    read = read_state_dict(path)
    assert read.format == fmt and read.path == os.fspath(path) and not read.stood_in
    names = {f"image_encoder.{k}" for k in state} if fmt == "monai_xattn_gloria" else set(state)
    assert set(read.state_dict) == names
    for k, v in read.state_dict.items():
        assert torch.equal(v, state[k.removeprefix("image_encoder.")])


def test_lightning_file_reads_without_lightning_or_omegaconf(official_gloria):
    assert not any(m.split(".")[0] in {"pytorch_lightning", "omegaconf"} for m in sys.modules)
    with pytest.raises(Exception, match="Unsupported global"):  # what a user meets with plain torch.load
        torch.load(official_gloria.path, weights_only=True)
    read = read_state_dict(official_gloria.path)
    assert read.format == "lightning"
    assert read.info == {"epoch": 17, "global_step": 41_000, "hparams_name": "cfg", "lightning_version": "1.1.4"}
    assert "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint" in read.stood_in
    assert "omegaconf.dictconfig.DictConfig" in read.stood_in
    assert set(read.state_dict) == set(official_gloria.state)
    assert all(torch.equal(read.state_dict[k], v) for k, v in official_gloria.state.items())
    # nothing foreign was imported or left behind to import later
    assert not any(m.split(".")[0] in {"pytorch_lightning", "omegaconf"} for m in sys.modules)


def test_namespace_of_options_is_a_harmless_container(tmp_path):
    path = tmp_path / "opts.pt"
    torch.save({"state_dict": _state(), "hparams": argparse.Namespace(lr=0.1)}, path)
    assert read_state_dict(path).stood_in == ["argparse.Namespace"]


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"state_dict": _state(), "hook": print}, r"code\.pt: refused .* it names \['builtins\.print'\]"),
        ({"state_dict": _state(), "path": os.path.join}, r"code\.pt: refused .* it names \['posixpath\.join'\]"),
        ([torch.zeros(2)], r"code\.pt: expected a checkpoint \(a dict of tensors\), found a list"),
        ({"epoch": 3}, r"code\.pt: not a checkpoint: it holds no tensors"),
        ({"a": torch.zeros(1), "b": "text"}, r"code\.pt: not a checkpoint: entries \['b'\] are not tensors"),
    ],
)
def test_refusals_name_the_file(tmp_path, content, match):
    path = tmp_path / "code.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match=match):
        read_state_dict(path)


def test_missing_torn_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.pt'?: file not found"):
        read_state_dict(tmp_path / "absent.pt")
    torch.save(_state(), tmp_path / "whole.pt")
    raw = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "torn.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=r"torn\.pt: not a readable checkpoint"):
        read_state_dict(tmp_path / "torn.pt")
    (tmp_path / "notes.txt").write_text("these are not weights")
    with pytest.raises(CheckpointError, match=r"notes\.txt: not a readable checkpoint"):
        read_state_dict(tmp_path / "notes.txt")
