"""StopOnNonFiniteLoss reads the loss from every output shape MONAI trainers produce."""

import math

import pytest
import torch
from ignite.engine import Engine

from monai_xattn.engines.guards import NonFiniteLossError, StopOnNonFiniteLoss


@pytest.mark.parametrize(
    "output",
    [
        {"loss": torch.tensor(math.nan)},  # decollate=False
        [{"loss": torch.tensor(math.nan), "pred": 0}, {"loss": torch.tensor(math.nan), "pred": 1}],  # decollated
        torch.tensor(math.inf),  # plain Ignite engine returning the loss
    ],
)
def test_non_finite_loss_is_caught_whatever_the_output_shape(output):
    engine = Engine(lambda engine, batch: output)
    StopOnNonFiniteLoss().attach(engine)
    with pytest.raises(NonFiniteLossError, match="iteration 1"):
        engine.run([0, 1], max_epochs=1)


def test_finite_decollated_loss_passes():
    engine = Engine(lambda engine, batch: [{"loss": torch.tensor(0.5)}])
    StopOnNonFiniteLoss().attach(engine)
    engine.run([0, 1], max_epochs=1)
    assert engine.state.iteration == 2
