"""Writers that put phantom studies on disk in each real dataset's layout.

Each layout has a *study writer*, run in a worker process, which writes one study's images, report, masks and
ground-truth sidecar and returns small row records; and a *table writer*, run once in the parent, which
writes the dataset's CSVs from the records in study order. File names, nesting, CSV headers and value
conventions follow the real datasets (see ``docs/phantom.md``); ground truth that the real datasets do not
carry lives beside them in ``ground_truth/<id>.json`` (+ ``ground_truth/masks/``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.measure import label as connected_components

from monai_xattn.data.covid import COVID_COLUMNS
from monai_xattn.data.dicom_writer import write_cxr_dicom
from monai_xattn.data.phantom.findings import Finding
from monai_xattn.data.phantom.reports import CHEXPERT_LABELS, Report, phrase_for_box, text_attributes, write_report
from monai_xattn.data.phantom.synth import Study, study_rngs, synthesize_study
from monai_xattn.data.siim import rle_encode

__all__ = [
    "LAYOUTS",
    "Layout",
    "DICOM_VARIANTS",
    "DICOM_VARIANT_WEIGHTS",
    "to_stored",
    "mimic_jpg_pixels",
    "write_study",
    "write_tables",
]

#: MIMIC-CXR's label columns (alphabetical, as in ``mimic-cxr-2.0.0-chexpert.csv.gz``)
MIMIC_LABELS = tuple(sorted(CHEXPERT_LABELS))
METADATA_COLUMNS = (
    "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns",
    "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)  # fmt: skip
NIH_HEADER = (
    "Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender", "View Position",
    "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]",
)  # fmt: skip
NIH_BOX_LABELS = {"pneumonia": "Pneumonia", "effusion": "Effusion", "cardiomegaly": "Cardiomegaly",
                  "atelectasis": "Atelectasis", "pneumothorax": "Pneumothorax", "nodule": "Nodule"}  # fmt: skip
MS_CXR_COLUMNS = (
    "dicom_id",
    "category_name",
    "label_text",
    "path",
    "x",
    "y",
    "w",
    "h",
    "image_width",
    "image_height",
    "split",
)

#: DICOM encodings of the MIMIC-CXR layout, cycled over the first studies so even a small phantom holds each:
#: (photometric, bits_stored, rescale, windows, VOI LUT sequence, spacing tag, transfer syntax)
DICOM_VARIANTS = (
    ("MONOCHROME2", 12, None, "single", False, "imager", "explicit_vr_little_endian"),
    ("MONOCHROME1", 12, (1.0, 0.0), "multiple", False, "pixel", "explicit_vr_little_endian"),
    ("MONOCHROME2", 16, (0.5, -1024.0), "multiple", False, "imager", "rle_lossless"),
    ("MONOCHROME2", 10, None, None, True, "pixel", "rle_lossless"),
    ("MONOCHROME2", 8, None, "single", False, "imager", "jpeg_baseline"),
    ("MONOCHROME1", 8, (1.0, 0.0), "single", False, "imager", "rle_lossless"),
    ("MONOCHROME1", 16, (2.0, -4096.0), "single", False, "imager", "explicit_vr_little_endian"),
)
#: later studies draw a variant with these weights: pydicom's RLE encoder is pure Python (~0.2 s per 256 px
#: image), so RLE files stay a minority
DICOM_VARIANT_WEIGHTS = (0.25, 0.25, 0.05, 0.05, 0.15, 0.05, 0.2)


def to_stored(
    image: np.ndarray,
    photometric: str,
    bits_stored: int,
    rescale: tuple[float, float] | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Stored DICOM values of a display image.

    Args:
        image: ``(rows, cols)`` float in [0, 1], bright = dense (MONOCHROME2 polarity).
        photometric: ``MONOCHROME1`` stores ``max - value`` (high = dark).
        bits_stored: bit depth; values use a random sub-range of it, as detectors do.
        rescale: ``(slope, intercept)``: stored values are chosen so that ``slope * stored + intercept`` spans a
            plausible modality range.
        rng: draws the sub-range (``None``: the full range).

    Returns:
        ``(rows, cols)`` uint16 (uint8 for 8 bits).
    """
    top = 2**bits_stored - 1
    lo, hi = (0.0, float(top)) if rng is None else (top * rng.uniform(0.0, 0.05), top * rng.uniform(0.85, 1.0))
    values = lo + np.clip(image, 0, 1) * (hi - lo)
    if photometric == "MONOCHROME1":
        values = top - values
    stored = np.clip(np.rint(values), 0, top)
    return stored.astype(np.uint8 if bits_stored <= 8 else np.uint16)


