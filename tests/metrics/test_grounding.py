"""Grounding metrics on hand-made maps (MS-CXR's CNR and mIoU, peak in box) and the phrase items they score."""

from __future__ import annotations

import pytest
import torch

from monai_xattn.engines.grounding import phrase_items, summarize_grounding, uniform_map
from monai_xattn.metrics.grounding import (
    box_union_mask,
    contrast_to_noise_ratio,
    grounding_metrics,
    peak_in_box,
    thresholded_iou,
)
from monai_xattn.text.content_words import content_word_indices, finding_sentences

BOX = [[8.0, 12.0, 24.0, 20.0]]  # x0, y0, x1, y1 in a 32 x 32 frame


def box_map(box, size=(32, 32), value=1.0):
    return box_union_mask([box], size).double() * value


def test_box_mask_counts_pixels_by_centre_in_monai_frame():
    mask = box_union_mask(BOX, (32, 40))
    assert mask.shape == (32, 40) and int(mask.sum()) == 16 * 8
    assert mask[8, 12] and mask[23, 19] and not mask[24, 19] and not mask[8, 20]  # x is dim 0
    # two boxes: their union, the overlap counted once
    assert int(box_union_mask([[0, 0, 4, 4], [2, 2, 6, 6]], (8, 8)).sum()) == 16 + 16 - 4
    fractional = box_union_mask([[0.6, 0.0, 1.6, 1.0]], (4, 4))
    assert int(fractional.sum()) == 1 and fractional[1, 0]  # only pixel 1's centre (1.5) is inside


def test_a_map_equal_to_the_box_scores_best_and_a_uniform_map_zero():
    mask = box_union_mask(BOX, (32, 32))
    exact = box_map(BOX[0])
    noise = torch.Generator().manual_seed(0)
    noisy = exact + 0.05 * torch.rand(32, 32, generator=noise, dtype=torch.float64)
    shifted = box_map([14.0, 18.0, 30.0, 26.0])  # half out of the box
    away = box_map([0.0, 0.0, 6.0, 6.0])
    cnr = {
        name: contrast_to_noise_ratio(m, mask) for name, m in [("exact", exact), ("noisy", noisy), ("shifted", shifted)]
    }
    assert cnr["exact"] > 1e4  # no noise: bounded by 1 / eps, not infinite
    assert cnr["exact"] > cnr["noisy"] > cnr["shifted"] > 0
    assert contrast_to_noise_ratio(torch.full((32, 32), 3.0), mask) == 0.0
    # offset and scale do not change it
    assert contrast_to_noise_ratio(5 * noisy - 2, mask) == pytest.approx(cnr["noisy"])
    # the MS-CXR CNR is unsigned; ours keeps the sign, negative for a map brighter outside the box
    assert contrast_to_noise_ratio(away, mask) > 0 and contrast_to_noise_ratio(away, mask, signed=True) < 0
    assert contrast_to_noise_ratio(noisy, mask, signed=True) == pytest.approx(cnr["noisy"])

    assert thresholded_iou(exact, mask) == 1.0 and thresholded_iou(noisy, mask) == 1.0
    assert 0 < thresholded_iou(shifted, mask) < 1 and thresholded_iou(away, mask) == 0.0
    assert thresholded_iou(torch.ones(32, 32), mask) == 0.0
    # a ramp: the thresholds cut different regions, each IoU counted
    ramp = torch.arange(32, dtype=torch.float64)[:, None].expand(32, 32)
    half = box_union_mask([[16.0, 0.0, 32.0, 32.0]], (32, 32))
    ious = [thresholded_iou(ramp, half, [t]) for t in (0.1, 0.5)]
    assert ious[0] < ious[1] and thresholded_iou(ramp, half, [0.1, 0.5]) == pytest.approx(sum(ious) / 2)

    assert peak_in_box(exact, mask) == 1.0 and peak_in_box(away, mask) == 0.0
    assert peak_in_box(torch.ones(32, 32), mask) == pytest.approx(mask.double().mean())  # chance


