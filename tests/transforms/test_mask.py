"""RLEToMask(d): SIIM RLE rows -> a (1, W, H) mask aligned with the image LoadCXRd returns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_xattn.data.siim import rle_encode
from monai_xattn.transforms import RLEToMask, RLEToMaskd


def test_mask_is_in_monai_frame_and_rows_are_united():
    hw = np.zeros((5, 7), np.uint8)  # (H, W): row = image y
    hw[1, 4] = 1  # image x = 4, y = 1
    other = np.zeros_like(hw)
    other[3, 0:2] = 1
    mask = RLEToMask()([rle_encode(hw), rle_encode(other)], spatial_size=(7, 5))
    assert mask.shape == (1, 7, 5) and mask.dtype == torch.float32
    assert mask[0, 4, 1] == 1 and mask[0, 0, 3] == 1 and mask[0, 1, 3] == 1
    assert int(mask.sum()) == 3
    assert int(RLEToMask()([], spatial_size=(7, 5)).sum()) == 0
    absolute = RLEToMask(mode="absolute")(rle_encode(hw, mode="absolute"), (7, 5))
    assert torch.equal(absolute[0], torch.from_numpy(hw.T).float())


def test_dict_transform_takes_size_and_meta_from_image_and_names_bad_sample():
    image = MetaTensor(torch.zeros(1, 7, 5), meta={"filename_or_obj": "a.dcm"})
    hw = np.zeros((5, 7), np.uint8)
    hw[2, 6] = 1
    out = RLEToMaskd("rle")({"image": image, "rle": [rle_encode(hw)], "rle_mode": "relative", "image_id": "a"})
    assert out["label"].shape == (1, 7, 5) and out["label"][0, 6, 2] == 1
    assert isinstance(out["label"], MetaTensor) and out["label"].meta["filename_or_obj"] == "a.dcm"
    too_long = "0 36"  # 36 pixels in a 35-pixel image
    with pytest.raises(ValueError, match="sample b, key 'rle'.*35 pixels"):
        RLEToMaskd("rle")({"image": image, "rle": [too_long], "image_id": "b"})
    assert "label" not in RLEToMaskd("rle", allow_missing_keys=True)({"image": image})
