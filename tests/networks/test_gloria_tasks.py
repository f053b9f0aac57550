"""GLoRIA similarities over a gallery and the zero-shot z-normalised argmax."""

import pytest
import torch
import torch.nn.functional as F

from monai_xattn.networks.gloria_tasks import (
    class_scores,
    global_similarity,
    gloria_similarity,
    official_prompt_words,
    zero_shot_classify,
    zscore_columns,
)


def test_zero_shot_znorm_argmax_by_hand():
    sim = torch.tensor([[0.9, 0.1, 0.5, 0.6], [0.2, 0.3, 0.4, 0.1], [0.4, 0.0, 0.9, 0.2]])
    classes = [0, 0, 1, 1]
    torch.testing.assert_close(class_scores(sim, classes, 2), torch.tensor([[0.9, 0.6], [0.3, 0.4], [0.4, 0.9]]))
    # raw argmax: 0, 1, 1. z-scores: column 0 mean .5333 std .2625 -> image 1: -0.889; column 1 mean .6333
    # std .2055 -> image 1: -1.135, so after normalisation image 1 goes to class 0
    pred, scores = zero_shot_classify(sim, classes, 2)
    assert pred.tolist() == [0, 0, 1]
    assert scores[1].tolist() == pytest.approx([-0.8890, -1.1355], abs=1e-3)
    assert zero_shot_classify(sim, classes, 2, normalize=False)[0].tolist() == [0, 1, 1]
    z = zscore_columns(torch.tensor([[1.0, 2.0], [3.0, 2.0]]))
    assert z.tolist() == [[-1.0, 0.0], [1.0, 0.0]]  # population std; a constant column -> 0
    with pytest.raises(ValueError, match="every class 0..2 needs prompts"):
        class_scores(sim, classes, 3)
    with pytest.raises(ValueError, match="N >= 2"):
        zscore_columns(torch.ones(1, 3))


def _reference_local(regions, words_list, temp1=4.0, temp2=5.0):
    """Per (image, caption) loop of the official zero-shot local score: double softmax, max over words."""
    out = torch.zeros(regions.shape[0], len(words_list), dtype=regions.dtype)
    for i, reg in enumerate(regions):
        v = reg.flatten(1).t()  # (M, D)
        for j, w in enumerate(words_list):  # w: (T_j, D)
            p = (v @ w.t()).softmax(dim=1)
            a = (temp1 * p).softmax(dim=0)
            c = a.t() @ v
            out[i, j] = (temp2 * F.cosine_similarity(w, c, dim=1, eps=1e-8)).max()
    return out


def test_similarity_matches_a_per_pair_loop_with_real_words_only():
    g = torch.Generator().manual_seed(0)
    d, n_img, lengths = 8, 3, [2, 5, 1, 3]
    regions = torch.randn(n_img, d, 3, 2, generator=g, dtype=torch.float64)
    img_global = torch.randn(n_img, d, generator=g, dtype=torch.float64)
    txt_global = torch.randn(len(lengths), d, generator=g, dtype=torch.float64)
    t = max(lengths)
    words = torch.randn(len(lengths), d, t, generator=g, dtype=torch.float64)
    mask = torch.arange(t)[None] < torch.tensor(lengths)[:, None]
    words = words * mask[:, None]  # padding slots are zero vectors, as the text encoder writes them
    ref_local = _reference_local(regions, [words[j, :, :n].t() for j, n in enumerate(lengths)])
    ref_global = F.cosine_similarity(img_global[:, None], txt_global[None], dim=-1)
    local = gloria_similarity(regions, img_global, words, mask, txt_global, mode="local", chunk_size=2)
    torch.testing.assert_close(local, ref_local)
    torch.testing.assert_close(global_similarity(img_global, txt_global), ref_global)
    both = gloria_similarity(regions, img_global, words, mask, txt_global)
    torch.testing.assert_close(both, (ref_local + ref_global) / 2)
    # zscore fusion: each score's text columns standardised over the images, then averaged
    zboth = gloria_similarity(regions, img_global, words, mask, txt_global, fusion="zscore")
    torch.testing.assert_close(zboth, (zscore_columns(ref_local) + zscore_columns(ref_global)) / 2)
    with pytest.raises(ValueError, match="fusion"):
        gloria_similarity(regions, img_global, words, mask, txt_global, fusion="sum")
    # the padded slots matter: scoring them too (the official length bug) changes the numbers
    leaky = gloria_similarity(regions, img_global, words, torch.ones_like(mask), txt_global, mode="local")
    assert not torch.allclose(leaky, local)


def test_official_prompt_words_follow_character_lengths():
    words = torch.randn(2, 4, 5)
    mask = torch.tensor([[False, True, True, True, False], [False, True, True, False, False]])
    padded, slots = official_prompt_words(words, mask, char_lengths=[30, 1], max_length=12)
    assert padded.shape == (2, 4, 12) and torch.equal(padded[:, :, :5], words) and not padded[:, :, 5:].any()
    assert slots[0].nonzero().flatten().tolist() == list(range(1, 12))  # 30 characters, capped at 11 slots
    assert slots[1].nonzero().flatten().tolist() == [1, 2]  # never fewer than the real words
    regions, glob = torch.randn(3, 4, 2, 2), torch.randn(3, 4)
    local = gloria_similarity(regions, glob, padded, slots, torch.randn(2, 4), mode="local")
    assert (local[:, 0] >= 0).all()  # a zero word scores cos = 0: the official local score never drops below 0
