"""monai_xattn.data: dataset adapters that turn dataset folders into MONAI datalists (``docs/datasets.md``)."""

from monai_xattn.data.chestxray8 import build_chestxray8_datalist
from monai_xattn.data.chexpert import build_5x200, build_chexpert_5x200_datalist, build_chexpert_datalist
from monai_xattn.data.covid import build_covid_datalist
from monai_xattn.data.datalist import (
    AdapterReport,
    DatalistError,
    load_datalist,
    validate_datalist,
    write_datalist,
)
from monai_xattn.data.mimic_cxr import build_mimic_cxr_datalist, build_mimic_cxr_jpg_datalist
from monai_xattn.data.ms_cxr import build_ms_cxr_datalist
from monai_xattn.data.rsna import build_rsna_datalist
from monai_xattn.data.siim import build_siim_datalist, rle_decode, rle_encode

__all__ = [
    "AdapterReport",
    "DatalistError",
    "load_datalist",
    "validate_datalist",
    "write_datalist",
    "build_mimic_cxr_datalist",
    "build_mimic_cxr_jpg_datalist",
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
