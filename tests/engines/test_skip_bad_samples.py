"""``skip_bad_samples``: a training sample that cannot be loaded is logged, counted and replaced by the next one;
the count reaches the trainer's metrics, also from loader workers and over DDP ranks; a bundle run with a corrupt
image stops naming it without the option and completes with it."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from ignite.engine import Engine, Events
from monai.data import CacheDataset, DataLoader, Dataset
from monai.transforms import Compose, Lambdad
from PIL import Image

from monai_xattn.engines import SkipBadSamples, SkippedSamplesHandler, TooManyBadSamplesError, skip_bad_samples
from monai_xattn.engines.bad_samples import data_error
from monai_xattn.transforms import CXRLoadError, LoadCXRd

CAM_BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "cxr_cam_baseline"


def _images(folder: Path, n: int, bad: tuple[int, ...] = ()) -> list[dict]:
    """``n`` 16 x 16 PNGs whose pixels all equal 10 x their index; the ones in ``bad`` cut to 40 bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.fromarray(np.full((16, 16), 10 * i, np.uint8)).save(path)
        if i in bad:
            path.write_bytes(path.read_bytes()[:40])
        entries.append({"image": str(path), "index": i})
    return entries


def _dataset(entries: list[dict]) -> Dataset:
    # the index travels with the sample, so a batch says which samples it holds
    return Dataset(entries, Compose([LoadCXRd(keys="image"), Lambdad("index", torch.as_tensor)]))


def test_a_bad_sample_is_replaced_by_the_next_loadable_one_logged_and_counted(tmp_path, caplog):
    entries = _images(tmp_path, 6, bad=(2, 5))
    with pytest.raises(RuntimeError) as plain:  # without the wrapper: MONAI's error, the file at its root
        _dataset(entries)[2]
    root = data_error(plain.value)
    assert isinstance(root, CXRLoadError) and root.path == entries[2]["image"]

    wrapped = SkipBadSamples(_dataset(entries), max_fraction=0.5)
    with caplog.at_level(logging.WARNING, logger="monai_xattn.engines.bad_samples"):
        got = [int(wrapped[i]["index"]) for i in range(len(wrapped))]
    assert got == [0, 1, 3, 3, 4, 0]  # the next loadable index, modulo the length
    assert len(wrapped) == 6 and wrapped.num_bad == 2 and wrapped.bad_indices() == [2, 5]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "sample #2 (" + entries[2]["image"] + ")" in warnings[0] and "CXRLoadError" in warnings[0]
    assert warnings[0].endswith(f"CXRLoadError: {root}") and "2 of 6 bad so far" in warnings[1]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="monai_xattn.engines.bad_samples"):
        assert int(wrapped[2]["index"]) == 3  # a known bad sample is not read (nor logged) again
    assert not caplog.records


def test_errors_that_are_not_bad_data_still_stop(tmp_path):
    def bug(x):
        raise TypeError("a bug in a transform, not a bad file")

    wrapped = SkipBadSamples(Dataset(_images(tmp_path, 3), Compose([LoadCXRd(keys="image"), Lambdad("image", bug)])))
    with pytest.raises(RuntimeError, match="applying transform") as err:
        wrapped[0]
    assert isinstance(err.value.__cause__, TypeError) and wrapped.num_bad == 0


def test_data_error_takes_the_first_data_error_of_the_chain():
    try:
        try:
            raise AttributeError("pydicom internals")
        except AttributeError as inner:
            raise CXRLoadError("a.dcm", "cannot decode") from inner
    except CXRLoadError as load:
        try:
            raise RuntimeError("applying transform LoadCXRd") from load
        except RuntimeError as outer:
            assert data_error(outer) is load  # not the decoder's AttributeError below it
            assert data_error(outer, (KeyError,)) is None


def test_every_sample_bad_or_too_many_bad_stop_naming_them(tmp_path):
    entries = _images(tmp_path / "all", 4, bad=(0, 1, 2, 3))
    with pytest.raises(TooManyBadSamplesError, match=r"all 4 training samples failed to load\. Bad samples: #0 \("):
        SkipBadSamples(_dataset(entries), max_fraction=1.0)[1]
    entries = _images(tmp_path / "some", 10, bad=(3, 7))
    wrapped = SkipBadSamples(_dataset(entries), max_fraction=0.1)
    assert int(wrapped[3]["index"]) == 4  # 1 of 10: allowed
    with pytest.raises(TooManyBadSamplesError, match=r"2 of 10 training samples .* max_fraction=0\.1") as err:
        wrapped[7]
    assert entries[3]["image"] in str(err.value) and entries[7]["image"] in str(err.value)
    assert int(SkipBadSamples(_dataset(entries), max_fraction=0.2)[7]["index"]) == 8
    with pytest.raises(ValueError, match="max_fraction"):
        SkipBadSamples(_dataset(entries), max_fraction=1.5)


def test_cache_dataset_skips_with_runtime_cache(tmp_path):
    entries = _images(tmp_path, 5, bad=(3,))
    transform = Compose([LoadCXRd(keys="image"), Lambdad("index", torch.as_tensor)])
    with pytest.raises(RuntimeError):  # caching at construction fails before any wrapper could see the sample
        CacheDataset(entries, transform, progress=False)
    cached = CacheDataset(entries, transform, progress=False, runtime_cache=True)  # what siim_unet switches to
    wrapped = SkipBadSamples(cached, max_fraction=0.2)
    assert [int(wrapped[i]["index"]) for i in range(5)] == [0, 1, 2, 4, 4] and wrapped.bad_indices() == [3]
    assert [item is not None for item in cached._cache] == [True, True, True, False, True]


