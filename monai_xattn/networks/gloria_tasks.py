"""GLoRIA downstream scoring: image-report similarities over a gallery, and zero-shot classification.

Similarity of image ``i`` and text ``j`` (official ``get_similarities``):

- global: ``cos(v_i, t_j)`` of the image and report codes;
- local: ``max_t temp2 * cos(w_jt, c_ijt)`` over the words of ``j``, where ``c_ijt`` is the word's attention-
  weighted region context (temp1 = 4, temp2 = 5, double softmax as in training), i.e.
  :func:`monai_xattn.networks.gloria_attention.local_similarity` with ``agg="max"``;
- both: the mean of the two (``fusion="mean"``, official), or the mean of the two after z-normalising each
  text's column over the images (``fusion="zscore"``).

Why ``zscore`` for retrieval: the local score, a maximum over a report's words, carries a level of its own per
report (how well its best word matches *any* image; scaled by temp2 = 5 against the global cosine's [-1, 1]). In
the raw mean that level, not the image, decides which reports an image retrieves: on the phantom, image->text
Precision@5 of the raw fused score fell to the level of shuffled images (and below chance), while the same local
scores z-normalised per report retrieved by content (docs/bundles/gloria_pretrain.md). z-normalising each text over
the images is the normalisation the paper's zero-shot applies to its class columns; zero-shot keeps the official
raw mean by default, as its per-class z-normalisation follows the max over prompts.

Zero-shot (official ``zero_shot_classification``): the similarity of each image to each prompt, the maximum over
a class's prompts, each class column z-normalised over the image set (population standard deviation), argmax.

Word lengths: the official code counts a prompt's length in **characters** (``len`` of the string, a loop over
its characters), so its local score slices ``[SEP]`` and up to ~90 zero padding slots into the word set: they
enter the word softmax of the attention and the max (a zero word scores 0, so the local score never drops below
0). Here the local score uses the real words only (the text encoder's ``word_mask``). The official behaviour is
available for comparison through :func:`official_prompt_words` with a text encoder built with
``official_word_slots=True``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from monai_xattn.networks.gloria_attention import local_similarity
from monai_xattn.text.sections import gloria_clean_sentences

__all__ = [
    "SIMILARITY_MODES",
    "FUSIONS",
    "global_similarity",
    "gloria_similarity",
    "official_prompt_words",
    "class_scores",
    "zscore_columns",
    "zero_shot_classify",
    "clean_report",
    "encode_texts",
    "encode_images",
]

SIMILARITY_MODES = ("global", "local", "both")
FUSIONS = ("mean", "zscore")


def global_similarity(image_global: Tensor, text_global: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine similarity of every image code with every report code.

    Args:
        image_global: ``(N, D)``. text_global: ``(M, D)``.
        eps: lower bound of each norm.

    Returns:
        ``(N, M)``.
    """
    if image_global.ndim != 2 or text_global.ndim != 2 or image_global.shape[1] != text_global.shape[1]:
        raise ValueError(
            f"expected (N, D) and (M, D) codes, got {tuple(image_global.shape)} and {tuple(text_global.shape)}"
        )
    return F.normalize(image_global, dim=1, eps=eps) @ F.normalize(text_global, dim=1, eps=eps).t()


def gloria_similarity(
    image_local: Tensor,
    image_global: Tensor,
    words: Tensor,
    word_mask: Tensor,
    text_global: Tensor,
    mode: str = "both",
    temp1: float = 4.0,
    temp2: float = 5.0,
    attention: str = "double",
    chunk_size: int | None = 16,
    fusion: str = "mean",
) -> Tensor:
    """GLoRIA image-text similarity of every image with every text (no gradient needed, none is kept off).

    Args:
        image_local: ``(N, D, W', H')`` region features. image_global: ``(N, D)``.
        words: ``(M, D, T)`` word vectors. word_mask: ``(M, T)`` bool, real words. text_global: ``(M, D)``.
        mode: ``"global"``, ``"local"`` or ``"both"`` (their mean, official).
        temp1: attention sharpness. temp2: word score scale (official zero-shot: 4 and 5).
        attention: ``"double"`` (official) or ``"single"`` softmax, as in the loss.
        chunk_size: images scored at a time by the local score (bounds memory: the chunk's dot products are
            ``(chunk, W'H', M*T)``).
        fusion: how ``mode="both"`` combines the two: ``"mean"`` (official) or ``"zscore"`` (each score's text
            columns z-normalised over the ``N >= 2`` images first; see the module docstring).

    Returns:
        ``(N, M)`` similarities.
    """
    if mode not in SIMILARITY_MODES:
        raise ValueError(f"mode must be one of {SIMILARITY_MODES}, got {mode!r}")
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    sim = None
    if mode in ("global", "both"):
        sim = global_similarity(image_global, text_global)
    if mode in ("local", "both"):
        local, _ = local_similarity(
            image_local,
            words,
            word_mask,
            temp1=temp1,
            temp2=temp2,
            agg="max",
            attention=attention,
            chunk_size=chunk_size,
        )
        if sim is not None and fusion == "zscore":
            sim, local = zscore_columns(sim), zscore_columns(local)
        sim = local if sim is None else (sim + local) / 2
    return sim


