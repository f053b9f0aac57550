"""The bundles' one data-preparation step: an optional phantom, then the datalist, written at most once.

Every bundle's ``initialize`` (single- and multi-GPU alike) calls :func:`prepare_datalist`, so that the rule below
holds in all of them:

1. **Phantom.** With ``make_phantom``, a synthetic dataset of ``layout`` is generated into ``dataset_dir`` when that
   folder does not exist yet; an existing folder (a real dataset, or an earlier phantom) is never touched.
2. **Datalist.** ``datalist_file`` is built with ``adapter(dataset_dir)`` and written when it does not exist yet,
   or when ``dataset_dir`` is a phantom generated after it (by step 1, or by ``monai-xattn phantom`` / the demo
   with ``make_phantom`` off): a datalist of an earlier phantom would not match the new files. An existing datalist
   is otherwise kept as it is: a user's hand-made datalist is read, never replaced; delete it (or name another
   ``datalist_file``) after pointing ``dataset_dir`` at another dataset.
3. **Dataset folders are read-only.** The datalist is never written inside ``dataset_dir``.
4. **Several processes.** Under ``torch.distributed`` only rank 0 writes; every rank then waits at a barrier,
   so no rank reads a half-written phantom or datalist.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from monai_xattn.data.datalist import ensure_outside, write_datalist

__all__ = ["prepare_datalist"]


def _distributed() -> tuple[bool, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return True, dist.get_rank()
    return False, 0


def prepare_datalist(
    dataset_dir: str | os.PathLike,
    datalist_file: str | os.PathLike,
    adapter: Callable[..., Any],
    adapter_kwargs: Mapping[str, Any] | None = None,
    *,
    make_phantom: bool = False,
    layout: str | None = None,
    phantom_studies: int = 100,
    phantom_size: int = 128,
    phantom_difficulty: str = "easy",
    phantom_seed: int = 0,
    phantom_workers: int | None = None,
) -> Path:
    """Generate the phantom if asked and absent, write the datalist if needed (see the module docstring).

    Args:
        dataset_dir: the dataset root (a user's dataset, or where the phantom goes).
        datalist_file: the datalist JSON to read, or to write when absent.
        adapter: ``adapter(dataset_dir, **adapter_kwargs)`` returns a datalist dict or an adapter's
            ``(datalist, report)`` pair, e.g. :func:`~monai_xattn.data.build_chestxray8_datalist`.
        adapter_kwargs: more keyword arguments of ``adapter``.
        make_phantom: generate a phantom into ``dataset_dir`` when that folder does not exist.
        layout: the phantom's dataset layout (``"chexpert"``, ``"mimic-cxr"``, ...); needed with ``make_phantom``.
        phantom_studies: studies (images for SIIM) the phantom holds.
        phantom_size: the phantom's image side in pixels.
        phantom_difficulty: ``"easy"``, ``"medium"`` or ``"hard"``.
        phantom_seed: the phantom's seed.
        phantom_workers: the phantom generator's processes (default: CPU count); the files do not depend on it.

    Returns:
        ``datalist_file`` as a ``Path``.

    Raises:
        ValueError: ``make_phantom`` without a ``layout``.
        DatalistError: ``datalist_file`` would have to be written inside ``dataset_dir``.
    """
    dataset_dir, datalist_file = Path(dataset_dir), Path(datalist_file)
    if make_phantom and layout is None:
        raise ValueError("make_phantom needs the phantom's layout")
    distributed, rank = _distributed()
    if rank == 0:
        from monai_xattn.data.phantom.generate import MANIFEST, generate

        if make_phantom and not dataset_dir.is_dir():
            generate(
                dataset_dir,
                layout=layout,
                n=phantom_studies,
                size=phantom_size,
                difficulty=phantom_difficulty,
                seed=phantom_seed,
                workers=phantom_workers,
            )
        manifest = dataset_dir / MANIFEST
        if not datalist_file.is_file() or (
            manifest.is_file() and manifest.stat().st_mtime_ns > datalist_file.stat().st_mtime_ns
        ):
            ensure_outside(datalist_file, dataset_dir)
            datalist = adapter(dataset_dir, **(adapter_kwargs or {}))
            write_datalist(datalist[0] if isinstance(datalist, tuple) else datalist, datalist_file)
    if distributed:
        import torch.distributed as dist

        dist.barrier()
    return datalist_file
