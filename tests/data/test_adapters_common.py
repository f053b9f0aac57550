"""Shared adapter pieces: datalist schema + JSON I/O, patient splits, box checks, the report, the CLI guard rails."""

import json

import numpy as np
import pytest

from monai_xattn.cli import main
from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    check_boxes,
    ensure_outside,
    load_datalist,
    normalize_view,
    read_table,
    split_groups,
    validate_datalist,
    write_datalist,
    xywh_to_xyxy,
)

GOOD = {
    "training": [
        {
            "image": "images/a.png",
            "report": "reports/a.txt",
            "image_id": "a",
            "patient_id": "p1",
            "view": "PA",
            "image_size": [64, 48],
            "boxes": [[1.5, 2.0, 10.0, 20.0]],
            "box_labels": ["Pneumonia"],
            "labels": {"Pneumonia": 1, "Edema": -1},
            "rle": [],
        }
    ],
    "validation": [{"image": "images/b.png"}],
}


def test_write_then_load_joins_paths(tmp_path):
    out = write_datalist(GOOD, tmp_path / "sub" / "dl.json")
    on_disk = json.loads(out.read_text())
    assert on_disk["training"][0]["image"] == "images/a.png"  # stays relative on disk
    loaded = load_datalist(out, "/data/root")
    assert loaded["training"][0]["image"] == "/data/root/images/a.png"
    assert loaded["training"][0]["report"] == "/data/root/reports/a.txt"
    assert loaded["training"][0]["boxes"] == [[1.5, 2.0, 10.0, 20.0]]
    assert loaded["test"] == [] and len(loaded["validation"]) == 1


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "JSON object"),
        ({"train": []}, "split keys"),
        ({"training": {}}, "list of entries"),
        ({"training": [{"image_id": "x"}]}, r"training\[0\].*'image'"),
        ({"training": [{"image": "a", "view": "Frontal"}]}, "'view'"),
        ({"training": [{"image": "a", "boxes": [[0, 0, 1]]}]}, "'boxes'"),
        ({"training": [{"image": "a", "boxes": [[5, 0, 1, 1]]}]}, "x0 <= x1"),
        ({"training": [{"image": "a", "boxes": [[0, 0, 1, 1]], "box_labels": []}]}, "box_labels"),
        ({"training": [{"image": "a", "labels": {"Edema": 2}}]}, "'labels'"),
        ({"training": [{"image": "a", "image_size": [10.5, 3]}]}, "'image_size'"),
        ({"test": [{"image": "a"}, {"image": "b", "rle": "-1"}]}, r"test\[1\] \(b\).*'rle'"),
    ],
)
def test_schema_errors_name_the_entry(tmp_path, bad, message):
    with pytest.raises(DatalistError, match=message):
        validate_datalist(bad, "x.json")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(DatalistError, match=message):
        load_datalist(path, tmp_path)


def test_load_rejects_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(DatalistError, match="broken.json: not valid JSON"):
        load_datalist(path, tmp_path)


def test_split_groups_partitions_patients_reproducibly():
    groups = [f"p{i % 97}" for i in range(500)]  # patients repeat: they must never straddle splits
    a = split_groups(groups, 0.15, 0.15, seed=0)
    assert a == split_groups(groups, 0.15, 0.15, seed=0)
    assert a != split_groups(groups, 0.15, 0.15, seed=1)
    assert set(a) == set(groups)
    counts = {s: sum(v == s for v in a.values()) for s in ("training", "validation", "test")}
    # sklearn arithmetic: ceil(0.3 * 97) = 30 held out, ceil(0.5 * 30) = 15 of them validation
    assert counts == {"training": 67, "validation": 15, "test": 15}


def test_split_groups_edges():
    assert set(split_groups(["a", "b"], 0.0, 0.0).values()) == {"training"}
    only_val = split_groups([str(i) for i in range(10)], 0.2, 0.0)
    assert sorted(only_val.values()).count("validation") == 2 and "test" not in only_val.values()
    with pytest.raises(ValueError, match="sum below 1"):
        split_groups(["a"], 0.6, 0.4)


def test_boxes_and_checks():
    xyxy = xywh_to_xyxy([[225.084745762712, 547.019216763771, 86.7796610169491, 79.1864406779661]])
    # exact float64 sums, unlike a float32 round trip
    assert xyxy[0, 2] == 225.084745762712 + 86.7796610169491
    boxes = np.array([[0, 0, 10, 10], [5, 5, 70, 10], [3, 3, 3, 9], [np.nan, 0, 1, 1], [-1, 0, 4, 4]], float)
    reasons = check_boxes(boxes, [64, 48])
    assert reasons[0] == ""
    assert "outside the 64x48" in reasons[1] and "outside" in reasons[4]
    assert "zero or negative" in reasons[2]
    assert "not a number" in reasons[3]
    assert (check_boxes(boxes[:1], None) == "").all()


def test_views():
    assert [normalize_view(v) for v in ["PA", "ap", "AP Supine", "L", "LL", "LATERAL", "", "PA LLD", None]] == [
        "PA",
        "AP",
        "AP",
        "LATERAL",
        "LATERAL",
        "LATERAL",
        "OTHER",
        "OTHER",
        "OTHER",
    ]


def test_report_counts_and_prints():
    report = AdapterReport("demo", positive_rule="has a box")
    report.drop("img1", "image file missing")
    report.drop("img2", "image file missing")
    report.drop("img3#0", "box outside the 8x8 image")
    report.note("hello")
    datalist = {
        "training": [{"image": "a", "patient_id": "1", "study_id": "s1", "boxes": [[0, 0, 1, 1], [1, 1, 2, 2]]}],
        "test": [{"image": "b", "patient_id": "1", "study_id": "s2", "boxes": []}],
    }
    report.count(datalist, lambda e: e["boxes"])
    assert (report.images, report.studies, report.patients, report.boxes, report.positives) == (2, 2, 1, 2, 1)
    text = str(report)
    assert "2 x image file missing (e.g. img1, img2)" in text
    assert "1 x box outside the 8x8 image" in text and "note: hello" in text
    assert "training 1, validation 0, test 1" in text


