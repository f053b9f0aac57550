"""Path rules shared by every command that writes next to a dataset."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ensure_outside"]


def ensure_outside(output: str | os.PathLike, root: str | os.PathLike, error: type[Exception] = ValueError) -> None:
    """Refuse to write ``output`` inside the dataset ``root``: dataset folders are read-only to us.

    Args:
        output: the file or folder about to be written.
        root: the dataset folder.
        error: the exception type raised (``data`` raises its ``DatalistError``, a ``ValueError``).

    Raises:
        error: ``output`` is ``root`` or lies under it (symbolic links resolved).
    """
    out, base = Path(output).resolve(), Path(root).resolve()
    if out == base or base in out.parents:
        raise error(f"{output}: refusing to write inside the dataset folder {root}; choose another path")
