"""Timing and memory helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

import argparse
import resource
import time
from collections.abc import Callable

import torch

__all__ = ["sync", "timed", "peak_mb", "detector_parser", "synthetic_detection_batch"]


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of one ``fn()`` call, GPU work included (synchronised before and after)."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def peak_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak RSS, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def detector_parser(description: str) -> argparse.ArgumentParser:
    """Arguments shared by the detector benchmarks (network size, batch, repeats, device, threads)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--n-rois", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    return parser


def synthetic_detection_batch(
    batch: int, size: int, generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """Random ``(B, 1, size, size)`` images and two random boxes per image, in RetinaNetDetector's target format."""
    images = torch.rand(batch, 1, size, size, generator=generator).to(device)
    targets = []
    for _ in range(batch):
        lo = torch.rand(2, 2, generator=generator) * size * 0.6
        wh = torch.rand(2, 2, generator=generator) * size * 0.3 + 16
        boxes = torch.cat([lo, lo + wh], 1).to(device)
        targets.append({"boxes": boxes, "labels": torch.zeros(2, dtype=torch.long, device=device)})
    return images, targets
