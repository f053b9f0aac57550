"""NIH ChestX-ray8/14 adapter on a tiny folder in the real CSV formats (header quirks included)."""

import numpy as np
import pytest
from PIL import Image

from monai_xattn.data.chestxray8 import build_chestxray8_datalist, read_bbox_list, read_data_entry
from monai_xattn.data.datalist import DatalistError

DATA_ENTRY = """Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],
00000001_000.png,Pneumonia|Infiltration,0,1,58,M,PA,2682,2749,0.143,0.143,
00000001_001.png,No Finding,1,1,58,M,AP,2894,2729,0.143,0.143,
00000002_000.png,Atelectasis,0,2,81,F,AP,2500,2048,0.168,0.168,
00000003_000.png,Pneumonia,0,3,60,F,PA,2048,2500,0.168,0.168,
00000004_000.png,Mass,0,4,40,M,PA,2048,2500,0.168,0.168,
00000005_000.png,Effusion,0,5,40,M,PA,2048,2500,0.168,0.168,
"""

BBOX = """Image Index,Finding Label,Bbox [x,y,w,h],,,
00000001_000.png,Pneumonia,10.5,12.25,20.125,8,,,
00000001_000.png,Infiltrate,1,2,3,4,,,
00000003_000.png,Pneumonia,60,40,10,10,,,
00000009_000.png,Mass,1,1,2,2,,,
"""


