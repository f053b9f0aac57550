"""Write synthetic chest X-ray DICOM files that exercise every branch of a DICOM loader.

The phantom generator and the loader tests need files with a chosen bit depth, polarity, modality LUT, VOI
(windows, VOI LUT sequence) and transfer syntax, written byte-identically for identical inputs. That last point is
why nothing here reads the clock or a random source: UIDs that are not passed are derived from the pixel data,
the patient id and the file name (``pydicom.uid.generate_uid(entropy_srcs=...)``).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import DSfloat

__all__ = ["SOP_CLASSES", "TRANSFER_SYNTAXES", "write_cxr_dicom"]

#: modality -> SOP class written (CR Image Storage, DX Image Storage - For Presentation, Secondary Capture).
SOP_CLASSES: dict[str, str] = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "OT": "1.2.840.10008.5.1.4.1.1.7",
}

#: ``transfer_syntax`` names accepted by :func:`write_cxr_dicom`.
TRANSFER_SYNTAXES: dict[str, UID] = {
    "explicit_vr_little_endian": ExplicitVRLittleEndian,
    "rle_lossless": RLELossless,
    "jpeg_baseline": JPEGBaseline8Bit,
    "jpeg2000_lossless": JPEG2000Lossless,
}

_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2", "RGB")
_VOI_LUT_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def _ds(value: float) -> DSfloat:
    # auto_format keeps the DS string within its 16-character limit, and formats the same way every time
    return DSfloat(float(value), auto_format=True)


def _check_stored(stored: np.ndarray, photometric: str, bits_stored: int, signed: bool) -> np.ndarray:
    arr = np.asarray(stored)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"stored values must be an integer array, got dtype {arr.dtype}.")
    expected_ndim = 3 if photometric == "RGB" else 2
    if arr.ndim != expected_ndim or (photometric == "RGB" and arr.shape[-1] != 3):
        want = "(rows, cols, 3)" if photometric == "RGB" else "(rows, cols)"
        raise ValueError(f"stored must have shape {want} for {photometric}, got {arr.shape}.")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"stored has zero size: {arr.shape}.")
    if not 1 <= bits_stored <= 16:
        raise ValueError(f"bits_stored must be in [1, 16], got {bits_stored}.")
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
    if arr.min() < lo or arr.max() > hi:
        raise ValueError(
            f"stored values span [{arr.min()}, {arr.max()}], outside the {bits_stored}-bit "
            f"{'signed' if signed else 'unsigned'} range [{lo}, {hi}]."
        )
    return arr


def _voi_lut_item(first_mapped: int, lut_bits: int, lut: np.ndarray) -> Dataset:
    lut = np.asarray(lut)
    if lut.ndim != 1 or lut.size == 0 or lut.size > 65536:
        raise ValueError(f"voi_lut table must be 1-D with 1..65536 entries, got shape {lut.shape}.")
    if not 8 <= lut_bits <= 16 or lut.min() < 0 or lut.max() >= 2**lut_bits:
        raise ValueError(f"voi_lut values must fit in lut_bits={lut_bits} (8..16) unsigned bits.")
    item = Dataset()
    # PS3.3 C.11.1.1: 65536 entries are written as 0; the first mapped value is US here (unsigned input)
    item.LUTDescriptor = [lut.size % 65536, int(first_mapped), int(lut_bits)]
    item.LUTExplanation = "synthetic VOI LUT"
    item.LUTData = lut.astype("<u2").tobytes()
    item["LUTData"].VR = "OW"
    return item


def _encode_jpeg_baseline(arr: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    # fixed quality, no optimisation passes and no EXIF/JFIF timestamps: the same input gives the same bytes
    Image.fromarray(arr.astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_cxr_dicom(
    path: str | PathLike,
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    signed: bool = False,
    rescale: tuple[float, float] | None = None,
    window: tuple[Sequence[float], Sequence[float]] | None = None,
    voi_lut_function: str | None = None,
    voi_lut: tuple[int, int, np.ndarray] | None = None,
    pixel_spacing: tuple[float, float] | None = None,
    imager_pixel_spacing: tuple[float, float] | None = None,
    view_position: str = "PA",
    transfer_syntax: str = "explicit_vr_little_endian",
    modality: str = "CR",
    patient_id: str = "",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    jpeg_quality: int = 95,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write one single-frame chest X-ray DICOM file.

    Args:
        path: output file; its parent folders are created.
        stored: stored pixel values, shape ``(rows, cols)`` (``(rows, cols, 3)`` for ``photometric="RGB"``),
            integer dtype, within the ``bits_stored`` range. Rows are image y, as in any numpy image.
        photometric: ``"MONOCHROME1"`` (high value = dark), ``"MONOCHROME2"`` or ``"RGB"`` (only to produce
            the colour files a greyscale loader must refuse).
        bits_stored: BitsStored; BitsAllocated is 8 when ``bits_stored <= 8`` else 16, HighBit ``bits_stored - 1``.
        signed: write PixelRepresentation 1 (two's complement) instead of 0.
        rescale: ``(RescaleSlope, RescaleIntercept)`` of the modality LUT; ``None`` writes neither tag.
        window: ``(centers, widths)``, each one value per window (several windows give multi-valued tags).
        voi_lut_function: VOILUTFunction, one of ``LINEAR``, ``LINEAR_EXACT``, ``SIGMOID``; ``None`` omits it.
        voi_lut: ``(first_mapped, lut_bits, table)``: a single-item VOI LUT Sequence whose table maps the
            modality-LUT output ``first_mapped + i`` to ``table[i]``.
        pixel_spacing: PixelSpacing ``(row spacing, column spacing)`` in mm.
        imager_pixel_spacing: ImagerPixelSpacing ``(row spacing, column spacing)`` in mm.
        view_position: ViewPosition (``PA``, ``AP``, ``LL``, ...).
        transfer_syntax: ``"explicit_vr_little_endian"``, ``"rle_lossless"`` (pydicom's native RLE encoder),
            ``"jpeg_baseline"`` (Pillow, lossy, 8-bit unsigned only) or ``"jpeg2000_lossless"`` (pylibjpeg-openjpeg,
            at least 32 rows and columns).
        modality: ``"CR"``, ``"DX"`` or ``"OT"`` (secondary capture); picks the SOP class.
        patient_id: PatientID.
        study_uid: StudyInstanceUID; derived deterministically from the patient id when ``None``.
        series_uid: SeriesInstanceUID; derived deterministically from the study UID when ``None``.
        sop_uid: SOPInstanceUID; derived deterministically from the pixels, patient id and file name when
            ``None``.
        jpeg_quality: Pillow quality for ``"jpeg_baseline"``.
        extra: further ``{keyword: value}`` elements set last, overriding anything above (e.g.
            ``{"PresentationLUTShape": "INVERSE"}``).

    Returns:
        The path written.

    Raises:
        ValueError: a value outside the ``bits_stored`` range, a bad shape, or an option combination the
            transfer syntax cannot hold (e.g. 12-bit JPEG baseline, JPEG 2000 under 32 pixels).
    """
    path = Path(path)
    _check_options(photometric, modality, transfer_syntax, voi_lut_function)
    arr = _check_stored(stored, photometric, bits_stored, signed)
    _check_encodable(arr, transfer_syntax, photometric, bits_stored, signed)
    bits_allocated = 8 if bits_stored <= 8 else 16
    arr = arr.astype(np.dtype(f"{'<i' if signed else '<u'}{bits_allocated // 8}"))

    digest = hashlib.sha256(arr.tobytes()).hexdigest()
    study_uid = study_uid or generate_uid(entropy_srcs=["study", patient_id])
    series_uid = series_uid or generate_uid(entropy_srcs=["series", study_uid])
    sop_uid = sop_uid or generate_uid(entropy_srcs=["sop", patient_id, path.name, digest])

    ds = Dataset()
    ds.file_meta = _file_meta(modality, sop_uid)
    _set_identity(ds, modality, patient_id, study_uid, series_uid, view_position)
    _set_pixel_description(ds, arr, photometric, bits_allocated, bits_stored, signed)
    _set_calibration(ds, pixel_spacing, imager_pixel_spacing, rescale)
    _set_voi(ds, window, voi_lut_function, voi_lut)
    _set_pixel_data(ds, arr, transfer_syntax, jpeg_quality)
    for keyword, value in (extra or {}).items():
        if tag_for_keyword(keyword) is None:
            raise ValueError(f"extra: {keyword!r} is not a DICOM keyword.")
        setattr(ds, keyword, value)

    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _check_options(photometric: str, modality: str, transfer_syntax: str, voi_lut_function: str | None) -> None:
    """Raise ``ValueError`` for a name outside the choices :func:`write_cxr_dicom` knows."""
    if photometric not in _PHOTOMETRIC:
        raise ValueError(f"photometric must be one of {_PHOTOMETRIC}, got {photometric!r}.")
    if modality not in SOP_CLASSES:
        raise ValueError(f"modality must be one of {sorted(SOP_CLASSES)}, got {modality!r}.")
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"transfer_syntax must be one of {sorted(TRANSFER_SYNTAXES)}, got {transfer_syntax!r}.")
    if voi_lut_function is not None and voi_lut_function not in _VOI_LUT_FUNCTIONS:
        raise ValueError(f"voi_lut_function must be one of {_VOI_LUT_FUNCTIONS}, got {voi_lut_function!r}.")


