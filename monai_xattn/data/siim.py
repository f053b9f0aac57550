"""SIIM-ACR Pneumothorax (Kaggle 2019): run-length masks and the dataset adapter.

RLE convention (Kaggle SIIM ``mask_functions.py``): pixels are numbered over the **column-major** flattening of
the ``H x W`` image (index ``x * H + y``); a string is ``start length`` pairs.

- ``relative`` (the original ``train-rle.csv``): each start is a gap counted from the end of the previous run
  (from pixel 0 for the first run).
- ``absolute`` (Kaggle's standard RLE, reportedly used by ``stage_2_train.csv``): 1-based pixel positions.

``"-1"`` (or an empty string) is an empty mask. Masks here are ``(H, W)`` numpy arrays (row = image y); in
MONAI's ``(W, H)`` layout use ``mask.T`` -- the usual ``reshape(W, H).T`` of Kaggle decoders is that transpose.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    assign_splits,
    check_unique,
    dicom_header,
    find_one,
    read_table,
    require_columns,
    split_groups,
)

__all__ = ["RLE_MODES", "rle_decode", "rle_encode", "detect_rle_mode", "build_siim_datalist"]

RLE_MODES = ("relative", "absolute")
_EMPTY = ("", "-1")
_MAX_VALUE = 2**40  # far beyond any image; sums of fewer than 2**23 such values stay inside int64


def _pairs(rle: str) -> tuple[np.ndarray, np.ndarray]:
    """``(starts_or_gaps, lengths)`` of one RLE string, validated."""
    text = rle.strip()
    if text in _EMPTY:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        values = np.array(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):  # OverflowError: a number beyond int64
        raise ValueError(f"RLE {text[:40]!r}: values must be integers") from None
    if len(values) % 2:
        raise ValueError(f"RLE {text[:40]!r}: odd number of values ({len(values)}); expected start/length pairs")
    if (values < 0).any():
        raise ValueError(f"RLE {text[:40]!r}: negative start or length")
    return values[0::2], values[1::2]


def _runs(rle: str, n_pixels: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """0-based ``(starts, ends)`` (end exclusive) of the runs of ``rle`` in the flattened image."""
    if mode not in RLE_MODES:
        raise ValueError(f"mode must be one of {RLE_MODES}, got {mode!r}")
    first, lengths = _pairs(rle)
    largest = int(max(first.max(), lengths.max())) if len(first) else 0
    if largest > _MAX_VALUE:
        # the sums below would wrap round to small numbers for values near 2**63 and let the string pass
        raise ValueError(
            f"{mode} RLE {rle.strip()[:40]!r} runs to pixel {largest} or beyond but the image has {n_pixels} pixels"
        )
    if mode == "relative":
        starts = np.cumsum(first + lengths) - lengths
    else:
        if (first < 1).any():
            raise ValueError(f"absolute RLE {rle.strip()[:40]!r}: positions are 1-based, found 0")
        starts = first - 1
    ends = starts + lengths
    if len(ends) and ends.max() > n_pixels:
        raise ValueError(
            f"{mode} RLE {rle.strip()[:40]!r} runs to pixel {int(ends.max())} but the image has {n_pixels} pixels"
        )
    return starts, ends


def rle_decode(rle: str | Sequence[str], height: int, width: int, mode: str = "relative") -> np.ndarray:
    """Decode SIIM run-length encoding(s) into a mask.

    Args:
        rle: one RLE string, or several (SIIM's rows of one image), whose masks are united.
            ``"-1"`` or ``""`` is an empty mask.
        height: image rows H.
        width: image columns W.
        mode: ``"relative"`` (SIIM ``train-rle.csv``) or ``"absolute"`` (1-based positions).

    Returns:
        ``(H, W)`` uint8 mask of 0/1, row = image y. It is the transposed view of a C-contiguous ``(W, H)``
        array, so ``mask.T`` is MONAI's ``(W, H)`` layout without a copy.

    Raises:
        ValueError: malformed string, or a run past the end of the ``H * W`` image.
    """
    n = int(height) * int(width)
    strings = [rle] if isinstance(rle, str) else list(rle)
    bounds = [_runs(s, n, mode) for s in strings]
    starts = np.concatenate([np.zeros(0, np.int64), *(b[0] for b in bounds)])
    ends = np.concatenate([np.zeros(0, np.int64), *(b[1] for b in bounds)])
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    flat = np.zeros(n, np.uint8)
    if len(starts) and (starts[1:] >= ends[:-1]).all():
        # disjoint runs (any single relative string): the flat mask up to the last run is alternating
        # gap/run segments, written by one np.repeat
        gaps = starts - np.concatenate([[0], ends[:-1]])
        counts = np.stack([gaps, ends - starts], axis=1).ravel()
        flat[: ends[-1]] = np.repeat(np.tile(np.array([0, 1], np.uint8), len(starts)), counts)
    elif len(starts):
        # overlapping runs (several rows of one image): pixel k of run r is starts[r] + k, painted by index
        lengths = ends - starts
        pixels = np.arange(lengths.sum()) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        flat[pixels] = 1
    return flat.reshape(width, height).T


def rle_encode(mask: np.ndarray, mode: str = "relative") -> str:
    """Encode a ``(H, W)`` mask (non-zero = inside) as SIIM RLE; ``"-1"`` when empty.

    ``rle_decode(rle_encode(m), H, W, mode)`` equals ``m != 0``; ``rle_encode(rle_decode(s, ...))`` equals
    ``s`` for any string whose runs are non-empty and do not touch or overlap.
    """
    if mode not in RLE_MODES:
        raise ValueError(f"mode must be one of {RLE_MODES}, got {mode!r}")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D (H, W), got shape {mask.shape}")
    # column-major flattening, zero-padded at both ends, written in place: every run has a rising and a
    # falling edge, so the nonzero differences alternate start, end
    padded = np.zeros(mask.size + 2, np.int8)
    np.not_equal(mask.T, 0, out=padded[1:-1].reshape(mask.shape[1], mask.shape[0]))
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[0::2], edges[1::2]
    if not len(starts):
        return "-1"
    first = starts - np.concatenate([[0], ends[:-1]]) if mode == "relative" else starts + 1
    return " ".join(map(str, np.stack([first, ends - starts], axis=1).ravel().tolist()))


def detect_rle_mode(rles: Iterable[tuple[str, int] | tuple[str, int, str]]) -> tuple[str, str]:
    """Decide whether a dataset's RLE strings are relative or absolute.

    A string can be absolute iff its starts strictly increase, runs do not overlap and the last run ends
    within the image; it can be relative iff its gaps and lengths add up to at most the image size. Strings that
    fit neither reading are bad whatever the mode (the adapter drops their images) and do not vote.

    Args:
        rles: ``(rle, n_pixels)`` or ``(rle, n_pixels, where)`` for every non-empty string of the dataset;
            ``where`` (e.g. ``"<ImageId> (line n)"``) is quoted in the error.

    Returns:
        ``(mode, why)``; when every string fits both readings (e.g. single runs) the SIIM original,
        ``relative``, is returned and ``why`` says so.

    Raises:
        ValueError: for a malformed string, or when some strings fit only one reading and others only the other
            (naming one of each).
    """
    n_total = n_both = n_neither = 0
    only_abs: list[str] = []
    only_rel: list[str] = []
    for k, (rle, n_pixels, *where) in enumerate(rles):
        first, lengths = _pairs(rle)
        if not len(first):
            continue
        n_total += 1
        if max(first.max(), lengths.max()) > n_pixels:  # also keeps the sums below from overflowing
            n_neither += 1
            continue
        ends = first + lengths - 1
        fits_abs = bool((first >= 1).all() and (first[1:] > ends[:-1]).all() and ends[-1] <= n_pixels)
        fits_rel = bool(first.sum() + lengths.sum() <= n_pixels)
        label = where[0] if where else f"string #{k}"
        n_both += fits_abs and fits_rel
        n_neither += not (fits_abs or fits_rel)
        if fits_abs and not fits_rel:
            only_abs.append(label)
        if fits_rel and not fits_abs:
            only_rel.append(label)
    ignored = f"; {n_neither} fit neither reading" if n_neither else ""
    if n_total == n_neither:
        return "relative", f"no usable non-empty RLE string; mode irrelevant{ignored}"
    if only_abs and only_rel:
        raise ValueError(
            f"RLE strings fit neither reading consistently: {len(only_abs)} fit only absolute (e.g. {only_abs[0]}), "
            f"{len(only_rel)} only relative (e.g. {only_rel[0]}) of {n_total}; pass rle_mode explicitly"
        )
    if only_abs:
        return "absolute", f"{len(only_abs)} of {n_total} strings overrun the image when read as relative{ignored}"
    if only_rel:
        return "relative", f"{len(only_rel)} of {n_total} strings are not valid absolute RLE{ignored}"
    return "relative", f"all {n_both} strings fit both readings; assumed relative (SIIM train-rle.csv){ignored}"


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
    df = read_table(csv_path)
    require_columns(df, ["ImageId", "EncodedPixels"], csv_path, report)
    blank = df.index[df["EncodedPixels"] == ""]
    if len(blank):
        raise DatalistError(f"{csv_path}: empty EncodedPixels on line {int(blank[0]) + 2} (negatives are -1)")

    image_dir = root / "dicom-images-train" if (root / "dicom-images-train").is_dir() else root
    files = sorted(image_dir.rglob("*.dcm"))
    stems = pd.Series([f.stem for f in files], dtype=str)
    check_unique(stems, image_dir, "DICOM file name")
    by_id = {f.stem: f for f in files}

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

    entries = []
    rle_lines: dict[str, list[int]] = {}  # CSV line of each RLE string, for messages
    for image_id, rows in rows_per_image["EncodedPixels"]:
        path = by_id.get(image_id)
        if path is None:
            report.drop(image_id, "image file missing")
            continue
        # a string that is not start/length pairs leaves the image's mask unknown: the image is a counted drop
        malformed: tuple[str, str] | None = None
        for i, rle in rows.items():
            try:
                _pairs(rle)
            except ValueError as exc:
                malformed = f"{image_id} (line {int(i) + 2})", f"bad RLE: {str(exc).split(': ', 1)[-1]}"
                break
        if malformed is not None:
            report.drop(*malformed)
            continue
        if read_headers:
            try:
                header = dicom_header(path)
            except DatalistError as exc:
                report.drop(image_id, str(exc).split(": ", 1)[1])
                continue
        else:
            header = {
                "image_size": [int(s) for s in image_size],
                "view": "OTHER",
                "patient_id": image_id,
                "study_id": "",
            }
        rles = [r for r in rows.tolist() if r != "-1"]
        rle_lines[image_id] = [int(i) + 2 for i, r in rows.items() if r != "-1"]
        entries.append(
            {
                "image": path.relative_to(root).as_posix(),
                "image_id": image_id,
                "patient_id": header["patient_id"] or image_id,
                "study_id": header["study_id"],
                "view": header["view"],
                "image_size": header["image_size"],
                "rle": rles,
                "labels": {"Pneumothorax": int(bool(rles))},
            }
        )
    unlisted = len(by_id) - len(set(by_id) & set(df["ImageId"]))
    if unlisted:
        report.note(f"{unlisted} DICOM files under {image_dir.name} have no row in {csv_path.name} (not listed)")
    if not read_headers:
        report.note("read_headers=False: image size assumed, split by image (no PatientID)")

    strings = [
        (r, e["image_size"][0] * e["image_size"][1], f"{e['image_id']} (line {line})")
        for e in entries
        for r, line in zip(e["rle"], rle_lines[e["image_id"]], strict=True)
    ]
    if rle_mode == "auto":
        try:
            rle_mode, why = detect_rle_mode(strings)
        except ValueError as exc:
            raise DatalistError(f"{csv_path}: {exc}") from None
        report.note(f"RLE mode {rle_mode}: {why}")
    elif rle_mode not in RLE_MODES:
        raise ValueError(f"rle_mode must be 'auto' or one of {RLE_MODES}, got {rle_mode!r}")
    else:
        report.note(f"RLE mode {rle_mode} (given)")

    kept = []
    for entry in entries:
        w, h = entry["image_size"]
        try:
            for r in entry["rle"]:
                _runs(r, w * h, rle_mode)
        except ValueError as exc:
            report.drop(entry["image_id"], f"bad RLE: {str(exc).split(': ', 1)[-1]}")
            continue
        entry["rle_mode"] = rle_mode
        kept.append(entry)

    split_of = split_groups((e["patient_id"] for e in kept), val_fraction, test_fraction, split_seed)
    datalist = assign_splits(kept, lambda e: split_of[e["patient_id"]])
    report.count(datalist, lambda e: e["rle"])
    return datalist, report
