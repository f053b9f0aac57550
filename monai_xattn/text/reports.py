"""Reading radiology report files and the report corpus of a datalist."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

__all__ = ["read_report", "iter_datalist_reports"]


def read_report(
    path: str | Path,
    errors: Literal["strict", "replace"] = "strict",
    empty: Literal["error", "allow"] = "error",
) -> str:
    """Read one report file as UTF-8.

    Args:
        path: the report file.
        errors: ``"strict"`` raises on bytes that are not UTF-8; ``"replace"`` decodes them as U+FFFD.
        empty: ``"error"`` raises on a file holding only whitespace; ``"allow"`` returns ``""``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: naming the file, for non-UTF-8 bytes (with ``errors="strict"``) or an empty report
            (with ``empty="error"``).
    """
    if errors not in ("strict", "replace"):
        raise ValueError(f"errors must be 'strict' or 'replace', got {errors!r}")
    if empty not in ("error", "allow"):
        raise ValueError(f"empty must be 'error' or 'allow', got {empty!r}")
    path = Path(path)
    data = path.read_bytes()
    try:
        # utf-8-sig: some exported reports start with a byte-order mark that would otherwise become text
        text = data.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}: not UTF-8 ({e.reason} at byte {e.start}); pass errors='replace' to decode anyway"
        ) from None
    if empty == "error" and not text.strip():
        raise ValueError(f"{path}: the report is empty")
    return text


def iter_datalist_reports(
    datalist: str | Path | dict,
    root: str | Path | None = None,
    splits: Sequence[str] | None = None,
    errors: Literal["strict", "replace"] = "strict",
) -> Iterator[tuple[str, str]]:
    """Yield ``(source, text)`` once per distinct report of a datalist.

    Entries give a report as ``report`` (a file path, relative to ``root``) or ``report_text`` (see
    ``docs/datalists.md``). Several images of one study share one report; each report is yielded once
    (by path, or by text for ``report_text``).

    Args:
        datalist: a datalist dict or JSON file.
        root: the dataset root that ``report`` paths are relative to (default: the datalist file's folder).
        splits: the datalist lists to read (default: every list in the datalist).
        errors: UTF-8 decoding policy of :func:`read_report`.

    Raises:
        ValueError: naming the split and index of an entry with neither ``report`` nor ``report_text``,
            and for a split that the datalist lacks.
    """
    if not isinstance(datalist, dict):
        path = Path(datalist)
        root = path.parent if root is None else root
        datalist = json.loads(path.read_text(encoding="utf-8"))
    root = Path(".") if root is None else Path(root)
    names = [k for k, v in datalist.items() if isinstance(v, list)] if splits is None else list(splits)
    missing = [s for s in names if s not in datalist]
    if missing:
        raise ValueError(f"datalist has no list(s) {missing}; it has {sorted(datalist)}")
    seen: set[str] = set()
    for split in names:
        for k, entry in enumerate(datalist[split]):
            if "report" in entry:
                source = str(entry["report"])
                if source not in seen:
                    seen.add(source)
                    yield source, read_report(root / source, errors=errors, empty="allow")
            elif "report_text" in entry:
                text = str(entry["report_text"])
                if text not in seen:
                    seen.add(text)
                    yield f"{split}[{k}].report_text", text
            else:
                raise ValueError(f"datalist {split}[{k}] has neither 'report' nor 'report_text': {sorted(entry)}")
