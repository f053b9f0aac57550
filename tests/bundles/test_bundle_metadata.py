"""Every bundle as the MONAI model zoo expects one (issue 19 item 2).

The metadata keys that the MONAI bundle specification makes mandatory are checked here, key by key:
``monai.bundle verify_metadata`` fetches its JSON schema from the internet, which a machine without a network cannot
reach. Then the files a zoo bundle ships, configs that build the network they declare, and that network against
``network_data_format``: ``verify_net_in_out`` where the network has plain tensor I/O (the U-Net), and the declared
output fields for the networks that return detection dicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import monai
import pytest
import torch
from monai.bundle import ConfigParser, verify_net_in_out

BUNDLES_DIR = Path(__file__).resolve().parents[2] / "bundles"
BUNDLES = sorted(p.name for p in BUNDLES_DIR.iterdir() if (p / "configs" / "metadata.json").is_file())
#: the specification's mandatory metadata keys (MONAI docs, "MONAI Bundle Specification", metadata.json File), with
#: ``required_packages_version`` for its ``optional_packages_version``: MONAI reads the old name as the new one
#: (with a deprecation warning), so a bundle holding both would have one overwrite the other
MANDATORY = (
    "version",
    "monai_version",
    "pytorch_version",
    "numpy_version",
    "required_packages_version",
    "task",
    "description",
    "authors",
    "copyright",
    "network_data_format",
)
#: the keys every tensor format specifier must hold (same source)
TENSOR_KEYS = (
    "type",
    "format",
    "modality",
    "num_channels",
    "spatial_shape",
    "dtype",
    "value_range",
    "is_patch_data",
    "channel_def",
)


def _metadata(bundle: str) -> dict:
    return json.loads((BUNDLES_DIR / bundle / "configs" / "metadata.json").read_text())


def _detection_bundles() -> list[str]:
    """Bundles whose ``pred`` is a detection dict per image, described field by field in ``channel_def``."""
    return [b for b in BUNDLES if "boxes" in _metadata(b)["network_data_format"]["outputs"]["pred"]["channel_def"]]


def _network(bundle: str, **overrides) -> torch.nn.Module:
    configs = BUNDLES_DIR / bundle / "configs"
    parser = ConfigParser()
    parser.read_meta(str(configs / "metadata.json"))
    parser.read_config(str(configs / ("train.json" if (configs / "train.json").is_file() else "evaluate.json")))
    parser.update({"bundle_root": str(BUNDLES_DIR / bundle), "device": "$torch.device('cpu')", **overrides})
    return parser.get_parsed_content("network_def")


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_holds_the_specification_keys_and_the_bundle_its_files(bundle):
    meta = _metadata(bundle)
    assert [k for k in MANDATORY if k not in meta] == [], bundle
    assert "optional_packages_version" not in meta, f"{bundle}: the deprecated name of required_packages_version"
    assert meta["version"] in meta["changelog"], f"{bundle}: the changelog does not say what {meta['version']} changed"
    assert meta["monai_version"] == monai.__version__.split("+")[0], f"{bundle}: written for another MONAI"
    for io in ("inputs", "outputs"):
        specs = meta["network_data_format"][io]
        assert specs, f"{bundle}: no {io}"
        for name, spec in specs.items():
            assert [k for k in TENSOR_KEYS if k not in spec] == [], f"{bundle} {io} {name}"
    for file in ("LICENSE", "docs/README.md", "configs/logging.conf"):
        assert (BUNDLES_DIR / bundle / file).is_file(), f"{bundle}: no {file}"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_configs_are_json_and_build_the_declared_network(bundle):
    for path in sorted((BUNDLES_DIR / bundle / "configs").rglob("*.json")):
        json.loads(path.read_text())  # a syntax error names the file in the traceback
    # cxr_xattn's network loads the detector a cxr_retinanet run trained; without one it starts from scratch
    network = _network(bundle, **({"detector_checkpoint": None} if bundle == "cxr_xattn" else {}))
    assert isinstance(network, torch.nn.Module)


def test_the_unet_matches_its_network_data_format(tmp_path):
    root = BUNDLES_DIR / "siim_unet" / "configs"
    files = {"meta_file": str(root / "metadata.json"), "config_file": str(root / "train.json")}
    verify_net_in_out(net_id="network_def", device="cpu", any=1, bundle_root=str(root.parent), **files)
    # the check can fail: a metadata that declares two output channels does not match the network
    meta = _metadata("siim_unet")
    meta["network_data_format"]["outputs"]["pred"]["num_channels"] = 2
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="channel"):
        verify_net_in_out(
            net_id="network_def",
            device="cpu",
            any=1,
            bundle_root=str(root.parent),
            meta_file=str(tmp_path / "metadata.json"),
            config_file=files["config_file"],
        )


@pytest.mark.parametrize("bundle", _detection_bundles())
def test_detection_networks_return_the_fields_their_metadata_declares(bundle):
    meta = _metadata(bundle)
    image = meta["network_data_format"]["inputs"]["image"]
    network = _network(bundle, **({"detector_checkpoint": None} if bundle == "cxr_xattn" else {})).eval()
    size = [int(s) if isinstance(s, int) else 128 for s in image["spatial_shape"]]
    torch.manual_seed(0)
    with torch.no_grad() if bundle != "cxr_cam_baseline" else torch.enable_grad():  # GradCAM needs gradients
        predictions = network([torch.rand(image["num_channels"], *size)])
    assert isinstance(predictions, list) and len(predictions) == 1
    declared = set(meta["network_data_format"]["outputs"]["pred"]["channel_def"])
    assert declared <= set(predictions[0]), (bundle, declared - set(predictions[0]))
