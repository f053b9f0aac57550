"""Published numbers the demo report prints beside ours (theirs on real data, ours on the phantom).

Sources: ``shared/REFERENCE.md`` §7, from the papers' tables. The localization paper's Table 1 lives with the code
that measures it (:data:`monai_xattn.table1.PAPER_TABLE1`); GLoRIA's are here.
"""

from __future__ import annotations

from monai_xattn.table1 import PAPER_ATTRIBUTES, PAPER_TABLE1

__all__ = [
    "PAPER_TABLE1",
    "PAPER_ATTRIBUTES",
    "GLORIA_RETRIEVAL",
    "GLORIA_ZERO_SHOT",
    "GLORIA_LINEAR_PROBE",
    "GLORIA_SIIM_DICE",
    "GLORIA_FRACTIONS",
]

#: GLoRIA Table 1: CheXpert 5x200 image -> text Precision@5/10/100 (%), by similarity
GLORIA_RETRIEVAL = {"global": (67.02, 64.68, 49.55), "local": (68.22, 64.58, 48.17), "both": (69.24, 67.22, 53.78)}
#: GLoRIA Table 2: zero-shot classification, CheXpert 5x200 (accuracy, F1)
GLORIA_ZERO_SHOT = {"accuracy": 0.61, "f1": 0.67}
GLORIA_FRACTIONS = (0.01, 0.1, 1.0)
#: GLoRIA Table 3: CheXpert linear probe mean AUROC (%) at 1 / 10 / 100 % of the training data
GLORIA_LINEAR_PROBE = {"Random": (56.1, 62.6, 65.7), "GLoRIA": (86.6, 87.8, 88.1)}
#: GLoRIA Table 4: SIIM pneumothorax segmentation Dice at 1 / 10 / 100 % of the training data
GLORIA_SIIM_DICE = {"random": (0.090, 0.286, 0.543), "gloria": (0.358, 0.469, 0.634)}
