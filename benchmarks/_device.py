"""Timing and memory helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

import resource

import torch

__all__ = ["sync", "peak_mb"]


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mb(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA, else the process's peak RSS, in MiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
