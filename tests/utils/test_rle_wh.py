"""SIIM RLE in MONAI's ``(W, H)`` frame: round trips, and agreement with the ``(H, W)`` codec transposed."""

import numpy as np
import pytest

from monai_xattn.utils.rle import RLE_MODES, rle_decode, rle_decode_wh, rle_encode, rle_encode_wh

SHAPES_WH = [(1, 1), (7, 5), (5, 7), (16, 16), (33, 20)]


def _seed(shape):
    return shape[0] * 100 + shape[1]


def _random_masks(shape, seed):
    rng = np.random.default_rng(seed)
    yield np.zeros(shape, np.uint8)
    yield np.ones(shape, np.uint8)
    for density in (0.05, 0.5, 0.95):
        yield (rng.random(shape) < density).astype(np.uint8)


@pytest.mark.parametrize("mode", RLE_MODES)
@pytest.mark.parametrize("shape", SHAPES_WH)
def test_wh_round_trip_on_random_masks(shape, mode):
    for k, mask in enumerate(_random_masks(shape, seed=_seed(shape))):
        rle = rle_encode_wh(mask, mode)
        back = rle_decode_wh(rle, shape, mode)
        assert back.shape == shape and back.dtype == np.uint8, k
        np.testing.assert_array_equal(back, mask)
        assert back.flags.c_contiguous  # the docstring's "no copy" layout


@pytest.mark.parametrize("mode", RLE_MODES)
@pytest.mark.parametrize("shape", SHAPES_WH)
def test_wh_functions_are_the_hw_functions_transposed(shape, mode):
    w, h = shape
    for mask_wh in _random_masks(shape, seed=_seed(shape) + 1):
        mask_hw = np.ascontiguousarray(mask_wh.T)
        assert rle_encode_wh(mask_wh, mode) == rle_encode(mask_hw, mode)
        rle = rle_encode(mask_hw, mode)
        np.testing.assert_array_equal(rle_decode_wh(rle, (w, h), mode), rle_decode(rle, h, w, mode).T)


def test_wh_frame_puts_pixel_x_y_on_axis_0_x():
    # (W, H) = (4, 3); MONAI pixel (x=2, y=1) is column-major index x * H + y = 7: relative "7 1"
    mask = np.zeros((4, 3), np.uint8)
    mask[2, 1] = 1
    assert rle_encode_wh(mask) == "7 1"
    assert rle_encode_wh(mask, "absolute") == "8 1"
    decoded = rle_decode_wh("7 1", (4, 3))
    assert decoded.shape == (4, 3) and decoded[2, 1] == 1 and decoded.sum() == 1
    # a non-square image: swapping W and H would move the pixel, so the frame is really (W, H)
    assert rle_decode_wh("7 1", (3, 4))[1, 3] == 1


def test_wh_unites_several_strings_and_reads_empty_ones():
    a, b = np.zeros((6, 5), np.uint8), np.zeros((6, 5), np.uint8)
    a[1:3, 0:2] = 1
    b[2:5, 1:4] = 1
    united = rle_decode_wh([rle_encode_wh(a), rle_encode_wh(b)], (6, 5))
    np.testing.assert_array_equal(united, a | b)
    for empty in ("-1", "", []):
        assert not rle_decode_wh(empty, (6, 5)).any()
    assert rle_encode_wh(np.zeros((6, 5))) == "-1"


def test_wh_errors():
    with pytest.raises(ValueError, match="spatial_size"):
        rle_decode_wh("1 1", (4, 3, 2))
    with pytest.raises(ValueError, match="pixels"):
        rle_decode_wh("10 5", (3, 4))  # runs past the 12-pixel image
    with pytest.raises(ValueError, match="2D"):
        rle_encode_wh(np.zeros((2, 3, 4)))
