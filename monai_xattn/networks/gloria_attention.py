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

All (image, caption) pairs are scored by a few large matrix products, in three steps that each remove work the
official per-caption loop does not have but a naive batched version does:

- **Dot products reused.** ``<w, c> = sum_m a_m s_m`` and ``|c|^2 = a^T G a`` with ``G = V V^T`` the region Gram
  matrix, so the ``(B, B, T, D)`` context tensor is never built (where the contexts cost fewer multiply-adds than
  the Gram matrix, e.g. a small ``D``, they are built instead). The attention block's backward pass is written by
  hand (:class:`_WordRegionMatch`): it reuses the forward buffers and works in place, where autograd would
  allocate a dozen ``(B, M, B*T)`` temporaries.
- **Captions grouped by length.** Captions are sorted by their word span and cut into groups, each padded only to
  its own longest caption (the cut minimises padded slots plus a fixed cost per group), so the padding a batch of
  8-24-word reports carries (a third of the slots) mostly goes.
- **Images in blocks.** Images are scored a few at a time so that every ``(images, M, words)`` tensor stays a few
  MiB: cache-resident, and reused by the allocator instead of being mapped and page-faulted afresh (on Linux a
  tensor above 32 MiB is) -- without blocks a third of a CPU step went to page faults.

Padding: the official code loops over captions and slices each to its length, so a batched version must mask
padded words. Here they get ``-inf`` before the word softmax and are left out of the aggregation, which
reproduces the official per-caption numbers (see ``tests/losses/test_gloria_loss.py``).
"""

from __future__ import annotations

import math

import torch
from torch.autograd.function import once_differentiable
from torch.utils.checkpoint import checkpoint

__all__ = ["LOCAL_AGGREGATIONS", "LOCAL_ATTENTIONS", "local_similarity"]

#: how word relevances become one score: log-sum-exp (official), log-mean-exp, max
LOCAL_AGGREGATIONS = ("sum", "mean", "max")
#: word-to-region attention: the official code's double softmax or the paper's single one
LOCAL_ATTENTIONS = ("double", "single")

# Elements of one (images, M, words) block tensor: 2**20 float32 values (4 MiB) stay in cache and under the
# allocator's mapping threshold. Measured on 2 CPU cores at B=48, D=768, 19x19, 8-24 words (benchmarks/
# gloria_local_loss.py).
_BLOCK_ELEMENTS = 2**20
# Fixed cost of one caption group, in multiply-adds: a group must save more padded-slot work than this (about ten
# word slots of a 48-image, 19x19, D=768 batch) to be worth its extra kernel launches.
_GROUP_MACS = 2**27


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


class _Gram(torch.autograd.Function):
    """Region Gram matrices ``G = V V^T``, ``(Bi, M, D) -> (Bi, M, M)``; the backward pass is one matrix product,
    ``(dG + dG^T) V``, where autograd through ``bmm`` takes two."""

    @staticmethod
    def forward(ctx, regions: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(regions)
        return torch.bmm(regions, regions.transpose(1, 2))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (regions,) = ctx.saved_tensors
        return torch.bmm(grad + grad.transpose(1, 2), regions)


class _WordRegionMatch(torch.autograd.Function):
    """Attention of a block of images over a group of captions' words, and the two dot products the cosine needs.

    Forward:

    - ``dots`` ``(Bi, M, G, L)``: ``<v_im, w_jt>`` of the block's images and the group's captions (padded to L);
    - ``second``: the Gram matrices ``(Bi, M, M)`` when ``use_gram``, else the regions ``(Bi, M, D)``;
    - ``word_bias`` ``(G, L)``: 0 at words, ``-inf`` at padding (double softmax only);

    returns ``<w, c>`` and ``|c|^2``, both ``(Bi, G, L)``, and the attention ``(Bi, M, G, L)`` (no gradient).
    Padded words get finite values, to be masked by the caller. The backward pass reuses the forward buffers and
    writes its gradient in place into one new buffer.
    """

    @staticmethod
    def forward(ctx, dots, second, word_bias, temp1: float, double: bool, use_gram: bool):
        bi, m, g, length = dots.shape
        # the double softmax keeps temp1 * p (scaled in place): its backward pass needs nothing else
        scaled_probs = (dots + word_bias).softmax(dim=-1).mul_(temp1) if double else None
        attn = (scaled_probs if double else temp1 * dots).softmax(dim=1)
        word_dot_context = (attn * dots).sum(dim=1)
        flat_attn = attn.view(bi, m, g * length)
        if use_gram:
            aux = torch.bmm(second, flat_attn).view(bi, m, g, length)  # G a
            context_sq = (attn * aux).sum(dim=1)
        else:
            aux = torch.bmm(flat_attn.transpose(1, 2), second)  # contexts, (Bi, G*L, D)
            context_sq = aux.square().sum(dim=-1).view(bi, g, length)
        ctx.save_for_backward(dots, second, scaled_probs, attn, aux)
        ctx.temp1, ctx.double, ctx.use_gram = temp1, double, use_gram
        ctx.mark_non_differentiable(attn)
        return word_dot_context, context_sq, attn

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_dot, grad_sq, _grad_attn):
        dots, second, scaled_probs, attn, aux = ctx.saved_tensors
        bi, m, g, length = dots.shape
        grad_dot, grad_sq = grad_dot.unsqueeze(1), grad_sq.unsqueeze(1)  # (Bi, 1, G, L)
        flat_attn = attn.view(bi, m, g * length)
        # gradient reaching the attention, from <w, c> = sum_m a s and from |c|^2
        grad = dots * grad_dot
        if ctx.use_gram:
            grad.addcmul_(aux, grad_sq, value=2.0)
            weighted = (attn * grad_sq).view(bi, m, g * length)
            grad_second = torch.bmm(weighted, flat_attn.transpose(1, 2))  # symmetric: _Gram adds its transpose
        else:
            scaled_context = aux * grad_sq.view(bi, g * length, 1)
            grad.add_(torch.bmm(second, scaled_context.transpose(1, 2)).view(bi, m, g, length), alpha=2.0)
            grad_second = 2.0 * torch.bmm(flat_attn, scaled_context)
        # through the region softmax, then the word softmax
        grad.mul_(attn)
        grad.addcmul_(attn, grad.sum(dim=1, keepdim=True), value=-1.0)
        if ctx.double:  # with P = temp1 * p: dL/ds = P * (g - sum_t p g) = P * g - P * sum_t(P * g) / temp1
            grad.mul_(scaled_probs)
            grad.addcmul_(scaled_probs, grad.sum(dim=-1, keepdim=True), value=-1.0 / ctx.temp1)
        else:
            grad.mul_(ctx.temp1)
        grad.addcmul_(attn, grad_dot)  # the dot products enter <w, c> directly too
        return grad, grad_second, None, None, None, None


def _word_spans(word_mask: torch.Tensor) -> list[int]:
    """Per caption, one past its last real word (the slots a caption needs; padding inside stays masked)."""
    positions = torch.arange(1, word_mask.shape[1] + 1, device=word_mask.device)
    return (word_mask * positions).amax(dim=1).tolist()


def _caption_groups(spans: list[int], slot_cost: int) -> list[list[int]]:
    """Captions sorted by span and cut into groups padded to their longest member.

    The cut minimises ``sum(group size * group span) + slot_cost * groups`` (exact, over the distinct spans).

    Returns:
        caption indices of each group, shortest group first, ascending span inside.
    """
    order = sorted(range(len(spans)), key=spans.__getitem__)
    distinct = sorted(set(spans))
    counts = [0]
    for span in distinct:
        counts.append(counts[-1] + spans.count(span))
    best, cut = [0.0] + [math.inf] * len(distinct), [0] * (len(distinct) + 1)
    for end in range(1, len(distinct) + 1):
        for start in range(end):
            cost = best[start] + (counts[end] - counts[start]) * distinct[end - 1] + slot_cost
            if cost < best[end]:
                best[end], cut[end] = cost, start
    bounds, end = [], len(distinct)
    while end > 0:
        bounds.append((counts[cut[end]], counts[end]))
        end = cut[end]
    return [order[a:b] for a, b in reversed(bounds)]


def _score_block(
    regions: torch.Tensor,
    groups: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    own_slots: list[tuple[int, int]] | None,
    temp1: float,
    temp2: float,
    agg: str,
    attention: str,
    use_gram: bool,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Scores of a block of images ``(Bi, D, M)`` against every caption group.

    Args:
        groups: per group ``(words (G, L, D), mask (G, L), bias (G, L), word_sq (G, L))``.
        own_slots: when images and captions are paired, ``(group, slot)`` of each of the block's images' own
            caption; None otherwise.

    Returns:
        scores ``(Bi, sum G)`` in group order, and (paired) each image's attention on its own caption's words
        ``(Bi, L_max, M)``, zero beyond the caption's span.
    """
    bi, d, m = regions.shape
    # the input's own layout is split into blocks, so that its gradient is assembled without a transposed copy
    regions = regions.transpose(1, 2)  # (Bi, M, D)
    second = _Gram.apply(regions) if use_gram else regions
    flat = regions.reshape(bi * m, d)
    scores = []
    own = None if own_slots is None else regions.new_zeros(bi, max(w.shape[1] for w, *_ in groups), m)
    for k, (words, mask, bias, word_sq) in enumerate(groups):
        g, length, _ = words.shape
        dots = (flat @ words.reshape(g * length, d).t()).view(bi, m, g, length)
        word_dot_context, context_sq, attn = _WordRegionMatch.apply(
            dots, second, bias, temp1, attention == "double", use_gram
        )
        cosine = word_dot_context / (word_sq * context_sq).clamp_min(eps * eps).sqrt()
        relevance = (temp2 * cosine).masked_fill(~mask, float("-inf"))
        if agg == "max":
            group_scores = relevance.amax(dim=-1)
        else:
            group_scores = relevance.logsumexp(dim=-1)
            if agg == "mean":
                group_scores = group_scores - mask.sum(dim=1).to(group_scores.dtype).log()
        scores.append(group_scores)
        if own_slots is not None:
            images = [i for i, (group, _) in enumerate(own_slots) if group == k]
            if images:
                slots = torch.as_tensor([own_slots[i][1] for i in images], device=attn.device)
                images_t = torch.as_tensor(images, device=attn.device)
                own[images_t, :length] = (attn[images_t, :, slots] * mask[slots].unsqueeze(1)).transpose(1, 2)
    return torch.cat(scores, dim=1), own


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
    # float32 or wider, also under autocast: the softmaxes and |c|^2 = a^T G a lose too much in half precision,
    # and the hand-written backward pass mixes the forward's buffers
    dtype = torch.promote_types(torch.promote_types(regions.dtype, words.dtype), torch.float32)
    with torch.autocast(regions.device.type, enabled=False):
        return _local_similarity(
            regions.to(dtype), words.to(dtype), word_mask, temp1, temp2, agg, attention, chunk_size, eps
        )


