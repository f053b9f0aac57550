"""Checkpoint safety: atomic writes under SIGKILL, weights_only loading, readable mismatch errors."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ignite.engine import Engine
from torch import nn

from monai_xattn.engines import AtomicDiskSaver, ResumeCheckpointLoader
from monai_xattn.engines.checkpoint import CheckedCheckpointLoader, CheckpointMismatchError, describe_mismatch

PACKAGE = Path(__file__).resolve().parents[2] / "monai_xattn"

# saves `last.pt` each step; during the third save it writes part of the file and SIGKILLs itself, as a power cut or
# the OOM killer would, before the atomic rename
_SAVER = """
import os, signal, sys, torch
real_save = torch.save

def save(obj, f, *args, **kwargs):
    if int(obj["step"]) == 3:
        f.write(b"PK\\x03\\x04 half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real_save(obj, f, *args, **kwargs)

torch.save = save
from monai_xattn.engines import AtomicDiskSaver
saver = AtomicDiskSaver(sys.argv[1], "last.pt")
for step in range(1, 5):
    saver({"step": torch.tensor(step), "data": torch.full((256, 256), float(step))}, "ignored.pt")
"""


def _engine() -> Engine:
    return Engine(lambda engine, batch: None)


def test_sigkill_during_a_save_leaves_the_previous_checkpoint(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _SAVER, str(tmp_path)], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert int(state["step"]) == 2 and torch.equal(state["data"], torch.full((256, 256), 2.0))
    # the torn write is a temporary file beside it, never last.pt itself
    leftovers = [p for p in tmp_path.iterdir() if p.name != "last.pt"]
    assert len(leftovers) == 1 and b"half a checkpoint" in leftovers[0].read_bytes()


def test_fixed_name_saver_never_removes_the_last_checkpoint_first(tmp_path):
    # Ignite calls remove(old) before saving the new file; under a fixed name that would leave no checkpoint
    saver = AtomicDiskSaver(tmp_path, "last.pt")
    saver({"a": torch.ones(1)}, "checkpoint_1.pt")
    saver.remove("last.pt")
    assert torch.load(tmp_path / "last.pt", weights_only=True)["a"].item() == 1.0


class _Payload:
    """An object whose unpickling runs code (touches a file): what ``weights_only=True`` exists to refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_refuses_pickled_code(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"network": nn.Linear(2, 1).state_dict(), "extra": _Payload(marker)}, tmp_path / "last.pt")
    loader = ResumeCheckpointLoader(tmp_path / "last.pt", {"network": nn.Linear(2, 1)})
    with pytest.raises(CheckpointMismatchError, match=r"last\.pt: refused by torch\.load\(weights_only=True\)"):
        loader(_engine())
    assert not marker.exists()


def test_checkpoint_from_another_model_names_the_keys(tmp_path):
    engine = _engine()
    other = nn.Linear(3, 2)
    opt = torch.optim.SGD(other.parameters(), lr=0.1)
    torch.save(
        {"network": other.state_dict(), "optimizer": opt.state_dict(), "trainer": engine.state_dict()},
        tmp_path / "last.pt",
    )
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    state = {"network": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1), "trainer": engine}
    with pytest.raises(CheckpointMismatchError) as err:
        ResumeCheckpointLoader(tmp_path / "last.pt", state)(engine)
    message = str(err.value)
    assert str(tmp_path / "last.pt") in message and "'network' was written by another network" in message
    assert "4 missing keys (0.weight, 0.bias, 2.weight, ...)" in message
    assert "2 unexpected keys (weight, bias)" in message
    assert len(message) < 400  # a summary, not torch's list of every key


def test_checkpoint_of_another_configuration_names_the_missing_entries(tmp_path):
    torch.save({"network": nn.Linear(3, 2).state_dict()}, tmp_path / "last.pt")
    engine = _engine()
    net = nn.Linear(3, 2)
    state = {"network": net, "optimizer": torch.optim.SGD(net.parameters(), lr=0.1), "trainer": engine}
    with pytest.raises(
        CheckpointMismatchError, match=r"holds \['network'\], .* \(missing \['optimizer', 'trainer'\]\)"
    ):
        ResumeCheckpointLoader(tmp_path / "last.pt", state)(engine)


def test_shape_mismatch_and_torn_file(tmp_path):
    torch.save({"network": nn.Linear(3, 5).state_dict()}, tmp_path / "wide.pt")
    with pytest.raises(CheckpointMismatchError, match=r"2 shape mismatches \(weight \(5, 3\) vs \(2, 3\)"):
        ResumeCheckpointLoader(tmp_path / "wide.pt", {"network": nn.Linear(3, 2)})(_engine())
    raw = (tmp_path / "wide.pt").read_bytes()
    (tmp_path / "torn.pt").write_bytes(raw[: len(raw) // 2])  # what a non-atomic write killed midway leaves
    with pytest.raises(
        CheckpointMismatchError,
        match=r"torn\.pt: cannot resume from it: not a readable training checkpoint \(RuntimeError: PytorchStreamReader",
    ):
        ResumeCheckpointLoader(tmp_path / "torn.pt", {"network": nn.Linear(3, 5)})(_engine())


def test_evaluation_loader_names_the_file_and_the_keys(tmp_path):
    # evaluate/inference load a plain network state dict; MONAI's loader lists every key and names no file
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "model.pt")
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(CheckpointMismatchError, match=r"model\.pt: cannot load it: 'network' was written by another"):
        CheckedCheckpointLoader(tmp_path / "model.pt", {"network": net})(_engine())
    with pytest.raises(CheckpointMismatchError, match=r"absent\.pt: no such checkpoint file"):
        CheckedCheckpointLoader(tmp_path / "absent.pt", {"network": net})(_engine())
    CheckedCheckpointLoader(tmp_path / "model.pt", {"network": nn.Linear(3, 2)})(_engine())  # the right one loads


def test_describe_mismatch_on_a_match():
    net = nn.Linear(2, 2)
    assert describe_mismatch(net, net.state_dict()) == "keys and shapes match"


def _torch_load_calls(path: Path) -> list[tuple[int, bool]]:
    """``(line, passes weights_only=True)`` for each ``torch.load(...)`` call in a source file."""
    calls = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
            safe = any(k.arg == "weights_only" and ast.unparse(k.value) == "True" for k in node.keywords)
            calls.append((node.lineno, safe))
    return calls


def test_every_torch_load_in_the_package_is_weights_only():
    calls = {str(p.relative_to(PACKAGE)): _torch_load_calls(p) for p in sorted(PACKAGE.rglob("*.py"))}
    unsafe = [f"{name}:{line}" for name, found in calls.items() for line, safe in found if not safe]
    assert sum(len(c) for c in calls.values()) >= 2  # the scan does see the package's loads
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"
    # one checkpoint reader: every other module reads weight files through monai_xattn.utils.checkpoints
    assert {name for name, found in calls.items() if found} == {"utils/checkpoints.py"}
