"""MIMIC-CXR / MIMIC-CXR-JPG and MS-CXR adapters on tiny folders in the real table formats."""

import gzip
import json

import pytest

from monai_xattn.cli import main
from monai_xattn.data.chexpert import CHEXPERT_LABELS
from monai_xattn.data.datalist import DatalistError
from monai_xattn.data.mimic_cxr import build_mimic_cxr_datalist, build_mimic_cxr_jpg_datalist
from monai_xattn.data.ms_cxr import build_ms_cxr_datalist

D1, D2, D3, D4 = (f"{c * 8}-{c * 8}-{c * 8}-{c * 8}-{c * 8}" for c in "abcd")
META = f"""dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning
{D1},10000032,50414267,CHEST (PA AND LAT),PA,3056,2544,21800506,213014.531,CHEST (PA AND LAT),postero-anterior,Erect
{D2},10000032,50414267,CHEST (PA AND LAT),LATERAL,3056,2544,21800506,213014.531,CHEST (PA AND LAT),lateral,Erect
{D3},11000011,53000001,CHEST (PORTABLE AP),AP,2000,1800,21800506,213014.531,CHEST (PORTABLE AP),antero-posterior,
{D4},12000022,54000002,,,2000,1800,21800506,213014.531,,,
"""
SPLIT = (
    f"dicom_id,study_id,subject_id,split\n{D1},50414267,10000032,train\n{D2},50414267,10000032,train\n"
    f"{D3},53000001,11000011,test\nffff-not-in-metadata,1,2,test\n"
)


def chexpert_line(subject, study, **labels):
    return ",".join([subject, study] + [labels.get(n.replace(" ", "_"), "") for n in CHEXPERT_LABELS])


def gz(path, text):
    with gzip.open(path, "wt") as f:
        f.write(text)


@pytest.fixture
def mimic_root(tmp_path):
    root = tmp_path / "mimic"
    root.mkdir()
    gz(root / "mimic-cxr-2.0.0-metadata.csv.gz", META)
    gz(root / "mimic-cxr-2.0.0-split.csv.gz", SPLIT)
    labels = "subject_id,study_id," + ",".join(CHEXPERT_LABELS) + "\n"
    labels += chexpert_line("10000032", "50414267", Pneumonia="-1.0", Edema="1.0", Cardiomegaly="0.0") + "\n"
    gz(root / "mimic-cxr-2.0.0-chexpert.csv.gz", labels)
    for suffix in (".dcm", ".jpg"):
        for rel in [f"p10/p10000032/s50414267/{D1}", f"p10/p10000032/s50414267/{D2}", f"p11/p11000011/s53000001/{D3}"]:
            (root / "files" / (rel + suffix)).parent.mkdir(parents=True, exist_ok=True)
            (root / "files" / (rel + suffix)).write_bytes(b"")
    (root / "files/p10/p10000032/s50414267.txt").write_text("FINDINGS: ...\nIMPRESSION: edema.\n")
    return root


def test_mimic_rows(mimic_root):
    datalist, report = build_mimic_cxr_datalist(mimic_root)
    first = datalist["training"][0]
    assert first == {
        "image": f"files/p10/p10000032/s50414267/{D1}.dcm",
        "image_id": D1,
        "patient_id": "10000032",
        "study_id": "50414267",
        "view": "PA",
        "image_size": [2544, 3056],
        "split": "train",
        "report": "files/p10/p10000032/s50414267.txt",
        "labels": {"Cardiomegaly": 0, "Edema": 1, "Pneumonia": -1},
    }
    assert datalist["training"][1]["view"] == "LATERAL"  # all views by default
    test = datalist["test"][0]
    assert test["image_id"] == D3 and "report" not in test and "labels" not in test
    assert (D4, "not in the split table") in report.drops
    notes = " ".join(report.notes)
    assert "1 images have no report file" in notes and "not in the chexpert table" in notes
    assert "1 dicom_ids of mimic-cxr-2.0.0-split.csv.gz are not in mimic-cxr-2.0.0-metadata.csv.gz" in notes
    assert (report.images, report.studies, report.patients, report.positives) == (3, 2, 2, 0)


