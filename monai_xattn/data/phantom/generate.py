"""``generate``: write phantom datasets, in parallel, byte-identically for a given seed."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

from monai_xattn.data.phantom.findings import DIFFICULTIES
from monai_xattn.data.phantom.layouts import LAYOUTS, write_study, write_tables

__all__ = ["LAYOUT_NAMES", "MANIFEST", "generate"]

LAYOUT_NAMES = tuple(LAYOUTS)
#: file marking a folder as phantom output; ``overwrite`` only ever deletes folders that hold it
MANIFEST = "phantom.json"


def _task(args: tuple) -> dict:
    return write_study(*args)


def _prepare(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{root} is not empty; pass overwrite=True (--overwrite) to replace a phantom there")
        if not (root / MANIFEST).is_file():
            raise FileExistsError(
                f"{root} is not empty and holds no {MANIFEST}: it was not written by the phantom, so it is left alone"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)


def generate(
    out_dir: str | os.PathLike,
    layout: str = "all",
    n: int = 100,
    size: int = 256,
    seed: int = 0,
    difficulty: str = "medium",
    overwrite: bool = False,
    workers: int | None = None,
) -> dict:
    """Write ``n`` synthetic studies per layout.

    Args:
        out_dir: output folder. For one layout it becomes the dataset root; for ``"all"`` it gets one sub-folder
            per layout, named as in :data:`LAYOUT_NAMES`.
        layout: a name of :data:`LAYOUT_NAMES` or ``"all"``.
        n: studies per layout (MIMIC layouts may hold two images per study: frontal + lateral).
        size: image side in pixels.
        seed: the same seed gives byte-identical files, whatever ``workers`` is.
        difficulty: ``easy``, ``medium`` or ``hard``.
        overwrite: replace an existing phantom in ``out_dir`` (a folder without the phantom's manifest is never
            deleted).
        workers: processes (default: CPU count; 1 runs in this process).

    Returns:
        ``{"layouts": {name: counts}, "seconds": float, ...}``, also written to ``out_dir/phantom.json``.

    Raises:
        ValueError: unknown layout or difficulty, ``n < 1``, ``size < 32``, a negative ``seed``.
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is not set (or it is not a phantom folder).
    """
    if layout != "all" and layout not in LAYOUTS:
        raise ValueError(f"layout must be 'all' or one of {LAYOUT_NAMES}, got {layout!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    # checked here, not by numpy's SeedSequence in the workers: by then the output folders exist
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    out = Path(out_dir)
    _prepare(out, overwrite)
    names = LAYOUT_NAMES if layout == "all" else (layout,)
    roots = {name: (out / name if layout == "all" else out) for name in names}
    for root in roots.values():
        root.mkdir(parents=True, exist_ok=True)
    # layouts of one stream (MIMIC-CXR and its JPG version) are written from one rendering of each study
    streams: dict[str, dict[str, Path]] = {}
    for name in names:
        streams.setdefault(LAYOUTS[name].stream, {})[name] = roots[name]
    tasks = [
        (stream_roots, stream, i, seed, size, difficulty) for stream, stream_roots in streams.items() for i in range(n)
    ]

    start = time.perf_counter()
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    if workers == 1:
        results = [_task(t) for t in tasks]
    else:
        # fork: workers inherit the imported modules; results come back in task order (imap keeps it)
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = list(pool.imap(_task, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
    records: dict[str, list[dict]] = {name: [] for name in names}
    for (stream_roots, _, _, _, _, _), result in zip(tasks, results, strict=True):
        for name in stream_roots:
            records[name].append(result["mimic"] if "mimic" in result else result[name])
    summary = {name: write_tables(name, roots[name], records[name]) for name in names}
    seconds = time.perf_counter() - start
    manifest = {"layout": layout, "n": n, "size": size, "seed": seed, "difficulty": difficulty, "layouts": summary}
    for root in {*roots.values(), out}:
        (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return {**manifest, "seconds": seconds, "workers": workers}
