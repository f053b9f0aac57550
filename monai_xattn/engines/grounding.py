"""Phrase grounding on the MS-CXR layout: one map per (image, phrase) from each method, scored against the
phrase's boxes with :mod:`monai_xattn.metrics.grounding` (CNR, mIoU, peak in box).

Methods (callables ``(image (C, W, H), phrase) -> map (W', H')`` over the whole network input):

- :class:`GloriaPhraseMap`: GLoRIA's word-region cosine similarity (default) or its word-to-region attention (the
  local loss's own double softmax), averaged over the phrase's content words.
- :class:`XAttnPhraseMap`: the cross-attention localizer of Bhalodia et al. given the phrase's attributes: each ROI
  box is painted with ``alpha_i * mean_j b_ij`` (its weight times the attention of the phrase's attribute words
  over the ROIs, the ``softmax_i`` of the model's ``S_roi``), normalised over the ROIs. A phrase that names no
  vocabulary attribute gets the alpha map alone (counted in ``without_attributes``).
- :class:`DetectorTopBoxMap`: the image-only detector's best ROI as a box indicator -- a phrase-agnostic floor.
- :func:`uniform_map`: a constant map (CNR 0, mIoU 0, peak in box = the box's area share by definition).

Every map is brought to one frame, the original image stretched to ``frame_size`` (both bundles' networks see the
whole image stretched to a square, so their maps cover the same field), where the phrase's boxes are scaled alike:
methods evaluated by different bundles at different input sizes are scored on the same pixels.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from monai_xattn.metrics.grounding import (
    GROUNDING_METRICS,
    MIOU_THRESHOLDS,
    box_masks,
    box_union_mask,
    contrast_to_noise_ratio,
    mask_metrics,
    upsample_map,
)
from monai_xattn.text.content_words import content_word_indices

__all__ = [
    "GLORIA_MAP_KINDS",
    "PhraseMap",
    "phrase_items",
    "gloria_word_maps",
    "GloriaPhraseMap",
    "XAttnPhraseMap",
    "DetectorTopBoxMap",
    "uniform_map",
    "evaluate_grounding",
    "summarize_grounding",
    "format_grounding",
    "write_grounding",
    "read_grounding_maps",
]

PhraseMap = Callable[[Tensor, str], Tensor]


def phrase_items(entries: Sequence[Mapping[str, Any]], categories: Sequence[str] | None = None) -> list[dict]:
    """One item per (image, phrase) of MS-CXR datalist entries (``boxes``, ``box_labels``, ``box_phrases``).

    A phrase annotated with several boxes (e.g. "bilateral opacities") is one item whose target is their union.

    Args:
        entries: from :func:`monai_xattn.data.build_ms_cxr_datalist` (absolute ``image`` paths).
        categories: keep only these ``category_name`` values (``None``: all).

    Returns:
        dicts ``image, image_id, image_size, category, phrase, boxes`` and ``other_boxes`` (the boxes of each other
        phrase of the image, whatever ``categories`` keeps: what ``phrase_accuracy`` compares with), in datalist
        order.
    """
    items = []
    for entry in entries:
        groups: dict[tuple[str, str], list] = {}
        for box, category, phrase in zip(entry["boxes"], entry["box_labels"], entry["box_phrases"], strict=True):
            groups.setdefault((str(category), str(phrase)), []).append(list(map(float, box)))
        for (category, phrase), boxes in groups.items():
            if categories is not None and category not in categories:
                continue
            items.append(
                {
                    "image": entry["image"],
                    "image_id": str(entry.get("image_id", entry["image"])),
                    "image_size": [int(s) for s in entry["image_size"]],
                    "category": category,
                    "phrase": phrase,
                    "boxes": boxes,
                    "other_boxes": [b for key, b in groups.items() if key != (category, phrase)],
                }
            )
    return items


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


#: GLoRIA's two maps of a word: the cosine of region and word features, or the local loss's attention
GLORIA_MAP_KINDS = ("similarity", "attention")


@torch.no_grad()
def gloria_word_maps(model: nn.Module, image: Tensor, text: str, kind: str = "similarity", temp1: float = 4.0):
    """One GLoRIA map per word of ``text`` over ``image``'s regions.

    Args:
        model: a :class:`monai_xattn.networks.GLoRIA`.
        image: one preprocessed image ``(C, W, H)``.
        text: a phrase or sentence.
        kind: ``"similarity"``: the cosine similarity of each region's feature with each word's embedding, the
            quantity the attention is a softmax of (BioViL's grounding map, on GLoRIA's features);
            ``"attention"``: the word-to-region attention of the local loss (the official double softmax with
            ``temp1``). The attention saturates once the raw dot products are large: the word softmax is then
            one-hot on the same word in every region and the region softmax flat (measured on a phantom
            pretraining: dot products 60-700, every map uniform), while the similarity keeps its contrast.
        temp1: attention sharpness (the local loss's, 4.0).

    Returns:
        ``(words, maps)``: the words as the text encoder splits them (:meth:`word_strings`) and ``(T, W', H')``
        maps of the real words, on the CPU.
    """
    from monai_xattn.networks.gloria_attention import local_similarity

    if kind not in GLORIA_MAP_KINDS:
        raise ValueError(f"kind must be one of {GLORIA_MAP_KINDS}, got {kind!r}")
    device = next(model.parameters()).device
    tokens = {k: v.to(device) for k, v in model.tokenize([text]).items()}
    with _eval_mode(model):
        out = model(torch.as_tensor(image)[None].to(device), **tokens)
    mask = out["word_mask"][0]
    if kind == "attention":
        _, attn = local_similarity(out["image_local"], out["words"], out["word_mask"], temp1=temp1)
        maps = attn[0][mask]
    else:
        regions = F.normalize(out["image_local"][0], dim=0)  # (D, W', H')
        words = F.normalize(out["words"][0][:, mask], dim=0)  # (D, T)
        maps = torch.einsum("dwh,dt->twh", regions, words)
    return model.text_encoder.word_strings(text), maps.float().cpu()


class GloriaPhraseMap:
    """GLoRIA's map of a phrase: the mean over its content words of :func:`gloria_word_maps`.

    Args:
        model: a :class:`monai_xattn.networks.GLoRIA`.
        kind: ``"similarity"`` (default) or ``"attention"``, see :func:`gloria_word_maps`.
        temp1: attention sharpness (the local loss's, 4.0).
        words: ``"content"`` averages the content words (:func:`~monai_xattn.text.content_words.content_word_indices`;
            all words if none is); ``"all"`` every word of the phrase.
    """

    def __init__(self, model: nn.Module, kind: str = "similarity", temp1: float = 4.0, words: str = "content") -> None:
        if kind not in GLORIA_MAP_KINDS:
            raise ValueError(f"kind must be one of {GLORIA_MAP_KINDS}, got {kind!r}")
        if words not in ("content", "all"):
            raise ValueError(f"words must be 'content' or 'all', got {words!r}")
        self.model, self.kind, self.temp1, self.words = model, kind, temp1, words

    def __call__(self, image: Tensor, phrase: str) -> Tensor:
        names, maps = gloria_word_maps(self.model, image, phrase, self.kind, self.temp1)
        keep = content_word_indices(names) if self.words == "content" else []
        keep = [i for i in keep if i < maps.shape[0]] or list(range(maps.shape[0]))
        return maps[keep].mean(dim=0)


class XAttnPhraseMap:
    """The cross-attention localizer's map of a phrase (see module doc).

    Args:
        localizer: a :class:`monai_xattn.networks.localizer.XAttnLocalizer`.
        word_vectors: gensim ``KeyedVectors`` (or a file) the localizer was trained with.
        vocabulary: attribute vocabulary (default: the shipped one).
    """

    def __init__(self, localizer: nn.Module, word_vectors: Any, vocabulary: Any = None) -> None:
        from monai_xattn.text.attributes import load_vocabulary
        from monai_xattn.text.word2vec import attribute_vectors, load_word2vec

        self.localizer = localizer
        self.vocabulary = load_vocabulary() if vocabulary is None else vocabulary
        kv = load_word2vec(word_vectors) if isinstance(word_vectors, str | Path) else word_vectors
        self.vectors = torch.as_tensor(attribute_vectors(kv, self.vocabulary))
        self.without_attributes: list[str] = []

    def attributes(self, phrase: str) -> list[str]:
        """The vocabulary attributes the phrase states (negation-aware, whole phrase read)."""
        from monai_xattn.text.attributes import extract_attributes

        return list(extract_attributes(phrase, self.vocabulary, sections=None).present)

    def roi_weights(self, image: Tensor, phrase: str) -> tuple[Tensor, Tensor]:
        """``(boxes (N, 4), weights (N,))`` of the valid ROIs in the network input frame, weights summing to 1."""
        from monai_xattn.networks.xattn import masked_softmax

        device = next(self.localizer.parameters()).device
        with _eval_mode(self.localizer), torch.no_grad():
            rois = self.localizer.detector.forward_rois(torch.as_tensor(image)[None].to(device))["rois"]
            head = self.localizer.head(rois["r"], rois["s"], rois["g"], rois["mask"])
            weights = head["alpha"][0]
            names = self.attributes(phrase)
            if names:
                index = torch.as_tensor([self.vocabulary.index(n) for n in names], device=device)
                words = self.localizer.head.text_proj(self.vectors.to(device)[index])  # (M, D)
                similarity = F.normalize(head["phi"][0], dim=-1) @ F.normalize(words, dim=-1).t()  # (N, M)
                mask = rois["mask"][0][:, None].expand_as(similarity)
                over_rois = masked_softmax(self.localizer.head.lambda_b * similarity, mask, dim=0)  # b_ij
                weights = weights * over_rois.mean(dim=1)
            else:
                self.without_attributes.append(phrase)
        valid = rois["mask"][0]
        weights = weights[valid]
        return rois["boxes"][0][valid].cpu(), (weights / weights.sum().clamp_min(1e-12)).cpu()

    def __call__(self, image: Tensor, phrase: str) -> Tensor:
        boxes, weights = self.roi_weights(image, phrase)
        masks = box_masks(boxes, tuple(image.shape[1:])).double()  # (N, W, H)
        return torch.einsum("n,nwh->wh", weights.double(), masks)


class DetectorTopBoxMap:
    """The detector's best ROI as a box indicator map (phrase-agnostic); uniform when it proposes nothing.

    Args:
        detector: a :class:`monai_xattn.networks.roi_detector.RoiDetector`.
    """

    def __init__(self, detector: nn.Module) -> None:
        self.detector = detector

    @torch.no_grad()
    def __call__(self, image: Tensor, phrase: str) -> Tensor:
        device = next(self.detector.parameters()).device
        with _eval_mode(self.detector):
            rois = self.detector.forward_rois(torch.as_tensor(image)[None].to(device))["rois"]
        size = tuple(image.shape[1:])
        valid = rois["mask"][0]
        if not bool(valid.any()):
            return torch.ones(size, dtype=torch.float64)
        best = int(torch.where(valid, rois["s"][0], torch.full_like(rois["s"][0], -1.0)).argmax())
        return box_union_mask(rois["boxes"][0][best, None].cpu(), size).double()


def uniform_map(image: Tensor, phrase: str) -> Tensor:
    """A constant map: the floor every grounding method must clear."""
    return torch.ones(1, 1, dtype=torch.float64)


def evaluate_grounding(
    methods: Mapping[str, PhraseMap],
    items: Sequence[Mapping[str, Any]],
    transform: Callable[[dict], dict],
    frame_size: int = 224,
    thresholds: Sequence[float] = MIOU_THRESHOLDS,
    maps: dict | None = None,
    max_maps: int = 4,
    map_category: str | None = "Pneumonia",
) -> list[dict]:
    """Score every method's map of every (image, phrase) item.

    Besides MS-CXR's metrics, each row has ``phrase_accuracy`` (ours): on an image with several phrases, the share
    of the *other* phrases' boxes (``other_boxes``) on which the phrase's map has a lower signed CNR than on its own
    box (ties count half; ``nan`` for a phrase alone on its image, or whose partners share its boxes). A phrase-agnostic map gives
    the same map to both phrases of a pair, so it wins exactly one of the pair's two comparisons: its mean is 0.5
    by construction, and only a map that follows the phrase scores above.

    Args:
        methods: name -> map maker.
        items: from :func:`phrase_items` (each image is loaded once for the items that follow each other on it).
        transform: ``{"image": path} -> {"image": (C, W, H)}``, the network's preprocessing of the whole image
            (no crop: the map must cover the image the boxes are drawn on).
        frame_size: side of the square frame the metrics are computed in (the original image stretched to it).
        thresholds: of the mIoU.
        maps: if given, filled with the maps of the first ``max_maps`` items of ``map_category`` (``None``: any),
            for figures: ``{"items": [item, ...], "maps": {method: [map (W', H') at its own resolution, ...]}}``.
        max_maps: how many items' maps to keep.
        map_category: the category whose items' maps are kept.

    Returns:
        one row per (item, method): ``image_id, category, phrase, method``, the metrics of
        :data:`~monai_xattn.metrics.grounding.GROUNDING_METRICS` and ``phrase_accuracy``.

    Raises:
        ValueError: naming the image and phrase, when a map cannot be scored (e.g. a box covering the image).
    """
    frame = (frame_size, frame_size)
    rows = []
    loaded: tuple[Any, Any] = (None, None)
    for item in items:
        if loaded[0] != item["image"]:
            loaded = (item["image"], transform({"image": item["image"]})["image"])
        image = loaded[1]
        scale = torch.as_tensor([frame_size / s for s in item["image_size"]] * 2, dtype=torch.float64)
        mask = box_union_mask(torch.as_tensor(item["boxes"], dtype=torch.float64) * scale, frame)
        others = [
            box_union_mask(torch.as_tensor(b, dtype=torch.float64) * scale, frame) for b in item.get("other_boxes", [])
        ]
        others = [m for m in others if not torch.equal(m, mask)]
        keep = maps is not None and len(maps.get("items", [])) < max_maps
        keep = keep and (map_category is None or item["category"] == map_category)
        if keep:
            maps.setdefault("items", []).append(dict(item))
        for name, make_map in methods.items():
            heat = torch.as_tensor(make_map(image, item["phrase"]), dtype=torch.float64)
            if keep:
                maps.setdefault("maps", {}).setdefault(name, []).append(heat.float().clone())
            try:
                framed = upsample_map(heat, frame)
                scores = mask_metrics(framed, mask, thresholds)
                wins = [_win(scores["signed_cnr"], contrast_to_noise_ratio(framed, o, signed=True)) for o in others]
            except ValueError as e:
                raise ValueError(f"{item['image_id']} / {item['phrase']!r} / {name}: {e}") from e
            rows.append(
                {
                    "image_id": item["image_id"],
                    "category": item["category"],
                    "phrase": item["phrase"],
                    "method": name,
                    **scores,
                    "phrase_accuracy": float(np.mean(wins)) if wins else float("nan"),
                }
            )
    return rows


def _win(own: float, other: float, tie: float = 1e-9) -> float:
    return 0.5 if abs(own - other) <= tie else float(own > other)


def _interval(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Mean and its 95 % percentile bootstrap interval over the phrases."""
    if len(values) == 1:
        return float(values[0]), float(values[0]), float(values[0])
    picks = np.random.default_rng(seed).integers(0, len(values), size=(n_boot, len(values)))
    means = values[picks].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def summarize_grounding(
    rows: Sequence[Mapping[str, Any]], groups: Mapping[str, Sequence[str]] | None = None, n_boot: int = 2000
) -> dict[str, dict[str, dict]]:
    """Mean of each metric per method and phrase group, with 95 % bootstrap intervals over the phrases.

    Args:
        rows: from :func:`evaluate_grounding` (possibly of several bundles).
        groups: group name -> categories; default: every category alone, plus ``"all"``.
        n_boot: bootstrap resamples.

    Returns:
        ``{group: {method: {"n": phrases, metric: [mean, low, high], ..., "n_paired": phrases with a
        ``phrase_accuracy``}}}``; ``phrase_accuracy`` is ``None`` where no phrase of the group has a partner.
    """
    categories = sorted({r["category"] for r in rows})
    groups = dict(groups) if groups is not None else {"all": categories, **{c: [c] for c in categories}}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    summary: dict[str, dict[str, dict]] = {}
    for group, members in groups.items():
        for method in methods:
            picked = [r for r in rows if r["method"] == method and r["category"] in members]
            if not picked:
                continue
            cell: dict[str, Any] = {"n": len(picked)}
            for k, metric in enumerate(GROUNDING_METRICS):
                cell[metric] = _interval(np.array([r[metric] for r in picked], dtype=float), n_boot, k)
            paired = np.array([r.get("phrase_accuracy", np.nan) for r in picked], dtype=float)
            paired = paired[~np.isnan(paired)]
            cell["n_paired"] = len(paired)
            cell["phrase_accuracy"] = _interval(paired, n_boot, len(GROUNDING_METRICS)) if len(paired) else None
            summary.setdefault(group, {})[method] = cell
    return summary


def format_grounding(summary: Mapping[str, Mapping[str, Mapping]], digits: int = 3) -> str:
    """The summary as one Markdown table: a row per (phrase group, method)."""
    lines = [
        "| phrases | method | n | CNR [95 % CI] | signed CNR (ours) [95 % CI] | mIoU [95 % CI] | peak in box [95 % CI] "
        "| phrase accuracy (ours) [95 % CI] (n) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def interval(value) -> str:
        return "-" if value is None else f"{value[0]:.{digits}f} [{value[1]:.{digits}f}, {value[2]:.{digits}f}]"

    for group, methods in summary.items():
        for method, cell in methods.items():
            values = [interval(cell[m]) for m in GROUNDING_METRICS]
            values.append(f"{interval(cell.get('phrase_accuracy'))} ({cell.get('n_paired', 0)})")
            lines.append(f"| {group} | {method} | {cell['n']} | " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def read_grounding_maps(json_file: str | Path) -> list[dict]:
    """The maps :func:`write_grounding` kept beside ``json_file``: ``[{"item": item, "maps": {method: (W', H')}}]``
    (empty when there is no such run or it kept none)."""
    json_file = Path(json_file)
    items = json.loads(json_file.read_text()).get("map_items", []) if json_file.is_file() else []
    maps_file = json_file.with_name(json_file.stem + "_maps.npz")
    if not items or not maps_file.is_file():
        return []
    out = [{"item": item, "maps": {}} for item in items]
    with np.load(maps_file, allow_pickle=False) as arrays:
        for key in arrays.files:
            index, method = key.split("/", 1)
            out[int(index)]["maps"][method] = torch.from_numpy(arrays[key])
    return out


def write_grounding(
    rows: Sequence[Mapping[str, Any]],
    output_dir: str | Path,
    name: str = "grounding",
    groups: Mapping[str, Sequence[str]] | None = None,
    notes: Mapping[str, Any] | None = None,
    maps: Mapping[str, Any] | None = None,
) -> dict:
    """Write ``<name>.json`` (rows, summary, notes, and the items whose maps were kept) and ``<name>.md`` (the
    table) into ``output_dir``; with ``maps`` (from :func:`evaluate_grounding`) also ``<name>_maps.npz``, one array
    per kept map, named ``"<item index>/<method>"`` (plain arrays: :func:`read_grounding_maps` reads them back
    without pickle).

    Returns:
        the summary.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize_grounding(rows, groups)
    items = list(maps.get("items", [])) if maps else []
    record = {"summary": summary, "rows": list(rows), "notes": dict(notes or {}), "map_items": items}
    (output_dir / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    (output_dir / f"{name}.md").write_text(format_grounding(summary))
    if items:
        arrays = {
            f"{k}/{method}": torch.as_tensor(per_item[k]).numpy()
            for method, per_item in maps.get("maps", {}).items()
            for k in range(len(items))
        }
        np.savez_compressed(output_dir / f"{name}_maps.npz", **arrays)
    return summary
