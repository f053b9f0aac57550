"""Every phantom layout converts through ``monai-xattn datalist``, and what the adapters list agrees with the
phantom's ground-truth sidecars (``<layout>/ground_truth/<id>.json``): images, views, labels, boxes, masks."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_xattn.cli import main
from monai_xattn.data.chestxray8 import BOX_LABEL_MAP
from monai_xattn.data.covid import finding_labels
from monai_xattn.data.datalist import load_datalist
from monai_xattn.data.phantom import LAYOUT_NAMES, generate
from monai_xattn.data.phantom.layouts import NIH_BOX_LABELS
from monai_xattn.data.siim import rle_decode

N = 24


@pytest.fixture(scope="module")
def phantom(request, tmp_path_factory):
    """The shared session phantom when the suite provides one, else a small one of our own."""
    try:
        return Path(request.getfixturevalue("phantom_root"))
    except pytest.FixtureLookupError:
        root = tmp_path_factory.mktemp("adapters") / "phantom"
        generate(root, n=N, size=48, seed=3, workers=1)
        return root


@pytest.fixture(scope="module")
def datalists(phantom, tmp_path_factory):
    """layout -> datalist written by the CLI and read back with ``load_datalist`` (absolute paths)."""
    out = tmp_path_factory.mktemp("datalists")
    result = {}
    for layout in LAYOUT_NAMES:
        args = ["datalist", layout, "--root", str(phantom / layout), "--output", str(out / f"{layout}.json")]
        if layout == "chexpert":
            args += ["--set", f"reports_csv={phantom / layout / 'master_updated.csv'}"]
        assert main(args) == 0, layout
        result[layout] = load_datalist(out / f"{layout}.json", phantom / layout)
    return result


def mask_box(path):
    """StandardMode box of a mask PNG: x0/x1 from its columns, y0/y1 from its rows (end exclusive)."""
    rows, cols = np.nonzero(np.asarray(Image.open(path)))
    return [float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1)]


def entries(datalist):
    return [e for split in ("training", "validation", "test") for e in datalist[split]]


def sidecars(phantom, layout):
    return {
        s["image"]: s for s in map(json.loads, map(Path.read_text, (phantom / layout / "ground_truth").glob("*.json")))
    }


def relative(entry, phantom, layout):
    return Path(entry["image"]).relative_to(phantom / layout).as_posix()


@pytest.mark.parametrize("layout", LAYOUT_NAMES)
def test_every_layout_converts(datalists, layout):
    listed = entries(datalists[layout])
    assert listed, layout
    assert all(Path(e["image"]).is_file() for e in listed)
    assert len({e["image"] for e in listed}) == len(listed)
    if layout not in ("mimic-cxr", "mimic-cxr-jpg", "chexpert", "ms-cxr", "chestxray8"):  # no official split
        by_patient = {}
        for split, es in datalists[layout].items():
            for e in es:
                by_patient.setdefault(e["patient_id"], set()).add(split)
        assert all(len(s) == 1 for s in by_patient.values()), "a patient straddles splits"


@pytest.mark.parametrize("layout", ["mimic-cxr", "mimic-cxr-jpg"])
def test_mimic_matches_ground_truth(phantom, datalists, layout):
    truth = sidecars(phantom, layout)
    listed = {relative(e, phantom, layout): e for e in entries(datalists[layout])}
    assert len(listed) == sum(1 + len(s["lateral_images"]) for s in truth.values())
    for image, s in truth.items():
        e = listed[image]
        assert e["view"] == s["view"] and e["image_size"] == s["image_size"]
        assert (e["patient_id"], e["study_id"]) == (s["subject_id"], s["study_id"])
        assert Path(e["report"]).relative_to(phantom / layout).as_posix() == s["report"]
        assert e["labels"] == {k: v for k, v in s["labels"].items() if v is not None}
        assert all(
            listed[lat]["view"] == "LATERAL" and listed[lat]["study_id"] == s["study_id"] for lat in s["lateral_images"]
        )


def box_area(box: list[float]) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])


def test_chestxray8_boxes_match_ground_truth(phantom, datalists):
    truth = sidecars(phantom, "chestxray8")
    listed = {relative(e, phantom, "chestxray8"): e for e in entries(datalists["chestxray8"])}
    assert set(listed) == set(truth)
    for image, s in truth.items():
        e = listed[image]
        # the real file lists one box per image and label: the phantom writes its largest instance's
        largest: dict[str, list[float]] = {}
        for f in s["findings"]:
            if f["type"] in NIH_BOX_LABELS and f["box"] is not None:
                label = BOX_LABEL_MAP.get(NIH_BOX_LABELS[f["type"]], NIH_BOX_LABELS[f["type"]])
                if label not in largest or box_area(f["box"]) > box_area(largest[label]):
                    largest[label] = f["box"]
        expected = sorted(largest.items())
        assert sorted(zip(e["box_labels"], e["boxes"], strict=True)) == expected, image
        assert e["image_size"] == s["image_size"] and e["view"] == s["view"]
        # the axis convention end to end: a box's x spans the columns of its finding's mask
        mask_boxes = [mask_box(phantom / "chestxray8" / f["mask"]) for f in s["findings"] if f["mask"]]
        assert all(b in mask_boxes for b in e["boxes"])


def test_rsna_boxes_match_ground_truth(phantom, datalists):
    truth = sidecars(phantom, "rsna")
    listed = {relative(e, phantom, "rsna"): e for e in entries(datalists["rsna"])}
    assert set(listed) == set(truth)
    for image, s in truth.items():
        e = listed[image]
        assert e["boxes"] == [[x, y, x + w, y + h] for x, y, w, h in s["rsna_boxes"]], image
        assert e["labels"]["Pneumonia"] == int(bool(s["rsna_boxes"]))
        assert e["view"] == s["view"] and e["image_size"] == s["image_size"]


def test_siim_masks_match_ground_truth(phantom, datalists):
    truth = sidecars(phantom, "siim")
    listed = {relative(e, phantom, "siim"): e for e in entries(datalists["siim"])}
    assert set(listed) == set(truth)
    n_positive = 0
    for image, s in truth.items():
        e = listed[image]
        w, h = s["image_size"]
        expected = np.zeros((h, w), bool)
        for f in s["findings"]:
            if f["type"] == "pneumothorax":
                expected |= np.asarray(Image.open(phantom / "siim" / f["mask"])) > 0
        np.testing.assert_array_equal(rle_decode(e["rle"], h, w, e["rle_mode"]).astype(bool), expected, err_msg=image)
        n_positive += bool(expected.any())
    assert sum(bool(e["rle"]) for e in listed.values()) == n_positive


def test_ms_cxr_boxes_match_ground_truth(phantom, datalists):
    truth = sidecars(phantom, "ms-cxr")
    listed = {relative(e, phantom, "ms-cxr"): e for e in entries(datalists["ms-cxr"])}
    assert set(listed) == set(truth)
    for image, s in truth.items():
        e = listed[image]
        expected = sorted(
            [float(int(v)) for v in f["box"]] for f in s["findings"] if f["type"] != "device" and f["box"]
        )
        assert sorted(e["boxes"]) == expected, image
        assert len(e["box_phrases"]) == len(e["boxes"]) and e["image_size"] == s["image_size"]


def test_chexpert_matches_ground_truth(phantom, datalists):
    truth = sidecars(phantom, "chexpert")
    listed = {relative(e, phantom, "chexpert"): e for e in entries(datalists["chexpert"])}
    assert set(truth) <= set(listed)
    for image, s in truth.items():
        e = listed[image]
        # default policy: uncertain kept as -1, blank -> 0
        assert e["labels"] == {k: 0 if v is None else v for k, v in s["labels"].items()}, image
        assert e["report_text"] == s["report"] and e["view"] == s["view"]
        assert (e in datalists["chexpert"]["test"]) == image.startswith("valid/")


def test_covid_matches_ground_truth(phantom, datalists):
    truth = sidecars(phantom, "covid")
    listed = {relative(e, phantom, "covid"): e for e in entries(datalists["covid"])}
    usable = {i: s for i, s in truth.items() if s["finding"] != "todo"}
    assert set(usable) <= set(listed) and not set(truth).difference(usable) & set(listed)
    for image, s in usable.items():
        e = listed[image]
        assert e["finding"] == s["finding"] and e["labels"] == finding_labels(s["finding"])
        assert e["report_text"] == s["report"]
        assert ("severity" in e) == ("COVID" in s["finding"])
