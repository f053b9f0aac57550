"""``LoadCXR``/``LoadCXRd``: pixel-exact DICOM variants against hand-computed expectations, PNG agreement with
MONAI's ``LoadImage``, metadata, and one clear error per kind of bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor, PersistentDataset
from monai.transforms import LoadImage, Resize
from PIL import Image

from monai_xattn.data.dicom_writer import write_cxr_dicom
from monai_xattn.transforms import io as cxr_io
from monai_xattn.transforms.io import CXRLoadError, LoadCXR, LoadCXRd

ROWS, COLS = 24, 40  # rows != cols, so a missing or doubled transpose fails
ATOL = 2e-6  # float32 rounding of a value in [0, 1]


@pytest.fixture
def stored() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 4096, (ROWS, COLS))


def as_rows_cols(img: MetaTensor) -> np.ndarray:
    """(1, W, H) -> the (rows, cols) array the expectation is written in."""
    assert isinstance(img, MetaTensor) and img.dtype == torch.float32
    assert tuple(img.shape) == (1, COLS, ROWS)
    return img[0].numpy().T


def minmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return (x - x.min()) / (x.max() - x.min())


def linear_window(m: np.ndarray, c: float, w: float) -> np.ndarray:
    # PS3.3 C.11.2.1.2.1, written out branch by branch
    out = (m - (c - 0.5)) / (w - 1) + 0.5
    out[m <= c - 0.5 - (w - 1) / 2] = 0.0
    out[m > c - 0.5 + (w - 1) / 2] = 1.0
    return out


# --- DICOM variants -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 10, 12, 16])
def test_bit_depths_minmax(tmp_path, bits):
    s = np.random.default_rng(bits).integers(0, 2**bits, (ROWS, COLS))
    img = LoadCXR()(write_cxr_dicom(tmp_path / "a.dcm", s, bits_stored=bits))
    np.testing.assert_allclose(as_rows_cols(img), minmax(s), atol=ATOL, rtol=0)
    assert img.meta["intensity"] == "minmax"


def test_monochrome1_matches_monochrome2(tmp_path, stored):
    mono2 = LoadCXR()(write_cxr_dicom(tmp_path / "m2.dcm", stored))
    mono1 = LoadCXR()(write_cxr_dicom(tmp_path / "m1.dcm", 4095 - stored, photometric="MONOCHROME1"))
    np.testing.assert_allclose(as_rows_cols(mono1), as_rows_cols(mono2), atol=ATOL, rtol=0)
    assert mono1.meta["photometric_interpretation"] == "MONOCHROME1"
    assert mono1.meta["intensity"].endswith("inverted")


def test_presentation_lut_inverse_does_not_invert_twice(tmp_path, stored):
    plain = LoadCXR()(write_cxr_dicom(tmp_path / "a.dcm", stored, photometric="MONOCHROME1"))
    both = LoadCXR()(
        write_cxr_dicom(
            tmp_path / "b.dcm", stored, photometric="MONOCHROME1", extra={"PresentationLUTShape": "INVERSE"}
        )
    )
    np.testing.assert_array_equal(both.numpy(), plain.numpy())
    np.testing.assert_allclose(as_rows_cols(plain), 1 - minmax(stored), atol=ATOL, rtol=0)


def test_rescale_then_linear_window_then_inversion(tmp_path, stored):
    slope, intercept, c, w = 0.5, -300.0, 500.0, 800.0
    path = write_cxr_dicom(
        tmp_path / "a.dcm", stored, photometric="MONOCHROME1", rescale=(slope, intercept), window=([c], [w])
    )
    expected = 1.0 - linear_window(stored * slope + intercept, c, w)
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(path)), expected, atol=ATOL, rtol=0)


def test_negative_slope_minmax(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, rescale=(-2.0, 100.0))
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(path)), minmax(-2.0 * stored + 100.0), atol=ATOL, rtol=0)


def test_linear_window_of_width_one_is_a_threshold(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, window=([2000.5], [1.0]))
    np.testing.assert_array_equal(as_rows_cols(LoadCXR()(path)), (stored > 2000).astype(np.float32))


def test_linear_exact_window(tmp_path, stored):
    c, w = 1500.0, 1000.0
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, window=([c], [w]), voi_lut_function="LINEAR_EXACT")
    m = stored.astype(np.float64)
    expected = np.where(m <= c - w / 2, 0.0, np.where(m > c + w / 2, 1.0, (m - c) / w + 0.5))
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(path)), expected, atol=ATOL, rtol=0)


def test_sigmoid_window(tmp_path, stored):
    c, w = 2048.0, 1500.0
    path = write_cxr_dicom(
        tmp_path / "a.dcm", stored, rescale=(1.0, -24.0), window=([c], [w]), voi_lut_function="SIGMOID"
    )
    expected = 1.0 / (1.0 + np.exp(-4.0 * ((stored - 24.0) - c) / w))
    img = LoadCXR()(path)
    np.testing.assert_allclose(as_rows_cols(img), expected, atol=ATOL, rtol=0)
    assert img.meta["intensity"] == "window[0] SIGMOID c=2048 w=1500"


def test_window_index_picks_among_several(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, window=([1000.0, 3000.0], [500.0, 1200.0]))
    for index, (c, w) in enumerate([(1000.0, 500.0), (3000.0, 1200.0)]):
        img = LoadCXR(window_index=index)(path)
        np.testing.assert_allclose(as_rows_cols(img), linear_window(stored.astype(float), c, w), atol=ATOL, rtol=0)
    with pytest.raises(CXRLoadError, match="window_index=2, file has 2 window"):
        LoadCXR(window_index=2)(path)


def test_voi_lut_sequence_8_bit_table(tmp_path, stored):
    # an 8-bit LUT with more entries than 256: pydicom 3.0.2's apply_voi wraps these indices
    first, table = 500, (np.arange(3000) * 255 // 2999).astype(np.uint16)
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, voi_lut=(first, 8, table), window=([100.0], [10.0]))
    expected = table[np.clip(stored - first, 0, table.size - 1)] / 255.0
    img = LoadCXR()(path)
    np.testing.assert_allclose(as_rows_cols(img), expected, atol=ATOL, rtol=0)
    assert img.meta["intensity"] == "voi_lut[0]"
    # the window is the alternative when the LUT is not preferred
    windowed = LoadCXR(prefer_voi_lut=False)(path)
    np.testing.assert_allclose(as_rows_cols(windowed), linear_window(stored.astype(float), 100.0, 10.0), atol=ATOL)


def test_voi_lut_sequence_16_bit_table_after_rescale(tmp_path, stored):
    table = (np.sqrt(np.arange(8192) / 8191.0) * 65535).astype(np.uint16)
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, rescale=(2.0, 0.0), voi_lut=(0, 16, table))
    expected = table[np.clip(stored * 2, 0, table.size - 1)] / 65535.0
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(path)), expected, atol=ATOL, rtol=0)


def test_voi_false_skips_window(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, window=([100.0], [10.0]))
    np.testing.assert_allclose(as_rows_cols(LoadCXR(voi=False)(path)), minmax(stored), atol=ATOL, rtol=0)


def test_percentile_normalisation(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, photometric="MONOCHROME1", rescale=(3.0, 7.0))
    m = stored * 3.0 + 7.0
    lo, hi = np.percentile(m, (2.0, 98.0), method="inverted_cdf")
    expected = 1.0 - np.clip((m - lo) / (hi - lo), 0, 1)
    img = LoadCXR(normalize="percentile", percentiles=(2.0, 98.0))(path)
    np.testing.assert_allclose(as_rows_cols(img), expected, atol=ATOL, rtol=0)


def test_signed_stored_values(tmp_path):
    s = np.random.default_rng(1).integers(-2048, 2048, (ROWS, COLS))
    path = write_cxr_dicom(tmp_path / "a.dcm", s, signed=True, window=([0.0], [2000.0]))
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(path)), linear_window(s.astype(float), 0.0, 2000.0), atol=ATOL)
    np.testing.assert_allclose(as_rows_cols(LoadCXR(voi=False)(path)), minmax(s), atol=ATOL, rtol=0)


def test_rle_equals_uncompressed(tmp_path, stored):
    kwargs = dict(photometric="MONOCHROME1", window=([2000.0], [3000.0]), voi_lut_function="SIGMOID")
    raw = LoadCXR()(write_cxr_dicom(tmp_path / "raw.dcm", stored, **kwargs))
    rle = LoadCXR()(write_cxr_dicom(tmp_path / "rle.dcm", stored, transfer_syntax="rle_lossless", **kwargs))
    np.testing.assert_array_equal(rle.numpy(), raw.numpy())


def test_jpeg_baseline_close_to_source(tmp_path):
    s = np.add.outer(np.arange(ROWS) * 5, np.arange(COLS) * 3) + 20  # smooth: small JPEG error
    img = LoadCXR()(write_cxr_dicom(tmp_path / "j.dcm", s, bits_stored=8, transfer_syntax="jpeg_baseline"))
    assert np.abs(as_rows_cols(img) - minmax(s)).max() < 4 / 255


# --- metadata and MONAI interplay -------------------------------------------------------------------------------


def test_meta_and_orientation(tmp_path, stored):
    stored = stored.copy()
    stored[2, 30] = 4095  # a marker at row 2 (y), column 30 (x)
    path = write_cxr_dicom(
        tmp_path / "a.dcm", stored, pixel_spacing=(0.2, 0.1), imager_pixel_spacing=(0.3, 0.3), view_position="AP"
    )
    img = LoadCXR()(path)
    assert img[0, 30, 2] == 1.0  # spatial axis 0 is x
    assert img.is_contiguous()  # not a transposed view: torch kernels downstream are slow on those strides
    np.testing.assert_array_equal(img.meta["spacing"], [0.1, 0.2])  # (x, y) from PixelSpacing's (row, col)
    assert img.meta["spacing_source"] == "PixelSpacing"
    np.testing.assert_array_equal(img.meta["original_size"], [COLS, ROWS])
    np.testing.assert_allclose(img.affine.numpy(), np.diag([0.1, 0.2, 1.0, 1.0]))
    assert (img.meta["view_position"], img.meta["filename_or_obj"]) == ("AP", str(path))
    imager = LoadCXR()(write_cxr_dicom(tmp_path / "b.dcm", stored, imager_pixel_spacing=(0.3, 0.25)))
    np.testing.assert_array_equal(imager.meta["spacing"], [0.25, 0.3])
    assert imager.meta["spacing_source"] == "ImagerPixelSpacing"
    bare = LoadCXR()(write_cxr_dicom(tmp_path / "c.dcm", stored))
    np.testing.assert_array_equal(bare.meta["spacing"], [1.0, 1.0])
    assert bare.meta["spacing_source"] == "none"


def test_monai_resize_keeps_spacing_consistent(tmp_path, stored):
    img = LoadCXR()(write_cxr_dicom(tmp_path / "a.dcm", stored, pixel_spacing=(0.2, 0.1)))
    small = Resize((COLS // 2, ROWS // 2))(img)
    assert tuple(small.shape) == (1, COLS // 2, ROWS // 2)
    np.testing.assert_allclose(small.pixdim[:2].numpy(), [0.2, 0.4])


@pytest.mark.parametrize("bits", [8, 16])
def test_png_agrees_with_monai_loadimage(tmp_path, bits):
    rng = np.random.default_rng(bits)
    pixels = rng.integers(0, 2**bits, (ROWS, COLS)).astype(np.uint8 if bits == 8 else np.uint16)
    path = tmp_path / "a.png"
    Image.fromarray(pixels).save(path)
    ours = LoadCXR()(path)
    theirs = LoadImage(image_only=True)(path)
    assert tuple(theirs.shape) == (COLS, ROWS)
    np.testing.assert_allclose(ours[0].numpy() * (2**bits - 1), theirs.numpy(), atol=1e-2, rtol=0)
    assert ours.meta["spacing_source"] == "none"


def test_rgb_png_takes_channel_zero(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (ROWS, COLS, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(tmp_path / "c.png")), rgb[..., 0] / 255.0, atol=ATOL)


def test_dict_transform(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored)
    out = LoadCXRd(["image", "other"], allow_missing_keys=True, voi=False)({"image": str(path), "label": 1})
    assert out["label"] == 1 and tuple(out["image"].shape) == (1, COLS, ROWS)
    with pytest.raises(KeyError):
        LoadCXRd("other")({"image": str(path)})


# --- bad input --------------------------------------------------------------------------------------------------


def _rewrite(path, **changes):
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)
    return path


def test_missing_file(tmp_path):
    with pytest.raises(CXRLoadError, match="no such file") as info:
        LoadCXR()(tmp_path / "nope.dcm")
    assert info.value.path == str(tmp_path / "nope.dcm")


def test_truncated_dicom(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored)
    path.write_bytes(path.read_bytes()[: -ROWS * COLS])  # half of the 16-bit pixel data
    with pytest.raises(CXRLoadError, match="a.dcm"):
        LoadCXR()(path)


def test_no_pixel_data(tmp_path, stored):
    path = _rewrite(write_cxr_dicom(tmp_path / "a.dcm", stored), PixelData=None)
    with pytest.raises(CXRLoadError, match="no PixelData"):
        LoadCXR()(path)


def test_colour_dicom(tmp_path):
    rgb = np.zeros((ROWS, COLS, 3), dtype=np.uint8)
    path = write_cxr_dicom(tmp_path / "c.dcm", rgb, photometric="RGB", bits_stored=8)
    with pytest.raises(CXRLoadError, match="SamplesPerPixel=3"):
        LoadCXR()(path)


def test_zero_size_dicom(tmp_path, stored):
    path = _rewrite(write_cxr_dicom(tmp_path / "a.dcm", stored), Rows=0)
    with pytest.raises(CXRLoadError, match="zero-size"):
        LoadCXR()(path)


def test_transfer_syntax_without_decoder(tmp_path):
    path = write_cxr_dicom(tmp_path / "j.dcm", np.zeros((8, 8), int), bits_stored=8, transfer_syntax="jpeg_baseline")
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML  # pydicom has no video decoder
    ds.save_as(path)
    with pytest.raises(CXRLoadError, match="no decoder for transfer syntax MPEG2"):
        LoadCXR()(path)


def test_decoder_plugin_not_installed(tmp_path, monkeypatch):
    class MissingDecoder:
        is_available = False
        missing_dependencies = ["pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1"]

    monkeypatch.setattr(cxr_io, "get_decoder", lambda uid: MissingDecoder())
    path = write_cxr_dicom(tmp_path / "j.dcm", np.zeros((8, 8), int), bits_stored=8, transfer_syntax="jpeg_baseline")
    with pytest.raises(CXRLoadError, match="JPEG Baseline.*install one of: pylibjpeg"):
        LoadCXR()(path)


def test_non_finite_after_luts(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, extra={"RescaleSlope": "1e308", "RescaleIntercept": "0"})
    with pytest.raises(CXRLoadError, match="non-finite"):
        LoadCXR(normalize="percentile")(path)


def test_png_that_is_not_a_png(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("definitely not pixels")
    with pytest.raises(CXRLoadError, match="fake.png.*neither DICOM nor an image"):
        LoadCXR()(path)


def test_truncated_png(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64)).astype(np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CXRLoadError, match="t.png"):
        LoadCXR()(path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="normalize"):
        LoadCXR(normalize="zscore")
    with pytest.raises(ValueError, match="percentiles"):
        LoadCXR(percentiles=(90.0, 10.0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window": ([2048.0], [3000.0])},  # in-place float32 path
        {"window": ([2048.0], [3000.0]), "voi_lut_function": "SIGMOID"},  # full-range table path
        {},  # min-max
    ],
)
@pytest.mark.parametrize("normalize", ["minmax", "percentile"])
def test_bits_above_bits_stored_are_ignored(tmp_path, stored, kwargs, normalize):
    # garbage in the 4 unused high bits of 12-bit data must not change the image (PS3.5 8.1.1; pydicom masks them)
    noisy = stored | (np.random.default_rng(5).integers(0, 16, stored.shape) << 12)
    dirty = write_cxr_dicom(
        tmp_path / "dirty.dcm", noisy, bits_stored=16, extra={"BitsStored": 12, "HighBit": 11}, **kwargs
    )
    clean = write_cxr_dicom(tmp_path / "clean.dcm", stored, bits_stored=12, **kwargs)
    np.testing.assert_allclose(pydicom.dcmread(dirty).pixel_array, stored)  # the reference behaviour
    loader = LoadCXR(normalize=normalize)
    np.testing.assert_array_equal(loader(dirty).numpy(), loader(clean).numpy())


def test_modality_lut_sequence(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored)
    ds = pydicom.dcmread(path)
    item = pydicom.Dataset()
    lut = (4095 - np.arange(4096)).astype(np.uint16)  # an inverting modality LUT
    item.LUTDescriptor = [4096, 0, 16]
    item.ModalityLUTType = "US"
    item.LUTData = lut.tobytes()
    item["LUTData"].VR = "OW"
    ds.ModalityLUTSequence = pydicom.Sequence([item])
    ds.save_as(path)
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(path)), minmax(4095 - stored), atol=ATOL, rtol=0)


def test_meta_survives_a_weights_only_persistent_cache(tmp_path, stored):
    # numpy arrays in meta would make torch.load(weights_only=True) fail, and MONAI would silently recompute
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, pixel_spacing=(0.2, 0.1))
    dataset = PersistentDataset(
        [{"image": str(path)}], LoadCXRd("image"), cache_dir=tmp_path / "cache", track_meta=True
    )
    first = dataset[0]["image"]
    (cached_file,) = (tmp_path / "cache").glob("*.pt")
    cached = torch.load(cached_file, weights_only=True)["image"]
    assert isinstance(cached, MetaTensor)
    np.testing.assert_array_equal(cached.numpy(), first.numpy())
    np.testing.assert_array_equal(cached.meta["spacing"], [0.1, 0.2])
    assert cached.meta["filename_or_obj"] == str(path)


# --- damaged files: optional metadata is dropped, essential data is an error -----------------------------------------


def test_clean_files_drop_nothing(tmp_path, stored):
    img = LoadCXR()(write_cxr_dicom(tmp_path / "a.dcm", stored, window=([2048.0], [3000.0]), pixel_spacing=(1, 1)))
    assert img.meta["dropped_tags"] == ""
    Image.fromarray(stored.astype(np.uint8)).save(tmp_path / "b.png")
    assert LoadCXR()(tmp_path / "b.png").meta["dropped_tags"] == ""


def test_too_narrow_window_is_dropped_with_a_warning(tmp_path, stored):
    # PS3.3 C.11.2.1.2: a LINEAR width must be >= 1; the file's other content is fine, so the image is kept
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, window=([2048.0], [3000.0]), extra={"WindowWidth": "0.5"})
    with pytest.warns(cxr_io.CXRMetadataWarning, match=rf"{path}.*WindowWidth \(0028,1051\).*width 0.5"):
        img = LoadCXR()(path)
    np.testing.assert_allclose(as_rows_cols(img), minmax(stored), atol=ATOL, rtol=0)
    assert (img.meta["intensity"], img.meta["dropped_tags"]) == ("minmax", "WindowWidth")


def test_unknown_voi_function_drops_the_window(tmp_path, stored):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, window=([2048.0], [3000.0]), extra={"VOILUTFunction": "CUBIC"})
    with pytest.warns(cxr_io.CXRMetadataWarning, match="VOILUTFunction.*'CUBIC'"):
        img = LoadCXR()(path)
    assert (img.meta["intensity"], img.meta["dropped_tags"]) == ("minmax", "VOILUTFunction")


def test_voi_elements_are_not_read_when_voi_is_off(tmp_path, stored):
    # only what the options make the loader use is checked: voi=False never touches the damaged window
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, window=([2048.0], [3000.0]), extra={"WindowWidth": "0.5"})
    with warnings.catch_warnings():
        warnings.simplefilter("error", cxr_io.CXRMetadataWarning)
        assert LoadCXR(voi=False)(path).meta["dropped_tags"] == ""


def test_pixel_data_longer_than_the_header_says_is_an_error(tmp_path, stored):
    # a damaged Rows would otherwise give a smaller, scrambled image: pydicom ignores the excess bytes
    path = _rewrite(write_cxr_dicom(tmp_path / "a.dcm", stored), Rows=ROWS - 1)
    with pytest.raises(CXRLoadError, match=rf"a.dcm: PixelData holds {2 * ROWS * COLS} bytes.*Rows x Columns"):
        LoadCXR()(path)
    # less than a row beyond is padding, as pydicom reads it
    padded = write_cxr_dicom(tmp_path / "b.dcm", stored)
    ds = pydicom.dcmread(padded)
    ds.PixelData += b"\0\0"
    ds.save_as(padded)
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(padded)), minmax(stored), atol=ATOL, rtol=0)


def test_rescale_needs_both_slope_and_intercept_like_pydicom(tmp_path, stored):
    # PS3.3 C.11.1: pydicom rescales only when both are present; the float32 path must agree with the table path
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, window=([1500.0], [1000.0]), extra={"RescaleSlope": "2"})
    modality = cxr_io.apply_modality_lut(stored, pydicom.dcmread(path))
    np.testing.assert_array_equal(modality, stored)
    np.testing.assert_allclose(as_rows_cols(LoadCXR()(path)), linear_window(modality, 1500.0, 1000.0), atol=ATOL)


@pytest.mark.parametrize("keyword, value", [("RescaleSlope", "0"), ("PresentationLUTShape", "SIDEWAYS")])
def test_essential_values_outside_their_definition_are_errors(tmp_path, stored, keyword, value):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, rescale=(1.0, 0.0), extra={keyword: value})
    with pytest.raises(CXRLoadError, match=rf"a.dcm: .*{keyword}"):
        LoadCXR()(path)


def test_any_exception_while_loading_names_the_file(tmp_path, stored, monkeypatch):
    path = write_cxr_dicom(tmp_path / "a.dcm", stored)

    def broken(pixels):
        raise TypeError("an error from deep inside")

    monkeypatch.setattr(cxr_io, "_transposed", broken)
    with pytest.raises(
        CXRLoadError, match=r"a.dcm: could not be loaded \(TypeError: an error from deep inside\)"
    ) as info:
        LoadCXR()(path)
    assert info.value.path == str(path) and isinstance(info.value.__cause__, TypeError)


def test_jpeg2000_lossless_equals_uncompressed(tmp_path):
    s = np.random.default_rng(2).integers(0, 4096, (ROWS + 16, COLS))  # openjpeg needs >= 32 rows and columns
    kwargs = dict(photometric="MONOCHROME1", window=([2000.0], [3000.0]))
    raw = LoadCXR()(write_cxr_dicom(tmp_path / "raw.dcm", s, **kwargs))
    j2k = LoadCXR()(write_cxr_dicom(tmp_path / "j2k.dcm", s, transfer_syntax="jpeg2000_lossless", **kwargs))
    assert pydicom.dcmread(tmp_path / "j2k.dcm").file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000Lossless
    np.testing.assert_array_equal(j2k.numpy(), raw.numpy())


def test_header_beyond_any_chest_x_ray_is_an_error_before_decoding(tmp_path, stored):
    # a compressed file's decoder would allocate Rows x Columns first: 65535 x 65535 x 2 bytes is 8 GiB
    path = write_cxr_dicom(tmp_path / "a.dcm", stored, transfer_syntax="rle_lossless")
    path = _rewrite(path, Rows=65535, Columns=65535)
    with pytest.raises(CXRLoadError, match="a.dcm: Rows x Columns = 65535 x 65535, beyond any chest X-ray"):
        LoadCXR()(path)
