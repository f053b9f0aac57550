"""Bootstrap intervals of localization accuracy (issue 18 item 7): coverage, pairing, seeds, the CSV contract."""

from __future__ import annotations

import numpy as np
import pytest

from monai_xattn.metrics.intervals import (
    align_runs,
    bootstrap_accuracy,
    format_interval,
    paired_difference,
    read_top1_overlaps,
)


def test_point_estimate_is_the_pooled_accuracy_and_the_interval_holds_it():
    overlaps = np.array([[0.1, 0.3, 0.6, 0.8], [0.2, 0.2, 0.55, 0.9]])
    result = bootstrap_accuracy(overlaps, n_boot=500)
    # IoU@0.25: seed 1 hits 3 of 4, seed 2 hits 2 of 4 -> 5/8 pooled
    assert result[0.25][0] == pytest.approx(5 / 8)
    assert result[0.5][0] == pytest.approx(1.0 / 2)
    assert result[0.75][0] == pytest.approx(1 / 4)
    for point, low, high in result.values():
        assert low <= point <= high


def test_interval_covers_the_true_rate_about_as_often_as_it_says():
    rng = np.random.default_rng(0)
    true_rate, covered = 0.4, 0
    for trial in range(200):
        overlaps = (rng.random((1, 150)) < true_rate).astype(float)  # a hit has overlap 1, a miss 0
        _, low, high = bootstrap_accuracy(overlaps, thresholds=(0.5,), n_boot=400, seed=trial)[0.5]
        covered += low <= true_rate <= high
    assert 0.88 <= covered / 200 <= 0.99  # a 95 % interval; 200 trials leave about +-3 points of noise


def test_interval_narrows_with_more_images():
    rng = np.random.default_rng(1)
    widths = []
    for n in (40, 640):
        _, low, high = bootstrap_accuracy(rng.random((1, n)), thresholds=(0.5,), n_boot=1000)[0.5]
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # ~ 1 / sqrt(16)


def test_paired_difference_sees_a_small_consistent_gain_that_unpaired_intervals_miss():
    rng = np.random.default_rng(2)
    base = rng.random((3, 200))  # three seeds of method B
    better = base.copy()
    flip = rng.choice(200, 12, replace=False)  # A turns 12 misses at IoU@0.5 into hits, same images otherwise
    better[:, flip] = np.maximum(better[:, flip], 0.6)
    gain = paired_difference(better, base, thresholds=(0.5,), n_boot=1000)[0.5]
    assert gain[0] > 0 and gain[1] > 0  # the paired interval excludes 0
    a = bootstrap_accuracy(better, thresholds=(0.5,), n_boot=1000)[0.5]
    b = bootstrap_accuracy(base, thresholds=(0.5,), n_boot=1000)[0.5]
    assert a[1] < b[2]  # the two unpaired intervals overlap
    # the same method against itself: exactly 0
    assert paired_difference(base, base, thresholds=(0.5,), n_boot=100)[0.5] == (0.0, 0.0, 0.0)


def test_paired_difference_allows_different_seed_counts_but_not_different_images():
    one_detector, three_heads = np.full((1, 5), 0.6), np.full((3, 5), 0.1)
    assert paired_difference(three_heads, one_detector, thresholds=(0.5,))[0.5][0] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same images"):
        paired_difference(np.zeros((1, 4)), np.zeros((1, 5)))


def test_raw_csv_is_read_without_images_lacking_a_box_and_runs_align_on_common_images(tmp_path):
    path = tmp_path / "val_acc_iou25_raw.csv"
    path.write_text("filename,class0,mean\n/a.dcm,0.5,0.5\n/b.dcm,nan,nan\n/c.dcm,0.0,0.0\n")
    run = read_top1_overlaps(path)
    assert run == {"/a.dcm": 0.5, "/c.dcm": 0.0}
    images, stacked = align_runs([run, {"/a.dcm": 0.7, "/c.dcm": 0.1, "/d.dcm": 1.0}])
    assert images == ["/a.dcm", "/c.dcm"] and stacked.tolist() == [[0.5, 0.0], [0.7, 0.1]]
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        read_top1_overlaps(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("filename,class0\n/a.dcm\n")
    with pytest.raises(ValueError, match="bad.csv, row 2"):
        read_top1_overlaps(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="share no image"):
        align_runs([{"/a": 1.0}, {"/b": 1.0}])


def test_format():
    assert format_interval((0.4123, 0.35, 0.471)) == "0.412 [0.350, 0.471]"
    assert format_interval((0.05, -0.01, 0.1), signed=True) == "+0.050 [-0.010, +0.100]"
