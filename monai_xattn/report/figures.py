"""Figures of the demo report, drawn from the bundles' outputs (predictions, checkpoints), never re-trained here."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["localization_case_figure", "gloria_attention_case_figure"]


def _ground_truth_boxes(dataset_dir: Path, image_id: str) -> list[list[float]]:
    sidecar = dataset_dir / "ground_truth" / f"{Path(image_id).stem}.json"
    if not sidecar.is_file():
        return []
    findings = json.loads(sidecar.read_text()).get("findings", [])
    return [f["box"] for f in findings if f.get("type") == "pneumonia" and f.get("box")]


def localization_case_figure(
    predictions_file: Path,
    entries: Sequence[Mapping[str, Any]],
    dataset_dir: Path,
    path: Path,
    n: int = 8,
    attribute_threshold: float = 0.5,
) -> dict:
    """Fig. 2 of the localization paper: ground truth boxes + report attributes (green), predictions (red).

    Args:
        predictions_file: ``predictions.json`` of ``cxr_xattn``'s ``inference.json`` (boxes in original pixels,
            best first, ``attribute_probs`` per image).
        entries: the datalist entries predicted on (``image_id``, and ``report`` or ``report_text``).
        dataset_dir: the phantom MIMIC-CXR folder (its ``ground_truth`` sidecars give the boxes).
        path: PNG to write.
        n: panels; studies with a ground-truth box come first.

    Returns:
        ``{"path", "panels", "image_ids"}``.
    """
    from monai_xattn.text.attributes import extract_attributes, load_vocabulary
    from monai_xattn.transforms import LoadCXR
    from monai_xattn.visualize.boxes import LocalizationPanel, localization_figure

    names = load_vocabulary().names
    by_id = {str(e.get("image_id")): e for e in entries}
    records = [r for r in json.loads(predictions_file.read_text()) if r["image_id"] in by_id]
    records.sort(key=lambda r: (not _ground_truth_boxes(dataset_dir, r["image_id"]), r["image_id"]))
    load = LoadCXR()
    panels = []
    for record in records[:n]:
        entry = by_id[record["image_id"]]
        report = (
            Path(entry["report"]).read_text(encoding="utf-8") if entry.get("report") else entry.get("report_text", "")
        )
        probs = record.get("attribute_probs", [])
        panels.append(
            LocalizationPanel(
                image=load(entry["image"]),
                gt_boxes=_ground_truth_boxes(dataset_dir, record["image_id"]),
                pred_boxes=record["boxes"],
                gt_attributes=extract_attributes(report).present if report else [],
                pred_attributes=[names[i] for i, p in enumerate(probs) if p >= attribute_threshold],
                title=record["image_id"],
            )
        )
    if not panels:
        raise ValueError(f"{predictions_file} has no prediction for the given entries")
    localization_figure(panels, path)
    return {"path": str(path), "panels": len(panels), "image_ids": [r["image_id"] for r in records[:n]]}


def gloria_attention_case_figure(
    bundle_configs: Sequence[str],
    overrides: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    path: Path,
    kind: str = "similarity",
) -> dict:
    """Fig. 4 of GLoRIA: an image and its report's word-to-region attention maps, from the pretrained checkpoint.

    The network and the image preprocessing come from ``gloria_eval``'s config with the demo's overrides, so the
    figure shows the model the evaluation measured.

    Args:
        bundle_configs: ``gloria_eval`` config files.
        overrides: the overrides the demo ran them with (``checkpoint``, sizes).
        entries: evaluation entries with ``image`` and ``report_text``; the first whose report has a finding
            sentence (:func:`~monai_xattn.text.content_words.finding_sentences`) is drawn, with that sentence.
        path: PNG to write.
        kind: ``"similarity"`` (region-word cosine) or ``"attention"`` (the loss's attention, flat once it
            saturates), see :func:`monai_xattn.engines.grounding.gloria_word_maps`.
    """
    from monai.bundle import ConfigParser
    from monai.transforms import Compose

    from monai_xattn.networks import load_gloria_weights
    from monai_xattn.visualize.attention import gloria_attention_figure

    parser = ConfigParser()
    parser.read_config(list(bundle_configs))
    parser.update({k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()})
    model = parser.get_parsed_content("network")
    load_gloria_weights(model, parser.get_parsed_content("checkpoint"))
    transform = Compose(parser.get_parsed_content("image_transforms"))
    from monai_xattn.text.content_words import finding_sentences

    found = ((e, finding_sentences(str(e.get("report_text") or ""))) for e in entries)
    entry, sentences = next(((e, s) for e, s in found if s), (None, []))
    if entry is None:
        raise ValueError("no evaluation entry has a report sentence with two content words to draw")
    sentence = sentences[0]
    image = transform({"image": entry["image"]})["image"]
    gloria_attention_figure(model, image, sentence, path, kind=kind)
    return {"path": str(path), "image": Path(entry["image"]).name, "text": sentence, "kind": kind}
