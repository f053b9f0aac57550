"""Seeded byte-level fuzzing of DICOM loading: ``LoadCXR`` on mutated copies of synthetic chest X-ray DICOMs.

Each source of :data:`SOURCES` is a small file written with the project's own writer (both polarities, a modality
LUT as rescale and as a sequence, a VOI LUT Sequence, JPEG 2000, JPEG baseline and RLE). Each gets the same number
of seeded mutations of every kind in :data:`MUTATIONS` (header byte flips, truncations, pixel-data flips, zeroed and
duplicated spans, damage to one optional or one essential element), and each load is classified:

- ``image``: a float32 ``MetaTensor`` of shape ``(1, W, H)``, finite, within ``[0, 1]``, whose meta names the file;
  every element in ``meta["dropped_tags"]`` was announced by a ``CXRMetadataWarning`` naming the file and it;
- ``error naming the file``: a ``CXRLoadError`` whose message holds the file's path;
- ``other``: anything else: another exception, an error naming no file, a wrong or non-finite image, a silent drop,
  or more than :data:`TIME_LIMIT_S` seconds on one file.

The fuzz test fails on any ``other``. Two more tests damage each optional element (the image must load as if the
element were absent, with a warning naming the file and the element) and each essential one (an error naming the
file and the element). ``python tests/reliability/test_fuzz_dicom.py`` prints the outcome table that
``docs/reliability.md`` holds between its ``fuzz table dicom`` markers; a test checks that the two agree.
"""

from __future__ import annotations

import signal
import struct
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from pydicom.datadict import dictionary_description, tag_for_keyword
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag

from monai_xattn.data.dicom_writer import write_cxr_dicom
from monai_xattn.transforms.io import (
    ESSENTIAL_TAGS,
    OPTIONAL_TAGS,
    CXRLoadError,
    CXRMetadataWarning,
    LoadCXR,
)

START, END = "<!-- fuzz table dicom: generated -->", "<!-- end of fuzz table dicom -->"
SEED = 2021
ROWS, COLS = 40, 48  # rows != cols, small enough for hundreds of loads in a few seconds
PER_KIND = 7  # mutations of each kind per source
TIME_LIMIT_S = 5.0
OUTCOMES = ("image", "error naming the file", "other")
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_BAD_VR = b"U*"  # "Unknown Value Representation '0x55 0x2a'", as the real-file fuzz of the issue met it


