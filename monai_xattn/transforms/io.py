"""Load chest X-rays (DICOM, PNG, JPEG, TIFF) as float32 ``(1, W, H)`` MetaTensors in ``[0, 1]``.

MONAI's own readers disagree on chest X-ray DICOMs (``ITKReader`` inverts MONOCHROME1 before the rescale,
``PydicomReader`` never does; neither applies the VOI LUT or reads the CR/DX spacing tags), so the DICOM path here
pins one behaviour, the display pipeline of DICOM PS3.4 N.2:

    stored values -> modality LUT -> VOI (VOI LUT sequence, else window) -> MONOCHROME1 inversion -> [0, 1]

Every step maps the image to ``[0, 1]`` before the polarity step, so MONOCHROME1 is inverted exactly once, as
``1 - y``, on the range the previous step produced. When VOI is skipped (``voi=False``) or the file carries none,
the modality-LUT output is normalised by its min/max or by two percentiles instead (``normalize``).

Speed: uncompressed little-endian unsigned data (the usual CR/DX file) is read as a view of PixelData rather than
through pydicom's generic decoder, and transposed to MONAI's ``(W, H)`` frame while still integers, with torch,
into the start of the float32 output's buffer, which the value mapping then fills in place: the output is the only
image-sized allocation (fresh memory costs a page fault per 4 KiB). The chain never runs in float64 per pixel: when
it is a clipped affine map of the stored values (linear modality LUT, then a LINEAR/LINEAR_EXACT window or min-max
scaling) it runs as four float32 passes; otherwise the float64 chain is evaluated once per possible stored value
(every value of data up to 12 bits, else the image's ``[min, max]``) and the image is one table lookup. Both agree
with the per-pixel float64 chain to float32 rounding. Header elements are looked up by tag (resolved from their
keywords once). ``benchmarks/load_cxr.py`` compares the whole loader with a bare
``pydicom.dcmread(...).pixel_array`` read.

Damaged files: pydicom parses an element only when it is first accessed, so a damaged element raises wherever it is
first touched, with a message that names no file. Every element is therefore read through :class:`_Tags`, once:
damage to an element of :data:`ESSENTIAL_TAGS` (the pixels cannot be decoded, or would mean something else) is a
:class:`CXRLoadError`; damage to one of :data:`OPTIONAL_TAGS` drops it with a :class:`CXRMetadataWarning` and the
image is loaded as if the element were absent (``meta["dropped_tags"]`` lists it). Any other exception raised while
loading a file becomes a ``CXRLoadError`` naming it, the original kept as ``__cause__``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from pydicom.datadict import tag_for_keyword
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.tag import Tag
from pydicom.uid import UID

__all__ = [
    "CXRLoadError",
    "CXRMetadataWarning",
    "LoadCXR",
    "LoadCXRd",
    "LoadCXRD",
    "LoadCXRDict",
    "DICOM_SUFFIXES",
    "OPTIONAL_TAGS",
    "ESSENTIAL_TAGS",
]


#: file name endings read with pydicom even without the ``DICM`` preamble marker.
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")

_NORMALIZE = ("minmax", "percentile")
# tables over every value of up to 12-bit data (4,096 entries) are cheaper than finding the image's min and max
_FULL_TABLE_BITS = 12
_TAKE_BLOCK = 2**18  # pixels per np.take call
_SMALL_CHUNK = 2**12  # below this many pixels, in-place widening copies its last chunk rather than halving it
_NATIVE_LE = (pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian)
# beyond this many distinct stored values, the per-pixel chain is cheaper than building the table
_MAX_TABLE = 2**17

#: DICOM elements a chest X-ray can do without: a damaged one is dropped with a :class:`CXRMetadataWarning` naming
#: the file and the element, and the image is loaded as if it were absent (spacing from the next source or
#: ``[1, 1]``, ``view_position`` ``""``, the next VOI source or ``normalize``); ``meta["dropped_tags"]`` lists it.
OPTIONAL_TAGS = (
    "PixelSpacing",
    "ImagerPixelSpacing",
    "ViewPosition",
    "VOILUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
)
#: DICOM elements without which the pixels cannot be decoded or would mean something else (geometry, bit layout,
#: polarity, the modality LUT that VOI windows are written in, the pixel data itself): damage is a CXRLoadError.
ESSENTIAL_TAGS = (
    "TransferSyntaxUID",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "ModalityLUTSequence",
    "PresentationLUTShape",
    "PixelData",
)
# keyword -> tag, resolved once: pydicom's keyword look-up costs more than the element access itself
_TAG_OF = {keyword: Tag(keyword) for keyword in (*ESSENTIAL_TAGS, *OPTIONAL_TAGS)}
_VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
# 16384 x 16384: four times the largest detector made; a damaged Rows or Columns beyond it would have a compressed
# file's decoder allocate gigabytes (an out-of-memory kill names no file) before the codestream disagrees
_MAX_PIXELS = 2**28
_REQUIRED = object()  # `default` of an element whose absence is an error


class CXRLoadError(ValueError):
    """A chest X-ray file that cannot be turned into a correct image.

    Args:
        path: the offending file.
        reason: what is wrong with it, and where possible what to do about it.
    """

    def __init__(self, path: str | PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class CXRMetadataWarning(UserWarning):
    """An optional element of a DICOM file (see :data:`OPTIONAL_TAGS`) was damaged and dropped; the image loaded.

    The message names the file and the element. ``warnings.simplefilter("error", CXRMetadataWarning)`` makes
    :class:`LoadCXR` strict: the warning then surfaces as a :class:`CXRLoadError` naming the file.
    """


def _has_dicm_marker(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(128)
        return f.read(4) == b"DICM"


def _is_dicom(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or _has_dicm_marker(path)


def _element_name(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    return keyword if tag is None else f"{keyword} {Tag(tag)}"


def _is_empty(value: Any) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def _single(value: Any) -> Any:
    # a damaged length or a stray backslash turns one value into several: pydicom then returns a MultiValue
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        raise ValueError(f"one value expected, found {len(value)}: {list(value)!r}")
    return value


def _integer(value: Any) -> int:
    return int(_single(value))


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError(f"bytes expected, found {type(value).__name__}")
    return value


def _code(value: Any) -> str:
    value = _single(value)
    if not isinstance(value, str):
        raise ValueError(f"text expected, found {type(value).__name__} {value!r}")
    if not value.isprintable():
        raise ValueError(f"{value!r} holds non-printable characters")
    return value.strip()


def _finite_numbers(value: Any) -> list[float]:
    numbers = [float(v) for v in (value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value])]
    if not np.isfinite(numbers).all():
        raise ValueError(f"non-finite value in {numbers}")
    return numbers


def _spacing(value: Any) -> tuple[float, float]:
    numbers = _finite_numbers(value)
    if len(numbers) != 2 or min(numbers) <= 0:
        raise ValueError(f"two positive numbers (row, column spacing) expected, found {numbers}")
    return numbers[0], numbers[1]


def _voi_function(value: Any) -> str:
    function = _code(value).upper() or "LINEAR"
    if function not in _VOI_FUNCTIONS:
        raise ValueError(f"{function!r} is none of {_VOI_FUNCTIONS}")
    return function


def _transfer_syntax(value: Any) -> UID:
    uid = UID(_code(value))
    if uid.is_private or not uid.is_transfer_syntax:
        raise ValueError(f"{str(uid)!r} is not a transfer syntax pydicom knows")
    return uid


def _lut(item: pydicom.Dataset, signed: bool) -> tuple[int, int, np.ndarray]:
    """``(first mapped value, bits, table)`` of a LUT item (LUTDescriptor + LUTData), checked for consistency."""
    descriptor = [int(v) for v in item.LUTDescriptor]
    if len(descriptor) != 3:
        raise ValueError(f"LUT Descriptor holds {len(descriptor)} values, 3 expected")
    n_entries, first, bits = descriptor
    n_entries = n_entries or 65536
    if not 1 <= bits <= 16:
        raise ValueError(f"LUT Descriptor gives {bits} bits per entry, 1 to 16 expected")
    if signed and first >= 2**15:  # LUTDescriptor is US or SS; a signed image's first value is two's complement
        first -= 2**16
    raw = item.LUTData
    if isinstance(raw, bytes):
        if len(raw) < 2 * n_entries:
            raise ValueError(f"LUT Data holds {len(raw) // 2} entries, LUT Descriptor says {n_entries}")
        table = np.frombuffer(raw, dtype="<u2", count=n_entries)
    else:
        table = np.asarray(raw if isinstance(raw, Sequence) else [raw], dtype=np.int64)[:n_entries]
        if table.size < n_entries:
            raise ValueError(f"LUT Data holds {table.size} entries, LUT Descriptor says {n_entries}")
    # an entry beyond the declared bits would leave [0, 1] after the division by 2**bits - 1
    if table.min() < 0 or table.max() >= 2**bits:
        raise ValueError(f"LUT Data spans [{table.min()}, {table.max()}], beyond the descriptor's {bits} bits")
    return first, bits, table


class _Tags:
    """The one place a DICOM file's elements are read: damage becomes an error or a dropped element, never a stray
    pydicom exception raised wherever the element happens to be touched first.

    Args:
        ds: the dataset as ``pydicom.dcmread`` returned it (elements still raw).
        path: the file, for messages.
    """

    def __init__(self, ds: pydicom.Dataset, path: Path) -> None:
        self.ds = ds
        self.path = path
        self.dropped: list[str] = []

    def _source(self, keyword: str) -> pydicom.Dataset:
        if keyword.startswith(("TransferSyntax", "MediaStorage")):
            return getattr(self.ds, "file_meta", None) or pydicom.Dataset()
        return self.ds

    def has(self, keyword: str) -> bool:
        """Whether the element is present (its value is not parsed)."""
        return _TAG_OF.get(keyword, keyword) in self._source(keyword)

    def essential(self, keyword: str, parse: Callable[[Any], Any] = _integer, default: Any = _REQUIRED) -> Any:
        """``parse(value)``; ``default`` when the element is absent or empty, an error when there is no default.

        Raises:
            CXRLoadError: the element is missing (without ``default``), cannot be read, or ``parse`` rejects it.
        """
        source = self._source(keyword)
        try:
            tag = _TAG_OF.get(keyword, keyword)
            value = source[tag].value if tag in source else None
            if _is_empty(value):
                if default is _REQUIRED:
                    raise CXRLoadError(self.path, f"essential element {_element_name(keyword)} is missing or empty.")
                return default
            return parse(value)
        except CXRLoadError:
            raise
        except Exception as e:  # pydicom raises ValueError, NotImplementedError, BytesLengthException, ... here
            raise CXRLoadError(
                self.path, f"essential element {_element_name(keyword)} is damaged ({type(e).__name__}: {e})."
            ) from e

    def optional(self, keyword: str, parse: Callable[[Any], Any], default: Any = None) -> Any:
        """``parse(value)``; ``default`` when the element is absent or empty; ``None`` when it is damaged (dropped)."""
        if not self.has(keyword):
            return default
        return self.guard(keyword, lambda: self._parse_present(keyword, parse, default))

    def _parse_present(self, keyword: str, parse: Callable[[Any], Any], default: Any) -> Any:
        value = self.ds[_TAG_OF.get(keyword, keyword)].value
        return default if _is_empty(value) else parse(value)

    def guard(self, keyword: str, compute: Callable[[], Any]) -> Any:
        """``compute()``, or ``None`` with ``keyword`` dropped when it raises: optional elements only."""
        try:
            return compute()
        except Exception as e:  # every way an element can be damaged; none may lose the image
            self.drop(keyword, f"{type(e).__name__}: {e}")
            return None

    def drop(self, keyword: str, reason: str) -> None:
        """Record an optional element as damaged and warn, naming the file and the element."""
        self.dropped.append(keyword)
        warnings.warn(
            f"{self.path}: damaged optional element {_element_name(keyword)} dropped ({reason}); the image is loaded "
            "without it (meta['dropped_tags']).",
            CXRMetadataWarning,
            stacklevel=2,
        )


@dataclass(frozen=True)
class _Header:
    """The essential elements of one DICOM file, read and checked once by :func:`_read_header`."""

    transfer_syntax: UID | None
    rows: int
    cols: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    rescale: tuple[float, float] | None  # (slope, intercept); None: no rescale (pydicom needs both elements)
    modality_lut: bool  # a Modality LUT Sequence, applied by pydicom
    invert: bool
    pixel_data: bytes


def _read_header(tags: _Tags) -> _Header:
    """Read and check the essential elements (:data:`ESSENTIAL_TAGS`); raise ``CXRLoadError`` on any damage."""
    path = tags.path
    ts = tags.essential("TransferSyntaxUID", _transfer_syntax, default=None)
    samples = tags.essential("SamplesPerPixel", default=1)
    photometric = tags.essential("PhotometricInterpretation", _code, default="")
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise CXRLoadError(
            path,
            f"SamplesPerPixel={samples}, PhotometricInterpretation={photometric!r}: only single-channel "
            "MONOCHROME1/MONOCHROME2 chest X-rays are supported.",
        )
    frames = tags.essential("NumberOfFrames", lambda v: _integer(v) or 1, default=1)
    if frames != 1:
        raise CXRLoadError(path, f"multi-frame DICOM ({frames} frames); a chest X-ray has one.")
    rows, cols = tags.essential("Rows", default=0), tags.essential("Columns", default=0)
    if rows <= 0 or cols <= 0:
        raise CXRLoadError(path, f"zero-size image (Rows={rows}, Columns={cols}).")
    if rows * cols > _MAX_PIXELS:
        raise CXRLoadError(path, f"Rows x Columns = {rows} x {cols}, beyond any chest X-ray: one of them is damaged.")
    bits_allocated = tags.essential("BitsAllocated")
    bits_stored = tags.essential("BitsStored")
    signed = tags.essential("PixelRepresentation", default=0)
    if signed not in (0, 1):
        raise CXRLoadError(path, f"essential element {_element_name('PixelRepresentation')} is {signed}, not 0 or 1.")
    # the modality LUT defines the values windows and VOI LUTs are written in: without it they would misapply
    modality_lut = tags.essential("ModalityLUTSequence", lambda seq: bool(_lut(seq[0], bool(signed))), False)
    slope = tags.essential("RescaleSlope", lambda v: _finite_numbers(_single(v))[0], None)
    intercept = tags.essential("RescaleIntercept", lambda v: _finite_numbers(_single(v))[0], None)
    if slope == 0:
        raise CXRLoadError(path, f"{_element_name('RescaleSlope')} is 0: every pixel would map to one value.")
    shape = tags.essential("PresentationLUTShape", _code, "IDENTITY")
    if shape not in ("IDENTITY", "INVERSE"):
        raise CXRLoadError(path, f"{_element_name('PresentationLUTShape')} is {shape!r}, not IDENTITY or INVERSE.")
    pixel_data = tags.essential("PixelData", _bytes)
    return _Header(
        transfer_syntax=ts,
        rows=rows,
        cols=cols,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        signed=signed == 1,
        photometric=photometric,
        rescale=None if slope is None or intercept is None else (slope, intercept),
        modality_lut=modality_lut,
        # a conformant MONOCHROME1 file may also say PresentationLUTShape INVERSE: the same inversion, not a second
        invert=photometric == "MONOCHROME1" or shape == "INVERSE",
        pixel_data=pixel_data,
    )


def _check_native_length(h: _Header, path: Path) -> None:
    """Uncompressed PixelData must hold Rows x Columns pixels of BitsAllocated bits.

    Too few bytes is a truncated file. Too many, by a row or more, means Rows, Columns or BitsAllocated is damaged:
    pydicom would ignore the excess and return a smaller, scrambled image. Less than a row is padding, ignored.
    """
    if h.bits_allocated not in (8, 16, 32):  # 1-bit and invalid depths: pydicom's decoder checks and reports
        return
    n, expected, row = len(h.pixel_data), h.rows * h.cols * h.bits_allocated // 8, h.cols * h.bits_allocated // 8
    if expected <= n < expected + row:
        return
    what = "the file is truncated" if n < expected else f"{n - expected} bytes too many: one of these is damaged"
    raise CXRLoadError(
        path,
        f"PixelData holds {n} bytes, {expected} expected for Rows x Columns = {h.rows} x {h.cols} at BitsAllocated "
        f"{h.bits_allocated}: {what}.",
    )


def _native_pixels(h: _Header) -> np.ndarray | None:
    """Stored values of uncompressed little-endian unsigned 8/16-bit single-frame data, else ``None``.

    The common chest X-ray case, read as a read-only view of PixelData: pydicom's generic native decoder spends
    longer than the rest of the loading on copies this case does not need. The bits above BitsStored are *not*
    cleared yet: :func:`_mask_unused_bits` does it in place on the one copy made, the transposed one. Anything else
    (signed, big endian, deflated, compressed, 1/32-bit) goes through ``ds.pixel_array``.
    """
    if h.transfer_syntax not in _NATIVE_LE or h.signed:
        return None
    if h.bits_allocated not in (8, 16) or not 0 < h.bits_stored <= h.bits_allocated:
        return None
    dtype = "<u2" if h.bits_allocated == 16 else np.uint8
    return np.frombuffer(h.pixel_data, dtype=dtype, count=h.rows * h.cols).reshape(h.rows, h.cols)


def _transposed(pixels: np.ndarray) -> np.ndarray:
    """``(rows, cols)`` -> a C-contiguous ``(cols, rows)`` = ``(W, H)`` copy, MONAI's frame.

    A copy and not a ``.T`` view: torch kernels downstream (``Resize``'s interpolation, reductions) run several times
    slower on the transposed strides. It is made on the stored integers (half the bytes of float32) with torch,
    whose transpose kernel is an order of magnitude faster than numpy's strided copy, straight from ``pixels`` (a
    read-only view of PixelData included). Integers narrower than 32 bits are copied to the start of a float32
    buffer of one value per pixel (``copy.base``): :func:`_float32_chunks` turns them into float32 in that buffer,
    so the output is the only image-sized allocation (a fresh one costs a page fault per 4 KiB).
    """
    rows, cols = pixels.shape
    try:
        source = _as_tensor(pixels)
    except TypeError:  # a dtype torch does not hold (e.g. big-endian)
        return np.ascontiguousarray(pixels.T)
    if pixels.dtype.kind in "iu" and pixels.dtype.itemsize < 4:
        out = np.empty(rows * cols, dtype=np.float32).view(pixels.dtype)[: rows * cols].reshape(cols, rows)
    else:
        out = np.empty((cols, rows), dtype=pixels.dtype)
    torch.from_numpy(out).copy_(source.T)
    return out


def _as_tensor(pixels: np.ndarray) -> torch.Tensor:
    """``pixels`` as a tensor sharing its memory, read-only memory included (only ever read)."""
    if pixels.flags.writeable:
        return torch.from_numpy(pixels)
    try:  # numpy >= 2.1 exports read-only arrays through DLPack; torch.from_numpy would warn about them
        return torch.from_dlpack(pixels)
    except (BufferError, RuntimeError, TypeError, ValueError):
        return torch.from_numpy(pixels.copy())


def _float32_chunks(stored: np.ndarray, limit: int = 2**62) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """The float32 array (shape of ``stored``) that will hold the result, and ``(values, out)`` chunks of it.

    Every item of ``stored`` is in one ``values`` (flat), its result goes to the same place in ``out``. For a copy
    made by :func:`_transposed` (integers at the start of a float32 buffer), the result is that buffer
    (``stored.base``), filled in place: the chunks run from the end down, and chunk ``[a, b)`` writes bytes
    ``[4a, 4b)`` while the items not yet read lie below byte ``itemsize * b``, so ``b <= 4a / itemsize`` keeps
    each ``values`` intact until it is read; the last, short chunk (from item 0) is read from a copy. Otherwise the
    result is a fresh array. Chunks hold at most ``limit`` items; fill them in the order given.
    """
    n, itemsize = stored.size, stored.dtype.itemsize
    values, room = stored.reshape(-1), stored.base
    in_place = (
        isinstance(room, np.ndarray)
        and room.dtype == np.float32
        and room.size == n
        and itemsize < 4
        and stored.flags.c_contiguous
        and room.__array_interface__["data"][0] == stored.__array_interface__["data"][0]
    )
    if not in_place:
        out = np.empty(n, dtype=np.float32)
        return out.reshape(stored.shape), [(values[a : a + limit], out[a : a + limit]) for a in range(0, n, limit)]
    chunks, ratio, b = [], 4 // itemsize, n
    while b > 0:
        a = max(-(-b // ratio), b - limit)
        if a < _SMALL_CHUNK:  # read last: nothing is written below it any more
            chunks.append((values[:b].copy(), room[:b]))
            break
        chunks.append((values[a:b], room[a:b]))
        b = a
    return room.reshape(stored.shape), chunks


def _as_float32(stored: np.ndarray) -> np.ndarray:
    """``stored.astype(np.float32)``, in place in the buffer :func:`_transposed` leaves around its copies."""
    result, chunks = _float32_chunks(stored)
    for chunk, out in chunks:
        np.copyto(out, chunk, casting="unsafe")
    return result


def _mask_unused_bits(stored: np.ndarray, bits: int) -> np.ndarray:
    """Clear, in place, the bits above ``bits`` (BitsStored) of unsigned data, as pydicom's decoders do."""
    if stored.dtype.kind == "u" and 0 < bits < 8 * stored.dtype.itemsize:
        np.bitwise_and(stored, stored.dtype.type(2**bits - 1), out=stored)
    return stored


