"""Pieces every dataset adapter shares: the report it prints, splits, box checks, datalist JSON I/O.

A datalist is MONAI's JSON layout ``{"training": [...], "validation": [...], "test": [...]}`` whose entries
follow ``docs/datalists.md``; paths inside are relative to the dataset root.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monai_xattn.utils.boxes import check_boxes, xywh_to_xyxy
from monai_xattn.utils.paths import ensure_outside as _ensure_outside

__all__ = [
    "datalist_split",
    "SPLITS",
    "PATH_KEYS",
    "AdapterReport",
    "DatalistError",
    "VIEWS",
    "normalize_view",
    "as_names",
    "xywh_to_xyxy",
    "check_boxes",
    "split_groups",
    "assign_splits",
    "read_text",
    "read_csv_records",
    "read_table",
    "require_columns",
    "check_unique",
    "check_allowed",
    "check_positive_integers",
    "find_one",
    "validate_datalist",
    "write_datalist",
    "load_datalist",
    "ensure_outside",
    "dicom_header",
]

SPLITS: tuple[str, ...] = ("training", "validation", "test")
"""The datalist's split keys, in MONAI's decathlon naming."""

PATH_KEYS: tuple[str, ...] = ("image", "report", "mask")
"""Entry keys holding paths relative to the dataset root."""


class DatalistError(ValueError):
    """A dataset folder or datalist that cannot be turned into a correct datalist; the message says where."""


@dataclass
class AdapterReport:
    """What an adapter found, kept and dropped. ``print(report)`` gives the summary the CLI shows.

    Attributes:
        dataset: dataset name.
        images: number of datalist entries (images) over all splits.
        studies: distinct ``study_id`` values (0 when the dataset has no study level).
        patients: distinct ``patient_id`` values.
        boxes: boxes over all entries.
        positives: entries counted positive, by ``positive_rule``.
        positive_rule: what "positive" means for this dataset (e.g. ``"Target = 1"``).
        splits: entries per split.
        drops: ``(id, reason)`` for every image, box or row left out.
        notes: anything else a user should know (auto-detected modes, extra columns, fallbacks).
    """

    dataset: str
    images: int = 0
    studies: int = 0
    patients: int = 0
    boxes: int = 0
    positives: int = 0
    positive_rule: str = ""
    splits: dict[str, int] = field(default_factory=dict)
    drops: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def drop(self, item_id: str, reason: str) -> None:
        """Record that ``item_id`` (an image, a box ``image#k`` or a CSV row) was left out, and why."""
        self.drops.append((str(item_id), reason))

    def note(self, message: str) -> None:
        self.notes.append(message)

    def count(
        self, datalist: Mapping[str, Sequence[Mapping[str, Any]]], is_positive: Callable[[Mapping], bool]
    ) -> None:
        """Fill the counters from the finished ``datalist``; ``is_positive(entry)`` decides positives."""
        entries = [e for split in SPLITS for e in datalist.get(split, [])]
        self.splits = {split: len(datalist.get(split, [])) for split in SPLITS}
        self.images = len(entries)
        self.studies = len({e["study_id"] for e in entries if e.get("study_id")})
        self.patients = len({e["patient_id"] for e in entries if e.get("patient_id")})
        self.boxes = sum(len(e.get("boxes", ())) for e in entries)
        self.positives = sum(bool(is_positive(e)) for e in entries)

    def drop_summary(self) -> list[tuple[str, int, list[str]]]:
        """``(reason, count, first ids)`` per distinct reason, most frequent first."""
        by_reason: dict[str, list[str]] = {}
        for item_id, reason in self.drops:
            by_reason.setdefault(reason, []).append(item_id)
        return sorted(((r, len(ids), ids[:3]) for r, ids in by_reason.items()), key=lambda t: (-t[1], t[0]))

    def __str__(self) -> str:
        split_text = ", ".join(f"{k} {v}" for k, v in self.splits.items())
        lines = [
            f"{self.dataset}: {self.images} images, {self.studies} studies, {self.patients} patients, "
            f"{self.boxes} boxes, {self.positives} positives ({self.positive_rule})",
            f"  splits: {split_text}",
        ]
        if self.drops:
            lines.append(f"  dropped {len(self.drops)}:")
            for reason, n, ids in self.drop_summary():
                more = ", ..." if n > len(ids) else ""
                lines.append(f"    {n} x {reason} (e.g. {', '.join(ids)}{more})")
        else:
            lines.append("  dropped: none")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


_VIEWS = {
    "PA": "PA",
    "POSTERO_ANTERIOR": "PA",
    "AP": "AP",
    "AP SUPINE": "AP",
    "AP_SUPINE": "AP",
    "AP AXIAL": "AP",
    "ANTERO_POSTERIOR": "AP",
    "LATERAL": "LATERAL",
    "LL": "LATERAL",
    "RL": "LATERAL",
    "L": "LATERAL",
    "LAO": "OTHER",
    "RAO": "OTHER",
}


def normalize_view(value: object) -> str:
    """Map a dataset's view string (DICOM ViewPosition, MIMIC, CheXpert ``AP/PA``, covid ``AP Supine``/``L``)
    to one of ``PA``, ``AP``, ``LATERAL``, ``OTHER``. Blank, compound (``PA LLD``) and unknown values -> ``OTHER``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "OTHER"
    return _VIEWS.get(str(value).strip().upper(), "OTHER")


VIEWS: tuple[str, ...] = ("PA", "AP", "LATERAL", "OTHER")
"""The normalised view names of datalist entries."""


def as_names(
    values: str | Sequence[str] | None, option: str, allowed: Sequence[str] | None = None
) -> tuple[str, ...] | None:
    """An adapter's name-list option as a tuple (a bare string is one name, not its letters); ``None`` stays.

    Raises:
        ValueError: a name outside ``allowed``, naming the ``option``.
    """
    if values is None:
        return None
    names = (values,) if isinstance(values, str) else tuple(values)
    unknown = [n for n in names if allowed is not None and n not in allowed]
    if unknown:
        raise ValueError(f"{option}: unknown value(s) {unknown}; choose from {list(allowed)}")
    return names


def _sklearn_like_split(n: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(kept, held_out)`` of ``range(n)`` as ``sklearn.model_selection.train_test_split(...,
    test_size=holdout_fraction, random_state=seed)`` draws them: ``RandomState(seed).permutation(n)``, the
    first ``ceil(fraction * n)`` held out. Written from sklearn's documented ShuffleSplit algorithm; not
    checked against sklearn itself (it is not a dependency)."""
    n_holdout = math.ceil(holdout_fraction * n)
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_holdout:], perm[:n_holdout]