@pytest.fixture
def nih_root(tmp_path):
    root = tmp_path / "nih"
    (root / "images_001" / "images").mkdir(parents=True)
    (root / "Data_Entry_2017_v2020.csv").write_text(DATA_ENTRY)
    (root / "BBox_List_2017.csv").write_text(BBOX)
    (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000002_000.png\n00000003_000.png\n")
    (root / "test_list.txt").write_text("00000004_000.png\n")  # 00000005_000 is in neither list
    for name in [
        "00000001_000",
        "00000001_001",
        "00000002_000",
        "00000003_000",
        "00000004_000",
        "00000005_000",
        "extra",
    ]:
        Image.fromarray(np.zeros((48, 64), np.uint8)).save(root / "images_001" / "images" / f"{name}.png")
    return root


def test_readers_handle_header_quirks(nih_root):
    entries = read_data_entry(nih_root / "Data_Entry_2017_v2020.csv")
    assert list(entries.iloc[0][["image", "patient_id", "view", "orig_width", "orig_height", "spacing_y"]]) == [
        "00000001_000.png",
        "1",
        "PA",
        "2682",
        "2749",
        "0.143",
    ]
    boxes = read_bbox_list(nih_root / "BBox_List_2017.csv")
    assert boxes.iloc[0][["x0", "y0", "x1", "y1"]].tolist() == [10.5, 12.25, 30.625, 20.25]
    assert boxes["line"].tolist() == [2, 3, 4, 5]


def test_nih_rows(nih_root):
    datalist, report = build_chestxray8_datalist(nih_root, val_fraction=0.34)
    entries = {e["image_id"]: e for es in datalist.values() for e in es}
    assert sorted(entries) == [
        "00000001_000.png",
        "00000001_001.png",
        "00000002_000.png",
        "00000003_000.png",
        "00000004_000.png",
    ]
    first = entries["00000001_000.png"]
    assert first["image"] == "images_001/images/00000001_000.png"
    assert first["image_size"] == [64, 48] and first["view"] == "PA" and first["patient_id"] == "1"
    assert first["boxes"] == [[10.5, 12.25, 30.625, 20.25], [1.0, 2.0, 4.0, 6.0]]
    assert first["box_labels"] == ["Pneumonia", "Infiltration"]  # Infiltrate renamed, noted
    assert first["labels"]["Pneumonia"] == first["labels"]["Infiltration"] == 1 and first["labels"]["Mass"] == 0
    assert entries["00000001_001.png"]["view"] == "AP"  # all views, both images of patient 1 kept
    assert [e["image_id"] for e in datalist["test"]] == ["00000004_000.png"]
    # patient 1's two images share a split
    assert len({s for s, es in datalist.items() for e in es if e["patient_id"] == "1"}) == 1
    # box of 00000003 reaches x = 70 > 64
    assert (
        entries["00000003_000.png"]["boxes"] == []
        and ("00000003_000.png#0", "box outside the 64x48 image") in report.drops
    )
    assert ("00000009_000.png (BBox line 5)", "box for an image not in Data_Entry") in report.drops
    assert ("00000005_000.png", "image in neither train_val_list.txt nor test_list.txt") in report.drops
    assert any("Infiltrate -> Infiltration" in n for n in report.notes)
    assert "1 PNG files are not in Data_Entry_2017_v2020.csv (not listed)" in report.notes
    assert (report.images, report.patients, report.boxes, report.positives) == (5, 4, 2, 2)


def test_nih_box_filter_and_missing_file(nih_root):
    (nih_root / "images_001" / "images" / "00000002_000.png").unlink()
    datalist, report = build_chestxray8_datalist(nih_root, box_findings=["Pneumonia"])
    entries = {e["image_id"]: e for es in datalist.values() for e in es}
    assert entries["00000001_000.png"]["box_labels"] == ["Pneumonia"]
    assert ("00000002_000.png", "image file missing") in report.drops
    assert any(r == "box label Infiltration not requested" for _, r in report.drops)


def test_nih_without_lists_splits_by_patient(nih_root):
    (nih_root / "train_val_list.txt").unlink()
    datalist, report = build_chestxray8_datalist(nih_root, val_fraction=0.2, test_fraction=0.2)
    assert sum(len(v) for v in datalist.values()) == 6
    assert any("split by patient" in n for n in report.notes)
    assert all("split" not in e for es in datalist.values() for e in es)


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("BBox_List_2017.csv", "Image Index,Finding Label,x,y,w,h\n", "header must start with"),
        ("BBox_List_2017.csv", "Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Mass,1,2,3,,,,\n", "line 2"),
        (
            "BBox_List_2017.csv",
            "Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Mass,1,2,3,4,,,9\n",
            "expected 6 fields",
        ),
        ("Data_Entry_2017_v2020.csv", DATA_ENTRY + DATA_ENTRY.splitlines()[1] + "\n", "duplicate Image Index"),
    ],
)
def test_nih_errors(nih_root, name, text, message):
    (nih_root / name).write_text(text)
    with pytest.raises(DatalistError, match=message):
        build_chestxray8_datalist(nih_root)


def test_nih_two_data_entry_files_is_ambiguous(nih_root):
    (nih_root / "Data_Entry_2017.csv").write_text(DATA_ENTRY)
    with pytest.raises(DatalistError, match="several Data_Entry_2017"):
        build_chestxray8_datalist(nih_root)
    datalist, _ = build_chestxray8_datalist(nih_root, data_entry=nih_root / "Data_Entry_2017.csv")
    assert sum(len(v) for v in datalist.values()) == 5


def test_nih_bytes_that_are_not_utf8_name_the_line(nih_root):
    (nih_root / "BBox_List_2017.csv").write_bytes(BBOX.encode().replace(b"Infiltrate", b"Infiltr\xe9"))
    with pytest.raises(DatalistError, match=r"BBox_List_2017\.csv: line 3: not UTF-8"):
        build_chestxray8_datalist(nih_root)


def test_nih_box_lines_count_blank_lines(nih_root):
    (nih_root / "BBox_List_2017.csv").write_text(
        BBOX.replace("00000001_000.png,Infiltrate", "\n00000001_000.png,Infiltrate")
    )
    _, report = build_chestxray8_datalist(nih_root)
    assert ("00000009_000.png (BBox line 6)", "box for an image not in Data_Entry") in report.drops
