"""Cross-attention training with MONAI's SupervisedTrainer on phantom MIMIC-CXR reports; data helpers."""

from __future__ import annotations

import json

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.data.utils import no_collation
from monai.engines import SupervisedEvaluator, SupervisedTrainer

from monai_xattn.data import build_mimic_cxr_datalist, load_datalist, write_datalist
from monai_xattn.data.phantom import generate
from monai_xattn.engines.detection import DetectionPrepareBatch
from monai_xattn.engines.xattn import (
    XAttnPrepareBatch,
    XAttnTrainLoss,
    attach_phantom_boxes,
    train_attribute_word2vec,
    xattn_transforms,
)
from monai_xattn.metrics import LocalizationAccuracy
from monai_xattn.networks.localizer import create_xattn_localizer
from monai_xattn.networks.roi_detector import create_roi_detector
from monai_xattn.text.attributes import load_vocabulary

SIZE = 64


@pytest.fixture(scope="module")
def mimic(tmp_path_factory):
    root = tmp_path_factory.mktemp("mimic")
    generate(root, layout="mimic-cxr", n=12, size=SIZE, seed=0, difficulty="easy", workers=1)
    datalist, _ = build_mimic_cxr_datalist(root, views=("PA", "AP"))
    splits = load_datalist(write_datalist(datalist, root.parent / "mimic_datalist.json"), root)
    return root, splits


def test_attach_phantom_boxes_reads_the_sidecars(mimic):
    root, splits = mimic
    entries = splits["training"] + splits["test"]
    with_boxes = attach_phantom_boxes(entries, root)
    assert all("boxes" not in e for e in entries)  # inputs untouched
    n_checked = 0
    for e in with_boxes:
        record = json.loads((root / "ground_truth" / f"{e['image_id']}.json").read_text())
        want = [f["box"] for f in record["findings"] if f["type"] == "pneumonia" and f["box"]]
        assert e["boxes"] == want and e["box_labels"] == ["Pneumonia"] * len(want)
        n_checked += bool(want)
    assert n_checked > 0


def test_transforms_prepare_batch_and_a_training_step(mimic):
    root, splits = mimic
    kv = train_attribute_word2vec(splits["training"], vector_size=16, epochs=2)
    vocabulary = load_vocabulary()
    data = Dataset(splits["training"][:4], xattn_transforms(SIZE, kv))
    item = data[0]
    assert item["image"].shape == (1, SIZE, SIZE)
    assert item["attribute_vectors"].shape == (len(vocabulary), 16) and item["attribute_mask"].dtype == torch.bool
    assert int(item["attribute_mask"].sum()) == int((item["attributes"] == 1).sum())
    batch = [data[i] for i in range(4)]
    images, targets, args, kwargs = XAttnPrepareBatch()(batch)
    assert len(images) == 4 and args == ()
    assert kwargs["words"].shape == kwargs["negative_words"].shape == (4, len(vocabulary), 16)
    assert targets["attributes"].shape == (4, len(vocabulary))

    torch.manual_seed(0)
    det = create_roi_detector(depth=18, returned_layers=(1, 2), base_anchor_shapes=((8, 8),), n_rois=6)
    loc = create_xattn_localizer(det, len(vocabulary), word_dim=16)
    before = {k: v.clone() for k, v in loc.state_dict().items()}
    loss = XAttnTrainLoss()
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=DataLoader(data, batch_size=2, collate_fn=no_collation),
        network=loc,
        optimizer=torch.optim.Adam(loc.head.parameters(), lr=1e-2),
        loss_function=loss,
        prepare_batch=XAttnPrepareBatch(),
        decollate=False,
    )
    trainer.run()
    assert set(loss.last) == {"loss", "triplet_roi", "triplet_text", "bce"} and loss.last["bce"] > 0
    assert all(torch.isfinite(torch.tensor(v)) for v in loss.last.values())
    after = loc.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("detector."))  # frozen
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))

    # evaluation: images only, MONAI's evaluator + the detector's metric handler
    test = attach_phantom_boxes(splits["test"] + splits["validation"], root)
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader(Dataset(test, xattn_transforms(SIZE, attributes=False)), 2, collate_fn=no_collation),
        network=loc,
        prepare_batch=DetectionPrepareBatch(label_key="box_labels"),
        decollate=False,
        key_val_metric={"acc": LocalizationAccuracy(threshold=0.25)},
    )
    evaluator.run()
    assert 0.0 <= evaluator.state.metrics["acc"] <= 1.0