def official_prompt_words(
    words: Tensor, word_mask: Tensor, char_lengths: Sequence[int] | Tensor, max_length: int = 97
) -> tuple[Tensor, Tensor]:
    """Reproduce the word slots the official zero-shot code scores (its character-length bug).

    The official code slices slots ``1 .. len(prompt)`` (characters) of a ``max_length`` layout holding
    ``[CLS]``, the words, ``[SEP]`` and zero vectors. Feed the outputs to :func:`gloria_similarity`.

    Args:
        words: ``(P, D, T)`` from a text encoder with ``official_word_slots=True`` (slot 0 ``[CLS]``, words,
            ``[SEP]``).
        word_mask: its ``(P, T)`` mask as :func:`encode_texts` returns it (slots 1 .. words).
        char_lengths: ``(P,)`` the prompts' lengths in characters as the official code built them
            (``f"{severity} {subtype} {location}"``, empty slots leaving spaces).
        max_length: the official tokenizer length (97).

    Returns:
        ``(words, mask)``: ``(P, D, max_length)`` zero-padded words and the ``(P, max_length)`` mask of slots
        ``1 .. min(chars, max_length - 1)`` (never fewer than the real words).
    """
    p, d, t = words.shape
    if t > max_length:
        raise ValueError(f"words hold {t} slots, more than max_length={max_length}")
    padded = words.new_zeros(p, d, max_length)
    padded[:, :, :t] = words
    lengths = torch.as_tensor(char_lengths, device=words.device).long().clamp(max=max_length - 1)
    real_end = torch.where(word_mask, torch.arange(t, device=words.device), 0).amax(dim=1)
    end = torch.maximum(lengths, real_end)
    positions = torch.arange(max_length, device=words.device)
    mask = (positions >= 1) & (positions <= end[:, None])
    return padded, mask


def class_scores(similarity: Tensor, prompt_classes: Sequence[int] | Tensor, num_classes: int) -> Tensor:
    """Score of each class for each image: the maximum over the class's prompts.

    Args:
        similarity: ``(N, P)`` image x prompt similarities.
        prompt_classes: ``(P,)`` class index of each prompt.
        num_classes: ``C``; every class needs at least one prompt.

    Returns:
        ``(N, C)``.
    """
    prompt_classes = torch.as_tensor(prompt_classes, dtype=torch.long, device=similarity.device)
    if similarity.ndim != 2 or prompt_classes.shape != (similarity.shape[1],):
        raise ValueError(
            f"similarity (N, P) and prompt_classes (P,) disagree: {tuple(similarity.shape)} vs "
            f"{tuple(prompt_classes.shape)}"
        )
    counts = torch.bincount(prompt_classes, minlength=num_classes)
    if counts.numel() > num_classes or (counts == 0).any():
        raise ValueError(
            f"every class 0..{num_classes - 1} needs prompts and no other index may appear; prompts "
            f"per class: {counts.tolist()}"
        )
    n = similarity.shape[0]
    out = similarity.new_full((n, num_classes), float("-inf"))
    return out.scatter_reduce(1, prompt_classes.expand(n, -1), similarity, reduce="amax", include_self=True)


def zscore_columns(scores: Tensor, eps: float = 1e-12) -> Tensor:
    """z-normalise each column over the rows (images): ``(s - mean) / std``, population std as numpy's.

    Args:
        scores: ``(N, C)``; needs ``N >= 2`` (one image has no spread to normalise by).
        eps: lower bound of the std (a constant column becomes 0).

    Returns:
        ``(N, C)``.
    """
    if scores.ndim != 2 or scores.shape[0] < 2:
        raise ValueError(f"z-normalisation across images needs (N >= 2, C) scores, got {tuple(scores.shape)}")
    mean = scores.mean(dim=0, keepdim=True)
    std = scores.std(dim=0, unbiased=False, keepdim=True)
    return (scores - mean) / std.clamp_min(eps)


