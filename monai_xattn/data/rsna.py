"""RSNA Pneumonia Detection Challenge (Kaggle 2018) -> datalist.

``stage_2_train_labels.csv`` has one row per box (``patientId,x,y,width,height,Target``, top-left ``x, y`` in
the 1024 x 1024 pixel frame) and one blank-box row with ``Target = 0`` per negative image; images are
``stage_2_train_images/<patientId>.dcm``. Every ``patientId`` is one image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.typing import DataFrameGroupBy

from monai_xattn.data.adapter import DropItem, collect_entries, header_or_drop, keep_valid_boxes, split_entries
from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    find_one,
    read_table,
    require_columns,
    xywh_to_xyxy,
)

__all__ = ["RSNA_COLUMNS", "build_rsna_datalist"]

RSNA_COLUMNS = ("patientId", "x", "y", "width", "height", "Target")


def build_rsna_datalist(
    root: str | os.PathLike,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    labels_csv: str | os.PathLike | None = None,
    image_dir: str = "stage_2_train_images",
    read_headers: bool = True,
    image_size: Sequence[int] = (1024, 1024),
) -> tuple[dict[str, list], AdapterReport]:
    """RSNA folder -> datalist, one entry per ``patientId`` with all its boxes; ``Target = 0`` images kept with ``[]``.

    Args:
        root: dataset folder.
        split_seed: seed of the per-patient split (no official labelled test set; GLoRIA: 70/15/15, seed 0).
        val_fraction: fraction of patients for validation.
        test_fraction: fraction of patients for test.
        labels_csv: the labels CSV if not ``root/stage_2_train_labels.csv`` (or ``stage_1_train_labels.csv``).
        image_dir: folder of ``<patientId>.dcm`` under ``root``.
        read_headers: read each DICOM header for size and ViewPosition; else ``image_size`` is assumed and
            ``view`` is ``OTHER``.
        image_size: ``[W, H]`` assumed when ``read_headers`` is False.

    Returns:
        ``(datalist, report)``. Entries: ``image, image_id, patient_id, view, image_size, boxes, box_labels,
        labels {"Pneumonia"}``.

    Raises:
        DatalistError: missing columns, a patient with both Target values, a positive row without a box or a
            negative row with one, a non-numeric value -- naming the CSV line.
    """
    root = Path(root)
    report = AdapterReport("rsna", positive_rule="Target = 1")
    csv_path = (
        Path(labels_csv)
        if labels_csv
        else find_one(root, ["stage_2_train_labels.csv", "stage_1_train_labels.csv"], "RSNA labels CSV")
    )
    df, boxes = _read_labels(csv_path, report)
    groups = _rows_per_patient(df, csv_path, report)
    folder = root / image_dir

    def make_entry(group: tuple[str, pd.Index]) -> dict[str, Any]:
        patient_id, index = group
        path = folder / f"{patient_id}.dcm"
        if not path.is_file():
            raise DropItem(patient_id, "image file missing")
        if read_headers:
            header = header_or_drop(path, patient_id)
            size, view = header["image_size"], header["view"]
        else:
            size, view = [int(s) for s in image_size], "OTHER"
        box_rows = [i for i in index if i in boxes.index]
        kept = []
        if box_rows:
            xyxy = np.stack([boxes[i] for i in box_rows])
            ids = [f"{patient_id} (line {int(i) + 2})" for i in box_rows]
            kept = [xyxy[k].tolist() for k in keep_valid_boxes(xyxy, size, ids, report)]
        return {
            "image": path.relative_to(root).as_posix(),
            "image_id": patient_id,
            "patient_id": patient_id,
            "view": view,
            "image_size": size,
            "boxes": kept,
            "box_labels": ["Pneumonia"] * len(kept),
            "labels": {"Pneumonia": int(bool(box_rows))},
        }

    entries = collect_entries(groups.groups.items(), make_entry, report)
    if not read_headers:
        report.note("read_headers=False: image size assumed, views unknown (OTHER)")
    datalist = split_entries(entries, val_fraction, test_fraction, split_seed)
    report.count(datalist, lambda e: e["labels"]["Pneumonia"] == 1)
    return datalist, report


def _read_labels(csv_path: Path, report: AdapterReport) -> tuple[pd.DataFrame, pd.Series]:
    """The labels CSV, checked row by row, and the StandardMode box of each row that has one.

    Returns:
        ``(df, boxes)``: the table (strings, indexed by CSV line - 2) and a Series of ``(4,)`` arrays indexed
        like the rows with a box.

    Raises:
        DatalistError: a missing column, a Target other than 0/1, box fields that do not match the Target, a box
            field that is not a number.
    """
    df = read_table(csv_path)
    require_columns(df, RSNA_COLUMNS, csv_path, report)
    bad_target = df.index[~df["Target"].isin(["0", "1"])]
    if len(bad_target):
        i = int(bad_target[0])
        raise DatalistError(f"{csv_path}: line {i + 2}: Target must be 0 or 1, got {df['Target'][i]!r}")
    coords = df[["x", "y", "width", "height"]]
    has_box = (coords != "").all(axis=1)
    no_box = (coords == "").all(axis=1)
    target = df["Target"] == "1"
    wrong = df.index[(target & ~has_box) | (~target & ~no_box)]
    if len(wrong):
        i = int(wrong[0])
        raise DatalistError(
            f"{csv_path}: line {i + 2} ({df['patientId'][i]}): Target {df['Target'][i]} with box fields "
            f"{coords.loc[i].tolist()} (positives need all four, negatives none)"
        )
    values = coords[has_box].apply(pd.to_numeric, errors="coerce")
    not_numeric = values.index[values.isna().any(axis=1)]
    if len(not_numeric):
        i = int(not_numeric[0])
        raise DatalistError(f"{csv_path}: line {i + 2}: box fields are not numbers: {coords.loc[i].tolist()}")
    return df, pd.Series(list(xywh_to_xyxy(values.to_numpy())), index=values.index)


def _rows_per_patient(df: pd.DataFrame, csv_path: Path, report: AdapterReport) -> DataFrameGroupBy:
    """The rows grouped by ``patientId`` in CSV order; repeated negative rows noted.

    Raises:
        DatalistError: a patient with both Target values.
    """
    groups = df.groupby("patientId", sort=False)
    n_targets = groups["Target"].nunique()
    if (n_targets > 1).any():
        patient = n_targets.index[n_targets > 1][0]
        lines = [int(j) + 2 for j in groups.groups[patient]]
        raise DatalistError(f"{csv_path}: patientId {patient} has both Target 0 and 1 rows (lines {lines})")
    n_repeat_neg = int((groups.size()[groups["Target"].first() == "0"] > 1).sum())
    if n_repeat_neg:
        report.note(f"{n_repeat_neg} negative patientIds have several Target 0 rows; listed once")
    return groups
