"""RSNA Pneumonia and SIIM-ACR adapters on tiny hand-made folders in the real CSV formats."""

import json

import numpy as np
import pytest

from monai_xattn.cli import main
from monai_xattn.data.datalist import DatalistError
from monai_xattn.data.dicom_writer import write_cxr_dicom
from monai_xattn.data.rsna import build_rsna_datalist
from monai_xattn.data.siim import build_siim_datalist, rle_decode, rle_encode

W, H = 40, 30  # non-square so that a swapped size would show


def dicom(path, patient_id="", view="PA", rows=H, cols=W):
    write_cxr_dicom(path, np.zeros((rows, cols), np.uint16), bits_stored=8, patient_id=patient_id, view_position=view)


def all_entries(datalist):
    return {e["image_id"]: e for split in datalist.values() for e in split}


# ---------------------------------------------------------------- RSNA

RSNA_CSV = """patientId,x,y,width,height,Target
aaa,,,,,0
bbb,2,3,10,5,1
bbb,20,10,5.5,4,1
ccc,,,,,0
ddd,30,20,20,5,1
eee,1,1,4,4,1
ccc,,,,,0
"""


@pytest.fixture
def rsna_root(tmp_path):
    root = tmp_path / "rsna"
    (root / "stage_2_train_images").mkdir(parents=True)
    (root / "stage_2_train_labels.csv").write_text(RSNA_CSV)
    for pid, view in [("aaa", "PA"), ("bbb", "AP"), ("ccc", "PA"), ("ddd", "AP")]:  # eee has no file
        dicom(root / "stage_2_train_images" / f"{pid}.dcm", pid, view)
    return root


def test_rsna_rows(rsna_root):
    datalist, report = build_rsna_datalist(rsna_root, val_fraction=0.25, test_fraction=0.25)
    entries = all_entries(datalist)
    assert sorted(entries) == ["aaa", "bbb", "ccc", "ddd"]
    assert entries["bbb"] == {
        "image": "stage_2_train_images/bbb.dcm",
        "image_id": "bbb",
        "patient_id": "bbb",
        "view": "AP",
        "image_size": [W, H],
        "boxes": [[2.0, 3.0, 12.0, 8.0], [20.0, 10.0, 25.5, 14.0]],
        "box_labels": ["Pneumonia", "Pneumonia"],
        "labels": {"Pneumonia": 1},
    }
    assert entries["aaa"]["boxes"] == [] and entries["aaa"]["labels"] == {"Pneumonia": 0}  # negatives kept
    # ddd's box reaches x = 50 > W: dropped and reported, the image stays a positive
    assert entries["ddd"]["boxes"] == [] and entries["ddd"]["labels"] == {"Pneumonia": 1}
    assert ("ddd (line 6)", f"box outside the {W}x{H} image") in report.drops
    assert ("eee", "image file missing") in report.drops
    assert "1 negative patientIds have several Target 0 rows; listed once" in report.notes
    assert (report.images, report.patients, report.boxes, report.positives) == (4, 4, 2, 2)
    assert sum(report.splits.values()) == 4 and report.splits["validation"] == report.splits["test"] == 1


@pytest.mark.parametrize(
    "csv, message",
    [
        ("patientId,x,y,width,height\na,,,,\n", r"missing column\(s\) \['Target'\]"),
        ("patientId,x,y,width,height,Target\na,,,,,0\na,1,1,2,2,1\n", "both Target 0 and 1"),
        ("patientId,x,y,width,height,Target\na,1,1,,2,1\n", "line 2 .*positives need all four"),
        ("patientId,x,y,width,height,Target\na,1,1,2,2,0\n", "line 2"),
        ("patientId,x,y,width,height,Target\na,1,one,2,2,1\n", "not numbers"),
        ("patientId,x,y,width,height,Target\na,,,,,2\n", "Target must be 0 or 1"),
    ],
)
def test_rsna_errors(tmp_path, csv, message):
    (tmp_path / "stage_2_train_labels.csv").write_text(csv)
    with pytest.raises(DatalistError, match=message):
        build_rsna_datalist(tmp_path)


