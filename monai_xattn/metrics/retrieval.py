"""Class-level retrieval metrics: Precision@K and Hit@K (GLoRIA Table 1, CheXpert 5x200).

A query (an image, or a report) ranks a gallery (the reports, or the images) by similarity; a retrieved item
is a hit when it has the query's class. Precision@K is the fraction of hits among the top K, averaged over the
queries; Hit@K is the fraction of queries with at least one hit in the top K. Ties in the similarity are broken
by ``torch.topk``'s order.

The whole gallery is needed at once, so these are plain functions over a ``(Q, G)`` similarity matrix rather
than per-batch ``Cumulative`` metrics: accumulate the embeddings, then score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["encode_labels", "precision_at_k", "hit_at_k", "retrieval_metrics"]


def encode_labels(*labels: Sequence | Tensor | np.ndarray) -> tuple[Tensor, ...]:
    """Map class labels (strings or numbers) of several sequences to shared integer codes.

    Returns:
        one ``(N_i,)`` long tensor per argument, codes in ``0..C-1`` (sorted order of the label values).
    """
    arrays = [np.asarray(x.cpu() if isinstance(x, Tensor) else x) for x in labels]
    values = np.unique(np.concatenate([a.ravel() for a in arrays]))
    return tuple(torch.as_tensor(np.searchsorted(values, a), dtype=torch.long) for a in arrays)


def _hits(similarity: Tensor, query_labels: Sequence | Tensor, gallery_labels: Sequence | Tensor, k_max: int) -> Tensor:
    if similarity.ndim != 2:
        raise ValueError(f"similarity must be (Q, G), got shape {tuple(similarity.shape)}")
    q, g = similarity.shape
    query, gallery = encode_labels(query_labels, gallery_labels)
    if query.shape != (q,) or gallery.shape != (g,):
        raise ValueError(
            f"similarity is {q} queries x {g} gallery items but got {tuple(query.shape)} query and "
            f"{tuple(gallery.shape)} gallery labels"
        )
    if not 1 <= k_max <= g:
        raise ValueError(f"K must be in 1..{g} (the gallery size), got {k_max}")
    top = similarity.topk(k_max, dim=1).indices.cpu()  # (Q, K)
    return gallery[top] == query[:, None]


def _ks(k: int | Sequence[int]) -> list[int]:
    return [int(k)] if isinstance(k, (int, np.integer)) else [int(x) for x in k]


def precision_at_k(
    similarity: Tensor,
    query_labels: Sequence | Tensor,
    gallery_labels: Sequence | Tensor,
    k: int | Sequence[int] = (5, 10, 100),
) -> Tensor:
    """Precision@K of class-level retrieval.

    Args:
        similarity: ``(Q, G)`` scores, higher = more similar (image->text: images x reports; text->image: the
            transpose).
        query_labels: ``(Q,)`` class of each query (strings or integers).
        gallery_labels: ``(G,)`` class of each gallery item.
        k: one K or several.

    Returns:
        ``(len(k),)`` float tensor: the mean over queries of the fraction of the top K that share the query's
        class.
    """
    ks = _ks(k)
    hits = _hits(similarity, query_labels, gallery_labels, max(ks)).float().cumsum(dim=1)
    return torch.stack([(hits[:, kk - 1] / kk).mean() for kk in ks])


def hit_at_k(
    similarity: Tensor,
    query_labels: Sequence | Tensor,
    gallery_labels: Sequence | Tensor,
    k: int | Sequence[int] = (1, 5, 10),
) -> Tensor:
    """Hit@K: the fraction of queries with at least one same-class item among the top K.

    Args: as :func:`precision_at_k`.

    Returns:
        ``(len(k),)`` float tensor.
    """
    ks = _ks(k)
    hits = _hits(similarity, query_labels, gallery_labels, max(ks)).cummax(dim=1).values.float()
    return torch.stack([hits[:, kk - 1].mean() for kk in ks])


def retrieval_metrics(
    similarity: Tensor,
    image_labels: Sequence | Tensor,
    text_labels: Sequence | Tensor,
    k: Sequence[int] = (5, 10, 100),
) -> dict[str, dict[str, float]]:
    """Precision@K both ways for an image x report similarity matrix.

    Args:
        similarity: ``(N_img, N_txt)``.
        image_labels: ``(N_img,)`` classes. text_labels: ``(N_txt,)`` classes.
        k: the K values (GLoRIA: 5, 10, 100); K above a gallery's size is an error.

    Returns:
        ``{"image_to_text": {"P@5": ..., ...}, "text_to_image": {...}}``.
    """
    ks = _ks(k)
    i2t = precision_at_k(similarity, image_labels, text_labels, ks)
    t2i = precision_at_k(similarity.t(), text_labels, image_labels, ks)
    return {
        "image_to_text": {f"P@{kk}": float(v) for kk, v in zip(ks, i2t, strict=True)},
        "text_to_image": {f"P@{kk}": float(v) for kk, v in zip(ks, t2i, strict=True)},
    }
