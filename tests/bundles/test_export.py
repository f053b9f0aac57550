"""Deployment exports (issue 19 item 3): the siim_unet U-Net, the cxr_cam_baseline classifier and the cxr_retinanet
RetinaNet network as TorchScript (MONAI's ckpt_export), torch.export programs (.pt2) and ONNX (when the optional
onnx / onnxscript / onnxruntime are installed) compute what the eager network computes; the bundles' inference runs
the .pt2 instead of network_def + checkpoint and writes the same masks and boxes.

Networks are the bundles' tiny profiles (64 px, ResNet-18) with random weights and batch-norm statistics, so that a
program traced in training mode (batch statistics) would differ from the eager network in eval mode.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from PIL import Image

from monai_xattn.export_cli import (
    BUNDLE_NETWORKS,
    add_arguments,
    bundle_parser,
    example_image,
    export_bundle,
    exported_outputs,
    run,
)
from monai_xattn.networks import create_roi_detector
from monai_xattn.networks.export import (
    FILE_SUFFIXES,
    ExportedNetwork,
    flatten_outputs,
    load_exported_network,
    read_exported_extras,
    use_exported_network,
)

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
PROFILE = "tiny"
#: ONNX Runtime's kernels are not PyTorch's: float32 rounding differs (measured <= 2e-5 on these networks)
ONNX_TOLERANCE = {"rtol": 1e-4, "atol": 1e-4}
FORMATS = [
    "torchscript",
    "exported_program",
    "onnx",  # the optional extra monai_xattn[export], which `make test` installs: without it these fail
]


def _randomise(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random batch-norm statistics and affine parameters (in place), so that eval and training mode differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                n = module.num_features
                module.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                module.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=gen))
                module.bias.copy_(0.1 * torch.randn(n, generator=gen))
    return network


def _write_checkpoint(
    bundle: str, overrides: dict, path: Path, edit: Callable[[torch.nn.Module], Any] | None = None
) -> torch.nn.Module:
    """A bundle checkpoint (``{"network": state dict}``, as the bundles save ``model.pt``) of a randomised network,
    changed by ``edit`` (under ``torch.no_grad``); returns the network, in eval mode. Seeded: the same weights
    whatever ran before (the masks and boxes the inference tests compare depend on them)."""
    parser = bundle_parser(bundle, profile=PROFILE, overrides=overrides)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        network = _randomise(parser.get_parsed_content(BUNDLE_NETWORKS[bundle].net_id))
    if edit is not None:
        with torch.no_grad():
            edit(network)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"network": network.state_dict()}, path)
    return network.eval()


@dataclass
class Case:
    """One bundle's randomised network, its checkpoint, an input and the eager outputs; its exports, written once."""

    bundle: str
    checkpoint: Path
    overrides: dict
    network: torch.nn.Module
    image: torch.Tensor
    expected: list[torch.Tensor]
    files: dict[str, str] = field(default_factory=dict)

    def export(self, fmt: str) -> str:
        if fmt not in self.files:
            self.files[fmt] = export_bundle(
                self.bundle, fmt, ckpt_file=self.checkpoint, profile=PROFILE, overrides=self.overrides
            )
        return self.files[fmt]


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Case]:
    """bundle -> :class:`Case` for the three networks (the bundles' tiny profiles: 64 px, ResNet-18)."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for bundle in BUNDLE_NETWORKS:
        overrides = {"output_dir": str(root / bundle)}
        checkpoint = root / bundle / "model.pt"
        network = _write_checkpoint(bundle, overrides, checkpoint)
        # three images: the exports are traced on two, so the batch axis is shown to be dynamic
        image = example_image(bundle_parser(bundle, profile=PROFILE, overrides=overrides), bundle, 3, seed=1)
        with torch.no_grad():
            expected = flatten_outputs(network(image))
        out[bundle] = Case(bundle, checkpoint, overrides, network, image, expected)
    return out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("bundle", sorted(BUNDLE_NETWORKS))
def test_exports_compute_what_the_eager_network_computes(cases, bundle, fmt):
    case = cases[bundle]
    path = case.export(fmt)
    assert path == str(case.checkpoint.with_suffix(FILE_SUFFIXES[fmt]))  # beside the checkpoint
    actual = exported_outputs(fmt, path, case.image)
    assert len(actual) == len(case.expected) == (6 if bundle == "cxr_retinanet" else 1)  # 3 levels x 2 heads
    for a, e in zip(actual, case.expected, strict=True):
        torch.testing.assert_close(a, e, **(ONNX_TOLERANCE if fmt == "onnx" else {}))


def test_onnx_without_its_packages_says_what_to_install(cases, capsys, monkeypatch):
    monkeypatch.setattr("monai_xattn.export_cli.onnx_available", lambda runtime=False: False)  # as if not installed
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["siim_unet", "--format", "onnx", "--set", f"output_dir={cases['siim_unet'].overrides['output_dir']}"]
    )
    assert run(args) == 1
    assert 'pip install "monai_xattn[export]"' in capsys.readouterr().err


def test_exported_program_carries_metadata_configs_and_detector_attributes(cases):
    extras = read_exported_extras(cases["cxr_retinanet"].export("exported_program"))
    meta = json.loads((BUNDLES / "cxr_retinanet" / "configs" / "metadata.json").read_text())
    assert extras["metadata.json"]["version"] == meta["version"]
    assert set(extras["configs.json"]) == {"train.json", "profiles/tiny.json"}
    assert extras["network_attributes.json"] == {
        "spatial_dims": 2,
        "num_classes": 1,
        "num_anchors": 3,
        "size_divisible": [32, 32],
        "cls_key": "classification",
        "box_reg_key": "box_regression",
    }
    # a detector built from another config refuses the network instead of decoding its outputs with wrong anchors
    network = load_exported_network(cases["cxr_retinanet"].export("exported_program"))
    with pytest.raises(ValueError, match="num_anchors"):
        use_exported_network(create_roi_detector(depth=18, base_anchor_shapes=[[16, 16]]), network)


def test_exported_program_takes_other_image_sizes_when_asked(cases, tmp_path):
    # the U-Net, the network most likely to be served at other sizes (the RetinaNet's and the classifier's dynamic
    # programs were checked by hand: docs/export.md; each export with symbolic sizes costs seconds here)
    bundle = "siim_unet"
    case = cases[bundle]
    path = export_bundle(
        bundle,
        "exported_program",
        tmp_path / "model.pt2",
        case.checkpoint,
        profile=PROFILE,
        overrides=case.overrides,
        dynamic_spatial=True,
    )
    image = torch.rand(1, 1, 96, 64)  # the export saw 64 x 64
    with torch.no_grad():
        actual, expected = load_exported_network(path)(image), case.network(image)
    for a, e in zip(flatten_outputs(actual), flatten_outputs(expected), strict=True):
        torch.testing.assert_close(a, e)


def test_cam_evaluation_config_runs_gradcam_on_the_exported_classifier(cases):
    # evaluate_exported.json: the CAM baseline's boxes need the classifier's layer4 activations and gradients; the
    # unflattened program keeps its submodules for MONAI's hooks
    case = cases["cxr_cam_baseline"]
    case.export("exported_program")
    configs = ["train.json", "evaluate.json"]
    eager = bundle_parser("cxr_cam_baseline", configs, PROFILE, case.overrides)
    eager.get_parsed_content("model").load_state_dict(torch.load(case.checkpoint, weights_only=True)["network"])
    exported = bundle_parser("cxr_cam_baseline", [*configs, "evaluate_exported.json"], PROFILE, case.overrides)
    assert eager["cam_method"] == "gradcam"
    image = case.image[:1]  # one image: GradCAM at the bundle's output stride 4 is the slowest network here
    expected = eager.get_parsed_content("network").eval()(image)
    localizer = exported.get_parsed_content("network")
    assert isinstance(localizer.classifier, torch.export.UnflattenedModule)  # the program, not a fresh ResNet
    actual = localizer.eval()(image)
    for a, e in zip(actual, expected, strict=True):
        assert len(e["boxes"]) > 0
        for key in ("boxes", "labels_scores", "peak"):
            torch.testing.assert_close(a[key], e[key])


def _workflow(bundle: str, configs: list[str], workflow_type: str, **overrides) -> ConfigWorkflow:
    files = [str(BUNDLES / bundle / "configs" / c) for c in [*configs, f"profiles/{PROFILE}.json"]]
    wf = ConfigWorkflow(
        config_file=files,
        meta_file=str(BUNDLES / bundle / "configs" / "metadata.json"),
        workflow_type=workflow_type,
        bundle_root=str(BUNDLES / bundle),
        **overrides,
    )
    wf.initialize()
    return wf


def _masks(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted(folder.glob("*_mask.png"))}


def test_siim_unet_inference_runs_the_exported_program(tmp_path, capsys):
    out = tmp_path / "models"
    settings = {
        "output_dir": str(out),
        "dataset_dir": str(tmp_path / "siim"),
        "phantom_studies": 24,
        "phantom_size": 64,
    }
    # a random U-Net's logits are within +-0.05 of 0; scaled up, about a tenth of each image is above the 0.5
    # threshold and no pixel is within rounding of it: the masks are neither empty nor full
    head = lambda net: (net.segmentation_head[0].weight.mul_(50.0), net.segmentation_head[0].bias.zero_())  # noqa: E731
    _write_checkpoint("siim_unet", settings, out / "model.pt", head)
    eager = _workflow(
        "siim_unet", ["train.json", "inference.json"], "infer", infer_dir=str(tmp_path / "eager"), **settings
    )
    eager.run()
    eager.finalize()
    # the command line writes models/model.pt2 beside the checkpoint, where inference_exported.json reads it
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cli = ["siim_unet", "--format", "exported_program", "--profile", PROFILE]
    assert run(parser.parse_args(cli + [f"--set={k}={v}" for k, v in settings.items()])) == 0
    assert "max |exported - eager| = 0" in capsys.readouterr().out
    exported = _workflow(
        "siim_unet",
        ["train.json", "inference.json", "inference_exported.json"],
        "infer",
        infer_dir=str(tmp_path / "exported"),
        checkpoint=str(tmp_path / "absent.pt"),  # the program carries its weights: no checkpoint is read
        **settings,
    )
    assert isinstance(exported.parser.get_parsed_content("network"), ExportedNetwork)  # not network_def
    exported.run()
    exported.finalize()
    expected, actual = _masks(tmp_path / "eager"), _masks(tmp_path / "exported")
    assert expected and list(actual) == list(expected)
    for name, mask in expected.items():
        np.testing.assert_array_equal(actual[name], mask, err_msg=name)
    pixels = np.stack(list(expected.values())) > 127
    assert 0 < pixels.mean() < 1, "masks are all empty or all full: the comparison would show little"
    with (
        open(tmp_path / "eager" / "submission.csv", newline="") as f,
        open(tmp_path / "exported" / "submission.csv") as g,
    ):
        assert list(csv.reader(g)) == list(csv.reader(f))


def test_retinanet_inference_runs_the_exported_network_in_the_detector(tmp_path):
    out = tmp_path / "out"
    settings = {
        "output_dir": str(out),
        "dataset_dir": str(tmp_path / "rsna"),
        "phantom_studies": 20,
        "phantom_size": 64,
        "progress": False,
        "min_score": 0.0,  # every detection of the random network is written and compared
    }
    # head bias 0: scores around 0.5 instead of the 0.01 prior, so that the box selector's order is exercised
    _write_checkpoint(
        "cxr_retinanet", settings, out / "model.pt", lambda net: net.classification_head.cls_logits.bias.zero_()
    )
    export_bundle("cxr_retinanet", "exported_program", profile=PROFILE, overrides=settings)
    runs = {}
    for name, configs in (
        ("eager", ["train.json", "inference.json"]),
        ("exported", ["train.json", "inference.json", "inference_exported.json"]),
    ):
        if name == "exported":
            (out / "model.pt").unlink()  # the program carries its weights: no checkpoint is read
        wf = _workflow("cxr_retinanet", configs, "infer", prediction_dir=str(tmp_path / name), **settings)
        if name == "exported":
            assert isinstance(wf.parser.get_parsed_content("detector").network, ExportedNetwork)
        wf.run()
        wf.finalize()
        runs[name] = json.loads((tmp_path / name / "predictions.json").read_text())
    assert runs["eager"] and len(runs["exported"]) == len(runs["eager"])
    for a, e in zip(runs["exported"], runs["eager"], strict=True):
        assert a["image_id"] == e["image_id"] and len(e["boxes"]) > 0
        torch.testing.assert_close(torch.tensor(a["boxes"]), torch.tensor(e["boxes"]))
        torch.testing.assert_close(torch.tensor(a["scores"]), torch.tensor(e["scores"]))