def test_cli_refuses_output_inside_root(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    with pytest.raises(DatalistError, match="refusing"):
        ensure_outside(tmp_path / "data" / "x" / "dl.json", tmp_path / "data")
    ensure_outside(tmp_path / "dl.json", tmp_path / "data")
    assert (
        main(["datalist", "rsna", "--root", str(tmp_path / "data"), "--output", str(tmp_path / "data" / "o.json")]) == 1
    )
    assert "refusing to write inside the dataset folder" in capsys.readouterr().err
    assert not (tmp_path / "data" / "o.json").exists()


def test_cli_missing_root_and_unknown_dataset(tmp_path, capsys):
    assert main(["datalist", "siim", "--root", str(tmp_path / "nope"), "--output", str(tmp_path / "o.json")]) == 1
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["datalist", "imagenet", "--root", str(tmp_path), "--output", str(tmp_path / "o.json")])


def test_cli_options(tmp_path, capsys):
    from monai_xattn.data.datalist_cli import parse_options

    assert parse_options(['views=["PA", "AP"]', "uncertain=ones", "read_headers=false", "x=1.5"]) == {
        "views": ["PA", "AP"],
        "uncertain": "ones",
        "read_headers": False,
        "x": 1.5,
    }
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["views"])
    (tmp_path / "d").mkdir()
    for dataset in ("rsna", "mimic-cxr-jpg"):
        args = ["datalist", dataset, "--root", str(tmp_path / "d"), "--output", str(tmp_path / "o.json")]
        assert main([*args, "--set", "colour=red"]) == 1
        assert f"{dataset} has no option(s) ['colour']" in capsys.readouterr().err


def test_name_options():
    from monai_xattn.data.datalist import VIEWS, as_names

    assert as_names("PA", "views", VIEWS) == ("PA",)  # a bare string is one name, not letters
    assert as_names(["PA", "AP"], "views", VIEWS) == ("PA", "AP") and as_names(None, "views") is None
    with pytest.raises(ValueError, match=r"views: unknown value\(s\) \['Frontal'\]"):
        as_names(["Frontal"], "views", VIEWS)


# ---------------------------------------------------------------- read_table: the one place CSV rows are parsed


def test_read_table_rows_carry_their_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b'\xef\xbb\xbf id , v\r\n\r\na, 1 \r\n   \r\n"b,c","x\ny"\r\nd,2\r\n')
    df = read_table(path)
    assert list(df.columns) == ["id", "v"]  # byte-order mark and spaces gone
    assert df["id"].tolist() == ["a", "b,c", "d"] and df["v"].tolist() == ["1", "x\ny", "2"]
    assert (df.index + 2).tolist() == [3, 5, 7]  # index + 2 is the line, blank lines and quoted newlines included


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"t\.csv: the file is empty"),
        (b"\n  \n", r"t\.csv: the file is empty"),
        (b"id,v\na,1\nb\n", r"t\.csv: line 3: 1 fields where the header has 2"),
        (b"id,v\na,1,\n", r"t\.csv: line 2: 3 fields where the header has 2"),  # even an empty extra field
        (b"id,v\na,1\nb,\xff\n", r"t\.csv: line 3: not UTF-8 \(byte 0xff"),
        (b'id,v\na,"1\nb,2\n', r"t\.csv: line 2: malformed CSV"),  # an open quote would swallow the rest
        (b"id,id\na,1\n", r"t\.csv: line 1: column name\(s\) \['id'\] appear more than once"),
    ],
)
def test_read_table_names_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(DatalistError, match=message):
        read_table(path)


def test_read_table_gzip(tmp_path):
    import gzip

    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"id,v\na,1\n"))
    assert read_table(path)["v"].tolist() == ["1"]
    for damaged in (gzip.compress(b"id,v\na,1\n")[:-12], b"id,v\na,1\n"):
        path.write_bytes(damaged)
        with pytest.raises(DatalistError, match=r"t\.csv\.gz: not a readable gzip file"):
            read_table(path)
    path.write_bytes(gzip.compress(b"id,v\na,\xe9\n"))
    with pytest.raises(DatalistError, match=r"t\.csv\.gz: line 2: not UTF-8"):
        read_table(path)


def test_read_table_comment_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("## a note, with a comma\nid,v\na,1\n")
    assert read_table(path, comment="#")["id"].tolist() == ["a"]
    path.write_text("## only notes\n")
    with pytest.raises(DatalistError, match=r"no header line: only blank or comment lines, up to the end at line 1"):
        read_table(path, comment="#")


def test_datalist_split_reads_one_split_all_of_them_or_only_boxed_images():
    from monai_xattn.data import datalist_split

    datalist = {
        "training": [{"image": "a", "boxes": [[0, 0, 1, 1]]}, {"image": "b", "boxes": []}],
        "validation": [{"image": "c"}],
        "test": [{"image": "d", "boxes": [[1, 1, 2, 2]]}],
    }
    assert [e["image"] for e in datalist_split(datalist, "test")] == ["d"]
    assert [e["image"] for e in datalist_split(datalist, "all")] == ["a", "b", "c", "d"]
    assert [e["image"] for e in datalist_split(datalist, "all", with_boxes=True)] == ["a", "d"]
    with pytest.raises(KeyError, match="'train'.*'all'"):
        datalist_split(datalist, "train")
