"""The phantom generator over its whole parameter space: every layout x difficulty, over held-out seeds.

Each study is written by :func:`~monai_xattn.data.phantom.layouts.write_study`, the function ``generate`` (and so
``monai-xattn phantom``) runs per study, into the layout's real folder structure; only the tables are left out
(their rows are the records checked here). Small images keep it fast: the findings, their masks and the report
text are drawn the same way at any size. What is checked, study by study:

- generation does not fail;
- every written box is the tight box of its mask, in MONAI's frame (a mask PNG's ``(H, W)`` transposed to
  ``(W, H)``, boxes ``StandardMode`` xyxy, as ``monai.apps.detection`` reads them), and the NIH, RSNA and MS-CXR
  table boxes (``xywh``) are those boxes; SIIM's RLE rows decode to the pneumothorax masks;
- a group's ``distribution`` matches its instances (a bilateral finding has one instance per lung, a multifocal
  pneumonia two or more foci in one lung, a single one one);
- the attribute lists of the sidecar are what the text says, sentence by sentence (hedged sentences start with
  a hedge, negated ones with "No ..." or end in "... clear."), and ``bilateral``/``multifocal`` are stated exactly
  where the image has such a finding;
- the CheXpert-style labels follow the findings and the report's pneumonia sentences.

Seeds 1000 and up: the other tests generate phantoms with seeds below 10, so these studies are held out from
every calibration.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from monai.apps.detection.transforms.box_ops import convert_mask_to_box
from monai.data.box_utils import convert_box_mode
from PIL import Image

from monai_xattn.data.phantom import LAYOUT_NAMES, generate
from monai_xattn.data.phantom.findings import DIFFICULTIES
from monai_xattn.data.phantom.layouts import LAYOUTS, NIH_BOX_LABELS, write_study
from monai_xattn.data.phantom.reports import CHEXPERT_LABELS, text_attributes
from monai_xattn.data.siim import rle_decode

SIZE = 32  # the smallest size ``generate`` accepts
SEEDS = range(1000, 1040)
STUDIES_PER_SEED = 3  # 120 studies per layout and difficulty, 2,520 in all

#: stream -> its layouts; a stream's layouts are written from one rendering of each study, as ``generate`` does
STREAMS: dict[str, tuple[str, ...]] = {}
for _name in LAYOUT_NAMES:
    STREAMS[LAYOUTS[_name].stream] = (*STREAMS.get(LAYOUTS[_name].stream, ()), _name)

_UNCERTAIN = re.compile(r"^(?:Possible|Cannot exclude|Findings may represent)\b")
# "ther is no": the generator's typo of "There" (written in lower case)
_NEGATED = re.compile(r"^(?:No|There is no|Ther is no)\b|\bclear\.$", re.IGNORECASE)
_PNEUMONIA = re.compile(r"\bpn(?:eu|ue)monia\b", re.IGNORECASE)  # "pnuemonia": its typo
_RANK = {"positive": 3, "uncertain": 2, "negated": 1}


def sentence_status(sentence: str) -> str:
    """The status every attribute word of a generated sentence has (one per sentence, by construction)."""
    if _UNCERTAIN.search(sentence):
        return "uncertain"
    return "negated" if _NEGATED.search(sentence) else "positive"


def report_sentences(layout: str, root: Path, gt: dict) -> list[str]:
    """FINDINGS + IMPRESSION sentences of the text the layout exposes (MS-CXR: the box phrases)."""
    if layout.startswith("mimic-cxr"):
        text = (root / gt["report"]).read_text()
        text = text.split(" FINDINGS:", 1)[1].replace(" IMPRESSION:", " ")
    else:
        text = gt["report"]
    text = re.sub(r"(?:^|\s)\d+\.\s", " ", " ".join(text.split()))  # numbered impressions
    return [s for s in re.split(r"(?<=\.)\s+", text.strip()) if s]


def check_masks_and_boxes(root: Path, gt: dict) -> int:
    """Every box lies in the image; every mask's tight box in MONAI's ``(W, H)`` frame is its box."""
    width, height = gt["image_size"]
    for f in gt["findings"]:
        x0, y0, x1, y1 = f["box"]
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, (gt["image"], f)
    regions = [f for f in gt["findings"] if f["mask"]]
    if not regions:
        return 0
    masks = np.stack([np.asarray(Image.open(root / f["mask"])).T for f in regions])  # (N, W, H)
    assert masks.shape[1:] == (width, height) and set(np.unique(masks)) <= {0, 255}
    boxes, _ = convert_mask_to_box(masks.astype(np.int16), bg_label=0)
    assert len(boxes) == len(regions), f"{gt['image']}: a ground-truth mask is empty"
    np.testing.assert_array_equal(boxes, np.array([f["box"] for f in regions]), err_msg=gt["image"])
    return len(regions)


def check_groups(gt: dict) -> dict[int, list[dict]]:
    """A group's ``distribution`` describes its instances (what the image shows)."""
    groups: dict[int, list[dict]] = {}
    for f in gt["findings"]:
        groups.setdefault(f["group"], []).append(f)
    for members in groups.values():
        dist = members[0]["distribution"]
        assert all(f["distribution"] == dist for f in members), members
        sides = sorted(f["side"] for f in members)
        if dist == "single":
            assert len(members) == 1, (gt["image"], members)
        elif dist == "bilateral":
            assert set(sides) == {"left", "right"}, (gt["image"], members)
        elif dist == "multifocal":
            assert len(members) >= 2 and len(set(sides)) == 1, (gt["image"], members)
    return groups


