"""The demo's report: our tables beside the published ones, figures, curves, settings, timings and versions.

Every number comes from the step summaries of this demo run (``OUT/steps/*.done.json``, which hold what the bundles
wrote) or from files the bundles wrote; nothing is cached from another run. The published numbers are labelled as
such: theirs on the real datasets, ours on the phantom, which is smaller, synthetic and read at CPU sizes.
"""

from __future__ import annotations

import html
import json
import math
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from monai_xattn.metrics.classification import attribute_metrics
from monai_xattn.metrics.intervals import (
    align_runs,
    bootstrap_accuracy,
    format_interval,
    paired_difference,
    read_top1_overlaps,
)
from monai_xattn.report import paper
from monai_xattn.report.svg import line_chart
from monai_xattn.siim_table import format_spread

__all__ = ["Table", "collect_tables", "localization_tables", "write_report"]

# Table 1 row -> the demo's evaluation steps that fill it: <run>[_seed<k>]_evaluate[_<cam method>]_<dataset>; a
# row's cell pools its seeds (issue 18 item 7)
METHOD_STEPS = {
    "CAM": r"cxr_cam_baseline(?:_seed\d+)?_evaluate_cam",
    "GradCAM": r"cxr_cam_baseline(?:_seed\d+)?_evaluate_gradcam",
    "RetinaNet": r"cxr_retinanet(?:_seed\d+)?_evaluate",
    "Proposed w/o classification": r"cxr_xattn_no_bce(?:_seed\d+)?_evaluate",
    "Proposed": r"cxr_xattn(?:_seed\d+)?_evaluate",
    "Proposed, residual alpha (ours)": r"cxr_xattn_residual(?:_seed\d+)?_evaluate",
}
#: the ablation's rows (demo ``ablation=True``, first localization seed only): Proposed, then each run that undoes
#: one of the paper's rules Proposed follows
ABLATION_REFERENCE = "Proposed (the paper's rules)"
ABLATION_STEPS = {
    ABLATION_REFERENCE: r"cxr_xattn_evaluate",
    "attributes from the whole report": r"cxr_xattn_whole_report_evaluate",
    "every study with a report trains": r"cxr_xattn_all_studies_evaluate",
    "both (the round-1 selection)": r"cxr_xattn_no_scope_no_rule_evaluate",
    "Word2Vec untrained (no corpus)": r"cxr_xattn_untrained_word_vectors_evaluate",
    "residual alpha (ours)": r"cxr_xattn_residual_evaluate",
}
DATASETS = {"mimic-cxr": "MIMIC-CXR", "chestxray8": "ChestX-ray8"}
IOU_KEYS = ("val_acc_iou25", "val_acc_iou50", "val_acc_iou75")
THRESHOLDS = (0.25, 0.5, 0.75)
#: the per-image file beside each evaluation's metrics.csv (MetricsSaver's details of the IoU@0.25 metric, which
#: holds each image's top-1 IoU)
PER_IMAGE_FILE = "val_acc_iou25_raw.csv"
#: the pointing game's per-image hits (1 / 0), beside the CAM evaluations' metrics.csv
POINTING_FILE = "val_peak_in_box_raw.csv"
POINTING_METHODS = ("CAM", "GradCAM")


class Table:
    """A titled table with a note; rendered to Markdown and HTML alike."""

    def __init__(
        self, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]], note: str = "", digits: int = 3
    ) -> None:
        self.title, self.header, self.rows, self.note = title, list(header), [list(r) for r in rows], note
        self.digits = digits

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.header) + " |", "|---" * len(self.header) + "|"]
        lines += ["| " + " | ".join(_cell(c, self.digits) for c in row) + " |" for row in self.rows]
        return "\n".join(lines + ([""] + [f"_{self.note}_"] if self.note else []))

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(_cell(c, self.digits))}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        note = f'<p class="note">{html.escape(self.note)}</p>' if self.note else ""
        return f"<h3>{html.escape(self.title)}</h3><table><tr>{head}</tr>{body}</table>{note}"


