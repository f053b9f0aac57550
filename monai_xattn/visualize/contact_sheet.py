"""Contact sheets: a grid of chest X-rays with their boxes drawn, for looking at data and predictions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["draw_boxes", "contact_sheet"]

_PALETTE = ((255, 64, 64), (64, 200, 255), (80, 230, 80), (255, 200, 40), (220, 90, 255), (255, 140, 60))


def _to_display(image: np.ndarray) -> np.ndarray:
    """``(W, H)`` or ``(1, W, H)`` image in MONAI's frame -> ``(H, W)`` uint8 rows for display, min-max scaled."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        if arr.shape[0] != 1:
            raise ValueError(f"expected one channel (1, W, H), got shape {arr.shape}")
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"expected a 2D image (W, H) or (1, W, H), got shape {arr.shape}")
    lo, hi = float(arr.min()), float(arr.max())
    return np.rint((arr.T - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray | Sequence[Sequence[float]] = (),
    labels: Sequence[str] | None = None,
    width: int = 1,
) -> np.ndarray:
    """Draw ``StandardMode`` boxes on an image.

    Args:
        image: ``(W, H)`` or ``(1, W, H)`` in MONAI's frame (spatial axis 0 = image x).
        boxes: ``(N, 4)`` ``[x0, y0, x1, y1]`` in the same frame.
        labels: one text per box, written at its top-left corner; equal labels share a colour.
        width: line width in pixels.

    Returns:
        ``(H, W, 3)`` uint8 RGB rows, ready for ``PIL.Image.fromarray``.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if labels is not None and len(labels) != len(boxes):
        raise ValueError(f"got {len(labels)} labels for {len(boxes)} boxes")
    canvas = Image.fromarray(_to_display(image)).convert("RGB")
    draw = ImageDraw.Draw(canvas)
    names = sorted(set(labels)) if labels is not None else []
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        color = _PALETTE[names.index(labels[k]) % len(_PALETTE)] if labels is not None else _PALETTE[0]
        # PIL's rectangle includes its end pixel; StandardMode's end is exclusive
        draw.rectangle([x0, y0, max(x0, x1 - 1), max(y0, y1 - 1)], outline=color, width=width)
        if labels is not None:
            draw.text((x0 + 2, y0 + 1), labels[k], fill=color)
    return np.asarray(canvas)


def contact_sheet(
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray] | None = None,
    labels: Sequence[Sequence[str]] | None = None,
    ncols: int = 4,
    tile: int | None = None,
    gap: int = 2,
) -> np.ndarray:
    """Tile images (with their boxes) into one RGB grid.

    Args:
        images: ``(W, H)`` or ``(1, W, H)`` images in MONAI's frame.
        boxes: per image, ``(N, 4)`` StandardMode boxes in that image's frame.
        labels: per image, one text per box.
        ncols: tiles per row.
        tile: side of each tile in pixels (default: the first image's largest side); boxes are drawn before
            resizing, so they stay on their lesions.
        gap: black pixels between tiles.

    Returns:
        ``(rows, cols, 3)`` uint8 RGB.
    """
    if not len(images):
        raise ValueError("contact_sheet needs at least one image")
    if boxes is not None and len(boxes) != len(images):
        raise ValueError(f"got boxes for {len(boxes)} images, but {len(images)} images")
    tile = tile or int(max(np.asarray(images[0]).shape[-2:]))
    nrows = -(-len(images) // ncols)
    sheet = np.zeros((nrows * (tile + gap) - gap, ncols * (tile + gap) - gap, 3), np.uint8)
    for k, image in enumerate(images):
        rgb = draw_boxes(image, boxes[k] if boxes is not None else (), labels[k] if labels is not None else None)
        rgb = np.asarray(Image.fromarray(rgb).resize((tile, tile), Image.Resampling.BILINEAR))
        r, c = divmod(k, ncols)
        sheet[r * (tile + gap) : r * (tile + gap) + tile, c * (tile + gap) : c * (tile + gap) + tile] = rgb
    return sheet
