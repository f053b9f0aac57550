"""MONAI transforms for chest X-rays and their reports (array ``Transform`` + dictionary ``MapTransform`` pairs)."""

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
from monai_xattn.transforms.io import CXRLoadError, CXRMetadataWarning, LoadCXR, LoadCXRD, LoadCXRd, LoadCXRDict
from monai_xattn.transforms.mask import RLEToMask, RLEToMaskD, RLEToMaskd, RLEToMaskDict
from monai_xattn.transforms.text import (
    ExtractAttributes,
    ExtractAttributesd,
    LoadReport,
    LoadReportd,
    RandSentence,
    RandSentenced,
    ReportSentences,
    ReportSentencesd,
    Tokenize,
    Tokenized,
    Word2Vec,
    Word2Vecd,
)

__all__ = [
    # io
    "CXRLoadError",
    "CXRMetadataWarning",
    "LoadCXR",
    "LoadCXRd",
    "LoadCXRD",
    "LoadCXRDict",
    # box
    "BoxLabelsToIndex",
    "BoxLabelsToIndexd",
    "ResizeBox",
    "ResizeBoxd",
    "boxes_to_original",
    "detection_eval_transforms",
    "detection_train_transforms",
    "validate_boxes",
    "xywh_to_xyxy",
    # text
    "ExtractAttributes",
    "ExtractAttributesd",
    "LoadReport",
    "LoadReportd",
    "RandSentence",
    "RandSentenced",
    "ReportSentences",
    "ReportSentencesd",
    "Tokenize",
    "Tokenized",
    "Word2Vec",
    "Word2Vecd",
    "RLEToMask",
    "RLEToMaskd",
    "RLEToMaskD",
    "RLEToMaskDict",
]
