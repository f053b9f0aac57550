"""Box helpers and the detection pipelines: a box drawn into the image must come out where the boxes say."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.apps.detection.transforms.dictionary import BoxToMaskd, MaskToBoxd
from monai.data import MetaTensor
from monai.utils import set_determinism

from monai_xattn.data.dicom_writer import write_cxr_dicom
from monai_xattn.transforms.box import (
    BoxLabelsToIndex,
    BoxLabelsToIndexd,
    ResizeBox,
    ResizeBoxd,
    boxes_to_original,
    detection_eval_transforms,
    detection_train_transforms,
    validate_boxes,
    xywh_to_xyxy,
)

W, H = 96, 64  # non-square: an axis mix-up moves the box


def test_xywh_to_xyxy():
    np.testing.assert_array_equal(xywh_to_xyxy([[10, 20, 5, 7], [0.5, 1, 2, 3]]), [[10, 20, 15, 27], [0.5, 1, 2.5, 4]])
    assert xywh_to_xyxy([]).shape == (0, 4)
    # NIH writes 15 significant digits: float64 all the way (MONAI's convert_box_mode rounds through float32)
    nih = [[225.084745762712, 547.019216763771, 86.7796610169491, 79.1864406779661]]
    assert xywh_to_xyxy(nih)[0, 2] == 225.084745762712 + 86.7796610169491


def test_validate_boxes_policies(caplog):
    boxes = [[10, 10, 20, 20], [90, 50, 100, 70]]  # the second overhangs a 96 x 64 image
    with pytest.raises(ValueError, match=r"img7: 1 box\(es\) outside the \[96, 64\] image"):
        validate_boxes(boxes, (W, H), sample="img7")
    clipped, n = validate_boxes(boxes, (W, H), sample="img7", policy="clip")
    np.testing.assert_array_equal(clipped, [[10, 10, 20, 20], [90, 50, 96, 64]])
    assert n == 1 and "img7" in caplog.text
    dropped, n = validate_boxes(boxes, (W, H), sample="img7", policy="drop")
    np.testing.assert_array_equal(dropped, [[10, 10, 20, 20]])
    assert n == 1
    within, n = validate_boxes([[0, 0, 96.4, 64]], (W, H), sample="s", tolerance=0.5)
    np.testing.assert_array_equal(within, [[0, 0, 96, 64]])
    assert n == 0


@pytest.mark.parametrize("bad", [[[10, 10, 5, 20]], [[10, 10, 10, 20]], [[np.nan, 0, 1, 1]]])
def test_validate_boxes_rejects_malformed(bad):
    with pytest.raises(ValueError, match="img9"):
        validate_boxes(bad, (W, H), sample="img9", policy="clip")


def test_resize_box_scales_per_axis():
    boxes = torch.tensor([[12.0, 8.0, 48.0, 32.0]])
    np.testing.assert_allclose(ResizeBox(32)(boxes, (W, H)).numpy(), [[4.0, 4.0, 16.0, 16.0]])
    # keep_aspect: the longer side (96) fits 32, the shorter becomes round(64 / 3) = 21 pixels
    np.testing.assert_allclose(
        ResizeBox(32, keep_aspect=True)(boxes, (W, H)).numpy(), [[4.0, 8 * 21 / 64, 16.0, 32 * 21 / 64]]
    )


def test_box_labels_to_index():
    assert BoxLabelsToIndex()(["Pneumonia", "Pneumonia"]).tolist() == [0, 0]
    assert BoxLabelsToIndex({"a": 3, "b": 1})(["b", "a", 2]).tolist() == [1, 3, 2]
    assert BoxLabelsToIndex()([]).dtype == torch.int64
    with pytest.raises(ValueError, match="s12: unknown box label 'Nodule'"):
        BoxLabelsToIndexd("box_labels")({"image_id": "s12", "box_labels": ["Nodule"]})


def _box_image(boxes: list[list[float]]) -> dict:
    """An image whose foreground is exactly the union of ``boxes`` (drawn with MONAI's BoxToMaskd)."""
    d = {
        "image": MetaTensor(torch.zeros(1, W, H)),
        "boxes": torch.tensor(boxes, dtype=torch.float32),
        "box_labels": torch.ones(len(boxes), dtype=torch.int64),
    }
    mask = BoxToMaskd("boxes", "mask", "box_labels", "image", min_fg_label=1)(d)["mask"]
    return {"image": MetaTensor((mask > 0).any(0, keepdim=True).float()), "boxes": boxes, "box_labels": ["Pneumonia"]}


def _mask_to_box(image: torch.Tensor) -> torch.Tensor:
    # resampling blurs the edges: the half-way level separates inside from outside
    binary = (image > 0.5).to(torch.int16)
    return MaskToBoxd("b", "m", "l", min_fg_label=1)({"m": binary})["b"]


@pytest.mark.parametrize(
    ("size", "keep_aspect", "box", "atol"),
    [
        (48, False, [12.0, 8.0, 60.0, 40.0], 0.0),  # zoom (1/2, 3/4): edges land on pixel edges
        (48, True, [12.0, 6.0, 60.0, 42.0], 0.0),  # zoom 1/2 both axes, then end padding
        (40, False, [13.0, 7.0, 59.0, 41.0], 1.0),  # arbitrary factors: within the one-pixel resampling blur
    ],
)
@pytest.mark.parametrize("train", [False, True])
def test_pipeline_keeps_image_and_boxes_aligned(size, keep_aspect, box, atol, train):
    set_determinism(0)
    kwargs = dict(size=size, keep_aspect=keep_aspect, normalize="none", load=False, channel_dim=0)
    # flip_prob 1 on both axes: the flipped branch is the one exercised
    pipeline = (
        detection_train_transforms(flip_prob=1.0, flip_axes=(0, 1), **kwargs)
        if train
        else detection_eval_transforms(**kwargs)
    )
    out = pipeline(_box_image([box]))
    assert tuple(out["image"].shape) == (1, size, size)
    assert out["boxes"].dtype == torch.float32 and out["box_labels"].tolist() == [0]
    np.testing.assert_allclose(_mask_to_box(out["image"]).numpy(), out["boxes"].numpy(), atol=atol)
    if not train:
        np.testing.assert_allclose(boxes_to_original(out["boxes"], out["image"].meta).numpy(), [box], atol=1e-4)
    set_determinism(None)


def test_train_pipeline_from_a_dicom_file(tmp_path):
    stored = np.random.default_rng(0).integers(0, 4096, (H, W))  # (rows, cols): the image is W wide
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, photometric="MONOCHROME1", window=([2048], [4096]))
    pipeline = detection_train_transforms(size=32, flip_prob=0.0)
    out = pipeline({"image": str(path), "boxes": [[0.0, 0.0, 48.0, 64.0]], "box_labels": ["Pneumonia"]})
    assert tuple(out["image"].shape) == (1, 32, 32)
    np.testing.assert_allclose(out["boxes"].numpy(), [[0.0, 0.0, 16.0, 32.0]])
    assert abs(float(out["image"].mean())) < 1e-5 and abs(float(out["image"].std()) - 1) < 1e-2  # z-scored
    np.testing.assert_array_equal(out["image"].meta["original_size"], [W, H])


