"""The shortcuts of ``LoadCXR``'s DICOM path agree with the general code they stand in for, over random inputs.

- ``_transposed`` + ``_float32_chunks`` widen the transposed copy to float32 in place, in chunks that must never
  overwrite a value before it is read: the result equals ``pixels.T.astype(np.float32)`` for every shape, and the
  affine and table paths built on it equal their whole-array numpy expressions bit for bit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from monai_xattn.transforms import io as cxr_io


def _shapes(rng: np.random.Generator) -> list[tuple[int, int]]:
    # below, at and far above the chunking thresholds; odd sizes so chunk edges fall mid-row
    return [(1, 1), (3, 7), (64, 64), (63, 65), (1, 9000)] + [
        (int(rng.integers(1, 700)), int(rng.integers(1, 700))) for _ in range(12)
    ]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32])
def test_in_place_widening_equals_astype(dtype):
    rng = np.random.default_rng(np.dtype(dtype).num)
    for shape in _shapes(rng):
        pixels = (rng.random(shape) * 250).astype(dtype)
        copy = cxr_io._transposed(pixels)
        assert copy.flags.c_contiguous and copy.shape == shape[::-1]
        np.testing.assert_array_equal(copy, pixels.T)
        widened = cxr_io._as_float32(copy)
        assert widened.dtype == np.float32 and widened.flags.c_contiguous
        np.testing.assert_array_equal(widened, pixels.T.astype(np.float32))


def test_read_only_pixel_data_view_is_transposed_without_copying_it_first():
    data = np.arange(12 * 34, dtype="<u2").tobytes()
    view = np.frombuffer(data, dtype="<u2").reshape(12, 34)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy would warn about the read-only buffer
        copy = cxr_io._transposed(view)
    np.testing.assert_array_equal(copy, view.T)


def test_affine_and_table_paths_equal_their_whole_array_form():
    rng = np.random.default_rng(7)
    for shape in _shapes(rng):
        for dtype, bits in ((np.uint16, 12), (np.uint8, 8)):
            stored = rng.integers(0, 2 ** (8 * np.dtype(dtype).itemsize), shape).astype(dtype)
            o, k, h = float(rng.uniform(0, 2**bits)) // 1 + 0.5, float(rng.uniform(-1, 1)) / 2**bits, 1.0
            masked = stored & dtype(2**bits - 1)
            expected = np.clip((masked.T.astype(np.float32) - np.float32(o)) * np.float32(k) + np.float32(h), 0.0, 1.0)
            got = cxr_io.LoadCXR._apply_affine(cxr_io._mask_unused_bits(cxr_io._transposed(stored), bits), o, k, h)
            np.testing.assert_array_equal(got, expected)

            table = rng.random(2**bits).astype(np.float32)
            index = cxr_io._mask_unused_bits(cxr_io._transposed(stored), bits)
            result, chunks = cxr_io._float32_chunks(index, limit=int(rng.integers(1000, 2**18)))
            for chunk, out in chunks:
                np.take(table, chunk, out=out, mode="wrap")
            np.testing.assert_array_equal(result, table[masked.T])
