import itertools

import pytest
import torch
import torch.nn.functional as F

from monai_xattn.losses import GloriaLoss, global_loss, local_loss, local_similarity


def reference_local_loss(regions, words, word_mask, temp1=4.0, temp2=5.0, temp3=10.0, agg="sum", attention="double"):
    """Per-caption loop written from the official code's math: each caption is sliced to its own words."""
    b, d = regions.shape[:2]
    context = regions.flatten(2)  # (B, D, M)
    rows, maps = [], []
    for j in range(words.shape[0]):
        word = words[j][:, word_mask[j]].unsqueeze(0).expand(b, -1, -1)  # (B, D, n) for every image
        dots = torch.bmm(context.transpose(1, 2), word)  # (B, M, n)
        if attention == "double":
            attn = torch.softmax(temp1 * torch.softmax(dots, dim=2), dim=1)
        else:
            attn = torch.softmax(temp1 * dots, dim=1)
        weighted = torch.bmm(context, attn)  # (B, D, n)
        relevance = F.cosine_similarity(word, weighted, dim=1)  # (B, n)
        if agg == "sum":
            rows.append(torch.log(torch.exp(temp2 * relevance).sum(dim=1)))
        elif agg == "mean":
            rows.append(torch.log(torch.exp(temp2 * relevance).mean(dim=1)))
        else:
            rows.append((temp2 * relevance).max(dim=1).values)
        maps.append(attn[j].t())  # (n, M) for the paired image
    logits = temp3 * torch.stack(rows, dim=1)  # (image, caption)
    labels = torch.arange(b)
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels), maps


def reference_global_loss(img, txt, temp3=10.0):
    b = img.shape[0]
    logits = torch.stack(
        [torch.stack([temp3 * F.cosine_similarity(img[i], txt[k], dim=0) for k in range(b)]) for i in range(b)]
    )
    labels = torch.arange(b)
    return F.cross_entropy(logits, labels), F.cross_entropy(logits.t(), labels)


def make_inputs(b, t, d=12, h=3, w=4, seed=0, trailing=True):
    g = torch.Generator().manual_seed(seed)
    regions = (0.4 * torch.randn(b, d, h, w, generator=g, dtype=torch.float64)).requires_grad_()
    # padded slots hold large garbage: a loss that lets them in gives clearly different numbers
    words = 0.4 * torch.randn(b, d, t, generator=g, dtype=torch.float64)
    lengths = torch.randint(1, t + 1, (b,), generator=g)
    lengths[0] = t
    if trailing:
        mask = torch.arange(t)[None] < lengths[:, None]
    else:
        mask = torch.rand(b, t, generator=g) < 0.6
        mask[:, torch.randint(0, t, (1,), generator=g)] = True
    words = torch.where(mask[:, None], words, 5 * torch.randn(b, d, t, generator=g, dtype=torch.float64))
    return regions, words.requires_grad_(), mask


@pytest.mark.parametrize("b, t", list(itertools.product([1, 2, 8], [1, 5, 20])))
def test_local_loss_matches_per_caption_loop(b, t):
    regions, words, mask = make_inputs(b, t, seed=b * 100 + t)
    l0, l1, attn = local_loss(regions, words, mask)
    grads = torch.autograd.grad(l0 + 2 * l1, (regions, words))
    r0, r1, ref_maps = reference_local_loss(regions, words, mask)
    ref_grads = torch.autograd.grad(r0 + 2 * r1, (regions, words))
    torch.testing.assert_close(l0, r0, rtol=0, atol=1e-6)
    torch.testing.assert_close(l1, r1, rtol=0, atol=1e-6)
    for g, rg in zip(grads, ref_grads, strict=True):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, rg, rtol=0, atol=1e-6)
    assert attn.shape == (b, t, 3, 4)
    for j in range(b):
        torch.testing.assert_close(attn[j][mask[j]].flatten(1), ref_maps[j], rtol=0, atol=1e-6)
        assert (attn[j][~mask[j]] == 0).all()
        torch.testing.assert_close(attn[j][mask[j]].sum(dim=(1, 2)), torch.ones(int(mask[j].sum()), dtype=attn.dtype))


@pytest.mark.parametrize("agg, attention", list(itertools.product(["sum", "mean", "max"], ["double", "single"])))
def test_local_loss_options_match_loop(agg, attention):
    regions, words, mask = make_inputs(6, 7, seed=3, trailing=False)
    temps = {"temp1": 2.5, "temp2": 3.0, "temp3": 7.0}
    l0, l1, _ = local_loss(regions, words, mask, agg=agg, attention=attention, **temps)
    r0, r1, _ = reference_local_loss(regions, words, mask, agg=agg, attention=attention, **temps)
    torch.testing.assert_close(torch.stack([l0, l1]), torch.stack([r0, r1]), rtol=0, atol=1e-6)


