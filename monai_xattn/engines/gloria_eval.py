"""GLoRIA evaluation runs: image-report retrieval (Table 1) and zero-shot classification (Table 3) on a
class-labelled set such as CheXpert 5x200, and the Markdown + JSON tables of Tables 1-3.

The evaluation set is a datalist whose entries carry ``class`` (the class the image stands for) and
``report_text``: :func:`monai_xattn.data.build_chexpert_5x200_datalist` for CheXpert, or
:func:`class_balanced_entries` for any datalist with ``labels`` (the phantom's Consolidation always comes with
Pneumonia and its Edema with Lung Opacity, so GLoRIA's strict 5x200 rule, every other label 0, finds none there;
this selection only asks the *other evaluated classes* to be absent).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from monai_xattn.metrics.classification import CLASSIFICATION_METRICS, classification_metrics
from monai_xattn.metrics.retrieval import retrieval_metrics
from monai_xattn.networks.gloria_tasks import (
    SIMILARITY_MODES,
    clean_report,
    encode_images,
    encode_texts,
    gloria_similarity,
    zero_shot_classify,
)

__all__ = [
    "class_balanced_entries",
    "balanced_eval_datalist",
    "linear_probe_tables",
    "evaluate_retrieval_zero_shot",
    "format_tables",
    "write_tables",
]


def class_balanced_entries(
    entries: Sequence[Mapping[str, Any]],
    classes: Sequence[str],
    n_per_class: int | None = None,
    seed: int = 0,
    require_text: bool = True,
    source: str = "datalist",
) -> list[dict[str, Any]]:
    """Pick ``n_per_class`` images per class, each positive for its class and for no other class of ``classes``.

    Args:
        entries: datalist entries with ``labels`` (1 = positive).
        classes: the evaluated classes (e.g. :data:`monai_xattn.data.chexpert.COMPETITION_TASKS`).
        n_per_class: images per class; ``None`` takes the size of the smallest class for all.
        seed: sampling seed (``numpy.random.default_rng``).
        require_text: only entries whose ``report_text`` keeps a sentence after GLoRIA's cleaning (retrieval
            needs the report; a one-word impression such as "Cardiomegaly." has none).
        source: name used in error messages.

    Returns:
        copies of the picked entries with ``class`` set, grouped by class in ``classes`` order.

    Raises:
        ValueError: a class has fewer than ``n_per_class`` (or no) eligible images; the counts are listed.
    """
    pools: dict[str, list[int]] = {c: [] for c in classes}
    for i, e in enumerate(entries):
        if require_text and not clean_report(str(e.get("report_text") or "")):
            continue
        positive = [c for c in classes if e.get("labels", {}).get(c) == 1]
        if len(positive) == 1:
            pools[positive[0]].append(i)
    counts = {c: len(p) for c, p in pools.items()}
    n = min(counts.values()) if n_per_class is None else int(n_per_class)
    if n < 1 or any(v < n for v in counts.values()):
        raise ValueError(
            f"{source}: need {max(n, 1)} images per class positive for that class alone"
            f"{' with a report' if require_text else ''}; eligible per class: {counts}"
        )
    rng = np.random.default_rng(seed)
    out = []
    for c in classes:
        for i in sorted(rng.choice(pools[c], size=n, replace=False)):
            out.append({**entries[i], "class": c})
    return out


@torch.no_grad()
def balanced_eval_datalist(
    root: str | os.PathLike,
    classes: Sequence[str],
    n_per_class: int | None = None,
    seed: int = 0,
    reports_csv: str | os.PathLike | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The retrieval / zero-shot datalist of a CheXpert folder: ``{"test": class_balanced_entries(...)}``.

    All frontal images with a report, from every split, pass through :func:`class_balanced_entries` (uncertain
    labels ignored, blank ones negative), as GLoRIA's CheXpert 5x200 was drawn. The bundle's ``adapter`` for
    :func:`~monai_xattn.data.prepare_datalist`.
    """
    from monai_xattn.data.chexpert import build_chexpert_datalist

    datalist, _ = build_chexpert_datalist(
        root, reports_csv=reports_csv, require_report=True, frontal_only=True, uncertain="ignore", blank=0
    )
    return {"test": class_balanced_entries(sum(datalist.values(), []), classes, n_per_class, seed)}