def test_mimic_jpg_views_and_policy(mimic_root):
    datalist, report = build_mimic_cxr_jpg_datalist(mimic_root, views=("PA", "AP"), uncertain="ones")
    images = [e["image"] for es in datalist.values() for e in es]
    assert images == [f"files/p10/p10000032/s50414267/{D1}.jpg", f"files/p11/p11000011/s53000001/{D3}.jpg"]
    assert datalist["training"][0]["labels"]["Pneumonia"] == 1 and report.positives == 1
    assert (D2, "view LATERAL not in ('PA', 'AP')") in report.drops
    datalist, _ = build_mimic_cxr_jpg_datalist(mimic_root, views="PA")
    assert [e["image_id"] for es in datalist.values() for e in es] == [D1]
    with pytest.raises(ValueError, match="views: unknown"):
        build_mimic_cxr_datalist(mimic_root, views=["FRONTAL"])


def test_mimic_missing_file_and_errors(mimic_root, tmp_path):
    (mimic_root / f"files/p11/p11000011/s53000001/{D3}.dcm").unlink()
    _, report = build_mimic_cxr_datalist(mimic_root)
    assert (D3, "image file missing") in report.drops
    gz(mimic_root / "mimic-cxr-2.0.0-split.csv.gz", SPLIT + f"{D4},54000002,12000022,dev\n")
    with pytest.raises(DatalistError, match=r"unknown split value\(s\) \['dev'\]"):
        build_mimic_cxr_datalist(mimic_root)
    gz(mimic_root / "mimic-cxr-2.0.0-metadata.csv.gz", META + META.splitlines()[1] + "\n")
    with pytest.raises(DatalistError, match=f"duplicate dicom_id '{D1}'"):
        build_mimic_cxr_datalist(mimic_root)
    with pytest.raises(DatalistError, match="no MIMIC-CXR metadata"):
        build_mimic_cxr_datalist(tmp_path)


def test_mimic_dicom_release_without_metadata(mimic_root):
    """A MIMIC-CXR (DICOM) download: cxr-record-list instead of the metadata table; headers give view and size."""
    import numpy as np

    from monai_xattn.data.dicom_writer import write_cxr_dicom

    (mimic_root / "mimic-cxr-2.0.0-metadata.csv.gz").unlink()
    rels = {D1: "p10/p10000032/s50414267", D2: "p10/p10000032/s50414267", D3: "p11/p11000011/s53000001"}
    for (dicom_id, rel), view in zip(rels.items(), ["PA", "LL", "AP"], strict=True):
        write_cxr_dicom(
            mimic_root / "files" / rel / f"{dicom_id}.dcm", np.zeros((30, 20), np.uint16), view_position=view
        )
    (mimic_root / "files" / rels[D3] / f"{D3}.dcm").write_bytes(b"not dicom")
    lines = ["subject_id,study_id,dicom_id,path"] + [
        f"{rel.split('/')[1][1:]},{rel.split('/')[2][1:]},{d},files/{rel}/{d}.dcm" for d, rel in rels.items()
    ]
    gz(mimic_root / "cxr-record-list.csv.gz", "\n".join(lines) + "\n")
    datalist, report = build_mimic_cxr_datalist(mimic_root)
    first, lateral = datalist["training"]
    assert first["image_id"] == D1 and first["view"] == "PA" and first["image_size"] == [20, 30]
    assert lateral["view"] == "LATERAL" and first["labels"]["Edema"] == 1
    assert any(i == D3 and r.startswith("unreadable DICOM header") for i, r in report.drops)
    assert any("read from the DICOM headers" in n for n in report.notes)
    with pytest.raises(DatalistError, match="no MIMIC-CXR metadata"):
        build_mimic_cxr_jpg_datalist(mimic_root)  # the JPG release always has the table


MS_CXR = f"""dicom_id,category_name,label_text,path,x,y,w,h,image_width,image_height,split
{D1},Pneumonia,Left basilar consolidation,files/p10/p10000032/s50414267/{D1}.jpg,100,200,50.5,60,2544,3056,test
{D1},Pneumonia,Left basilar consolidation,files/p10/p10000032/s50414267/{D1}.jpg,300,210,40,30,2544,3056,test
{D1},Pleural effusion,small right effusion,files/p10/p10000032/s50414267/{D1}.jpg,2500,3000,100,100,2544,3056,test
{D3},Consolidation,right lower lobe opacity,files/p11/p11000011/s53000001/{D3}.jpg,10,20,30,40,1800,2000,train
{D4},Pneumonia,patchy opacity,files/p12/p12000022/s54000002/{D4}.jpg,10,20,30,40,1800,2000,val
"""


