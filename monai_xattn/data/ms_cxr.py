"""MS-CXR (PhysioNet, Boecking et al. 2022) -> datalist.

``MS_CXR_Local_Alignment_v1.*.csv``: one row per box-phrase pair, ``dicom_id, category_name, label_text, path, x, y,
w, h, image_width, image_height, split`` (top-left ``x, y, w, h`` in native pixels; ``path`` relative to the
MIMIC-CXR-JPG root). The root given to the adapter is that MIMIC-CXR-JPG root; the CSV may live elsewhere.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_xattn.data.adapter import DropItem, collect_entries, keep_valid_boxes, split_entries
from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    assign_splits,
    check_allowed,
    check_positive_integers,
    find_one,
    read_table,
    require_columns,
    xywh_to_xyxy,
)

__all__ = ["MS_CXR_COLUMNS", "MS_CXR_SPLITS", "build_ms_cxr_datalist"]

MS_CXR_COLUMNS = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")
MS_CXR_SPLITS = {"train": "training", "val": "validation", "validate": "validation", "test": "test"}
_IDS = re.compile(r"p(\d+)/s(\d+)/")


def build_ms_cxr_datalist(
    root: str | os.PathLike,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    csv_path: str | os.PathLike | None = None,
) -> tuple[dict[str, list], AdapterReport]:
    """MS-CXR -> datalist, one entry per image with every box and its phrase.

    Split: the CSV's ``split`` column (v1.1.0); without it, by patient (seeded, noted).

    Args:
        root: folder the CSV's ``path`` values are relative to (MIMIC-CXR-JPG root).
        split_seed: seed of the fallback patient split.
        val_fraction: fallback validation fraction of patients.
        test_fraction: fallback test fraction of patients.
        csv_path: the MS-CXR CSV, if not ``root/MS_CXR_Local_Alignment_v*.csv``.

    Returns:
        ``(datalist, report)``. Entries: ``image, image_id, patient_id, study_id, image_size, boxes, box_labels``
        (category per box), ``box_phrases`` (phrase per box), ``report_text`` (distinct phrases, ``". "``-joined),
        ``labels`` (1 per category present) and ``split`` (the CSV's value, when present).
    """
    root = Path(root)
    report = AdapterReport("ms-cxr", positive_rule="at least one box")
    path = Path(csv_path) if csv_path else find_one(root, ["MS_CXR_Local_Alignment*.csv"], "MS-CXR CSV")
    df, numbers, boxes = _read_table(path, report)
    has_split = "split" in df.columns

    def make_entry(group: tuple[str, pd.Index]) -> dict[str, Any]:
        dicom_id, index = group
        rows = df.loc[index]
        for column in ("path", "image_width", "image_height") + (("split",) if has_split else ()):
            if rows[column].nunique() > 1:
                lines = [int(i) + 2 for i in index]
                raise DatalistError(f"{path}: dicom_id {dicom_id} has different {column} values on lines {lines}")
        image = rows["path"].iloc[0]
        if not (root / image).is_file():
            raise DropItem(dicom_id, "image file missing")
        size = [int(numbers["image_width"][index[0]]), int(numbers["image_height"][index[0]])]
        ids = [f"{dicom_id} (line {int(i) + 2})" for i in index]
        keep = index[keep_valid_boxes(boxes[df.index.get_indexer(index)], size, ids, report)]
        kept_boxes = boxes[df.index.get_indexer(keep)] if len(keep) else np.zeros((0, 4))
        match = _IDS.search(image)
        categories = df["category_name"][keep].tolist()
        phrases = df["label_text"][keep].tolist()
        entry = {
            "image": image,
            "image_id": dicom_id,
            "patient_id": match.group(1) if match else dicom_id,
            "study_id": match.group(2) if match else "",
            "image_size": size,
            "boxes": kept_boxes.tolist(),
            "box_labels": categories,
            "box_phrases": phrases,
            "report_text": ". ".join(dict.fromkeys(p for p in phrases if p)),
            "labels": dict.fromkeys(categories, 1),
        }
        if has_split:
            entry["split"] = rows["split"].iloc[0]
        return entry

    entries = collect_entries(df.groupby("dicom_id", sort=False).groups.items(), make_entry, report)
    if has_split:
        datalist = assign_splits(entries, lambda e: MS_CXR_SPLITS[e["split"]])
    else:
        datalist = split_entries(entries, val_fraction, test_fraction, split_seed)
    report.count(datalist, lambda e: e["boxes"])
    return datalist, report


def _read_table(path: Path, report: AdapterReport) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The MS-CXR CSV, checked whole.

    Returns:
        ``(df, numbers, boxes)``: the table (strings, indexed by CSV line - 2), its box and size columns as floats,
        and the ``(N, 4)`` StandardMode boxes in row order.

    Raises:
        DatalistError: a missing column, a box or size that is not a number, a size that is not a positive
            integer, an unknown split, one path under two ``dicom_id`` values.
    """
    df = read_table(path)
    require_columns(df, MS_CXR_COLUMNS, path, report, known=("split",))
    numbers = df[["x", "y", "w", "h", "image_width", "image_height"]].apply(pd.to_numeric, errors="coerce")
    numbers = numbers.astype(float)  # an empty table would stay object-typed
    bad = numbers.index[numbers.isna().any(axis=1)]
    if len(bad):
        raise DatalistError(f"{path}: line {int(bad[0]) + 2}: box or size is not a number: {df.loc[bad[0]].tolist()}")
    # an infinite or fractional size cannot become the entry's integer image_size
    check_positive_integers(df, ["image_width", "image_height"], path)
    if "split" in df.columns:
        check_allowed(df["split"], MS_CXR_SPLITS, path, "split")
    else:
        report.note(f"{path.name} has no split column: split by patient")
    boxes = xywh_to_xyxy(numbers[["x", "y", "w", "h"]].to_numpy())
    # the converse of the per-image checks: one image under two dicom_ids would be listed twice
    ids_per_path = df.groupby("path", sort=False)["dicom_id"].nunique()
    if (ids_per_path > 1).any():
        image = ids_per_path.index[ids_per_path > 1][0]
        lines = [int(i) + 2 for i in df.index[df["path"] == image]]
        raise DatalistError(f"{path}: path {image} has different dicom_id values on lines {lines}")
    return df, numbers, boxes
