"""One reader for every weight file the toolkit accepts.

Every loader of the package (U-Net encoder, RetinaNet backbone and detector, GLoRIA encoders, linear-probe trunk,
the engines' checkpoint loaders) reads files through :func:`load_checkpoint_file` and turns them into a flat
state dict with :func:`read_state_dict`, so that one file is understood the same way everywhere.

What is read, always with ``torch.load(weights_only=True)`` (no code of the file ever runs):

- a plain state dict (``torch.save(model.state_dict(), path)``), e.g. torchvision's ImageNet ResNets;
- a state dict inside a container: ``{"state_dict": ...}``, ``{"model": ...}``, ``{"network": ...}`` (MONAI
  bundles, :class:`monai_xattn.engines.AtomicCheckpointSaver`);
- this project's GLoRIA checkpoints, ``{"image_encoder": ..., "text_encoder": ...}`` (optimizer and trainer
  entries of ``last.pt`` are skipped), flattened to ``image_encoder.*`` / ``text_encoder.*``;
- a ``DistributedDataParallel`` state dict (every key starting with ``module.``): the prefix is removed;
- PyTorch-Lightning checkpoints such as the official GLoRIA ``chexpert_resnet50.ckpt``. ``weights_only=True``
  refuses them as they are, because they name Lightning's callback classes and OmegaConf's ``DictConfig``. Those
  names (and only names from the modules in :data:`STAND_IN_MODULES`) are bound to inert stand-in classes that
  keep no state, so that neither Lightning nor OmegaConf needs to be installed; only the tensors are kept.

Plain data types named as values (``builtins.dict`` in OmegaConf's metadata) are admitted as themselves.
A file that names anything else (a function, a class of another library) is refused with an error naming the
file and the names: it is not a checkpoint this reader knows, and nothing in it is executed to find out.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "STAND_IN_MODULES",
    "CheckpointError",
    "Checkpoint",
    "load_checkpoint_file",
    "read_state_dict",
]

#: modules whose classes may appear in a weight file as pure containers of training metadata (Lightning's
#: callbacks and hyper-parameters, OmegaConf's configs, ``typing`` markers inside them, argparse namespaces of
#: older Lightning versions); they are replaced by inert stand-ins when reading.
STAND_IN_MODULES = ("pytorch_lightning", "lightning", "lightning_fabric", "omegaconf", "typing", "argparse")

_CONTAINERS = ("state_dict", "model", "network")


def _plain_dict(*args: Any) -> dict:
    # stands for collections.defaultdict: its default factory is dropped, its items are kept
    return {}


# plain data types that OmegaConf's metadata names as values (``object_type=dict``) and torch does not admit by
# default: bound to themselves, or to a plain equivalent; calling them runs no code of the file
_PLAIN_TYPES: dict[str, Any] = {
    **{f"builtins.{t.__name__}": t for t in (dict, list, tuple, set, frozenset, int, float, complex, str, bytes, bool)},
    "collections.defaultdict": _plain_dict,
}


class CheckpointError(ValueError):
    """A weight file that cannot be read as a checkpoint; the message names the file and the reason."""

    def __init__(self, path: str | os.PathLike | None, reason: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path or '<state dict>'}: {reason}")


class _StandIn:
    """Takes the place of a foreign class named in a checkpoint: accepts any arguments and state, keeps none."""

    qualified_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<stand-in for {self.qualified_name}>"


def _stand_in(qualified_name: str) -> type:
    # one class per name, so that classes used as dict keys (Lightning's callbacks) stay distinct
    short = qualified_name.rsplit(".", 1)[-1]
    return type(short, (_StandIn,), {"qualified_name": qualified_name, "__module__": __name__})


def _foreign_names(path: str) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception as err:  # a legacy (non-zip) or damaged file: nothing more to learn from it
        raise CheckpointError(
            path,
            f"not a readable PyTorch checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})",
        ) from err


def load_checkpoint_file(
    path: str | os.PathLike, map_location: str | torch.device = "cpu", what: str = "checkpoint"
) -> tuple[Any, list[str]]:
    """``torch.load(path, weights_only=True)``, with inert stand-ins for Lightning/OmegaConf containers.

    Args:
        path: the file.
        map_location: as ``torch.load``.
        what: what the file is meant to be, for messages (``"GLoRIA checkpoint"``, ``"encoder weights"``, ...).

    Returns:
        ``(obj, stood_in)``: the unpickled object and the foreign class names replaced by inert stand-ins (empty
        for a plain file; plain data types admitted as themselves are not listed).

    Raises:
        FileNotFoundError: no such file (the message names it).
        CheckpointError: the file is not a PyTorch checkpoint, is damaged, or names code outside
            :data:`STAND_IN_MODULES`.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r}: file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True), []
    except pickle.UnpicklingError as err:
        first_error = err
    except Exception as err:  # zip or storage errors of a torn file name no file
        raise CheckpointError(path, f"not a readable {what} ({type(err).__name__}: {_first_line(err)})") from err
    names = _foreign_names(path)
    refused = sorted(n for n in names if n not in _PLAIN_TYPES and n.split(".", 1)[0] not in STAND_IN_MODULES)
    if refused or not names:
        raise CheckpointError(
            path,
            f"refused by torch.load(weights_only=True): it names {refused or _first_line(first_error)}, which are "
            f"not tensors or plain containers (only plain data types and classes of {', '.join(STAND_IN_MODULES)} "
            "are read, the latter as inert stand-ins). Save a plain state dict: torch.save(model.state_dict(), path)",
        ) from first_error
    stand_ins = [(_PLAIN_TYPES[n] if n in _PLAIN_TYPES else _stand_in(n), n) for n in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            return torch.load(path, map_location=map_location, weights_only=True), sorted(
                n for n in names if n not in _PLAIN_TYPES
            )
    except Exception as err:
        raise CheckpointError(
            path,
            f"not a readable {what} even with stand-ins for {sorted(names)} ({type(err).__name__}: {_first_line(err)})",
        ) from err


def _first_line(err: BaseException) -> str:
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


@dataclass
class Checkpoint:
    """A weight file reduced to its tensors.

    Attributes:
        path: the file (``None`` for an in-memory state dict).
        format: ``"state_dict"``, ``"container:<key>"``, ``"lightning"``, ``"monai_xattn_gloria"`` (also with a
            ``+ddp`` suffix when a ``module.`` prefix was removed).
        state_dict: flat ``name -> tensor`` mapping.
        stood_in: foreign class names that were replaced by stand-ins.
        info: plain metadata found beside the weights (``epoch``, ``global_step``, ``lightning_version``,
            ``hparams_name``).
    """

    path: str | None
    format: str
    state_dict: dict[str, Tensor]
    stood_in: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The file, or ``<state dict>``, for messages."""
        return self.path or "<state dict>"


def read_state_dict(
    source: str | os.PathLike | Mapping[str, Any], map_location: str | torch.device = "cpu", what: str = "checkpoint"
) -> Checkpoint:
    """Read a weight file (or an in-memory checkpoint) into a flat state dict of tensors.

    Args:
        source: file or mapping (a state dict or any of the containers in the module docstring).
        map_location: as ``torch.load``.
        what: what the file is meant to be, for messages.

    Returns:
        :class:`Checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: naming the file, when it is not a checkpoint or holds no tensors.
    """
    path = None if isinstance(source, Mapping) else os.fspath(source)
    obj, stood_in = (source, []) if path is None else load_checkpoint_file(path, map_location, what)
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"expected a {what} (a dict of tensors), found a {type(obj).__name__}")
    info = {
        key: obj[key]
        for key in ("epoch", "global_step", "pytorch-lightning_version", "hparams_name")
        if isinstance(obj.get(key), (int, str))
    }
    if "pytorch-lightning_version" in obj and isinstance(obj.get("state_dict"), Mapping):
        fmt, state = "lightning", dict(obj["state_dict"])
    elif isinstance(obj.get("image_encoder"), Mapping):
        fmt = "monai_xattn_gloria"
        state = {
            f"{part}.{k}": v
            for part in ("image_encoder", "text_encoder")
            if isinstance(obj.get(part), Mapping)
            for k, v in obj[part].items()
        }
    else:
        container = next((k for k in _CONTAINERS if isinstance(obj.get(k), Mapping)), None)
        fmt, state = (
            ("state_dict", dict(obj)) if container is None else (f"container:{container}", dict(obj[container]))
        )
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, Tensor))
    if len(not_tensors) == len(state):
        raise CheckpointError(path, f"not a {what}: it holds no tensors (top-level keys: {sorted(map(str, obj))[:8]})")
    if not_tensors:
        raise CheckpointError(
            path,
            f"not a {what}: entries {not_tensors[:5]} are not tensors (top-level keys: {sorted(map(str, obj))[:8]})",
        )
    if all(str(k).startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
        fmt += "+ddp"
    if "pytorch-lightning_version" in info:
        info["lightning_version"] = info.pop("pytorch-lightning_version")
    return Checkpoint(path, fmt, state, stood_in, info)
