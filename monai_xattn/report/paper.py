"""Published numbers the demo report prints beside ours (theirs on real data, ours on the phantom).

Sources: ``shared/REFERENCE.md`` §7, from the papers' tables: the one place for published numbers (the
``table1`` command and the demo report both read them here).
"""

from __future__ import annotations

__all__ = [
    "PAPER_TABLE1",
    "PAPER_ATTRIBUTES",
    "GLORIA_RETRIEVAL",
    "GLORIA_ZERO_SHOT",
    "GLORIA_LINEAR_PROBE",
    "GLORIA_SIIM_DICE",
    "GLORIA_FRACTIONS",
    "MGCA_RSNA_DETECTION",
]

#: Bhalodia et al. Table 1: localization accuracy IoU@0.25 / 0.5 / 0.75 per method and test set
PAPER_TABLE1: dict[str, dict[str, tuple[float, float, float] | None]] = {
    "CAM": {"mimic-cxr": (0.521, 0.212, 0.015), "chestxray8": None},
    "GradCAM": {"mimic-cxr": (0.545, 0.178, 0.029), "chestxray8": None},
    "RetinaNet": {"mimic-cxr": (0.493, 0.369, 0.071), "chestxray8": (0.492, 0.430, 0.115)},
    "Proposed w/o classification": {"mimic-cxr": (0.510, 0.408, 0.097), "chestxray8": (0.484, 0.422, 0.099)},
    "Proposed": {"mimic-cxr": (0.529, 0.428, 0.123), "chestxray8": (0.507, 0.439, 0.114)},
}
#: Bhalodia et al.: attribute classification on MIMIC-CXR test (accuracy at 0.5, macro AUC)
PAPER_ATTRIBUTES = {"accuracy": 0.956, "auc": 0.84}
#: GLoRIA Table 1: CheXpert 5x200 image -> text Precision@5/10/100 (%), by similarity
GLORIA_RETRIEVAL = {"global": (67.02, 64.68, 49.55), "local": (68.22, 64.58, 48.17), "both": (69.24, 67.22, 53.78)}
#: GLoRIA Table 2: zero-shot classification, CheXpert 5x200 (accuracy, F1)
GLORIA_ZERO_SHOT = {"accuracy": 0.61, "f1": 0.67}
GLORIA_FRACTIONS = (0.01, 0.1, 1.0)
#: GLoRIA Table 3: CheXpert linear probe mean AUROC (%) at 1 / 10 / 100 % of the training data
GLORIA_LINEAR_PROBE = {"Random": (56.1, 62.6, 65.7), "GLoRIA": (86.6, 87.8, 88.1)}
#: GLoRIA Table 4: SIIM pneumothorax segmentation Dice at 1 / 10 / 100 % of the training data
GLORIA_SIIM_DICE = {"random": (0.090, 0.286, 0.543), "gloria": (0.358, 0.469, 0.634)}
#: MGCA (Wang et al., NeurIPS 2022) Table 3: RSNA pneumonia detection mAP (%) at 1 / 10 / 100 % of the training
#: data, GLoRIA pretrained on MIMIC-CXR. Another protocol than ours: a YOLOv3 head on the frozen ResNet-50, 224 px,
#: real RSNA, mAP over IoU 0.4:0.75 (torchmetrics) on the test images with boxes; not comparable in value
MGCA_RSNA_DETECTION = {
    "fractions": (0.01, 0.1, 1.0),
    "GLoRIA-MIMIC": (11.6, 16.1, 24.8),
    "source": "MGCA, Wang et al. NeurIPS 2022, Table 3",
}
