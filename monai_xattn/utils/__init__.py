"""monai_xattn.utils: small helpers shared by several layers (bottom layer: imports nothing else of the package).

Names are imported on first use: the dataset adapters use :mod:`~monai_xattn.utils.boxes` and
:mod:`~monai_xattn.utils.rle` (numpy only) and must not pay for the torch import of the checkpoint reader.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "STAND_IN_MODULES",
    "Checkpoint",
    "CheckpointError",
    "load_checkpoint_file",
    "read_state_dict",
    "check_boxes",
    "xywh_to_xyxy",
    "RLE_MODES",
    "detect_rle_mode",
    "rle_decode",
    "rle_decode_wh",
    "rle_encode",
    "rle_encode_wh",
    "ensure_outside",
    "draw_box_outlines",
    "to_display",
]

if TYPE_CHECKING:
    from monai_xattn.utils.boxes import check_boxes, xywh_to_xyxy
    from monai_xattn.utils.checkpoints import (
        STAND_IN_MODULES,
        Checkpoint,
        CheckpointError,
        load_checkpoint_file,
        read_state_dict,
    )
    from monai_xattn.utils.display import draw_box_outlines, to_display
    from monai_xattn.utils.paths import ensure_outside
    from monai_xattn.utils.rle import (
        RLE_MODES,
        detect_rle_mode,
        rle_decode,
        rle_decode_wh,
        rle_encode,
        rle_encode_wh,
    )

_LAZY = {
    "STAND_IN_MODULES": "checkpoints",
    "Checkpoint": "checkpoints",
    "CheckpointError": "checkpoints",
    "load_checkpoint_file": "checkpoints",
    "read_state_dict": "checkpoints",
    "check_boxes": "boxes",
    "xywh_to_xyxy": "boxes",
    "RLE_MODES": "rle",
    "detect_rle_mode": "rle",
    "rle_decode": "rle",
    "rle_decode_wh": "rle",
    "rle_encode": "rle",
    "rle_encode_wh": "rle",
    "ensure_outside": "paths",
    "draw_box_outlines": "display",
    "to_display": "display",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"monai_xattn.utils.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