def test_off_means_the_dataset_itself(tmp_path):
    dataset = _dataset(_images(tmp_path, 2))
    assert skip_bad_samples(dataset, enabled=False) is dataset
    assert isinstance(skip_bad_samples(dataset), SkipBadSamples)


def _epoch_with_handler(dataset, **loader_kwargs) -> tuple[list[list[int]], list[dict]]:
    """Two epochs over a DataLoader; returns the batches' sample indices and the metrics seen at EPOCH_COMPLETED by
    a handler attached *before* SkippedSamplesHandler (as the bundles' StatsHandler is)."""
    loader = DataLoader(dataset, batch_size=2, shuffle=False, **loader_kwargs)
    batches: list[list[int]] = []
    engine = Engine(lambda e, batch: batches.append(batch["index"].tolist()))
    engine.data_loader = loader  # as MONAI's workflows hold it
    seen: list[dict] = []
    engine.add_event_handler(Events.EPOCH_COMPLETED, lambda e: seen.append(dict(e.state.metrics)))
    handler = SkippedSamplesHandler()
    handler.attach(engine)
    handler.attach(engine)  # attaching twice registers it once
    assert sum(len(h) for h in engine._event_handlers.values()) == 2
    engine.run(loader, max_epochs=2)
    return batches, seen


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_count_from_two_loader_workers_reaches_the_metrics(tmp_path, context):
    wrapped = SkipBadSamples(_dataset(_images(tmp_path, 8, bad=(1, 6))), max_fraction=0.25)
    # persistent workers: the second epoch's samples come from the same processes, which must see their marks
    batches, seen = _epoch_with_handler(
        wrapped, num_workers=2, multiprocessing_context=context, persistent_workers=True
    )
    # batches keep their size; the bad samples were replaced by the next ones, the same in both epochs
    assert batches == [[0, 2], [2, 3], [4, 5], [7, 7]] * 2
    assert seen == [{"skipped_samples": 2}, {"skipped_samples": 2}]
    assert wrapped.bad_indices() == [1, 6]  # marked by the workers, read here


def test_handler_does_nothing_when_skipping_is_off(tmp_path):
    batches, seen = _epoch_with_handler(_dataset(_images(tmp_path, 4)))
    assert seen == [{}, {}] and len(batches) == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_marks_one(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    wrapped = SkipBadSamples(list(range(10)), max_fraction=0.5)
    wrapped.bad[3 + rank] = 1  # each rank met a different bad sample in its shard
    engine = Engine(lambda e, b: None)
    SkippedSamplesHandler(wrapped).attach(engine)
    engine.run(range(3), max_epochs=1)
    results[rank] = engine.state.metrics["skipped_samples"]
    dist.barrier()
    dist.destroy_process_group()


def test_the_count_is_the_union_over_ranks():
    results = mp.Manager().dict()
    mp.spawn(_rank_marks_one, args=(_free_port(), results), nprocs=2, join=True)
    assert dict(results) == {0: 2, 1: 2}


def _truncate_a_training_image(root: Path) -> tuple[Path, Path]:
    """A 16-study MIMIC-CXR phantom written into ``root`` (the bundle's default dataset_dir there) and its datalist;
    one training image that the bundle trains on is cut in half. Returns (datalist, broken file)."""
    from monai_xattn.data import build_mimic_cxr_datalist, write_datalist
    from monai_xattn.data.phantom import generate
    from monai_xattn.networks.classifier_cam import pneumonia_label_entries

    dataset_dir = root / "data" / "phantom_mimic-cxr"
    generate(dataset_dir, layout="mimic-cxr", n=16, size=64, seed=0, difficulty="easy", workers=1)
    datalist = root / "datalist.json"
    write_datalist(build_mimic_cxr_datalist(dataset_dir, views=["PA", "AP"], split_seed=0)[0], datalist)
    first = json.loads(datalist.read_text())["training"]
    trained = pneumonia_label_entries(first)
    broken = dataset_dir / trained[len(trained) // 2]["image"]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    return datalist, broken


def _run_cam_bundle(root: Path, datalist: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "['configs/train.json']"]
    cmd += ["--bundle_root", str(root), "--datalist_file", str(datalist), "--phantom_size", "64"]
    cmd += ["--image_size", "64", "--epochs", "1", "--progress", "False", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(cmd, cwd=CAM_BUNDLE, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_bundle_with_a_corrupt_image_stops_naming_it_or_skips_it_when_asked(tmp_path):
    datalist, broken = _truncate_a_training_image(tmp_path)
    stopped = _run_cam_bundle(tmp_path, datalist)
    log = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0 and f"{broken}: PixelData holds" in log, log[-3000:]
    assert not (tmp_path / "models" / "model.pt").exists()

    skipped = _run_cam_bundle(tmp_path, datalist, "--skip_bad_samples", "True")
    log = skipped.stdout + skipped.stderr
    assert skipped.returncode == 0, log[-3000:]
    assert (tmp_path / "models" / "model.pt").is_file()
    assert re.search(r"skipping training sample #\d+ \(" + re.escape(str(broken)) + r"\).*PixelData holds", log)
    # StatsHandler's epoch line carries the metric
    assert re.search(r"Epoch\[1\] Metrics -- skipped_samples: 1\.0000", log), log[-3000:]
