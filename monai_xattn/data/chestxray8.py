"""NIH ChestX-ray8 / ChestX-ray14 -> datalist.

Files under the root: ``Data_Entry_2017*.csv`` (one row per image), ``BBox_List_2017.csv`` (984 boxes, top-left
``x, y, w, h`` in the 1024 x 1024 PNG frame), ``train_val_list.txt`` / ``test_list.txt`` (official split) and the
PNGs in ``images/`` (or the download's ``images_001/images/`` ...). Every view and every image of a patient is
kept: the PA-only, one-image-per-patient filters of some loaders keep 13 of the 120 pneumonia boxes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_xattn.data.adapter import DropItem, collect_entries, keep_valid_boxes, split_entries
from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    as_names,
    check_unique,
    find_one,
    normalize_view,
    read_csv_records,
    read_text,
    xywh_to_xyxy,
)

__all__ = ["NIH_FINDINGS", "BOX_LABEL_MAP", "read_data_entry", "read_bbox_list", "build_chestxray8_datalist"]

NIH_FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)  # fmt: skip
"""The 14 ChestX-ray14 findings as ``Data_Entry_2017.csv`` spells them."""

BOX_LABEL_MAP = {"Infiltrate": "Infiltration"}
"""``BBox_List_2017.csv`` names that differ from ``Data_Entry_2017.csv``'s."""

_ENTRY_HEADER = [
    "Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender", "View Position",
    "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]",
]  # fmt: skip
_ENTRY_NAMES = [
    "image", "findings", "follow_up", "patient_id", "age", "gender", "view", "orig_width", "orig_height",
    "spacing_x", "spacing_y",
]  # fmt: skip
_BBOX_HEADER = ["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]"]


def _read_rows(path: Path, header: list[str], width: int, names: list[str]) -> pd.DataFrame:
    """Rows of a CSV whose header must start with ``header``, as a frame of ``width`` stripped string columns
    ``names`` indexed by CSV line - 2 (as :func:`~monai_xattn.data.datalist.read_table`); extra trailing fields
    must be empty."""
    (header_line, found), *records = read_csv_records(path)
    if [c.strip() for c in found[: len(header)]] != header:
        raise DatalistError(f"{path}: line {header_line}: header must start with {','.join(header)}; got {found}")
    rows, lines = [], []
    for line, row in records:
        if len(row) < width or any(c.strip() for c in row[width:]):
            raise DatalistError(f"{path}: line {line}: expected {width} fields, got {row}")
        rows.append([c.strip() for c in row[:width]])
        lines.append(line)
    return pd.DataFrame(rows, columns=names, index=pd.Index(np.asarray(lines, dtype=np.int64) - 2), dtype=str)


def read_data_entry(path: str | os.PathLike) -> pd.DataFrame:
    """``Data_Entry_2017*.csv`` as a frame with columns ``image, findings, follow_up, patient_id, age, gender,
    view, orig_width, orig_height, spacing_x, spacing_y`` (strings); the bracketed header fields split into
    two columns each, a trailing empty column is allowed."""
    path = Path(path)
    df = _read_rows(path, _ENTRY_HEADER, len(_ENTRY_HEADER), _ENTRY_NAMES)
    check_unique(df["image"], path, "Image Index")
    return df


def read_bbox_list(path: str | os.PathLike) -> pd.DataFrame:
    """``BBox_List_2017.csv`` (header ``Image Index,Finding Label,Bbox [x,y,w,h],,,``: 9 fields, 6 used) as a
    frame ``image, label, x0, y0, x1, y1, line`` with StandardMode float boxes and the CSV line number."""
    path = Path(path)
    df = _read_rows(path, _BBOX_HEADER, 6, ["image", "label", "x", "y", "w", "h"])
    values = df[["x", "y", "w", "h"]].apply(pd.to_numeric, errors="coerce")
    bad = values.index[values.isna().any(axis=1)]
    if len(bad):
        raise DatalistError(f"{path}: line {int(bad[0]) + 2}: box values are not numbers: {df.loc[bad[0]].tolist()}")
    xyxy = xywh_to_xyxy(values.to_numpy())
    out = df[["image", "label"]].copy()
    out[["x0", "y0", "x1", "y1"]] = xyxy
    out["line"] = df.index + 2
    return out


