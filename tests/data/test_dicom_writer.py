"""Round trips of ``write_cxr_dicom`` through pydicom, one per variant."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless

from monai_xattn.data.dicom_writer import SOP_CLASSES, write_cxr_dicom

ROWS, COLS = 24, 40  # rows != cols so a transposed read cannot pass


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.mark.parametrize("bits", [8, 10, 12, 16])
@pytest.mark.parametrize("transfer_syntax", ["explicit_vr_little_endian", "rle_lossless"])
def test_lossless_round_trip(tmp_path, rng, bits, transfer_syntax):
    stored = rng.integers(0, 2**bits, (ROWS, COLS))
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, bits_stored=bits, transfer_syntax=transfer_syntax)
    ds = pydicom.dcmread(path)
    assert (
        ds.file_meta.TransferSyntaxUID
        == {
            "explicit_vr_little_endian": ExplicitVRLittleEndian,
            "rle_lossless": RLELossless,
        }[transfer_syntax]
    )
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (
        8 if bits <= 8 else 16,
        bits,
        bits - 1,
        0,
    )
    np.testing.assert_array_equal(ds.pixel_array, stored)


def test_signed_round_trip(tmp_path, rng):
    stored = rng.integers(-2048, 2048, (ROWS, COLS))
    ds = pydicom.dcmread(write_cxr_dicom(tmp_path / "s.dcm", stored, signed=True))
    assert ds.PixelRepresentation == 1
    np.testing.assert_array_equal(ds.pixel_array, stored)


def test_jpeg_baseline_round_trip(tmp_path):
    # a smooth ramp: baseline JPEG keeps it within a couple of grey levels
    stored = np.add.outer(np.arange(ROWS) * 3, np.arange(COLS) * 4).clip(0, 255)
    ds = pydicom.dcmread(write_cxr_dicom(tmp_path / "j.dcm", stored, bits_stored=8, transfer_syntax="jpeg_baseline"))
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert ds.LossyImageCompression == "01"
    assert ds.pixel_array.shape == (ROWS, COLS)
    assert np.abs(ds.pixel_array.astype(int) - stored).max() <= 3


def test_jpeg_baseline_refuses_12_bit(tmp_path, rng):
    with pytest.raises(ValueError, match="8-bit"):
        write_cxr_dicom(tmp_path / "j.dcm", rng.integers(0, 4096, (4, 4)), transfer_syntax="jpeg_baseline")


def test_tags_and_luts(tmp_path, rng):
    stored = rng.integers(0, 4096, (ROWS, COLS))
    path = write_cxr_dicom(
        tmp_path / "t.dcm",
        stored,
        photometric="MONOCHROME1",
        rescale=(0.5, -100.0),
        window=([1000.0, 300.5], [2000.0, 50.0]),
        voi_lut_function="SIGMOID",
        pixel_spacing=(0.139, 0.14),
        imager_pixel_spacing=(0.15, 0.16),
        view_position="AP",
        modality="DX",
        patient_id="p01",
    )
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert ds.SOPClassUID == SOP_CLASSES["DX"] == ds.file_meta.MediaStorageSOPClassUID
    assert [float(v) for v in ds.WindowCenter] == [1000.0, 300.5]
    assert [float(v) for v in ds.WindowWidth] == [2000.0, 50.0]
    assert ds.VOILUTFunction == "SIGMOID"
    assert [float(v) for v in ds.PixelSpacing] == [0.139, 0.14]
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.15, 0.16]
    assert (ds.ViewPosition, ds.PatientID, ds.Modality) == ("AP", "p01", "DX")
    np.testing.assert_allclose(apply_modality_lut(ds.pixel_array, ds), stored * 0.5 - 100.0)


def test_voi_lut_sequence(tmp_path, rng):
    stored = rng.integers(0, 4096, (ROWS, COLS))
    table = (np.arange(3000) * 4096 // 3000).astype(np.uint16)
    ds = pydicom.dcmread(write_cxr_dicom(tmp_path / "l.dcm", stored, voi_lut=(1000, 12, table)))
    item = ds.VOILUTSequence[0]
    assert list(item.LUTDescriptor) == [3000, 1000, 12]
    lut = np.frombuffer(item.LUTData, dtype="<u2")
    np.testing.assert_array_equal(lut, table)


def test_rgb_is_written_as_three_samples(tmp_path, rng):
    stored = rng.integers(0, 256, (ROWS, COLS, 3))
    ds = pydicom.dcmread(write_cxr_dicom(tmp_path / "c.dcm", stored, photometric="RGB", bits_stored=8))
    assert ds.SamplesPerPixel == 3
    np.testing.assert_array_equal(ds.pixel_array, stored)


@pytest.mark.parametrize("transfer_syntax", ["explicit_vr_little_endian", "rle_lossless", "jpeg_baseline"])
def test_deterministic_bytes(tmp_path, rng, transfer_syntax):
    stored = rng.integers(0, 256, (ROWS, COLS))
    kwargs = dict(bits_stored=8, transfer_syntax=transfer_syntax, patient_id="p1", window=([128], [256]))
    a = write_cxr_dicom(tmp_path / "a" / "x.dcm", stored, **kwargs).read_bytes()
    b = write_cxr_dicom(tmp_path / "b" / "x.dcm", stored, **kwargs).read_bytes()
    assert a == b
    other = pydicom.dcmread(write_cxr_dicom(tmp_path / "y.dcm", stored, **kwargs))
    first = pydicom.dcmread(tmp_path / "a" / "x.dcm")
    assert other.SOPInstanceUID != first.SOPInstanceUID  # another file name gives another instance
    assert other.StudyInstanceUID == first.StudyInstanceUID  # same patient, same default study


def test_explicit_uids_and_extra(tmp_path, rng):
    path = write_cxr_dicom(
        tmp_path / "u.dcm",
        rng.integers(0, 4096, (4, 4)),
        study_uid="1.2.3",
        series_uid="1.2.3.4",
        sop_uid="1.2.3.4.5",
        extra={"PresentationLUTShape": "INVERSE"},
    )
    ds = pydicom.dcmread(path)
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == ("1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4.5"
    assert ds.PresentationLUTShape == "INVERSE"


@pytest.mark.parametrize(
    ("stored", "kwargs", "match"),
    [
        (np.full((4, 4), 4096), {"bits_stored": 12}, "outside the 12-bit"),
        (np.full((4, 4), -1), {"bits_stored": 12}, "outside the 12-bit"),
        (np.zeros((4, 4), dtype=float), {}, "integer"),
        (np.zeros((4, 4, 2), dtype=int), {}, "shape"),
        (np.zeros((0, 4), dtype=int), {}, "zero size"),
        (np.zeros((4, 4), dtype=int), {"window": ([1, 2], [3])}, "as many centers"),
        (np.zeros((4, 4), dtype=int), {"extra": {"NotAKeyword": 1}}, "not a DICOM keyword"),
        (np.zeros((4, 4), dtype=int), {"modality": "CT"}, "modality"),
    ],
)
def test_bad_input(tmp_path, stored, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        write_cxr_dicom(tmp_path / "bad.dcm", stored, **kwargs)
