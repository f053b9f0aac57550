"""Speed of SIIM RLE decoding/encoding against the per-run loop of the Kaggle reference, at 1024 x 1024.

Run: ``python benchmarks/siim_rle.py [--masks 200] [--size 1024] [--repeat 3]``.

- ``reference decode``: SIIM's ``mask_functions.rle2mask`` logic: one Python step per run over a flat array,
  ``reshape(W, H)`` then transpose.
- ``reference encode``: the same per-run idea in reverse (``np.diff`` for run edges, one Python step per run to
  build the string), i.e. already faster than the per-pixel ``mask2rle`` of the starter kit.
- ``ours``: :func:`monai_xattn.data.siim.rle_decode` / :func:`rle_encode` (run edges with ``np.add.at`` +
  ``cumsum``, strings with one ``join``); decoding also accepts several strings (united).

Prints masks/s, the ratio ours/reference measured in this run (> 1 = ours faster) and the peak traced Python
memory of each (``tracemalloc``, a separate run). Masks: 1-3 random ellipses, 2-15 % of the image, like SIIM's
pneumothoraces (hundreds of runs per string).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from monai_xattn.data.siim import rle_decode, rle_encode


def make_masks(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = []
    for _ in range(n):
        mask = np.zeros((size, size), bool)
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.2, 0.8, 2) * size
            ry, rx = rng.uniform(0.08, 0.25, 2) * size
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        masks.append(mask.astype(np.uint8))
    return masks


def reference_decode(rle: str, height: int, width: int) -> np.ndarray:
    mask = np.zeros(width * height, np.uint8)
    values = [int(v) for v in rle.split()]
    position = 0
    for gap, length in zip(values[0::2], values[1::2], strict=True):
        position += gap
        mask[position : position + length] = 1
        position += length
    return mask.reshape(width, height).T


def reference_encode(mask: np.ndarray) -> str:
    flat = np.concatenate([[0], mask.T.ravel(), [0]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(flat))
    out, last = [], 0
    for start, end in zip(edges[0::2], edges[1::2], strict=True):
        out += [str(start - last), str(end - start)]
        last = end
    return " ".join(out) if out else "-1"


def timed(fn, items, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - t0)
    return len(items) / best


def peak(fn, items) -> float:
    tracemalloc.start()
    for item in items:
        fn(item)
    _, top = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return top / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--masks", type=int, default=200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size
    masks = make_masks(args.masks, size)
    strings = [rle_encode(m) for m in masks]
    # same answers before timing anything
    for m, s in zip(masks[:20], strings[:20], strict=True):
        assert reference_encode(m) == s
        assert np.array_equal(reference_decode(s, size, size), rle_decode(s, size, size))
    runs = np.mean([len(s.split()) // 2 for s in strings])
    print(f"{args.masks} masks {size}x{size}, {runs:.0f} runs per string on average")
    cases = [
        ("decode", lambda s: reference_decode(s, size, size), lambda s: rle_decode(s, size, size), strings),
        ("encode", reference_encode, rle_encode, masks),
    ]
    for name, ref, ours, items in cases:
        r, o = timed(ref, items, args.repeat), timed(ours, items, args.repeat)
        print(
            f"{name}: reference {r:8.1f}/s  ours {o:8.1f}/s  ratio ours/reference {o / r:5.2f}  "
            f"peak MiB reference {peak(ref, items[:20]):.1f} ours {peak(ours, items[:20]):.1f}"
        )


if __name__ == "__main__":
    main()