def evaluate_retrieval_zero_shot(
    model: nn.Module,
    image_batches: Iterable[Mapping[str, Any]],
    entries: Sequence[Mapping[str, Any]],
    class_prompts: Mapping[str, Sequence[str]],
    k: Sequence[int] = (5, 10, 100),
    positive: str | None = None,
    retrieval_modes: Sequence[str] = SIMILARITY_MODES,
    zero_shot_mode: str = "both",
    retrieval_fusion: str = "zscore",
    zero_shot_fusion: str = "mean",
    text_key: str = "report_text",
    class_key: str = "class",
    chunk_size: int | None = 16,
    text_batch_size: int = 64,
) -> dict[str, Any]:
    """Retrieval both ways and zero-shot classification of a class-labelled image set.

    Args:
        model: a :class:`~monai_xattn.networks.GLoRIA` (its ``image_encoder`` and ``text_encoder``).
        image_batches: a non-shuffling loader of the ``entries``' images (same order).
        entries: the evaluation entries, each with ``class`` and ``report_text``; the reports form the gallery.
        class_prompts: ``{class: [prompt, ...]}`` (:func:`monai_xattn.text.generate_class_prompts`); its keys
            must cover the entries' classes; their order is the class index order.
        k: the Precision@K values; a K above the number of images is left out and listed in ``k_skipped``.
        positive: the positive class of a binary task (summary row), see :func:`classification_metrics`.
        retrieval_modes: similarity modes reported for retrieval (``global``, ``local``, ``both``).
        zero_shot_mode: similarity used for zero-shot (official: ``both``).
        retrieval_fusion: how retrieval's ``both`` combines global and local: ``"zscore"`` (each report's scores
            z-normalised over the images first) or the official ``"mean"`` (see
            :mod:`monai_xattn.networks.gloria_tasks`).
        zero_shot_fusion: the same for zero-shot (official ``"mean"``; the class columns are z-normalised after).
        chunk_size: images per local-similarity chunk.
        text_batch_size: texts per text-encoder pass.

    Returns:
        ``{"retrieval": {mode: {"image_to_text": {"P@K": ...}, "text_to_image": {...}}}, "zero_shot":
        classification_metrics(...), "confusion": [[...]], "k_skipped": [...], "n_images": N,
        "classes": [...], "prompts": {...}}``.
    """
    names = list(class_prompts)
    classes = [e[class_key] for e in entries]
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise ValueError(f"entries have classes {unknown} that class_prompts lacks ({names})")
    model.eval()
    images = encode_images(model.image_encoder, image_batches)
    n = images["image_global"].shape[0]
    if n != len(entries):
        raise ValueError(f"image_batches gave {n} images for {len(entries)} entries (a shuffling or dropping loader?)")
    reports = encode_texts(model.text_encoder, [str(e[text_key]) for e in entries], text_batch_size)
    ks = [int(kk) for kk in k if kk <= n]
    retrieval = (
        {
            mode: retrieval_metrics(
                gloria_similarity(**images, **reports, mode=mode, chunk_size=chunk_size, fusion=retrieval_fusion),
                classes,
                classes,
                ks,
            )
            for mode in retrieval_modes
        }
        if ks
        else {}
    )

    flat = [(c, p) for c, prompts in class_prompts.items() for p in prompts]
    prompt_codes = encode_texts(model.text_encoder, [p for _, p in flat], text_batch_size)
    similarity = gloria_similarity(
        **images, **prompt_codes, mode=zero_shot_mode, chunk_size=chunk_size, fusion=zero_shot_fusion
    )
    pred, _ = zero_shot_classify(similarity, [names.index(c) for c, _ in flat], len(names))
    target = torch.as_tensor([names.index(c) for c in classes])
    confusion = torch.zeros(len(names), len(names), dtype=torch.long)
    confusion.index_put_((target, pred.cpu()), torch.ones_like(target), accumulate=True)
    return {
        "retrieval": retrieval,
        "zero_shot": classification_metrics(pred.cpu(), target, names, positive),
        "confusion": confusion.tolist(),
        "k_skipped": [int(kk) for kk in k if kk > n],
        "n_images": n,
        "positive": positive,
        "classes": names,
        "prompts": {c: list(p) for c, p in class_prompts.items()},
    }


_HEADERS = {"accuracy": "Acc.", "sensitivity": "Sens.", "specificity": "Spec.", "ppv": "PPV", "npv": "NPV", "f1": "F1"}


def _fmt(value: Any, scale: float = 1.0, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value * scale:.{digits}f}"