def test_grounding_metrics_upsample_a_coarse_map_to_the_frame():
    coarse = torch.zeros(4, 4, dtype=torch.float64)
    coarse[1, 2] = 1.0  # the cell covering x 8-16, y 16-24 of a 32 x 32 frame
    inside = grounding_metrics(coarse, [[8.0, 16.0, 16.0, 24.0]], (32, 32))
    outside = grounding_metrics(coarse, [[24.0, 0.0, 32.0, 8.0]], (32, 32))
    assert inside["signed_cnr"] > 1 and inside["peak_in_box"] == 1.0 and inside["miou"] > 0.3
    assert outside["signed_cnr"] < 0 and outside["peak_in_box"] == 0.0 and outside["miou"] == 0.0
    assert grounding_metrics(uniform_map(None, ""), [[8.0, 16.0, 16.0, 24.0]], (32, 32))["cnr"] == 0.0


def test_bad_maps_and_boxes_are_named():
    mask = box_union_mask(BOX, (32, 32))
    with pytest.raises(ValueError, match="inside and outside"):
        contrast_to_noise_ratio(torch.rand(32, 32), torch.ones(32, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="inside and outside"):
        grounding_metrics(torch.rand(4, 4), [[40.0, 40.0, 50.0, 50.0]], (32, 32))  # a box outside the frame
    with pytest.raises(ValueError, match="NaN"):
        thresholded_iou(torch.full((32, 32), float("nan")), mask)
    with pytest.raises(ValueError, match="one shape"):
        peak_in_box(torch.rand(16, 16), mask)


def test_phrase_items_group_the_boxes_of_a_phrase():
    entry = {
        "image": "a.jpg",
        "image_id": "a",
        "image_size": [100, 80],
        "boxes": [[0, 0, 10, 10], [50, 0, 60, 10], [20, 20, 30, 30]],
        "box_labels": ["Pneumonia", "Pneumonia", "Pleural Effusion"],
        "box_phrases": ["Bilateral opacities", "Bilateral opacities", "Small left effusion"],
    }
    items = phrase_items([entry])
    assert [(i["category"], len(i["boxes"])) for i in items] == [("Pneumonia", 2), ("Pleural Effusion", 1)]
    assert items[1]["other_boxes"] == [[[0, 0, 10, 10], [50, 0, 60, 10]]]
    assert phrase_items([entry], ["Pleural Effusion"])[0]["phrase"] == "Small left effusion"


def test_summary_has_intervals_per_group_and_method():
    rows = [
        {"category": c, "method": m, "cnr": v, "signed_cnr": v, "miou": v / 10, "peak_in_box": float(v > 1)}
        for c, m, v in [("Pneumonia", "a", 1.0), ("Pneumonia", "a", 2.0), ("Edema", "a", 0.5), ("Pneumonia", "b", 0.0)]
    ]
    summary = summarize_grounding(rows)
    assert summary["all"]["a"]["n"] == 3 and summary["Pneumonia"]["a"]["cnr"][0] == pytest.approx(1.5)
    low, high = summary["Pneumonia"]["a"]["cnr"][1:]
    assert 1.0 <= low <= 1.5 <= high <= 2.0
    assert "b" not in summary["Edema"]


def test_content_words_skip_numbering_punctuation_and_function_words():
    assert content_word_indices(["1", ".", "the", "Right", "lower", "lobe", "of", "x"]) == [3, 4, 5]
    assert finding_sentences("1. Right lower lobe pneumonia. 2. No effusion.\n3. Stable cardiomegaly.") == [
        "Right lower lobe pneumonia.",
        "Stable cardiomegaly.",
    ]
    assert finding_sentences("IMPRESSION: 1. Bilateral opacities.") == ["Bilateral opacities."]
    assert finding_sentences("1. 2. .") == []
