"""SIIM run-length encoding (RLE) of binary masks, in the file's ``(H, W)`` frame and in MONAI's ``(W, H)`` frame.

RLE convention (Kaggle SIIM ``mask_functions.py``): pixels are numbered over the **column-major** flattening of
the ``H x W`` image (index ``x * H + y``); a string is ``start length`` pairs.

- ``relative`` (the original ``train-rle.csv``): each start is a gap counted from the end of the previous run
  (from pixel 0 for the first run).
- ``absolute`` (Kaggle's standard RLE, reportedly used by ``stage_2_train.csv``): 1-based pixel positions.

``"-1"`` (or an empty string) is an empty mask. :func:`rle_decode` / :func:`rle_encode` work on ``(H, W)`` numpy
arrays (row = image y), as Kaggle's code does; :func:`rle_decode_wh` / :func:`rle_encode_wh` work on MONAI's
``(W, H)`` layout, where the column-major numbering is plain C order -- the usual ``reshape(W, H).T`` of Kaggle
decoders is that transpose.

The codec sits in ``utils`` because the SIIM adapter (``data``), the mask transform (``transforms``), the
submission writer (``engines``) and the phantom generator all speak it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "RLE_MODES",
    "detect_rle_mode",
    "rle_decode",
    "rle_decode_wh",
    "rle_encode",
    "rle_encode_wh",
    "rle_pairs",
    "rle_runs",
]

RLE_MODES = ("relative", "absolute")
_EMPTY = ("", "-1")
_MAX_VALUE = 2**40  # far beyond any image; sums of fewer than 2**23 such values stay inside int64


def rle_pairs(rle: str) -> tuple[np.ndarray, np.ndarray]:
    """``(starts_or_gaps, lengths)`` of one RLE string, each ``(N,)`` int64, read without an image size.

    Raises:
        ValueError: not integers, an odd count, or a negative value.
    """
    text = rle.strip()
    if text in _EMPTY:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    try:
        values = np.array(text.split(), dtype=np.int64)
    except (ValueError, OverflowError):  # OverflowError: a number beyond int64
        raise ValueError(f"RLE {text[:40]!r}: values must be integers") from None
    if len(values) % 2:
        raise ValueError(f"RLE {text[:40]!r}: odd number of values ({len(values)}); expected start/length pairs")
    if (values < 0).any():
        raise ValueError(f"RLE {text[:40]!r}: negative start or length")
    return values[0::2], values[1::2]


def rle_runs(rle: str, n_pixels: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """0-based ``(starts, ends)`` (end exclusive), each ``(N,)``, of the runs of ``rle`` in the flattened image.

    Raises:
        ValueError: an unknown ``mode``, a malformed string, or a run past pixel ``n_pixels``.
    """
    if mode not in RLE_MODES:
        raise ValueError(f"mode must be one of {RLE_MODES}, got {mode!r}")
    first, lengths = rle_pairs(rle)
    largest = int(max(first.max(), lengths.max())) if len(first) else 0
    if largest > _MAX_VALUE:
        # the sums below would wrap round to small numbers for values near 2**63 and let the string pass
        raise ValueError(
            f"{mode} RLE {rle.strip()[:40]!r} runs to pixel {largest} or beyond but the image has {n_pixels} pixels"
        )
    if mode == "relative":
        starts = np.cumsum(first + lengths) - lengths
    else:
        if (first < 1).any():
            raise ValueError(f"absolute RLE {rle.strip()[:40]!r}: positions are 1-based, found 0")
        starts = first - 1
    ends = starts + lengths
    if len(ends) and ends.max() > n_pixels:
        raise ValueError(
            f"{mode} RLE {rle.strip()[:40]!r} runs to pixel {int(ends.max())} but the image has {n_pixels} pixels"
        )
    return starts, ends


def rle_decode(rle: str | Sequence[str], height: int, width: int, mode: str = "relative") -> np.ndarray:
    """Decode SIIM run-length encoding(s) into a mask.

    Args:
        rle: one RLE string, or several (SIIM's rows of one image), whose masks are united.
            ``"-1"`` or ``""`` is an empty mask.
        height: image rows H.
        width: image columns W.
        mode: ``"relative"`` (SIIM ``train-rle.csv``) or ``"absolute"`` (1-based positions).

    Returns:
        ``(H, W)`` uint8 mask of 0/1, row = image y. It is the transposed view of a C-contiguous ``(W, H)``
        array, so ``mask.T`` is MONAI's ``(W, H)`` layout without a copy.

    Raises:
        ValueError: malformed string, or a run past the end of the ``H * W`` image.
    """
    n = int(height) * int(width)
    strings = [rle] if isinstance(rle, str) else list(rle)
    bounds = [rle_runs(s, n, mode) for s in strings]
    starts = np.concatenate([np.zeros(0, np.int64), *(b[0] for b in bounds)])
    ends = np.concatenate([np.zeros(0, np.int64), *(b[1] for b in bounds)])
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    flat = np.zeros(n, np.uint8)
    if len(starts) and (starts[1:] >= ends[:-1]).all():
        # disjoint runs (any single relative string): the flat mask up to the last run is alternating
        # gap/run segments, written by one np.repeat
        gaps = starts - np.concatenate([[0], ends[:-1]])
        counts = np.stack([gaps, ends - starts], axis=1).ravel()
        flat[: ends[-1]] = np.repeat(np.tile(np.array([0, 1], np.uint8), len(starts)), counts)
    elif len(starts):
        # overlapping runs (several rows of one image): pixel k of run r is starts[r] + k, painted by index
        lengths = ends - starts
        pixels = np.arange(lengths.sum()) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        flat[pixels] = 1
    return flat.reshape(width, height).T


def rle_encode(mask: np.ndarray, mode: str = "relative") -> str:
    """Encode a ``(H, W)`` mask (non-zero = inside) as SIIM RLE; ``"-1"`` when empty.

    ``rle_decode(rle_encode(m), H, W, mode)`` equals ``m != 0``; ``rle_encode(rle_decode(s, ...))`` equals
    ``s`` for any string whose runs are non-empty and do not touch or overlap.
    """
    if mode not in RLE_MODES:
        raise ValueError(f"mode must be one of {RLE_MODES}, got {mode!r}")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D (H, W), got shape {mask.shape}")
    # column-major flattening, zero-padded at both ends, written in place: every run has a rising and a
    # falling edge, so the nonzero differences alternate start, end
    padded = np.zeros(mask.size + 2, np.int8)
    np.not_equal(mask.T, 0, out=padded[1:-1].reshape(mask.shape[1], mask.shape[0]))
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[0::2], edges[1::2]
    if not len(starts):
        return "-1"
    first = starts - np.concatenate([[0], ends[:-1]]) if mode == "relative" else starts + 1
    return " ".join(map(str, np.stack([first, ends - starts], axis=1).ravel().tolist()))


def rle_decode_wh(rle: str | Sequence[str], spatial_size: Sequence[int], mode: str = "relative") -> np.ndarray:
    """:func:`rle_decode` into MONAI's frame.

    Args:
        rle: one RLE string or several (united); ``[]``, ``"-1"`` or ``""`` give an empty mask.
        spatial_size: ``(W, H)`` of the image the RLE was written for.
        mode: ``"relative"`` or ``"absolute"``.

    Returns:
        ``(W, H)`` C-contiguous uint8 mask of 0/1 (spatial axis 0 = image x); no copy is made.
    """
    if len(spatial_size) != 2:
        raise ValueError(f"spatial_size must be (W, H), got {tuple(spatial_size)}")
    width, height = (int(s) for s in spatial_size)
    return rle_decode(rle, height=height, width=width, mode=mode).T


def rle_encode_wh(mask: np.ndarray, mode: str = "relative") -> str:
    """:func:`rle_encode` of a ``(W, H)`` mask in MONAI's frame (non-zero = inside); ``"-1"`` when empty."""
    return rle_encode(np.asarray(mask).T, mode)


def detect_rle_mode(rles: Iterable[tuple[str, int] | tuple[str, int, str]]) -> tuple[str, str]:
    """Decide whether a dataset's RLE strings are relative or absolute.

    A string can be absolute iff its starts strictly increase, runs do not overlap and the last run ends
    within the image; it can be relative iff its gaps and lengths add up to at most the image size. Strings that
    fit neither reading are bad whatever the mode (the adapter drops their images) and do not vote.

    Args:
        rles: ``(rle, n_pixels)`` or ``(rle, n_pixels, where)`` for every non-empty string of the dataset;
            ``where`` (e.g. ``"<ImageId> (line n)"``) is quoted in the error.

    Returns:
        ``(mode, why)``; when every string fits both readings (e.g. single runs) the SIIM original,
        ``relative``, is returned and ``why`` says so.

    Raises:
        ValueError: for a malformed string, or when some strings fit only one reading and others only the other
            (naming one of each).
    """
    n_total = n_both = n_neither = 0
    only_abs: list[str] = []
    only_rel: list[str] = []
    for k, (rle, n_pixels, *where) in enumerate(rles):
        first, lengths = rle_pairs(rle)
        if not len(first):
            continue
        n_total += 1
        if max(first.max(), lengths.max()) > n_pixels:  # also keeps the sums below from overflowing
            n_neither += 1
            continue
        ends = first + lengths - 1
        fits_abs = bool((first >= 1).all() and (first[1:] > ends[:-1]).all() and ends[-1] <= n_pixels)
        fits_rel = bool(first.sum() + lengths.sum() <= n_pixels)
        label = where[0] if where else f"string #{k}"
        n_both += fits_abs and fits_rel
        n_neither += not (fits_abs or fits_rel)
        if fits_abs and not fits_rel:
            only_abs.append(label)
        if fits_rel and not fits_abs:
            only_rel.append(label)
    ignored = f"; {n_neither} fit neither reading" if n_neither else ""
    if n_total == n_neither:
        return "relative", f"no usable non-empty RLE string; mode irrelevant{ignored}"
    if only_abs and only_rel:
        raise ValueError(
            f"RLE strings fit neither reading consistently: {len(only_abs)} fit only absolute (e.g. {only_abs[0]}), "
            f"{len(only_rel)} only relative (e.g. {only_rel[0]}) of {n_total}; pass rle_mode explicitly"
        )
    if only_abs:
        return "absolute", f"{len(only_abs)} of {n_total} strings overrun the image when read as relative{ignored}"
    if only_rel:
        return "relative", f"{len(only_rel)} of {n_total} strings are not valid absolute RLE{ignored}"
    return "relative", f"all {n_both} strings fit both readings; assumed relative (SIIM train-rle.csv){ignored}"
