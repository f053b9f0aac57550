"""SIIM run-length encoding: Kaggle's column-major convention, both modes, unions, round trips, errors."""

import numpy as np
import pytest

from monai_xattn.data.siim import detect_rle_mode, rle_decode, rle_encode


def kaggle_reference_decode(rle: str, height: int, width: int) -> np.ndarray:
    """SIIM's ``mask_functions.rle2mask`` logic (per-run loop, reshape (W, H), transpose), as an oracle."""
    mask = np.zeros(width * height, np.uint8)
    values = [int(v) for v in rle.split()]
    position = 0
    for gap, length in zip(values[0::2], values[1::2], strict=True):
        position += gap
        mask[position : position + length] = 1
        position += length
    return mask.reshape(width, height).T


def test_decode_hand_computed():
    # 3 rows x 4 columns; column-major pixel k is (y = k % 3, x = k // 3)
    mask = rle_decode("2 3 4 1", height=3, width=4)
    expected = np.array([[0, 1, 0, 1], [0, 1, 0, 0], [1, 0, 0, 0]], np.uint8)
    assert mask.dtype == np.uint8 and mask.shape == (3, 4)
    np.testing.assert_array_equal(mask, expected)
    # the same pixels in 1-based absolute positions: 3..5 and 10
    np.testing.assert_array_equal(rle_decode("3 3 10 1", 3, 4, mode="absolute"), expected)


def test_empty_values():
    for empty in ("-1", " -1", ""):
        assert not rle_decode(empty, 5, 6).any()
    assert rle_encode(np.zeros((5, 6))) == "-1"


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_round_trip_random_masks(mode):
    rng = np.random.default_rng(0)
    for height, width in [(7, 5), (16, 16), (1, 9)]:
        for density in (0.05, 0.5, 0.95):
            mask = (rng.random((height, width)) < density).astype(np.uint8)
            rle = rle_encode(mask, mode)
            np.testing.assert_array_equal(rle_decode(rle, height, width, mode), mask)
            assert rle_encode(rle_decode(rle, height, width, mode), mode) == rle


def test_matches_kaggle_reference_on_non_square_image():
    rng = np.random.default_rng(1)
    mask = (rng.random((12, 20)) < 0.3).astype(np.uint8)
    rle = rle_encode(mask)
    np.testing.assert_array_equal(kaggle_reference_decode(rle, 12, 20), mask)


def test_several_rows_are_united():
    a = np.zeros((6, 6), np.uint8)
    a[1:3, 1:4] = 1
    b = np.zeros((6, 6), np.uint8)
    b[2:5, 3:5] = 1  # overlaps a at (2, 3)
    united = rle_decode([rle_encode(a), rle_encode(b)], 6, 6)
    np.testing.assert_array_equal(united, a | b)
    assert rle_decode(["-1", rle_encode(a)], 6, 6).sum() == a.sum()
    # disjoint rows listed out of pixel order
    c = np.zeros((6, 6), np.uint8)
    c[4:6, 5] = 1
    d = np.zeros((6, 6), np.uint8)
    d[0, 0:2] = 1
    np.testing.assert_array_equal(rle_decode([rle_encode(c), rle_encode(d)], 6, 6), c | d)


@pytest.mark.parametrize(
    "rle, mode, message",
    [
        ("0 37", "relative", "runs to pixel 37"),
        ("30 3 4 1", "relative", "runs to pixel 38"),
        ("36 2", "absolute", "runs to pixel 37"),
        ("0 3", "absolute", "1-based"),
        ("1 2 3", "relative", "odd number"),
        ("1 x", "relative", "integers"),
        ("4 -2", "relative", "negative"),
    ],
)
def test_bad_strings_raise(rle, mode, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, 6, 6, mode)


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        rle_decode("1 1", 2, 2, mode="kaggle")
    with pytest.raises(ValueError, match="mode"):
        rle_encode(np.ones((2, 2)), mode="kaggle")


def test_detect_mode():
    rng = np.random.default_rng(2)
    masks = [(rng.random((10, 10)) < 0.4).astype(np.uint8) for _ in range(4)]
    relative = [(rle_encode(m, "relative"), 100) for m in masks]
    absolute = [(rle_encode(m, "absolute"), 100) for m in masks]
    assert detect_rle_mode(relative)[0] == "relative"
    mode, why = detect_rle_mode(absolute)
    assert mode == "absolute" and "overrun" in why
    # a single run fits both readings: the SIIM original wins, and the report says why
    mode, why = detect_rle_mode([("5 3", 100)])
    assert mode == "relative" and "both" in why
    with pytest.raises(ValueError, match="neither"):
        detect_rle_mode([relative[0], absolute[0]])


def test_detect_mode_ignores_strings_that_fit_neither_and_names_the_conflict():
    assert detect_rle_mode([("5 3", 100), ("0 500", 100)]) == (
        "relative",
        "all 1 strings fit both readings; assumed relative (SIIM train-rle.csv); 1 fit neither reading",
    )
    with pytest.raises(ValueError, match=r"1 fit only absolute \(e\.g\. b \(line 3\)\), 1 only relative \(e\.g\. a"):
        detect_rle_mode([("5 3 1 2", 100, "a (line 2)"), ("50 3 90 5", 100, "b (line 3)")])
