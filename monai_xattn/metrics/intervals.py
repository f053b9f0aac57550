"""Confidence intervals of localization accuracy: a bootstrap over images, pooled over training seeds.

Table 1 of Bhalodia et al. reports one number per cell. With a few hundred test images one image moves a cell by
0.3-0.7 points, and one training seed says nothing about the spread between runs, so every cell here is the mean
over seeds and images with a percentile interval from resampling the images (each resampled image keeps its
result under every seed), and two methods are compared on the same resampled images (a paired difference).

The per-image input is each image's top-1 overlap (:func:`monai_xattn.metrics.localization.top1_overlap`), as the
evaluation bundles' ``MetricsSaver`` writes it (``val_acc_iou25_raw.csv``: one row per image, ``nan`` for an image
without a ground-truth box); :func:`read_top1_overlaps` reads it back.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["read_top1_overlaps", "align_runs", "bootstrap_accuracy", "paired_difference", "format_interval"]


def read_top1_overlaps(path: str | Path) -> dict[str, float]:
    """Image -> top-1 overlap from a ``MetricsSaver`` details file; images without a ground-truth box are left out.

    Raises:
        FileNotFoundError: naming the file.
        ValueError: a row without a value, naming the file and the row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no per-image results (the evaluation's MetricsSaver metric_details)")
    out = {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader, None)  # header: filename, class0, mean
        for k, row in enumerate(reader, 2):
            if len(row) < 2:
                raise ValueError(f"{path}, row {k}: expected 'filename,value', got {row}")
            value = float(row[1])
            if not math.isnan(value):
                out[row[0]] = value
    return out


def align_runs(runs: Sequence[Mapping[str, float]]) -> tuple[list[str], np.ndarray]:
    """Stack per-image results of several runs (seeds) on the images all of them scored.

    Returns:
        ``(images, overlaps)``: the sorted common image names and a ``(S, N)`` array.

    Raises:
        ValueError: no run, or no image common to every run.
    """
    if not runs:
        raise ValueError("no run to align")
    images = sorted(set.intersection(*(set(r) for r in runs)))
    if not images:
        raise ValueError("the runs share no image with a ground-truth box")
    return images, np.array([[r[i] for i in images] for r in runs], dtype=np.float64)


def _resample(n_images: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_images, size=(n_boot, n_images))


def _per_image_hits(overlaps: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """``(N, T)``: each image's hit rate at each threshold, averaged over the seeds of ``overlaps`` ``(S, N)``."""
    overlaps = np.atleast_2d(np.asarray(overlaps, dtype=np.float64))
    return (overlaps[..., None] >= np.asarray(thresholds, dtype=np.float64)).mean(axis=0)


def _summary(point: np.ndarray, boot: np.ndarray, thresholds: Sequence[float], level: float) -> dict:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    return {
        float(t): (float(p), float(lo), float(hi)) for t, p, lo, hi in zip(thresholds, point, low, high, strict=True)
    }


def bootstrap_accuracy(
    overlaps: np.ndarray,
    thresholds: Sequence[float] = (0.25, 0.5, 0.75),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[float, tuple[float, float, float]]:
    """Localization accuracy (IoU@t) with a bootstrap percentile interval over images, pooled over seeds.

    Args:
        overlaps: top-1 overlaps ``(S, N)`` (seeds x images, the same images in every row) or ``(N,)``.
        thresholds: overlap thresholds.
        n_boot: bootstrap resamples.
        level: interval coverage.
        seed: of the resampling.

    Returns:
        threshold -> ``(accuracy, low, high)``.
    """
    hits = _per_image_hits(overlaps, thresholds)
    boot = hits[_resample(len(hits), n_boot, seed)].mean(axis=1)  # (n_boot, T)
    return _summary(hits.mean(axis=0), boot, thresholds, level)


def paired_difference(
    overlaps_a: np.ndarray,
    overlaps_b: np.ndarray,
    thresholds: Sequence[float] = (0.25, 0.5, 0.75),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[float, tuple[float, float, float]]:
    """Accuracy of method A minus method B on the same images, with a paired bootstrap interval.

    Each method's seeds are pooled per image first, so A and B may have different numbers of seeds (a fixed
    detector against several head trainings); the images must be the same and in the same order.

    Args:
        overlaps_a, overlaps_b: ``(S_a, N)`` and ``(S_b, N)`` top-1 overlaps.

    Returns:
        threshold -> ``(difference, low, high)``; an interval that excludes 0 is a difference at that level.

    Raises:
        ValueError: the two hold different numbers of images.
    """
    hits_a, hits_b = _per_image_hits(overlaps_a, thresholds), _per_image_hits(overlaps_b, thresholds)
    if len(hits_a) != len(hits_b):
        raise ValueError(f"paired comparison needs the same images, got {len(hits_a)} and {len(hits_b)}")
    diff = hits_a - hits_b
    boot = diff[_resample(len(diff), n_boot, seed)].mean(axis=1)
    return _summary(diff.mean(axis=0), boot, thresholds, level)


def format_interval(value: tuple[float, float, float], digits: int = 3, signed: bool = False) -> str:
    """``0.412 [0.350, 0.471]``; ``signed`` writes the sign of every number (differences)."""
    spec = f"{'+' if signed else ''}.{digits}f"
    point, low, high = value
    return f"{point:{spec}} [{low:{spec}}, {high:{spec}}]"
