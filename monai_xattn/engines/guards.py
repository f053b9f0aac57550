"""Training guards for MONAI's Ignite trainers: stop on a non-finite loss.

``StopOnNonFiniteLoss`` checks the loss on MONAI's ``IterationEvents.LOSS_COMPLETED``, which ``SupervisedTrainer``
(and :class:`~monai_xattn.engines.GloriaTrainingIteration`) fire after the loss and *before* ``backward`` and the
optimizer step: a NaN never reaches the weights, and since the error stops the run before the epoch ends, the
last checkpoint on disk stays the one of the previous epoch. Ignite's ``TerminateOnNan`` looks at the output after
the step, and only terminates quietly. Under ``torch.distributed`` the ranks agree on the verdict, so a NaN on one
rank stops all of them instead of leaving the others blocked in the gradient all-reduce.

``SeedEachEpoch`` (reseeding every epoch, for exact resumes) lives in :mod:`monai_xattn.engines.seeding`; it is
re-exported here, where the bundle configs name it (``monai_xattn.engines.guards.SeedEachEpoch``).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.engines import Workflow
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys

from monai_xattn.engines.seeding import SeedEachEpoch  # re-exported: bundle configs name it here

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss", "SeedEachEpoch"]


class NonFiniteLossError(FloatingPointError):
    """A training loss that is NaN or infinite; ``epoch``, ``iteration`` and ``loss`` say where and what."""

    def __init__(self, epoch: int, iteration: int, batch: int, loss: float, checked_before_step: bool) -> None:
        self.epoch, self.iteration, self.batch, self.loss = epoch, iteration, batch, loss
        when = (
            "before the optimizer step; the weights are those of the iteration before"
            if checked_before_step
            else "after the optimizer step (the engine fires no LOSS_COMPLETED): the weights in memory may be NaN"
        )
        super().__init__(
            f"non-finite loss {loss} at iteration {iteration} (epoch {epoch}, batch {batch} of the epoch); training "
            f"stopped {when}. Checkpoints on disk are from earlier epochs. Usual causes: a learning rate too high, "
            "an empty or degenerate batch, AMP overflow; lower the learning rate or clip gradients and --resume."
        )


class StopOnNonFiniteLoss:
    """Raise :class:`NonFiniteLossError` on the first NaN/Inf training loss, naming the iteration.

    Args:
        output_key: key of the loss in ``engine.state.output`` (MONAI's ``"loss"``); a tensor output is the loss.

    Attach to the trainer (a bundle lists it in ``train_handlers``)::

        StopOnNonFiniteLoss().attach(trainer)
    """

    def __init__(self, output_key: str = CommonKeys.LOSS) -> None:
        self.output_key = output_key

    def attach(self, engine: Engine) -> None:
        # MONAI workflows register IterationEvents; an iteration function that never fires LOSS_COMPLETED (or a
        # plain Ignite engine) is still caught after the step, on ITERATION_COMPLETED, and the message says so
        if isinstance(engine, Workflow) and not engine.has_event_handler(self.check, IterationEvents.LOSS_COMPLETED):
            engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self.check, True)
        if not engine.has_event_handler(self.check, Events.ITERATION_COMPLETED):
            engine.add_event_handler(Events.ITERATION_COMPLETED, self.check, False)

    def check(self, engine: Engine, before_step: bool) -> None:
        """Raise :class:`NonFiniteLossError` if the loss in ``engine.state.output`` is not finite."""
        output = engine.state.output
        if isinstance(output, (list, tuple)) and output and isinstance(output[0], dict):
            output = output[0]  # decollated batch: MONAI copies the batch loss into every item
        loss = output.get(self.output_key) if isinstance(output, dict) else output
        if loss is None:
            return
        value = loss.detach() if isinstance(loss, torch.Tensor) else torch.as_tensor(loss)
        if not _any_rank(not bool(torch.isfinite(value).all()), value.device):
            return
        state = engine.state
        batch = (state.iteration - 1) % state.epoch_length + 1 if state.epoch_length else state.iteration
        shown = value.item() if value.numel() == 1 else math.nan
        raise NonFiniteLossError(state.epoch, state.iteration, batch, shown, before_step)


def _any_rank(flag: bool, device: torch.device) -> bool:
    """``flag`` or-ed over all ranks of an initialised process group (itself without one).

    Under DDP a NaN on one rank reaches every rank through the gradient all-reduce; a rank that stopped alone would
    leave the others waiting in that all-reduce until the process group's timeout. Agreeing first makes all stop.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    if dist.get_backend() == "nccl" and device.type != "cuda":  # nccl reduces CUDA tensors only
        device = torch.device("cuda", torch.cuda.current_device())
    verdict = torch.tensor([float(flag)], device=device)
    dist.all_reduce(verdict, op=dist.ReduceOp.MAX)
    return bool(verdict.item())
