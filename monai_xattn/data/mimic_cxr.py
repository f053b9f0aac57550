"""MIMIC-CXR (DICOM) and MIMIC-CXR-JPG -> datalist.

Tree ``files/p<subject[:2]>/p<subject_id>/s<study_id>/<dicom_id>.dcm`` (``.jpg`` in MIMIC-CXR-JPG), one report per
study at ``files/p<subject[:2]>/p<subject_id>/s<study_id>.txt``. Tables at the root (``.csv.gz`` or ``.csv``):
``mimic-cxr-2.0.0-metadata`` (``dicom_id, subject_id, study_id, ..., ViewPosition, Rows, Columns, ...``),
``mimic-cxr-2.0.0-split`` (``dicom_id, study_id, subject_id, split`` in train/validate/test) and, for labels,
``mimic-cxr-2.0.0-chexpert`` or ``-negbio`` (``subject_id, study_id`` + 14 labels, per study).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_xattn.data.chexpert import CHEXPERT_LABELS, apply_uncertainty_policy
from monai_xattn.data.datalist import (
    SPLITS,
    VIEWS,
    AdapterReport,
    DatalistError,
    as_names,
    check_allowed,
    check_positive_integers,
    check_unique,
    dicom_header,
    find_one,
    normalize_view,
    read_table,
    require_columns,
    split_groups,
)

__all__ = [
    "MIMIC_SPLITS",
    "mimic_image_path",
    "mimic_report_path",
    "attach_phantom_boxes",
    "build_mimic_cxr_datalist",
    "build_mimic_cxr_jpg_datalist",
]

MIMIC_SPLITS = {"train": "training", "validate": "validation", "test": "test"}
"""Official split name -> datalist split."""

_METADATA = ("dicom_id", "subject_id", "study_id", "ViewPosition", "Rows", "Columns")
_METADATA_KNOWN = (
    "PerformedProcedureStepDescription", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning",
)  # fmt: skip


def mimic_image_path(subject_id: str, study_id: str, dicom_id: str, suffix: str = ".dcm") -> str:
    """``files/p10/p10000032/s50414267/<dicom_id>.dcm`` (relative to the dataset root)."""
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}/{dicom_id}{suffix}"


def mimic_report_path(subject_id: str, study_id: str) -> str:
    """``files/p10/p10000032/s50414267.txt`` (relative to the dataset root)."""
    return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}.txt"


def _table(root: Path, name: str) -> Path | None:
    hits = [root / f"mimic-cxr-2.0.0-{name}.csv{ext}" for ext in (".gz", "")]
    return next((h for h in hits if h.is_file()), None)


def _study_labels(
    path: Path, uncertain: str | Mapping[str, str], report: AdapterReport
) -> dict[tuple[str, str], dict[str, int]]:
    """(subject_id, study_id) -> labels; blank (not mentioned) labels are left out."""
    df = read_table(path)
    require_columns(df, ("subject_id", "study_id", *CHEXPERT_LABELS), path, report)
    check_unique(df["subject_id"] + "/" + df["study_id"], path, "study")
    values = df[list(CHEXPERT_LABELS)].replace("", np.nan).apply(pd.to_numeric, errors="coerce")
    bad = (values.notna() & ~values.isin([1.0, 0.0, -1.0])) | (values.isna() & (df[list(CHEXPERT_LABELS)] != ""))
    if bad.any(axis=None):
        i = int(bad.any(axis=1).idxmax())
        raise DatalistError(f"{path}: line {i + 2}: labels must be 1, 0, -1 or blank, got {df.loc[i].tolist()}")
    values = apply_uncertainty_policy(values, uncertain, blank=None)
    records = values.to_dict("records")
    return {
        (s, t): {k: int(v) for k, v in rec.items() if not pd.isna(v)}
        for s, t, rec in zip(df["subject_id"], df["study_id"], records, strict=True)
    }


def _metadata_from_headers(records: Path, root: Path, report: AdapterReport) -> pd.DataFrame:
    """The metadata table's needed columns, rebuilt from ``cxr-record-list`` + each DICOM header.

    MIMIC-CXR (DICOM) ships ``cxr-record-list.csv.gz`` (``subject_id, study_id, dicom_id, path``); the metadata
    table belongs to MIMIC-CXR-JPG. Files that are missing or unreadable are reported drops.
    """
    table = read_table(records)
    require_columns(table, ("subject_id", "study_id", "dicom_id", "path"), records, report)
    check_unique(table["dicom_id"], records, "dicom_id")
    rows = []
    for rec in table.to_dict("records"):
        path = root / rec["path"]
        if not path.is_file():
            report.drop(rec["dicom_id"], "image file missing")
            continue
        try:
            header = dicom_header(path)
        except DatalistError as exc:
            report.drop(rec["dicom_id"], str(exc).split(": ", 1)[1])
            continue
        w, h = header["image_size"]
        rows.append([rec["dicom_id"], rec["subject_id"], rec["study_id"], header["view"], str(h), str(w)])
    report.note(f"no mimic-cxr-2.0.0-metadata table: views and sizes read from the DICOM headers ({records.name})")
    return pd.DataFrame(rows, columns=list(_METADATA), dtype=str)


def attach_phantom_boxes(
    entries: Iterable[Mapping[str, Any]], root: str | os.PathLike, findings: Sequence[str] = ("pneumonia",)
) -> list[dict[str, Any]]:
    """Give phantom MIMIC-CXR entries the boxes of their ground-truth sidecar (``ground_truth/<image_id>.json``).

    The real MIMIC-CXR has no boxes (the paper annotated its own test set); the phantom writes them beside the
    dataset. Entries without a sidecar (lateral views, real data) are returned unchanged. Boxes are StandardMode in
    original pixels, labels ``"Pneumonia"``, as the ChestX-ray8 adapter writes them.

    Returns:
        new entry dicts (the inputs are not modified).
    """
    root = Path(root)
    out = []
    for entry in entries:
        entry = dict(entry)
        sidecar = root / "ground_truth" / f"{entry.get('image_id')}.json"
        if sidecar.is_file():
            record = json.loads(sidecar.read_text())
            boxes = [f["box"] for f in record.get("findings", []) if f.get("type") in findings and f.get("box")]
            entry["boxes"] = [[float(v) for v in b] for b in boxes]
            entry["box_labels"] = ["Pneumonia"] * len(boxes)
        out.append(entry)
    return out


def build_mimic_cxr_datalist(
    root: str | os.PathLike,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    jpg: bool = False,
    views: Sequence[str] | None = None,
    label_source: str | None = "chexpert",
    uncertain: str | Mapping[str, str] = "ignore",
    phantom_boxes: bool = False,
) -> tuple[dict[str, list], AdapterReport]:
    """MIMIC-CXR (or -JPG with ``jpg=True``) folder -> datalist, one entry per image (all views by default).

    Split: the official ``split`` table; without it, by patient with ``val_fraction`` / ``test_fraction``
    (noted). Images absent from the split table, from disk, or of an unwanted view are reported drops. Without
    the metadata table (a MIMIC-CXR DICOM download holds ``cxr-record-list.csv.gz`` instead), images come from
    the record list and view and size from each DICOM header (noted).

    Args:
        root: dataset folder (tables at the root, images under ``files/``).
        split_seed: seed of the fallback patient split.
        val_fraction: fallback validation fraction of patients.
        test_fraction: fallback test fraction of patients.
        jpg: MIMIC-CXR-JPG layout (``.jpg`` images).
        views: kept normalised views, e.g. ``("PA", "AP")``; ``None`` keeps all.
        label_source: ``"chexpert"``, ``"negbio"`` or ``None`` (no labels).
        uncertain: uncertainty policy for -1 labels (see ``chexpert.apply_uncertainty_policy``).
        phantom_boxes: give the entries of a phantom MIMIC-CXR the pneumonia boxes of its ground-truth sidecars
            (:func:`attach_phantom_boxes`), to evaluate localization; a no-op on the real dataset.

    Returns:
        ``(datalist, report)``. Entries: ``image, image_id, patient_id, study_id, view, image_size, split``,
        ``report`` (when the study's ``.txt`` exists), ``labels`` (study level; blank labels left out) and, with
        ``phantom_boxes``, ``boxes`` and ``box_labels`` where the phantom has a sidecar.
    """
    root = Path(root)
    views = as_names(views, "views", VIEWS)
    name = "mimic-cxr-jpg" if jpg else "mimic-cxr"
    report = AdapterReport(name, positive_rule="study label Pneumonia = 1")
    meta_path = _table(root, "metadata")
    records = next((p for p in (root / "cxr-record-list.csv.gz", root / "cxr-record-list.csv") if p.is_file()), None)
    if meta_path is None and records is not None and not jpg:
        meta_path, meta = records, _metadata_from_headers(records, root, report)
    else:
        if meta_path is None:
            meta_path = find_one(root, ["mimic-cxr-2.0.0-metadata.csv*"], "MIMIC-CXR metadata")
        meta = read_table(meta_path)
        require_columns(meta, _METADATA, meta_path, report, known=_METADATA_KNOWN)
    check_unique(meta["dicom_id"], meta_path, "dicom_id")
    # NaN, inf ("1e999") and fractions would become nonsense sizes in astype(int) below
    size = check_positive_integers(meta, ["Columns", "Rows"], meta_path)

    split_path = _table(root, "split")
    official: dict[str, str] = {}
    if split_path is not None:
        table = read_table(split_path)
        require_columns(table, ("dicom_id", "study_id", "subject_id", "split"), split_path, report)
        check_unique(table["dicom_id"], split_path, "dicom_id")
        check_allowed(table["split"], MIMIC_SPLITS, split_path, "split")
        official = dict(zip(table["dicom_id"], table["split"], strict=True))
        n_unknown = len(set(official) - set(meta["dicom_id"]))
        if n_unknown:
            report.note(f"{n_unknown} dicom_ids of {split_path.name} are not in {meta_path.name} (not listed)")
    else:
        report.note("no mimic-cxr-2.0.0-split table: split by patient instead of the official split")

    labels: dict[tuple[str, str], dict[str, int]] | None = None
    if label_source is not None:
        if label_source not in ("chexpert", "negbio"):
            raise ValueError(f"label_source must be 'chexpert', 'negbio' or None, got {label_source!r}")
        label_path = _table(root, label_source)
        if label_path is None:
            report.note(f"no mimic-cxr-2.0.0-{label_source} table: entries carry no labels")
        else:
            labels = _study_labels(label_path, uncertain, report)

    suffix = ".jpg" if jpg else ".dcm"
    entries = []
    n_no_report = n_no_labels = 0
    for row, (w, h) in zip(meta.to_dict("records"), size.astype(int).to_numpy().tolist(), strict=True):
        dicom_id, subject, study = row["dicom_id"], row["subject_id"], row["study_id"]
        view = normalize_view(row["ViewPosition"])
        image = mimic_image_path(subject, study, dicom_id, suffix)
        if views is not None and view not in views:
            report.drop(dicom_id, f"view {view} not in {views}")
        elif split_path is not None and dicom_id not in official:
            report.drop(dicom_id, "not in the split table")
        elif not (root / image).is_file():
            report.drop(dicom_id, "image file missing")
        else:
            entry = {
                "image": image,
                "image_id": dicom_id,
                "patient_id": subject,
                "study_id": study,
                "view": view,
                "image_size": [w, h],
            }
            if split_path is not None:
                entry["split"] = official[dicom_id]
            report_path = mimic_report_path(subject, study)
            if (root / report_path).is_file():
                entry["report"] = report_path
            else:
                n_no_report += 1
            if labels is not None:
                study_labels = labels.get((subject, study))
                if study_labels is None:
                    n_no_labels += 1
                else:
                    entry["labels"] = study_labels
            entries.append(entry)
    if phantom_boxes:
        entries = attach_phantom_boxes(entries, root)
    if n_no_report:
        report.note(f"{n_no_report} images have no report file (listed without 'report')")
    if n_no_labels:
        report.note(f"{n_no_labels} images' studies are not in the {label_source} table (listed without 'labels')")

    datalist: dict[str, list] = {s: [] for s in SPLITS}
    if split_path is not None:
        for e in entries:
            datalist[MIMIC_SPLITS[e["split"]]].append(e)
    else:
        split_of = split_groups((e["patient_id"] for e in entries), val_fraction, test_fraction, split_seed)
        for e in entries:
            datalist[split_of[e["patient_id"]]].append(e)
    report.count(datalist, lambda e: e.get("labels", {}).get("Pneumonia") == 1)
    return datalist, report


def build_mimic_cxr_jpg_datalist(root: str | os.PathLike, **kwargs) -> tuple[dict[str, list], AdapterReport]:
    """:func:`build_mimic_cxr_datalist` for the MIMIC-CXR-JPG layout (``.jpg`` images, same tables)."""
    return build_mimic_cxr_datalist(root, jpg=True, **kwargs)


# introspection (help(), the CLI's option check) sees the real options
_signature = inspect.signature(build_mimic_cxr_datalist)
build_mimic_cxr_jpg_datalist.__signature__ = _signature.replace(
    parameters=[p for name, p in _signature.parameters.items() if name != "jpg"]
)