def _check_encodable(arr: np.ndarray, transfer_syntax: str, photometric: str, bits_stored: int, signed: bool) -> None:
    """Raise ``ValueError`` when the compressed transfer syntax cannot hold these pixels."""
    if transfer_syntax == "jpeg_baseline" and (bits_stored != 8 or signed or photometric == "RGB"):
        raise ValueError("jpeg_baseline is written for 8-bit unsigned greyscale only (bits_stored=8, signed=False).")
    if transfer_syntax == "jpeg2000_lossless" and min(arr.shape[:2]) < 32:
        # openjpeg encodes 6 resolution levels, each halving the image, and pydicom cannot ask for fewer
        raise ValueError(f"jpeg2000_lossless needs at least 32 rows and columns, got {arr.shape[:2]}.")


def _file_meta(modality: str, sop_uid: str) -> FileMetaDataset:
    """File meta information; the transfer syntax starts uncompressed and changes when the pixels are encoded."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SOP_CLASSES[modality])
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _set_identity(
    ds: Dataset, modality: str, patient_id: str, study_uid: str, series_uid: str, view_position: str
) -> None:
    """SOP common, patient, study and series elements (``ds.file_meta`` already set)."""
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = UID(study_uid)
    ds.SeriesInstanceUID = UID(series_uid)
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = ""
    ds.StudyID = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.ViewPosition = view_position
    if modality == "OT":
        ds.ConversionType = "WSD"


def _set_pixel_description(
    ds: Dataset, arr: np.ndarray, photometric: str, bits_allocated: int, bits_stored: int, signed: bool
) -> None:
    """The image pixel module's description of ``arr`` (the pixel data itself is :func:`_set_pixel_data`'s)."""
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = int(arr.shape[0]), int(arr.shape[1])
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)


def _set_calibration(
    ds: Dataset,
    pixel_spacing: tuple[float, float] | None,
    imager_pixel_spacing: tuple[float, float] | None,
    rescale: tuple[float, float] | None,
) -> None:
    """Spacings and the modality LUT (rescale slope / intercept); each only when given."""
    if pixel_spacing is not None:
        ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = [_ds(v) for v in imager_pixel_spacing]
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = _ds(rescale[0]), _ds(rescale[1])
        ds.RescaleType = "US"


def _set_voi(
    ds: Dataset,
    window: tuple[Sequence[float], Sequence[float]] | None,
    voi_lut_function: str | None,
    voi_lut: tuple[int, int, np.ndarray] | None,
) -> None:
    """The VOI LUT module: windows (one value or several per tag), VOILUTFunction and a VOI LUT Sequence.

    Raises:
        ValueError: unequal numbers of centers and widths, a width below 1, a table that does not fit.
    """
    if window is not None:
        centers, widths = list(window[0]), list(window[1])
        if not centers or len(centers) != len(widths):
            raise ValueError(f"window needs as many centers as widths (>= 1), got {centers} and {widths}.")
        if min(widths) < 1:
            raise ValueError(f"window widths must be >= 1 (PS3.3 C.11.2.1.2), got {widths}.")
        ds.WindowCenter = [_ds(c) for c in centers] if len(centers) > 1 else _ds(centers[0])
        ds.WindowWidth = [_ds(w) for w in widths] if len(widths) > 1 else _ds(widths[0])
        ds.WindowCenterWidthExplanation = [f"WINDOW{i}" for i in range(len(centers))] if len(centers) > 1 else "WINDOW0"
    if voi_lut_function is not None:
        ds.VOILUTFunction = voi_lut_function
    if voi_lut is not None:
        ds.VOILUTSequence = DicomSequence([_voi_lut_item(*voi_lut)])


def _set_pixel_data(ds: Dataset, arr: np.ndarray, transfer_syntax: str, jpeg_quality: int) -> None:
    """PixelData in ``transfer_syntax``, and the file meta's TransferSyntaxUID to match."""
    ts_uid = TRANSFER_SYNTAXES[transfer_syntax]
    if transfer_syntax == "jpeg_baseline":
        ds.PixelData = encapsulate([_encode_jpeg_baseline(arr, jpeg_quality)])
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.file_meta.TransferSyntaxUID = ts_uid
        return
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OW" if arr.dtype.itemsize == 2 else "OB"
    # pydicom's compress() encodes the native PixelData and sets the file meta's transfer syntax itself
    if transfer_syntax == "rle_lossless":
        ds.compress(ts_uid, encoding_plugin="pydicom", generate_instance_uid=False)
    elif transfer_syntax == "jpeg2000_lossless":
        ds.compress(ts_uid, encoding_plugin="pylibjpeg", generate_instance_uid=False)
