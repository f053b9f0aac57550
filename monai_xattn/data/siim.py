"""SIIM-ACR Pneumothorax (Kaggle 2019) dataset adapter.

The masks are SIIM run-length encodings; their codec (conventions, modes, MONAI's frame) is
:mod:`monai_xattn.utils.rle`, whose names are re-exported here for the callers that import them from the adapter.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from monai_xattn.data.adapter import DropItem, collect_entries, header_or_drop, split_entries
from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    check_unique,
    find_one,
    read_table,
    require_columns,
)
from monai_xattn.utils.rle import RLE_MODES, detect_rle_mode, rle_decode, rle_encode, rle_pairs, rle_runs

__all__ = ["RLE_MODES", "rle_decode", "rle_encode", "detect_rle_mode", "build_siim_datalist"]


def build_siim_datalist(
    root: str | os.PathLike,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    rle_csv: str | os.PathLike | None = None,
    rle_mode: str = "auto",
    read_headers: bool = True,
    image_size: Sequence[int] = (1024, 1024),
) -> tuple[dict[str, list], AdapterReport]:
    """SIIM-ACR folder -> datalist: one entry per ``ImageId`` with its RLE rows (united when decoded).

    Layout: ``train-rle.csv`` (header ``ImageId, EncodedPixels``) and
    ``dicom-images-train/<study>/<series>/<ImageId>.dcm`` under ``root``.

    Args:
        root: dataset folder.
        split_seed: seed of the per-patient split (SIIM has no official split; GLoRIA used 70/15/15).
        val_fraction: fraction of patients for validation.
        test_fraction: fraction of patients for test.
        rle_csv: the RLE CSV, if not ``root/train-rle.csv`` (or ``stage_2_train.csv``).
        rle_mode: ``"auto"`` (detect, reported), ``"relative"`` or ``"absolute"``.
        read_headers: read each DICOM header for size, view and PatientID; when False ``image_size`` is
            assumed and the split groups by image (SIIM files carry the patient only in the header).
        image_size: ``[W, H]`` assumed when ``read_headers`` is False.

    Returns:
        ``(datalist, report)``. Entries: ``image, image_id, patient_id, study_id, view, image_size, rle`` (list of
        the image's non-empty RLE rows; ``[]`` = no pneumothorax), ``rle_mode``, ``labels {"Pneumothorax"}``.
    """
    root = Path(root)
    report = AdapterReport("siim", positive_rule="at least one RLE run")
    csv_path = Path(rle_csv) if rle_csv else find_one(root, ["train-rle.csv", "stage_2_train.csv"], "SIIM RLE CSV")
    df = _read_rle_table(csv_path, report)
    image_dir = root / "dicom-images-train" if (root / "dicom-images-train").is_dir() else root
    by_id = _dicom_files(image_dir)
    _check_rows_per_image(df, csv_path, report)
    rle_lines: dict[str, list[int]] = {}  # CSV line of each RLE string, for messages

    def make_entry(group: tuple[str, pd.Series]) -> dict[str, Any]:
        image_id, rows = group
        path = by_id.get(image_id)
        if path is None:
            raise DropItem(image_id, "image file missing")
        # a string that is not start/length pairs leaves the image's mask unknown: the image is a counted drop
        for i, rle in rows.items():
            try:
                rle_pairs(rle)
            except ValueError as exc:
                raise DropItem(f"{image_id} (line {int(i) + 2})", _bad_rle(exc)) from None
        if read_headers:
            header = header_or_drop(path, image_id)
        else:
            header = {
                "image_size": [int(s) for s in image_size],
                "view": "OTHER",
                "patient_id": image_id,
                "study_id": "",
            }
        rles = [r for r in rows.tolist() if r != "-1"]
        rle_lines[image_id] = [int(i) + 2 for i, r in rows.items() if r != "-1"]
        return {
            "image": path.relative_to(root).as_posix(),
            "image_id": image_id,
            "patient_id": header["patient_id"] or image_id,
            "study_id": header["study_id"],
            "view": header["view"],
            "image_size": header["image_size"],
            "rle": rles,
            "labels": {"Pneumothorax": int(bool(rles))},
        }

    entries = collect_entries(df.groupby("ImageId", sort=False)["EncodedPixels"], make_entry, report)
    unlisted = len(by_id) - len(set(by_id) & set(df["ImageId"]))
    if unlisted:
        report.note(f"{unlisted} DICOM files under {image_dir.name} have no row in {csv_path.name} (not listed)")
    if not read_headers:
        report.note("read_headers=False: image size assumed, split by image (no PatientID)")

    rle_mode = _resolve_rle_mode(rle_mode, entries, rle_lines, csv_path, report)

    def check_runs(entry: dict[str, Any]) -> dict[str, Any]:
        w, h = entry["image_size"]
        try:
            for r in entry["rle"]:
                rle_runs(r, w * h, rle_mode)
        except ValueError as exc:
            raise DropItem(entry["image_id"], _bad_rle(exc)) from None
        entry["rle_mode"] = rle_mode
        return entry

    kept = collect_entries(entries, check_runs, report)
    datalist = split_entries(kept, val_fraction, test_fraction, split_seed)
    report.count(datalist, lambda e: e["rle"])
    return datalist, report


def _bad_rle(exc: ValueError) -> str:
    """A drop reason from a codec error, without the error's own prefix."""
    return f"bad RLE: {str(exc).split(': ', 1)[-1]}"


def _read_rle_table(csv_path: Path, report: AdapterReport) -> pd.DataFrame:
    """The RLE CSV, its columns checked and no ``EncodedPixels`` blank.

    Raises:
        DatalistError: naming the line.
    """
    df = read_table(csv_path)
    require_columns(df, ["ImageId", "EncodedPixels"], csv_path, report)
    blank = df.index[df["EncodedPixels"] == ""]
    if len(blank):
        raise DatalistError(f"{csv_path}: empty EncodedPixels on line {int(blank[0]) + 2} (negatives are -1)")
    return df


def _check_rows_per_image(df: pd.DataFrame, csv_path: Path, report: AdapterReport) -> None:
    """No image both negative (``-1``) and with a run; images with several rows noted.

    Raises:
        DatalistError: naming the image's lines.
    """
    negative = df["EncodedPixels"] == "-1"
    rows_per_image = df.groupby("ImageId", sort=False)
    n_kinds = negative.groupby(df["ImageId"]).nunique()
    if (n_kinds > 1).any():
        image_id = n_kinds.index[n_kinds > 1][0]
        lines = [int(j) + 2 for j in rows_per_image.groups[image_id]]
        raise DatalistError(f"{csv_path}: ImageId {image_id} has both -1 and an RLE (lines {lines})")
    n_multi = int((rows_per_image.size() > 1).sum())
    if n_multi:
        report.note(f"{n_multi} images have several RLE rows; their masks are united")


def _dicom_files(image_dir: Path) -> dict[str, Path]:
    """``ImageId`` (file stem) -> DICOM path under ``image_dir``.

    Raises:
        DatalistError: two files with the same stem.
    """
    files = sorted(image_dir.rglob("*.dcm"))
    check_unique(pd.Series([f.stem for f in files], dtype=str), image_dir, "DICOM file name")
    return {f.stem: f for f in files}


def _resolve_rle_mode(
    rle_mode: str, entries: list[dict[str, Any]], rle_lines: dict[str, list[int]], csv_path: Path, report: AdapterReport
) -> str:
    """``rle_mode`` checked, or for ``"auto"`` detected from every listed string; the choice is noted.

    Raises:
        DatalistError: ``"auto"`` and the strings fit neither mode.
        ValueError: an unknown ``rle_mode``.
    """
    if rle_mode == "auto":
        strings = [
            (r, e["image_size"][0] * e["image_size"][1], f"{e['image_id']} (line {line})")
            for e in entries
            for r, line in zip(e["rle"], rle_lines[e["image_id"]], strict=True)
        ]
        try:
            rle_mode, why = detect_rle_mode(strings)
        except ValueError as exc:
            raise DatalistError(f"{csv_path}: {exc}") from None
        report.note(f"RLE mode {rle_mode}: {why}")
    elif rle_mode not in RLE_MODES:
        raise ValueError(f"rle_mode must be 'auto' or one of {RLE_MODES}, got {rle_mode!r}")
    else:
        report.note(f"RLE mode {rle_mode} (given)")
    return rle_mode