def _local_similarity(
    regions: torch.Tensor,
    words: torch.Tensor,
    word_mask: torch.Tensor,
    temp1: float,
    temp2: float,
    agg: str,
    attention: str,
    chunk_size: int | None,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    bi, d, h, w = regions.shape
    bt, _, t = words.shape
    m = h * w
    flat_regions = regions.flatten(2)  # (Bi, D, M)
    flat_words = words.transpose(1, 2)  # (Bt, T, D)
    paired = bi == bt

    spans = _word_spans(word_mask)
    groups = _caption_groups(spans, slot_cost=math.ceil(_GROUP_MACS / (bi * m * d)))
    group_inputs = []
    for members in groups:
        index = torch.as_tensor(members, device=words.device)
        length = spans[members[-1]]
        mask = word_mask[index, :length]
        bias = torch.zeros(mask.shape, dtype=regions.dtype, device=regions.device).masked_fill_(~mask, float("-inf"))
        group_words = flat_words[index, :length]
        group_inputs.append((group_words, mask, bias, group_words.square().sum(dim=-1)))
    total_slots = sum(len(members) * spans[members[-1]] for members in groups)
    # Gram path: 2 M^2 (D + slots) multiply-adds per image, against 3 M D slots for building the contexts
    use_gram = 2 * m * (d + total_slots) < 3 * d * total_slots
    largest = max(len(members) * spans[members[-1]] for members in groups)
    block = max(1, _BLOCK_ELEMENTS // (m * largest))

    # the (group, slot) of each caption, for the attention of every image on its own caption
    own_slots = [(k, slot) for _, k, slot in sorted((c, k, s) for k, ms in enumerate(groups) for s, c in enumerate(ms))]

    def run(chunk: torch.Tensor, offset: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        # split, not slices: the backward pass of a slice fills a zero tensor of the whole input, per slice
        parts = [
            _score_block(
                part,
                group_inputs,
                own_slots[offset + i * block : offset + i * block + part.shape[0]] if paired else None,
                temp1,
                temp2,
                agg,
                attention,
                use_gram,
                eps,
            )
            for i, part in enumerate(chunk.split(block))
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]) if paired else None

    step = bi if chunk_size is None else max(1, int(chunk_size))
    outputs = [
        checkpoint(run, chunk, i * step, use_reentrant=False)
        if step < bi and torch.is_grad_enabled()
        else run(chunk, i * step)
        for i, chunk in enumerate(flat_regions.split(step))
    ]
    # columns come in group order: put them back in caption order
    order = torch.as_tensor([c for members in groups for c in members], device=regions.device)
    scores = torch.cat([o[0] for o in outputs])[:, torch.argsort(order)]
    if not paired:
        return scores, None
    own = torch.cat([o[1] for o in outputs])  # (B, L_max, M)
    attn = own.new_zeros(bi, t, m)
    attn[:, : own.shape[1]] = own
    return scores, attn.view(bi, t, h, w)
