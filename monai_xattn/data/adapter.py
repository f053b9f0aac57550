"""The skeleton every ``build_*_datalist`` adapter follows: read -> filter -> entries -> split.

1. **read**: the dataset's tables, checked whole (columns, values, duplicates); a table that cannot be right
   raises :class:`~monai_xattn.data.datalist.DatalistError` naming the file and line.
2. **filter** and 3. **entries**: :func:`collect_entries` turns each candidate (a row, a group of rows) into a
   datalist entry, or records in the :class:`~monai_xattn.data.datalist.AdapterReport` why it was left out
   (the adapter's per-candidate function raises :class:`DropItem`). Pieces shared by several adapters' candidate
   functions live here too: :func:`header_or_drop` (a DICOM header, or the candidate's drop) and
   :func:`keep_valid_boxes` (boxes inside the image, the others reported).
4. **split**: :func:`split_entries` groups the entries into ``training`` / ``validation`` / ``test``, by patient,
   around the entries whose split the dataset fixes; then ``report.count`` fills the summary.

The datalist pieces these build on (the report, ``split_groups``, ``check_boxes``) are in
:mod:`monai_xattn.data.datalist`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    assign_splits,
    check_boxes,
    dicom_header,
    split_groups,
)

__all__ = ["DropItem", "collect_entries", "header_or_drop", "keep_valid_boxes", "split_entries"]

T = TypeVar("T")


class DropItem(Exception):
    """Raised by an adapter's per-candidate function: leave this candidate out, for this reason.

    Args:
        item_id: what the report names (an image id, ``"<id> (line N)"``, ...).
        reason: why it is left out.
    """

    def __init__(self, item_id: str, reason: str) -> None:
        super().__init__(f"{item_id}: {reason}")
        self.item_id, self.reason = item_id, reason


def collect_entries(
    candidates: Iterable[T], make_entry: Callable[[T], dict[str, Any] | None], report: AdapterReport
) -> list[dict[str, Any]]:
    """Filter + entries: ``make_entry(candidate)`` for every candidate, in order.

    Args:
        candidates: rows, row groups or entries of a first pass.
        make_entry: returns the entry, ``None`` to leave the candidate out silently (it was never meant to be
            listed), or raises :class:`DropItem` to leave it out as a counted drop.
        report: receives the drops.

    Returns:
        the entries, in candidate order.
    """
    entries = []
    for candidate in candidates:
        try:
            entry = make_entry(candidate)
        except DropItem as drop:
            report.drop(drop.item_id, drop.reason)
            continue
        if entry is not None:
            entries.append(entry)
    return entries


def header_or_drop(path: str | os.PathLike, item_id: str) -> dict[str, Any]:
    """:func:`~monai_xattn.data.datalist.dicom_header`, a broken file becoming ``item_id``'s drop.

    Raises:
        DropItem: the header is unreadable; the reason is the error without its path.
    """
    try:
        return dicom_header(path)
    except DatalistError as exc:
        raise DropItem(item_id, str(exc).split(": ", 1)[1]) from None


def keep_valid_boxes(
    boxes: np.ndarray, image_size: Sequence[int], box_ids: Sequence[str], report: AdapterReport
) -> list[int]:
    """Positions of the boxes :func:`~monai_xattn.data.datalist.check_boxes` accepts; the others are dropped.

    Args:
        boxes: ``(N, 4)`` StandardMode boxes of one image.
        image_size: the image's ``[W, H]``.
        box_ids: what the report names each box (``"<image>#k"``, ``"<id> (line N)"``).
        report: receives a drop per rejected box, in box order.

    Returns:
        indices into ``boxes`` of the kept boxes, in order.
    """
    kept = []
    for k, (box_id, reason) in enumerate(zip(box_ids, check_boxes(boxes, image_size), strict=True)):
        if reason:
            report.drop(box_id, reason)
        else:
            kept.append(k)
    return kept


def split_entries(
    entries: Sequence[dict[str, Any]],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    fixed: Callable[[dict[str, Any]], str | None] | None = None,
) -> dict[str, list]:
    """Split: entries with a dataset-given split go there, the others are split by ``patient_id``.

    The patient split is :func:`~monai_xattn.data.datalist.split_groups` over the patients of the entries not
    fixed (the fractions are checked even when there are none); entries keep their order within a split.

    Args:
        entries: datalist entries, each with ``patient_id``.
        val_fraction: fraction of the free patients for validation.
        test_fraction: fraction of the free patients for test (0 where the dataset has an official test set).
        seed: seed of the patient split.
        fixed: ``entry -> split name`` (one of ``training``, ``validation``, ``test``) for an entry the dataset
            assigns, ``None`` for one to split by patient; ``None`` splits every entry by patient.

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}``.
    """
    given = fixed or (lambda entry: None)
    free = [e["patient_id"] for e in entries if given(e) is None]
    split_of = split_groups(free, val_fraction, test_fraction, seed)
    return assign_splits(entries, lambda e: given(e) or split_of[e["patient_id"]])
