"""Speed and memory of ``LoadCXRd`` against a bare pydicom read, and of cached second epochs.

Run: ``python benchmarks/load_cxr.py`` (defaults: 16 synthetic 1024 x 1024 12-bit MONOCHROME1 DICOMs with a VOI
window, written by ``monai_xattn.data.dicom_writer`` into a temporary folder that is removed afterwards).

1. Loading: images/s of ``LoadCXRd`` (modality LUT -> VOI -> MONOCHROME1 inversion -> float32 ``(1, W, H)``
   MetaTensor with meta) against ``pydicom.dcmread(f).pixel_array`` + numpy min-max scaling to float32 (no VOI,
   no inversion, no meta: the naive read a correct loader is measured against). Variants: a LINEAR window (the
   in-place float32 path), a SIGMOID window and a VOI LUT sequence (both the per-value table path). The two
   readers alternate over the same files, ``--repeat`` passes each; the median pass counts. Peak memory is the
   ``tracemalloc`` peak of one image's load (numpy's allocations; torch only wraps the numpy buffer).
   Target (issue 20): ratio (ours / naive images/s) >= 0.85. ``ratio (W, H)`` compares with the naive read followed by the
   transposition to MONAI's ``(W, H)`` frame that LoadCXR's output includes (as a contiguous tensor: torch
   kernels downstream run several times slower on a transposed view).
2. Caching: ``monai.data.PersistentDataset`` and ``CacheDataset`` epoch 2 (best of 3) vs epoch 1, for
   ``LoadCXRd`` alone and for the detection evaluation pipeline (load, resize to 256, z-score); each epoch sums
   every image so cached pixels are really read. Target: cached epoch >= 5x faster.

Loading runs with one torch thread (``--threads``), as it does in ``DataLoader`` workers, which PyTorch sets to one
thread each. Every ratio printed compares numbers measured in this same run, on this machine.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import torch
from monai.data import CacheDataset, Dataset, PersistentDataset

from monai_xattn.data.dicom_writer import write_cxr_dicom
from monai_xattn.transforms import LoadCXRd, detection_eval_transforms


def naive_read(path: str) -> np.ndarray:
    """The reference: raw stored values, min-max scaled, nothing else."""
    x = pydicom.dcmread(path).pixel_array.astype(np.float32)
    x -= x.min()
    x /= max(float(x.max()), 1.0)
    return x


def synthetic_image(seed: int, size: int) -> np.ndarray:
    """A smooth 12-bit 'chest' (two darker lung fields on a brighter body) plus detector noise, (rows, cols)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    body = 2600 - 1800 * np.exp(-(((xx - 0.32) / 0.14) ** 2 + ((yy - 0.5) / 0.3) ** 2))
    body -= 1800 * np.exp(-(((xx - 0.68) / 0.14) ** 2 + ((yy - 0.5) / 0.3) ** 2))
    return np.clip(body + rng.normal(0, 60, body.shape), 0, 4095).astype(np.uint16)


def write_files(folder: Path, n: int, size: int, variant: str) -> list[str]:
    kwargs: dict = {"photometric": "MONOCHROME1", "bits_stored": 12, "imager_pixel_spacing": (0.139, 0.139)}
    if variant == "linear":
        kwargs.update(window=([2048.0], [4096.0]))
    elif variant == "sigmoid":
        kwargs.update(window=([2048.0], [4096.0]), voi_lut_function="SIGMOID")
    elif variant == "voi_lut":
        kwargs.update(voi_lut=(0, 16, (np.sqrt(np.arange(4096) / 4095.0) * 65535).astype(np.uint16)))
    return [
        str(write_cxr_dicom(folder / variant / f"{i:03d}.dcm", synthetic_image(i, size), patient_id=f"p{i}", **kwargs))
        for i in range(n)
    ]