def test_ms_cxr_rows(mimic_root, tmp_path, capsys):
    csv = tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv"
    csv.write_text(MS_CXR)
    datalist, report = build_ms_cxr_datalist(mimic_root, csv_path=csv)
    assert datalist["test"][0] == {
        "image": f"files/p10/p10000032/s50414267/{D1}.jpg",
        "image_id": D1,
        "patient_id": "10000032",
        "study_id": "50414267",
        "image_size": [2544, 3056],
        "boxes": [[100.0, 200.0, 150.5, 260.0], [300.0, 210.0, 340.0, 240.0]],
        "box_labels": ["Pneumonia", "Pneumonia"],
        "box_phrases": ["Left basilar consolidation", "Left basilar consolidation"],
        "report_text": "Left basilar consolidation",
        "labels": {"Pneumonia": 1},
        "split": "test",
    }
    assert [e["image_id"] for e in datalist["training"]] == [D3] and datalist["validation"] == []
    assert (f"{D1} (line 4)", "box outside the 2544x3056 image") in report.drops
    assert (D4, "image file missing") in report.drops
    assert (report.images, report.boxes, report.positives) == (2, 3, 2)
    # the CLI finds the CSV at the root; the output must not go into the dataset folder
    (mimic_root / csv.name).write_text(MS_CXR)
    out = tmp_path / "ms.json"
    assert main(["datalist", "ms-cxr", "--root", str(mimic_root), "--output", str(out)]) == 0
    assert len(json.loads(out.read_text())["test"]) == 1
    assert "ms-cxr: 2 images" in capsys.readouterr().out


def test_ms_cxr_inconsistent_rows(mimic_root, tmp_path):
    csv = tmp_path / "ms.csv"
    csv.write_text(MS_CXR.replace("300,210,40,30,2544", "300,210,40,30,2545"))
    with pytest.raises(DatalistError, match=f"dicom_id {D1} has different image_width values on lines"):
        build_ms_cxr_datalist(mimic_root, csv_path=csv)
    csv.write_text(MS_CXR.replace(",val\n", ",holdout\n"))
    with pytest.raises(DatalistError, match="unknown split"):
        build_ms_cxr_datalist(mimic_root, csv_path=csv)


@pytest.mark.parametrize("rows", ["1e999", "3056.5", "0"])
def test_mimic_size_must_be_a_positive_integer(mimic_root, rows):
    gz(mimic_root / "mimic-cxr-2.0.0-metadata.csv.gz", META.replace("LATERAL,3056,", f"LATERAL,{rows},"))
    with pytest.raises(DatalistError, match=r"metadata\.csv\.gz: line 3: Columns/Rows must be positive integers"):
        build_mimic_cxr_datalist(mimic_root)


def test_mimic_unknown_split_names_the_line(mimic_root):
    gz(mimic_root / "mimic-cxr-2.0.0-split.csv.gz", SPLIT.replace(",test\nffff", ",tst\nffff"))
    with pytest.raises(DatalistError, match=r"split\.csv\.gz: line 4: unknown split value\(s\) \['tst'\]"):
        build_mimic_cxr_datalist(mimic_root)


def test_mimic_damaged_table_names_the_file(mimic_root):
    path = mimic_root / "mimic-cxr-2.0.0-split.csv.gz"
    path.write_bytes(path.read_bytes()[:-10])  # a download cut short
    with pytest.raises(DatalistError, match=r"split\.csv\.gz: not a readable gzip file"):
        build_mimic_cxr_datalist(mimic_root)


def test_ms_cxr_size_and_image_identity(mimic_root, tmp_path):
    csv = tmp_path / "ms.csv"
    csv.write_text(MS_CXR.replace("30,40,1800,2000,train", "30,40,1e999,2000,train"))
    with pytest.raises(DatalistError, match=r"ms\.csv: line 5: image_width/image_height must be positive integers"):
        build_ms_cxr_datalist(mimic_root, csv_path=csv)
    # a garbled dicom_id would list one image twice, under two ids
    csv.write_text(MS_CXR.replace(f"{D1},Pleural effusion", f"x{D1},Pleural effusion"))
    with pytest.raises(DatalistError, match=r"different dicom_id values on lines \[2, 3, 4\]"):
        build_ms_cxr_datalist(mimic_root, csv_path=csv)
    csv.write_text(MS_CXR.replace(",val\n", ",holdout\n"))
    with pytest.raises(DatalistError, match=r"ms\.csv: line 6: unknown split value\(s\) \['holdout'\]"):
        build_ms_cxr_datalist(mimic_root, csv_path=csv)