def _stored(bits: int) -> np.ndarray:
    # smooth ramp plus noise: compresses like an image, and every VOI path sees a spread of values
    ramp = np.add.outer(np.arange(ROWS) * (2**bits - 1) // (2 * ROWS), np.arange(COLS) * (2**bits - 1) // (2 * COLS))
    noise = np.random.default_rng(bits).integers(0, 2 ** (bits - 3), (ROWS, COLS))
    return np.clip(ramp + noise, 0, 2**bits - 1)


def _lut_item(table: np.ndarray, first: int, bits: int, **extra: Any) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.LUTDescriptor = [table.size % 65536, first, bits]
    item.LUTData = table.astype("<u2").tobytes()
    item["LUTData"].VR = "OW"
    for keyword, value in extra.items():
        setattr(item, keyword, value)
    return item


def _modality_lut_sequence() -> DicomSequence:
    table = (4095 - np.arange(4096)).astype(np.uint16)  # an inverting modality LUT, as some CR vendors write
    return DicomSequence([_lut_item(table, 0, 16, ModalityLUTType="US")])


#: source kind -> keyword arguments of ``write_cxr_dicom`` (12-bit stored values unless ``bits_stored`` says).
SOURCES: dict[str, dict[str, Any]] = {
    "MONOCHROME2, LINEAR window, both spacings": dict(
        window=([2048.0], [3000.0]), pixel_spacing=(0.2, 0.2), imager_pixel_spacing=(0.25, 0.25)
    ),
    "MONOCHROME1 DX, two SIGMOID windows, INVERSE": dict(
        photometric="MONOCHROME1",
        modality="DX",
        window=([1800.0, 2400.0], [2500.0, 3500.0]),
        voi_lut_function="SIGMOID",
        imager_pixel_spacing=(0.139, 0.139),
        view_position="AP",
        extra={"PresentationLUTShape": "INVERSE"},
    ),
    "rescale slope/intercept + window": dict(
        rescale=(0.5, -1024.0), window=([0.0], [1500.0]), voi_lut_function="LINEAR_EXACT", pixel_spacing=(0.2, 0.2)
    ),
    "Modality LUT Sequence": dict(extra={"ModalityLUTSequence": _modality_lut_sequence()}),
    "VOI LUT Sequence + window": dict(
        photometric="MONOCHROME1",
        voi_lut=(0, 16, (np.sqrt(np.arange(4096) / 4095.0) * 65535).astype(np.uint16)),
        window=([2048.0], [4096.0]),
        imager_pixel_spacing=(0.15, 0.15),
    ),
    "JPEG 2000 lossless, MONOCHROME1": dict(
        transfer_syntax="jpeg2000_lossless",
        photometric="MONOCHROME1",
        window=([2048.0], [3000.0]),
        pixel_spacing=(0.2, 0.2),
        extra={"NumberOfFrames": 1},
    ),
    "JPEG baseline, 8-bit": dict(
        transfer_syntax="jpeg_baseline", bits_stored=8, window=([128.0], [200.0]), pixel_spacing=(0.2, 0.2)
    ),
    "RLE lossless, MONOCHROME1": dict(transfer_syntax="rle_lossless", photometric="MONOCHROME1"),
}


def write_source(folder: Path, name: str, kind: str, **overrides: Any) -> Path:
    """The source file of ``kind`` (``overrides`` replace writer arguments; ``None`` removes one)."""
    kwargs = {**SOURCES[kind], **overrides}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return write_cxr_dicom(folder / name, _stored(kwargs.get("bits_stored", 12)), **kwargs)


# --- locating elements in the bytes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Element:
    """Where one element sits in a file: tag at ``start``, VR at ``start + 4``, length field, value."""

    start: int
    vr: bytes
    length_at: int
    length_size: int
    value_at: int
    length: int


def _tag_bytes(keyword: str) -> bytes:
    return struct.pack("<HH", *divmod(tag_for_keyword(keyword), 0x10000))


def _pixel_data_start(data: bytes) -> int:
    k = data.find(_tag_bytes("PixelData") + b"O")  # OB or OW
    return k if k >= 0 else len(data)


def _starts(data: bytes, keyword: str, lo: int, hi: int) -> list[int]:
    """Offsets of ``keyword``'s tag followed by an upper-case VR in ``data[lo:hi]``."""
    key, found = _tag_bytes(keyword), []
    k = data.find(key, lo, hi)
    while k >= 0:
        if data[k + 4 : k + 6].isupper():
            found.append(k)
        k = data.find(key, k + 1, hi)
    return found


def locate(data: bytes, keyword: str, within: str | None = None) -> Element:
    """The one explicit-VR little-endian element ``keyword`` in ``data`` (inside the element ``within`` if given).

    A byte search for the tag followed by an upper-case VR, before the pixel data: the writer's files hold every
    element once, and the search asserts it rather than trusting it.
    """
    lo, hi = 0, _pixel_data_start(data)
    if keyword == "PixelData":
        lo, hi = hi, len(data)
    if within is not None:
        outer = locate(data, within)
        lo, hi = outer.value_at, outer.value_at + outer.length
    starts = _starts(data, keyword, lo, hi)
    assert len(starts) == 1, f"{keyword} found {len(starts)} times"
    start = starts[0]
    vr = data[start + 4 : start + 6]
    length_at, size = (start + 8, 4) if vr in _LONG_VRS else (start + 6, 2)
    (length,) = struct.unpack_from("<I" if size == 4 else "<H", data, length_at)
    if length == 0xFFFFFFFF:  # undefined length (encapsulated pixel data, sequences): up to the end
        length = hi - (length_at + size)
    return Element(start, vr, length_at, size, length_at + size, length)


def damage_vr(data: bytes, keyword: str, within: str | None = None) -> bytes:
    e = locate(data, keyword, within)
    return data[: e.start + 4] + _BAD_VR + data[e.start + 6 :]


def damage_value(data: bytes, keyword: str, value: bytes, at: int = 0, within: str | None = None) -> bytes:
    """``value`` written over the element's value from byte ``at`` on."""
    e = locate(data, keyword, within)
    assert at + len(value) <= e.length
    k = e.value_at + at
    return data[:k] + value + data[k + len(value) :]


# --- mutations ---------------------------------------------------------------------------------------------------
def _header_flip(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    k = int(rng.integers(128, locate(data, "PixelData").start))
    out = bytearray(data)
    out[k] ^= int(rng.integers(1, 256))
    return bytes(out), f"byte {k} flipped"


def _truncation(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    k = int(rng.integers(0, len(data)))
    return data[:k], f"cut at {k} of {len(data)}"


def _pixel_flip(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    pixels = locate(data, "PixelData")
    out = bytearray(data)
    spots = rng.integers(pixels.value_at, len(data), int(rng.integers(1, 9)))
    for k in spots:
        out[k] ^= int(rng.integers(1, 256))
    return bytes(out), f"{len(spots)} pixel-data bytes flipped"


def _zeroed(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    k, n = int(rng.integers(128, len(data))), int(rng.integers(1, 65))
    return data[:k] + bytes(len(data[k : k + n])) + data[k + n :], f"{n} bytes zeroed at {k}"


def _duplicated(data: bytes, rng: np.random.Generator) -> tuple[bytes, str]:
    k, n, to = int(rng.integers(128, len(data))), int(rng.integers(1, 65)), int(rng.integers(128, len(data)))
    return data[:to] + data[k : k + n] + data[to:], f"{n} bytes from {k} repeated at {to}"


def _present(data: bytes, keywords: tuple[str, ...]) -> list[str]:
    header = _pixel_data_start(data)
    return [kw for kw in keywords if kw == "PixelData" or _starts(data, kw, 0, header)]


def _element_damage(data: bytes, rng: np.random.Generator, keywords: tuple[str, ...]) -> tuple[bytes, str]:
    """One element of ``keywords`` that the file holds: its VR, one value byte, or its length field damaged."""
    keyword = str(rng.choice(_present(data, keywords)))
    e = locate(data, keyword)
    mode = str(rng.choice(["vr", "value", "length"]))
    out = bytearray(data)
    if mode == "vr":
        out[e.start + 4 : e.start + 6] = bytes(rng.integers(0x20, 0x7F, 2, dtype=np.uint8))
    elif mode == "value" and e.length:
        k = e.value_at + int(rng.integers(0, min(e.length, 64)))
        out[k] = int(rng.choice([0x00, 0x01, 0x79, 0x23, 0xFF, out[k] ^ 0x10]))  # NUL, control, 'y', '#', ...
    else:
        delta = int(rng.choice([-3, -2, -1, 1, 2, 3, 64]))
        new = max(0, min(e.length + delta, 2 ** (8 * e.length_size) - 2))
        out[e.length_at : e.length_at + e.length_size] = new.to_bytes(e.length_size, "little")
    return bytes(out), f"{keyword} {mode}"


#: mutation kind -> ``mutate(data, rng) -> (bytes, description)``
MUTATIONS: dict[str, Callable[[bytes, np.random.Generator], tuple[bytes, str]]] = {
    "header byte flip": _header_flip,
    "truncation": _truncation,
    "pixel-data flip": _pixel_flip,
    "zeroed span": _zeroed,
    "duplicated span": _duplicated,
    "optional element damaged": lambda data, rng: _element_damage(data, rng, OPTIONAL_TAGS),
    "essential element damaged": lambda data, rng: _element_damage(data, rng, ESSENTIAL_TAGS),
}


def mutants(source: bytes, seed: int) -> list[tuple[str, str, bytes]]:
    """``PER_KIND`` seeded mutants of ``source`` per mutation kind: ``(kind, description, bytes)``."""
    rng = np.random.default_rng(seed)
    out = []
    for kind, mutate in MUTATIONS.items():
        for _ in range(PER_KIND):
            data, description = mutate(source, rng)
            while data == source:  # e.g. a span zeroed where it was zero already: draw again, still seeded
                data, description = mutate(source, rng)
            out.append((kind, description, data))
    return out


# --- classifying one load ----------------------------------------------------------------------------------------
class _Hang(BaseException):
    """Raised by the alarm; not an ``Exception``, or the loader's own catch-all would report it as a file error."""


def _alarm(signum, frame):
    raise _Hang()


def classify(load: Callable[[Path], Any], path: Path, limit_s: float = TIME_LIMIT_S) -> tuple[str, str, str]:
    """Load ``path`` and return ``(outcome, dropped, detail)``; ``outcome`` one of :data:`OUTCOMES`, ``dropped``
    the image's ``dropped_tags``."""
    alarm = hasattr(signal, "SIGALRM")  # absent on Windows: the elapsed time is still checked afterwards
    if alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limit_s)
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            img = load(path)
    except _Hang:
        return "other", "", f"still running after {limit_s:.1f} s"
    except CXRLoadError as exc:
        if str(path) not in str(exc):
            return "other", "", f"CXRLoadError naming no file: {exc}"
        return "error naming the file", "", str(exc)[len(str(path)) + 2 :][:200]
    except Exception as exc:  # noqa: BLE001 - every other exception is the outcome this test exists to catch
        return "other", "", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    if seconds > limit_s:  # code that blocks the alarm (a C decoder) is still caught, afterwards
        return "other", "", f"took {seconds:.1f} s"
    problem = _image_problem(img, path, caught)
    dropped = img.meta.get("dropped_tags", "") if isinstance(img, MetaTensor) else ""
    return ("other", dropped, problem) if problem else ("image", dropped, "")


def _image_problem(img: Any, path: Path, caught: list[warnings.WarningMessage]) -> str:
    if not isinstance(img, MetaTensor) or img.dtype != torch.float32:
        return f"not a float32 MetaTensor: {type(img).__name__} {getattr(img, 'dtype', '')}"
    if img.ndim != 3 or img.shape[0] != 1 or min(img.shape[1:]) < 1:
        return f"shape {tuple(img.shape)}, (1, W, H) expected"
    if not torch.isfinite(img).all():
        return "non-finite values"
    if img.min() < 0 or img.max() > 1:
        return f"values in [{float(img.min())}, {float(img.max())}], outside [0, 1]"
    if img.meta.get("filename_or_obj") != str(path):
        return f"meta names {img.meta.get('filename_or_obj')!r}"
    said = [str(w.message) for w in caught if issubclass(w.category, CXRMetadataWarning)]
    for keyword in filter(None, img.meta.get("dropped_tags", "").split(",")):
        if not any(str(path) in text and keyword in text for text in said):
            return f"{keyword} dropped without a warning naming the file and it"
    return ""


# --- the run -----------------------------------------------------------------------------------------------------
def run_fuzz(folder: Path, load: Callable[[Path], Any] | None = None) -> dict[str, list[tuple[str, str, str, str]]]:
    """Every mutant of every source through ``load``: ``{source: [(mutation kind, outcome, dropped, detail)]}``."""
    load = load or LoadCXR()
    outcomes = {}
    for s, kind in enumerate(SOURCES):
        source = write_source(folder, f"source{s}.dcm", kind).read_bytes()
        rows = []
        for m, (mutation, description, data) in enumerate(mutants(source, SEED + s)):
            path = folder / f"s{s}_m{m:03d}.dcm"
            path.write_bytes(data)
            outcome, dropped, detail = classify(load, path)
            rows.append((mutation, outcome, dropped, f"{description}: {detail}" if detail else description))
        outcomes[kind] = rows
    return outcomes


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> dict[str, list[tuple[str, str, str, str]]]:
    return run_fuzz(tmp_path_factory.mktemp("fuzz_dicom"))


def test_every_mutant_loads_or_fails_naming_the_file(fuzzed):
    for kind, rows in fuzzed.items():
        counts = Counter(outcome for _, outcome, _, _ in rows)
        dropped = sum(bool(d) for _, o, d, _ in rows if o == "image")
        print(
            f"{kind}: {len(rows)} mutants: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES) + f" ({dropped} "
            "images with dropped optional elements)"
        )
    others = [f"{kind} / {m}: {detail}" for kind, rows in fuzzed.items() for m, o, _, detail in rows if o == "other"]
    assert not others, f"{len(others)} unclear outcomes:\n" + "\n".join(others[:20])


def test_mutants_are_seeded_and_reach_every_outcome(fuzzed, tmp_path):
    source = write_source(tmp_path, "a.dcm", next(iter(SOURCES))).read_bytes()
    assert mutants(source, 7) == mutants(source, 7) and mutants(source, 7) != mutants(source, 8)
    assert all(data != source for _, _, data in mutants(source, 7))
    rows = [row for rows in fuzzed.values() for row in rows]
    outcomes = Counter((mutation, outcome) for mutation, outcome, _, _ in rows)
    # the fuzz is only worth its counts if it both keeps images and provokes errors, and damages optional elements
    # in ways the loader notices (dropped) rather than only in ways it cannot see
    assert outcomes["pixel-data flip", "image"] > 0 and outcomes["truncation", "error naming the file"] > 0
    assert outcomes["essential element damaged", "error naming the file"] > 0
    assert any(dropped for mutation, outcome, dropped, _ in rows if mutation == "optional element damaged")


def test_classifier_catches_what_is_not_clear(tmp_path):
    """Each kind of ``other`` is recognised, and an image or an error naming the file is not flagged."""
    path = write_source(tmp_path, "a.dcm", next(iter(SOURCES)))
    good = LoadCXR()(path)

    def raises(exc):
        def load(p):
            raise exc

        return load

    def returns(value, warn=""):
        def load(p):
            if warn:
                warnings.warn(warn, CXRMetadataWarning, stacklevel=1)
            return value

        return load

    def with_meta(img, **meta):
        out = img.clone()
        out.meta.update(meta)
        return out

    assert classify(LoadCXR(), path)[0] == "image"
    assert classify(raises(CXRLoadError(path, "damaged")), path)[0] == "error naming the file"
    assert classify(raises(CXRLoadError("elsewhere.dcm", "damaged")), path)[0] == "other"
    assert classify(raises(ValueError("could not convert string to float: '0y000'")), path)[0] == "other"
    assert classify(raises(NotImplementedError("Unknown Value Representation")), path)[0] == "other"
    assert classify(lambda p: time.sleep(3), path, limit_s=0.2)[0] == "other"
    assert classify(returns(good.numpy()), path)[0] == "other"
    assert classify(returns(good[0]), path)[0] == "other"  # (W, H): a channel lost
    assert classify(returns(good * float("nan")), path)[0] == "other"
    assert classify(returns(good * 2 + 1), path)[0] == "other"
    assert classify(returns(with_meta(good, dropped_tags="PixelSpacing")), path)[0] == "other"  # silent drop
    said = f"{path}: damaged optional element PixelSpacing (0028,0030) dropped"
    assert classify(returns(with_meta(good, dropped_tags="PixelSpacing"), said), path)[:2] == ("image", "PixelSpacing")


# --- targeted damage: optional elements keep the image, essential ones are errors ------------------------------------
# optional element -> (source kind, writer overrides for the damaged file, for the reference file: the same file
# without what the damage makes unusable; a damaged window element drops the whole window)
_NO_WINDOW = {"window": None, "voi_lut_function": None}
_OPTIONAL_CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "PixelSpacing": ("MONOCHROME2, LINEAR window, both spacings", {}, {"pixel_spacing": None}),
    "ImagerPixelSpacing": ("MONOCHROME1 DX, two SIGMOID windows, INVERSE", {}, {"imager_pixel_spacing": None}),
    "ViewPosition": ("MONOCHROME1 DX, two SIGMOID windows, INVERSE", {}, {"view_position": ""}),
    "WindowCenter": ("rescale slope/intercept + window", {}, _NO_WINDOW),
    "WindowWidth": ("MONOCHROME1 DX, two SIGMOID windows, INVERSE", {}, _NO_WINDOW),
    "VOILUTFunction": ("MONOCHROME1 DX, two SIGMOID windows, INVERSE", {}, _NO_WINDOW),
    "VOILUTSequence": ("VOI LUT Sequence + window", {}, {"voi_lut": None}),
}
# value damage: bytes written over the value's start (a DS that is no number, a CS with a control character, a LUT
# descriptor claiming 99 bits per entry)
_BAD_VALUE = {"ViewPosition": b"\x01", "VOILUTSequence": struct.pack("<H", 99)}


def _damage_optional(data: bytes, keyword: str, mode: str) -> bytes:
    if keyword == "VOILUTSequence":  # inside the item: damage to the SQ framing itself is a duplicated/zeroed span
        if mode == "vr":
            return damage_vr(data, "LUTDescriptor", within=keyword)
        return damage_value(data, "LUTDescriptor", _BAD_VALUE[keyword], at=4, within=keyword)
    if mode == "vr":
        return damage_vr(data, keyword)
    return damage_value(data, keyword, _BAD_VALUE.get(keyword, b"y"))


def test_optional_and_essential_lists_are_disjoint_and_cover_the_cases():
    assert not set(OPTIONAL_TAGS) & set(ESSENTIAL_TAGS)
    assert set(_OPTIONAL_CASES) == set(OPTIONAL_TAGS)
    assert set(_ESSENTIAL_CASES) == set(ESSENTIAL_TAGS)


@pytest.mark.parametrize("mode", ["vr", "value"])
@pytest.mark.parametrize("keyword", OPTIONAL_TAGS)
def test_damaged_optional_element_keeps_the_image_and_warns(tmp_path, keyword, mode):
    kind, damaged_kwargs, reference_kwargs = _OPTIONAL_CASES[keyword]
    path = write_source(tmp_path, "damaged.dcm", kind, **damaged_kwargs)
    reference = LoadCXR()(write_source(tmp_path, "reference.dcm", kind, **reference_kwargs))
    path.write_bytes(_damage_optional(path.read_bytes(), keyword, mode))
    with pytest.warns(CXRMetadataWarning) as record:
        img = LoadCXR()(path)
    messages = [str(w.message) for w in record if issubclass(w.category, CXRMetadataWarning)]
    assert len(messages) == 1 and str(path) in messages[0] and keyword in messages[0], messages
    assert img.meta["dropped_tags"] == keyword
    # loaded as if the element were absent: same pixels, same spacing (or its fallback), view and VOI record
    np.testing.assert_array_equal(img.numpy(), reference.numpy())
    for key in ("spacing_source", "view_position", "intensity", "photometric_interpretation"):
        assert img.meta[key] == reference.meta[key], key
    np.testing.assert_array_equal(img.meta["spacing"], reference.meta["spacing"])
    assert reference.meta["dropped_tags"] == ""


def test_images_with_and_without_dropped_elements_collate(tmp_path):
    # the meta representation of a drop must not break MONAI's batching of mixed images
    kind = "MONOCHROME2, LINEAR window, both spacings"
    clean = write_source(tmp_path, "clean.dcm", kind)
    damaged = write_source(tmp_path, "damaged.dcm", kind)
    damaged.write_bytes(damage_vr(damage_vr(damaged.read_bytes(), "PixelSpacing"), "WindowCenter"))
    with pytest.warns(CXRMetadataWarning):
        batch = list_data_collate([{"image": LoadCXR()(p)} for p in (clean, damaged)])
    first, second = batch["image"].meta["dropped_tags"]
    assert first == "" and sorted(second.split(",")) == ["PixelSpacing", "WindowCenter"]
    assert batch["image"].meta["spacing"].tolist() == [[0.2, 0.2], [0.25, 0.25]]


def test_strict_mode_turns_a_drop_into_an_error(tmp_path):
    path = write_source(tmp_path, "a.dcm", "MONOCHROME2, LINEAR window, both spacings")
    path.write_bytes(damage_vr(path.read_bytes(), "PixelSpacing"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CXRMetadataWarning)
        with pytest.raises(CXRLoadError, match="PixelSpacing") as info:
            LoadCXR()(path)
    assert info.value.path == str(path)


_MOD = "Modality LUT Sequence"
_RESCALE = "rescale slope/intercept + window"
_DX = "MONOCHROME1 DX, two SIGMOID windows, INVERSE"
_J2K = "JPEG 2000 lossless, MONOCHROME1"
# essential element -> (source kind, value damage: (bytes written over the value's start, offset))
_ESSENTIAL_CASES: dict[str, tuple[str, bytes]] = {
    "TransferSyntaxUID": (_RESCALE, b"9.9"),  # "9.9.840.10008.1.2.1": no transfer syntax pydicom knows
    "SamplesPerPixel": (_RESCALE, struct.pack("<H", 3)),
    "PhotometricInterpretation": (_RESCALE, b"y"),
    "NumberOfFrames": (_J2K, b"y"),
    "Rows": (_RESCALE, struct.pack("<H", ROWS // 2)),  # half the rows: PixelData holds twice the bytes
    "Columns": (_RESCALE, struct.pack("<H", COLS * 2)),  # twice the columns: PixelData holds half
    "BitsAllocated": (_RESCALE, struct.pack("<H", 8)),
    "BitsStored": (_RESCALE, struct.pack("<H", 20)),
    "PixelRepresentation": (_RESCALE, struct.pack("<H", 2)),
    "RescaleSlope": (_RESCALE, b"y"),
    "RescaleIntercept": (_RESCALE, b"y"),
    "ModalityLUTSequence": (_MOD, struct.pack("<H", 99)),  # inside the item: a LUT of 99 bits per entry
    "PresentationLUTShape": (_DX, b"y"),
    "PixelData": (_RESCALE, b""),  # the file cut inside the pixel data
}


def _names_element(message: str, keyword: str) -> bool:
    tag = str(Tag(tag_for_keyword(keyword)))
    return any(name in message for name in (keyword, tag, tag.upper(), dictionary_description(keyword)))


@pytest.mark.parametrize("mode", ["vr", "value"])
@pytest.mark.parametrize("keyword", ESSENTIAL_TAGS)
def test_damaged_essential_element_is_an_error_naming_the_file_and_it(tmp_path, keyword, mode):
    kind, bad = _ESSENTIAL_CASES[keyword]
    path = write_source(tmp_path, "a.dcm", kind)
    data = path.read_bytes()
    if keyword == "PixelData":  # long-VR framing: a damaged VR desynchronises the parser, so both cut the data
        e = locate(data, keyword)
        data = data[: e.value_at + e.length // (2 if mode == "vr" else 3)]
    elif keyword == "ModalityLUTSequence":
        data = (
            damage_vr(data, "LUTDescriptor", within=keyword)
            if mode == "vr"
            else damage_value(data, "LUTDescriptor", bad, at=4, within=keyword)
        )
    else:
        data = damage_vr(data, keyword) if mode == "vr" else damage_value(data, keyword, bad)
    path.write_bytes(data)
    with pytest.raises(CXRLoadError) as info:
        LoadCXR()(path)
    message = str(info.value)
    assert message.startswith(str(path)) and info.value.path == str(path), message
    assert _names_element(message, keyword), message
    if mode == "vr" and keyword != "PixelData":  # pydicom's own exception is kept for the traceback
        assert info.value.__cause__ is not None, message


# --- docs ---------------------------------------------------------------------------------------------------------
def markdown_table(outcomes: dict[str, list[tuple[str, str, str, str]]]) -> str:
    """The docs table: outcome counts per source kind, then per mutation kind, and the versions that produced them."""
    header = "| {} | mutants | image | of which with dropped optional elements | error naming the file | other |"
    rows = []
    totals: Counter = Counter()
    by_mutation: dict[str, Counter] = {m: Counter() for m in MUTATIONS}
    for kind, results in outcomes.items():
        counts = Counter(outcome for _, outcome, _, _ in results)
        counts["dropped"] = sum(bool(dropped) for _, outcome, dropped, _ in results if outcome == "image")
        totals.update(counts)
        for mutation, outcome, dropped, _ in results:
            by_mutation[mutation].update([outcome] + (["dropped"] if dropped and outcome == "image" else []))
        rows.append((kind, len(results), counts))

    def line(name: str, n: int, c: Counter) -> str:
        return f"| {name} | {n} | {c['image']} | {c['dropped']} | {c['error naming the file']} | {c['other']} |"

    out = [header.format("source file"), "|---|---|---|---|---|---|"]
    out += [line(kind, n, c) for kind, n, c in rows]
    out.append(line("**all**", sum(n for _, n, _ in rows), totals))
    out += ["", header.format("mutation"), "|---|---|---|---|---|---|"]
    out += [line(m, sum(c.values()) - c["dropped"], c) for m, c in by_mutation.items()]
    n = sum(n for _, n, _ in rows)
    libraries = ", ".join(f"{p} {version(p)}" for p in ("pydicom", "pylibjpeg-openjpeg", "pylibjpeg-libjpeg", "pillow"))
    out += [
        "",
        f"{n} mutants of {len(outcomes)} sources of {ROWS} x {COLS} pixels (seed {SEED}, {PER_KIND} per mutation "
        f"kind and source): {totals['image']} images, {totals['error naming the file']} errors naming the file, "
        f"{totals['other']} other. Counts from {libraries}; other versions may move mutants between image and error.",
    ]
    return "\n".join(out)


def test_docs_fuzz_table_dicom_matches_the_outcomes(fuzzed, reliability_docs_block):
    block = reliability_docs_block(START, END)
    assert block == markdown_table(fuzzed).strip(), (
        "docs/reliability.md is out of date: paste the output of `python tests/reliability/test_fuzz_dicom.py`"
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = markdown_table(run_fuzz(Path(tmp)))
    sys.stdout.write(table + "\n")
