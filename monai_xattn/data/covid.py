"""covid-chestxray-dataset (ieee8023) -> datalist, with the severity scores where rated.

``metadata.csv`` has 29 named columns and a trailing empty one; an image is ``<folder>/<filename>`` (``images``
or ``volumes``); ``finding`` is ``/``-hierarchical (``Pneumonia/Viral/COVID-19``). Severity scores
(``annotations/covid-severity-scores.csv``, ``##`` comment lines first) give ``geographic_mean`` (extent, 0-8) and
``opacity_mean`` (0-6), each the mean of three raters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_xattn.data.adapter import DropItem, collect_entries, split_entries
from monai_xattn.data.datalist import (
    VIEWS,
    AdapterReport,
    DatalistError,
    as_names,
    check_unique,
    normalize_view,
    read_table,
    require_columns,
)

__all__ = ["COVID_COLUMNS", "finding_labels", "read_severity_scores", "build_covid_datalist"]

COVID_COLUMNS = (
    "patientid", "offset", "sex", "age", "finding", "RT_PCR_positive", "survival", "intubated", "intubation_present",
    "went_icu", "in_icu", "needed_supplemental_O2", "extubated", "temperature", "pO2_saturation", "leukocyte_count",
    "neutrophil_count", "lymphocyte_count", "view", "modality", "date", "location", "folder", "filename", "doi", "url",
    "license", "clinical_notes", "other_notes",
)  # fmt: skip
"""The 29 named columns of ``metadata.csv``."""

_REQUIRED = ("patientid", "finding", "view", "modality", "folder", "filename")
_UNUSABLE_FINDINGS = ("todo", "unknown")


def finding_labels(finding: str) -> dict[str, int]:
    """Every level of a hierarchical finding, set to 1: ``"Pneumonia/Viral/COVID-19"`` ->
    ``{"Pneumonia": 1, "Pneumonia/Viral": 1, "Pneumonia/Viral/COVID-19": 1}``."""
    parts = [p.strip() for p in finding.split("/") if p.strip()]
    return {"/".join(parts[: k + 1]): 1 for k in range(len(parts))}


def read_severity_scores(path: str | os.PathLike) -> pd.DataFrame:
    """``covid-severity-scores.csv`` (``##`` comment lines skipped) indexed by ``filename``, float columns
    ``geographic_mean`` and ``opacity_mean``."""
    path = Path(path)
    df = read_table(path, comment="#")
    require_columns(df, ["filename", "geographic_mean", "opacity_mean"], path)
    check_unique(df["filename"], path, "filename")
    scores = df[["geographic_mean", "opacity_mean"]].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = scores.index[~np.isfinite(scores).all(axis=1)]
    if len(bad):
        raise DatalistError(f"{path}: line {int(bad[0]) + 2}: score is not a number: {df.loc[bad[0]].tolist()}")
    scores.index = df["filename"]
    return scores


def build_covid_datalist(
    root: str | os.PathLike,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    modalities: Sequence[str] = ("X-ray",),
    views: Sequence[str] | None = None,
    severity_csv: str | os.PathLike | None = None,
) -> tuple[dict[str, list], AdapterReport]:
    """covid-chestxray-dataset folder -> datalist, one entry per image, split by patient (seeded).

    Args:
        root: the repository folder (``metadata.csv``, ``images/``, ``annotations/``).
        split_seed: seed of the patient split.
        val_fraction: fraction of patients for validation.
        test_fraction: fraction of patients for test.
        modalities: kept ``modality`` values (CT rows are reported drops by default).
        views: kept normalised views (``PA``, ``AP``, ``LATERAL``, ``OTHER``); ``None`` keeps all.
        severity_csv: severity scores; default ``annotations/covid-severity-scores.csv`` when present.

    Returns:
        ``(datalist, report)``. Entries: ``image, image_id, patient_id, view, labels`` (every finding level),
        ``finding``, ``report_text`` (clinical notes, when any) and ``severity``
        (``{"geographic_mean", "opacity_mean"}``) for rated images.
    """
    root = Path(root)
    views = as_names(views, "views", VIEWS)
    modalities = as_names(modalities, "modalities")
    report = AdapterReport("covid", positive_rule="finding under Pneumonia")
    meta_path = root / "metadata.csv"
    df = read_table(meta_path)
    require_columns(df, _REQUIRED, meta_path, report, known=COVID_COLUMNS)
    df["image"] = df["folder"] + "/" + df["filename"]
    check_unique(df["image"], meta_path, "image (folder/filename)")
    scores = _severity_scores(root, severity_csv, df["filename"], report)

    def make_entry(candidate: tuple[int, dict[str, str]]) -> dict[str, Any]:
        i, row = candidate
        item = f"{row['image']} (line {int(i) + 2})"
        view = normalize_view(row["view"])
        if row["modality"] not in modalities:
            raise DropItem(item, f"modality {row['modality'] or 'blank'}")
        if row["finding"].strip().lower() in _UNUSABLE_FINDINGS or not row["finding"].strip():
            raise DropItem(item, f"finding {row['finding'] or 'blank'!r} unusable")
        if views is not None and view not in views:
            raise DropItem(item, f"view {view} not in {views}")
        if not row["patientid"]:
            raise DropItem(item, "blank patientid")
        if not (root / row["image"]).is_file():
            raise DropItem(item, "image file missing")
        entry = {
            "image": row["image"],
            "image_id": row["filename"],
            "patient_id": row["patientid"],
            "view": view,
            "finding": row["finding"],
            "labels": finding_labels(row["finding"]),
        }
        if row.get("clinical_notes"):
            entry["report_text"] = row["clinical_notes"]
        if scores is not None and row["filename"] in scores.index:
            entry["severity"] = {k: float(v) for k, v in scores.loc[row["filename"]].items()}
        return entry

    entries = collect_entries(zip(df.index, df.to_dict("records"), strict=True), make_entry, report)
    if scores is not None:
        report.note(f"{sum('severity' in e for e in entries)} listed images carry severity scores")
    datalist = split_entries(entries, val_fraction, test_fraction, split_seed)
    report.count(datalist, lambda e: e["labels"].get("Pneumonia") == 1)
    return datalist, report


def _severity_scores(
    root: Path, severity_csv: str | os.PathLike | None, filenames: pd.Series, report: AdapterReport
) -> pd.DataFrame | None:
    """:func:`read_severity_scores` of ``severity_csv``, or of the repository's own file when present; scored
    files missing from ``filenames`` (``metadata.csv``) are noted. ``None`` without a file."""
    default = root / "annotations" / "covid-severity-scores.csv"
    path = Path(severity_csv) if severity_csv else default if default.is_file() else None
    if path is None:
        return None
    scores = read_severity_scores(path)
    unknown = sorted(set(scores.index) - set(filenames))
    if unknown:
        report.note(f"{len(unknown)} severity-scored files are not in metadata.csv, e.g. {unknown[0]}")
    return scores