def _window(x: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing onto ``[0, 1]`` (float64 in, float64 out)."""
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / width))
    if function == "LINEAR_EXACT":
        lo, span, offset = center - width / 2.0, width, center
    else:  # LINEAR: the standard's (c - 0.5, w - 1) form; w == 1 degenerates to a threshold at c - 0.5
        lo, span, offset = center - 0.5 - (width - 1.0) / 2.0, width - 1.0, center - 0.5
    if span <= 0:
        return (x > lo).astype(np.float64)
    return np.clip((x - offset) / span + 0.5, 0.0, 1.0)


def _apply_lut(x: np.ndarray, lut: tuple[int, int, np.ndarray]) -> np.ndarray:
    """A VOI LUT (as :func:`_lut` reads it) applied to modality values, scaled to ``[0, 1]``.

    Implemented here rather than with ``pydicom.pixels.apply_voi``: pydicom 3.0.2 builds its index array in the
    LUT's output dtype, so an 8-bit LUT with more than 256 entries wraps its indices.
    """
    first, bits, table = lut
    index = np.clip(np.floor(x) - first, 0, table.size - 1).astype(np.intp)
    return table[index] / float(2**bits - 1)


def _normalize(x: np.ndarray, counts: np.ndarray | None, mode: str, percentiles: tuple[float, float]) -> np.ndarray:
    """Min-max or percentile scaling of ``x`` (each entry weighted by ``counts`` when given) onto ``[0, 1]``."""
    if mode == "percentile":
        lo, hi = np.percentile(x, percentiles, weights=counts, method="inverted_cdf")
    elif counts is None:
        lo, hi = x.min(), x.max()
    else:
        present = x[counts > 0]
        lo, hi = present.min(), present.max()
    if hi <= lo:  # a constant image has no contrast to stretch: black, not NaN
        return np.zeros_like(x)
    return np.clip((x - lo) / (hi - lo), 0.0, 1.0)


class LoadCXR(Transform):
    """Load a chest X-ray file as a float32 ``MetaTensor`` of shape ``(1, W, H)`` with values in ``[0, 1]``.

    DICOM (detected by the ``DICM`` marker or a ``.dcm``/``.dicom``/``.dic`` name) is read with pydicom and
    passed through modality LUT -> VOI -> MONOCHROME1 inversion (see the module docstring). Any other file is read
    with Pillow: 8-bit images are divided by 255, 16-bit by 65535 (no stretching, so the array equals
    ``monai.transforms.LoadImage``'s up to that factor); RGB/RGBA/LA files are taken to be greyscale stored as
    colour and channel 0 is kept; 32-bit float TIFFs are min-max scaled.

    Spatial axis 0 of the output is the image x (columns) and axis 1 the image y (rows): the transpose of the
    ``(rows, cols)`` numpy array, as MONAI's readers return. Meta (``img.meta``):

    - ``filename_or_obj``: the path read.
    - ``spacing``: ``[x, y]`` pixel size in mm from PixelSpacing, else ImagerPixelSpacing, else ``[1, 1]``;
      ``spacing_source`` says which (``"PixelSpacing"``, ``"ImagerPixelSpacing"``, ``"none"``).
    - ``affine`` / ``original_affine``: ``diag(sx, sy, 1, 1)``, so MONAI's ``Resize``/``Spacing``/``SaveImage``
      see the same spacing.
    - ``original_size`` and ``spatial_shape``: ``[W, H]`` as read.
    - ``view_position``: ViewPosition as written in the file (``""`` when absent, damaged or not DICOM).
    - ``photometric_interpretation``: as in the file; ``"MONOCHROME2"`` for non-DICOM images.
    - ``intensity``: how values reached ``[0, 1]`` (e.g. ``"window[0] LINEAR c=1024 w=2048"``, ``"voi_lut[0]"``,
      ``"minmax"``, ``"percentile(0.5, 99.5)"``, ``"/255"``).
    - ``dropped_tags``: the damaged optional elements that were dropped, comma-separated keywords in reading order
      (e.g. ``"PixelSpacing,WindowCenter"``); ``""`` when none. A string rather than a list, so that MONAI collates
      a batch mixing files with and without drops.

    Damaged files. An element of :data:`OPTIONAL_TAGS` (PixelSpacing, ImagerPixelSpacing, ViewPosition, the VOI
    LUT Sequence, WindowCenter, WindowWidth, VOILUTFunction) that cannot be read, or holds a value outside its
    definition (a spacing that is not two positive numbers, a window narrower than the standard allows, a LUT whose
    entries exceed its bit depth, text with control characters), is dropped with a :class:`CXRMetadataWarning`
    naming the file and the element, and the image is loaded as if it were absent: spacing from the next source or
    ``[1, 1]`` with ``spacing_source`` saying which, ``view_position`` ``""``, the next VOI source or
    ``normalize`` (a damaged window element drops that window). Only the elements the options make the loader
    read are checked. Damage to an element of :data:`ESSENTIAL_TAGS` is a :class:`CXRLoadError`, as is PixelData
    holding a row or more beyond Rows x Columns x BitsAllocated (pydicom would return a smaller, scrambled image)
    and Rows x Columns above ``2**28`` (a decoder would allocate it before the codestream disagreed).

    Args:
        voi: apply the file's VOI transform (VOI LUT Sequence or WindowCenter/WindowWidth). ``False`` skips it
            and normalises the modality-LUT output with ``normalize`` instead (e.g. for "FOR PROCESSING" data or
            to learn from the full dynamic range). Files without VOI tags are normalised the same way.
        window_index: which window (or VOI LUT item) to use when the file holds several.
        prefer_voi_lut: when both a VOI LUT Sequence and a window are present, use the LUT (pydicom's choice).
        normalize: ``"minmax"`` (the image's own range) or ``"percentile"`` (clip to ``percentiles`` of the image,
            then scale) for DICOMs without VOI; both are computed after the modality LUT, before inversion.
        percentiles: lower and upper percentile (0-100, inverted-CDF definition) for ``normalize="percentile"``.

    Raises:
        CXRLoadError: any failure to load the file, its message starting with the path (``err.path``) and any
            exception from pydicom, Pillow or a codec kept as ``__cause__``: missing, truncated or corrupt file; no
            PixelData; a damaged essential element (named with its tag); a transfer syntax whose decoder is not
            installed (the message names the packages that provide one); colour or multi-frame DICOM; zero-size
            image; a file that is neither DICOM nor an image Pillow reads; non-finite values after the LUTs; a
            ``window_index`` beyond the file's windows.
    """

    def __init__(
        self,
        voi: bool = True,
        window_index: int = 0,
        prefer_voi_lut: bool = True,
        normalize: str = "minmax",
        percentiles: tuple[float, float] = (0.5, 99.5),
    ) -> None:
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}.")
        if not 0 <= percentiles[0] < percentiles[1] <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}.")
        self.voi = voi
        self.window_index = window_index
        self.prefer_voi_lut = prefer_voi_lut
        self.normalize = normalize
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))

    def __call__(self, filename: str | PathLike) -> MetaTensor:
        """Load ``filename``; see the class docstring for the output."""
        path = Path(filename)
        try:
            if not path.is_file():
                raise CXRLoadError(path, "no such file." if not path.exists() else "not a regular file.")
            if _is_dicom(path):
                array, meta = self._read_dicom(path)
            else:
                array, meta = self._read_pil(path)
            return self._to_meta_tensor(array, meta, path)
        except CXRLoadError:
            raise
        except Exception as e:  # whatever a damaged file provokes deep inside, a long run must learn which file
            raise CXRLoadError(path, f"could not be loaded ({type(e).__name__}: {e}).") from e

    # DICOM -----------------------------------------------------------------------------------------------------
    def _read_dicom(self, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as e:  # InvalidDicomError, EOFError, struct.error, an unknown VR in the file meta, ...
            raise CXRLoadError(path, f"not a readable DICOM file ({type(e).__name__}: {e}).") from e
        if _TAG_OF["PixelData"] not in ds:
            if not _has_dicm_marker(path):
                raise CXRLoadError(path, "not a DICOM file: no 'DICM' marker and no PixelData element found.")
            raise CXRLoadError(path, "DICOM file has no PixelData element (truncated, or not an image object).")
        tags = _Tags(ds, path)
        h = _read_header(tags)
        stored = self._decode(ds, h, path)
        # one copy, transposed (PixelData itself is only read), then masked in place; decoded arrays are masked
        # again because the table path indexes by value, and a codec need not honour a BitsStored below the
        # codestream's depth
        stored = _mask_unused_bits(_transposed(stored), h.bits_stored)
        plan = self._plan(tags, h, path)  # after decoding: a file that fails there gets no warnings about its VOI
        unsigned = stored.dtype.kind == "u" and not h.signed
        if unsigned and 0 < h.bits_stored <= _FULL_TABLE_BITS and not self._affine_plan(h, plan):
            # a table over every BitsStored value spares the min/max passes
            array = self._apply_table(stored, ds, h, plan, path, full_domain=h.bits_stored)
        else:
            integer = stored.dtype.kind in "iu"
            affine = self._affine_form(h, plan, stored) if integer else None
            if affine is not None:
                array = self._apply_affine(stored, *affine)
            elif integer and int(stored.max()) - int(stored.min()) < _MAX_TABLE:
                array = self._apply_table(stored, ds, h, plan, path)
            else:
                values = self._chain(stored, None, ds, h, plan, path)
                self._check_finite(values, path)
                array = values.astype(np.float32)

        spacing, source = [1.0, 1.0], "none"
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            value = tags.optional(keyword, _spacing)
            if value is not None:
                # DICOM lists (row spacing = y, column spacing = x); MONAI's frame is (x, y)
                spacing, source = [value[1], value[0]], keyword
                break
        meta = {
            "spacing": torch.tensor(spacing, dtype=torch.float64),
            "spacing_source": source,
            "view_position": tags.optional("ViewPosition", _code, default="") or "",
            "photometric_interpretation": h.photometric,
            "intensity": plan["how"],
            # a string, not a list: MONAI collates meta per key, and lists of different lengths do not collate
            "dropped_tags": ",".join(tags.dropped),
        }
        return array, meta

    @staticmethod
    def _decode(ds: pydicom.Dataset, h: _Header, path: Path) -> np.ndarray:
        ts = h.transfer_syntax
        if ts is not None and ts.is_compressed:
            try:
                decoder = get_decoder(ts)
            except NotImplementedError as e:
                raise CXRLoadError(path, f"pydicom has no decoder for transfer syntax {ts.name} ({ts}).") from e
            if not decoder.is_available:
                needs = "; ".join(decoder.missing_dependencies) or "a pydicom decoding plugin"
                raise CXRLoadError(
                    path, f"no installed decoder for transfer syntax {ts.name} ({ts}); install one of: {needs}."
                )
        if ts is not None and not ts.is_compressed:
            _check_native_length(h, path)
        stored = _native_pixels(h)
        if stored is not None:
            return stored
        try:
            stored = ds.pixel_array
        except Exception as e:  # pydicom raises ValueError/RuntimeError/struct errors depending on the codec
            name = ts.name if ts is not None else "unknown transfer syntax"
            raise CXRLoadError(path, f"pixel data could not be decoded ({name}): {type(e).__name__}: {e}") from e
        if stored.shape != (h.rows, h.cols):
            raise CXRLoadError(path, f"decoded pixel data has shape {stored.shape}, expected ({h.rows}, {h.cols}).")
        return stored

    def _plan(self, tags: _Tags, h: _Header, path: Path) -> dict[str, Any]:
        """Decide the VOI step (LUT item, window or normalisation) and the polarity once per file.

        The VOI sources are tried in order (VOI LUT Sequence then window, or the reverse with
        ``prefer_voi_lut=False``); one that is absent, or damaged and dropped, passes to the next, and with none left
        the image is normalised. Only the elements of the sources tried are read.
        """
        plan: dict[str, Any] = {"voi": "normalize"}
        steps = (self._lut_plan, self._window_plan) if self.prefer_voi_lut else (self._window_plan, self._lut_plan)
        for step in steps if self.voi else ():
            found = step(tags, h, path)
            if found is not None:
                plan.update(found)
                break
        else:
            plan["how"] = "minmax" if self.normalize == "minmax" else f"percentile{self.percentiles}"
        plan["invert"] = h.invert
        if plan["invert"]:
            plan["how"] += ", inverted"
        return plan

    def _lut_plan(self, tags: _Tags, h: _Header, path: Path) -> dict[str, Any] | None:
        items = tags.optional("VOILUTSequence", list)
        if not items:
            return None
        if self.window_index >= len(items):
            raise CXRLoadError(path, f"window_index={self.window_index}, file has {len(items)} VOI LUT item(s).")
        lut = tags.guard("VOILUTSequence", lambda: _lut(items[self.window_index], h.signed))
        return None if lut is None else {"voi": "lut", "lut": lut, "how": f"voi_lut[{self.window_index}]"}

    def _window_plan(self, tags: _Tags, h: _Header, path: Path) -> dict[str, Any] | None:
        if not (tags.has("WindowCenter") and tags.has("WindowWidth")):
            return None
        centers = tags.optional("WindowCenter", _finite_numbers)
        widths = tags.optional("WindowWidth", _finite_numbers)
        function = tags.optional("VOILUTFunction", _voi_function, default="LINEAR")
        if centers is None or widths is None or function is None:  # absent, empty or dropped
            return None
        n_windows = min(len(centers), len(widths))
        if self.window_index >= n_windows:
            raise CXRLoadError(path, f"window_index={self.window_index}, file has {n_windows} window(s).")
        center, width = centers[self.window_index], widths[self.window_index]
        if width < (1.0 if function == "LINEAR" else 1e-12):  # PS3.3 C.11.2.1.2: >= 1 for LINEAR, > 0 otherwise
            tags.drop("WindowWidth", f"window {self.window_index} has width {width:g}, too small for {function}")
            return None
        return {
            "voi": "window",
            "center": center,
            "width": width,
            "function": function,
            "how": f"window[{self.window_index}] {function} c={center:g} w={width:g}",
        }

    @staticmethod
    def _modality(values: np.ndarray, ds: pydicom.Dataset, h: _Header) -> np.ndarray:
        """The modality LUT (PS3.3 C.11.1) as float64, from the checked header (pydicom's rules)."""
        if h.modality_lut:
            return np.asarray(apply_modality_lut(values, ds), dtype=np.float64)
        x = values.astype(np.float64)
        if h.rescale is not None:
            x *= h.rescale[0]
            x += h.rescale[1]
        return x

    def _chain(
        self,
        stored: np.ndarray,
        counts: np.ndarray | None,
        ds: pydicom.Dataset,
        h: _Header,
        plan: dict[str, Any],
        path: Path,
    ) -> np.ndarray:
        """Stored values -> modality LUT -> VOI or normalisation -> polarity, as float64 in ``[0, 1]``.

        ``counts`` (one per entry of ``stored``) turns ``stored`` into a histogram for the normalisation statistics.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            x = self._modality(stored, ds, h)
        if not np.isfinite(x).all():
            raise CXRLoadError(path, "non-finite values after the modality LUT (check RescaleSlope/RescaleIntercept).")
        if plan["voi"] == "lut":
            y = _apply_lut(x, plan["lut"])
        elif plan["voi"] == "window":
            y = _window(x, plan["center"], plan["width"], plan["function"])
        else:
            y = _normalize(x, counts, self.normalize, self.percentiles)
        return 1.0 - y if plan["invert"] else y

    def _apply_table(
        self,
        stored: np.ndarray,
        ds: pydicom.Dataset,
        h: _Header,
        plan: dict[str, Any],
        path: Path,
        full_domain: int = 0,
    ) -> np.ndarray:
        """Evaluate :meth:`_chain` once per stored value and look the image up in the result.

        The table spans ``[min, max]`` of ``stored``, or with ``full_domain=bits`` every value ``[0, 2**bits)`` of
        unsigned data masked to ``bits``.
        """
        if full_domain:
            lo, hi, index = 0, 2**full_domain - 1, stored
        else:
            lo, hi = int(stored.min()), int(stored.max())
            if stored.dtype.kind == "u":  # in place: `stored` is the loader's own copy, read no more after this
                index = np.subtract(stored, stored.dtype.type(lo), out=stored)
            else:
                index = stored.astype(np.int32) - lo
        values = np.arange(lo, hi + 1, dtype=np.int64).astype(stored.dtype)
        # min/max/percentiles over the values present, not over the table's domain
        counts = None
        if plan["voi"] == "normalize":
            counts = np.bincount(index.ravel(), minlength=values.size)
        table = self._chain(values, counts, ds, h, plan, path)
        self._check_finite(table, path)
        table = table.astype(np.float32)
        # blocks bound the intp copy numpy makes of the indices (8 bytes per pixel for the whole image otherwise);
        # indices are in range by construction; mode="raise" would buffer `out` (numpy docs), "wrap" measured fastest
        result, chunks = _float32_chunks(index, limit=_TAKE_BLOCK)
        for chunk, out in chunks:
            np.take(table, chunk, out=out, mode="wrap")
        return result

    def _affine_plan(self, h: _Header, plan: dict[str, Any]) -> bool:
        """Whether :meth:`_affine_form` applies (before looking at the pixels)."""
        if h.modality_lut:
            return False
        if plan["voi"] == "window":
            return plan["function"] == "LINEAR_EXACT" or (plan["function"] == "LINEAR" and plan["width"] > 1)
        return plan["voi"] == "normalize" and self.normalize == "minmax"

    def _affine_form(self, h: _Header, plan: dict[str, Any], stored: np.ndarray) -> tuple[float, float, float] | None:
        """``(o, k, h)`` with ``chain(s) == clip((s - o) * k + h, 0, 1)`` when the chain is that simple, else None.

        True for a linear modality LUT (slope/intercept) followed by a LINEAR (width > 1) or LINEAR_EXACT window or
        by min-max normalisation; the polarity flip folds into ``k`` and ``h``.
        """
        if h.modality_lut:
            return None
        slope, intercept = h.rescale if h.rescale is not None else (1.0, 0.0)
        if not np.isfinite([slope, intercept]).all() or slope == 0:
            return None
        if plan["voi"] == "window" and plan["function"] in ("LINEAR", "LINEAR_EXACT"):
            exact = plan["function"] == "LINEAR_EXACT"
            offset, span = (plan["center"], plan["width"]) if exact else (plan["center"] - 0.5, plan["width"] - 1.0)
            if span <= 0:
                return None
            o, k, b = (offset - intercept) / slope, slope / span, 0.5
        elif plan["voi"] == "normalize" and self.normalize == "minmax":
            lo, hi = float(stored.min()), float(stored.max())
            if hi == lo:
                o, k, b = lo, 0.0, 0.0
            else:  # min-max of slope * s + intercept, whatever the slope's sign
                o, k, b = (lo, 1.0 / (hi - lo), 0.0) if slope > 0 else (hi, -1.0 / (hi - lo), 0.0)
        else:
            return None
        if not np.isfinite([o, k]).all():  # let the float64 chain report it
            return None
        return (o, -k, 1.0 - b) if plan["invert"] else (o, k, b)

    @staticmethod
    def _apply_affine(stored: np.ndarray, o: float, k: float, h: float) -> np.ndarray:
        # float32 in place: (s - o) is exact for integer or half-integer offsets below 2**23, so only k rounds
        x, chunks = _float32_chunks(stored)
        for chunk, out in chunks:
            np.subtract(chunk, np.float32(o), out=out, dtype=np.float32)
        x *= np.float32(k)
        x += np.float32(h)
        return np.clip(x, 0.0, 1.0, out=x)

    @staticmethod
    def _check_finite(values: np.ndarray, path: Path) -> None:
        if not np.isfinite(values).all():
            raise CXRLoadError(
                path, "non-finite values after the VOI step (check WindowCenter/WindowWidth or the VOI LUT)."
            )

    # PNG / JPEG / TIFF ----------------------------------------------------------------------------------------
    @staticmethod
    def _read_pil(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        from PIL import Image, UnidentifiedImageError  # DICOM-only pipelines never load Pillow

        try:
            with Image.open(path) as img:
                img.load()
                mode = img.mode
                if mode in ("1", "P", "PA"):
                    img = img.convert("L")
                pixels = np.asarray(img)
        except UnidentifiedImageError as e:
            raise CXRLoadError(path, "neither DICOM nor an image format Pillow recognises (PNG/JPEG/TIFF).") from e
        except (OSError, SyntaxError, ValueError) as e:  # Pillow reports truncation/corruption as OSError
            raise CXRLoadError(path, f"corrupt or truncated image ({type(e).__name__}: {e}).") from e
        if pixels.ndim == 3:  # RGB/RGBA/LA: greyscale stored as colour
            pixels = pixels[..., 0]
        if pixels.size == 0:
            raise CXRLoadError(path, f"zero-size image {pixels.shape}.")
        pixels = _transposed(pixels)
        if pixels.dtype == np.uint8:
            array, how = _as_float32(pixels), "/255"
            array /= np.float32(255.0)
        elif pixels.dtype in (np.uint16, np.dtype(">u2"), np.dtype("<u2")) or (
            np.issubdtype(pixels.dtype, np.integer) and pixels.min() >= 0 and pixels.max() <= 65535
        ):
            array, how = _as_float32(pixels), "/65535"
            array /= np.float32(65535.0)
        elif np.issubdtype(pixels.dtype, np.floating):
            values = pixels.astype(np.float64)
            if not np.isfinite(values).all():
                raise CXRLoadError(path, "float image contains NaN or Inf.")
            array, how = _normalize(values, None, "minmax", (0.0, 100.0)).astype(np.float32), "minmax"
        else:
            raise CXRLoadError(path, f"unsupported Pillow mode {mode!r} (dtype {pixels.dtype}, outside 16 bits).")
        meta = {
            "spacing": torch.ones(2, dtype=torch.float64),
            "spacing_source": "none",
            "view_position": "",
            "photometric_interpretation": "MONOCHROME2",
            "intensity": how,
            "dropped_tags": "",
        }
        return array, meta

    # output ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _to_meta_tensor(array: np.ndarray, meta: dict[str, Any], path: Path) -> MetaTensor:
        # meta values are tensors, not numpy arrays: torch.load(weights_only=True) (PersistentDataset's default)
        # refuses numpy arrays, and MONAI then silently recomputes every cached item
        size = torch.tensor(array.shape, dtype=torch.int64)
        affine = torch.diag(torch.cat([meta["spacing"], torch.ones(2, dtype=torch.float64)]))
        meta.update(
            {
                "filename_or_obj": str(path),
                "original_size": size,
                "spatial_shape": size.clone(),
                "original_affine": affine.clone(),
                "original_channel_dim": 0,
            }
        )
        return MetaTensor(torch.from_numpy(array).unsqueeze(0), affine=affine, meta=meta)


class LoadCXRd(MapTransform):
    """Dictionary wrapper of :class:`LoadCXR`: replaces each path under ``keys`` by its loaded ``MetaTensor``.

    Args:
        keys: keys holding file paths.
        allow_missing_keys: skip keys absent from the data instead of raising ``KeyError``.
        kwargs: passed to :class:`LoadCXR`.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs: Any) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadCXR(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


LoadCXRD = LoadCXRDict = LoadCXRd