def test_small_embedding_path_matches_loop():
    # D < M takes the explicit-context branch instead of the Gram matrix
    regions, words, mask = make_inputs(8, 5, d=5, h=4, w=4, seed=11, trailing=False)
    out = local_loss(regions, words, mask)
    ref = reference_local_loss(regions, words, mask)
    torch.testing.assert_close(torch.stack(out[:2]), torch.stack(ref[:2]), rtol=0, atol=1e-6)
    grads = torch.autograd.grad(sum(out[:2]), (regions, words))
    ref_grads = torch.autograd.grad(sum(ref[:2]), (regions, words))
    for g, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, rg, rtol=0, atol=1e-6)


@pytest.mark.parametrize("double, use_gram", list(itertools.product([True, False], [True, False])))
def test_word_region_match_gradient(double, use_gram):
    from monai_xattn.networks.gloria_attention import _WordRegionMatch

    g = torch.Generator().manual_seed(12)
    dots = torch.randn(2, 6, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    regions = torch.randn(2, 6, 5, generator=g, dtype=torch.float64)
    # the Gram path's backward assumes a symmetric second input, as a Gram matrix is
    second = (regions @ regions.transpose(1, 2) if use_gram else regions).requires_grad_()
    bias = torch.zeros(3, 4, dtype=torch.float64)
    bias[1, 2:] = float("-inf")

    def match(d, s):
        return _WordRegionMatch.apply(d, s, bias, 2.5, double, use_gram)[:2]

    assert torch.autograd.gradcheck(match, (dots, second))
    # the forward values are the formulas: <w, c> = sum_m a s and |c|^2 = |sum_m a v|^2
    dot, sq, attn = _WordRegionMatch.apply(dots, second, bias, 2.5, double, use_gram)
    torch.testing.assert_close(dot, (attn * dots).sum(dim=1))
    contexts = torch.einsum("imgl,imd->igld", attn, regions)
    torch.testing.assert_close(sq, contexts.square().sum(dim=-1))
    assert not attn.requires_grad


def test_gram_gradient():
    from monai_xattn.networks.gloria_attention import _Gram

    regions = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_Gram.apply, (regions,))


def test_caption_groups_are_optimal_cuts():
    from monai_xattn.networks.gloria_attention import _caption_groups

    g = torch.Generator().manual_seed(13)
    for trial in range(200):
        n = int(torch.randint(1, 9, (1,), generator=g))
        spans = torch.randint(1, 7, (n,), generator=g).tolist()
        cost = int(torch.randint(0, 12, (1,), generator=g))
        groups = _caption_groups(spans, cost)
        assert sorted(c for grp in groups for c in grp) == list(range(n)), (spans, groups)
        assert [spans[c] for grp in groups for c in grp] == sorted(spans)

        def total(gs, spans=spans, cost=cost):
            return sum(len(grp) * max(spans[c] for c in grp) + cost for grp in gs)

        # brute force over every cut of the sorted captions
        order = sorted(range(n), key=spans.__getitem__)
        best = min(
            total([order[a:b] for a, b in zip((0, *cuts), (*cuts, n), strict=True)])
            for k in range(n)
            for cuts in itertools.combinations(range(1, n), k)
        )
        assert total(groups) == best, (trial, spans, cost, groups)


@pytest.mark.parametrize("agg, attention", [("sum", "double"), ("mean", "single"), ("max", "double")])
@pytest.mark.parametrize("d", [12, 3])
def test_grouped_and_blocked_scoring_matches_loop(monkeypatch, agg, attention, d):
    # at these sizes the defaults give one group and one block: force many of both (d=3 takes the context path)
    import monai_xattn.networks.gloria_attention as gloria_attention

    monkeypatch.setattr(gloria_attention, "_GROUP_MACS", 1)
    monkeypatch.setattr(gloria_attention, "_BLOCK_ELEMENTS", 50)
    regions, words, mask = make_inputs(9, 8, d=d, seed=21, trailing=False)
    spans = gloria_attention._word_spans(mask)
    assert len(gloria_attention._caption_groups(spans, 1)) > 1
    out = local_loss(regions, words, mask, agg=agg, attention=attention)
    ref = reference_local_loss(regions, words, mask, agg=agg, attention=attention)
    torch.testing.assert_close(torch.stack(out[:2]), torch.stack(ref[:2]), rtol=0, atol=1e-6)
    grads = torch.autograd.grad(sum(out[:2]), (regions, words))
    ref_grads = torch.autograd.grad(sum(ref[:2]), (regions, words))
    for gr, rg in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(gr, rg, rtol=0, atol=1e-6)
    for j in range(9):
        torch.testing.assert_close(out[2][j][mask[j]].flatten(1), ref[2][j], rtol=0, atol=1e-6)
        assert (out[2][j][~mask[j]] == 0).all()