def _read_list(path: Path) -> list[str]:
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def _image_index(root: Path) -> dict[str, Path]:
    """PNG file name -> path, over ``images/`` and the download's ``images_*/images/`` folders."""
    index: dict[str, Path] = {}
    for folder in [root / "images", *sorted(root.glob("images_*/images"))]:
        for p in folder.glob("*.png") if folder.is_dir() else ():
            if p.name in index:
                raise DatalistError(f"{root}: image {p.name} found twice ({index[p.name]} and {p})")
            index[p.name] = p
    return index


def _png_size(path: Path) -> list[int]:
    """``[W, H]`` from the PNG header (no pixel decoding)."""
    from PIL import Image

    with Image.open(path) as im:
        return [int(im.width), int(im.height)]


def build_chestxray8_datalist(
    root: str | os.PathLike,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    data_entry: str | os.PathLike | None = None,
    box_label_map: Mapping[str, str] = BOX_LABEL_MAP,
    box_findings: Sequence[str] | None = None,
    read_sizes: bool = True,
    image_size: Sequence[int] = (1024, 1024),
) -> tuple[dict[str, list], AdapterReport]:
    """ChestX-ray8/14 folder -> datalist, one entry per image with all its boxes.

    Split: ``test_list.txt`` -> test; ``train_val_list.txt`` -> training + validation, the latter
    ``val_fraction`` of its patients (seeded). Without the list files every image is split by patient with
    ``val_fraction`` / ``test_fraction`` (noted in the report).

    Args:
        root: dataset folder.
        split_seed: seed of the validation (and fallback) patient split.
        val_fraction: fraction of (train_val) patients for validation.
        test_fraction: fraction of patients for test, used only without ``test_list.txt``.
        data_entry: the label CSV, if ``root`` holds several ``Data_Entry_2017*.csv``.
        box_label_map: renames of box labels (``Infiltrate`` -> ``Infiltration``).
        box_findings: keep only boxes of these findings (after renaming); ``None`` keeps all.
        read_sizes: read ``image_size`` from each PNG header; else assume ``image_size``.
        image_size: ``[W, H]`` assumed when ``read_sizes`` is False.

    Returns:
        ``(datalist, report)``. Entries: ``image, image_id, patient_id, view, image_size, labels`` (the 14
        findings, 0/1), ``boxes, box_labels``, ``split`` (``train_val`` or ``test``).
    """
    root = Path(root)
    box_findings = as_names(box_findings, "box_findings", NIH_FINDINGS)
    report = AdapterReport("chestxray8", positive_rule="Pneumonia = 1")
    entry_path = Path(data_entry) if data_entry else find_one(root, ["Data_Entry_2017*.csv"], "Data_Entry_2017")
    df = read_data_entry(entry_path)
    findings = df["findings"].str.split("|")
    unknown = sorted({f for fs in findings for f in fs} - set(NIH_FINDINGS) - {"No Finding"})
    if unknown:
        report.note(f"{entry_path.name}: finding names outside the 14 ignored: {unknown}")
    boxes_by_image = _boxes_by_image(root, set(df["image"]), box_label_map, box_findings, report)
    listed = _official_lists(root, df["image"], report)
    files = _image_index(root)
    n_unlisted = len(set(files) - set(df["image"]))
    if n_unlisted:
        report.note(f"{n_unlisted} PNG files are not in {entry_path.name} (not listed)")

    def make_entry(item: tuple[Any, list[str]]) -> dict[str, Any] | None:
        row, fs = item
        if listed is not None and row.image not in listed:
            return None  # reported with the list files
        path = files.get(row.image)
        if path is None:
            raise DropItem(row.image, "image file missing")
        size = _png_size(path) if read_sizes else [int(s) for s in image_size]
        pairs = boxes_by_image.get(row.image, [])
        kept = []
        if pairs:
            ids = [f"{row.image}#{k}" for k in range(len(pairs))]
            kept = keep_valid_boxes(np.array([b for b, _ in pairs]), size, ids, report)
        entry = {
            "image": path.relative_to(root).as_posix(),
            "image_id": row.image,
            "patient_id": row.patient_id,
            "view": normalize_view(row.view),
            "image_size": size,
            "labels": {f: int(f in fs) for f in NIH_FINDINGS},
            "boxes": [pairs[k][0] for k in kept],
            "box_labels": [pairs[k][1] for k in kept],
        }
        if listed is not None:
            entry["split"] = listed[row.image]
        return entry

    entries = collect_entries(zip(df.itertuples(index=False), findings, strict=True), make_entry, report)
    if listed is None:
        datalist = split_entries(entries, val_fraction, test_fraction, split_seed)
    else:
        # the official test list is kept whole; validation patients are drawn from train_val_list.txt's
        datalist = split_entries(
            entries, val_fraction, 0.0, split_seed, fixed=lambda e: "test" if e["split"] == "test" else None
        )
        train_val_patients = {e["patient_id"] for split in ("training", "validation") for e in datalist[split]}
        patients_in_both = {e["patient_id"] for e in datalist["test"]} & train_val_patients
        if patients_in_both:
            report.note(f"{len(patients_in_both)} patients have images in both the official train_val and test lists")
    report.count(datalist, lambda e: e["labels"]["Pneumonia"] == 1)
    return datalist, report


