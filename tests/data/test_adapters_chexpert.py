"""CheXpert adapter (prefix, uncertainty policies, reports, official split) and GLoRIA's 5x200 construction."""

import numpy as np
import pandas as pd
import pytest

from monai_xattn.data.chexpert import (
    CHEXPERT_LABELS,
    COMPETITION_TASKS,
    apply_uncertainty_policy,
    build_5x200,
    build_chexpert_5x200_datalist,
    build_chexpert_datalist,
)
from monai_xattn.data.datalist import DatalistError

HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)


def row(path, frontal="Frontal", ap_pa="AP", **labels):
    values = [labels.get(name.replace(" ", "_"), "") for name in CHEXPERT_LABELS]
    return ",".join(
        [f"CheXpert-v1.0-small/{path}", "Female", "60", frontal, ap_pa if frontal == "Frontal" else ""] + values
    )


@pytest.fixture
def chexpert_root(tmp_path):
    root = tmp_path / "chexpert"
    train = [
        row("train/patient00001/study1/view1_frontal.jpg", Edema="1.0", Atelectasis="-1.0", Cardiomegaly="0.0"),
        row("train/patient00001/study1/view2_lateral.jpg", "Lateral", Edema="1.0"),
        row("train/patient00002/study1/view1_frontal.jpg", "Frontal", "PA", No_Finding="1.0"),
        row("train/patient00003/study2/view1_frontal.jpg", Pneumonia="-1.0"),
        row("train/patient00004/study1/view1_frontal.jpg", Fracture="1.0"),  # no image file
    ]
    valid = [row("valid/patient64541/study1/view1_frontal.jpg", Consolidation="1.0", Edema="0.0")]
    root.mkdir()
    (root / "train.csv").write_text("\n".join([HEADER, *train]) + "\n")
    (root / "valid.csv").write_text("\n".join([HEADER, *valid]) + "\n")
    for line in train[:4] + valid:
        path = root / line.split(",")[0].removeprefix("CheXpert-v1.0-small/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"jpg")
    reports = tmp_path / "impressions.csv"
    reports.write_text(
        "Path,Report Impression\n"
        'CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,"1. Mild edema. 2. Possible atelectasis."\n'
    )
    return root, reports


def test_chexpert_rows(chexpert_root):
    root, reports = chexpert_root
    datalist, report = build_chexpert_datalist(root, val_fraction=0.0, reports_csv=reports)
    entries = {e["image"]: e for es in datalist.values() for e in es}
    first = entries["train/patient00001/study1/view1_frontal.jpg"]
    assert first["patient_id"] == "patient00001" and first["study_id"] == "patient00001/study1"
    assert first["view"] == "AP" and first["split"] == "train"
    assert first["report_text"] == "1. Mild edema. 2. Possible atelectasis."
    assert first["labels"]["Edema"] == 1 and first["labels"]["Atelectasis"] == -1  # default policy: ignore
    assert first["labels"]["Cardiomegaly"] == 0 and first["labels"]["Fracture"] == 0  # blank -> 0
    assert entries["train/patient00001/study1/view2_lateral.jpg"]["view"] == "LATERAL"
    assert entries["train/patient00002/study1/view1_frontal.jpg"]["view"] == "PA"
    assert [e["image"] for e in datalist["test"]] == ["valid/patient64541/study1/view1_frontal.jpg"]
    assert len(datalist["training"]) == 4 and datalist["validation"] == []
    assert ("train/patient00004/study1/view1_frontal.jpg", "image file missing") in report.drops
    assert any("4 images have no impression" in n for n in report.notes)
    assert report.positives == 3  # the two Edema images and Consolidation; No Finding and uncertain are not


def test_chexpert_policies_and_options(chexpert_root):
    root, reports = chexpert_root
    policy = {"Atelectasis": "ones", "Pneumonia": "zeros"}
    datalist, report = build_chexpert_datalist(
        root, uncertain=policy, blank=None, frontal_only=True, reports_csv=reports, require_report=True
    )
    entries = [e for es in datalist.values() for e in es]
    assert [e["image"] for e in entries] == ["train/patient00001/study1/view1_frontal.jpg"]
    assert entries[0]["labels"] == {"Cardiomegaly": 0, "Edema": 1, "Atelectasis": 1}  # blanks left out
    reasons = {r for _, r in report.drops}
    assert reasons == {"lateral view (frontal_only)", "no impression in reports_csv", "image file missing"}


def test_uncertainty_policy_frame():
    labels = pd.DataFrame({"A": [1.0, -1.0, np.nan], "B": [-1.0, 0.0, np.nan]})
    out = apply_uncertainty_policy(labels, {"A": "ones"}, blank=0)
    assert out["A"].tolist() == [1.0, 1.0, 0.0] and out["B"].tolist() == [-1.0, 0.0, 0.0]
    assert apply_uncertainty_policy(labels, "zeros", blank=None)["B"].isna().tolist() == [False, False, True]
    with pytest.raises(ValueError, match="must be one of"):
        apply_uncertainty_policy(labels, "maybe")


def test_bad_label_value_names_line(chexpert_root):
    root, _ = chexpert_root
    text = (root / "train.csv").read_text().splitlines()
    text[2] = text[2].replace(",1.0", ",2.0", 1)
    (root / "train.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(DatalistError, match="line 3: .* must be 1, 0, -1 or blank, got '2.0'"):
        build_chexpert_datalist(root)


def synthetic_train(n=60, seed=0):
    """Rows whose labels make some rows qualify for exactly one 5x200 class, others for none."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        labels = dict.fromkeys(CHEXPERT_LABELS, np.nan)
        task = COMPETITION_TASKS[i % 5]
        kind = (i // 5) % 4
        labels[task] = 1.0
        if kind == 1:
            labels[COMPETITION_TASKS[(i + 1) % 5]] = 1.0  # two tasks: excluded
        elif kind == 2:
            labels["Support Devices"] = -1.0  # uncertain other label: excluded
        elif kind == 3:
            labels["No Finding"] = 1.0  # No Finding is free: kept
        records.append(
            {
                "Path": f"CheXpert-v1.0-small/train/patient{i:05d}/study1/view1_frontal.jpg",
                "Sex": "Male",
                "Age": 50,
                "Frontal/Lateral": "Lateral" if rng.random() < 0.1 else "Frontal",
                "AP/PA": "AP",
                **labels,
            }
        )
    return pd.DataFrame(records)


def test_5x200_follows_gloria_rules():
    df = synthetic_train(200)
    out = build_5x200(df, seed=0, n_per_class=5)
    assert len(out) == 25 and out["class"].value_counts().to_dict() == dict.fromkeys(COMPETITION_TASKS, 5)
    assert (out["Frontal/Lateral"] == "Frontal").all()
    for task in COMPETITION_TASKS:
        part = out[out["class"] == task]
        others = [c for c in CHEXPERT_LABELS if c not in (task, "No Finding")]
        assert (part[task] == 1).all() and (part[others] == 0).all(axis=None)
    # seeded: the same draw twice, another seed another draw; seed 0 = pandas' RandomState(0) sampling
    assert out["Path"].tolist() == build_5x200(df, seed=0, n_per_class=5)["Path"].tolist()
    assert out["Path"].tolist() != build_5x200(df, seed=1, n_per_class=5)["Path"].tolist()
    with pytest.raises(DatalistError, match="only .* qualify for Atelectasis"):
        build_5x200(df, n_per_class=500)


def test_5x200_datalist_and_reports(tmp_path):
    df = synthetic_train(200)
    root = tmp_path / "cx"
    root.mkdir()
    df.to_csv(root / "train.csv", index=False)
    for p in df["Path"]:
        path = root / p.removeprefix("CheXpert-v1.0-small/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    reports = pd.DataFrame({"Path": df["Path"], "Report Impression": [f"impression {i}" for i in range(len(df))]})
    merged = build_5x200(root, seed=3, n_per_class=4, reports=reports)
    assert merged["Report Impression"].notna().all()
    reports.to_csv(tmp_path / "r.csv", index=False)
    datalist, report = build_chexpert_5x200_datalist(root, seed=3, n_per_class=4, reports_csv=tmp_path / "r.csv")
    assert [e["image_id"] for e in datalist["test"]] == [p.removeprefix("CheXpert-v1.0-small/") for p in merged["Path"]]
    assert [e["class"] for e in datalist["test"]] == merged["class"].tolist()
    assert all(e["report_text"].startswith("impression") for e in datalist["test"])
    assert report.images == 20 and any("seed 3" in n for n in report.notes)


def test_duplicate_path_and_short_row_name_the_lines(chexpert_root):
    root, _ = chexpert_root
    text = (root / "train.csv").read_text().splitlines()
    (root / "train.csv").write_text("\n".join(text + [text[2]]) + "\n")
    with pytest.raises(DatalistError, match=r"train\.csv: duplicate Path '.*view2_lateral\.jpg' on lines \[3, 7\]"):
        build_chexpert_datalist(root)
    # a row cut short would otherwise read its missing labels as blank (= not mentioned)
    (root / "train.csv").write_text("\n".join(text[:3] + [text[3].rsplit(",", 4)[0]]) + "\n")
    with pytest.raises(DatalistError, match=r"train\.csv: line 4: 15 fields where the header has 19"):
        build_chexpert_datalist(root)
