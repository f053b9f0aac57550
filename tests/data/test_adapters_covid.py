"""covid-chestxray-dataset adapter: 29-column metadata with trailing comma, folder column, findings, severity."""

import pytest

from monai_xattn.data.covid import COVID_COLUMNS, build_covid_datalist, finding_labels, read_severity_scores
from monai_xattn.data.datalist import DatalistError


def meta_line(patient, finding, view, modality, folder, filename, notes=""):
    values = dict.fromkeys(COVID_COLUMNS, "")
    values.update(
        patientid=patient,
        finding=finding,
        view=view,
        modality=modality,
        folder=folder,
        filename=filename,
        clinical_notes=notes,
    )
    return ",".join(f'"{values[c]}"' if "," in values[c] else values[c] for c in COVID_COLUMNS) + ","


@pytest.fixture
def covid_root(tmp_path):
    root = tmp_path / "covid"
    lines = [
        ",".join(COVID_COLUMNS) + ",",
        meta_line("2", "Pneumonia/Viral/COVID-19", "PA", "X-ray", "images", "a.jpg", "fever, cough"),
        meta_line("2", "Pneumonia/Viral/COVID-19", "AP Supine", "X-ray", "images", "b.png"),
        meta_line("3", "No Finding", "L", "X-ray", "images", "c.jpg"),
        meta_line("4", "Pneumonia/Viral/COVID-19", "Axial", "CT", "volumes", "d.nii.gz"),
        meta_line("5", "todo", "PA", "X-ray", "images", "e.jpg"),
        meta_line("6", "Pneumonia/Bacterial", "PA", "X-ray", "images", "f.jpg"),  # file missing
        meta_line("7", "Pneumonia/Fungal/Pneumocystis", "AP", "X-ray", "other_dir", "g.jpg"),
    ]
    root.mkdir()
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    for rel in ["images/a.jpg", "images/b.png", "images/c.jpg", "volumes/d.nii.gz", "images/e.jpg", "other_dir/g.jpg"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    (root / "annotations").mkdir()
    (root / "annotations" / "covid-severity-scores.csv").write_text(
        "## Geographic extent and opacity, mean of 3 raters\n## arXiv 2005.11856\n"
        "filename,geographic_mean,opacity_mean\na.jpg,3.5,2.667\nzzz.jpg,1,1\n"
    )
    return root


def test_covid_rows(covid_root):
    datalist, report = build_covid_datalist(covid_root, val_fraction=0.0, test_fraction=0.0)
    entries = {e["image"]: e for e in datalist["training"]}
    assert sorted(entries) == ["images/a.jpg", "images/b.png", "images/c.jpg", "other_dir/g.jpg"]
    assert entries["images/a.jpg"] == {
        "image": "images/a.jpg",
        "image_id": "a.jpg",
        "patient_id": "2",
        "view": "PA",
        "finding": "Pneumonia/Viral/COVID-19",
        "labels": {"Pneumonia": 1, "Pneumonia/Viral": 1, "Pneumonia/Viral/COVID-19": 1},
        "report_text": "fever, cough",
        "severity": {"geographic_mean": 3.5, "opacity_mean": 2.667},
    }
    assert entries["images/b.png"]["view"] == "AP" and entries["images/c.jpg"]["view"] == "LATERAL"
    assert "severity" not in entries["images/b.png"]
    reasons = dict(report.drops)
    assert reasons["volumes/d.nii.gz (line 5)"] == "modality CT"
    assert reasons["images/e.jpg (line 6)"] == "finding 'todo' unusable"
    assert reasons["images/f.jpg (line 7)"] == "image file missing"
    assert any("1 severity-scored files are not in metadata.csv" in n for n in report.notes)
    assert (report.images, report.patients, report.positives) == (4, 3, 3)


def test_covid_view_filter_and_patient_split(covid_root):
    datalist, report = build_covid_datalist(covid_root, views=["PA", "AP"], val_fraction=0.34, test_fraction=0.34)
    entries = [e for es in datalist.values() for e in es]
    assert {e["view"] for e in entries} == {"PA", "AP"}
    assert ("images/c.jpg (line 4)", "view LATERAL not in ('PA', 'AP')") in report.drops
    splits_of_2 = {s for s, es in datalist.items() for e in es if e["patient_id"] == "2"}
    assert len(splits_of_2) == 1


def test_finding_levels_and_scores(covid_root):
    assert finding_labels("No Finding") == {"No Finding": 1}
    scores = read_severity_scores(covid_root / "annotations" / "covid-severity-scores.csv")
    assert scores.loc["a.jpg"].tolist() == [3.5, 2.667]


def test_covid_errors(covid_root):
    text = (covid_root / "metadata.csv").read_text().splitlines()
    (covid_root / "metadata.csv").write_text("\n".join(text + [text[1]]) + "\n")
    with pytest.raises(DatalistError, match=r"duplicate image \(folder/filename\) 'images/a.jpg'"):
        build_covid_datalist(covid_root)
    (covid_root / "metadata.csv").write_text("patientid,finding,view,modality,filename\n")
    with pytest.raises(DatalistError, match=r"missing column\(s\) \['folder'\]"):
        build_covid_datalist(covid_root)


def test_covid_lines_after_blank_lines_and_severity_errors(covid_root):
    text = (covid_root / "metadata.csv").read_text().splitlines()
    (covid_root / "metadata.csv").write_text("\n".join(text[:2] + [""] + text[2:]) + "\n")
    _, report = build_covid_datalist(covid_root)
    assert dict(report.drops)["volumes/d.nii.gz (line 6)"] == "modality CT"  # the line in the file
    scores = covid_root / "annotations" / "covid-severity-scores.csv"
    scores.write_text("## note\nfilename,geographic_mean,opacity_mean\na.jpg,3.5,x\n")
    with pytest.raises(DatalistError, match=r"covid-severity-scores\.csv: line 3: score is not a number"):
        build_covid_datalist(covid_root)
    scores.write_text("## note\nfilename,geographic_mean,opacity_mean\na.jpg,3.5,2,1\n")
    with pytest.raises(DatalistError, match=r"covid-severity-scores\.csv: line 3: 4 fields where the header has 3"):
        build_covid_datalist(covid_root)
    scores.write_bytes(b"## note\nfilename,geographic_mean,opacity_mean\n\xff.jpg,1,1\n")
    with pytest.raises(DatalistError, match=r"covid-severity-scores\.csv: line 3: not UTF-8"):
        build_covid_datalist(covid_root)
