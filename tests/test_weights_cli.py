"""``monai-xattn weights inspect|convert`` on the official GLoRIA stand-in, a converted file and bad inputs."""

from __future__ import annotations

import hashlib
import json

import torch

from monai_xattn.cli import main
from monai_xattn.networks import CXRUNet


def test_inspect_says_what_the_official_file_holds(official_gloria, capsys):
    assert main(["weights", "inspect", str(official_gloria.path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "lightning" and report["layout"].startswith("official GLoRIA")
    assert report["trunk"]["depth"] == 50 and report["trunk"]["frame"] == "HW" and report["trunk"]["in_channels"] == 3
    assert report["text_encoder"]["hidden_size"] == official_gloria.embed_dim
    assert "builtins.dict" not in report["stood_in"] and len(report["stood_in"]) == 5
    uses = " | ".join(report["can_initialise"])
    assert all(name in uses for name in ("siim_unet", "linear-probe", "RetinaNet", "gloria_eval, both encoders"))
    assert main(["weights", "inspect", str(official_gloria.path)]) == 0
    assert "ResNet-50 (blocks [3, 4, 6, 3])" in capsys.readouterr().out


def test_convert_writes_a_plain_state_dict_that_loads_the_same(official_gloria, tmp_path, capsys):
    out = tmp_path / "gloria_plain.pt"
    assert main(["weights", "convert", str(official_gloria.path), str(out)]) == 0
    plain = torch.load(out, weights_only=True)  # no stand-in needed any more
    assert plain.keys() == official_gloria.state.keys()
    assert all(torch.equal(plain[k], v) for k, v in official_gloria.state.items())
    provenance = json.loads((tmp_path / "gloria_plain.pt.json").read_text())
    assert provenance["source_sha256"] == hashlib.sha256(official_gloria.path.read_bytes()).hexdigest()
    assert provenance["format"] == "lightning" and provenance["trunk"]["frame"] == "HW"
    a = CXRUNet(depth=50, init="gloria", weights=official_gloria.path).encoder.state_dict()
    b = CXRUNet(depth=50, init="gloria", weights=out).encoder.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    assert main(["weights", "convert", str(official_gloria.path), str(out)]) == 1  # no silent overwrite
    assert "exists; pass --force" in capsys.readouterr().err


def test_bad_inputs_exit_1_naming_the_file(tmp_path, capsys):
    assert main(["weights", "inspect", str(tmp_path / "absent.ckpt")]) == 1
    assert "absent.ckpt': file not found" in capsys.readouterr().err
    (tmp_path / "notes.ckpt").write_text("not weights")
    assert main(["weights", "inspect", str(tmp_path / "notes.ckpt")]) == 1
    assert "notes.ckpt: not a readable" in capsys.readouterr().err
