"""Phantom layouts: files and tables as the real datasets have them, DICOM variety, boxes, masks, ground truth."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut

from monai_xattn.data.dicom_writer import write_cxr_dicom
from monai_xattn.data.phantom.layouts import to_stored
from monai_xattn.data.phantom.reports import CHEXPERT_LABELS
from monai_xattn.data.phantom.synth import synthesize_study
from monai_xattn.data.siim import rle_decode
from monai_xattn.text.attributes import load_vocabulary
from monai_xattn.text.sections import extract_sections

N = 24  # studies per layout in the session phantom (tests/data/conftest.py)


def ground_truth(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((root / "ground_truth").glob("*.json"))]


def test_mimic_tables_and_tree(phantom_root):
    for name, ext in (("mimic-cxr", "dcm"), ("mimic-cxr-jpg", "jpg")):
        root = phantom_root / name
        meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", dtype=str)
        assert list(meta.columns[:9]) == [
            "dicom_id",
            "subject_id",
            "study_id",
            "PerformedProcedureStepDescription",
            "ViewPosition",
            "Rows",
            "Columns",
            "StudyDate",
            "StudyTime",
        ]
        assert meta["study_id"].nunique() == N and len(meta) > N  # some studies have a lateral view
        assert set(meta["ViewPosition"]) >= {"PA", "AP", "LATERAL"}
        assert meta["dicom_id"].str.fullmatch(r"([0-9a-f]{8}-){4}[0-9a-f]{8}").all()
        assert meta["subject_id"].str.fullmatch(r"1\d{7}").all() and meta["study_id"].str.fullmatch(r"5\d{7}").all()
        split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz", dtype=str)
        assert list(split.columns) == ["dicom_id", "study_id", "subject_id", "split"]
        assert set(split["split"]) <= {"train", "validate", "test"}
        labels = pd.read_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz")
        assert list(labels.columns) == ["subject_id", "study_id", *sorted(CHEXPERT_LABELS)]
        assert set(np.unique(labels.iloc[:, 2:].to_numpy()[~labels.iloc[:, 2:].isna().to_numpy()])) <= {-1.0, 0.0, 1.0}
        for row in meta.itertuples():
            folder = root / "files" / f"p{row.subject_id[:2]}" / f"p{row.subject_id}"
            assert (folder / f"s{row.study_id}" / f"{row.dicom_id}.{ext}").is_file()
            sections = extract_sections((folder / f"s{row.study_id}.txt").read_text())
            assert sections.get("findings") and sections.get("impression")


def test_mimic_dicom_variety_and_decoding(phantom_root):
    seen = {
        "photometric": set(),
        "bits": set(),
        "syntax": set(),
        "voi_lut": 0,
        "multi_window": 0,
        "rescale": 0,
        "pixel_spacing": 0,
        "imager_spacing": 0,
    }
    files = sorted((phantom_root / "mimic-cxr" / "files").rglob("*.dcm"))
    assert len(files) > N
    for path in files:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
        assert arr.shape == (ds.Rows, ds.Columns) and arr.max() <= 2**ds.BitsStored - 1
        seen["photometric"].add(ds.PhotometricInterpretation)
        seen["bits"].add(int(ds.BitsStored))
        seen["syntax"].add(str(ds.file_meta.TransferSyntaxUID))
        seen["voi_lut"] += "VOILUTSequence" in ds
        seen["multi_window"] += "WindowCenter" in ds and ds["WindowCenter"].VM > 1
        seen["rescale"] += "RescaleSlope" in ds
        seen["pixel_spacing"] += "PixelSpacing" in ds
        seen["imager_spacing"] += "ImagerPixelSpacing" in ds
    assert seen["photometric"] == {"MONOCHROME1", "MONOCHROME2"}
    assert seen["bits"] >= {8, 10, 12, 16}
    assert seen["syntax"] >= {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.50"}
    assert (
        min(seen["voi_lut"], seen["multi_window"], seen["rescale"], seen["pixel_spacing"], seen["imager_spacing"]) > 0
    )


def _rank(a: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(a.ravel(), kind="stable"), kind="stable").astype(np.float64)


def test_monochrome1_decodes_to_the_same_anatomy(phantom_root, tmp_path):
    image = synthesize_study(np.random.default_rng(3), 96, "easy").image
    decoded = {}
    for photometric in ("MONOCHROME1", "MONOCHROME2"):
        path = write_cxr_dicom(
            tmp_path / f"{photometric}.dcm",
            to_stored(image, photometric, 12, (1.0, -1024.0)),
            photometric=photometric,
            bits_stored=12,
            rescale=(1.0, -1024.0),
        )
        ds = pydicom.dcmread(path)
        values = apply_modality_lut(ds.pixel_array, ds)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            # correct handling: invert once, over the range the modality LUT maps the stored range to
            lo, hi = apply_modality_lut(np.array([0, 2**ds.BitsStored - 1]), ds)
            values = lo + hi - values
        decoded[photometric] = values
    assert np.abs(decoded["MONOCHROME1"] - decoded["MONOCHROME2"]).max() <= 1
    assert np.corrcoef(decoded["MONOCHROME2"].ravel(), image.ravel())[0, 1] > 0.999
    # and in the generated layout: every MONOCHROME1 file, inverted, ranks its pixels like the JPG made from it
    root = phantom_root / "mimic-cxr"
    mono1 = [
        p
        for p in sorted((root / "files").rglob("*.dcm"))
        if pydicom.dcmread(p).PhotometricInterpretation == "MONOCHROME1"
    ]
    assert mono1
    for path in mono1[:3]:
        raw = pydicom.dcmread(path).pixel_array.astype(np.float64)
        jpg = np.asarray(Image.open(phantom_root / "mimic-cxr-jpg" / path.relative_to(root).with_suffix(".jpg")), float)
        assert np.corrcoef(_rank(-raw), _rank(jpg))[0, 1] > 0.95
        assert np.corrcoef(_rank(raw), _rank(jpg))[0, 1] < -0.9  # skipping the inversion gives a negative


def test_chestxray8_tables(phantom_root):
    root = phantom_root / "chestxray8"
    assert (root / "BBox_List_2017.csv").read_text().splitlines()[0] == "Image Index,Finding Label,Bbox [x,y,w,h],,,"
    entry = pd.read_csv(root / "Data_Entry_2017.csv")
    assert list(entry.columns) == [
        "Image Index",
        "Finding Labels",
        "Follow-up #",
        "Patient ID",
        "Patient Age",
        "Patient Gender",
        "View Position",
        "OriginalImage[Width",
        "Height]",
        "OriginalImagePixelSpacing[x",
        "y]",
    ]
    assert entry["Image Index"].str.fullmatch(r"\d{8}_\d{3}\.png").all() and len(entry) == N
    boxes = pd.read_csv(root / "BBox_List_2017.csv")
    assert boxes.shape[1] == 9 and len(boxes) > 0
    assert set(boxes["Finding Label"]) <= {
        "Atelectasis",
        "Cardiomegaly",
        "Effusion",
        "Infiltrate",
        "Mass",
        "Nodule",
        "Pneumonia",
        "Pneumothorax",
    }
    listed = (root / "train_val_list.txt").read_text().split() + (root / "test_list.txt").read_text().split()
    assert sorted(listed) == sorted(entry["Image Index"])
    for row in boxes.itertuples(index=False):
        x, y, w, h = row[2:6]
        size = Image.open(root / "images" / row[0]).size
        assert 0 <= x and 0 <= y and x + w <= size[0] and y + h <= size[1] and w > 0 and h > 0


def test_rsna_and_siim_tables(phantom_root):
    rsna = pd.read_csv(phantom_root / "rsna" / "stage_2_train_labels.csv")
    assert list(rsna.columns) == ["patientId", "x", "y", "width", "height", "Target"]
    assert rsna["patientId"].nunique() == N and rsna.groupby("patientId").size().max() <= 4
    assert rsna.loc[rsna.Target == 0, ["x", "y", "width", "height"]].isna().all().all()
    assert rsna.loc[rsna.Target == 1, ["x", "y", "width", "height"]].notna().all().all()
    ds = pydicom.dcmread(phantom_root / "rsna" / "stage_2_train_images" / f"{rsna.patientId[0]}.dcm")
    assert ds.BitsStored == 8 and ds.PhotometricInterpretation == "MONOCHROME2"

    siim = phantom_root / "siim"
    text = (siim / "train-rle.csv").read_text().splitlines()
    assert text[0] == "ImageId, EncodedPixels" and any(line.endswith(", -1") for line in text)
    rle = pd.read_csv(siim / "train-rle.csv")
    files = {p.stem: p for p in (siim / "dicom-images-train").rglob("*.dcm")}
    assert set(rle["ImageId"]) == set(files) and len(files) == N
    positives = rle[rle[" EncodedPixels"].str.strip() != "-1"]
    assert len(positives) > 0
    for image_id, rows in positives.groupby("ImageId"):
        gt = json.loads((siim / "ground_truth" / f"{image_id}.json").read_text())
        masks = [np.asarray(Image.open(siim / f["mask"])) > 0 for f in gt["findings"] if f["type"] == "pneumothorax"]
        size = gt["image_size"]
        decoded = rle_decode(list(rows[" EncodedPixels"]), size[1], size[0], mode="relative")
        assert np.array_equal(decoded.astype(bool), np.any(masks, axis=0))


def test_chexpert_covid_ms_cxr_tables(phantom_root):
    root = phantom_root / "chexpert"
    train = pd.read_csv(root / "train.csv")
    assert list(train.columns) == ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]
    assert train["Path"].str.startswith("CheXpert-v1.0-small/train/patient").all()
    for path in train["Path"]:
        assert (root / path.removeprefix("CheXpert-v1.0-small/")).is_file()
    master = pd.read_csv(root / "master_updated.csv")
    assert {"Path", "Split", "Report Impression"} <= set(master.columns) and master["Report Impression"].notna().all()

    covid = phantom_root / "covid"
    meta = pd.read_csv(covid / "metadata.csv")
    assert list(meta.columns[:5]) == ["patientid", "offset", "sex", "age", "finding"] and meta.shape[1] == 30
    assert all((covid / f / n).is_file() for f, n in zip(meta["folder"], meta["filename"], strict=True))
    lines = (covid / "annotations" / "covid-severity-scores.csv").read_text().splitlines()
    assert lines[0].startswith("##")
    severity = pd.read_csv(covid / "annotations" / "covid-severity-scores.csv", comment="#")
    assert list(severity.columns) == ["filename", "geographic_mean", "opacity_mean"]
    assert severity["geographic_mean"].between(0, 8).all() and severity["opacity_mean"].between(0, 6).all()

    ms = pd.read_csv(phantom_root / "ms-cxr" / "MS_CXR_Local_Alignment_v1.1.0.csv")
    assert list(ms.columns) == [
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
    ]
    assert ((ms.x >= 0) & (ms.y >= 0) & (ms.x + ms.w <= ms.image_width) & (ms.y + ms.h <= ms.image_height)).all()
    assert all((phantom_root / "ms-cxr" / p).is_file() for p in ms["path"])


@pytest.mark.parametrize("layout", ["mimic-cxr", "chestxray8", "rsna", "siim", "chexpert", "covid", "ms-cxr"])
def test_boxes_cover_their_masks(phantom_root, layout):
    root = phantom_root / layout
    records = ground_truth(root)
    assert len(records) == N
    n_masks = 0
    for gt in records:
        w, h = gt["image_size"]
        for f in gt["findings"]:
            x0, y0, x1, y1 = f["box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h, (gt["image"], f)
            if f["mask"]:
                mask = np.asarray(Image.open(root / f["mask"])) > 0
                rows, cols = np.nonzero(mask)
                # the box is the mask's tight box (x = column): mask inside box, touching every side
                assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)
                n_masks += 1
    assert n_masks > 0


def test_ground_truth_agrees_with_findings_and_text(phantom_root):
    vocab = load_vocabulary()
    forms = vocab.surface_forms()
    names = set(vocab.names)
    root = phantom_root / "mimic-cxr"
    for gt in ground_truth(root):
        kinds = {f["type"] for f in gt["findings"]}
        assert (gt["labels"]["Pneumonia"] in (1, -1)) == ("pneumonia" in kinds)
        assert (gt["labels"]["No Finding"] == 1) == (not kinds - {"device"})
        lists = gt["attributes"], gt["uncertain_attributes"], gt["negated_attributes"]
        assert all(set(x) <= names for x in lists)
        assert sum(map(len, lists)) == len(set().union(*lists))  # disjoint
        sections = extract_sections((root / gt["report"]).read_text())
        text = " ".join(f"{sections['findings']} {sections['impression']}".lower().split())
        stated = {
            n
            for form, ns in forms.items()
            if f" {form} " in f" {text.replace('.', ' ').replace(',', ' ')} "
            for n in ns
        }
        assert stated == set().union(*lists), gt["report"]


def test_chexpert_impression_states_every_positive_label(phantom_root):
    """CheXpert's labels were read from the impression, the only text its layout ships: every positive competition
    label is stated there (MIMIC-style reports may leave it in FINDINGS). Typos (medium difficulty) are allowed."""
    root = phantom_root / "chexpert"
    rows = pd.read_csv(root / "train.csv").merge(
        pd.read_csv(root / "master_updated.csv")[["Path", "Report Impression"]], on="Path"
    )
    words = {
        "Atelectasis": ["atelectasis"],
        "Cardiomegaly": ["cardiomegaly"],
        "Edema": ["edema"],
        "Pleural Effusion": ["effusion", "effusions"],
        "Consolidation": ["consolidation", "consolidative", "airspace"],
    }
    checked = 0
    for label, forms in words.items():
        for impression in rows.loc[rows[label] == 1, "Report Impression"].str.lower():
            tokens = re.findall(r"[a-z]+", impression)
            assert any(difflib.get_close_matches(form, tokens, cutoff=0.85) for form in forms), (label, impression)
            checked += 1
    assert checked >= 10
