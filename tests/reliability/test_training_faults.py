"""Training faults: a NaN loss stops before it reaches the weights; SIGKILL mid-epoch, then --resume, finishes
with the weights of an uninterrupted run."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine, Events
from monai.engines import SupervisedTrainer
from torch import nn

from monai_xattn.engines import AtomicCheckpointSaver
from monai_xattn.engines.guards import NonFiniteLossError, SeedEachEpoch, StopOnNonFiniteLoss

TRAIN_SCRIPT = Path(__file__).with_name("train_tiny_detector.py")


def _batches(nan_at: int | None) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(3):
        x = torch.randn(4, 3, generator=g)
        batches.append({"image": x, "label": x.sum(1, keepdim=True)})
    if nan_at is not None:
        batches[nan_at - 1]["image"][1, 0] = float("nan")
    return batches


def _trainer(tmp_path: Path, guard: bool, nan_batch: int | None, epochs: int = 2):
    """3 batches per epoch; batch ``nan_batch`` holds a NaN from epoch 2 on (epoch 1 checkpoints cleanly)."""
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    clean, poisoned = _batches(None), _batches(nan_batch)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=clean,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.05),
        loss_function=nn.MSELoss(),
        decollate=False,
    )

    @trainer.on(Events.EPOCH_COMPLETED)
    def poison(engine):
        engine.set_data(poisoned)

    if guard:
        StopOnNonFiniteLoss().attach(trainer)
    AtomicCheckpointSaver(str(tmp_path), {"network": net, "trainer": trainer}).attach(trainer)
    weights = {}

    @trainer.on(Events.ITERATION_COMPLETED)
    def record(engine):
        weights[engine.state.iteration] = {k: v.clone() for k, v in net.state_dict().items()}

    return trainer, net, weights


def test_nan_loss_stops_before_the_optimizer_step(tmp_path):
    trainer, net, weights = _trainer(tmp_path, guard=True, nan_batch=2)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss nan at iteration 5 \(epoch 2, batch 2 of the ep"):
        trainer.run()
    # the poisoned step never happened: the weights are those after iteration 4, all finite
    assert sorted(weights) == [1, 2, 3, 4]
    torch.testing.assert_close(net.state_dict(), weights[4], rtol=0, atol=0)
    # and the checkpoint on disk is epoch 1's, intact
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["trainer"]["iteration"] == 3
    torch.testing.assert_close(saved["network"], weights[3], rtol=0, atol=0)


def test_without_the_guard_nan_reaches_the_weights(tmp_path):
    # what the guard prevents (so the test above would fail if the guard stopped working)
    trainer, net, _ = _trainer(tmp_path, guard=False, nan_batch=2)
    trainer.run()
    assert not all(torch.isfinite(v).all() for v in net.state_dict().values())


def test_guard_on_a_plain_ignite_engine_checks_after_the_step():
    losses = iter([1.0, float("inf")])
    engine = Engine(lambda e, b: {"loss": torch.tensor(next(losses))})
    StopOnNonFiniteLoss().attach(engine)
    with pytest.raises(NonFiniteLossError, match=r"loss inf at iteration 2 \(epoch 1, batch 2 .*after the optimizer"):
        engine.run([0, 1, 2], max_epochs=1)


def test_guard_catches_an_iteration_that_fires_no_loss_event():
    net = nn.Linear(3, 1)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=_batches(None),
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=nn.MSELoss(),
        iteration_update=lambda engine, batch: {"loss": torch.tensor(float("nan"))},  # a custom step, no events
        decollate=False,
    )
    StopOnNonFiniteLoss().attach(trainer)
    with pytest.raises(NonFiniteLossError, match=r"iteration 1 \(epoch 1, batch 1 .*after the optimizer step"):
        trainer.run()


def test_seed_each_epoch_replays_the_random_stream():
    draws = {}
    engine = Engine(lambda e, b: draws.setdefault((e.state.epoch, e.state.iteration), torch.rand(1).item()))
    SeedEachEpoch(7).attach(engine)
    engine.run([0, 1], max_epochs=3)
    later = Engine(lambda e, b: draws.setdefault(("again", e.state.epoch), torch.rand(1).item()))
    SeedEachEpoch(7).attach(later)

    @later.on(Events.STARTED)
    def resume_at_epoch_2(e):  # what ResumeCheckpointLoader does to the engine state
        e.state.epoch, e.state.iteration = 2, 4

    torch.manual_seed(12345)  # whatever the global state before, epoch 3 draws the same numbers
    later.run([0, 1], max_epochs=3)
    assert draws[("again", 3)] == draws[(3, 5)]
    assert draws[(3, 5)] != draws[(2, 3)]


def _train(out: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, str(TRAIN_SCRIPT), str(out), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _train_here(out: Path) -> str:
    """The same script run in this process (it is already past the slow imports); global torch state restored."""
    spec = importlib.util.spec_from_file_location("train_tiny_detector", TRAIN_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            assert script.main([str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return printed.getvalue()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    # 2 epochs x 4 iterations: one run killed after iteration 6 (mid epoch 2), one uninterrupted beside it
    killed = _train(tmp_path / "killed", "--kill-at", "6")
    assert "finished at epoch 2, iteration 8" in _train_here(tmp_path / "straight")
    rc, out, err = _finish(killed)
    assert rc == -signal.SIGKILL and "killing at iteration 6" in out, err[-3000:]
    at_kill = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert at_kill["trainer"]["iteration"] == 4  # the epoch-1 checkpoint survived the kill

    rc, out, err = _finish(_train(tmp_path / "killed", "--resume"))
    assert rc == 0, err[-3000:]
    assert "finished at epoch 2, iteration 8" in out

    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert a["trainer"] == b["trainer"]
    # deterministic CPU training: bit-identical weights and optimizer state, not merely close ones
    torch.testing.assert_close(b["network"], a["network"], rtol=0, atol=0)
    torch.testing.assert_close(b["optimizer"]["state"], a["optimizer"]["state"], rtol=0, atol=0)
    assert any(not torch.equal(a["network"][k], at_kill["network"][k]) for k in a["network"])  # epoch 2 did train