def format_tables(results: Mapping[str, Any]) -> str:
    """Markdown tables in the layout of GLoRIA's Tables 1-3 for whatever ``results`` holds.

    Args:
        results: ``{"retrieval_zero_shot": evaluate_retrieval_zero_shot(...)}`` and/or
            ``{"linear_probe": run_linear_probe(...)}`` (keys optional).
    """
    lines: list[str] = []
    evaluation = results.get("retrieval_zero_shot")
    if evaluation and evaluation.get("retrieval"):
        ks = list(next(iter(evaluation["retrieval"].values()))["image_to_text"])
        for direction, title in (("image_to_text", "image -> text"), ("text_to_image", "text -> image")):
            lines += [
                f"**Table 1: retrieval, {title}** (Precision@K, %; {evaluation['n_images']} images)",
                "",
                "| similarity | " + " | ".join(ks) + " |",
                "|---|" + "---|" * len(ks),
            ]
            for mode, values in evaluation["retrieval"].items():
                lines.append(f"| {mode} | " + " | ".join(_fmt(values[direction][kk], 100) for kk in ks) + " |")
            lines.append("")
        if evaluation.get("k_skipped"):
            lines += [f"K above the set size, not reported: {evaluation['k_skipped']}", ""]
    probe = results.get("linear_probe")
    if probe:
        fractions = list(next(iter(probe["auroc"].values())))
        lines += [
            "**Table 2: linear probe** (mean AUROC, %; training images: "
            + ", ".join(f"{_fmt(f, 100, 0)}% = {probe['train_sizes'][f]}" for f in fractions)
            + ")",
            "",
            "| encoder | " + " | ".join(f"{_fmt(f, 100, 0)}%" for f in fractions) + " |",
            "|---|" + "---|" * len(fractions),
        ]
        for name, values in probe["auroc"].items():
            lines.append(f"| {name} | " + " | ".join(_fmt(values[f], 100, 1) for f in fractions) + " |")
        lines.append("")
    if evaluation:
        metrics = list(CLASSIFICATION_METRICS)
        zero_shot = evaluation["zero_shot"]
        lines += [
            "**Table 3: zero-shot classification** (summary: top-1 accuracy, other columns "
            + (
                f"of the positive class {evaluation['positive']}"
                if evaluation.get("positive")
                else "macro over classes"
            )
            + "; class rows one-vs-rest)",
            "",
            "| | " + " | ".join(_HEADERS[m] for m in metrics) + " |",
            "|---|" + "---|" * len(metrics),
        ]
        for row, values in zero_shot.items():
            lines.append(f"| {row} | " + " | ".join(_fmt(values[m]) for m in metrics) + " |")
        lines.append("")
    return "\n".join(lines)


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, (np.floating, np.integer)):
        return _json_ready(obj.item())
    return obj


def write_tables(results: Mapping[str, Any], output_dir: str | os.PathLike, name: str = "gloria_eval") -> dict:
    """Write ``<name>.json`` (NaN as null) and ``<name>.md`` (:func:`format_tables`) into ``output_dir``.

    Returns:
        ``results`` as written to the JSON file (so a bundle's ``run`` can hand it on).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    ready = _json_ready(results)
    (out / f"{name}.json").write_text(json.dumps(ready, indent=2), encoding="utf-8")
    (out / f"{name}.md").write_text(format_tables(results), encoding="utf-8")
    return ready


def linear_probe_tables(
    trunks: Mapping[str, nn.Module],
    train_batches: Iterable[Mapping[str, Any]],
    test_batches: Iterable[Mapping[str, Any]],
    output_dir: str | os.PathLike,
    fractions: Sequence[float] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    **train_kwargs: Any,
) -> dict:
    """Run :func:`~monai_xattn.engines.linear_probe.run_linear_probe` and write its table (GLoRIA Table 2) as
    ``linear_probe.json`` / ``.md`` into ``output_dir`` (:func:`write_tables`); the linear-probe bundle's ``run``.

    Args:
        trunks, train_batches, test_batches, seed, device, train_kwargs: see ``run_linear_probe``.
        output_dir: where the tables go.
        fractions: training fractions (default: ``run_linear_probe``'s, 1 %, 10 %, 100 %).

    Returns:
        the results as written.
    """
    from monai_xattn.engines.linear_probe import run_linear_probe

    kwargs = {} if fractions is None else {"fractions": fractions}
    results = run_linear_probe(trunks, train_batches, test_batches, seed=seed, device=device, **kwargs, **train_kwargs)
    return write_tables({"linear_probe": results}, output_dir, "linear_probe")
