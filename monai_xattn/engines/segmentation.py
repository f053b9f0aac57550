"""Engine pieces for SIIM segmentation: GLoRIA's balanced, seeded training fractions, the checkpoint an evaluation
reads (best validation or last epoch) and the RLE submission CSV.

Training and evaluation themselves are MONAI's ``SupervisedTrainer`` / ``SupervisedEvaluator`` with the stock
``(image, label)`` batches; only what MONAI has no counterpart for lives here.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events

from monai_xattn.utils.rle import RLE_MODES, rle_encode_wh

__all__ = ["EVAL_CHECKPOINTS", "RLESubmissionSaver", "balanced_fraction", "eval_checkpoint_file", "is_positive"]

#: what an evaluation can read from a training's checkpoint folder: the best-validation weights or the last epoch's
EVAL_CHECKPOINTS = {"best": "model.pt", "last": "last.pt"}


def is_positive(entry: Mapping[str, Any]) -> bool:
    """A SIIM datalist entry with at least one RLE run (pneumothorax present)."""
    return bool(entry.get("rle"))


def balanced_fraction(
    entries: Sequence[Mapping[str, Any]],
    fraction: float = 1.0,
    seed: int = 0,
    balance: bool = True,
    positive: Callable[[Mapping[str, Any]], bool] = is_positive,
) -> list[Mapping[str, Any]]:
    """GLoRIA's SIIM training set: all positives plus as many random negatives, then a seeded fraction of it.

    The fraction is drawn per class (``round(fraction * n_positive)`` positives, at least one, and as many
    negatives), so 1 % of a balanced set stays balanced; GLoRIA's ``df.sample(frac=...)`` of the balanced set
    has the same expected composition.

    Args:
        entries: datalist entries (the training split).
        fraction: ``0 < fraction <= 1`` (GLoRIA's 1 % / 10 % / 100 %).
        seed: the same seed gives the same subset; the subset of a smaller fraction is not a subset of a larger.
        balance: False keeps the class ratio of ``entries`` (``round(fraction * n)`` of each class).
        positive: tells positives from negatives.

    Returns:
        the selected entries, in their original order.

    Raises:
        ValueError: ``fraction`` out of range, or no positive entry when ``balance`` is asked for.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    flags = np.fromiter((positive(e) for e in entries), dtype=bool, count=len(entries))
    pos, neg = np.flatnonzero(flags), np.flatnonzero(~flags)
    rng = np.random.default_rng(seed)
    if balance:
        if not len(pos):
            raise ValueError(f"no positive entry among {len(entries)}: a balanced training set needs some")
        n_pos = max(1, round(fraction * len(pos)))
        n_neg = min(len(neg), n_pos)
    else:
        n_pos, n_neg = round(fraction * len(pos)), round(fraction * len(neg))
        if n_pos + n_neg == 0:
            n_pos, n_neg = (1, 0) if len(pos) else (0, 1)
    keep = np.concatenate([rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)])
    return [entries[i] for i in np.sort(keep)]


def eval_checkpoint_file(ckpt_dir: str | os.PathLike, which: str = "best") -> str:
    """The checkpoint file of a ``siim_unet`` training to evaluate.

    ``best`` is ``model.pt``, the weights of the best validation Kaggle Dice; ``last`` is ``last.pt``, the last
    epoch's (its ``network`` entry; the optimizer and trainer entries are not read). GLoRIA's official code tests
    the last epoch's weights, so a table that reports only the best ones measures something else.

    Args:
        ckpt_dir: the training's checkpoint folder.
        which: ``"best"`` or ``"last"``.

    Returns:
        the file path, as a string (for ``CheckedCheckpointLoader``'s ``load_path``).

    Raises:
        ValueError: ``which`` is neither.
    """
    if which not in EVAL_CHECKPOINTS:
        raise ValueError(f"eval_checkpoint must be one of {sorted(EVAL_CHECKPOINTS)}, got {which!r}")
    return str(Path(ckpt_dir) / EVAL_CHECKPOINTS[which])


class RLESubmissionSaver:
    """Ignite handler writing predicted masks as a SIIM submission CSV (``ImageId,EncodedPixels``).

    Attach it to an evaluator whose post-processing leaves binary ``(1, W, H)`` masks at the original image size
    (``Invertd`` + ``AsDiscreted``); each image gets one row, ``-1`` when nothing is predicted. The file is
    written when the run completes, atomically (a crashed run leaves no half file).

    Args:
        output_file: CSV path (its folder is created).
        mode: ``"relative"`` (SIIM stage 1 and ``train-rle.csv``) or ``"absolute"`` (stage 2) RLE.
        pred_key: the mask in each decollated output.
        id_key: the image id in each decollated batch item; falls back to the image file's stem.
        image_key: the image whose ``filename_or_obj`` meta supplies the fallback id.
    """

    def __init__(
        self,
        output_file: str | os.PathLike,
        mode: str = "relative",
        pred_key: Hashable = "pred",
        id_key: Hashable = "image_id",
        image_key: Hashable = "image",
    ) -> None:
        if mode not in RLE_MODES:
            raise ValueError(f"mode must be one of {RLE_MODES}, got {mode!r}")
        self.output_file = Path(output_file)
        self.mode = mode
        self.pred_key, self.id_key, self.image_key = pred_key, id_key, image_key
        self.rows: list[tuple[str, str]] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self.write)

    def _reset(self, engine: Engine) -> None:
        self.rows = []

    def _image_id(self, item: Mapping[Hashable, Any], pred: Any) -> str:
        if self.id_key in item:
            return str(item[self.id_key])
        for source in (item.get(self.image_key), pred):
            name = getattr(source, "meta", {}).get("filename_or_obj")
            if name:
                return Path(str(name)).stem
        raise KeyError(f"{type(self).__name__}: a sample has neither {self.id_key!r} nor an image file name")

    def __call__(self, engine: Engine) -> None:
        outputs, batch = engine.state.output, engine.state.batch
        if isinstance(outputs, Mapping) or isinstance(batch, Mapping):
            raise TypeError(f"{type(self).__name__} needs decollated outputs (an evaluator with decollate=True)")
        for item, out in zip(batch, outputs, strict=True):
            pred = out[self.pred_key]
            mask = torch.as_tensor(pred).detach().cpu().numpy()
            if mask.ndim != 3 or mask.shape[0] != 1:
                raise ValueError(f"{self._image_id(item, pred)}: expected a (1, W, H) mask, got {mask.shape}")
            self.rows.append((self._image_id(item, pred), rle_encode_wh(mask[0] > 0.5, self.mode)))

    def write(self, engine: Engine | None = None) -> Path:
        """Write the collected rows; returns the CSV path."""
        self.output_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.output_file.parent, prefix=f".{self.output_file.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["ImageId", "EncodedPixels"])
                writer.writerows(self.rows)
            os.replace(tmp, self.output_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.output_file
