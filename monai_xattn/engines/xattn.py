"""Pieces that let MONAI's stock ``SupervisedTrainer`` / ``SupervisedEvaluator`` train and evaluate the
cross-attention localizer (:class:`monai_xattn.networks.localizer.XAttnLocalizer`).

Batches are lists of sample dicts (``collate_fn=monai.data.utils.no_collation``), as for the detector, and the
engines run with ``decollate=False``. Training: :class:`XAttnPrepareBatch` feeds ``localizer(images, words=...,
word_mask=..., negative_words=...)`` and :class:`XAttnTrainLoss` turns its scores into Eq. 1 + BCE. Evaluation and
inference: the detector's :class:`~monai_xattn.engines.detection.DetectionPrepareBatch` feeds images only -- no
text reaches the model -- and the localization metrics compare its boxes with the targets.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.engines.utils import PrepareBatch
from monai.transforms import Compose
from torch import Tensor, nn

from monai_xattn.data.mimic_cxr import attach_phantom_boxes  # re-exported: its home is the MIMIC-CXR adapter
from monai_xattn.losses.xattn import XAttnLoss
from monai_xattn.text.attributes import extract_attributes, reads_whole_text
from monai_xattn.text.reports import read_report

__all__ = [
    "XAttnPrepareBatch",
    "XAttnTrainLoss",
    "xattn_transforms",
    "train_attribute_word2vec",
    "attach_phantom_boxes",
    "TRAINING_RULES",
    "select_training_studies",
]

#: which studies train the head: ``"paper"`` (Bhalodia et al.: "images corresponding to pneumonia and having at
#: least one of the attributes"), ``"all"`` (every study with a report; our earlier default, kept for ablations)
TRAINING_RULES = ("paper", "all")
logger = logging.getLogger(__name__)


def _name(item: Mapping[str, Any], index: int) -> str:
    return str(item.get("image_id", item.get("image", index)))


class XAttnPrepareBatch(PrepareBatch):
    """Turn a list of sample dicts into ``(images, targets, (), kwargs)`` for the localizer's training step.

    The engine then calls ``localizer(images, words=..., word_mask=..., negative_words=...)`` and
    ``loss_function(pred, targets)`` with ``targets = {"attributes": (B, A)}``.

    Args:
        image_key: ``(C, W, H)`` image.
        words_key: ``(M, D)`` attribute word vectors (``Word2Vecd``'s ``attribute_vectors``).
        mask_key: ``(M,)`` bool valid words.
        negative_key: ``(M, D)`` nearest-absent-attribute vectors (``T_n``).
        attributes_key: ``(A,)`` multi-hot attribute targets.
    """

    def __init__(
        self,
        image_key: str = "image",
        words_key: str = "attribute_vectors",
        mask_key: str = "attribute_mask",
        negative_key: str = "negative_vectors",
        attributes_key: str = "attributes",
    ) -> None:
        self.image_key, self.words_key, self.mask_key = image_key, words_key, mask_key
        self.negative_key, self.attributes_key = negative_key, attributes_key

    def __call__(
        self,
        batchdata: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[list[Tensor], dict[str, Tensor], tuple, dict[str, Tensor]]:
        if isinstance(batchdata, Mapping):
            raise ValueError(
                "xattn batches must be lists of sample dicts: use collate_fn=monai.data.utils.no_collation."
            )
        keys = (self.image_key, self.words_key, self.mask_key, self.negative_key, self.attributes_key)
        for i, item in enumerate(batchdata):
            missing = [k for k in keys if k not in item]
            if missing:
                raise KeyError(
                    f"sample {_name(item, i)!r} has no {missing} (keys: {sorted(item)}); training needs the report "
                    "transforms (LoadReportd -> ExtractAttributesd -> Word2Vecd with negative_keys)."
                )

        def stack(key: str, dtype: torch.dtype | None = None) -> Tensor:
            t = torch.stack([torch.as_tensor(item[key]) for item in batchdata])
            return t.to(device=device, dtype=dtype, non_blocking=non_blocking)

        images = [
            torch.as_tensor(item[self.image_key]).to(device=device, non_blocking=non_blocking) for item in batchdata
        ]
        inputs = {
            "words": stack(self.words_key, torch.float32),
            "word_mask": stack(self.mask_key, torch.bool),
            "negative_words": stack(self.negative_key, torch.float32),
        }
        return images, {"attributes": stack(self.attributes_key, torch.float32)}, (), inputs


class XAttnTrainLoss(nn.Module):
    """:class:`~monai_xattn.losses.xattn.XAttnLoss` on the localizer's training output, for ``SupervisedTrainer``.

    Returns the scalar loss; the terms of the last call stay in :attr:`last` (floats) for logging.

    Args:
        margin, bce_weight, use_bce: see :class:`~monai_xattn.losses.xattn.XAttnLoss` (``use_bce=False`` is the
            paper's "Proposed w/o classification").
    """

    def __init__(self, margin: float = 0.2, bce_weight: float = 1.0, use_bce: bool = True) -> None:
        super().__init__()
        self.loss = XAttnLoss(margin=margin, bce_weight=bce_weight, use_bce=use_bce)
        self.last: dict[str, float] = {}

    def forward(self, pred: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> Tensor:
        if not isinstance(pred, Mapping) or "s_roi" not in pred:
            raise ValueError(
                "XAttnTrainLoss needs the localizer's training output: was the localizer called in training mode with words?"
            )
        targets = target["attributes"]
        # uncertain attributes (-1, ExtractAttributes(uncertain="ignore")) have no target: mask them out of BCE
        known = targets >= 0
        logits = torch.where(known, pred["attribute_logits"], torch.full_like(targets, -1e4))
        terms = self.loss(
            pred["s_roi"],
            pred["s_roi_negative"],
            pred["s_text"],
            pred["s_text_negative"],
            pred["has_words"],
            logits,
            targets.clamp(min=0),
        )
        self.last = {k: float(v.detach()) for k, v in terms.items()}
        return terms["loss"]


def select_training_studies(
    entries: Iterable[Mapping[str, Any]],
    rule: str = "paper",
    finding: str = "Pneumonia",
    positive_values: Sequence[float] = (1,),
    scope: str | None = "pneumonia",
    vocabulary: Any = None,
    sections: Sequence[str] | None = ("findings", "impression"),
    uncertain: str = "positive",
    report_file: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """The studies the head trains on, and a count of what was dropped and why.

    With ``rule="paper"`` a study is kept when its ``labels[finding]`` is one of ``positive_values`` (MIMIC-CXR's
    CheXpert labels: 1 positive, -1 uncertain, 0 negative) and its report states at least one vocabulary
    attribute within ``scope`` (the pneumonia sentences, see :func:`~monai_xattn.text.attributes.extract_attributes`),
    as Bhalodia et al. select their 11,308 training images. ``rule="all"`` keeps every study with a report.

    Args:
        entries: datalist entries with absolute ``report`` paths (as from ``load_datalist``) or ``report_text``.
        rule: one of :data:`TRAINING_RULES`.
        finding: the label that marks a pneumonia study.
        positive_values: label values that count as positive (add ``-1`` to keep uncertain pneumonia).
        scope: the sentences the attributes are read from (``"pneumonia"``; ``"report"`` or ``None``: all).
        vocabulary, sections, uncertain: of the attribute extraction (the training pipeline's own).
        report_file: where to write the counts as JSON (e.g. the bundle's output folder); ``None``: log only.

    Returns:
        the kept entries, in their order.

    Raises:
        ValueError: an unknown rule, or no study left (naming the counts, so the cause is visible).
    """
    if rule not in TRAINING_RULES:
        raise ValueError(f"rule must be one of {TRAINING_RULES}, got {rule!r}")
    kept, dropped = [], Counter()
    entries = list(entries)
    for entry in entries:
        if "report" not in entry and "report_text" not in entry:
            dropped["no report"] += 1
            continue
        if rule == "paper":
            if entry.get("labels", {}).get(finding) not in positive_values:
                dropped[f"{finding} not in {list(positive_values)}"] += 1
                continue
            text = entry["report_text"] if "report_text" in entry else read_report(entry["report"])
            found = extract_attributes(text, vocabulary, sections, uncertain, scope=scope).multi_hot
            if not (found == 1).any():
                dropped["no attribute" + ("" if reads_whole_text(scope) else f" in the {scope} sentences")] += 1
                continue
        kept.append(dict(entry))
    counts = {"rule": rule, "scope": scope, "studies": len(entries), "kept": len(kept), "dropped": dict(dropped)}
    logger.info("head training studies: %s", counts)
    if report_file is not None:
        Path(report_file).parent.mkdir(parents=True, exist_ok=True)
        Path(report_file).write_text(json.dumps(counts, indent=1) + "\n")
    if not kept:
        raise ValueError(f"no training study left after the {rule!r} rule: {counts}")
    return kept


def xattn_transforms(
    size: int | Sequence[int] = 128,
    word_vectors: Any = None,
    attributes: bool = True,
    report_key: str = "report",
    vocabulary: Any = None,
    normalize: str | tuple[float, float] = "zscore",
    uncertain: str = "positive",
    scope: str | None = "pneumonia",
) -> Compose:
    """Image (+ report) pipeline of the localizer.

    Image and boxes: :func:`~monai_xattn.transforms.box.detection_eval_transforms` (no flips: a horizontal
    flip swaps the patient's sides while the report's ``left``/``right`` attributes stay). Report:
    ``LoadReportd`` -> ``ExtractAttributesd`` (multi-hot ``attributes``) -> with ``word_vectors``,
    ``Word2Vecd`` (``attribute_vectors``, ``attribute_mask``, ``negative_vectors`` = ``T_n``).

    Args:
        size: network input ``(W, H)``.
        word_vectors: gensim ``KeyedVectors`` or a file; ``None`` for evaluation (attribute targets only).
        attributes: read the report at all (``False``: image-only inference).
        report_key: datalist key of the report path.
        vocabulary: attribute vocabulary (default: the shipped one).
        normalize: image intensity normalisation, as in the detector's pipeline (keep them equal).
        uncertain: policy of ``ExtractAttributesd`` for hedged attributes.
        scope: the report sentences the attributes are read from (``"pneumonia"``: those about pneumonia-indicative
            findings, the paper's dictionary; ``"report"`` or ``None``: the whole report).
    """
    from monai_xattn.transforms.box import detection_eval_transforms
    from monai_xattn.transforms.text import ExtractAttributesd, LoadReportd, Word2Vecd

    xforms: list[Any] = [detection_eval_transforms(size=size, normalize=normalize)]
    if attributes:
        xforms += [
            LoadReportd(report_key),
            ExtractAttributesd("report_text", names_keys=None, vocabulary=vocabulary, uncertain=uncertain, scope=scope),
        ]
        if word_vectors is not None:
            xforms.append(Word2Vecd("attributes", word_vectors, vocabulary, negative_keys="negative_vectors"))
    return Compose(xforms)


def train_attribute_word2vec(
    entries: Iterable[Mapping[str, Any]],
    vector_size: int = 300,
    epochs: int = 10,
    seed: int = 0,
    vocabulary: Any = None,
    sections: Sequence[str] | None = ("findings", "impression"),
    save_path: str | os.PathLike | None = None,
) -> Any:
    """Word2Vec on the reports of ``entries`` (absolute ``report`` paths, as from ``load_datalist``, or
    ``report_text``); entries without a report are passed over.

    The sentences are :func:`~monai_xattn.text.word2vec.word2vec_corpus`'s, as ``monai-xattn word2vec`` trains on:
    each report read once, then every vocabulary attribute as a one-word sentence.

    Args:
        entries: datalist entries (the training split).
        vector_size: dimension of the vectors.
        epochs: Word2Vec passes over the corpus; 0 keeps the random initial vectors (the ablation of the corpus).
        seed: of gensim's initialisation and training.
        vocabulary: the attribute vocabulary (default: the package's).
        sections: report sections read.
        save_path: where the vectors are saved.

    Returns:
        gensim ``KeyedVectors`` (also saved to ``save_path`` when given).

    Raises:
        ValueError: no entry has a report.
    """
    from monai_xattn.text.reports import iter_datalist_reports
    from monai_xattn.text.word2vec import save_word2vec, train_word2vec, word2vec_corpus

    with_report = [e for e in entries if "report" in e or "report_text" in e]
    if not with_report:
        raise ValueError("no entry has a 'report': the attribute Word2Vec needs the training reports.")
    corpus = word2vec_corpus(iter_datalist_reports({"training": with_report}), sections, vocabulary)
    kv = train_word2vec(corpus.sentences, vector_size=vector_size, epochs=epochs, seed=seed)
    if save_path is not None:
        save_word2vec(kv, save_path)
    return kv
