"""``monai-xattn table1``: Table 1 of Bhalodia et al. (MICCAI 2021) measured on phantom data.

One run, all rows on the same images: CAM, GradCAM, RetinaNet (supervised), Proposed w/o attribute
classification, Proposed; columns IoU@0.25 / 0.5 / 0.75 localization accuracy on the phantom MIMIC-CXR test split
(boxes from the phantom's ground-truth sidecars, standing in for the paper's private MIMIC boxes) and the phantom
ChestX-ray8 test split; plus attribute classification accuracy and macro AUC on the MIMIC test split.

Training, as in the paper: the RetinaNet learns from ChestX-ray8 boxes; the cross-attention head learns from
MIMIC-CXR images + reports on top of the frozen detector; the CAM classifier from MIMIC-CXR image labels
(Pneumonia). Every number is measured in the run; the published ones (real data) are printed beside them.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_xattn.metrics.classification import attribute_metrics
from monai_xattn.report.paper import PAPER_ATTRIBUTES, PAPER_TABLE1

__all__ = ["PAPER_TABLE1", "METHODS", "THRESHOLDS", "run_table1", "format_table1", "add_arguments", "run"]

THRESHOLDS = (0.25, 0.5, 0.75)
METHODS = ("CAM", "GradCAM", "RetinaNet", "Proposed w/o classification", "Proposed")

logger = logging.getLogger(__name__)


def _loader(data: Sequence[dict], transform: Any, batch_size: int, shuffle: bool, collate: bool = False):
    from monai.data import CacheDataset, DataLoader
    from monai.data.utils import no_collation

    dataset = CacheDataset(data, transform, progress=False, num_workers=0)
    kwargs = {} if collate else {"collate_fn": no_collation}
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0, **kwargs)


def _train(network, params, loader, loss_fn, prepare_batch, epochs: int, lr: float, device) -> None:
    import torch
    from monai.engines import SupervisedTrainer

    kwargs = {} if prepare_batch is None else {"prepare_batch": prepare_batch}
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=epochs,
        train_data_loader=loader,
        network=network,
        optimizer=torch.optim.AdamW(params, lr=lr, weight_decay=1e-5),
        loss_function=loss_fn,
        decollate=False,
        **kwargs,
    )
    trainer.run()


def _predict(model, loader, device) -> tuple[list[dict], list[dict]]:
    """Detections of ``model`` (eval mode, images only) and the samples they belong to."""
    import torch

    model.eval()
    preds, samples = [], []
    with torch.no_grad():
        for batch in loader:
            images = torch.stack([torch.as_tensor(item["image"]) for item in batch]).to(device)
            preds += [{k: v.cpu() for k, v in d.items()} for d in model(images)]
            samples += batch
    return preds, samples


def _localization(preds: Sequence[dict], samples: Sequence[dict]) -> dict[str, float]:
    from monai_xattn.metrics.localization import localization_accuracy

    acc = localization_accuracy(
        [p["boxes"] for p in preds],
        [p["labels_scores"] for p in preds],
        [s.get("boxes", []) for s in samples],
        THRESHOLDS,
    )
    return {f"IoU@{t}": v for t, v in acc.items()}


def run_table1(
    out_dir: str | Path,
    n: int = 200,
    size: int = 128,
    difficulty: str = "medium",
    seed: int = 0,
    detector_epochs: int = 8,
    head_epochs: int = 10,
    cam_epochs: int = 8,
    batch_size: int = 8,
    word_dim: int = 64,
    detector_weights: str | Path | None = None,
    device: str | None = None,
    alpha_mode: str = "residual",
    cam_output_stride: int = 8,
    methods: Sequence[str] = METHODS,
    residual_bound: float | None = 0.25,
) -> dict[str, Any]:
    """Generate the phantoms (if absent), train every method, evaluate, write ``table1.json``, ``table1.md`` and
    ``figure2.png`` (Proposed on MIMIC-CXR test images: ground truth green, prediction red).

    Args:
        out_dir: output folder (phantoms under ``data/``; never inside a user's dataset).
        n: phantom studies per dataset.
        size: phantom image size and network input size.
        difficulty: phantom difficulty (``easy``, ``medium``, ``hard``).
        seed: phantom and training seed.
        detector_epochs: RetinaNet epochs on ChestX-ray8 boxes (ignored with ``detector_weights``).
        head_epochs: cross-attention head epochs on MIMIC-CXR reports (each variant).
        cam_epochs: CAM classifier epochs on MIMIC-CXR labels.
        batch_size: batch size of every training.
        word_dim: Word2Vec size (``phi``'s size).
        detector_weights: a detector ``model.pt`` built like the one here (ResNet-18; FPN on layers (1, 2) up to
            96 px, (2, 3) above -- the ``cxr_retinanet`` default at 128 px; anchors ``size // 8``); skips the
            detector training.
        device: torch device (default: CUDA if available).
        alpha_mode: the heads' ROI weighting (:data:`~monai_xattn.networks.xattn.ALPHA_MODES`; ``"residual"``:
            detector logit + a zero-initialised learned term).
        cam_output_stride: stride of the CAM classifier's map (see
            :func:`~monai_xattn.networks.classifier_cam.create_cam_classifier`); 8 gives an 8 x 8 map at 64 px,
            so the CAM rows are not ruled out by their map's resolution alone.
        residual_bound: bound of the residual alpha term (``alpha_mode="residual"``; ``None``: unbounded).
        methods: the rows to train and measure (a subset of :data:`METHODS`; the others print as "—").

    Returns:
        ``{"rows": {method: {dataset: {IoU@t: acc}}}, "attributes": {...}, "settings": {...}, "seconds": ...}``.
    """
    import torch
    from monai.utils import set_determinism

    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}.")
    from monai_xattn.data import build_chestxray8_datalist, build_mimic_cxr_datalist, load_datalist, write_datalist
    from monai_xattn.data.phantom import generate
    from monai_xattn.engines.detection import DetectionLoss, DetectionPrepareBatch
    from monai_xattn.engines.xattn import (
        XAttnPrepareBatch,
        XAttnTrainLoss,
        attach_phantom_boxes,
        train_attribute_word2vec,
        xattn_transforms,
    )
    from monai_xattn.networks.classifier_cam import CAMLocalizer, create_cam_classifier, pneumonia_label_entries
    from monai_xattn.networks.localizer import create_xattn_localizer
    from monai_xattn.networks.roi_detector import create_roi_detector, load_detector_weights
    from monai_xattn.text.attributes import load_vocabulary
    from monai_xattn.transforms.box import detection_eval_transforms, detection_train_transforms

    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    set_determinism(seed=seed)

    roots = {"mimic-cxr": out / "data" / "phantom_mimic-cxr", "chestxray8": out / "data" / "phantom_chestxray8"}
    for layout, root in roots.items():
        if not (root / "phantom.json").is_file():
            generate(root, layout=layout, n=n, size=size, seed=seed, difficulty=difficulty, workers=1)
    splits = {}
    for layout, root in roots.items():
        if layout == "mimic-cxr":
            datalist, _ = build_mimic_cxr_datalist(root, views=("PA", "AP"))
        else:
            datalist, _ = build_chestxray8_datalist(root, box_findings=["Pneumonia"], split_seed=seed)
        path = write_datalist(datalist, out / f"datalist_{layout}.json")
        splits[layout] = load_datalist(path, root)
    mimic, cx8 = splits["mimic-cxr"], splits["chestxray8"]
    mimic_test = attach_phantom_boxes(mimic["test"], roots["mimic-cxr"])

    # RetinaNet: supervised on ChestX-ray8 boxes
    s = size // 8  # anchors from 1/8 of the image, doubling per FPN level
    # smooth-L1 box loss: with GIoU at lr 1e-3 the 64 px phantom runs regressed every box to the whole image;
    # small inputs need the stride-4 level: at 64 px the stride-8/16 maps are 8x8/4x4 and the boxes ~10 px
    layers = (1, 2) if size <= 96 else (2, 3)
    detector = create_roi_detector(
        depth=18,
        returned_layers=layers,
        base_anchor_shapes=((s, s), (s * 3 // 2, s * 3 // 4), (s * 3 // 4, s * 3 // 2)),
        n_rois=16,
        box_loss="smooth_l1",
    ).to(dev)
    if detector_weights is not None:
        load_detector_weights(detector, detector_weights)
    else:
        train_boxes = [e for e in cx8["training"] if e.get("boxes")]
        detector.train()
        _train(
            detector,
            detector.network.parameters(),
            _loader(train_boxes, detection_train_transforms(size=size, flip_prob=0.5), batch_size, True),
            DetectionLoss(),
            DetectionPrepareBatch(label_key="box_labels"),
            detector_epochs,
            1e-3,
            dev,
        )
        torch.save(detector.network.state_dict(), out / "detector.pt")

    # cross-attention head (two variants) on MIMIC-CXR reports, detector frozen
    vocabulary = load_vocabulary()
    kv = train_attribute_word2vec(mimic["training"], vector_size=word_dim, seed=seed, save_path=out / "word2vec.kv")
    head_loader = _loader(mimic["training"], xattn_transforms(size, kv), batch_size, True)
    localizers = {}
    for name, use_bce in (("Proposed w/o classification", False), ("Proposed", True)):
        if name not in methods:
            continue
        torch.manual_seed(seed)
        loc = create_xattn_localizer(
            detector,
            len(vocabulary),
            word_dim=word_dim,
            head_kwargs={"alpha_mode": alpha_mode, "residual_bound": residual_bound},
        ).to(dev)
        loc.train()
        _train(
            loc,
            loc.head.parameters(),
            head_loader,
            XAttnTrainLoss(use_bce=use_bce),
            XAttnPrepareBatch(),
            head_epochs,
            2e-3,
            dev,
        )
        torch.save(loc.head.state_dict(), out / f"head_{'bce' if use_bce else 'nobce'}.pt")
        localizers[name] = loc

    models: dict[str, Any] = {"RetinaNet": _RetinaNetTop(detector), **localizers}
    if {"CAM", "GradCAM"} & set(methods):
        # CAM / GradCAM: an image-level Pneumonia classifier on the same MIMIC-CXR training images
        torch.manual_seed(seed)
        classifier = create_cam_classifier(depth=18, output_stride=cam_output_stride).to(dev)
        cls_data = pneumonia_label_entries(mimic["training"])
        cls_loader = _loader(cls_data, detection_eval_transforms(size=size), batch_size, True, collate=True)
        classifier.train()
        _train(
            classifier, classifier.parameters(), cls_loader, torch.nn.BCEWithLogitsLoss(), None, cam_epochs, 1e-3, dev
        )
        torch.save(classifier.state_dict(), out / "classifier.pt")
        models.update(CAM=CAMLocalizer(classifier, "cam"), GradCAM=CAMLocalizer(classifier, "gradcam"))
    models = {m: models[m] for m in METHODS if m in methods}
    eval_sets = {
        "mimic-cxr": _loader(mimic_test, xattn_transforms(size, attributes=True), batch_size, False),
        "chestxray8": _loader(cx8["test"], detection_eval_transforms(size=size), batch_size, False),
    }
    rows: dict[str, dict[str, dict[str, float]]] = {m: {} for m in models}
    attributes: dict[str, dict[str, float]] = {}
    for method, model in models.items():
        for dataset, loader in eval_sets.items():
            preds, samples = _predict(model, loader, dev)
            rows[method][dataset] = _localization(preds, samples)
            if method == "Proposed" and dataset == "mimic-cxr":
                _figure(preds, samples, vocabulary.names, out / "figure2.png")
            if dataset == "mimic-cxr" and "attribute_probs" in preds[0]:
                attributes[method] = attribute_metrics(
                    torch.stack([p["attribute_probs"] for p in preds]),
                    torch.stack([torch.as_tensor(s["attributes"]) for s in samples]),
                )
    n_eval = {d: sum(1 for s in (mimic_test if d == "mimic-cxr" else cx8["test"]) if s.get("boxes")) for d in eval_sets}
    result = {
        "rows": rows,
        "attributes": attributes,
        "settings": {
            "n": n,
            "size": size,
            "difficulty": difficulty,
            "seed": seed,
            "detector_epochs": detector_epochs,
            "head_epochs": head_epochs,
            "cam_epochs": cam_epochs,
            "batch_size": batch_size,
            "word_dim": word_dim,
            "alpha_mode": alpha_mode,
            "residual_bound": residual_bound,
            "cam_output_stride": cam_output_stride,
            "detector_weights": str(detector_weights) if detector_weights else None,
            "device": str(dev),
            "test_images_with_boxes": n_eval,
        },
        "paper": {"rows": PAPER_TABLE1, "attributes": PAPER_ATTRIBUTES},
        "seconds": time.perf_counter() - start,
    }
    (out / "table1.json").write_text(json.dumps(result, indent=1))
    (out / "table1.md").write_text(format_table1(result))
    return result


def _figure(preds: Sequence[dict], samples: Sequence[dict], names: Sequence[str], path: Path, n: int = 8) -> None:
    """Fig. 2-like panels of the first ``n`` test images with boxes (boxes in the network's input frame)."""
    from monai_xattn.visualize.boxes import LocalizationPanel, localization_figure

    panels = [
        LocalizationPanel(
            image=s["image"],
            gt_boxes=s["boxes"],
            pred_boxes=p["boxes"],
            gt_attributes=[names[i] for i, v in enumerate(s["attributes"].tolist()) if v == 1],
            pred_attributes=[names[i] for i, v in enumerate(p["attribute_pred"].tolist()) if v],
            title=str(s.get("image_id", ""))[:24],
        )
        for p, s in zip(preds, samples, strict=True)
        if len(s.get("boxes", [])) > 0
    ][:n]
    if panels:
        localization_figure(panels, path, columns=4, size=192)


class _RetinaNetTop:
    """The supervised RetinaNet row: MONAI's own detections (``RetinaNetDetector`` in eval mode)."""

    def __init__(self, detector) -> None:
        self.detector = detector

    def eval(self):
        self.detector.eval()
        return self

    def __call__(self, images):
        return self.detector(images)


def _cells(values: Mapping[str, float] | None) -> str:
    return " / ".join(f"{values[f'IoU@{t}']:.3f}" for t in THRESHOLDS) if values else "—"


def format_table1(result: Mapping[str, Any]) -> str:
    """Markdown of a :func:`run_table1` result: measured rows, then the paper's (real data) for reference."""
    s = result["settings"]
    lines = [
        f"# Table 1 on phantom data ({s['difficulty']}, n={s['n']}, {s['size']} px, seed {s['seed']})",
        "",
        f"Localization accuracy IoU@0.25 / 0.5 / 0.75 (top-scored box per image). Test images with boxes: "
        f"MIMIC-CXR {s['test_images_with_boxes']['mimic-cxr']}, ChestX-ray8 {s['test_images_with_boxes']['chestxray8']}. "
        f"Proposed alpha: {s.get('alpha_mode', 'learned')}; CAM map stride {s.get('cam_output_stride', 16)}.",
        "",
        "| method | phantom MIMIC-CXR | phantom ChestX-ray8 | paper, real data: MIMIC-CXR | paper, real data: ChestX-ray8 |",
        "|---|---|---|---|---|",
    ]
    for method in METHODS:
        row = result["rows"].get(method, {})
        paper = PAPER_TABLE1[method]
        cells = [_cells(row.get("mimic-cxr")), _cells(row.get("chestxray8"))]
        cells += [" / ".join(f"{v:.3f}" for v in p) if p else "—" for p in (paper["mimic-cxr"], paper["chestxray8"])]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Attribute classification (phantom MIMIC-CXR test):",
        "",
        "| method | accuracy | AUC |",
        "|---|---|---|",
    ]
    for method, m in result["attributes"].items():
        lines.append(f"| {method} | {m['accuracy']:.3f} | {m['auc']:.3f} |")
    lines.append(
        f"| paper, real data (Proposed) | {PAPER_ATTRIBUTES['accuracy']:.3f} | {PAPER_ATTRIBUTES['auc']:.2f} |"
    )
    lines += ["", f"Run time: {result['seconds']:.0f} s on {s['device']}.", ""]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (phantoms, checkpoints, table1.md/json)")
    parser.add_argument("--n", type=int, default=200, help="phantom studies per dataset")
    parser.add_argument("--size", type=int, default=128, help="image size (phantom and network input)")
    parser.add_argument("--difficulty", default="medium", choices=("easy", "medium", "hard"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector-epochs", type=int, default=8)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--cam-epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--word-dim", type=int, default=64, help="Word2Vec size (300 in the paper)")
    parser.add_argument("--detector-weights", type=Path, default=None, help="skip the RetinaNet training")
    parser.add_argument("--device", default=None)
    parser.add_argument("--alpha-mode", default="residual", help="ROI weighting of the heads (residual, learned, ...)")
    parser.add_argument(
        "--residual-bound", type=float, default=0.25, help="bound of the residual alpha term; <= 0: none"
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS, help="rows to measure")
    parser.add_argument("--cam-output-stride", type=int, default=8, choices=(4, 8, 16), help="CAM map stride")


def run(args: argparse.Namespace) -> int:
    result = run_table1(
        args.out,
        n=args.n,
        size=args.size,
        difficulty=args.difficulty,
        seed=args.seed,
        detector_epochs=args.detector_epochs,
        head_epochs=args.head_epochs,
        cam_epochs=args.cam_epochs,
        batch_size=args.batch_size,
        word_dim=args.word_dim,
        detector_weights=args.detector_weights,
        device=args.device,
        alpha_mode=args.alpha_mode,
        cam_output_stride=args.cam_output_stride,
        methods=args.methods,
        residual_bound=args.residual_bound if args.residual_bound > 0 else None,
    )
    print(format_table1(result))
    return 0
