"""Export of the image networks for deployment: ``torch.export`` programs (``.pt2``), ONNX, and their loading.

A deployment serves the image network alone; what around it is Python stays Python (the detector's anchors, box
decoding and NMS, CAM's thresholding, the text side: ``docs/export.md``). Three formats:

- ``exported_program``: :func:`torch.export.export` -> :func:`torch.export.save` (``.pt2``), the lasting path
  (TorchScript is deprecated from torch 2.14). :func:`export_program` traces the network in eval mode, with a
  dynamic batch and, optionally, dynamic spatial sizes; :func:`save_exported_program` stores the bundle's metadata,
  configs and the attributes a detector reads from its network (:data:`NETWORK_ATTRIBUTES`) beside the program;
  :func:`load_exported_network` gives an ``nn.Module`` to run in a bundle config.
- ``onnx``: ``torch.onnx.export(..., dynamo=True)`` of the same program (:func:`export_onnx`); needs the optional
  ``onnx`` and ``onnxscript`` packages, and ``onnxruntime`` to run it (:func:`run_onnx`).
- ``torchscript``: MONAI's ``python -m monai.bundle ckpt_export`` (``monai_xattn.export_cli``); nothing here.

Images follow MONAI's convention: ``(B, C, W, H)``.

Example::

    program = export_program(network, torch.rand(2, 1, 128, 128))
    save_exported_program(program, "model.pt2", attributes=network_attributes(network))
    network = load_exported_network("model.pt2")
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.export import Dim, ExportedProgram
from torch.export.passes import move_to_device_pass

if TYPE_CHECKING:  # the detector is only a type here: loading a U-Net need not import monai.apps.detection
    from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector

__all__ = [
    "EXPORT_FORMATS",
    "FILE_SUFFIXES",
    "NETWORK_ATTRIBUTES",
    "EXTRA_FILES",
    "ExportedNetwork",
    "network_attributes",
    "flatten_outputs",
    "output_names",
    "export_program",
    "save_exported_program",
    "read_exported_extras",
    "load_exported_network",
    "use_exported_network",
    "onnx_available",
    "export_onnx",
    "run_onnx",
]

#: the export formats, in the order the command line lists them
EXPORT_FORMATS: tuple[str, ...] = ("torchscript", "exported_program", "onnx")
#: file suffix of each format
FILE_SUFFIXES: dict[str, str] = {"torchscript": ".ts", "exported_program": ".pt2", "onnx": ".onnx"}
#: attributes ``RetinaNetDetector`` reads from its network (``get_attribute_from_network``): a loaded program has none
#: of a RetinaNet's attributes, so they travel in the ``.pt2`` and are set again on the loaded network
NETWORK_ATTRIBUTES: tuple[str, ...] = (
    "spatial_dims",
    "num_classes",
    "num_anchors",
    "size_divisible",
    "cls_key",
    "box_reg_key",
)
#: the extra files of a ``.pt2`` written by :func:`save_exported_program` (each a JSON document)
EXTRA_FILES: tuple[str, ...] = ("metadata.json", "configs.json", "network_attributes.json")


def network_attributes(network: nn.Module) -> dict[str, Any]:
    """The :data:`NETWORK_ATTRIBUTES` ``network`` has, JSON-ready (tuples as lists); ``{}`` for a plain network."""
    found = {}
    for name in NETWORK_ATTRIBUTES:
        if hasattr(network, name):
            value = getattr(network, name)
            found[name] = list(value) if isinstance(value, tuple) else value
    return found


def flatten_outputs(output: Any) -> list[Tensor]:
    """The tensors of a network's output in the order ``torch.export`` and ONNX flatten them.

    Args:
        output: a tensor, or lists, tuples and dicts (in insertion order) of them; a RetinaNet's
            ``{"classification": [L tensors], "box_regression": [L tensors]}`` gives ``2L`` tensors.
    """
    if isinstance(output, Tensor):
        return [output]
    if isinstance(output, Mapping):
        return [t for value in output.values() for t in flatten_outputs(value)]
    if isinstance(output, (list, tuple)):
        return [t for value in output for t in flatten_outputs(value)]
    raise TypeError(f"network outputs must be tensors, lists or dicts of them, got {type(output).__name__}.")


def output_names(output: Any, name: str = "pred") -> list[str]:
    """Names of :func:`flatten_outputs`' tensors, for ONNX: ``pred`` for a tensor, ``<key>_<i>`` for a dict of lists.

    Args:
        output: an example output of the network.
        name: the name of a single tensor output (the bundles' ``network_data_format`` calls it ``pred``).
    """
    if isinstance(output, Tensor):
        return [name]
    if isinstance(output, Mapping):
        return [n for key, value in output.items() for n in output_names(value, str(key))]
    if isinstance(output, (list, tuple)):
        return [n for i, value in enumerate(output) for n in output_names(value, f"{name}_{i}")]
    raise TypeError(f"network outputs must be tensors, lists or dicts of them, got {type(output).__name__}.")


def _dynamic_shapes(example: Tensor, dynamic_batch: bool, spatial_multiple: int | None) -> tuple[dict[int, Any]]:
    """``dynamic_shapes`` of a one-image-tensor network for :func:`torch.export.export`."""
    dims: dict[int, Any] = {}
    if dynamic_batch:
        # min 1: a program traced on a batch of 2 serves single images too
        dims[0] = Dim("batch", min=1)
    if spatial_multiple is not None:
        for axis in range(2, example.ndim):
            if example.shape[axis] % spatial_multiple:
                raise ValueError(
                    f"the example's spatial size {tuple(example.shape[2:])} must be a multiple of "
                    f"spatial_multiple={spatial_multiple}."
                )
            dims[axis] = spatial_multiple * Dim(f"spatial{axis - 2}", min=1)
    return (dims,)


def export_program(
    network: nn.Module, example: Tensor, dynamic_batch: bool = True, spatial_multiple: int | None = None
) -> ExportedProgram:
    """``torch.export.export`` of an image network in eval mode (batch norm with its running statistics).

    Args:
        network: a module mapping ``(B, C, *spatial)`` images to a tensor or a dict/list of tensors.
        example: ``(B, C, *spatial)`` example batch (``B >= 2``, so that the batch axis can be dynamic).
        dynamic_batch: the program takes any batch size (else only ``B``).
        spatial_multiple: ``None`` fixes the spatial size to the example's; an integer lets every spatial axis be
            any multiple of it (32 for the U-Net and for a RetinaNet whose ``size_divisible`` is 32).

    Returns:
        the program; the network's own training flag is restored.

    Raises:
        torch._dynamo.exc.UserError (and other ``torch.export`` errors): the network cannot be traced, or it
            specialises an axis declared dynamic.
    """
    was_training = network.training
    network.eval()
    try:
        return torch.export.export(
            network, (example,), dynamic_shapes=_dynamic_shapes(example, dynamic_batch, spatial_multiple)
        )
    finally:
        network.train(was_training)


def save_exported_program(
    program: ExportedProgram,
    path: str | os.PathLike,
    meta: Mapping[str, Any] | None = None,
    configs: Mapping[str, Any] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> str:
    """``torch.export.save`` with the bundle's metadata, configs and network attributes as extra files.

    The same contents as MONAI's ``ckpt_export`` puts into a TorchScript file, so the ``.pt2`` says what it is.

    Args:
        program: from :func:`export_program`.
        path: the ``.pt2`` file (its folder is created).
        meta: the bundle's ``metadata.json`` content.
        configs: config name -> content (e.g. ``{"train.json": {...}}``).
        attributes: :func:`network_attributes` of the exported network.

    Returns:
        ``path`` as a string.
    """
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    contents = {"metadata.json": meta or {}, "configs.json": configs or {}, "network_attributes.json": attributes or {}}
    torch.export.save(program, path, extra_files={k: json.dumps(v) for k, v in contents.items()})
    return path


def _load(path: str | os.PathLike) -> tuple[ExportedProgram, dict[str, Any]]:
    extras = dict.fromkeys(EXTRA_FILES, "")
    program = torch.export.load(os.fspath(path), extra_files=extras)
    # a .pt2 written by plain torch.export.save has none of the files: they read as empty
    return program, {k: json.loads(v) if v else {} for k, v in extras.items()}


def read_exported_extras(path: str | os.PathLike) -> dict[str, Any]:
    """The :data:`EXTRA_FILES` of a ``.pt2``, parsed (``{}`` for a file it lacks)."""
    return _load(path)[1]


class ExportedNetwork(nn.Module):
    """An exported program run as an ``nn.Module`` by engines and detectors.

    ``ExportedProgram.module()`` refuses ``train()`` / ``eval()``, which MONAI's engines call on their network;
    here the flag is only recorded: the program was traced in eval mode and computes the same in either mode
    (batch norm always uses the running statistics). It cannot be trained.

    Args:
        program: the loaded program.
        attributes: set as attributes of this module (e.g. a RetinaNet's :data:`NETWORK_ATTRIBUTES`).
    """

    def __init__(self, program: ExportedProgram, attributes: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.graph = program.module()
        for name, value in (attributes or {}).items():
            setattr(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.graph(*args, **kwargs)

    def train(self, mode: bool = True) -> ExportedNetwork:
        self.training = mode
        return self


def load_exported_network(
    path: str | os.PathLike, device: str | torch.device | None = None, unflatten: bool = False
) -> nn.Module:
    """A ``.pt2`` as a module for inference, with the network attributes saved beside the program.

    ``torch.export.load`` reads the weights with ``torch.load(weights_only=False)`` where a tensor was pickled:
    load only ``.pt2`` files you trust, as with any TorchScript file.

    Args:
        path: written by :func:`save_exported_program` (or by plain ``torch.export.save``).
        device: move the program's weights and the devices named in its graph (``move_to_device_pass``);
            ``None``: where it was exported.
        unflatten: ``False``: an :class:`ExportedNetwork` (one flat graph, fastest). ``True``:
            :func:`torch.export.unflatten`'s module, which keeps the network's submodules (``layer4``, ``fc``) for
            forward hooks such as GradCAM's, at the cost of running submodule by submodule.

    Returns:
        the module, in eval mode.
    """
    program, extras = _load(path)
    if device is not None:
        program = move_to_device_pass(program, torch.device(device))
    attributes = extras["network_attributes.json"]
    if not unflatten:
        return ExportedNetwork(program, attributes).eval()
    module = torch.export.unflatten(program)
    for name, value in attributes.items():
        setattr(module, name, value)
    return module.eval()


def use_exported_network(detector: RetinaNetDetector, network: nn.Module) -> RetinaNetDetector:
    """Put an exported RetinaNet network into a detector built from the same config: the detector keeps its anchors,
    box coder and selector (the Python post-processing), the network its exported weights.

    Args:
        detector: e.g. the bundle's ``network_def`` (:func:`monai_xattn.networks.create_roi_detector`).
        network: e.g. :func:`load_exported_network` of the detector's exported ``network``.

    Returns:
        ``detector``, changed in place.

    Raises:
        ValueError: one of the :data:`NETWORK_ATTRIBUTES` the exported network carries differs from the detector's
            (another number of anchors or classes, another ``size_divisible``): the config does not describe the
            exported network. The anchor shapes themselves are not in the network: they must match the export's
            config.
    """
    mine = {
        "spatial_dims": detector.spatial_dims,
        "num_classes": detector.num_classes,
        "num_anchors": detector.num_anchors_per_loc,
        "size_divisible": list(detector.size_divisible),
        "cls_key": detector.cls_key,
        "box_reg_key": detector.box_reg_key,
    }
    theirs = network_attributes(network)
    if "size_divisible" in theirs:
        theirs["size_divisible"] = list(_repeat(theirs["size_divisible"], detector.spatial_dims))
    differ = {k: (mine[k], v) for k, v in theirs.items() if mine[k] != v}
    if differ:
        raise ValueError(f"the exported network does not fit the detector; (detector, exported): {differ}")
    detector.network = network
    return detector


def _repeat(value: int | Sequence[int], n: int) -> Sequence[int]:
    return [value] * n if isinstance(value, int) else value


def onnx_available(runtime: bool = False) -> bool:
    """Whether ``onnx`` and ``onnxscript`` (torch's ONNX exporter) are importable; with ``runtime``, ``onnxruntime``
    too. They are optional: the package does not depend on them."""
    names = ("onnx", "onnxscript") + (("onnxruntime",) if runtime else ())
    return all(importlib.util.find_spec(name) is not None for name in names)


def export_onnx(
    program: ExportedProgram,
    path: str | os.PathLike,
    example: Tensor,
    input_name: str = "image",
    output_name: str = "pred",
) -> str:
    """ONNX file of an exported program (``torch.onnx.export(..., dynamo=True)``), weights inside the file.

    The program's dynamic axes stay dynamic. Inputs and outputs are named: ``input_name``; ``output_name`` for a
    tensor output, ``classification_<level>`` / ``box_regression_<level>`` for a RetinaNet's head outputs.

    Args:
        program: from :func:`export_program`.
        path: the ``.onnx`` file (its folder is created).
        example: an input the program accepts (to name the outputs).
        input_name, output_name: see above.

    Returns:
        ``path`` as a string.

    Raises:
        ImportError: ``onnx`` or ``onnxscript`` is not installed (``pip install "monai_xattn[export]"``).
    """
    if not onnx_available():
        raise ImportError(
            'ONNX export needs the optional packages onnx and onnxscript: pip install "monai_xattn[export]"'
        )
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():
        names = output_names(program.module()(example), output_name)
    # external_data=False: one self-contained file (fine below ONNX's 2 GB protobuf limit)
    torch.onnx.export(
        program, f=path, dynamo=True, input_names=[input_name], output_names=names, external_data=False, verbose=False
    )
    return path


def run_onnx(path: str | os.PathLike, image: Tensor) -> list[Tensor]:
    """Run an ONNX file on ``image`` with ``onnxruntime`` (CPU); the outputs in :func:`flatten_outputs`' order.

    Raises:
        ImportError: ``onnxruntime`` is not installed.
    """
    if importlib.util.find_spec("onnxruntime") is None:
        raise ImportError(
            'running an ONNX file needs the optional package onnxruntime: pip install "monai_xattn[export]"'
        )
    import onnxruntime

    session = onnxruntime.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: image.detach().cpu().numpy()}
    return [torch.from_numpy(out) for out in session.run(None, feed)]
