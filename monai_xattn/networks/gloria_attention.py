"""GLoRIA word-region attention and local matching score (Huang et al., ICCV 2021), batched.

Used by the local loss (:mod:`monai_xattn.losses.gloria`), retrieval / zero-shot similarity
(:mod:`monai_xattn.networks.gloria_tasks`) and the attention figures, so it sits in ``networks``, below all three.
Temperatures follow the official code's names and act as multipliers (the paper numbers them differently and
writes them as divisors): ``temp1`` (4.0) sharpens the word-to-region attention, ``temp2`` (5.0) scales word
relevance before the aggregation over words.

For regions ``v_im`` (m over the H x W grid) of image i and words ``w_jt`` of caption j:

- ``s_ijtm = <v_im, w_jt>`` (raw dot products),
- double softmax as in the official code (AttnGAN/DAMSM): ``p = softmax_t(s)``, ``a = softmax_m(temp1 * p)``;
  ``attention="single"`` gives the paper's ``a = softmax_m(temp1 * s)``,
- context per word ``c_ijt = sum_m a_ijtm v_im``, relevance ``r_ijt = cos(w_jt, c_ijt)``,
- ``R_ij = log sum_t exp(temp2 * r_ijt)`` (``agg="sum"``; ``"mean"`` divides the sum by the word count, ``"max"``
  takes ``max_t temp2 * r_ijt``).

All (image, caption) pairs are scored at once. The dot products are computed once as one matrix product and
reused: ``<w, c> = sum_m a_m <w, v_m>`` and, when ``D >= M``, ``|c|^2 = a^T G a`` with ``G = V V^T`` the region
Gram matrix, so the ``(B, B, T, D)`` context tensor is never built (when ``D < M`` the contexts are the smaller
object and are built instead).

Padding: the official code loops over captions and slices each to its length, so a batched version must mask
padded words. Here they get ``-inf`` before the word softmax and are left out of the aggregation, which
reproduces the official per-caption numbers (see ``tests/losses/test_gloria_loss.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

__all__ = ["LOCAL_AGGREGATIONS", "LOCAL_ATTENTIONS", "local_similarity"]

#: how word relevances become one score: log-sum-exp (official), log-mean-exp, max
LOCAL_AGGREGATIONS = ("sum", "mean", "max")
#: word-to-region attention: the official code's double softmax or the paper's single one
LOCAL_ATTENTIONS = ("double", "single")


def _check_local_inputs(
    regions: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor, agg: str, attention: str
) -> None:
    if regions.ndim != 4 or words.ndim != 3 or regions.shape[1] != words.shape[1]:
        raise ValueError(
            f"expected regions (B, D, H, W) and words (B, D, T) with the same D, got "
            f"{tuple(regions.shape)} and {tuple(words.shape)}"
        )
    if word_mask.dtype != torch.bool or word_mask.shape != (words.shape[0], words.shape[2]):
        raise ValueError(
            f"word_mask must be a bool tensor of shape {(words.shape[0], words.shape[2])}, got "
            f"{word_mask.dtype} {tuple(word_mask.shape)}"
        )
    empty = (~word_mask.any(dim=1)).nonzero().flatten().tolist()
    if empty:
        raise ValueError(
            f"captions {empty} have no word (word_mask is all False); drop empty reports before the "
            "loss, their score is undefined"
        )
    if agg not in LOCAL_AGGREGATIONS:
        raise ValueError(f"agg must be one of {LOCAL_AGGREGATIONS}, got {agg!r}")
    if attention not in LOCAL_ATTENTIONS:
        raise ValueError(f"attention must be one of {LOCAL_ATTENTIONS}, got {attention!r}")


class _ContextNormSq(torch.autograd.Function):
    """Squared norms of the attention-weighted contexts, ``|c_n|^2 = a_n^T G a_n`` with ``G = V V^T``.

    Forward: ``attn`` ``(Bi, M, N)``, ``regions`` ``(Bi, M, D)`` -> ``(Bi, N)``. The backward pass reuses ``G a``
    from the forward pass (``d/da = 2 G a``) and exploits the symmetry of ``G``
    (``d/dV = 2 H V`` with ``H = sum_n g_n a_n a_n^T``), two matrix products fewer than autograd through ``bmm``.
    """

    @staticmethod
    def forward(ctx, attn: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        gram_attn = torch.bmm(torch.bmm(regions, regions.transpose(1, 2)), attn)  # (Bi, M, N)
        ctx.save_for_backward(attn, regions, gram_attn)
        return (attn * gram_attn).sum(dim=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        attn, regions, gram_attn = ctx.saved_tensors
        grad = grad.unsqueeze(1)  # (Bi, 1, N)
        grad_attn = 2 * gram_attn * grad if ctx.needs_input_grad[0] else None
        grad_regions = None
        if ctx.needs_input_grad[1]:
            grad_gram = torch.bmm(attn * grad, attn.transpose(1, 2))  # (Bi, M, M), symmetric
            grad_regions = 2 * torch.bmm(grad_gram, regions)
        return grad_attn, grad_regions


def _score_chunk(
    regions: torch.Tensor,
    words: torch.Tensor,
    word_mask: torch.Tensor,
    paired_offset: int | None,
    temp1: float,
    temp2: float,
    agg: str,
    attention: str,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Local scores of some images against all captions.

    Args:
        regions: ``(Bi, M, D)``. words: ``(Bt, T, D)``. word_mask: ``(Bt, T)``.
        paired_offset: index of the caption paired with the chunk's first image, or None when images and
            captions are not paired.

    Returns:
        scores ``(Bi, Bt)`` and the attention of each image on its own caption ``(Bi, T, M)`` (None when not
        paired).
    """
    bi, m, d = regions.shape
    bt, t, _ = words.shape
    # regions stay on dim 1 throughout: (Bi, M, Bt*T) is what one matrix product gives, the word softmax runs on
    # the contiguous last dim and the region softmax / reductions run on dim 1 without transposed copies
    dots = (regions.reshape(bi * m, d) @ words.reshape(bt * t, d).t()).view(bi, m, bt * t)
    if attention == "double":
        word_logits = dots.view(bi, m, bt, t).masked_fill(~word_mask, float("-inf"))
        attn = (temp1 * word_logits.softmax(dim=-1).view(bi, m, bt * t)).softmax(dim=1)
    else:
        attn = (temp1 * dots).softmax(dim=1)
    word_dot_context = (attn * dots).sum(dim=1)  # <w, c>, (Bi, Bt*T)
    if d < m:  # the contexts are smaller than the Gram matrix: build them
        context_sq = torch.bmm(attn.transpose(1, 2), regions).square().sum(dim=-1)
    else:
        context_sq = _ContextNormSq.apply(attn, regions)  # |c|^2, (Bi, Bt*T)
    word_sq = words.square().sum(dim=-1).view(1, bt * t)
    cosine = word_dot_context / (word_sq * context_sq).clamp_min(eps * eps).sqrt()
    relevance = (temp2 * cosine).view(bi, bt, t).masked_fill(~word_mask, float("-inf"))
    if agg == "max":
        scores = relevance.amax(dim=-1)
    else:
        scores = relevance.logsumexp(dim=-1)
        if agg == "mean":
            scores = scores - word_mask.sum(dim=1).to(scores.dtype).log()
    if paired_offset is None:
        return scores, None
    pairs = torch.arange(paired_offset, paired_offset + bi, device=regions.device)
    own = attn.view(bi, m, bt, t)[torch.arange(bi, device=regions.device), :, pairs]  # (Bi, M, T)
    own = own.masked_fill(~word_mask[pairs].unsqueeze(1), 0.0)
    return scores, own.transpose(1, 2)


