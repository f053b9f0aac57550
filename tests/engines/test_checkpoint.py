"""Atomic last/best checkpoints and resuming a MONAI SupervisedTrainer from the last one."""

from __future__ import annotations

import pytest
import torch
from ignite.metrics import MeanSquaredError
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import LrScheduleHandler, ValidationHandler, from_engine
from torch import nn

from monai_xattn.engines import AtomicCheckpointSaver, ResumeCheckpointLoader


def _data(seed: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(12, 1, generator=g)
    return [{"image": x[i : i + 4], "label": y[i : i + 4]} for i in range(0, 12, 4)]


def _run(ckpt_dir, max_epochs: int, resume: bool):
    """A tiny regression run wired like a bundle: best saver on the evaluator, last saver on the trainer."""
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=_data(1),
        network=net,
        decollate=False,
        key_val_metric={"val_mse": MeanSquaredError(output_transform=from_engine(["pred", "label"]))},
    )
    best = AtomicCheckpointSaver(
        str(ckpt_dir),
        {"network": net},
        save_key_metric=True,
        key_metric_name="val_mse",
        key_metric_negative_sign=True,
        save_interval=0,
    )
    best.attach(evaluator)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=_data(0),
        network=net,
        optimizer=opt,
        loss_function=nn.MSELoss(),
        decollate=False,
    )
    state = {"network": net, "optimizer": opt, "lr_scheduler": sched, "trainer": trainer, "best_saver": best}
    ResumeCheckpointLoader(ckpt_dir / "last.pt", state, enabled=resume).attach(trainer)
    LrScheduleHandler(sched, print_lr=False).attach(trainer)
    ValidationHandler(interval=1, validator=evaluator).attach(trainer)
    AtomicCheckpointSaver(str(ckpt_dir), state).attach(trainer)
    trainer.run()
    return trainer, net, opt, best


def test_resume_continues_exactly(tmp_path):
    straight, net_a, opt_a, _ = _run(tmp_path / "a", max_epochs=3, resume=False)

    # resume=True on an empty folder starts from scratch
    first, _, _, _ = _run(tmp_path / "b", max_epochs=2, resume=True)
    assert first.state.epoch == 2
    resumed, net_b, opt_b, best = _run(tmp_path / "b", max_epochs=3, resume=True)
    assert resumed.state.epoch == 3 and resumed.state.iteration == straight.state.iteration == 9
    # same weights, momentum buffers and learning rate as an uninterrupted run
    torch.testing.assert_close(net_b.state_dict(), net_a.state_dict())
    torch.testing.assert_close(opt_b.state_dict()["state"], opt_a.state_dict()["state"])
    assert opt_b.param_groups[0]["lr"] == pytest.approx(opt_a.param_groups[0]["lr"])
    # the best-score record survived the restart
    assert best.state_dict()["_saved"]

    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == ["best.pt", "last.pt"]
    last = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert last["trainer"]["iteration"] == 9 and {"optimizer", "lr_scheduler", "best_saver"} <= set(last)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    _run(tmp_path, max_epochs=1, resume=False)
    before = (tmp_path / "last.pt").read_bytes()
    real_save = torch.save

    def crash(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(1)}, f)
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, max_epochs=2, resume=True)
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / "last.pt").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary file left behind