def test_rsna_split_is_sorted_patient_permutation(tmp_path):
    """GLoRIA's split: sorted patientIds, RandomState(0).permutation, 30 % held out, then halved."""
    ids = [f"id{i:02d}" for i in range(20)]
    (tmp_path / "stage_2_train_images").mkdir()
    (tmp_path / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\n" + "".join(f"{p},,,,,0\n" for p in reversed(ids))
    )
    for p in ids:
        (tmp_path / "stage_2_train_images" / f"{p}.dcm").write_bytes(b"")
    datalist, _ = build_rsna_datalist(tmp_path, read_headers=False)
    perm = np.random.RandomState(0).permutation(20)
    held = perm[:6]
    perm2 = np.random.RandomState(0).permutation(6)
    assert {e["image_id"] for e in datalist["validation"]} == {ids[i] for i in held[perm2[:3]]}
    assert {e["image_id"] for e in datalist["test"]} == {ids[i] for i in held[perm2[3:]]}
    assert {e["image_id"] for e in datalist["training"]} == {ids[i] for i in perm[6:]}


# ---------------------------------------------------------------- SIIM


def siim_mask(y0, y1, x0, x1):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


@pytest.fixture
def siim_root(tmp_path):
    root = tmp_path / "siim"
    masks = {"1.2.3": [siim_mask(2, 5, 3, 9), siim_mask(10, 12, 20, 30)], "1.2.4": [siim_mask(0, 30, 0, 1)]}
    lines = ["ImageId, EncodedPixels"]  # the real header's leading space
    for image_id, ms in masks.items():
        lines += [f"{image_id}, {rle_encode(m)}" for m in ms]
    lines += ["1.2.5, -1", "1.2.6,-1", "1.2.7, -1", "1.2.9, -1"]  # both spellings of empty; 1.2.7 has no file
    (root).mkdir()
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    (root / "dicom-images-train" / "st9" / "se9").mkdir(parents=True)
    (root / "dicom-images-train" / "st9" / "se9" / "1.2.9.dcm").write_bytes(b"truncated")
    for k, image_id in enumerate(["1.2.3", "1.2.4", "1.2.5", "1.2.6", "1.2.8"]):
        patient = "pat-A" if k < 2 else f"pat-{k}"
        dicom(root / "dicom-images-train" / f"st{k}" / f"se{k}" / f"{image_id}.dcm", patient, "PA" if k % 2 else "AP")
    return root, masks


def test_siim_rows(siim_root):
    root, masks = siim_root
    datalist, report = build_siim_datalist(root, val_fraction=0.25, test_fraction=0.25)
    entries = all_entries(datalist)
    assert sorted(entries) == ["1.2.3", "1.2.4", "1.2.5", "1.2.6"]
    first = entries["1.2.3"]
    assert first["image"] == "dicom-images-train/st0/se0/1.2.3.dcm"
    assert first["patient_id"] == "pat-A" and first["view"] == "AP" and first["image_size"] == [W, H]
    assert first["rle"] == [rle_encode(m) for m in masks["1.2.3"]] and first["rle_mode"] == "relative"
    assert first["labels"] == {"Pneumothorax": 1}
    np.testing.assert_array_equal(rle_decode(first["rle"], H, W), masks["1.2.3"][0] | masks["1.2.3"][1])
    assert entries["1.2.5"]["rle"] == entries["1.2.6"]["rle"] == []
    # images of one patient share a split
    assert {s for s, es in datalist.items() for e in es if e["patient_id"] == "pat-A"}.__len__() == 1
    assert ("1.2.7", "image file missing") in report.drops
    assert any(i == "1.2.9" and r.startswith("unreadable DICOM header") for i, r in report.drops)
    text = str(report)
    assert "1 images have several RLE rows" in text and "RLE mode relative" in text
    assert "1 DICOM files under dicom-images-train have no row" in text
    assert (report.images, report.patients, report.positives) == (4, 3, 2)


