"""CheXpert (Stanford) -> datalist, uncertainty policies, and GLoRIA's CheXpert 5x200 evaluation set.

``train.csv`` / ``valid.csv``: ``Path,Sex,Age,Frontal/Lateral,AP/PA`` + 14 labels (1, 0, -1 uncertain, blank not
mentioned). ``Path`` starts with ``CheXpert-v1.0-small/`` (or ``CheXpert-v1.0/``), stripped here so paths are
relative to the folder holding the CSVs. The original release has no reports; impressions come from a separate
CSV (GLoRIA's private ``master_updated.csv``: ``Path, Report Impression``; CheXpert Plus:
``path_to_image, section_impression``) joined as ``report_text``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_xattn.data.adapter import DropItem, collect_entries, split_entries
from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    check_unique,
    normalize_view,
    read_table,
    require_columns,
)

__all__ = [
    "CHEXPERT_LABELS",
    "COMPETITION_TASKS",
    "UNCERTAINTY_POLICIES",
    "GLORIA_UNCERTAINTY_POLICY",
    "strip_chexpert_prefix",
    "apply_uncertainty_policy",
    "build_5x200",
    "build_chexpert_datalist",
    "build_chexpert_5x200_datalist",
]

CHEXPERT_LABELS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
    "Support Devices",
)  # fmt: skip
"""The 14 labels in ``train.csv`` column order (MIMIC-CXR's CheXpert labels use the same names)."""

COMPETITION_TASKS = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
"""The five CheXpert competition tasks; the classes of 5x200."""

UNCERTAINTY_POLICIES = ("zeros", "ones", "ignore")
"""What an uncertain (-1) label becomes: 0, 1, or kept as -1 for the loss to mask."""

GLORIA_UNCERTAINTY_POLICY = {
    "Atelectasis": "ones", "Edema": "ones", "Pleural Effusion": "ones", "Cardiomegaly": "zeros", "Consolidation": "zeros",
}  # fmt: skip
"""GLoRIA's linear-probe mapping (U-Ones / U-Zeros per task, from the CheXpert paper's best choices)."""

_META = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")
_REPORT_COLUMNS = (("Path", "Report Impression"), ("path_to_image", "section_impression"))


def strip_chexpert_prefix(path: str) -> str:
    """``CheXpert-v1.0-small/train/p/s/v.jpg`` -> ``train/p/s/v.jpg``; other paths unchanged."""
    head, _, rest = path.partition("/")
    return rest if head.startswith("CheXpert-v1.0") else path


def apply_uncertainty_policy(
    labels: pd.DataFrame, policy: str | Mapping[str, str], blank: int | None = 0
) -> pd.DataFrame:
    """Map uncertain (-1) and blank labels, column by column.

    Args:
        labels: label columns holding 1, 0, -1 or NaN (blank).
        policy: one of :data:`UNCERTAINTY_POLICIES` for every column, or a column -> policy mapping (columns not
            named keep -1, i.e. ``ignore``).
        blank: value for blank (not mentioned) labels; ``None`` keeps NaN (the entry then omits the label).

    Returns:
        a new frame; values 1, 0, -1 (``ignore``) or NaN.
    """
    out = labels.copy()
    for column in out.columns:
        rule = policy if isinstance(policy, str) else policy.get(column, "ignore")
        if rule not in UNCERTAINTY_POLICIES:
            raise ValueError(f"uncertainty policy for {column!r} must be one of {UNCERTAINTY_POLICIES}, got {rule!r}")
        if rule != "ignore":
            out[column] = out[column].replace(-1.0, 1.0 if rule == "ones" else 0.0)
        if blank is not None:
            out[column] = out[column].fillna(float(blank))
    return out


def _read_labels(path: Path, report: AdapterReport | None) -> pd.DataFrame:
    df = read_table(path)
    require_columns(df, _META + CHEXPERT_LABELS, path, report)
    values = df[list(CHEXPERT_LABELS)].replace("", np.nan).apply(pd.to_numeric, errors="coerce")
    bad = (values.notna() & ~values.isin([1.0, 0.0, -1.0])) | (values.isna() & (df[list(CHEXPERT_LABELS)] != ""))
    if bad.any(axis=None):
        i = int(bad.any(axis=1).idxmax())
        column = bad.columns[bad.loc[i]][0]
        raise DatalistError(f"{path}: line {i + 2}: {column} must be 1, 0, -1 or blank, got {df[column][i]!r}")
    df[list(CHEXPERT_LABELS)] = values
    df["Path"] = df["Path"].map(strip_chexpert_prefix)
    check_unique(df["Path"], path, "Path")
    return df


def _read_reports(path: str | os.PathLike) -> pd.Series:
    """Stripped image path -> impression text."""
    path = Path(path)
    df = read_table(path)
    for path_col, text_col in _REPORT_COLUMNS:
        if path_col in df.columns and text_col in df.columns:
            paths = df[path_col].map(strip_chexpert_prefix)
            texts = pd.Series(df[text_col].to_numpy(), index=paths)
            return texts[~texts.index.duplicated()]
    raise DatalistError(f"{path}: need columns {' or '.join(map(str, _REPORT_COLUMNS))}; found {list(df.columns)}")


def build_5x200(
    df_or_root: pd.DataFrame | str | os.PathLike,
    seed: int = 0,
    *,
    n_per_class: int = 200,
    reports: pd.DataFrame | str | os.PathLike | None = None,
) -> pd.DataFrame:
    """CheXpert 5x200 as GLoRIA's ``preprocess_chexpert_5x200_data`` builds it, with a seed.

    Blank -> 0; frontal only; for each task of :data:`COMPETITION_TASKS` the rows with that label 1, the other
    four 0, and every other label except No Finding 0 (so -1 anywhere drops the row); ``n_per_class`` sampled
    with ``DataFrame.sample(random_state=seed)``. GLoRIA sampled unseeded, so its exact set is not
    reproducible; ``seed=0`` equals MGCA's variant. Name the seed when reporting numbers.

    Args:
        df_or_root: ``train.csv`` as read by pandas (labels numeric), or the folder holding it.
        seed: sampling seed.
        n_per_class: images per class.
        reports: impression CSV (path or frame with ``Path, Report Impression``), merged as in GLoRIA (left).

    Returns:
        ``n_per_class * 5`` rows of ``train.csv`` plus ``class`` (and ``Report Impression`` with ``reports``).
    """
    if isinstance(df_or_root, pd.DataFrame):
        df = df_or_root.copy()
    else:
        df = pd.read_csv(Path(df_or_root) / "train.csv")
    df = df.fillna(0)
    df = df[df["Frontal/Lateral"] == "Frontal"]
    others = [c for c in CHEXPERT_LABELS if c not in COMPETITION_TASKS and c != "No Finding"]
    parts = []
    for task in COMPETITION_TASKS:
        wanted = (df[task] == 1) & (df[[t for t in COMPETITION_TASKS if t != task] + others] == 0).all(axis=1)
        candidates = df[wanted]
        if len(candidates) < n_per_class:
            raise DatalistError(f"CheXpert 5x200: only {len(candidates)} frontal images qualify for {task}")
        parts.append(candidates.sample(n=n_per_class, random_state=seed).assign(**{"class": task}))
    out = pd.concat(parts, ignore_index=True)
    if reports is not None:
        table = reports if isinstance(reports, pd.DataFrame) else pd.read_csv(reports)
        out = out.merge(table[["Path", "Report Impression"]], how="left", on="Path")
    return out


def _entry(row: Mapping, report_texts: pd.Series | None) -> dict:
    parts = row["Path"].split("/")
    patient = next((p for p in parts if p.startswith("patient")), parts[0])
    study = next((f"{patient}/{p}" for p in parts if p.startswith("study")), patient)
    frontal = row["Frontal/Lateral"] == "Frontal"
    entry = {
        "image": row["Path"],
        "image_id": row["Path"],
        "patient_id": patient,
        "study_id": study,
        "view": normalize_view(row["AP/PA"]) if frontal else "LATERAL",
        "labels": {c: int(row[c]) for c in CHEXPERT_LABELS if not pd.isna(row[c])},
    }
    if report_texts is not None and row["Path"] in report_texts.index and report_texts[row["Path"]]:
        entry["report_text"] = str(report_texts[row["Path"]])
    return entry


def build_chexpert_datalist(
    root: str | os.PathLike,
    *,
    split_seed: int = 0,
    val_fraction: float = 0.05,
    test_fraction: float = 0.15,
    uncertain: str | Mapping[str, str] = "ignore",
    blank: int | None = 0,
    frontal_only: bool = False,
    reports_csv: str | os.PathLike | None = None,
    require_report: bool = False,
    exclude_5x200_seed: int | None = None,
) -> tuple[dict[str, list], AdapterReport]:
    """CheXpert folder (``train.csv``, ``valid.csv``, ``train/``, ``valid/``) -> datalist.

    Split: ``valid.csv`` (the official labelled validation set, the test set of GLoRIA and most papers) -> test;
    ``train.csv`` -> training, with ``val_fraction`` of its patients -> validation. Without ``valid.csv`` all of
    ``train.csv`` is split by patient with ``test_fraction`` too (noted).

    Args:
        root: folder holding the CSVs (images at the CSV's paths minus the ``CheXpert-v1.0*/`` prefix).
        split_seed: seed of the patient split.
        val_fraction: fraction of training patients for validation.
        test_fraction: used only when ``valid.csv`` is absent.
        uncertain: uncertainty policy, one for all labels or per label (see :func:`apply_uncertainty_policy`).
        blank: value of blank labels; ``None`` leaves them out of ``labels``.
        frontal_only: drop lateral images (reported).
        reports_csv: impression CSV joined as ``report_text``.
        require_report: drop images without an impression (reported) instead of listing them without text.
        exclude_5x200_seed: drop the images of ``build_5x200(root, seed)`` from training/validation (as GLoRIA
            does before its linear probe).

    Returns:
        ``(datalist, report)``. Entries: ``image, image_id, patient_id, study_id, view, labels[, report_text]``,
        ``split`` (``train`` or ``valid``).
    """
    root = Path(root)
    report = AdapterReport("chexpert", positive_rule="any label = 1 except No Finding")
    texts = _read_reports(reports_csv) if reports_csv else None
    excluded: set[str] = set()
    if exclude_5x200_seed is not None:
        excluded = set(build_5x200(root, exclude_5x200_seed)["Path"].map(strip_chexpert_prefix))
        report.note(f"{len(excluded)} 5x200 images (seed {exclude_5x200_seed}) left out of training/validation")

    tables = {"train": root / "train.csv", "valid": root / "valid.csv"}
    if not tables["train"].is_file():
        raise DatalistError(f"{root}: no train.csv")
    official = tables["valid"].is_file()
    if not official:
        report.note("no valid.csv: test split drawn from train.csv patients")

    def make_entry(candidate: tuple[str, dict[str, Any]]) -> dict[str, Any] | None:
        name, row = candidate
        image = row["Path"]
        if frontal_only and row["Frontal/Lateral"] != "Frontal":
            raise DropItem(image, "lateral view (frontal_only)")
        if name == "train" and image in excluded:
            return None  # counted in the note on the 5x200 images
        if not (root / image).is_file():
            raise DropItem(image, "image file missing")
        entry = _entry(row, texts)
        if require_report and "report_text" not in entry:
            raise DropItem(image, "no impression in reports_csv")
        entry["split"] = name
        return entry

    entries = []
    for name, path in tables.items():
        if path.is_file():
            df = _read_labels(path, report)
            df[list(CHEXPERT_LABELS)] = apply_uncertainty_policy(df[list(CHEXPERT_LABELS)], uncertain, blank)
            entries += collect_entries(((name, row) for row in df.to_dict("records")), make_entry, report)
    if texts is not None:
        n_without = sum("report_text" not in e for e in entries)
        if n_without:
            report.note(f"{n_without} images have no impression in {Path(reports_csv).name}")

    # valid.csv is the test set; validation patients come from train.csv
    datalist = split_entries(
        entries,
        val_fraction,
        0.0 if official else test_fraction,
        split_seed,
        fixed=lambda e: "test" if e["split"] == "valid" else None,
    )
    report.count(datalist, lambda e: any(v == 1 for k, v in e["labels"].items() if k != "No Finding"))
    return datalist, report


def build_chexpert_5x200_datalist(
    root: str | os.PathLike, *, seed: int = 0, reports_csv: str | os.PathLike | None = None, n_per_class: int = 200
) -> tuple[dict[str, list], AdapterReport]:
    """The :func:`build_5x200` set as a datalist whose ``test`` split holds the ``5 * n_per_class`` images.

    Entries as :func:`build_chexpert_datalist`'s, plus ``class`` (the task the image stands for) and
    ``split = "5x200"``.
    """
    root = Path(root)
    report = AdapterReport("chexpert-5x200", positive_rule="all images (one class each)")
    report.note(f"CheXpert 5x200 sampled with seed {seed} (GLoRIA's own draw was unseeded)")
    df = _read_labels(root / "train.csv", report)
    table = build_5x200(df, seed, n_per_class=n_per_class)
    texts = _read_reports(reports_csv) if reports_csv else None

    def make_entry(row: dict[str, Any]) -> dict[str, Any]:
        if not (root / row["Path"]).is_file():
            raise DropItem(row["Path"], "image file missing")
        return {**_entry(row, texts), "class": row["class"], "split": "5x200"}

    entries = collect_entries(table.to_dict("records"), make_entry, report)
    datalist = {"training": [], "validation": [], "test": entries}
    report.count(datalist, lambda e: True)
    return datalist, report