def zero_shot_classify(
    similarity: Tensor, prompt_classes: Sequence[int] | Tensor, num_classes: int, normalize: bool = True
) -> tuple[Tensor, Tensor]:
    """GLoRIA zero-shot prediction from image x prompt similarities.

    Args:
        similarity: ``(N, P)`` (:func:`gloria_similarity` of the images with all classes' prompts).
        prompt_classes: ``(P,)`` class of each prompt.
        num_classes: ``C``.
        normalize: z-normalise each class over the images before the argmax (official; the official code skips
            it for a single image).

    Returns:
        ``(pred, scores)``: ``(N,)`` class indices and the ``(N, C)`` scores they are the argmax of.
    """
    scores = class_scores(similarity, prompt_classes, num_classes)
    if normalize and scores.shape[0] > 1:
        scores = zscore_columns(scores)
    return scores.argmax(dim=1), scores


def clean_report(text: str) -> str:
    """GLoRIA's cleaning of a report or prompt before tokenization (sentences joined by spaces)."""
    return " ".join(gloria_clean_sentences(text))


def _module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def encode_texts(
    text_encoder: nn.Module, texts: Sequence[str], batch_size: int = 64, clean: bool = True
) -> dict[str, Tensor]:
    """Encode reports or prompts with a :class:`~monai_xattn.networks.GloriaTextEncoder`, batch by batch.

    Args:
        text_encoder: the encoder (its ``tokenize`` and ``forward``); put it in eval mode first.
        texts: the texts.
        batch_size: texts per forward pass.
        clean: apply :func:`clean_report` first (as the official ``process_text``).

    Returns:
        ``{"words": (M, D, T), "word_mask": (M, T), "text_global": (M, D)}`` on the encoder's device, words
        zero-padded to the longest text.

    Raises:
        ValueError: a text has no word left after cleaning (its index and text are named).
    """
    texts_in = list(texts)
    texts = [clean_report(t) if clean else t for t in texts_in]
    empty = [(i, t) for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(
            f"{len(empty)} texts keep no sentence of two or more words after GLoRIA's cleaning, e.g. "
            f"#{empty[0][0]} {texts_in[empty[0][0]]!r}; drop them first"
        )
    device = _module_device(text_encoder)
    parts = []
    for start in range(0, len(texts), batch_size):
        tokens = text_encoder.tokenize(texts[start : start + batch_size])
        parts.append(text_encoder(**{k: v.to(device) for k, v in tokens.items()}))
    t = max(p[0].shape[2] for p in parts)
    words = torch.cat([F.pad(p[0], (0, t - p[0].shape[2])) for p in parts])
    word_mask = torch.cat([F.pad(p[1], (0, t - p[1].shape[1])) for p in parts])
    if getattr(text_encoder, "official_word_slots", False):
        # the official similarity slices 1:n_words + 1 (the words); its training loss kept [CLS] in slot 0
        word_mask[:, 0] = False
    return {"words": words, "word_mask": word_mask, "text_global": torch.cat([p[2] for p in parts])}


@torch.no_grad()
def encode_images(
    image_encoder: nn.Module, batches: Iterable[Mapping[str, Any] | Tensor], image_key: str = "image"
) -> dict[str, Tensor]:
    """Encode images with a :class:`~monai_xattn.networks.GloriaImageEncoder`, batch by batch.

    Args:
        image_encoder: the encoder; put it in eval mode first.
        batches: a ``DataLoader`` (or any iterable) of collated dicts or ``(B, C, W, H)`` tensors.
        image_key: the image key of dict batches.

    Returns:
        ``{"image_local": (N, D, W', H'), "image_global": (N, D)}`` on the encoder's device.
    """
    device = _module_device(image_encoder)
    local, glob = [], []
    for batch in batches:
        image = batch[image_key] if isinstance(batch, Mapping) else batch
        lo, gl = image_encoder(torch.as_tensor(image).as_subclass(torch.Tensor).to(device))
        local.append(lo)
        glob.append(gl)
    if not glob:
        raise ValueError("encode_images got no batch")
    return {"image_local": torch.cat(local), "image_global": torch.cat(glob)}
