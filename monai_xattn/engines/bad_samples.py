"""Keep training when a sample cannot be loaded, if asked: skip it, log it, count it, and show the count.

The training bundles stop on the first file they cannot read (the error names it; ``docs/reliability.md``). With the
bundle key ``skip_bad_samples`` set, the training dataset is wrapped in :class:`SkipBadSamples`: a sample whose
transform chain fails with a data error (a :class:`~monai_xattn.transforms.CXRLoadError` or another ``ValueError``
/ ``OSError`` anywhere in the exception chain that MONAI's ``apply_transform`` builds) is logged with the error that
names the file, marked bad, and replaced by the next loadable sample (index + 1, + 2, ... modulo the length). The
replacement keeps the dataset's length, the sampler's order, batch sizes, ``drop_last`` and the DDP sampler's
shards as they are. Any other exception (a ``TypeError`` or ``KeyError`` from a transform is a bug, not a bad file)
still stops the run.

The bad-sample marks live in one shared-memory tensor created in the main process, so the loader's worker
processes (``num_workers > 0``, forked or spawned) mark the same tensor that the main process reads.
:class:`SkippedSamplesHandler` puts the number of distinct bad samples into the trainer's ``engine.state.metrics``
(``skipped_samples``; under ``torch.distributed`` the union over the ranks) after the last iteration of every
epoch, so that MONAI's ``StatsHandler`` and ``MetricsSaver`` report it at the epoch's end, and names the newly found
samples once.

Skipping is bounded: when more than ``max_fraction`` of the dataset has failed (a wrong ``dataset_dir``, a dataset
still being copied) :class:`TooManyBadSamplesError` stops the run, naming a few of the bad samples.

Typical use (the training bundles wire the same; ``enabled=False`` returns the dataset itself)::

    dataset = skip_bad_samples(Dataset(datalist, transform), enabled=True, max_fraction=0.1)
    trainer = SupervisedTrainer(..., train_data_loader=DataLoader(dataset, batch_size=8, num_workers=2))
    SkippedSamplesHandler().attach(trainer)  # -> trainer.state.metrics["skipped_samples"]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from torch.utils.data import Dataset

__all__ = [
    "DATA_ERRORS",
    "SkipBadSamples",
    "SkippedSamplesHandler",
    "TooManyBadSamplesError",
    "data_error",
    "skip_bad_samples",
]

logger = logging.getLogger(__name__)

#: exception types that mean "this sample's data is bad" (``CXRLoadError`` and the report, RLE and box errors are
#: ``ValueError``; a missing or unreadable file is an ``OSError``)
DATA_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)
# keys of a datalist entry that name the sample, in the order they are tried
_NAME_KEYS = ("image", "image_id", "id", "report")
_LISTED = 5  # bad samples named in an error message
_NAMED = 20  # new bad samples named in the handler's epoch summary (each was logged with its error already)


class TooManyBadSamplesError(RuntimeError):
    """More samples failed to load than :class:`SkipBadSamples` may skip (or every sample did)."""


def data_error(exc: BaseException, errors: tuple[type[BaseException], ...] = DATA_ERRORS) -> BaseException | None:
    """The first exception of ``exc``'s chain (``exc``, its ``__cause__``, ...) that is one of ``errors``.

    MONAI wraps a failing transform's exception in ``RuntimeError("applying transform ...")`` (once per nested
    ``Compose``); the exception that names the file is further down. The first match is taken, not the deepest:
    a ``CXRLoadError`` keeps the decoder's own exception as its ``__cause__``.

    Args:
        exc: the exception raised by a dataset's ``__getitem__``.
        errors: the exception types that count as bad data.

    Returns:
        the matching exception, or ``None`` when the chain holds none (the caller re-raises ``exc``).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, errors):
            return current
        seen.add(id(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return None


class SkipBadSamples(Dataset):
    """Map-style dataset wrapper that replaces a sample that fails to load by the next loadable one.

    Args:
        dataset: the wrapped map-style dataset (a MONAI ``Dataset`` / ``CacheDataset`` with ``runtime_cache``; a
            ``CacheDataset`` that caches at construction has already raised by the time it could be wrapped).
        max_fraction: the largest fraction of the dataset that may be bad; one more bad sample raises
            :class:`TooManyBadSamplesError`. ``1.0`` raises only when every sample is bad.
        errors: exception types that count as bad data when found in the chain (see :func:`data_error`).
        split: what the dataset is, for the messages.

    Raises:
        ValueError: an empty dataset, or ``max_fraction`` outside ``[0, 1]``.
    """

    def __init__(
        self,
        dataset: Sequence | Dataset,
        max_fraction: float = 0.1,
        errors: Sequence[type[BaseException]] = DATA_ERRORS,
        split: str = "training",
    ) -> None:
        if not 0.0 <= max_fraction <= 1.0:
            raise ValueError(f"max_fraction must be in [0, 1], got {max_fraction}")
        n = len(dataset)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError(f"SkipBadSamples: the {split} dataset is empty")
        self.dataset = dataset
        self.max_fraction = float(max_fraction)
        self.errors = tuple(errors)
        self.split = split
        # created here, in the main process: forked workers inherit the shared pages and spawned ones receive a
        # handle to them (torch's pickling of shared tensors), so a mark made in a worker is seen by everybody
        self.bad = torch.zeros(n, dtype=torch.uint8).share_memory_()

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        start = int(index) % n
        for step in range(n):
            i = (start + step) % n
            if self.bad[i]:
                continue  # failed before (in this process or another): do not read it again
            try:
                return self.dataset[i]
            except Exception as exc:
                reason = data_error(exc, self.errors)
                if reason is None:
                    raise
                self._mark(i, reason)
        raise TooManyBadSamplesError(self._too_many(f"all {n} {self.split} samples failed to load"))

    @property
    def num_bad(self) -> int:
        """Distinct samples found bad so far (by this process and its loader workers)."""
        return int(self.bad.sum())

    def bad_indices(self) -> list[int]:
        """Indices of the samples found bad so far, ascending."""
        return self.bad.nonzero().flatten().tolist()

    def describe(self, index: int) -> str:
        """``#index`` and, when the wrapped dataset holds a datalist, the entry's image (or id)."""
        entry = None
        data = getattr(self.dataset, "data", None)
        try:
            entry = data[index] if data is not None else None
        except (IndexError, KeyError, TypeError):
            pass
        if isinstance(entry, Mapping):
            for key in _NAME_KEYS:
                if entry.get(key) is not None:
                    return f"#{index} ({entry[key]})"
        return f"#{index}"

    def _mark(self, index: int, reason: BaseException) -> None:
        first = not bool(self.bad[index])
        self.bad[index] = 1
        n, bad = len(self), self.num_bad
        message = f"{type(reason).__name__}: {reason}"
        if first:  # a second worker failing on the same sample at the same moment would only log it twice
            logger.warning(
                "skipping %s sample %s, it cannot be loaded (%d of %d bad so far; skip_bad_samples is on): %s",
                self.split,
                self.describe(index),
                bad,
                n,
                message,
            )
        if bad > self.max_fraction * n:
            raise TooManyBadSamplesError(
                self._too_many(
                    f"{bad} of {n} {self.split} samples failed to load, more than max_fraction="
                    f"{self.max_fraction:g} allows; the last: {message}"
                )
            )

    def _too_many(self, what: str) -> str:
        indices = self.bad_indices()
        listed = ", ".join(self.describe(i) for i in indices[:_LISTED]) + (" ..." if len(indices) > _LISTED else "")
        return (
            f"{what.rstrip('.')}. Bad samples: {listed}. Check dataset_dir and the datalist; skip_bad_samples only covers a "
            "few broken files."
        )


def skip_bad_samples(
    dataset: Sequence | Dataset,
    enabled: bool = True,
    max_fraction: float = 0.1,
    errors: Sequence[type[BaseException]] = DATA_ERRORS,
    split: str = "training",
) -> Sequence | Dataset:
    """``dataset`` wrapped in :class:`SkipBadSamples` when ``enabled``, else ``dataset`` itself (untouched).

    A bundle wires it as a component (``"_target_": "monai_xattn.engines.skip_bad_samples"``), so that
    ``max_fraction`` can be overridden on the command line; see :class:`SkipBadSamples` for the arguments.
    """
    return SkipBadSamples(dataset, max_fraction, errors, split) if enabled else dataset


def _union_over_ranks(bad: torch.Tensor) -> torch.Tensor:
    """The element-wise maximum of ``bad`` over the ranks of an initialised process group (``bad`` without one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return bad
    device = torch.device("cpu")
    if dist.get_backend() == "nccl":  # nccl reduces CUDA tensors only
        device = torch.device("cuda", torch.cuda.current_device())
    union = bad.to(device=device, dtype=torch.int32, copy=True)
    dist.all_reduce(union, op=dist.ReduceOp.MAX)
    return union.cpu()


class SkippedSamplesHandler:
    """Trainer handler: the number of skipped (bad) training samples in ``engine.state.metrics``.

    After the last iteration of every epoch (before ``EPOCH_COMPLETED``, so that the epoch's ``StatsHandler`` line
    and ``MetricsSaver`` hold it) it sets ``metric_name`` to the number of distinct samples found bad so far, and
    logs the ones found since the last report, by name. Under ``torch.distributed`` the count is the union over the
    ranks (every rank must run the handler, as ``handlers_for_rank`` keeps it) and only rank 0 logs. When the
    trainer's dataset is not a :class:`SkipBadSamples` (``skip_bad_samples`` off) it does nothing.

    Args:
        dataset: the :class:`SkipBadSamples`; default the one of the trainer's ``data_loader``.
        metric_name: key in ``engine.state.metrics``.
    """

    def __init__(self, dataset: SkipBadSamples | None = None, metric_name: str = "skipped_samples") -> None:
        self.dataset = dataset
        self.metric_name = metric_name
        self._reported: set[int] = set()

    def attach(self, engine: Engine) -> None:
        event = Events.ITERATION_COMPLETED(event_filter=_last_iteration_of_epoch)
        if not engine.has_event_handler(self, event):
            engine.add_event_handler(event, self)

    def _skipping_dataset(self, engine: Engine) -> SkipBadSamples | None:
        if self.dataset is not None:
            return self.dataset
        dataset = getattr(getattr(engine, "data_loader", None), "dataset", None)
        return dataset if isinstance(dataset, SkipBadSamples) else None

    def __call__(self, engine: Engine) -> None:
        dataset = self._skipping_dataset(engine)
        if dataset is None:
            return
        bad = _union_over_ranks(dataset.bad).nonzero().flatten().tolist()
        engine.state.metrics[self.metric_name] = len(bad)
        new = [i for i in bad if i not in self._reported]
        self._reported.update(new)
        rank0 = not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
        if new and rank0:
            names = ", ".join(dataset.describe(i) for i in new[:_NAMED])
            names += f" and {len(new) - _NAMED} more" if len(new) > _NAMED else ""
            engine.logger.warning(
                f"epoch {engine.state.epoch}: {len(bad)} of {len(dataset)} {dataset.split} samples skipped so far "
                f"(they cannot be loaded; each was replaced by the next loadable sample); new: {names}"
            )


def _last_iteration_of_epoch(engine: Engine, iteration: int) -> bool:
    length = engine.state.epoch_length
    return bool(length) and iteration % length == 0