def per_image_seconds(fn: Callable[[str], object], path: str) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one call (CPU time is far less disturbed by other processes' load)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(path)
    return time.perf_counter() - wall, time.process_time() - cpu


def peak_bytes(fn: Callable[[str], object], path: str) -> int:
    fn(path)  # warm imports and caches outside the measurement
    tracemalloc.start()
    result = fn(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak


def naive_read_whc(path: str) -> torch.Tensor:
    """The reference brought to the layout LoadCXR returns: contiguous ``(W, H)`` (MONAI's frame)."""
    return torch.from_numpy(naive_read(path)).T.contiguous()


def bench_loading(folder: Path, n: int, size: int, repeat: int) -> None:
    loader = LoadCXRd("image")

    def ours(path: str) -> object:
        return loader({"image": path})["image"]

    readers = {"naive": naive_read, "naive (W, H)": naive_read_whc, "LoadCXRd": ours}
    print(f"## loading: {n} DICOMs, {size} x {size}, 12-bit MONOCHROME1, median over {repeat} passes")
    print(
        f"{'variant':<9} {'clock':<5} "
        + " ".join(f"{name + ' img/s':>18}" for name in readers)
        + f" {'ratio':>6} {'ratio (W, H)':>13}"
    )
    for variant in ("linear", "sigmoid", "voi_lut"):
        files = write_files(folder, n, size, variant)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in readers}
        for fn in readers.values():
            fn(files[0])
        for _ in range(repeat):
            for f in files:  # alternate image by image, so that load from other processes hits all alike
                for name, fn in readers.items():
                    times[name].append(per_image_seconds(fn, f))
        for clock, column in (("wall", 0), ("cpu", 1)):
            ips = {name: 1 / float(np.median([t[column] for t in ts])) for name, ts in times.items()}
            print(
                f"{variant:<9} {clock:<5} "
                + " ".join(f"{ips[name]:>18.1f}" for name in readers)
                + f" {ips['LoadCXRd'] / ips['naive']:>6.2f} {ips['LoadCXRd'] / ips['naive (W, H)']:>13.2f}"
            )
    files = write_files(folder, 1, size, "linear")
    print(
        f"peak memory per image (tracemalloc): naive {peak_bytes(naive_read, files[0]) / 2**20:.1f} MB, "
        f"LoadCXRd {peak_bytes(ours, files[0]) / 2**20:.1f} MB"
    )


def epoch(dataset: Dataset) -> float:
    start = time.perf_counter()
    for i in range(len(dataset)):
        float(torch.as_tensor(dataset[i]["image"]).sum())  # touch the pixels: a lazily loaded cache must be read
    return time.perf_counter() - start


def bench_caching(folder: Path, n: int, size: int) -> None:
    files = write_files(folder, n, size, "linear")
    data = [{"image": f} for f in files]
    pipelines = {
        "LoadCXRd": LoadCXRd("image"),
        "eval pipeline (256)": detection_eval_transforms(size=256),
    }
    print(f"\n## caching: {n} DICOMs, epoch 2 vs epoch 1 (single process)")
    print(f"{'pipeline':<22} {'dataset':<18} {'epoch 1 s':>10} {'epoch 2 s':>10} {'speed-up':>9} {'cache MB':>9}")
    for name, transform in pipelines.items():
        cache_dir = folder / f"cache_{len(name)}"
        # MONAI's defaults (track_meta=False, weights_only=True); see docs/loading.md on keeping the meta
        persistent = PersistentDataset(data, transform, cache_dir=cache_dir)
        first, second = epoch(persistent), min(epoch(persistent) for _ in range(3))
        size_mb = sum(p.stat().st_size for p in cache_dir.glob("*")) / 2**20
        print(
            f"{name:<22} {'PersistentDataset':<18} {first:>10.3f} {second:>10.3f} {first / second:>8.1f}x {size_mb:>9.1f}"
        )
        start = time.perf_counter()
        cached = CacheDataset(data, transform, cache_rate=1.0, num_workers=0, progress=False)
        first = time.perf_counter() - start + epoch(cached)  # epoch 1 = filling the cache + one pass
        second = min(epoch(cached) for _ in range(3))
        print(f"{name:<22} {'CacheDataset':<18} {first:>10.3f} {second:>10.3f} {first / second:>8.1f}x {'(RAM)':>9}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="number of files per variant")
    parser.add_argument("--size", type=int, default=1024, help="image side in pixels")
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per reader")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1, as in DataLoader workers, where loading runs)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp(prefix="load_cxr_bench_"))
    try:
        bench_loading(folder, args.n, args.size, args.repeat)
        bench_caching(folder, args.n, args.size)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
