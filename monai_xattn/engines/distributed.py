"""Helpers that the bundles' ``multi_gpu_train.json`` overlays share: which handlers every rank runs, and shutdown.

Every rank must run the handlers that take part in collectives or keep the ranks in step (validation, whose
metrics all-gather; the resume loader; learning-rate schedules; the non-finite-loss guard, which all-reduces its
verdict; per-epoch reseeding). Only rank 0 logs and writes files. Listing the rank-0-only kinds by type, rather than
slicing the handler list by position, keeps the overlays true when a bundle's ``train.json`` gains a handler.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.distributed as dist
from ignite.handlers import Checkpoint, ProgressBar
from monai.handlers import (
    CheckpointSaver,
    ClassificationSaver,
    MetricsSaver,
    StatsHandler,
    TensorBoardImageHandler,
    TensorBoardStatsHandler,
)

__all__ = ["RANK0_ONLY_HANDLERS", "handlers_for_rank", "shutdown_distributed"]

#: handler types that only log or write files (subclasses such as ``AtomicCheckpointSaver`` included): on several processes they would print twice or race on the same file
RANK0_ONLY_HANDLERS: tuple[type, ...] = (
    StatsHandler,
    TensorBoardStatsHandler,
    TensorBoardImageHandler,
    ProgressBar,
    CheckpointSaver,
    Checkpoint,
    MetricsSaver,
    ClassificationSaver,
)


def handlers_for_rank(handlers: Sequence | None, rank: int | None = None) -> list:
    """The handlers this process attaches: all on rank 0, the ones every rank needs elsewhere.

    Args:
        handlers: a bundle's handler list (``None`` -> empty).
        rank: the process rank; default the initialised process group's rank (0 without one).

    Returns:
        the handlers in their original order.
    """
    if rank is None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    handlers = list(handlers or [])
    return handlers if rank == 0 else [h for h in handlers if not isinstance(h, RANK0_ONLY_HANDLERS)]


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    Without the barrier a rank that finishes first (the others still saving checkpoints) tears down its gloo
    connections while the peers hold them open; on CPU that aborted the early rank at exit about one run in ten
    ("terminate called without an active exception"), failing a run that had trained correctly.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
