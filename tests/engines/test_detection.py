"""Detection with MONAI's stock SupervisedTrainer / SupervisedEvaluator, and a short learning run."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from ignite.engine import Engine
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.handlers import StatsHandler, ValidationHandler

from monai_xattn.engines import DetectionLoss, DetectionPrepareBatch, loss_output
from monai_xattn.metrics import LocalizationAccuracy, localization_accuracy
from monai_xattn.networks import create_roi_detector


def blobs(n: int, size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Noisy images, each with one bright ellipse whose bounding box is the target (MONAI (W, H) frame)."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.arange(size, dtype=torch.float32) + 0.5
    items = []
    for _ in range(n):
        w, h = torch.randint(size // 6, size // 3, (2,), generator=g).tolist()
        x0 = torch.randint(2, size - w - 2, (1,), generator=g).item()
        y0 = torch.randint(2, size - h - 2, (1,), generator=g).item()
        inside = ((axis[:, None] - x0 - w / 2) / (w / 2)) ** 2 + ((axis[None, :] - y0 - h / 2) / (h / 2)) ** 2 <= 1
        image = 0.3 + 0.1 * torch.randn(1, size, size, generator=g) + 0.4 * inside.float()
        box = torch.tensor([[x0, y0, x0 + w, y0 + h]], dtype=torch.float32)
        items.append({"image": image, "boxes": box, "labels": torch.zeros(1, dtype=torch.long)})
    return items


def _detector(size: int):
    torch.manual_seed(0)
    s = size // 8  # anchors from 1/8 of the image at the finest level up to 1/2
    return create_roi_detector(
        depth=18,
        returned_layers=(1, 2),
        base_anchor_shapes=((s, s), (s * 3 // 2, s * 3 // 4), (s * 3 // 4, s * 3 // 2)),
        n_rois=4,
        hns_batch_size_per_image=32,
        score_thresh=0.0,  # IoU@t scores the top box whatever its score
    )


def _engines(det, train, val, epochs, lr=1e-3):
    batches = lambda items: [items[i : i + 4] for i in range(0, len(items), 4)]  # noqa: E731 (lists of dicts)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=batches(val),
        network=det,
        prepare_batch=DetectionPrepareBatch(),
        decollate=False,
        key_val_metric={"acc_0.25": LocalizationAccuracy(threshold=0.25)},
    )
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=epochs,
        train_data_loader=batches(train),
        network=det,
        optimizer=torch.optim.Adam(det.network.parameters(), lr=lr),
        loss_function=DetectionLoss(),
        prepare_batch=DetectionPrepareBatch(),
        decollate=False,
    )
    ValidationHandler(interval=1, validator=evaluator).attach(trainer)
    return trainer, evaluator


def test_prepare_batch_and_loss():
    items = blobs(2, 32, seed=0)
    images, targets, args, kwargs = DetectionPrepareBatch()(items)
    assert len(images) == 2 and args == (targets,) and kwargs == {}
    assert targets[0]["boxes"].shape == (1, 4) and targets[0]["labels"].dtype == torch.long
    with pytest.raises(KeyError, match="boxes"):
        DetectionPrepareBatch()([{"image": items[0]["image"], "labels": items[0]["labels"], "image_id": "p1"}])
    with pytest.raises(ValueError, match="no_collation"):
        DetectionPrepareBatch()({"image": torch.zeros(2, 1, 8, 8)})
    loss = DetectionLoss({"classification": 2.0, "box_regression": 0.5})
    assert loss({"classification": torch.tensor(1.0), "box_regression": torch.tensor(4.0)}).item() == 4.0
    with pytest.raises(ValueError, match="training mode"):
        loss([{"boxes": torch.zeros(0, 4)}])


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_trainer_and_evaluator_run():
    det = _detector(64)
    trainer, evaluator = _engines(det, blobs(4, 64, seed=0), blobs(2, 64, seed=1), epochs=1)
    StatsHandler(name="det_train", iteration_log=True, output_transform=loss_output).attach(trainer)
    logger, records = logging.getLogger("det_train"), _Records()
    logger.setLevel(logging.INFO)
    logger.addHandler(records)
    try:
        trainer.run()
    finally:
        logger.removeHandler(records)
    assert torch.isfinite(trainer.state.output["loss"])
    # the loss reaches the log (with from_engine(["loss"], first=True) StatsHandler would drop it silently)
    assert any("Loss:" in m for m in records.messages), records.messages
    acc = evaluator.state.metrics["acc_0.25"]
    assert 0.0 <= acc <= 1.0


@pytest.mark.slow
def test_detector_learns_blobs():
    """A few epochs on easy synthetic images beat a centre box and a random box computed on the same test set."""
    size = 64
    train, test = blobs(32, size, seed=0), blobs(24, size, seed=1)
    det = _detector(size)
    trainer, _ = _engines(det, train, test[:4], epochs=6)
    trainer.run()

    det.eval()
    with torch.no_grad():
        dets = det([t["image"] for t in test])
    gts = [t["boxes"] for t in test]
    acc = localization_accuracy([d["boxes"] for d in dets], [d["labels_scores"] for d in dets], gts)[0.25]

    train_boxes = torch.cat([t["boxes"] for t in train])
    wh = (train_boxes[:, 2:] - train_boxes[:, :2]).mean(0)
    centre = torch.cat([size / 2 - wh / 2, size / 2 + wh / 2])[None]
    base_centre = localization_accuracy([centre] * len(test), [[1.0]] * len(test), gts)[0.25]
    g = torch.Generator().manual_seed(2)
    corners = torch.rand(len(test), 2, generator=g) * (size - wh)
    random_boxes = [torch.cat([c, c + wh])[None] for c in corners]
    base_random = localization_accuracy(random_boxes, [[1.0]] * len(test), gts)[0.25]
    assert acc >= max(base_centre, base_random) + 0.3, (acc, base_centre, base_random)


def test_detection_writer_maps_boxes_back(tmp_path):
    from monai.data import MetaTensor

    from monai_xattn.engines import DetectionWriter

    # an image resized from (W, H) = (200, 100) to (64, 64): boxes scale back by (200 / 64, 100 / 64)
    image = MetaTensor(
        torch.rand(1, 64, 64),
        meta={
            "box_scale": torch.tensor([64 / 200, 64 / 100]),
            "original_size": [200, 100],
            "filename_or_obj": "a/p1.png",
        },
    )
    pred = {
        "boxes": torch.tensor([[32.0, 16.0, 64.0, 32.0], [0.0, 0.0, 8.0, 8.0]]),
        "labels_scores": torch.tensor([0.9, 0.01]),
        "labels": torch.tensor([0, 0]),
    }
    engine = Engine(lambda e, batch: {"image": [image], "pred": [pred]})
    DetectionWriter(tmp_path, overlays=True, score_thresh=0.05).attach(engine)
    engine.run([[{"image_id": "p1.png"}]], max_epochs=1)
    record = json.loads((tmp_path / "p1.json").read_text())
    assert record["frame"] == "original" and record["scores"] == pytest.approx([0.9])
    torch.testing.assert_close(torch.tensor(record["boxes"]), torch.tensor([[100.0, 25.0, 200.0, 50.0]]))
    assert json.loads((tmp_path / "predictions.json").read_text()) == [record]
    assert (tmp_path / "p1.png").is_file()


def test_prepare_batch_without_targets_for_inference():
    item = blobs(1, 32, seed=0)[0]
    images, targets, _, _ = DetectionPrepareBatch(require_targets=False)([{"image": item["image"]}])
    assert targets[0]["boxes"].shape == (0, 4) and targets[0]["labels"].shape == (0,)