def test_loss_masks_uncertain_attributes():
    loss = XAttnTrainLoss()
    pred = {
        "s_roi": torch.tensor([0.5]),
        "s_roi_negative": torch.tensor([0.1]),
        "s_text": torch.tensor([0.5]),
        "s_text_negative": torch.tensor([0.1]),
        "has_words": torch.tensor([True]),
        "attribute_logits": torch.tensor([[3.0, -3.0, 50.0]]),
    }
    known = loss(pred, {"attributes": torch.tensor([[1.0, 0.0, -1.0]])})
    wrong = loss(pred, {"attributes": torch.tensor([[1.0, 0.0, 0.0]])})
    assert torch.isfinite(known) and known < 0.1 < wrong  # the -1 entry adds nothing; a wrong 0 target does
    with pytest.raises(ValueError, match="words"):
        loss([{"boxes": torch.zeros(0, 4)}], {"attributes": torch.zeros(1, 3)})


def test_prepare_batch_names_the_sample_without_report_inputs():
    with pytest.raises(KeyError, match="img7"):
        XAttnPrepareBatch()([{"image": torch.zeros(1, 8, 8), "image_id": "img7"}])
    with pytest.raises(ValueError, match="no_collation"):
        XAttnPrepareBatch()({"image": torch.zeros(1, 1, 8, 8)})


def test_word2vec_needs_reports():
    with pytest.raises(ValueError, match="report"):
        train_attribute_word2vec([{"image": "x.dcm"}])


def _study(pneumonia, text):
    return {"image": f"{len(text)}.dcm", "labels": {"Pneumonia": pneumonia}, "report_text": text}


def test_paper_training_rule_keeps_pneumonia_studies_with_a_pneumonia_attribute(tmp_path):
    from monai_xattn.engines.xattn import select_training_studies

    entries = [
        _study(1, "FINDINGS: Right lower lobe pneumonia."),  # kept
        _study(
            1, "FINDINGS: Pneumonia. Small left pleural effusion."
        ),  # pneumonia, but its only attribute is elsewhere
        _study(0, "FINDINGS: Right lower lobe consolidation."),  # attributes, but not labelled pneumonia
        _study(-1, "FINDINGS: Possible left upper lobe pneumonia."),  # uncertain label
        {"image": "x.dcm", "labels": {"Pneumonia": 1}},  # no report
    ]
    counts_file = tmp_path / "out" / "training_studies.json"
    kept = select_training_studies(entries, report_file=counts_file)
    assert [e["report_text"] for e in kept] == [entries[0]["report_text"]]
    counts = json.loads(counts_file.read_text())
    assert counts["kept"] == 1 and counts["studies"] == 5
    assert counts["dropped"] == {
        "no report": 1,
        "Pneumonia not in [1]": 2,
        "no attribute in the pneumonia sentences": 1,
    }
    # the whole report gives the second study `left` (from the effusion); uncertain labels can be let in
    assert len(select_training_studies(entries, scope="report")) == 2
    assert len(select_training_studies(entries, positive_values=(1, -1))) == 2
    # "all": every study with a report, the round-1 selection
    assert len(select_training_studies(entries, rule="all")) == 4
    with pytest.raises(ValueError, match="rule must be one of"):
        select_training_studies(entries, rule="some")
    with pytest.raises(ValueError, match="no training study left"):
        select_training_studies(entries[2:4])