def test_half_precision_inputs_score_in_float32():
    regions, words, mask = make_inputs(4, 5, seed=22)
    scores, attn = local_similarity(regions.detach().half(), words.detach().half(), mask)
    assert scores.dtype == torch.float32 and attn.dtype == torch.float32
    ref, _ = local_similarity(regions.detach().half().double(), words.detach().half().double(), mask)
    torch.testing.assert_close(scores.double(), ref, rtol=1e-4, atol=1e-4)


def test_options_change_the_loss():
    regions, words, mask = make_inputs(5, 6, seed=4)
    base = local_loss(regions, words, mask)[0]
    for kwargs in (
        {"temp1": 1.0},
        {"temp2": 1.0},
        {"temp3": 1.0},
        {"agg": "mean"},
        {"agg": "max"},
        {"attention": "single"},
    ):
        assert not torch.isclose(local_loss(regions, words, mask, **kwargs)[0], base), kwargs
    # letting the padded slots in changes the numbers: the mask is doing work
    unmasked = local_loss(regions, words, torch.ones_like(mask))[0]
    assert not torch.isclose(unmasked, base)


def test_chunked_equals_unchunked_with_gradients():
    regions, words, mask = make_inputs(8, 5, seed=5)
    full = local_loss(regions, words, mask)
    chunked = local_loss(regions, words, mask, chunk_size=3)
    torch.testing.assert_close(torch.stack(full[:2]), torch.stack(chunked[:2]), rtol=0, atol=1e-12)
    torch.testing.assert_close(full[2], chunked[2], rtol=0, atol=1e-12)
    g_full = torch.autograd.grad(sum(full[:2]), (regions, words))
    g_chunk = torch.autograd.grad(sum(chunked[:2]), (regions, words))
    for a, b in zip(g_full, g_chunk, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_local_similarity_unpaired_shapes():
    regions, _, _ = make_inputs(3, 4, seed=6)
    _, words, mask = make_inputs(5, 4, seed=7)
    scores, attn = local_similarity(regions, words, mask)
    assert scores.shape == (3, 5) and attn is None
    # scores of one image do not depend on which other images share the batch
    alone, _ = local_similarity(regions[1:2], words, mask)
    torch.testing.assert_close(alone[0], scores[1])


@pytest.mark.parametrize("b", [1, 2, 8])
def test_global_loss_matches_loop(b):
    g = torch.Generator().manual_seed(b)
    img = torch.randn(b, 10, generator=g, dtype=torch.float64, requires_grad=True)
    txt = torch.randn(b, 10, generator=g, dtype=torch.float64, requires_grad=True)
    out = global_loss(img, txt, temp3=6.0)
    ref = reference_global_loss(img, txt, temp3=6.0)
    torch.testing.assert_close(torch.stack(out), torch.stack(ref), rtol=0, atol=1e-10)
    grads = torch.autograd.grad(sum(out), (img, txt), allow_unused=True)
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)


def test_global_loss_prefers_matched_pairs():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(6, 8, generator=g)
    matched = global_loss(img, img + 0.01 * torch.randn(6, 8, generator=g))
    shuffled = global_loss(img, img.roll(1, dims=0))
    assert matched[0] < 0.1 and shuffled[0] > 5 and matched[1] < shuffled[1]


def test_gloria_loss_combines_terms_with_weights():
    regions, words, mask = make_inputs(4, 5, seed=8)
    g = torch.Generator().manual_seed(1)
    img_g, txt_g = torch.randn(4, 12, generator=g), torch.randn(4, 12, generator=g)
    out = GloriaLoss(global_weight=0.5, local_weight=2.0)(regions, img_g, words, mask, txt_g)
    expected = 0.5 * (out["global_i2t"] + out["global_t2i"]) + 2.0 * (out["local_i2t"] + out["local_t2i"])
    torch.testing.assert_close(out["loss"], expected)
    torch.testing.assert_close(out["local_i2t"], local_loss(regions, words, mask)[0])
    assert out["attention"].shape == (4, 5, 3, 4)


def test_bad_inputs_are_named():
    regions, words, mask = make_inputs(3, 4, seed=9)
    empty = mask.clone()
    empty[1] = False
    with pytest.raises(ValueError, match=r"captions \[1\] have no word"):
        local_loss(regions, words, empty)
    with pytest.raises(ValueError, match="bool"):
        local_loss(regions, words, mask.long())
    with pytest.raises(ValueError, match="agg"):
        local_loss(regions, words, mask, agg="median")
    with pytest.raises(ValueError, match="same D"):
        local_loss(regions, words[:, :5], mask)
    with pytest.raises(ValueError, match="pairs image i with caption i"):
        local_loss(regions[:2], words, mask)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        global_loss(torch.zeros(3, 4), torch.zeros(3, 5))