def local_similarity(
    regions: torch.Tensor,
    words: torch.Tensor,
    word_mask: torch.Tensor,
    temp1: float = 4.0,
    temp2: float = 5.0,
    agg: str = "sum",
    attention: str = "double",
    chunk_size: int | None = None,
    eps: float = 1e-8,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Local (word-region) matching score of every image against every caption.

    Args:
        regions: local image features, ``(B_img, D, H, W)``.
        words: word embeddings, ``(B_txt, D, T)``, padded to the longest caption.
        word_mask: ``(B_txt, T)`` bool, True for real words; every caption needs at least one.
        temp1: attention sharpness. temp2: word relevance scale.
        agg: ``"sum"`` (log-sum-exp, official), ``"mean"`` (log-mean-exp) or ``"max"``.
        attention: ``"double"`` (official code) or ``"single"`` (paper) softmax.
        chunk_size: score this many images at a time; with gradients enabled each chunk is recomputed in the
            backward pass (activation checkpointing), so peak memory is bounded by one chunk in training too.
        eps: lower bound of the norm product in the cosine.

    Returns:
        ``scores`` ``(B_img, B_txt)`` (the ``R`` matrix, not yet multiplied by temp3) and, when
        ``B_img == B_txt``, the attention of image ``i`` on the words of caption ``i``, ``(B, T, H, W)`` (zero
        at padded words); ``None`` otherwise.
    """
    _check_local_inputs(regions, words, word_mask, agg, attention)
    bi, d, h, w = regions.shape
    flat_regions = regions.flatten(2).transpose(1, 2)  # (Bi, M, D)
    flat_words = words.transpose(1, 2)  # (Bt, T, D)
    step = bi if chunk_size is None else max(1, int(chunk_size))

    paired = bi == words.shape[0]

    def run(chunk: torch.Tensor, offset: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return _score_chunk(chunk, flat_words, word_mask, offset if paired else None, temp1, temp2, agg, attention, eps)

    compute: Callable = run
    if step < bi and torch.is_grad_enabled():

        def compute(chunk: torch.Tensor, offset: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            return checkpoint(run, chunk, offset, use_reentrant=False)

    parts = [compute(flat_regions[i : i + step], i) for i in range(0, bi, step)]
    scores = torch.cat([p[0] for p in parts], dim=0)
    if not paired:
        return scores, None
    attn = torch.cat([p[1] for p in parts], dim=0).reshape(bi, -1, h, w)
    return scores, attn