def _boxes_by_image(
    root: Path,
    images: set[str],
    box_label_map: Mapping[str, str],
    box_findings: Sequence[str] | None,
    report: AdapterReport,
) -> dict[str, list[tuple[list[float], str]]]:
    """``BBox_List_2017.csv`` as image -> ``[(box, label), ...]``, labels renamed, boxes of images not in
    ``images`` or of findings not in ``box_findings`` reported as drops; ``{}`` (noted) without the file."""
    bbox_path = root / "BBox_List_2017.csv"
    if not bbox_path.is_file():
        report.note("no BBox_List_2017.csv: no boxes")
        return {}
    bbox = read_bbox_list(bbox_path)
    renamed = sorted(set(box_label_map) & set(bbox["label"]))
    bbox["label"] = bbox["label"].map(lambda s: box_label_map.get(s, s))
    if renamed:
        report.note(
            f"box labels renamed to Data_Entry names: {', '.join(f'{k} -> {box_label_map[k]}' for k in renamed)}"
        )
    boxes_by_image: dict[str, list[tuple[list[float], str]]] = {}
    for row in bbox.itertuples(index=False):
        if row.image not in images:
            report.drop(f"{row.image} (BBox line {row.line})", "box for an image not in Data_Entry")
        elif box_findings is not None and row.label not in box_findings:
            report.drop(f"{row.image} (BBox line {row.line})", f"box label {row.label} not requested")
        else:
            boxes_by_image.setdefault(row.image, []).append(([row.x0, row.y0, row.x1, row.y1], row.label))
    return boxes_by_image


def _official_lists(root: Path, images: pd.Series, report: AdapterReport) -> dict[str, str] | None:
    """Image name -> ``"test"`` or ``"train_val"`` from the official list files; images in neither are reported
    as drops. ``None`` (noted) when the list files are absent.

    Raises:
        DatalistError: an image in both lists.
    """
    train_val_path, test_path = root / "train_val_list.txt", root / "test_list.txt"
    if not (train_val_path.is_file() and test_path.is_file()):
        report.note("train_val_list.txt / test_list.txt not found: split by patient instead of the official split")
        return None
    test_names, train_val_names = set(_read_list(test_path)), set(_read_list(train_val_path))
    both = sorted(test_names & train_val_names)
    if both:
        raise DatalistError(f"{root}: {len(both)} images in both train_val_list.txt and test_list.txt, e.g. {both[0]}")
    for name in sorted(set(images) - test_names - train_val_names):
        report.drop(name, "image in neither train_val_list.txt nor test_list.txt")
    return {**dict.fromkeys(train_val_names, "train_val"), **dict.fromkeys(test_names, "test")}
