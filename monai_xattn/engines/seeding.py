"""Reseed every epoch, so that a resumed run replays an uninterrupted one.

MONAI seeds its random state once, so a run resumed at epoch ``e`` would draw a different random stream
(hard-negative sampling, augmentation, a shuffling sampler) than the uninterrupted run did in epoch ``e``. Seeding from ``(seed, epoch)`` at every epoch start gives
both the same stream: the global generators, and the random transforms of the trainer's dataset (as MONAI's
``DataLoader`` seeds them once at construction). Ignite creates an epoch's data iterator after ``EPOCH_STARTED``,
so a shuffling sampler and worker seeds draw from the reseeded generator too. CPU training then resumes from an
epoch checkpoint to bit-identical weights (``tests/reliability/test_training_faults.py``).

Bundle configs name :class:`SeedEachEpoch` by its first home, ``monai_xattn.engines.guards``, which re-exports it.
"""

from __future__ import annotations

from ignite.engine import Engine, Events
from monai.data.utils import set_rnd
from monai.utils import set_determinism

__all__ = ["SeedEachEpoch"]


class SeedEachEpoch:
    """Seed Python, NumPy, torch and the dataset's random transforms from ``seed + epoch`` at every epoch start.

    Args:
        seed: base seed; epoch ``e`` (1-based) runs with ``seed + e``.
        deterministic: also switch on torch's deterministic algorithms (as ``set_determinism`` does).

    Attach it before the resume handler's ``STARTED`` has run or after, either way: it acts on ``EPOCH_STARTED``.
    """

    def __init__(self, seed: int = 0, deterministic: bool = True) -> None:
        self.seed = seed
        self.deterministic = deterministic

    def attach(self, engine: Engine) -> None:
        if not engine.has_event_handler(self, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        seed = self.seed + engine.state.epoch
        set_determinism(seed, use_deterministic_algorithms=self.deterministic)
        dataset = getattr(getattr(engine, "data_loader", None), "dataset", None)
        if dataset is not None:  # transforms run in this process (num_workers=0); workers get seeds from torch
            set_rnd(dataset, seed)
