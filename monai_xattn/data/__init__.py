"""monai_xattn.data: dataset adapters that turn dataset folders into MONAI datalists (``docs/datasets.md``).

Names are imported on first use: the adapters need pandas, and ``monai-xattn --help`` imports this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = [
    "AdapterReport",
    "DatalistError",
    "load_datalist",
    "datalist_split",
    "validate_datalist",
    "write_datalist",
    "prepare_datalist",
    "build_mimic_cxr_datalist",
    "build_mimic_cxr_jpg_datalist",
    "attach_phantom_boxes",
    "build_chestxray8_datalist",
    "build_rsna_datalist",
    "build_siim_datalist",
    "rle_decode",
    "rle_encode",
    "build_chexpert_datalist",
    "build_chexpert_5x200_datalist",
    "build_5x200",
    "build_covid_datalist",
    "build_ms_cxr_datalist",
]

if TYPE_CHECKING:
    from monai_xattn.data.chestxray8 import build_chestxray8_datalist
    from monai_xattn.data.chexpert import build_5x200, build_chexpert_5x200_datalist, build_chexpert_datalist
    from monai_xattn.data.covid import build_covid_datalist
    from monai_xattn.data.datalist import (
        AdapterReport,
        DatalistError,
        datalist_split,
        load_datalist,
        validate_datalist,
        write_datalist,
    )
    from monai_xattn.data.mimic_cxr import attach_phantom_boxes, build_mimic_cxr_datalist, build_mimic_cxr_jpg_datalist
    from monai_xattn.data.ms_cxr import build_ms_cxr_datalist
    from monai_xattn.data.prepare import prepare_datalist
    from monai_xattn.data.rsna import build_rsna_datalist
    from monai_xattn.data.siim import build_siim_datalist, rle_decode, rle_encode

_LAZY = {
    "AdapterReport": "datalist",
    "DatalistError": "datalist",
    "load_datalist": "datalist",
    "datalist_split": "datalist",
    "validate_datalist": "datalist",
    "write_datalist": "datalist",
    "prepare_datalist": "prepare",
    "build_mimic_cxr_datalist": "mimic_cxr",
    "build_mimic_cxr_jpg_datalist": "mimic_cxr",
    "attach_phantom_boxes": "mimic_cxr",
    "build_chestxray8_datalist": "chestxray8",
    "build_rsna_datalist": "rsna",
    "build_siim_datalist": "siim",
    "rle_decode": "siim",
    "rle_encode": "siim",
    "build_chexpert_datalist": "chexpert",
    "build_chexpert_5x200_datalist": "chexpert",
    "build_5x200": "chexpert",
    "build_covid_datalist": "covid",
    "build_ms_cxr_datalist": "ms_cxr",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"monai_xattn.data.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
