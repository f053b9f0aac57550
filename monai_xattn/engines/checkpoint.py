"""Atomic checkpoints that keep the last and the best state, and resuming from the last one.

Built on MONAI's ``CheckpointSaver`` / ``CheckpointLoader`` (Ignite ``Checkpoint``). MONAI writes checkpoints
non-atomically, so a run killed mid-write leaves a truncated file that later fails to load; here every file is
written to a temporary file in the same folder and moved into place with ``os.replace`` (Ignite's atomic
``DiskSaver``, which also keeps the file group/other readable).

Typical use (the ``cxr_retinanet`` bundle wires the same)::

    best = AtomicCheckpointSaver("models", {"network": net}, save_key_metric=True, key_metric_name="val_acc",
                                 save_interval=0)  # -> models/best.pt, attached to the evaluator
    state = {"network": net, "optimizer": opt, "lr_scheduler": sched, "trainer": trainer, "best_saver": best}
    last = AtomicCheckpointSaver("models", state)  # -> models/last.pt every epoch, attached to the trainer
    ResumeCheckpointLoader("models/last.pt", state, enabled=resume).attach(trainer)
    CheckedCheckpointLoader("models/best.pt", {"network": net}).attach(evaluator)  # evaluation / inference

Both loaders read with ``weights_only=True`` and raise :class:`CheckpointMismatchError` naming the file and what
differs (a checkpoint of another network, another configuration, a torn file) instead of torch's key list.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import DiskSaver
from monai.handlers import CheckpointLoader, CheckpointSaver

from monai_xattn.utils.checkpoints import CheckpointError, load_checkpoint_file

__all__ = [
    "AtomicDiskSaver",
    "AtomicCheckpointSaver",
    "CheckedCheckpointLoader",
    "CheckpointMismatchError",
    "ResumeCheckpointLoader",
    "describe_mismatch",
]


class AtomicDiskSaver(DiskSaver):
    """Ignite's atomic ``DiskSaver`` with an optional fixed file name (as MONAI's private saver has)."""

    def __init__(self, dirname: str | os.PathLike, filename: str | None = None) -> None:
        super().__init__(dirname=dirname, require_empty=False, atomic=True, create_dir=True)
        self.filename = filename

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        super().__call__(checkpoint, self.filename or filename, metadata)

    def remove(self, filename: str) -> None:
        # Ignite removes the previous file *before* saving the next one; under a fixed name the atomic replace
        # already overwrites it, and removing first would lose the checkpoint if the run died in between
        if self.filename is None:
            super().remove(filename)


class AtomicCheckpointSaver(CheckpointSaver):
    """MONAI's ``CheckpointSaver`` with atomic writes, a fixed-name "last" checkpoint and a resumable "best".

    Args:
        save_dir, save_dict, name, file_prefix, save_final, final_filename, save_key_metric, key_metric_name,
            key_metric_greater_or_equal, key_metric_negative_sign, epoch_level: as ``CheckpointSaver``.
        key_metric_filename: file of the best checkpoint (only one is kept).
        last_filename: file of the last checkpoint, written every ``save_interval`` epochs (or iterations).
        save_interval: interval of the last checkpoint; 0 disables it.

    The saver has a ``state_dict`` (its record of the best score so far): put the "best" saver into the "last"
    saver's ``save_dict`` so that a resumed run replaces ``best.pt`` only when it really does better.
    """

    def __init__(
        self,
        save_dir: str,
        save_dict: dict,
        name: str | None = None,
        file_prefix: str = "",
        save_final: bool = False,
        final_filename: str | None = None,
        save_key_metric: bool = False,
        key_metric_name: str | None = None,
        key_metric_filename: str = "best.pt",
        key_metric_greater_or_equal: bool = False,
        key_metric_negative_sign: bool = False,
        epoch_level: bool = True,
        save_interval: int = 1,
        last_filename: str = "last.pt",
    ) -> None:
        super().__init__(
            save_dir=save_dir,
            save_dict=save_dict,
            name=name,
            file_prefix=file_prefix,
            save_final=save_final,
            final_filename=final_filename,
            save_key_metric=save_key_metric,
            key_metric_name=key_metric_name,
            key_metric_n_saved=1,
            key_metric_filename=key_metric_filename,
            key_metric_greater_or_equal=key_metric_greater_or_equal,
            key_metric_negative_sign=key_metric_negative_sign,
            epoch_level=epoch_level,
            save_interval=save_interval,
            n_saved=1,
        )
        if self._final_checkpoint is not None:
            self._final_checkpoint.save_handler = AtomicDiskSaver(save_dir, final_filename)
        if self._key_metric_checkpoint is not None:
            self._key_metric_checkpoint.save_handler = AtomicDiskSaver(save_dir, key_metric_filename)
        if self._interval_checkpoint is not None:
            self._interval_checkpoint.save_handler = AtomicDiskSaver(save_dir, last_filename)

    def state_dict(self) -> dict[str, Any]:
        """The best-score record (Ignite ``Checkpoint`` state) of the key-metric checkpoint."""
        if self._key_metric_checkpoint is None:
            return {}
        return self._key_metric_checkpoint.state_dict()


class CheckpointMismatchError(RuntimeError):
    """A checkpoint that cannot be loaded into the objects given; the message names the file and what differs."""


def describe_mismatch(module: torch.nn.Module, state: Mapping[str, Any], limit: int = 3) -> str:
    """Missing, unexpected and wrongly shaped keys of ``state`` for ``module``, the first ``limit`` of each.

    ``load_state_dict`` lists every key (hundreds for a detector); this is the one-line summary a user reads.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != own[k].shape
    ]
    parts = [
        f"{len(keys)} {what} ({', '.join(keys[:limit])}{', ...' if len(keys) > limit else ''})"
        for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes))
        if keys
    ]
    return ", ".join(parts) or "keys and shapes match"


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` (``weights_only=True``) whose errors name the file and say what differs.

    A drop-in for evaluation and inference configs: MONAI's own loader answers a checkpoint of another network
    with torch's list of every missing key, and a missing file with a bare ``FileNotFoundError``.

    Args:
        load_path, load_dict, kwargs: as ``CheckpointLoader`` (``map_location``, ``strict``, ...).

    Raises:
        CheckpointMismatchError: naming ``load_path``, when the file is missing or not a complete checkpoint, holds
            objects ``torch.load(weights_only=True)`` refuses, lacks one of ``load_dict``'s entries, or was written
            by a network with other keys or shapes (summarised by :func:`describe_mismatch`).
    """

    action = "cannot load it"

    def __init__(self, load_path: str | os.PathLike, load_dict: dict, **kwargs: Any) -> None:
        super().__init__(load_path=os.fspath(load_path), load_dict=load_dict, **kwargs)

    def __call__(self, engine: Engine) -> None:
        if not os.path.isfile(self.load_path):
            raise CheckpointMismatchError(f"{self.load_path}: no such checkpoint file.")
        try:
            super().__call__(engine)
        except pickle.UnpicklingError as e:
            raise CheckpointMismatchError(
                f"{self.load_path}: refused by torch.load(weights_only=True), which loads only tensors and plain "
                f"containers ({str(e).splitlines()[0]})."
            ) from e
        except (RuntimeError, ValueError, KeyError) as e:
            raise CheckpointMismatchError(f"{self.load_path}: {self.action}: {self._explain(e)}") from e

    def _explain(self, error: Exception) -> str:
        """What differs between the checkpoint and ``load_dict``, or the original error when the file is broken."""
        try:
            checkpoint, _ = load_checkpoint_file(self.load_path, what="training checkpoint")
        except CheckpointError as e:  # torn or foreign file: the reader names the zip/pickle problem
            return f"{e.reason}."
        if not isinstance(checkpoint, Mapping):
            return f"it holds a {type(checkpoint).__name__}, not a dict of named states."
        absent = [k for k in self.load_dict if k not in checkpoint]
        if absent and len(self.load_dict) > 1:
            return (
                f"it holds {sorted(checkpoint)}, this run needs {sorted(self.load_dict)} (missing {absent}): was it "
                "written by another bundle or configuration?"
            )
        for name, obj in self.load_dict.items():
            state = checkpoint.get(name, checkpoint)
            if isinstance(obj, torch.nn.Module) and isinstance(state, Mapping):
                summary = describe_mismatch(obj, state)
                if summary != "keys and shapes match":
                    return f"{name!r} was written by another network: {summary}."
        return f"{type(error).__name__}: {error}"


class ResumeCheckpointLoader(CheckedCheckpointLoader):
    """:class:`CheckedCheckpointLoader` that resumes only when the checkpoint exists.

    On a first run there is nothing to resume and training starts from scratch; afterwards the engine's epoch and
    iteration, the optimizer, the LR scheduler and the network continue from ``load_path``.

    Args:
        load_path: checkpoint file, e.g. ``models/last.pt``.
        load_dict: objects to restore, keyed as when saved (``trainer``, ``network``, ``optimizer``, ...).
        enabled: ``False`` turns the handler into a no-op (bundle ``--resume`` switch).
        kwargs: passed to ``CheckpointLoader`` (``map_location``, ``strict``, ...).

    Raises:
        CheckpointMismatchError: as :class:`CheckedCheckpointLoader`, for a checkpoint that exists.
    """

    action = "cannot resume from it"

    def __init__(self, load_path: str | os.PathLike, load_dict: dict, enabled: bool = True, **kwargs: Any) -> None:
        super().__init__(load_path=load_path, load_dict=load_dict, **kwargs)
        self.enabled = enabled

    def attach(self, engine: Engine) -> None:
        if self._name is None:
            self.logger = engine.logger
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        if not self.enabled:
            return
        if not os.path.isfile(self.load_path):
            self.logger.info(f"no checkpoint at {self.load_path}: starting from scratch.")
            return
        super().__call__(engine)
        self.logger.info(f"resumed at epoch {engine.state.epoch}, iteration {engine.state.iteration}.")
