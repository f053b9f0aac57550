"""``to_display`` and ``draw_box_outlines``: MONAI's (W, H) frame becomes picture rows, boxes land on their pixels."""

import numpy as np
import pytest
import torch
from PIL import Image

from monai_xattn.utils.display import draw_box_outlines, to_display


@pytest.mark.parametrize("channel", [False, True])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_bright_pixel_at_monai_x_y_lands_at_row_y_column_x(channel, as_tensor):
    w, h, x, y = 7, 5, 5, 1  # non-square, x != y: a missing or doubled transpose moves or loses the pixel
    image = np.zeros((w, h), np.float32)
    image[x, y] = 3.0
    if channel:
        image = image[None]
    picture = to_display(torch.as_tensor(image) if as_tensor else image)
    assert picture.shape == (h, w) and picture.dtype == np.uint8
    assert picture[y, x] == 255
    assert int(picture.sum()) == 255  # every other pixel is the minimum, 0


def test_only_channel_0_is_drawn_and_range_is_min_max_scaled():
    image = torch.stack([torch.linspace(-2.0, 6.0, 12).reshape(4, 3), torch.full((4, 3), 100.0)])
    picture = to_display(image)
    assert picture.shape == (3, 4)
    assert picture.min() == 0 and picture.max() == 255
    expected = np.rint((image[0].t().numpy() + 2.0) / 8.0 * 255).astype(np.uint8)
    np.testing.assert_array_equal(picture, expected)


@pytest.mark.parametrize("value", [0.0, -3.5, 1e6])
def test_constant_image_is_black(value):
    picture = to_display(np.full((1, 6, 4), value))
    assert picture.shape == (4, 6) and picture.dtype == np.uint8 and not picture.any()


def test_integer_and_bool_inputs():
    assert to_display(np.array([[0, 2], [4, 8]], np.int16)).tolist() == [[0, 128], [64, 255]]
    assert to_display(np.eye(2, dtype=bool)).tolist() == [[255, 0], [0, 255]]


@pytest.mark.parametrize("shape", [(5,), (1, 1, 4, 4)])
def test_other_ranks_are_refused(shape):
    with pytest.raises(ValueError, match="C, W, H"):
        to_display(np.zeros(shape))


def _marked(picture, colour):
    return {(int(c), int(r)) for r, c in zip(*np.nonzero((np.asarray(picture) == colour).all(axis=-1)), strict=True)}


def test_box_outline_covers_exactly_its_pixels_with_exclusive_ends():
    picture = Image.new("RGB", (10, 8))
    out = draw_box_outlines(picture, [[2, 1, 6, 4]], (255, 0, 0))
    assert out is picture  # in place
    # StandardMode [2, 1, 6, 4]: columns 2..5, rows 1..3; the outline is that rectangle's border
    expected = {(x, y) for x in range(2, 6) for y in range(1, 4) if x in (2, 5) or y in (1, 3)}
    assert _marked(picture, (255, 0, 0)) == expected


def test_box_pixels_match_to_display_orientation():
    # a box around MONAI pixel (x=6, y=2) of a (W=9, H=5) image: its outline rings the picture's bright pixel
    image = np.zeros((9, 5))
    image[6, 2] = 1.0
    picture = Image.fromarray(to_display(image)).convert("RGB")
    assert np.asarray(picture)[2, 6].tolist() == [255, 255, 255]
    draw_box_outlines(picture, torch.tensor([[5.0, 1.0, 8.0, 4.0]]), (0, 255, 0))
    assert _marked(picture, (0, 255, 0)) == {(x, y) for x in range(5, 8) for y in range(1, 4)} - {(6, 2)}
    assert np.asarray(picture)[2, 6].tolist() == [255, 255, 255]


def test_one_pixel_wide_box_is_one_column():
    picture = Image.new("RGB", (9, 5))
    draw_box_outlines(picture, [[6, 1, 7, 4]], (0, 255, 0))
    assert _marked(picture, (0, 255, 0)) == {(6, 1), (6, 2), (6, 3)}


def test_one_pixel_tall_box_is_one_row():
    picture = Image.new("RGB", (9, 5))
    draw_box_outlines(picture, [[6, 2, 7, 3]], (0, 255, 0))
    assert _marked(picture, (0, 255, 0)) == {(6, 2)}


def test_colours_per_box_scale_and_width():
    picture = Image.new("RGB", (20, 20))
    draw_box_outlines(picture, np.array([[0, 0, 2, 2], [5, 5, 8, 9]]), [(255, 0, 0), (0, 0, 255)], scale=2.0)
    red, blue = _marked(picture, (255, 0, 0)), _marked(picture, (0, 0, 255))
    assert red == {(x, y) for x in range(4) for y in range(4) if x in (0, 3) or y in (0, 3)}
    assert blue == {(x, y) for x in range(10, 16) for y in range(10, 18) if x in (10, 15) or y in (10, 17)}
    thick = Image.new("RGB", (12, 12))
    draw_box_outlines(thick, [[1, 1, 11, 11]], (9, 9, 9), width=2)
    marked = _marked(thick, (9, 9, 9))
    assert (2, 5) in marked and (3, 5) not in marked and (10, 5) in marked and (9, 5) in marked


def test_single_colour_given_as_list_is_one_colour_for_all():
    picture = Image.new("RGB", (12, 12))
    draw_box_outlines(picture, [[0, 0, 3, 3], [5, 5, 8, 8], [8, 0, 11, 3]], [255, 255, 0])
    assert len(_marked(picture, (255, 255, 0))) == 3 * 8
