"""Contact sheets: boxes land where StandardMode says, in MONAI's (W, H) frame."""

from __future__ import annotations

import numpy as np
import pytest

from monai_xattn.visualize.contact_sheet import contact_sheet, draw_boxes


def test_box_drawn_in_monai_frame():
    image = np.zeros((40, 30), np.float32)  # (W, H): 40 columns, 30 rows
    image[0, 0] = 1.0
    rgb = draw_boxes(image, [[5, 10, 15, 20]], labels=None)
    assert rgb.shape == (30, 40, 3)
    assert rgb[0, 0].tolist() == [255, 255, 255]  # (x=0, y=0) is the top-left pixel
    outline = np.argwhere(rgb[..., 0] == 255)[1:]  # drop the white pixel
    rows, cols = outline[:, 0], outline[:, 1]
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 19, 5, 14)  # end exclusive


def test_contact_sheet_grid_and_errors():
    images = [np.random.default_rng(k).random((32, 32)) for k in range(5)]
    sheet = contact_sheet(images, [np.zeros((0, 4))] * 5, ncols=2, tile=16, gap=1)
    assert sheet.shape == (3 * 17 - 1, 2 * 17 - 1, 3) and sheet.dtype == np.uint8
    assert not sheet[-16:, 17:].any()  # the sixth tile is empty
    with pytest.raises(ValueError, match="boxes for 1 images"):
        contact_sheet(images, [np.zeros((0, 4))])
    with pytest.raises(ValueError, match="one channel"):
        draw_boxes(np.zeros((3, 8, 8)))
    with pytest.raises(ValueError, match="2 labels for 1 boxes"):
        draw_boxes(np.zeros((8, 8)), [[0, 0, 2, 2]], labels=["a", "b"])
