"""Inference overlays a person can read (issue 19): the radiograph at ``overlay_size`` on its long side, the top-k
boxes at their scaled positions with their scores, the predicted attributes as a caption."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from PIL import Image

from monai_xattn.utils.display import OVERLAY_COLOUR
from monai_xattn.visualize.boxes import detection_overlay

W, H = 1955, 1841  # the CR DICOM of the issue, MONAI's (W, H)


def _marked(picture: Image.Image, colour=OVERLAY_COLOUR) -> np.ndarray:
    """``(rows, cols)`` bool: the pixels of exactly ``colour``."""
    return (np.asarray(picture.convert("RGB")) == colour).all(axis=-1)


def _grey(w: int = W, h: int = H) -> np.ndarray:
    """A ``(W, H)`` horizontal ramp: no pixel of the overlay colour, whatever the resampling."""
    return np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32)[:, None], (1, h))


def test_long_side_is_overlay_size_for_a_non_square_image():
    for size in (1024, 768):
        picture = detection_overlay(_grey(), [[100, 200, 600, 900]], [0.9], size=size)
        assert picture.size == (size, round(H * size / W))  # PIL's (width, height) = (W, H) scaled
    tall = detection_overlay(_grey(300, 700), [], [], size=512)
    assert tall.size == (round(300 * 512 / 700), 512)


def test_boxes_at_scaled_positions_and_only_the_top_k_above_min_score():
    size, scale = 1024, 1024 / W
    boxes = torch.tensor(
        [
            [100.0, 300.0, 500.0, 700.0],  # 0.2: fifth, drawn only without top_k
            [1200.0, 300.0, 1700.0, 800.0],  # 0.9: best
            [100.0, 1100.0, 500.0, 1600.0],  # 0.6
            [1200.0, 1100.0, 1700.0, 1600.0],  # 0.4
            [700.0, 900.0, 1000.0, 1100.0],  # 0.3: fourth, below top_k=3
        ]
    )
    scores = torch.tensor([0.2, 0.9, 0.6, 0.4, 0.3])
    picture = detection_overlay(_grey(), boxes, scores, size=size, top_k=3)
    marked = _marked(picture)
    width = round(size / 256)

    def outlined(box) -> bool:
        """The box's left edge is a vertical line ``width`` pixels wide at its scaled position (within a pixel of
        rounding) along the box's middle third."""
        x0, y0, _, y1 = np.asarray(box) * scale
        middle = marked[int(y0 + (y1 - y0) / 3) : int(y1 - (y1 - y0) / 3)]
        edge = np.nonzero(middle.all(axis=0))[0]
        near = edge[np.abs(edge - x0) <= width + 1]
        return len(near) == width and abs(near.min() - x0) <= 1

    assert [outlined(b) for b in boxes] == [False, True, True, True, False]
    # the box reaches its scaled right and bottom edges (StandardMode's end exclusive)
    x1, y1 = round(1700 * scale) - 1, round(800 * scale) - 1
    assert marked[y1, x1] and not marked[y1 + 1, x1 + 1]

    marked = _marked(detection_overlay(_grey(), boxes, scores, size=size, top_k=None, min_score=0.25))
    assert [outlined(b) for b in boxes] == [False, True, True, True, True]  # 0.2 < min_score