def check_labels(gt: dict) -> None:
    """CheXpert-style labels follow the visible findings (``valid`` CheXpert labels are 1/0 only)."""
    labels, kinds = gt["labels"], {f["type"] for f in gt["findings"]}
    assert set(labels) == set(CHEXPERT_LABELS)
    assert (labels["Pneumonia"] in (1, -1)) == ("pneumonia" in kinds), gt["image"]
    assert (labels["Pleural Effusion"] == 1) == ("effusion" in kinds), gt["image"]
    assert (labels["Pneumothorax"] == 1) == ("pneumothorax" in kinds), gt["image"]
    assert (labels["Support Devices"] == 1) == ("device" in kinds), gt["image"]
    assert (labels["No Finding"] == 1) == (not kinds - {"device"}), gt["image"]


def check_text(layout: str, root: Path, gt: dict, groups: dict[int, list[dict]]) -> None:
    """The sidecar's attributes and pneumonia label are what the report's sentences say; ``bilateral`` and
    ``multifocal`` are stated exactly where the image has such a finding."""
    best: dict[str, str] = {}
    pneumonia: set[str] = set()
    for sentence in report_sentences(layout, root, gt):
        status = "positive" if layout == "ms-cxr" else sentence_status(sentence)
        for name in text_attributes([sentence]):
            if _RANK[status] > _RANK.get(best.get(name, ""), 0):
                best[name] = status
        if _PNEUMONIA.search(sentence):
            pneumonia.add(status)
    for key, status in (
        ("attributes", "positive"),
        ("uncertain_attributes", "uncertain"),
        ("negated_attributes", "negated"),
    ):
        assert gt[key] == sorted(n for n, s in best.items() if s == status), (gt["image"], key, gt["report"])

    stated = set(gt["attributes"]) | set(gt["uncertain_attributes"])
    by_kind: dict[str, set[str]] = {}
    for members in groups.values():
        by_kind.setdefault(members[0]["type"], set()).add(members[0]["distribution"])
    # these kinds are always in the text the layout exposes (effusions only where it holds every finding)
    always = {"pneumonia", "pneumothorax"}
    if layout.startswith("mimic-cxr") or layout == "ms-cxr" or LAYOUTS[layout].complete_impression:
        always.add("effusion")
    bilateral = {k for k, d in by_kind.items() if "bilateral" in d}
    if bilateral & always:
        assert "bilateral" in stated, (gt["image"], by_kind, gt["report"])
    if "bilateral" in stated:
        assert bilateral, (gt["image"], by_kind, gt["report"])
    assert ("multifocal" in stated) == ("multifocal" in by_kind.get("pneumonia", set())), (gt["image"], gt["report"])

    if layout == "ms-cxr":  # the phrases are not the report the labels were read from
        return
    label = gt["labels"]["Pneumonia"]
    if gt["image"].startswith("valid/"):  # CheXpert's valid labels: uncertain counts as positive
        assert (label == 1) == bool(pneumonia & {"positive", "uncertain"}), (gt["image"], gt["report"])
    else:
        assert (label == 1) == ("positive" in pneumonia), (gt["image"], gt["report"])
        assert (label == -1) == (pneumonia & {"positive", "uncertain"} == {"uncertain"}), (gt["image"], gt["report"])