def _cell(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _metrics(steps: Mapping[str, dict], name: str) -> dict[str, float]:
    return steps.get(name, {}).get("result", {}).get("metrics", {})


def _method_runs(
    out_dir: Path,
    steps: Mapping[str, dict],
    method: str,
    dataset: str,
    patterns: Mapping[str, str] = METHOD_STEPS,
    per_image_file: str = PER_IMAGE_FILE,
) -> list[dict]:
    """Per-image results (``per_image_file``: top-1 IoUs by default) of every run (seed) of ``method`` on
    ``dataset``; a run without them gives ``{}``."""
    pattern = re.compile(f"{patterns[method]}_{re.escape(dataset)}")
    runs = []
    for name in sorted(steps):
        if not pattern.fullmatch(name):
            continue
        metrics_path = steps[name].get("result", {}).get("metrics_path")
        per_image = out_dir / Path(metrics_path).parent / per_image_file if metrics_path else None
        runs.append(read_top1_overlaps(per_image) if per_image is not None and per_image.is_file() else {})
    return runs


def _interval_cells(runs: Sequence[dict], n_boot: int = 2000) -> tuple[list[Any], int]:
    """IoU@t cells ``mean [low, high]`` pooled over the runs, and the number of images; ``-`` without results."""
    if not runs or not all(runs):
        return [None] * len(THRESHOLDS), 0
    images, overlaps = align_runs(runs)
    result = bootstrap_accuracy(overlaps, THRESHOLDS, n_boot=n_boot)
    return [format_interval(result[t]) for t in THRESHOLDS], len(images)


def _paper_gain() -> str:
    gains = []
    for dataset, name in DATASETS.items():
        proposed, retinanet = paper.PAPER_TABLE1["Proposed"][dataset], paper.PAPER_TABLE1["RetinaNet"][dataset]
        gains.append("/".join(f"{a - b:+.3f}" for a, b in zip(proposed, retinanet, strict=True)) + f" on {name}")
    return ", ".join(gains)


def _table1(out_dir: Path, steps: Mapping[str, dict]) -> list[Table]:
    """Table 1 with 95 % intervals, and the paired difference of each Proposed row against RetinaNet."""
    header = ["method", "source", "seeds"] + [f"{DATASETS[d]} IoU@{t}" for d in DATASETS for t in THRESHOLDS]
    runs = {(m, d): _method_runs(out_dir, steps, m, d) for m in METHOD_STEPS for d in DATASETS}
    rows, images = [], {}
    for method in METHOD_STEPS:
        cells = []
        for dataset in DATASETS:
            dataset_cells, n = _interval_cells(runs[method, dataset])
            cells += dataset_cells
            images[dataset] = max(images.get(dataset, 0), n)
        rows.append([method, "ours, phantom", max(len(runs[method, d]) for d in DATASETS) or None, *cells])
    for method in METHOD_STEPS:
        if method not in paper.PAPER_TABLE1:
            continue
        published = paper.PAPER_TABLE1[method]
        rows.append(
            [method, "paper, real data", None, *[v for d in DATASETS for v in (published.get(d) or (None,) * 3)]]
        )
    counts = ", ".join(f"{DATASETS[d]} {n}" for d, n in images.items())
    table = Table(
        "Localization, Table 1 (Bhalodia et al.): fraction of test images whose best box has IoU >= t",
        header,
        rows,
        "Paper: MIMIC-CXR test boxes annotated by the authors, ChestX-ray8 pneumonia boxes (one training run). "
        f"Ours: mean over the seeds and images [95 % bootstrap interval over images, seeds pooled]; images with a "
        f"box: {counts}; every study of a held-out MIMIC-CXR phantom and of the ChestX-ray8 phantom, none trained "
        "on. The detector (RetinaNet row, and the ROIs of every Proposed row) learns RSNA's boxes once and stays "
        "fixed; the heads and the CAM classifier learn from MIMIC-CXR once per seed. Proposed: the paper's alpha "
        "(softmax over ROIs of a learned function of phi); residual alpha (ours): the detector's logit plus a "
        "bounded learned term.",
    )
    paired = [
        [f"{method} - RetinaNet", "ours, phantom", *_paired_cells(runs, method, "RetinaNet")]
        for method in ("Proposed", "Proposed w/o classification", "Proposed, residual alpha (ours)", "CAM", "GradCAM")
    ]
    comparison = Table(
        "Localization: paired difference to RetinaNet on the same images",
        ["comparison", "source"] + header[3:],
        paired,
        "Difference of accuracies [95 % paired bootstrap interval over images]; an interval that excludes 0 is "
        f"a difference at that level. Paper (one run, no interval): Proposed - RetinaNet = {_paper_gain()}.",
    )
    tables = [table, comparison]
    pointing = _pointing_table(out_dir, steps)
    if pointing is not None:
        tables.append(pointing)
    ablation = [
        name for name, pattern in ABLATION_STEPS.items() if any(re.fullmatch(f"{pattern}_.+", n) for n in steps)
    ]
    if set(ablation) - {ABLATION_REFERENCE, "residual alpha (ours)"}:  # those two alone are Table 1's runs
        runs = {(m, d): _method_runs(out_dir, steps, m, d, ABLATION_STEPS) for m in ablation for d in DATASETS}
        rows = []
        for name in ablation:
            cells = [c for d in DATASETS for c in _interval_cells(runs[name, d])[0]]
            reference = name == ABLATION_REFERENCE
            rows.append(
                [name, *cells, *([None] * len(cells) if reference else _paired_cells(runs, name, ABLATION_REFERENCE))]
            )
        tables.append(
            Table(
                "Localization ablation: Proposed with one of the paper's rules undone (first localization seed)",
                ["variant"] + header[3:] + [f"minus Proposed, {h}" for h in header[3:]],
                rows,
                "One training run each (the first localization seed), on Table 1's images; intervals are over "
                "images. Proposed reads the attributes from the pneumonia sentences, trains on pneumonia-positive "
                "studies with at least one such attribute, and weights ROIs with the paper's alpha; each row undoes "
                "one of these (or two), or replaces the Word2Vec vectors by their untrained random initialisation, "
                "paired with Proposed on the same images.",
            )
        )
    return tables


def _pointing_table(out_dir: Path, steps: Mapping[str, dict]) -> Table | None:
    """The CAM rows' pointing game (issue 18 item 6): how often the map's highest pixel lies inside a box."""
    rows = []
    for method in POINTING_METHODS:
        cells = []
        for dataset in DATASETS:
            runs = _method_runs(out_dir, steps, method, dataset, per_image_file=POINTING_FILE)
            if not runs or not all(runs):
                cells += [None, None]
                continue
            images, hits = align_runs(runs)
            # a hit is 1 and a miss 0, so "at least 0.5" counts the hits
            cells += [format_interval(bootstrap_accuracy(hits, (0.5,))[0.5]), len(images)]
        if any(c is not None for c in cells):
            rows.append([method, "ours, phantom", *cells])
    if not rows:
        return None
    return Table(
        "Localization: the pointing game -- the map's peak inside a ground-truth box",
        ["method", "source"] + [h for d in DATASETS.values() for h in (f"{d} peak in box", f"{d} images")],
        rows,
        "The same maps and images as Table 1's CAM rows; mean over seeds and images [95 % bootstrap interval over "
        "images]. Unlike IoU@t it does not depend on the threshold that turns the map into boxes. Not in the paper.",
    )


def _paired_cells(runs: Mapping[tuple[str, str], list[dict]], method: str, reference: str) -> list[Any]:
    """``method - reference`` per dataset and threshold, on their common images, with paired intervals."""
    cells: list[Any] = []
    for dataset in DATASETS:
        ours, base = runs.get((method, dataset)), runs.get((reference, dataset))
        if not ours or not base or not all(ours) or not all(base):
            cells += [None] * len(THRESHOLDS)
            continue
        images_a, a = align_runs(ours)
        images_b, b = align_runs(base)
        common = sorted(set(images_a) & set(images_b))
        a = a[:, [images_a.index(i) for i in common]]
        b = b[:, [images_b.index(i) for i in common]]
        diff = paired_difference(a, b, THRESHOLDS)
        cells += [format_interval(diff[t], signed=True) for t in THRESHOLDS]
    return cells


def _attribute_table(out_dir: Path) -> Table | None:
    """Attribute classification on the MIMIC-CXR test split, from ``cxr_xattn`` inference."""
    import torch

    from monai_xattn.data import load_datalist
    from monai_xattn.text.attributes import extract_attributes

    predictions = out_dir / "cxr_xattn" / "predictions" / "predictions.json"
    datalist = out_dir / "cxr_xattn" / "datalist.json"
    if not predictions.is_file() or not datalist.is_file():
        return None
    entries = {str(e["image_id"]): e for e in load_datalist(datalist, out_dir / "data" / "mimic-cxr")["test"]}
    probs, targets = [], []
    for record in json.loads(predictions.read_text()):
        entry = entries.get(record["image_id"])
        if entry is None or not entry.get("report") or "attribute_probs" not in record:
            continue
        probs.append(record["attribute_probs"])
        # the targets the head learned: attributes of the pneumonia sentences (the cxr_xattn default scope)
        text = Path(entry["report"]).read_text(encoding="utf-8")
        targets.append(extract_attributes(text, scope="pneumonia").multi_hot.tolist())
    if not probs:
        return None
    ours = attribute_metrics(torch.tensor(probs), torch.tensor(targets))
    return Table(
        "Attribute classification (MIMIC-CXR test; accuracy of all attribute decisions at 0.5, macro AUC)",
        ["source", "accuracy", "AUC", "images"],
        [
            ["ours, phantom", ours["accuracy"], ours["auc"], len(probs)],
            ["paper, real data", paper.PAPER_ATTRIBUTES["accuracy"], paper.PAPER_ATTRIBUTES["auc"], None],
        ],
    )


def _gloria_tables(steps: Mapping[str, dict]) -> list[Table]:
    tables = []
    evaluation = steps.get("gloria_eval_evaluate", {}).get("result", {}).get("tables", {}).get("evaluate", {})
    evaluation = evaluation.get("retrieval_zero_shot", {})
    if evaluation.get("retrieval"):
        ks = ("P@5", "P@10", "P@100")
        rows = [
            [mode, "ours, phantom", *[100 * v["image_to_text"][k] if k in v["image_to_text"] else None for k in ks]]
            for mode, v in evaluation["retrieval"].items()
        ]
        rows += [[mode, "paper, real data", *values] for mode, values in paper.GLORIA_RETRIEVAL.items()]
        tables.append(
            Table(
                f"GLoRIA Table 1: image -> text retrieval, Precision@K (%), CheXpert 5xN "
                f"({evaluation.get('n_images')} images here)",
                ["similarity", "source", *ks],
                rows,
                "Chance is the share of the query's class: 20 % for 5 balanced classes. A K above the "
                "number of images is left out.",
                digits=1,
            )
        )
    if evaluation.get("zero_shot"):
        summary = evaluation["zero_shot"]["summary"]
        tables.append(
            Table(
                "GLoRIA Table 2: zero-shot classification, CheXpert 5x200 analogue",
                ["source", "accuracy", "F1"],
                [
                    ["ours, phantom", summary.get("accuracy"), summary.get("f1")],
                    ["paper, real data", paper.GLORIA_ZERO_SHOT["accuracy"], paper.GLORIA_ZERO_SHOT["f1"]],
                    ["chance", 0.2, None],
                ],
            )
        )
    probe = steps.get("gloria_eval_linear_probe", {}).get("result", {}).get("tables", {}).get("linear_probe", {})
    probe = probe.get("linear_probe", {})
    if probe.get("auroc"):
        fractions = list(next(iter(probe["auroc"].values())))
        rows = [[name, "ours, phantom", *[100 * v[f] for f in fractions]] for name, v in probe["auroc"].items()]
        header = ["encoder", "source", *[f"{100 * float(f):g} %" for f in fractions]]
        published = {f"{100 * f:g} %": i for i, f in enumerate(paper.GLORIA_FRACTIONS)}
        for name, values in paper.GLORIA_LINEAR_PROBE.items():
            rows.append(
                [name, "paper, real data", *[values[published[h]] if h in published else None for h in header[2:]]]
            )
        tables.append(
            Table("GLoRIA Table 3: CheXpert linear probe, mean AUROC (%) by training fraction", header, rows, digits=1)
        )
    siim = _siim_table(steps)
    if siim is not None:
        tables.append(siim)
    return tables


# a siim_unet evaluation step of the demo: siim_unet_<init>[_seed<k>]_evaluate[_last]
_SIIM_STEP = re.compile(r"siim_unet_(\w+?)(?:_seed\d+)?_evaluate(?:_(last))?")


def _siim_table(steps: Mapping[str, dict]) -> Table | None:
    """GLoRIA Table 4's 100 % column: best and last weights, mean ± std over the seeds, the all-empty baseline."""
    values: dict[str, dict[str, dict[str, list[float]]]] = {}  # init -> checkpoint -> metric -> one per seed
    for name in sorted(steps):
        match = _SIIM_STEP.fullmatch(name)
        if match is None:
            continue
        checkpoint = match.group(2) or "best"
        for metric, value in _metrics(steps, name).items():
            values.setdefault(match.group(1), {}).setdefault(checkpoint, {}).setdefault(metric, []).append(value)
    if not values:
        return None
    columns = [
        ("best", "val_kaggle_dice"),
        ("last", "val_kaggle_dice"),
        ("best", "val_empty_kaggle_dice"),
        ("best", "val_positive_dice"),
        ("last", "val_positive_dice"),
    ]
    rows = []
    for init, by_checkpoint in sorted(values.items(), key=lambda item: (item[0] != "random", item[0])):
        seeds = len(by_checkpoint.get("best", {}).get("val_kaggle_dice", []))
        rows.append(
            [
                init,
                f"ours, phantom, 100 %, {seeds} seed{'s' * (seeds != 1)}",
                *[format_spread(by_checkpoint.get(c, {}).get(m, [])) for c, m in columns],
            ]
        )
    rows += [
        [init, "paper, real data, 100 %", None, v[2], None, None, None] for init, v in paper.GLORIA_SIIM_DICE.items()
    ]
    return Table(
        "GLoRIA Table 4: SIIM pneumothorax segmentation, U-Net encoder from GLoRIA vs random",
        [
            "encoder init",
            "source",
            "Kaggle Dice, best val.",
            "Kaggle Dice, last epoch",
            "Kaggle Dice of an all-empty prediction",
            "Dice on positive images, best val.",
            "Dice on positive images, last epoch",
        ],
        rows,
        "Kaggle Dice: an empty ground truth scores 1 only for an empty prediction, so predicting nothing "
        "anywhere scores the share of negative test images (the all-empty column, measured on the same "
        "images). best: the weights of the best validation Kaggle Dice; last: the last epoch's, which "
        "GLoRIA's official code tests. Several seeds: mean ± sample standard deviation.",
    )


#: the grounding evaluations of a demo run: bundle output file -> where it lies under the output folder
GROUNDING_FILES = ("gloria_eval/grounding_gloria", "cxr_xattn/grounding_xattn")
#: phrase groups of the grounding table: the pneumonia phrases both papers' models can ground, then all of them
GROUNDING_GROUPS = ("Pneumonia", "all")


def _grounding_rows(out_dir: Path) -> tuple[list[dict], dict]:
    rows, notes = [], {}
    for stem in GROUNDING_FILES:
        path = out_dir / f"{stem}.json"
        if path.is_file():
            record = json.loads(path.read_text())
            rows += record["rows"]
            notes[stem] = record.get("notes", {})
    return rows, notes


def _grounding_table(out_dir: Path) -> Table | None:
    """Phrase grounding on the phantom MS-CXR layout: every method's maps scored alike (issue 22)."""
    from monai_xattn.engines.grounding import summarize_grounding
    from monai_xattn.metrics.grounding import GROUNDING_METRICS

    rows, notes = _grounding_rows(out_dir)
    if not rows:
        return None
    categories = sorted({r["category"] for r in rows})
    summary = summarize_grounding(rows, {"Pneumonia": ["Pneumonia"], "all": categories})
    table_rows = [
        [
            group,
            method,
            cell["n"],
            *(format_interval(tuple(cell[m])) for m in GROUNDING_METRICS),
            "-"
            if cell["phrase_accuracy"] is None
            else f"{format_interval(tuple(cell['phrase_accuracy']))} ({cell['n_paired']})",
        ]
        for group in GROUNDING_GROUPS
        for method, cell in summary.get(group, {}).items()
    ]
    missing = notes.get("cxr_xattn/grounding_xattn", {}).get("phrases_without_attributes", [])
    note = (
        "Phantom MS-CXR layout (every phrase of every split; neither model trained on it). CNR = |mean in box - mean "
        "outside| / sqrt(var in + var out) (MS-CXR's); signed CNR keeps the sign (ours: a map brighter outside the "
        "box scores below 0, while any non-constant map, a random one included, has CNR > 0); mIoU over thresholds "
        "0.1-0.5 of the min-max normalised map; peak in box = share of the map's maximal pixels inside the box "
        "(chance = the box's area share, what the uniform map scores); phrase accuracy (ours) = on images with several "
        "phrases, the share of the other phrases' boxes on which a phrase's map has a lower signed CNR than on its own "
        "(a phrase-agnostic map scores 0.5 by construction; n = phrases with a partner). Floors: uniform map; the image-only "
        "detector's top box (phrase-agnostic). GLoRIA similarity = cosine of region and word features, GLoRIA "
        "attention = the local loss's double softmax; cross-attention = ROI boxes painted with alpha x attention of "
        "the phrase's attributes. Means with 95 % bootstrap intervals over phrases."
    )
    if missing:
        note += f" {len(missing)} phrase(s) name no vocabulary attribute: the cross-attention map is alpha alone there."
    return Table(
        "Phrase grounding (MS-CXR metrics) on the phantom",
        ["phrases", "method", "n", "CNR", "signed CNR (ours)", "mIoU", "peak in box", "phrase accuracy (ours) (n)"],
        table_rows,
        note,
    )


def _grounding_figure(out_dir: Path, path: Path, n: int = 4) -> dict:
    """Image + box, then each method's map, for the pneumonia phrases whose maps the grounding runs kept."""
    from monai_xattn.engines.grounding import read_grounding_maps
    from monai_xattn.transforms import LoadCXR
    from monai_xattn.visualize.grounding import GroundingRow, grounding_figure

    by_item: dict[tuple[str, str], dict] = {}
    for stem in GROUNDING_FILES:
        for kept in read_grounding_maps(out_dir / f"{stem}.json"):
            item = kept["item"]
            entry = by_item.setdefault((item["image_id"], item["phrase"]), {"item": item, "maps": {}})
            # the uniform map is a blank panel: it is in the table as the floor
            entry["maps"].update({m: v for m, v in kept["maps"].items() if m != "uniform"})
    if not by_item:
        raise FileNotFoundError("no grounding run kept maps (gloria_eval / cxr_xattn evaluate_grounding.json)")
    load = LoadCXR()
    rows = [
        GroundingRow(
            load(e["item"]["image"]), e["item"]["boxes"], f"{e['item']['category']}: {e['item']['phrase']}", e["maps"]
        )
        for e in list(by_item.values())[:n]
    ]
    grounding_figure(rows, path)
    return {"path": str(path), "phrases": [r.phrase for r in rows]}


def _transfer_tables(out_dir: Path) -> list[Table]:
    """The GLoRIA-initialised detector vs random init (issue 22), as ``monai-xattn detection-transfer`` wrote it."""
    path = out_dir / "detection_transfer" / "detection_transfer.json"
    if not path.is_file():
        return []
    summary = json.loads(path.read_text())
    settings = summary["settings"]
    note = (
        f"cxr_retinanet (profile {settings['profile']}) on its own RSNA-layout phantom, test split of data seed "
        f"{settings['data_seed']}, trained on a seeded fraction of the training images (the positive share kept), "
        "backbone from random init or from this run's GLoRIA pretraining (the 'gloria' rows). The published row is "
        "GLoRIA-MIMIC on the real RSNA with a YOLOv3 head (MGCA, NeurIPS 2022): another protocol, not comparable in value."
    )
    return [
        Table(
            f"GLoRIA weights for the pneumonia detector: {table['header'][0]}",
            ["init", *table["header"][1:]],
            table["rows"],
            note,
        )
        for table in summary.get("metric_tables", {}).values()
    ]


def localization_tables(out_dir: str | Path) -> list[Table]:
    """Table 1 with intervals, the paired differences to RetinaNet and (when run) the ablation, of a demo run."""
    out_dir = Path(out_dir)
    return _table1(out_dir, _load_steps(out_dir))


def collect_tables(out_dir: Path) -> list[Table]:
    """All tables of the report, from the step summaries in ``out_dir/steps``."""
    steps = _load_steps(out_dir)
    tables = _table1(out_dir, steps)
    attributes = _attribute_table(out_dir)
    if attributes is not None:
        tables.append(attributes)
    tables += _gloria_tables(steps)
    grounding = _grounding_table(out_dir)
    return tables + _transfer_tables(out_dir) + ([grounding] if grounding is not None else [])


def _load_steps(out_dir: Path) -> dict[str, dict]:
    steps = {}
    for marker in sorted((out_dir / "steps").glob("*.done.json")):
        summary = json.loads(marker.read_text())
        steps[summary["step"]] = summary
    return steps


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("monai", "torch", "torchvision", "pytorch-ignite", "transformers", "gensim", "pydicom", "itk"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    import torch

    out["device"] = (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({torch.get_num_threads()} threads)"
    )
    return out


def _figures(out_dir: Path, bundle_overrides: Mapping[str, dict]) -> list[dict]:
    """Fig. 2 (localization cases) and Fig. 4 (GLoRIA attention) from the bundles' outputs; each failure is named."""
    from monai_xattn.data import load_datalist
    from monai_xattn.report.figures import gloria_attention_case_figure, localization_case_figure

    figures_dir = out_dir / "figures"
    figures_dir.mkdir(exist_ok=True)
    figures = []
    mimic = out_dir / "data" / "mimic-cxr"
    try:
        entries = load_datalist(out_dir / "cxr_xattn" / "datalist.json", mimic)["test"]
        info = localization_case_figure(
            out_dir / "cxr_xattn" / "predictions" / "predictions.json",
            entries,
            mimic,
            figures_dir / "fig2_localization.png",
        )
        figures.append(
            {
                "file": "figures/fig2_localization.png",
                "caption": (
                    "Fig. 2 analogue: phantom MIMIC-CXR test studies; green = ground-truth box and the report's attributes, "
                    "red = the cross-attention model's best box and predicted attributes (image only at inference)."
                ),
            }
        )
    except (OSError, ValueError, KeyError) as e:
        figures.append({"file": None, "caption": f"Fig. 2 not drawn: {e}"})
    covid = out_dir / "data" / "covid"
    try:
        entries = load_datalist(out_dir / "cxr_xattn" / "datalist_covid.json", covid)["test"]
        localization_case_figure(
            out_dir / "cxr_xattn" / "predictions_covid" / "predictions.json",
            entries,
            covid,
            figures_dir / "fig3_covid_case_study.png",
            n=4,
        )
        figures.append(
            {
                "file": "figures/fig3_covid_case_study.png",
                "caption": (
                    "Fig. 3 analogue, case study: the cross-attention model trained on phantom MIMIC-CXR applied, image only, "
                    "to phantom covid-chestxray-dataset images; green = ground truth and the clinical notes' attributes, red = "
                    "predicted box and attributes."
                ),
            }
        )
    except (OSError, ValueError, KeyError) as e:
        figures.append({"file": None, "caption": f"Fig. 3 not drawn: {e}"})
    try:
        from monai_xattn.bundles_cli import bundle_root

        config_dir = bundle_root() / "gloria_eval" / "configs"
        overrides = {
            **bundle_overrides.get("gloria_eval", {}),
            "checkpoint": out_dir / "gloria_pretrain" / "model.pt",
            "dataset_dir": out_dir / "data" / "chexpert_eval",
            "output_dir": out_dir / "gloria_eval",
        }
        entries = json.loads((out_dir / "gloria_eval" / "eval_datalist.json").read_text())["test"]
        entries = [{**e, "image": str(out_dir / "data" / "chexpert_eval" / e["image"])} for e in entries]
        info = gloria_attention_case_figure(
            [str(config_dir / "evaluate.json")], overrides, entries, figures_dir / "fig4_gloria_attention.png"
        )
        figures.append(
            {
                "file": "figures/fig4_gloria_attention.png",
                "caption": (
                    f"Fig. 4 analogue: GLoRIA's map of each content word of \u201c{info['text']}\u201d on {info['image']} "
                    "(phantom CheXpert, pretrained in this run): the region-word cosine similarity, which GLoRIA's "
                    "attention is a softmax of; the attention itself is flat once it saturates (docs/grounding.md)."
                ),
            }
        )
    except (OSError, ValueError, KeyError) as e:
        figures.append({"file": None, "caption": f"Fig. 4 not drawn: {e}"})
    try:
        _grounding_figure(out_dir, figures_dir / "grounding.png")
        figures.append(
            {
                "file": "figures/grounding.png",
                "caption": (
                    "Phrase grounding (issue 22), phantom MS-CXR layout: the image with the phrase's boxes (green), then "
                    "each method's map of the phrase (GLoRIA from this run's pretraining, the cross-attention model given "
                    "the phrase's attributes, the detector's top box)."
                ),
            }
        )
    except (OSError, ValueError, KeyError) as e:
        figures.append({"file": None, "caption": f"Grounding figure not drawn: {e}"})
    return figures


def _curves(steps: Mapping[str, dict]) -> list[str]:
    charts = []
    for name, summary in steps.items():
        curve = summary.get("result", {}).get("curve") or {}
        if not curve.get("train_loss"):
            continue
        charts.append(line_chart({"train loss": curve["train_loss"]}, name.removesuffix("_train")))
        val = {k: v for k, v in curve.get("val", {}).items() if len(v) > 1}
        if val:
            charts.append(line_chart(val, name.removesuffix("_train") + " validation"))
    return [c for c in charts if c]


_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
td:first-child,td:nth-child(2),th{text-align:left}.note{font-size:90%;color:#555}
.charts svg{margin:4px;border:1px solid #eee}img{max-width:100%;border:1px solid #ccc}"""


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def write_report(out_dir: str | Path, profile: str = "cpu") -> dict:
    """Write ``out_dir/report.md`` and ``out_dir/report.html`` from this demo run's outputs.

    Returns:
        ``{"report": path of the HTML, "summary": the tables as Markdown, "figures": [...]}``.
    """
    out_dir = Path(out_dir)
    steps = _load_steps(out_dir)
    tables = collect_tables(out_dir)
    settings = _read_json(out_dir / "steps" / "settings.json")
    # what the demo resolved from the bundles' profile files when it ran (the files may have changed since)
    settings["bundle overrides"] = _read_json(out_dir / "steps" / "profile.json").get("bundles", {})
    figures = _figures(out_dir, settings["bundle overrides"])
    charts = _curves(steps)
    timings = [[name, s["seconds"]] for name, s in steps.items()]
    total = sum(s["seconds"] for s in steps.values())
    versions = _versions()
    intro = (
        "Reproduction of Bhalodia et al. (MICCAI 2021, attribute cross-attention localization) and Huang et al. "
        "(ICCV 2021, GLoRIA) with monai_xattn's MONAI bundles. **Ours: this run, on the synthetic phantom** "
        f"(profile `{profile}`, difficulty `{settings.get('difficulty')}`). **Paper: published, on the real "
        "datasets.** The two are not comparable in value; the comparison is of the method rows' order."
    )
    summary = "\n\n".join(t.markdown() for t in tables)

    md = ["# monai_xattn demo report", "", intro, "", summary, "", "## Figures", ""]
    md += [f"![{f['caption']}]({f['file']})\n\n{f['caption']}\n" if f["file"] else f"{f['caption']}\n" for f in figures]
    md += [
        "## Training curves",
        "",
        "In report.html (SVG).",
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(settings, indent=1, default=str),
        "```",
        "",
        "## Timings (s)",
        "",
        Table("Steps", ["step", "seconds"], timings + [["total", round(total, 1)]]).markdown(),
        "",
        "## Versions",
        "",
        *[f"- {k}: {v}" for k, v in versions.items()],
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(md), encoding="utf-8")

    body = [f"<h1>monai_xattn demo report</h1><p>{_md_bold(intro)}</p>", "<h2>Tables</h2>"]
    body += [t.html() for t in tables]
    body.append("<h2>Figures</h2>")
    body += [
        f'<figure><img src="{f["file"]}" alt="{html.escape(f["caption"])}"><figcaption>'
        f"{html.escape(f['caption'])}</figcaption></figure>"
        if f["file"]
        else f'<p class="note">{html.escape(f["caption"])}</p>'
        for f in figures
    ]
    body += [
        "<h2>Training curves</h2>",
        '<div class="charts">' + "".join(charts) + "</div>",
        "<h2>Settings</h2>",
        f"<pre>{html.escape(json.dumps(settings, indent=1, default=str))}</pre>",
        Table("Timings (s)", ["step", "seconds"], timings + [["total", round(total, 1)]]).html(),
        "<h2>Versions</h2><ul>"
        + "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in versions.items())
        + "</ul>",
    ]
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>monai_xattn demo report</title>'
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    return {
        "report": str(out_dir / "report.html"),
        "summary": summary,
        "figures": figures,
        "tables": [t.title for t in tables],
    }


def _md_bold(text: str) -> str:
    parts = html.escape(text).split("**")
    return "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts)).replace("`", "")