def test_eval_pipeline_without_boxes_and_empty_boxes():
    pipeline = detection_eval_transforms(size=32, load=False, channel_dim=0)
    image = MetaTensor(torch.rand(1, W, H))
    assert set(pipeline({"image": image})) == {"image"}
    out = pipeline({"image": image, "boxes": [], "box_labels": []})
    assert tuple(out["boxes"].shape) == (0, 4) and tuple(out["box_labels"].shape) == (0,)


def test_boxes_to_original_numpy_and_errors():
    meta = {"box_scale": np.array([0.5, 0.25]), "original_size": np.array([W, H])}
    np.testing.assert_allclose(boxes_to_original(np.array([[1.0, 1.0, 60.0, 20.0]]), meta), [[2, 4, 96, 64]])
    with pytest.raises(KeyError, match="box_scale"):
        boxes_to_original(np.zeros((1, 4)), {"original_size": [W, H]})


def test_resize_boxd_requires_boxes_unless_allowed():
    image = MetaTensor(torch.rand(1, W, H))
    with pytest.raises(KeyError, match="boxes"):
        ResizeBoxd("image", "boxes", "image", 32)({"image": image})
    out = ResizeBoxd("image", "boxes", "image", 32, allow_missing_keys=True)({"image": image})
    np.testing.assert_allclose(out["image"].meta["box_scale"], [32 / W, 32 / H])