def check_tables(layout: str, records: list[dict], by_id: dict[str, dict], root: Path) -> None:
    """The boxes (and SIIM's RLE masks) in the rows the layout's tables get are the sidecars' boxes and masks."""

    def xyxy(rows) -> list[list[float]]:
        return convert_box_mode(np.array(rows, dtype=float).reshape(-1, 4), src_mode="xywh", dst_mode="xyxy").tolist()

    for record in records:
        if layout == "chestxray8":
            gt = by_id[record["name"][:-4]]
            # one box per label: the largest instance's
            largest: dict[str, list[float]] = {}
            for f in gt["findings"]:
                if f["type"] in NIH_BOX_LABELS:
                    b = f["box"]
                    old = largest.get(NIH_BOX_LABELS[f["type"]])
                    if old is None or (b[2] - b[0]) * (b[3] - b[1]) > (old[2] - old[0]) * (old[3] - old[1]):
                        largest[NIH_BOX_LABELS[f["type"]]] = b
            expected = [(label, *box) for label, box in largest.items()]
            got = [
                (r[1], *box) for r, box in zip(record["boxes"], xyxy([r[2:6] for r in record["boxes"]]), strict=True)
            ]
            assert sorted(got) == sorted(expected), gt["image"]
        elif layout == "rsna":
            rows = [r for r in record["labels"] if r[5] == 1]
            pneumonia = [f["box"] for f in by_id[record["labels"][0][0]]["findings"] if f["type"] == "pneumonia"]
            assert len(rows) == min(4, len(pneumonia)) and all(b in pneumonia for b in xyxy([r[1:5] for r in rows]))
        elif layout == "siim":
            gt = by_id[record["rows"][0][0]]
            width, height = gt["image_size"]
            masks = [
                np.asarray(Image.open(root / f["mask"])) > 0 for f in gt["findings"] if f["type"] == "pneumothorax"
            ]
            decoded = rle_decode([r[1].strip() for r in record["rows"]], height, width, mode="relative").astype(bool)
            np.testing.assert_array_equal(decoded, np.any([np.zeros((height, width), bool), *masks], axis=0))
    if layout == "ms-cxr":  # a study without a finding has no row: compare all boxes at once
        rows = [r for record in records for r in record["rows"]]
        got = [(r[0], *box) for r, box in zip(rows, xyxy([r[4:8] for r in rows]), strict=True)]
        expected = [(k, *f["box"]) for k, gt in by_id.items() for f in gt["findings"] if f["type"] != "device"]
        assert sorted(got) == sorted(expected)


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("stream", list(STREAMS))
def test_every_layout_and_difficulty_over_held_out_seeds(stream, difficulty, tmp_path):
    layouts = STREAMS[stream]
    counts = {"studies": 0, "masks": 0, "groups": 0}
    for seed in SEEDS:
        roots = {name: tmp_path / str(seed) / name for name in layouts}
        records = [write_study(roots, stream, i, seed, SIZE, difficulty) for i in range(STUDIES_PER_SEED)]
        for name, root in roots.items():
            by_id = {p.stem: json.loads(p.read_text()) for p in sorted((root / "ground_truth").glob("*.json"))}
            assert len(by_id) == STUDIES_PER_SEED
            for gt in by_id.values():
                counts["masks"] += check_masks_and_boxes(root, gt)
                groups = check_groups(gt)
                counts["groups"] += len(groups)
                check_labels(gt)
                if gt["report"] is not None:
                    check_text(name, root, gt, groups)
            check_tables(name, [r.get("mimic", r.get(name)) for r in records], by_id, root)
        counts["studies"] += len(records)
        shutil.rmtree(tmp_path / str(seed))  # 15,000 small files a run otherwise stay for pytest to clean up
    assert counts["studies"] == len(SEEDS) * STUDIES_PER_SEED and counts["masks"] > 0 and counts["groups"] > 0


def test_a_negative_seed_is_refused_before_anything_is_written(tmp_path):
    # numpy's SeedSequence would refuse it only in the workers, after the layout folders were made
    with pytest.raises(ValueError, match="seed"):
        generate(tmp_path / "out", layout="all", n=1, size=SIZE, seed=-1)
    assert not (tmp_path / "out").exists()