def mimic_jpg_pixels(stored: np.ndarray, photometric: str) -> np.ndarray:
    """MIMIC-CXR-JPG's conversion: raw stored values -> min-max uint8 -> invert MONOCHROME1 -> histogram equalisation
    (OpenCV ``equalizeHist`` formula)."""
    s = stored.astype(np.float64)
    lo, hi = s.min(), s.max()
    u8 = np.rint((s - lo) / max(hi - lo, 1) * 255).astype(np.uint8)
    if photometric == "MONOCHROME1":
        u8 = 255 - u8
    hist = np.bincount(u8.ravel(), minlength=256)
    cdf = np.cumsum(hist)
    cdf_min = cdf[np.flatnonzero(hist)[0]]
    lut = np.rint((cdf - cdf_min) * 255.0 / max(cdf[-1] - cdf_min, 1)).clip(0, 255).astype(np.uint8)
    return lut[u8]


def _u8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG", compress_level=3)


def _save_jpg(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="JPEG", quality=95)


def _hex_id(rng: np.random.Generator, groups: tuple[int, ...]) -> str:
    digits = rng.bytes(sum(groups)).hex()[: 2 * sum(groups)]
    out, k = [], 0
    for g in groups:
        out.append(digits[k : k + 2 * g])
        k += 2 * g
    return "-".join(out)


def _label_cell(value: int | None) -> str:
    return "" if value is None else f"{float(value):.1f}"


@dataclass(frozen=True)
class Layout:
    """One dataset layout: its stream name (layouts sharing one see the same studies), finding profile,
    acquisition site (:data:`~.sites.SITES`), whether its studies get lateral views, and whether the impression
    restates every finding (see :func:`~.reports.write_report`'s ``complete_impression``)."""

    name: str
    stream: str
    profile: str
    site: str
    lateral_rate: float
    complete_impression: bool = False


LAYOUTS: dict[str, Layout] = {
    "mimic-cxr": Layout("mimic-cxr", "mimic", "mimic", "mimic", 0.5),
    "mimic-cxr-jpg": Layout("mimic-cxr-jpg", "mimic", "mimic", "mimic", 0.5),
    "chestxray8": Layout("chestxray8", "chestxray8", "nih", "nih", 0.0),
    # RSNA and SIIM images were drawn from NIH ChestX-ray14: same site
    "rsna": Layout("rsna", "rsna", "rsna", "nih", 0.0),
    "siim": Layout("siim", "siim", "siim", "nih", 0.0),
    # CheXpert's labels come from the impression, which is also the only text the layout ships
    "chexpert": Layout("chexpert", "chexpert", "chexpert", "chexpert", 0.3, complete_impression=True),
    "covid": Layout("covid", "covid", "covid", "web", 0.1),
    # MS-CXR annotates MIMIC-CXR images
    "ms-cxr": Layout("ms-cxr", "ms-cxr", "ms-cxr", "mimic", 0.0),
}
_STREAM_CODES = {"mimic": 1, "chestxray8": 2, "rsna": 3, "siim": 4, "chexpert": 5, "covid": 6, "ms-cxr": 7}


# ---------------------------------------------------------------------------------------------------------------
# ground truth
# ---------------------------------------------------------------------------------------------------------------


def _write_ground_truth(
    root: Path,
    gt_id: str,
    image: str,
    study: Study,
    report_ref: str | None,
    attributes: dict[str, list],
    labels: dict,
    extra: dict | None = None,
) -> None:
    """``root/ground_truth/<gt_id>.json`` and a mask PNG (0/255) per region finding."""
    gt_dir = root / "ground_truth"
    findings = []
    for k, (f, mask) in enumerate(zip(study.findings, study.masks, strict=True)):
        rec = f.to_json()
        if f.has_mask:
            rel = f"ground_truth/masks/{gt_id}_{k}.png"
            _save_png(root / rel, (mask.astype(np.uint8) * 255))
            rec["mask"] = rel
        else:
            rec["mask"] = None
        findings.append(rec)
    record = {
        "image": image,
        "image_size": [int(study.image.shape[1]), int(study.image.shape[0])],
        "view": study.patient.view,
        "difficulty": study.difficulty,
        "findings": findings,
        **attributes,
        "labels": labels,
        "report": report_ref,
        **(extra or {}),
    }
    gt_dir.mkdir(parents=True, exist_ok=True)
    (gt_dir / f"{gt_id}.json").write_text(json.dumps(record, indent=1, sort_keys=True))


