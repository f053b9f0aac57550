"""Speed of :func:`monai_xattn.metrics.kaggle_dice` against MONAI's ``DiceMetric`` (same values).

Run: ``python benchmarks/kaggle_dice.py [--batch 64] [--size 256] [--repeat 5]``.

- ``reference``: ``monai.metrics.DiceMetric(include_background=True, ignore_empty=False, reduction="none")``,
  which computes each image and channel in a Python loop (``DiceHelper.compute_channel``).
- ``ours``: ``kaggle_dice``: three sums over the spatial axes for the whole batch, one ``torch.where``.

Prints batches/s, the ratio ours/reference measured in this run (> 1 = ours faster), the largest difference of
the two results, and the memory of each in a separate run: the peak on a GPU (``torch.cuda.max_memory_allocated``);
on a CPU, where ``tracemalloc`` does not see torch's allocator, the bytes torch's ops allocate in total
(``torch.profiler``, ``profile_memory=True``). Half the images have an empty ground truth, as on SIIM.
"""

from __future__ import annotations

import argparse
import time

import torch
from monai.metrics import DiceMetric

from monai_xattn.metrics import kaggle_dice


def make_batch(batch: int, size: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gt = (torch.rand(batch, 1, size, size, generator=g) > 0.9).float()
    gt[: batch // 2] = 0
    pred = (torch.rand(batch, 1, size, size, generator=g) > 0.9).float()
    pred[: batch // 4] = 0
    return pred.to(device), gt.to(device)


def _time(fn, repeat: int, device: torch.device) -> float:
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeat


def _peak(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated(device) / 2**20
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return sum(max(e.self_cpu_memory_usage, 0) for e in prof.key_averages()) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    pred, gt = make_batch(args.batch, args.size, device)
    reference = DiceMetric(include_background=True, ignore_empty=False, reduction="none")

    def ref() -> torch.Tensor:
        return reference(pred, gt)

    def ours() -> torch.Tensor:
        return kaggle_dice(pred, gt)

    diff = float((ref().float() - ours()).abs().max())
    t_ref, t_ours = _time(ref, args.repeat, device), _time(ours, args.repeat, device)
    m_ref, m_ours = _peak(ref, device), _peak(ours, device)
    kind = "peak" if device.type == "cuda" else "allocated"
    print(f"device {device}, batch {args.batch} x 1 x {args.size}^2, max |difference| {diff:.2e}")
    print(f"reference (DiceMetric): {1 / t_ref:8.1f} batches/s, {kind} {m_ref:7.2f} MiB")
    print(f"ours (kaggle_dice):     {1 / t_ours:8.1f} batches/s, {kind} {m_ours:7.2f} MiB")
    print(f"ratio ours/reference:   {t_ref / t_ours:8.2f}x")


if __name__ == "__main__":
    main()
