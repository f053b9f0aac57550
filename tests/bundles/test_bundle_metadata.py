"""Every bundle as the MONAI model zoo expects one (issue 19 item 2).

The metadata keys that the MONAI bundle specification makes mandatory are checked here, key by key:
``monai.bundle verify_metadata`` fetches its JSON schema from the internet, which a machine without a network cannot
reach. Then the files a zoo bundle ships, configs that build the network they declare, and that network against
``network_data_format``: ``verify_net_in_out`` where the network has plain tensor I/O (the U-Net), and the declared
output fields for the networks that return detection dicts. Then each README as the zoo writes one: its sections, the
measured numbers ``eval_metrics`` holds (described in the README's Performance section), and every
``python -m monai.bundle run`` command it shows, checked against the bundle's config files (no bundle runs).
"""

from __future__ import annotations

import ast
import json
import math
import re
import shlex
from pathlib import Path

import monai
import pytest
import torch
from monai.bundle import ConfigParser, verify_net_in_out
from monai.bundle.utils import DEFAULT_MLFLOW_SETTINGS

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
#: the sections of a MONAI model-zoo README (``models/*/docs/README.md`` of Project-MONAI/model-zoo), in order, as the
#: level-2 headings of every bundle's ``docs/README.md``
README_SECTIONS = (
    "Model Overview",
    "Data",
    "Training configuration",
    "Performance",
    "MONAI Bundle Commands",
    "References",
    "License",
)
#: the arguments of ``monai.bundle run`` itself (``monai.bundle.scripts.run``); every other ``--key`` overrides a config
RUN_ARGUMENTS = {"run_id", "init_id", "final_id", "meta_file", "config_file", "logging_file", "tracking", "args_file"}
#: the keys MONAI's ``--tracking mlflow`` settings add to the config (``monai.bundle.utils.DEFAULT_MLFLOW_SETTINGS``),
#: which a tracked run may override
TRACKING_KEYS = set(DEFAULT_MLFLOW_SETTINGS["configs"]) - set(DEFAULT_MLFLOW_SETTINGS["handlers_id"])


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


def _readme(bundle: str) -> str:
    return (BUNDLES_DIR / bundle / "docs" / "README.md").read_text(encoding="utf-8")


def _sections(text: str) -> dict[str, str]:
    """The README's level-2 sections (heading -> body), headings inside code blocks left out."""
    sections: dict[str, str] = {}
    heading, fenced = None, False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("## "):
            heading = line[3:].strip()
            sections[heading] = ""
        elif heading is not None:
            sections[heading] += line + "\n"
    return sections


def _is_control(token: str) -> bool:
    """A shell operator (``;``, ``&&``, ``|``, ``(``, ``)``, ...): the end of a command."""
    return set(token) <= set("();&|<>")


def _run_arguments(tokens: list[str]) -> dict[str, str]:
    """``--key value`` / ``--key=value`` pairs of one ``monai.bundle run`` (a bare ``--flag`` is ``"True"``, as fire
    reads it), up to the end of the command."""
    args = {}
    for k, token in enumerate(tokens):
        if _is_control(token):
            break
        if token.startswith("--"):
            key, _, value = token[2:].partition("=")
            following = tokens[k + 1] if k + 1 < len(tokens) else "--"
            if not value and not following.startswith("--") and not _is_control(following):
                value = following
            args[key] = value or "True"
    return args


def _strip_comment(line: str) -> str:
    """The line without its shell comment: from an unquoted ``#`` at a word's start (``--a#b`` keeps its ``#``)."""
    quote = None
    for k, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k]
    return line


def _bundle_commands(bundle: str) -> list[tuple[str, Path, dict[str, str]]]:
    """Every ``monai.bundle run`` of the README's code blocks (``python -m`` or ``torchrun ... -m``): the command line,
    the folder it runs in (the bundle's, or the one a ``cd`` earlier on the same line enters) and its arguments."""
    commands = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", _readme(bundle), flags=re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():  # continuation lines joined
            lexer = shlex.shlex(_strip_comment(line), posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, ""  # shlex's commenters would cut `--a#b`
            tokens = list(lexer)
            cwd = BUNDLES_DIR / bundle
            for k, token in enumerate(tokens):
                if token == "cd":
                    cwd = (cwd / tokens[k + 1]).resolve()
                elif tokens[k : k + 3] == ["-m", "monai.bundle", "run"]:
                    commands.append((line.strip(), cwd, _run_arguments(tokens[k + 3 :])))
    return commands


@pytest.mark.parametrize("bundle", BUNDLES)
def test_readme_has_the_model_zoo_sections(bundle):
    headings = list(_sections(_readme(bundle)))
    assert [s for s in README_SECTIONS if s not in headings] == [], f"{bundle}: sections missing from docs/README.md"
    assert [h for h in headings if h in README_SECTIONS] == list(README_SECTIONS), f"{bundle}: not in the zoo's order"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_eval_metrics_hold_measured_numbers_the_readme_explains(bundle):
    """``eval_metrics`` holds measured values, a number or a dict of numbers per key, not descriptions; the README's
    Performance section names every key, with the run (command, profile, phantom) that measured it."""
    metrics = _metadata(bundle)["eval_metrics"]
    assert metrics, f"{bundle}: no eval_metrics"
    for key, value in metrics.items():
        ok = _is_number(value) or (isinstance(value, dict) and value and all(map(_is_number, value.values())))
        assert ok, f"{bundle}: eval_metrics[{key!r}] = {value!r} is not a number or a dict of numbers"
    performance = _sections(_readme(bundle))["Performance"]
    assert [k for k in metrics if f"`{k}`" not in performance] == [], f"{bundle}: keys the README does not explain"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_readme_commands_name_the_bundle_files_and_config_keys(bundle):
    """Every ``python -m monai.bundle run`` of the README runs: its config files exist (relative to the folder it runs
    in, the bundle's unless a ``cd`` enters another) and every ``--key`` it overrides is defined by the merged configs.

    A key with ``#`` may name a new argument of a config component (a dict with ``_target_``): ``monai.bundle run``
    passes it to the component, which is how ``docs/bundles/gloria_pretrain.md`` documents ``loss#attention``. A new
    top-level key would be stored and never read (a misspelt override does nothing), so it fails here. A tracked run
    (``--tracking``) may also set the keys MONAI's tracking settings add (``tracking_uri``, ``experiment_name``, ...)."""
    commands = _bundle_commands(bundle)
    assert commands, f"{bundle}: the README shows no monai.bundle run command"
    for line, cwd, args in commands:
        assert "config_file" in args, line
        configs = (
            ast.literal_eval(args["config_file"]) if args["config_file"].startswith("[") else [args["config_file"]]
        )
        files = configs + [args[k] for k in ("meta_file", "logging_file") if k in args]
        assert [f for f in files if not (cwd / f).is_file()] == [], f"{bundle}: missing file in {line}"
        assert cwd.parent == BUNDLES_DIR, f"{bundle}: runs outside a bundle folder: {line}"
        parser = ConfigParser()
        parser.read_config([str(cwd / f) for f in configs])  # merged in order, as monai.bundle run merges them
        unknown = []
        for key in sorted(set(args) - RUN_ARGUMENTS - (TRACKING_KEYS if "tracking" in args else set())):
            parent = key.rpartition("#")[0]
            component = (
                parent and parent in parser and isinstance(parser[parent], dict) and "_target_" in parser[parent]
            )
            if key not in parser and not component:
                unknown.append(key)
        assert unknown == [], f"{bundle}: {line} overrides keys its configs do not define: {unknown}"