# ---------------------------------------------------------------------------------------------------------------
# study writers (worker side): (root, index, study, report, rng) -> records
# ---------------------------------------------------------------------------------------------------------------


def _mimic_ids(index: int, seed: int) -> tuple[str, str]:
    # multiplying by a prime coprime to the range makes ids unique over the index, whatever the seed
    subject = 10_000_000 + (index * 104_729 + seed * 7_919) % 9_000_000
    study = 50_000_000 + (index * 7_727 + seed * 613) % 10_000_000
    return str(subject), str(study)


def _mimic_study(
    root_dcm: Path | None,
    root_jpg: Path | None,
    index: int,
    seed: int,
    study: Study,
    report: Report,
    rng: np.random.Generator,
) -> dict:
    subject, study_id = _mimic_ids(index, seed)
    folder = f"files/p{subject[:2]}/p{subject}/s{study_id}"
    split = str(rng.choice(["train", "validate", "test"], p=[0.8, 0.1, 0.1]))
    date = f"21{int(rng.integers(10, 99)):02d}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    time = f"{int(rng.integers(0, 24)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}.{int(rng.integers(0, 1000)):03d}"
    view = study.patient.view
    images = [(study.image, view)] + (
        [(study.lateral, str(rng.choice(["LATERAL", "LL"], p=[0.8, 0.2])))] if study.lateral is not None else []
    )
    procedure = (
        "CHEST (PORTABLE AP)" if view == "AP" else ("CHEST (PA AND LAT)" if study.lateral is not None else "CHEST (PA)")
    )
    view_meaning = {"PA": "postero-anterior", "AP": "antero-posterior", "LATERAL": "lateral", "LL": "left lateral"}
    meta_rows, split_rows, frontal_id = [], [], None
    report_rel = f"files/p{subject[:2]}/p{subject}/s{study_id}.txt"
    for k, (pixels, vp) in enumerate(images):
        dicom_id = _hex_id(rng, (4, 4, 4, 4, 4))
        frontal_id = frontal_id or dicom_id
        variant = (
            DICOM_VARIANTS[(index + k) % len(DICOM_VARIANTS)]
            if index < 2 * len(DICOM_VARIANTS)
            else DICOM_VARIANTS[int(rng.choice(len(DICOM_VARIANTS), p=DICOM_VARIANT_WEIGHTS))]
        )
        photometric, bits, rescale, windows, voi_lut, spacing, syntax = variant
        stored = to_stored(pixels, photometric, bits, rescale, rng)
        if root_dcm is not None:
            mod = stored.astype(np.float64) * (rescale[0] if rescale else 1) + (rescale[1] if rescale else 0)
            lo, hi = float(mod.min()), float(mod.max())
            window = None
            if windows:
                centers, widths = [(lo + hi) / 2], [hi - lo]
                if windows == "multiple":
                    centers.append((lo + hi) / 2 + 0.05 * (hi - lo))
                    widths.append(0.8 * (hi - lo))
                window = (centers, widths)
            lut = None
            if voi_lut:
                n = int(hi - lo) + 1
                x = np.linspace(-3, 3, n)
                lut = (int(lo), 12, np.rint(4095 / (1 + np.exp(-x))).astype(np.uint16))
            sp = (0.139, 0.139) if rng.random() < 0.5 else (0.1, 0.1)
            write_cxr_dicom(
                root_dcm / folder / f"{dicom_id}.dcm",
                stored,
                photometric=photometric,
                bits_stored=bits,
                rescale=rescale,
                window=window,
                voi_lut=lut,
                pixel_spacing=sp if spacing == "pixel" else None,
                imager_pixel_spacing=sp if spacing == "imager" else None,
                view_position=vp,
                transfer_syntax=syntax,
                modality=str(rng.choice(["CR", "DX"])),
                patient_id=subject,
                study_uid=f"2.25.{int(study_id) * 1000 + 7}",
                extra={"StudyDate": date, "StudyTime": time},
            )
        if root_jpg is not None:
            _save_jpg(root_jpg / folder / f"{dicom_id}.jpg", mimic_jpg_pixels(stored, photometric))
        rows, cols = pixels.shape
        meta_rows.append(
            [
                dicom_id,
                subject,
                study_id,
                procedure,
                vp,
                rows,
                cols,
                date,
                time,
                procedure,
                view_meaning[vp],
                "Recumbent" if view == "AP" else "Erect",
            ]
        )
        split_rows.append([dicom_id, study_id, subject, split])
    attributes = _text_truth(report)
    for root in (root_dcm, root_jpg):
        if root is None:
            continue
        (root / report_rel).write_text(report.text())
        ext = "dcm" if root is root_dcm else "jpg"
        lateral = [f"{folder}/{r[0]}.{ext}" for r in meta_rows[1:]]
        _write_ground_truth(
            root,
            frontal_id,
            f"{folder}/{frontal_id}.{ext}",
            study,
            report_rel,
            attributes,
            report.labels,
            {"lateral_images": lateral, "subject_id": subject, "study_id": study_id},
        )
    label_row = [subject, study_id] + [_label_cell(report.labels[k]) for k in MIMIC_LABELS]
    return {
        "metadata": meta_rows,
        "split": split_rows,
        "chexpert": [label_row],
        "folder": folder,
        "ext_ids": [r[0] for r in meta_rows],
        "subject": subject,
        "study": study_id,
    }


def _nih_study(root: Path, index: int, seed: int, study: Study, report: Report, rng: np.random.Generator) -> dict:
    patient = index // 2 + 1  # two images per patient: a follow-up, as NIH has
    name = f"{patient:08d}_{index % 2:03d}.png"
    pixels = _u8(study.image)
    if rng.random() < 0.04:  # a few NIH PNGs are RGBA
        pixels = np.dstack([pixels, pixels, pixels, np.full_like(pixels, 255)])
    _save_png(root / "images" / name, pixels)
    labels = set()
    for f in study.findings:
        if f.kind in NIH_BOX_LABELS:
            labels.add(NIH_BOX_LABELS[f.kind])
        if f.kind == "pneumonia" and f.opacity in ("patchy", "interstitial"):
            labels.add("Infiltration")
        if f.kind == "pneumonia" and f.opacity == "consolidation":
            labels.add("Consolidation")
        if f.kind == "edema":
            labels.add("Edema")
    # BBox_List_2017.csv has one box per image and label (120 Pneumonia boxes on 120 images): the largest visible
    # instance's; the sidecar keeps them all
    largest: dict[str, list[float]] = {}
    for f in study.findings:
        if f.kind in NIH_BOX_LABELS and f.box is not None:
            label = NIH_BOX_LABELS[f.kind]
            if label not in largest or _area(f.box) > _area(largest[label]):
                largest[label] = f.box
    boxes = [[name, label, x0, y0, x1 - x0, y1 - y0, "", "", ""] for label, (x0, y0, x1, y1) in largest.items()]
    ow, oh = int(rng.integers(2000, 3000)), int(rng.integers(2000, 3000))
    spacing = str(rng.choice(["0.143", "0.139", "0.168"]))
    entry = [
        name,
        "|".join(sorted(labels)) or "No Finding",
        index % 2,
        patient,
        int(rng.integers(18, 90)),
        "F" if study.patient.sex == "F" else "M",
        study.patient.view,
        ow,
        oh,
        spacing,
        spacing,
    ]
    _write_ground_truth(root, name[:-4], f"images/{name}", study, None, _empty_attributes(), report.labels)
    return {"entry": entry, "boxes": boxes, "name": name, "patient": patient}


def _area(box: list[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def _empty_attributes() -> dict[str, list]:
    # datasets without report text: nothing is stated, so no attribute is ground truth
    return {
        "attributes": [],
        "uncertain_attributes": [],
        "negated_attributes": [],
        "pneumonia_attributes": [],
        "sentences": [],
    }


def _text_truth(report: Report, sections: tuple[str, ...] = ("findings", "impression")) -> dict[str, list]:
    """Sidecar text ground truth: the report's attribute statuses, ``pneumonia_attributes`` (the positive attributes
    of the sentences that describe the pneumonia only: its location and look, not another finding's side) and the
    sentences with the findings each describes."""
    return {
        **report.attributes(sections),
        "pneumonia_attributes": report.attributes(sections, kinds=("pneumonia",))["attributes"],
        "sentences": [r for r in report.sentence_records() if r["section"] in sections],
    }


def _rsna_study(root: Path, index: int, seed: int, study: Study, report: Report, rng: np.random.Generator) -> dict:
    pid = _hex_id(rng, (4, 2, 2, 2, 6))
    boxes = [f.box for f in study.findings if f.kind == "pneumonia" and f.box is not None]
    boxes = sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))[:4]  # RSNA has at most 4 boxes per image
    others = any(f.kind not in ("pneumonia", "device") for f in study.findings)
    cls = "Lung Opacity" if boxes else ("No Lung Opacity / Not Normal" if others else "Normal")
    stored = to_stored(study.image, "MONOCHROME2", 8)
    syntax = "jpeg_baseline" if rng.random() < 0.9 else "explicit_vr_little_endian"
    write_cxr_dicom(
        root / "stage_2_train_images" / f"{pid}.dcm",
        stored,
        photometric="MONOCHROME2",
        bits_stored=8,
        pixel_spacing=(0.168, 0.168),
        view_position=study.patient.view,
        transfer_syntax=syntax,
        modality="CR",
        patient_id=pid,
        extra={
            "PatientSex": study.patient.sex,
            "PatientAge": f"{study.patient.age:03d}Y",
            "BodyPartExamined": "CHEST",
            "SeriesDescription": f"view: {study.patient.view}",
        },
    )
    rows = [[pid, b[0], b[1], b[2] - b[0], b[3] - b[1], 1] for b in boxes] or [[pid, "", "", "", "", 0]]
    _write_ground_truth(
        root,
        pid,
        f"stage_2_train_images/{pid}.dcm",
        study,
        None,
        _empty_attributes(),
        report.labels,
        {"rsna_boxes": [r[1:5] for r in rows if r[5] == 1]},
    )
    return {"labels": rows, "classes": [[pid, cls]] * len(rows)}


def _siim_study(root: Path, index: int, seed: int, study: Study, report: Report, rng: np.random.Generator) -> dict:
    t = 1517875162 + index * 3 + seed
    n = 1000 + index
    sop = f"1.2.276.0.7230010.3.1.4.8323329.{n}.{t}.{int(rng.integers(100000, 999999))}"
    study_uid = f"1.2.276.0.7230010.3.1.2.8323329.{n}.{t}.{int(rng.integers(100000, 999999))}"
    series_uid = f"1.2.276.0.7230010.3.1.3.8323329.{n}.{t}.{int(rng.integers(100000, 999999))}"
    rel = f"dicom-images-train/{study_uid}/{series_uid}/{sop}.dcm"
    write_cxr_dicom(
        root / rel,
        to_stored(study.image, "MONOCHROME2", 8),
        photometric="MONOCHROME2",
        bits_stored=8,
        pixel_spacing=(0.168, 0.168),
        view_position=study.patient.view,
        transfer_syntax="jpeg_baseline",
        modality="CR",
        patient_id=_hex_id(rng, (4, 2, 2, 2, 6)),
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop,
        extra={"PatientSex": study.patient.sex, "BodyPartExamined": "CHEST"},
    )
    rles = []
    for f, mask in zip(study.findings, study.masks, strict=True):
        if f.kind == "pneumothorax":
            # one row per connected region, as the real file has
            comps = connected_components(mask, connectivity=2)
            rles += [rle_encode(comps == c) for c in range(1, int(comps.max()) + 1)]
    _write_ground_truth(root, sop, rel, study, None, _empty_attributes(), report.labels)
    return {"rows": [[sop, f" {r}"] for r in rles] or [[sop, " -1"]]}


def _chexpert_study(root: Path, index: int, seed: int, study: Study, report: Report, rng: np.random.Generator) -> dict:
    valid = rng.random() < 0.15
    split = "valid" if valid else "train"
    patient = f"patient{(64541 + index) if valid else (index + 1):05d}"
    folder = f"{split}/{patient}/study1"
    images = [(study.image, "view1_frontal.jpg", "Frontal", study.patient.view)]
    if study.lateral is not None:
        images.append((study.lateral, "view2_lateral.jpg", "Lateral", ""))
    rows = []
    impression = report.impression
    labels = dict(report.labels)
    if valid:  # valid.csv holds radiologist consensus labels: 1/0 only
        labels = {k: (1 if v in (1, -1) else 0) for k, v in labels.items()}
    for pixels, fname, fl, appa in images:
        _save_jpg(root / folder / fname, _u8(pixels))
        path = f"CheXpert-v1.0-small/{folder}/{fname}"
        rows.append(
            [path, "Female" if study.patient.sex == "F" else "Male", study.patient.age, fl, appa]
            + [_label_cell(labels[k]) for k in CHEXPERT_LABELS]
        )
    gt_id = f"{patient}_study1_view1_frontal"
    _write_ground_truth(
        root, gt_id, f"{folder}/view1_frontal.jpg", study, impression, _text_truth(report, ("impression",)), labels
    )
    return {"split": split, "rows": rows, "impression": impression}


def _covid_study(root: Path, index: int, seed: int, study: Study, report: Report, rng: np.random.Generator) -> dict:
    pneumonia = [f for f in study.findings if f.kind == "pneumonia"]
    if pneumonia:
        finding = str(
            rng.choice(
                ["Pneumonia/Viral/COVID-19", "Pneumonia/Bacterial/Streptococcus", "Pneumonia/Viral/SARS"],
                p=[0.75, 0.15, 0.1],
            )
        )
    else:
        finding = "No Finding" if rng.random() < 0.9 else "todo"
    ext = "jpg" if rng.random() < 0.7 else "png"
    fname = f"phantom-{index:05d}.{ext}"
    pixels = _u8(study.image)
    if rng.random() < 0.3:  # many covid-chestxray-dataset images are RGB
        pixels = np.dstack([pixels] * 3)
    (_save_jpg if ext == "jpg" else _save_png)(root / "images" / fname, pixels)
    view = {"PA": "PA", "AP": str(rng.choice(["AP", "AP Supine"]))}[study.patient.view]
    meta = {c: "" for c in COVID_COLUMNS}
    meta.update(
        patientid=index + 1,
        offset=int(rng.integers(0, 15)),
        sex=study.patient.sex,
        age=study.patient.age,
        finding=finding,
        RT_PCR_positive="Y" if "COVID" in finding else "",
        view=view,
        modality="X-ray",
        date=f"2020-{int(rng.integers(1, 7)):02d}-{int(rng.integers(1, 29)):02d}",
        location="Phantom City",
        folder="images",
        filename=fname,
        license="Apache 2.0",
        clinical_notes=report.impression,
    )
    rows = [[meta[c] for c in COVID_COLUMNS] + [""]]
    severity = []
    if pneumonia and "COVID" in finding:
        area = sum(m.sum() for f, m in zip(study.findings, study.masks, strict=True) if f.kind == "pneumonia")
        lungs = max(1.0, 0.3 * study.image.size)
        extent = min(8.0, 8.0 * area / lungs * 2.5)
        opacity = min(6.0, 6.0 * float(np.mean([f.amplitude for f in pneumonia])) / 0.6)
        # mean of three raters' integer scores
        geo = np.clip(np.rint(extent + rng.normal(0, 0.7, 3)), 0, 8).mean()
        opa = np.clip(np.rint(opacity + rng.normal(0, 0.7, 3)), 0, 6).mean()
        severity = [[fname, f"{geo:.3f}", f"{opa:.3f}"]]
    rel = f"images/{fname}"
    _write_ground_truth(
        root,
        fname.rsplit(".", 1)[0],
        rel,
        study,
        report.impression,
        _text_truth(report, ("impression",)),
        report.labels,
        {"finding": finding},
    )
    if study.lateral is not None:
        lat = f"phantom-{index:05d}-L.jpg"
        _save_jpg(root / "images" / lat, _u8(study.lateral))
        lat_meta = dict(meta, view="L", filename=lat)
        rows.append([lat_meta[c] for c in COVID_COLUMNS] + [""])
    return {"rows": rows, "severity": severity}


def _ms_cxr_study(root: Path, index: int, seed: int, study: Study, report: Report, rng: np.random.Generator) -> dict:
    subject, study_id = _mimic_ids(index, seed + 1)
    dicom_id = _hex_id(rng, (4, 4, 4, 4, 4))
    path = f"files/p{subject[:2]}/p{subject}/s{study_id}/{dicom_id}.jpg"
    _save_jpg(root / path, mimic_jpg_pixels(to_stored(study.image, "MONOCHROME2", 12), "MONOCHROME2"))
    split = str(rng.choice(["train", "val", "test"], p=[0.7, 0.1, 0.2]))
    rows, rows_px = [], study.image.shape
    groups: dict[int, list[Finding]] = {}
    for f in study.findings:
        if f.kind != "device":
            groups.setdefault(f.group, []).append(f)
    phrases = {g: phrase_for_box(rng, members) for g, members in groups.items()}
    for g, members in groups.items():
        # one phrase per finding; its instances are several boxes of the same phrase, as in MS-CXR
        category, text = phrases[g]
        for f in members:
            x0, y0, x1, y1 = (int(v) for v in f.box)
            rows.append([dicom_id, category, text, path, x0, y0, x1 - x0, y1 - y0, rows_px[1], rows_px[0], split])
    texts = [t for _, t in phrases.values()]
    pneumonia_texts = [phrases[g][1] for g, members in groups.items() if members[0].kind == "pneumonia"]
    attrs = {
        "attributes": text_attributes(texts),
        "uncertain_attributes": [],
        "negated_attributes": [],
        "pneumonia_attributes": text_attributes(pneumonia_texts),
        "sentences": [
            {"text": f"{phrases[g][1]}.", "section": "impression", "status": "positive", "findings": [members[0].kind]}
            for g, members in groups.items()
        ],
    }
    _write_ground_truth(root, dicom_id, path, study, " ".join(f"{t}." for t in texts), attrs, report.labels)
    return {"rows": rows}


_STUDY_WRITERS: dict[str, Callable] = {
    "chestxray8": _nih_study, "rsna": _rsna_study, "siim": _siim_study, "chexpert": _chexpert_study,
    "covid": _covid_study, "ms-cxr": _ms_cxr_study,
}  # fmt: skip


def write_study(roots: dict[str, Path], stream: str, index: int, seed: int, size: int, difficulty: str) -> dict:
    """Synthesize study ``index`` of ``stream`` and write it into every layout of ``roots`` that shares the stream.

    The study's random streams come from ``SeedSequence(seed, spawn_key=(stream code, index))`` alone, so the
    output does not depend on which worker runs it or in which order.

    Returns:
        ``{layout name: row records}`` for :func:`write_tables`.
    """
    layouts = [LAYOUTS[name] for name in roots]
    rngs = study_rngs(np.random.SeedSequence(seed, spawn_key=(_STREAM_CODES[stream], index)))
    lateral = rngs["meta"].random() < layouts[0].lateral_rate
    study = synthesize_study(rngs["image"], size, difficulty, layouts[0].profile, lateral=lateral, site=layouts[0].site)
    if study.patient.view == "AP" and stream == "mimic":
        study.lateral = None  # portable AP studies have no lateral
    report = write_report(
        study.findings,
        rngs["text"],
        view=study.patient.view,
        lateral=study.lateral is not None,
        difficulty=difficulty,
        sex=study.patient.sex,
        complete_impression=layouts[0].complete_impression,
    )
    if stream == "mimic":
        return {
            "mimic": _mimic_study(
                roots.get("mimic-cxr"), roots.get("mimic-cxr-jpg"), index, seed, study, report, rngs["meta"]
            )
        }
    (name,) = roots
    return {name: _STUDY_WRITERS[name](roots[name], index, seed, study, report, rngs["meta"])}


# ---------------------------------------------------------------------------------------------------------------
# table writers (parent side)
# ---------------------------------------------------------------------------------------------------------------


def _csv_text(header, rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _write_csv(path: Path, header, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_csv_text(header, rows))


def _write_csv_gz(path: Path, header, rows) -> None:
    # mtime=0 and no file name in the gzip header: identical bytes on every run
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(_csv_text(header, rows).encode())


def write_tables(name: str, root: Path, records: list[dict]) -> dict[str, int]:
    """Write layout ``name``'s CSVs from the per-study ``records`` (in study order); return summary counts."""
    if name in ("mimic-cxr", "mimic-cxr-jpg"):
        meta = [r for rec in records for r in rec["metadata"]]
        _write_csv_gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", METADATA_COLUMNS, meta)
        _write_csv_gz(
            root / "mimic-cxr-2.0.0-split.csv.gz",
            ("dicom_id", "study_id", "subject_id", "split"),
            [r for rec in records for r in rec["split"]],
        )
        labels = [r for rec in records for r in rec["chexpert"]]
        for table in ("chexpert", "negbio"):
            _write_csv_gz(root / f"mimic-cxr-2.0.0-{table}.csv.gz", ("subject_id", "study_id", *MIMIC_LABELS), labels)
        if name == "mimic-cxr":
            _write_csv_gz(
                root / "cxr-record-list.csv.gz",
                ("subject_id", "study_id", "dicom_id", "path"),
                [
                    [rec["subject"], rec["study"], i, f"{rec['folder']}/{i}.dcm"]
                    for rec in records
                    for i in rec["ext_ids"]
                ],
            )
            _write_csv_gz(
                root / "cxr-study-list.csv.gz",
                ("subject_id", "study_id", "path"),
                [[rec["subject"], rec["study"], rec["folder"]] for rec in records],
            )
        return {"studies": len(records), "images": len(meta)}
    if name == "chestxray8":
        _write_csv(root / "Data_Entry_2017.csv", NIH_HEADER, [rec["entry"] for rec in records])
        boxes = [b for rec in records for b in rec["boxes"]]
        # the real header: "Bbox [x,y,w,h]" split by the commas, then three empty fields
        _write_csv(
            root / "BBox_List_2017.csv", ("Image Index", "Finding Label", "Bbox [x", "y", "w", "h]", "", "", ""), boxes
        )
        test_patients = {rec["patient"] for rec in records if (rec["patient"] * 2654435761) % 5 == 0}
        (root / "test_list.txt").write_text(
            "".join(f"{rec['name']}\n" for rec in records if rec["patient"] in test_patients)
        )
        (root / "train_val_list.txt").write_text(
            "".join(f"{rec['name']}\n" for rec in records if rec["patient"] not in test_patients)
        )
        return {"studies": len(records), "images": len(records), "boxes": len(boxes)}
    if name == "rsna":
        rows = [r for rec in records for r in rec["labels"]]
        _write_csv(root / "stage_2_train_labels.csv", ("patientId", "x", "y", "width", "height", "Target"), rows)
        _write_csv(
            root / "stage_2_detailed_class_info.csv",
            ("patientId", "class"),
            [r for rec in records for r in rec["classes"]],
        )
        return {"studies": len(records), "images": len(records), "boxes": sum(r[5] for r in rows)}
    if name == "siim":
        rows = [r for rec in records for r in rec["rows"]]
        (root / "train-rle.csv").write_text(_csv_text(None, [["ImageId", " EncodedPixels"], *rows]))
        return {"studies": len(records), "images": len(records), "positive": len({r[0] for r in rows if r[1] != " -1"})}
    if name == "chexpert":
        header = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS)
        for split in ("train", "valid"):
            _write_csv(
                root / f"{split}.csv", header, [r for rec in records if rec["split"] == split for r in rec["rows"]]
            )
        master = [r + [rec["split"], rec["impression"]] for rec in records for r in rec["rows"]]
        _write_csv(root / "master_updated.csv", (*header, "Split", "Report Impression"), master)
        return {"studies": len(records), "images": len(master)}
    if name == "covid":
        rows = [r for rec in records for r in rec["rows"]]
        _write_csv(root / "metadata.csv", (*COVID_COLUMNS, ""), rows)
        severity = [r for rec in records for r in rec["severity"]]
        text = (
            "## Phantom severity scores: mean of three simulated raters.\n"
            "## geographic_mean: extent of involvement 0-8; opacity_mean: degree of opacity 0-6 (arXiv 2005.11856).\n"
        )
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / "covid-severity-scores.csv").write_text(
            text + _csv_text(("filename", "geographic_mean", "opacity_mean"), severity)
        )
        return {"studies": len(records), "images": len(rows), "severity_scores": len(severity)}
    if name == "ms-cxr":
        rows = [r for rec in records for r in rec["rows"]]
        _write_csv(root / "MS_CXR_Local_Alignment_v1.1.0.csv", MS_CXR_COLUMNS, rows)
        return {"studies": len(records), "images": len(records), "boxes": len(rows)}
    raise ValueError(f"unknown layout {name!r}; expected one of {sorted(LAYOUTS)}")
