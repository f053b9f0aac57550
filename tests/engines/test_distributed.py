"""Multi-process behaviour shared by the multi_gpu overlays: which handlers each rank runs, NaN stop on all ranks."""

import math
import os
import socket
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ignite.engine import Engine
from monai.handlers import StatsHandler, ValidationHandler

from monai_xattn.engines import AtomicCheckpointSaver, ResumeCheckpointLoader, handlers_for_rank, shutdown_distributed
from monai_xattn.engines.guards import NonFiniteLossError, SeedEachEpoch, StopOnNonFiniteLoss


def test_handlers_for_rank_keeps_collective_handlers_and_drops_writers_off_rank0(tmp_path):
    net = torch.nn.Linear(1, 1)
    handlers = [
        ResumeCheckpointLoader(str(tmp_path), {"net": net}),
        ValidationHandler(1, validator=None),
        StatsHandler(),
        AtomicCheckpointSaver(str(tmp_path), {"net": net}, save_final=True),
        StopOnNonFiniteLoss(),
        SeedEachEpoch(0),
    ]
    assert handlers_for_rank(handlers, rank=0) == handlers
    kept = handlers_for_rank(handlers, rank=1)
    assert [type(h) for h in kept] == [ResumeCheckpointLoader, ValidationHandler, StopOnNonFiniteLoss, SeedEachEpoch]
    assert handlers_for_rank(None, rank=1) == []
    assert handlers_for_rank(handlers) == handlers  # no process group: this process is rank 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nan_on_rank1(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    # a short timeout turns a regression (rank 0 blocked in a collective) into a failure instead of a hang
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    bad_iteration = 3 if rank == 1 else -1

    def step(engine, batch):
        return {"loss": torch.tensor(math.nan if engine.state.iteration == bad_iteration else 1.0)}

    engine = Engine(step)
    StopOnNonFiniteLoss().attach(engine)
    try:
        engine.run(range(10), max_epochs=1)
        results[rank] = "finished"
    except NonFiniteLossError as e:
        results[rank] = f"stopped at {e.iteration}"
    shutdown_distributed()


def test_nan_on_one_rank_stops_every_rank_at_the_same_iteration():
    results = mp.Manager().dict()
    mp.spawn(_nan_on_rank1, args=(_free_port(), results), nprocs=2, join=True)
    # rank 0 saw only finite losses; without agreement it would run on and block in the next all-reduce
    assert dict(results) == {0: "stopped at 3", 1: "stopped at 3"}
