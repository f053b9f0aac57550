"""monai_xattn.networks."""

from monai_xattn.networks.gloria import (
    GLoRIA,
    GloriaImageEncoder,
    GloriaTextEncoder,
    aggregate_word_pieces,
    gloria_layout,
    load_gloria_image_encoder,
    load_gloria_weights,
    official_gloria_state_dict,
    resolve_text_model,
)
from monai_xattn.networks.gloria_attention import local_similarity
from monai_xattn.networks.gloria_tasks import (
    SIMILARITY_MODES,
    class_scores,
    clean_report,
    encode_images,
    encode_texts,
    global_similarity,
    gloria_similarity,
    official_prompt_words,
    zero_shot_classify,
    zscore_columns,
)
from monai_xattn.networks.resnet_weights import convert_trunk_state, describe_trunk, weights_frame
from monai_xattn.networks.roi_detector import (
    ROI_GEOMETRY_FIELDS,
    RoiDetector,
    create_roi_detector,
    load_backbone_weights,
    load_detector_weights,
    roi_geometry,
)
from monai_xattn.networks.trunk import TRUNK_DEPTHS, resnet_trunk
from monai_xattn.networks.unet import (
    ENCODER_INITS,
    CXRResNetEncoder,
    CXRUNet,
    EncoderLoadResult,
    load_encoder_weights,
    read_encoder_state_dict,
)

__all__ = [
    "GLoRIA",
    "GloriaImageEncoder",
    "GloriaTextEncoder",
    "aggregate_word_pieces",
    "gloria_layout",
    "load_gloria_image_encoder",
    "load_gloria_weights",
    "official_gloria_state_dict",
    "resolve_text_model",
    "local_similarity",
    "SIMILARITY_MODES",
    "class_scores",
    "clean_report",
    "encode_images",
    "encode_texts",
    "global_similarity",
    "gloria_similarity",
    "official_prompt_words",
    "zero_shot_classify",
    "zscore_columns",
    "ROI_GEOMETRY_FIELDS",
    "RoiDetector",
    "create_roi_detector",
    "load_backbone_weights",
    "load_detector_weights",
    "roi_geometry",
    "ENCODER_INITS",
    "CXRResNetEncoder",
    "CXRUNet",
    "EncoderLoadResult",
    "load_encoder_weights",
    "read_encoder_state_dict",
    "convert_trunk_state",
    "describe_trunk",
    "weights_frame",
    "TRUNK_DEPTHS",
    "resnet_trunk",
]