def test_scores_written_beside_each_box():
    box = [[800.0, 600.0, 1300.0, 1200.0]]
    a = np.asarray(detection_overlay(_grey(), box, [0.87], size=1024))
    b = np.asarray(detection_overlay(_grey(), box, [0.12], size=1024))
    differ = np.nonzero((a != b).any(axis=-1))
    # the two scores differ only in the label, just above the box's scaled top-left corner
    x0, y0 = 800 * 1024 / W, 600 * 1024 / W
    assert differ[0].size > 0
    assert y0 - 1024 / 40 * 1.6 <= differ[0].min() and differ[0].max() < y0
    assert x0 <= differ[1].min() and differ[1].max() < x0 + 1024 / 40 * 3
    # a box at the top edge keeps its label inside the picture, below the edge
    top = np.asarray(detection_overlay(_grey(), [[800.0, 0.0, 1300.0, 500.0]], [0.5], size=1024))
    assert (top[2 : 1024 // 40, round(x0) + 3] == OVERLAY_COLOUR).all(axis=-1).any()


def test_attribute_caption_below_the_radiograph():
    plain = detection_overlay(_grey(), [], [], size=512)
    captioned = detection_overlay(_grey(), [], [], size=512, attributes={"consolidation": 0.93, "left": 0.61})
    none = detection_overlay(_grey(), [], [], size=512, attributes={})
    assert captioned.width == plain.width and captioned.height > plain.height
    assert np.array_equal(np.asarray(captioned)[: plain.height], np.asarray(plain))  # the radiograph untouched
    strip = np.asarray(captioned.convert("L"))[plain.height :]
    assert (strip < 128).any() and not np.array_equal(np.asarray(captioned), np.asarray(none))
    with pytest.raises(ValueError, match="one score per box"):
        detection_overlay(_grey(), [[0, 0, 1, 1]], [0.5, 0.4])


def test_writer_draws_the_original_dicom_at_overlay_size(tmp_path):
    """The bundle's path end to end: a 1955 x 1841 DICOM, the network's 128 px input, boxes back in original
    pixels; the overlay is read from the DICOM, 768 px on its long side, with the top box only and its score."""
    from monai_xattn.data.dicom_writer import write_cxr_dicom
    from monai_xattn.engines import DetectionWriter
    from monai_xattn.transforms.box import detection_eval_transforms

    pixels = (np.arange(H)[:, None] * 7 + np.arange(W)[None, :] * 3) % 4096  # (rows, cols)
    path = tmp_path / "cr.dcm"
    write_cxr_dicom(path, pixels.astype(np.uint16), bits_stored=12)
    sample = detection_eval_transforms(size=128)({"image": str(path), "image_id": "cr"})
    assert sample["image"].shape == (1, 128, 128)
    pred = {
        "boxes": torch.tensor([[64.0, 32.0, 96.0, 64.0], [0.0, 0.0, 16.0, 16.0]]),
        "labels_scores": torch.tensor([0.8, 0.5]),
        "labels": torch.tensor([0, 0]),
        "attribute_probs": torch.tensor([0.9, 0.2, 0.7]),
        "attribute_pred": torch.tensor([True, False, True]),
    }
    engine = Engine(lambda e, batch: {"image": [sample["image"]], "pred": [pred]})
    writer = DetectionWriter(
        tmp_path / "out", overlays=True, overlay_size=768, overlay_top_k=1, attribute_names=["a", "b", "c"]
    )
    writer.attach(engine)
    engine.run([[sample]], max_epochs=1)
    record = json.loads((tmp_path / "out" / "cr.json").read_text())
    assert len(record["boxes"]) == 2 and record["attributes"] == {"a": 0.9, "c": 0.7}  # the file keeps both boxes
    picture = Image.open(tmp_path / "out" / "cr.png")
    scale = 768 / W
    assert picture.width == 768 and picture.height > round(H * scale)  # the caption strip below
    marked = _marked(picture)
    x0, y0 = (np.asarray(record["boxes"][0][:2]) * scale).round().astype(int)
    assert marked[y0 + 5 : y0 + 20, x0].all()  # the top box, at its original position scaled
    assert not marked[20:40, 0].any()  # the second box, beyond top_k, is not drawn


def test_writer_falls_back_to_the_network_input_at_the_original_aspect(tmp_path, caplog):
    """No file to read again (an in-memory image): the network input, its keep_aspect padding cut off, drawn at
    the original's aspect ratio; the warning names the image once."""
    from monai_xattn.engines import DetectionWriter

    # a (W, H) = (200, 100) original resized with keep_aspect to (64, 32) and padded to (64, 64)
    network_input = torch.zeros(1, 64, 64)
    network_input[:, :, :32] = torch.linspace(0, 1, 64)[:, None]
    image = MetaTensor(
        network_input,
        meta={"box_scale": torch.tensor([0.32, 0.32]), "original_size": [200, 100], "filename_or_obj": "gone.png"},
    )
    pred = {
        "boxes": torch.tensor([[16.0, 8.0, 32.0, 24.0]]),
        "labels_scores": torch.tensor([0.9]),
        "labels": torch.tensor([0]),
    }
    engine = Engine(lambda e, batch: {"image": [image, image], "pred": [pred, pred]})
    DetectionWriter(tmp_path, overlays=True, overlay_size=400).attach(engine)
    with caplog.at_level("DEBUG", logger="monai_xattn.engines.detection"):
        engine.run([[{"image_id": "a"}, {"image_id": "b"}]], max_epochs=1)
    assert [r.levelname for r in caplog.records if "gone.png" in r.getMessage()] == ["WARNING", "DEBUG"]
    picture = Image.open(tmp_path / "a.png")
    assert picture.size == (400, 200)  # not the padded square
    marked = _marked(picture)
    # the box [50, 25, 100, 75] in original pixels, at 2 picture pixels per original pixel
    assert marked[60:140, 100].all() and marked[60:140, 199].all() and not marked[60:140, 98].any()