def split_groups(groups: Iterable[str], val_fraction: float, test_fraction: float, seed: int = 0) -> dict[str, str]:
    """Assign each distinct group (patient) to ``training``/``validation``/``test``.

    Follows GLoRIA's RSNA/SIIM preprocessing: the sorted distinct groups are split by
    ``train_test_split(test_size=val_fraction + test_fraction, random_state=seed)``, and the held-out part by
    ``train_test_split(test_size=val_fraction / (val_fraction + test_fraction), random_state=seed)`` whose
    first part is test and second validation (as GLoRIA unpacks it). The permutation is drawn with
    ``numpy.random.RandomState`` as sklearn does; identity with sklearn's output is not verified here.

    Args:
        groups: one group id per item (repeats allowed); items of a group always share a split.
        val_fraction: fraction of groups for validation, in ``[0, 1)``.
        test_fraction: fraction of groups for test, in ``[0, 1)``; ``val_fraction + test_fraction < 1``.
        seed: random state.

    Returns:
        group id -> split name.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) and sum below 1"
        )
    unique = np.array(sorted(set(groups)), dtype=object)
    holdout = val_fraction + test_fraction
    if len(unique) == 0 or holdout == 0:
        return dict.fromkeys(unique.tolist(), "training")
    train_idx, held_idx = _sklearn_like_split(len(unique), holdout, seed)
    test_idx, val_idx = _sklearn_like_split(len(held_idx), val_fraction / holdout, seed)
    assignment = dict.fromkeys(unique[train_idx].tolist(), "training")
    assignment.update(dict.fromkeys(unique[held_idx[val_idx]].tolist(), "validation"))
    assignment.update(dict.fromkeys(unique[held_idx[test_idx]].tolist(), "test"))
    return assignment


def assign_splits(entries: Iterable[dict[str, Any]], split_of: Callable[[dict[str, Any]], str]) -> dict[str, list]:
    """Group entries into a datalist by ``split_of(entry)`` (one of :data:`SPLITS`), keeping their order."""
    datalist: dict[str, list] = {split: [] for split in SPLITS}
    for entry in entries:
        datalist[split_of(entry)].append(entry)
    return datalist


_LINE_END = re.compile(rb"\r\n|\r|\n")


def read_text(path: str | os.PathLike) -> str:
    """A dataset's text file as ``str``: UTF-8 (a leading byte-order mark dropped), ``.gz`` decompressed.

    Raises:
        DatalistError: naming the file, when it is missing or not a readable gzip stream, and naming the line and
            byte when it is not UTF-8.
    """
    path = Path(path)
    if not path.is_file():
        raise DatalistError(f"{path}: file not found")
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile, a cut stream, a corrupt deflate block
            raise DatalistError(f"{path}: not a readable gzip file ({exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = len(_LINE_END.findall(data, 0, exc.start)) + 1
        raise DatalistError(
            f"{path}: line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at byte offset {exc.start}: {exc.reason})"
        ) from None


def read_csv_records(path: str | os.PathLike, *, comment: str | None = None) -> list[tuple[int, list[str]]]:
    """The records of a CSV, the header first, each with the line it starts on.

    Every adapter's rows pass through here, so every way a file can be broken is answered once, with the file and
    the line: bytes that are not UTF-8, a damaged gzip stream, a quote left open (Python's ``csv`` in strict mode;
    left lenient, an open quote swallows the rest of the file into one field), an empty file.

    Args:
        path: the CSV (``.csv`` or ``.csv.gz``).
        comment: lines whose first field starts with this string (after spaces) are skipped (covid severity
            scores open with ``##`` lines).

    Returns:
        ``(line, fields)`` per record, fields as written; the header is the first, blank lines are left out.

    Raises:
        DatalistError: naming the file, and the line where one is to blame.
    """
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    start = 1
    try:
        for fields in reader:
            line, start = start, reader.line_num + 1
            if len(fields) <= 1 and not "".join(fields).strip():
                continue  # a blank or whitespace-only line
            if comment is not None and fields[0].lstrip().startswith(comment):
                continue
            records.append((line, fields))
    except csv.Error as exc:
        raise DatalistError(f"{path}: line {start}: malformed CSV ({exc})") from None
    if not records:
        if not text.strip():
            raise DatalistError(f"{path}: the file is empty")
        raise DatalistError(f"{path}: no header line: only blank or comment lines, up to the end at line {start - 1}")
    return records


def read_table(path: str | os.PathLike, *, comment: str | None = None) -> pd.DataFrame:
    """Read a CSV (``.csv`` or ``.csv.gz``) with every cell as a stripped string, blanks as ``""``.

    Column names are stripped too (SIIM's header is ``ImageId, EncodedPixels``); a nameless column is called
    ``Unnamed: k`` as pandas does. The frame's index is the CSV line of each row minus 2, so ``index + 2``, which
    adapters print, is the line even after blank lines. Numbers are parsed by each adapter, where it can say which
    row was wrong.

    Raises:
        DatalistError: naming the file (see :func:`read_csv_records`), and the line of a row whose number of
            fields differs from the header's: such a row was cut short or has a separator too many or too few, so
            its values would sit in the wrong columns.
    """
    (header_line, header), *records = read_csv_records(path, comment=comment)
    names = [name.strip() or f"Unnamed: {k}" for k, name in enumerate(header)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatalistError(f"{path}: line {header_line}: column name(s) {repeated} appear more than once")
    width = len(names)
    rows, lines = [], []
    for line, fields in records:
        # even a missing or extra *empty* field is an error: a separator dropped or doubled mid-row looks the same
        # and shifts every later value into the wrong column (covid's rows all end with a comma, like its header)
        if len(fields) != width:
            raise DatalistError(
                f"{path}: line {line}: {len(fields)} fields where the header has {width} "
                f"(a line cut short or a separator too many or too few?): {fields[:12]}"
            )
        rows.append(fields)
        lines.append(line)
    index = pd.Index(np.asarray(lines, dtype=np.int64) - 2)
    df = pd.DataFrame(rows, columns=names, index=index, dtype=str)
    return df.apply(lambda column: column.str.strip()) if len(df.columns) else df


def require_columns(
    df: pd.DataFrame,
    required: Sequence[str],
    path: str | os.PathLike,
    report: AdapterReport | None = None,
    known: Sequence[str] = (),
) -> None:
    """Raise naming ``path`` and the missing columns; note columns neither required nor ``known``.

    Pandas names a header-less trailing column ``Unnamed: k``; those are ignored when empty.
    """
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatalistError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    extra = []
    for c in df.columns:
        if c in required or c in known:
            continue
        if c.startswith("Unnamed:") and not (df[c] != "").any():
            continue
        extra.append(c)
    if extra and report is not None:
        report.note(f"{Path(path).name}: ignored column(s) {extra}")


def check_unique(values: pd.Series, path: str | os.PathLike, what: str) -> None:
    """Raise naming the first duplicated value of ``values`` and its CSV rows (1-based, after the header)."""
    dup = values[values.duplicated(keep=False)]
    if len(dup):
        first = dup.iloc[0]
        rows = [int(i) + 2 for i in dup.index[dup == first][:5]]
        raise DatalistError(f"{path}: duplicate {what} {first!r} on lines {rows} ({dup.nunique()} duplicated ids)")


def check_allowed(values: pd.Series, allowed: Sequence[str], path: str | os.PathLike, what: str) -> None:
    """Raise naming the first CSV line whose value is not among ``allowed`` (e.g. an unknown split name)."""
    unknown = values.index[~values.isin(list(allowed))]
    if len(unknown):
        raise DatalistError(
            f"{path}: line {int(unknown[0]) + 2}: unknown {what} value(s) "
            f"{sorted(set(values[unknown]))} ({len(unknown)} rows); expected {list(allowed)}"
        )


def check_positive_integers(df: pd.DataFrame, columns: Sequence[str], path: str | os.PathLike) -> pd.DataFrame:
    """``df[columns]`` as numbers, every value a finite positive integer (image sizes).

    Raises:
        DatalistError: naming the first CSV line holding a value that is not (NaN, ``1e999``, a fraction, 0).
    """
    numbers = df[list(columns)].apply(pd.to_numeric, errors="coerce").astype(float)
    bad = numbers.index[~(np.isfinite(numbers) & (numbers > 0) & (numbers % 1 == 0)).all(axis=1)]
    if len(bad):
        i = bad[0]
        raise DatalistError(
            f"{path}: line {int(i) + 2}: {'/'.join(columns)} must be positive integers, got "
            f"{'/'.join(repr(df[c][i]) for c in columns)}"
        )
    return numbers


def find_one(root: Path, patterns: Sequence[str], what: str) -> Path:
    """The single file under ``root`` matching the first pattern that matches; a clear error otherwise."""
    for pattern in patterns:
        hits = sorted(root.glob(pattern))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise DatalistError(f"{root}: several {what} files match {pattern!r}: {[h.name for h in hits]}; pass one")
    raise DatalistError(f"{root}: no {what} file (looked for {list(patterns)})")


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _entry_problem(entry: object) -> str:
    """Why ``entry`` breaks the datalist schema, or ``""``."""
    if not isinstance(entry, dict):
        return f"entry is a {type(entry).__name__}, not an object"
    if not isinstance(entry.get("image"), str) or not entry["image"]:
        return "'image' must be a non-empty string"
    for key in ("image_id", "study_id", "patient_id", "report", "report_text", "mask", "split", "rle_mode"):
        if key in entry and not isinstance(entry[key], str):
            return f"{key!r} must be a string, got {type(entry[key]).__name__}"
    if "view" in entry and entry["view"] not in VIEWS:
        return f"'view' must be PA, AP, LATERAL or OTHER, got {entry['view']!r}"
    if "image_size" in entry:
        size = entry["image_size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
            return f"'image_size' must be [W, H] positive integers, got {size!r}"
    if "boxes" in entry:
        boxes = entry["boxes"]
        if not isinstance(boxes, list) or not all(
            isinstance(b, list) and len(b) == 4 and all(_is_number(v) for v in b) for b in boxes
        ):
            return "'boxes' must be a list of [x0, y0, x1, y1] number lists"
        if not all(math.isfinite(v) for b in boxes for v in b):  # json reads NaN/Infinity literals
            return "'boxes' coordinates must be finite numbers"
        if any(b[2] < b[0] or b[3] < b[1] for b in boxes):
            return "'boxes' must be StandardMode [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1"
        size = entry.get("image_size")
        if size is not None:
            # the detection transforms clip boxes to the image silently; a box beyond the image is a wrong label
            w, h = size
            outside = [b for b in boxes if b[0] < 0 or b[1] < 0 or b[2] > w or b[3] > h]
            if outside:
                return f"'boxes' {outside} reach outside the [W, H] = {size} image"
        labels = entry.get("box_labels")
        if labels is not None and (not isinstance(labels, list) or len(labels) != len(boxes)):
            return f"'box_labels' must be a list as long as 'boxes' ({len(boxes)})"
    if "labels" in entry:
        labels = entry["labels"]
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and v in (-1, 0, 1) for k, v in labels.items()
        ):
            return "'labels' must map names to -1, 0 or 1"
    if "rle" in entry and not (isinstance(entry["rle"], list) and all(isinstance(r, str) for r in entry["rle"])):
        return "'rle' must be a list of run-length strings"
    return ""


def validate_datalist(datalist: object, source: str = "datalist") -> None:
    """Raise :class:`DatalistError` naming ``source``, the split and the entry if ``datalist`` breaks the schema."""
    if not isinstance(datalist, dict):
        raise DatalistError(f"{source}: a datalist is a JSON object with keys {list(SPLITS)}")
    unknown = [k for k in datalist if k not in SPLITS]
    if unknown or not any(k in datalist for k in SPLITS):
        raise DatalistError(f"{source}: split keys must be among {list(SPLITS)}, got {list(datalist)}")
    for split, entries in datalist.items():
        if not isinstance(entries, list):
            raise DatalistError(f"{source}: {split!r} must be a list of entries")
        for i, entry in enumerate(entries):
            problem = _entry_problem(entry)
            if problem:
                name = entry.get("image", "?") if isinstance(entry, dict) else "?"
                raise DatalistError(f"{source}: {split}[{i}] ({name}): {problem}")


def write_datalist(datalist: Mapping[str, list], path: str | os.PathLike) -> Path:
    """Validate ``datalist`` and write it as indented JSON to ``path`` (parents created); returns the path."""
    path = Path(path)
    validate_datalist(dict(datalist), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: datalist[k] for k in SPLITS if k in datalist}, indent=1) + "\n")
    return path


def load_datalist(path: str | os.PathLike, root: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """Read a datalist JSON, validate it, and join :data:`PATH_KEYS` to ``root`` for MONAI datasets.

    Like ``monai.data.load_decathlon_datalist(base_dir=root)``, but for every split at once, for the report
    and mask keys as well, and with a schema check that names the bad entry.

    Returns:
        ``{"training": [...], "validation": [...], "test": [...]}`` with absolute paths (missing splits empty).
    """
    path = Path(path)
    try:
        datalist = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatalistError(f"{path}: not valid JSON ({exc})") from exc
    validate_datalist(datalist, str(path))
    root = Path(root)
    return {
        split: [
            {k: str(root / v) if k in PATH_KEYS else v for k, v in entry.items()} for entry in datalist.get(split, [])
        ]
        for split in SPLITS
    }


def datalist_split(datalist: Mapping[str, list], split: str, with_boxes: bool = False) -> list[dict[str, Any]]:
    """One split of a datalist, or ``"all"``: every split in :data:`SPLITS` order.

    ``"all"`` serves datasets used only for evaluation (a model never trained on any of their images), such as the
    ChestX-ray8 pneumonia boxes of Bhalodia et al.'s Table 1. ``with_boxes`` keeps only entries with at least one
    box: localization accuracy reads no other image, so evaluating the rest costs time and changes nothing.

    Raises:
        KeyError: an unknown split, naming the known ones.
    """
    if split == "all":
        entries = [entry for name in SPLITS for entry in datalist.get(name, [])]
    elif split in SPLITS:
        entries = list(datalist.get(split, []))
    else:
        raise KeyError(f"unknown split {split!r}; choose from {list(SPLITS)} or 'all'")
    return [e for e in entries if e.get("boxes")] if with_boxes else entries


def ensure_outside(output: str | os.PathLike, root: str | os.PathLike) -> None:
    """:func:`monai_xattn.utils.paths.ensure_outside` raising :class:`DatalistError`."""
    _ensure_outside(output, root, DatalistError)


def dicom_header(path: str | os.PathLike) -> dict[str, Any]:
    """The few header fields adapters need, read without pixel data.

    Returns:
        ``{"image_size": [W, H], "view": ..., "patient_id": ..., "study_id": ...}`` (``Columns`` = W).

    Raises:
        DatalistError: ``"<path>: unreadable DICOM header (...)"`` when it is not DICOM or lacks Rows/Columns.
    """
    import pydicom  # only DICOM datasets need it

    tags = ["Rows", "Columns", "ViewPosition", "PatientID", "StudyInstanceUID"]
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
        rows, cols = int(ds.Rows), int(ds.Columns)
    except Exception as exc:  # pydicom raises many types for broken files
        raise DatalistError(f"{path}: unreadable DICOM header ({type(exc).__name__}: {exc})") from exc
    return {
        "image_size": [cols, rows],
        "view": normalize_view(ds.get("ViewPosition", "")),
        "patient_id": str(ds.get("PatientID", "")),
        "study_id": str(ds.get("StudyInstanceUID", "")),
    }