def test_siim_absolute_csv_is_detected(tmp_path, siim_root):
    root, masks = siim_root
    lines = ["ImageId,EncodedPixels"] + [f"1.2.3,{rle_encode(m, 'absolute')}" for m in masks["1.2.3"]]
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    datalist, report = build_siim_datalist(root)
    entry = all_entries(datalist)["1.2.3"]
    assert entry["rle_mode"] == "absolute"
    np.testing.assert_array_equal(rle_decode(entry["rle"], H, W, "absolute"), masks["1.2.3"][0] | masks["1.2.3"][1])
    assert any("RLE mode absolute" in n for n in report.notes)


def test_siim_errors_and_overrun(siim_root):
    root, _ = siim_root
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\n1.2.3, -1\n1.2.3, 5 5\n")
    with pytest.raises(DatalistError, match="both -1 and an RLE"):
        build_siim_datalist(root)
    (root / "train-rle.csv").write_text("ImageId, EncodedPixels\n1.2.3,\n")
    with pytest.raises(DatalistError, match="empty EncodedPixels on line 2"):
        build_siim_datalist(root)
    (root / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n1.2.3, 0 {W * H + 1}\n1.2.4, 3 4 5 6\n")
    datalist, report = build_siim_datalist(root, rle_mode="relative")
    assert sorted(all_entries(datalist)) == ["1.2.4"]
    assert any(i == "1.2.3" and "runs to pixel" in r for i, r in report.drops)


def test_cli_writes_siim_and_rsna(siim_root, rsna_root, tmp_path, capsys):
    root, _ = siim_root
    out = tmp_path / "out" / "siim.json"
    assert main(["datalist", "siim", "--root", str(root), "--output", str(out), "--val-fraction", "0.3"]) == 0
    printed = capsys.readouterr().out
    assert "siim: 4 images" in printed and "1 x image file missing" in printed
    assert sum(len(v) for v in json.loads(out.read_text()).values()) == 4
    out = tmp_path / "out" / "rsna.json"
    assert main(["datalist", "rsna", "--root", str(rsna_root), "--output", str(out)]) == 0
    assert "rsna: 4 images, 0 studies, 4 patients, 2 boxes, 2 positives (Target = 1)" in capsys.readouterr().out


def test_siim_malformed_rle_is_a_counted_drop_naming_the_line(siim_root):
    root, masks = siim_root
    lines = ["ImageId, EncodedPixels", f"1.2.3, {rle_encode(masks['1.2.3'][0])}", "1.2.3, 5 5 9", "1.2.4, 3 x"]
    lines += ["1.2.5, 99999999999999999999 3", "1.2.6, 9223372036854775000 5 10 5"]
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    datalist, report = build_siim_datalist(root)  # auto mode: the bad strings must not stop the detection
    assert all_entries(datalist) == {}
    reasons = dict(report.drops)
    assert reasons["1.2.3 (line 3)"] == "bad RLE: odd number of values (3); expected start/length pairs"
    assert reasons["1.2.4 (line 4)"] == "bad RLE: values must be integers"
    assert reasons["1.2.5 (line 5)"] == "bad RLE: values must be integers"  # beyond int64
    # near 2**63 the relative sums would wrap round and pass: the image is dropped, not decoded
    assert "runs to pixel 9223372036854775000 or beyond" in reasons["1.2.6"]


def test_siim_overrun_in_auto_mode_is_a_counted_drop(siim_root):
    root, masks = siim_root
    lines = ["ImageId, EncodedPixels", f"1.2.3, {rle_encode(masks['1.2.3'][0])}", f"1.2.4, 0 {W * H + 1}"]
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    datalist, report = build_siim_datalist(root)
    assert sorted(all_entries(datalist)) == ["1.2.3"]
    assert any(i == "1.2.4" and "runs to pixel" in r for i, r in report.drops)
    assert any("1 fit neither reading" in n for n in report.notes)
