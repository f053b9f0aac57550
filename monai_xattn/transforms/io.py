"""Load chest X-rays (DICOM, PNG, JPEG, TIFF) as float32 ``(1, W, H)`` MetaTensors in ``[0, 1]``.

MONAI's own readers disagree on chest X-ray DICOMs (``ITKReader`` inverts MONOCHROME1 before the rescale,
``PydicomReader`` never does; neither applies the VOI LUT or reads the CR/DX spacing tags), so the DICOM path here
pins one behaviour, the display pipeline of DICOM PS3.4 N.2:

    stored values -> modality LUT -> VOI (VOI LUT sequence, else window) -> MONOCHROME1 inversion -> [0, 1]

Every step maps the image to ``[0, 1]`` before the polarity step, so MONOCHROME1 is inverted exactly once, as
``1 - y``, on the range the previous step produced. When VOI is skipped (``voi=False``) or the file carries none,
the modality-LUT output is normalised by its min/max or by two percentiles instead (``normalize``).

Speed: uncompressed little-endian unsigned data (the usual CR/DX file) is read as a view of PixelData rather than
through pydicom's generic decoder, and transposed to MONAI's ``(W, H)`` frame while still integers, with torch. The
chain never runs in float64 per pixel: when it is a clipped affine map of the stored values (linear modality LUT,
then a LINEAR/LINEAR_EXACT window or min-max scaling) it runs as four in-place float32 passes; otherwise the
float64 chain is evaluated once per possible stored value (every value of data up to 12 bits, else the image's
``[min, max]``) and the image is one table lookup. Both agree with the per-pixel float64 chain to float32 rounding. ``benchmarks/load_cxr.py`` compares the whole
loader with a bare ``pydicom.dcmread(...).pixel_array`` read.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder

__all__ = ["CXRLoadError", "LoadCXR", "LoadCXRd", "LoadCXRD", "LoadCXRDict", "DICOM_SUFFIXES"]


#: file name endings read with pydicom even without the ``DICM`` preamble marker.
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")

_NORMALIZE = ("minmax", "percentile")
# tables over every value of up to 12-bit data (4,096 entries) are cheaper than finding the image's min and max
_FULL_TABLE_BITS = 12
_TAKE_BLOCK = 2**18  # pixels per np.take call
_NATIVE_LE = (pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian)
# beyond this many distinct stored values, the per-pixel chain is cheaper than building the table
_MAX_TABLE = 2**17


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


def _has_dicm_marker(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(128)
        return f.read(4) == b"DICM"


def _is_dicom(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or _has_dicm_marker(path)


def _native_pixels(ds: pydicom.Dataset, ts: pydicom.uid.UID | None, path: Path) -> np.ndarray | None:
    """Stored values of uncompressed little-endian unsigned 8/16-bit single-frame data, else ``None``.

    The common chest X-ray case, read as a read-only view of PixelData: pydicom's generic native decoder spends
    longer than the rest of the loading on copies this case does not need. The bits above BitsStored are *not*
    cleared yet: :func:`_mask_unused_bits` does it in the one copy the view needs anyway. Anything else (signed,
    big endian, deflated, compressed, 1/32-bit) goes through ``ds.pixel_array``.
    """
    if ts not in _NATIVE_LE or int(ds.get("PixelRepresentation", 0)) != 0:
        return None
    bits_allocated, bits_stored = int(ds.get("BitsAllocated", 0)), int(ds.get("BitsStored", 0))
    if bits_allocated not in (8, 16) or not 0 < bits_stored <= bits_allocated:
        return None
    rows, cols = int(ds.Rows), int(ds.Columns)
    raw = ds.PixelData
    expected = rows * cols * bits_allocated // 8
    if len(raw) < expected:
        raise CXRLoadError(path, f"PixelData holds {len(raw)} bytes, {expected} expected for {rows} x {cols} "
                           f"at {bits_allocated} bits: the file is truncated.")  # fmt: skip
    stored = np.frombuffer(raw, dtype="<u2" if bits_allocated == 16 else np.uint8, count=rows * cols)
    return stored.reshape(rows, cols)


def _transposed(pixels: np.ndarray) -> np.ndarray:
    """``(rows, cols)`` -> a C-contiguous ``(cols, rows)`` = ``(W, H)`` copy, MONAI's frame.

    A copy and not a ``.T`` view: torch kernels downstream (``Resize``'s interpolation, reductions) run several times
    slower on the transposed strides. It is made on the stored integers (half the bytes of float32) with torch,
    whose transpose kernel is an order of magnitude faster than numpy's strided copy.
    """
    if not pixels.flags.writeable:  # torch.from_numpy warns on read-only memory
        pixels = pixels.copy()
    try:
        return torch.from_numpy(pixels).T.contiguous().numpy()
    except TypeError:  # a dtype torch does not hold (e.g. big-endian)
        return np.ascontiguousarray(pixels.T)


def _mask_unused_bits(stored: np.ndarray, ds: pydicom.Dataset, copy: bool = False) -> np.ndarray:
    """Clear the bits above BitsStored of unsigned data, as pydicom's decoders do (a copy when ``copy``)."""
    bits = int(ds.get("BitsStored", 0) or 0)
    if stored.dtype.kind != "u" or not 0 < bits < 8 * stored.dtype.itemsize:
        return stored.copy() if copy else stored
    return stored & stored.dtype.type(2**bits - 1)


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


def _voi_lut(x: np.ndarray, item: pydicom.Dataset, signed: bool, path: Path) -> np.ndarray:
    """One VOI LUT Sequence item applied to modality values, scaled to ``[0, 1]``.

    Implemented here rather than with ``pydicom.pixels.apply_voi``: pydicom 3.0.2 builds its index array in the
    LUT's output dtype, so an 8-bit LUT with more than 256 entries wraps its indices.
    """
    n_entries, first, bits = (int(v) for v in item.LUTDescriptor)
    n_entries = n_entries or 65536
    if signed and first >= 2**15:  # LUTDescriptor is US or SS; a signed image's first value is two's complement
        first -= 2**16
    raw = item.LUTData
    if isinstance(raw, bytes):
        if len(raw) < 2 * n_entries:
            raise CXRLoadError(path, f"VOI LUT Data holds {len(raw) // 2} entries, LUT Descriptor says {n_entries}.")
        table = np.frombuffer(raw, dtype="<u2", count=n_entries)
    else:
        table = np.asarray(raw if isinstance(raw, Sequence) else [raw], dtype=np.int64)[:n_entries]
        if table.size < n_entries:
            raise CXRLoadError(path, f"VOI LUT Data holds {table.size} entries, LUT Descriptor says {n_entries}.")
    index = np.clip(np.floor(x) - first, 0, n_entries - 1).astype(np.intp)
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
    - ``view_position``: ViewPosition as written in the file (``""`` when absent or not DICOM).
    - ``photometric_interpretation``: as in the file; ``"MONOCHROME2"`` for non-DICOM images.
    - ``intensity``: how values reached ``[0, 1]`` (e.g. ``"window[0] LINEAR c=1024 w=2048"``, ``"voi_lut[0]"``,
      ``"minmax"``, ``"percentile(0.5, 99.5)"``, ``"/255"``).

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
        CXRLoadError: missing, truncated or corrupt file; no PixelData; a transfer syntax whose decoder is not
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
        if not path.is_file():
            raise CXRLoadError(path, "no such file." if not path.exists() else "not a regular file.")
        if _is_dicom(path):
            array, meta = self._read_dicom(path)
        else:
            array, meta = self._read_pil(path)
        return self._to_meta_tensor(array, meta, path)

    # DICOM -----------------------------------------------------------------------------------------------------
    def _read_dicom(self, path: Path) -> tuple[np.ndarray, dict[str, Any]]:
        try:
            ds = pydicom.dcmread(path, force=True)
        except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as e:
            raise CXRLoadError(path, f"not a readable DICOM file ({type(e).__name__}: {e}).") from e
        if "PixelData" not in ds:
            if not _has_dicm_marker(path):
                raise CXRLoadError(path, "not a DICOM file: no 'DICM' marker and no PixelData element found.")
            raise CXRLoadError(path, "DICOM file has no PixelData element (truncated, or not an image object).")
        samples = int(ds.get("SamplesPerPixel", 1))
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
        if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
            raise CXRLoadError(
                path,
                f"SamplesPerPixel={samples}, PhotometricInterpretation={photometric!r}: only single-channel "
                "MONOCHROME1/MONOCHROME2 chest X-rays are supported.",
            )
        if int(ds.get("NumberOfFrames", 1) or 1) != 1:
            raise CXRLoadError(path, f"multi-frame DICOM ({ds.NumberOfFrames} frames); a chest X-ray has one.")
        if not int(ds.get("Rows", 0)) or not int(ds.get("Columns", 0)):
            raise CXRLoadError(path, f"zero-size image (Rows={ds.get('Rows')}, Columns={ds.get('Columns')}).")
        stored = self._decode(ds, path)
        if not stored.flags.writeable:  # the PixelData view: one pass makes it a masked, writable copy
            stored = _mask_unused_bits(stored, ds, copy=True)
        stored = _transposed(stored)
        plan = self._plan(ds, path)
        bits = int(ds.get("BitsStored", 0) or 0)
        unsigned = stored.dtype.kind == "u" and int(ds.get("PixelRepresentation", 0)) == 0
        if unsigned and 0 < bits <= _FULL_TABLE_BITS and not self._affine_plan(ds, plan):
            # a table over every BitsStored value spares the min/max passes
            array = self._apply_table(stored, ds, plan, path, full_domain=bits)
        else:
            integer = stored.dtype.kind in "iu"
            affine = self._affine_form(ds, plan, stored) if integer else None
            if affine is not None:
                array = self._apply_affine(stored, *affine)
            elif integer and int(stored.max()) - int(stored.min()) < _MAX_TABLE:
                array = self._apply_table(stored, ds, plan, path)
            else:
                values = self._chain(stored, None, ds, plan, path)
                self._check_finite(values, path)
                array = values.astype(np.float32)

        spacing, source = [1.0, 1.0], "none"
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            value = ds.get(keyword)
            if value is not None and len(value) == 2 and all(float(v) > 0 for v in value):
                # DICOM lists (row spacing = y, column spacing = x); MONAI's frame is (x, y)
                spacing, source = [float(value[1]), float(value[0])], keyword
                break
        meta = {
            "spacing": torch.tensor(spacing, dtype=torch.float64),
            "spacing_source": source,
            "view_position": str(ds.get("ViewPosition", "") or ""),
            "photometric_interpretation": photometric,
            "intensity": plan["how"],
        }
        return array, meta

    @staticmethod
    def _decode(ds: pydicom.Dataset, path: Path) -> np.ndarray:
        ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
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
        stored = _native_pixels(ds, ts, path)
        if stored is not None:
            return stored
        try:
            stored = ds.pixel_array
        except Exception as e:  # pydicom raises ValueError/RuntimeError/struct errors depending on the codec
            name = ts.name if ts is not None else "unknown transfer syntax"
            raise CXRLoadError(path, f"pixel data could not be decoded ({name}): {type(e).__name__}: {e}") from e
        if stored.ndim != 2 or stored.size == 0:
            raise CXRLoadError(path, f"decoded pixel data has shape {stored.shape}, expected (rows, cols).")
        return stored

    def _plan(self, ds: pydicom.Dataset, path: Path) -> dict[str, Any]:
        """Decide the VOI step (LUT item, window or normalisation) and the polarity once per file."""
        has_lut = bool(ds.get("VOILUTSequence"))
        has_window = ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None
        plan: dict[str, Any] = {"voi": "normalize"}
        if self.voi and has_lut and (self.prefer_voi_lut or not has_window):
            items = ds.VOILUTSequence
            if self.window_index >= len(items):
                raise CXRLoadError(path, f"window_index={self.window_index}, file has {len(items)} VOI LUT item(s).")
            plan.update(voi="lut", item=items[self.window_index], how=f"voi_lut[{self.window_index}]")
        elif self.voi and has_window:
            centers = np.atleast_1d(np.asarray(ds.WindowCenter, dtype=np.float64))
            widths = np.atleast_1d(np.asarray(ds.WindowWidth, dtype=np.float64))
            n_windows = min(len(centers), len(widths))
            if self.window_index >= n_windows:
                raise CXRLoadError(path, f"window_index={self.window_index}, file has {n_windows} window(s).")
            center, width = float(centers[self.window_index]), float(widths[self.window_index])
            function = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
            if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
                raise CXRLoadError(path, f"unknown VOILUTFunction {function!r}.")
            if not np.isfinite([center, width]).all() or width < (1.0 if function == "LINEAR" else 1e-12):
                raise CXRLoadError(path, f"invalid window: WindowCenter {center}, WindowWidth {width} ({function}).")
            plan.update(
                voi="window",
                center=center,
                width=width,
                function=function,
                how=f"window[{self.window_index}] {function} c={center:g} w={width:g}",
            )
        else:
            plan["how"] = "minmax" if self.normalize == "minmax" else f"percentile{self.percentiles}"
        # a conformant MONOCHROME1 file may also say PresentationLUTShape INVERSE: the same inversion, not a second
        photometric = str(ds.get("PhotometricInterpretation", "")).strip()
        plan["invert"] = photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")).strip() == "INVERSE"
        if plan["invert"]:
            plan["how"] += ", inverted"
        return plan

    def _chain(
        self, stored: np.ndarray, counts: np.ndarray | None, ds: pydicom.Dataset, plan: dict[str, Any], path: Path
    ) -> np.ndarray:
        """Stored values -> modality LUT -> VOI or normalisation -> polarity, as float64 in ``[0, 1]``.

        ``counts`` (one per entry of ``stored``) turns ``stored`` into a histogram for the normalisation statistics.
        """
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
        if not np.isfinite(x).all():
            raise CXRLoadError(path, "non-finite values after the modality LUT (check RescaleSlope/RescaleIntercept).")
        if plan["voi"] == "lut":
            y = _voi_lut(x, plan["item"], int(ds.get("PixelRepresentation", 0)) == 1, path)
        elif plan["voi"] == "window":
            y = _window(x, plan["center"], plan["width"], plan["function"])
        else:
            y = _normalize(x, counts, self.normalize, self.percentiles)
        return 1.0 - y if plan["invert"] else y

    def _apply_table(
        self, stored: np.ndarray, ds: pydicom.Dataset, plan: dict[str, Any], path: Path, full_domain: int = 0
    ) -> np.ndarray:
        """Evaluate :meth:`_chain` once per stored value and look the image up in the result.

        The table spans ``[min, max]`` of ``stored``, or with ``full_domain=bits`` every value ``[0, 2**bits)`` of
        unsigned data masked to ``bits``.
        """
        if full_domain:
            lo, hi, index = 0, 2**full_domain - 1, stored
        else:
            lo, hi = int(stored.min()), int(stored.max())
            index = stored - stored.dtype.type(lo) if stored.dtype.kind == "u" else stored.astype(np.int32) - lo
        values = np.arange(lo, hi + 1, dtype=np.int64).astype(stored.dtype)
        # min/max/percentiles over the values present, not over the table's domain
        counts = None
        if plan["voi"] == "normalize":
            counts = np.bincount(index.ravel(), minlength=values.size)
        table = self._chain(values, counts, ds, plan, path)
        self._check_finite(table, path)
        table = table.astype(np.float32)
        out = np.empty(index.shape, dtype=np.float32)
        # row blocks bound the intp copy numpy makes of the index (8 bytes per pixel for the whole image otherwise);
        # indices are in range by construction; mode="raise" would buffer `out` (numpy docs), "wrap" measured fastest
        step = max(1, _TAKE_BLOCK // max(1, index.shape[1]))
        for start in range(0, index.shape[0], step):
            np.take(table, index[start : start + step], out=out[start : start + step], mode="wrap")
        return out

    def _affine_plan(self, ds: pydicom.Dataset, plan: dict[str, Any]) -> bool:
        """Whether :meth:`_affine_form` applies (before looking at the pixels)."""
        if "ModalityLUTSequence" in ds:
            return False
        if plan["voi"] == "window":
            return plan["function"] == "LINEAR_EXACT" or (plan["function"] == "LINEAR" and plan["width"] > 1)
        return plan["voi"] == "normalize" and self.normalize == "minmax"

    def _affine_form(
        self, ds: pydicom.Dataset, plan: dict[str, Any], stored: np.ndarray
    ) -> tuple[float, float, float] | None:
        """``(o, k, h)`` with ``chain(s) == clip((s - o) * k + h, 0, 1)`` when the chain is that simple, else None.

        True for a linear modality LUT (slope/intercept) followed by a LINEAR (width > 1) or LINEAR_EXACT window or
        by min-max normalisation; the polarity flip folds into ``k`` and ``h``.
        """
        if "ModalityLUTSequence" in ds:
            return None
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        if not np.isfinite([slope, intercept]).all() or slope == 0:
            return None
        if plan["voi"] == "window" and plan["function"] in ("LINEAR", "LINEAR_EXACT"):
            exact = plan["function"] == "LINEAR_EXACT"
            offset, span = (plan["center"], plan["width"]) if exact else (plan["center"] - 0.5, plan["width"] - 1.0)
            if span <= 0:
                return None
            o, k, h = (offset - intercept) / slope, slope / span, 0.5
        elif plan["voi"] == "normalize" and self.normalize == "minmax":
            lo, hi = float(stored.min()), float(stored.max())
            if hi == lo:
                o, k, h = lo, 0.0, 0.0
            else:  # min-max of slope * s + intercept, whatever the slope's sign
                o, k, h = (lo, 1.0 / (hi - lo), 0.0) if slope > 0 else (hi, -1.0 / (hi - lo), 0.0)
        else:
            return None
        if not np.isfinite([o, k]).all():  # let the float64 chain report it
            return None
        return (o, -k, 1.0 - h) if plan["invert"] else (o, k, h)

    @staticmethod
    def _apply_affine(stored: np.ndarray, o: float, k: float, h: float) -> np.ndarray:
        # float32 in place: (s - o) is exact for integer or half-integer offsets below 2**23, so only k rounds
        x = np.subtract(stored, np.float32(o), dtype=np.float32)
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
        from PIL import Image, UnidentifiedImageError

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
            array, how = pixels.astype(np.float32) / 255.0, "/255"
        elif pixels.dtype in (np.uint16, np.dtype(">u2"), np.dtype("<u2")) or (
            np.issubdtype(pixels.dtype, np.integer) and pixels.min() >= 0 and pixels.max() <= 65535
        ):
            array, how = pixels.astype(np.float32) / 65535.0, "/65535"
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
