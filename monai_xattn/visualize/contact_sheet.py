"""Contact sheets: a grid of chest X-rays with their boxes drawn, for looking at data and predictions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from monai_xattn.utils.display import draw_box_outlines, to_display

__all__ = ["draw_boxes", "contact_sheet"]

_PALETTE = ((255, 64, 64), (64, 200, 255), (80, 230, 80), (255, 200, 40), (220, 90, 255), (255, 140, 60))


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
    shape = np.shape(image)
    if len(shape) == 3 and shape[0] != 1:
        raise ValueError(f"expected one channel (1, W, H), got shape {shape}")
    canvas = Image.fromarray(to_display(image)).convert("RGB")
    if labels is None:
        colours = [_PALETTE[0]] * len(boxes)
    else:
        names = sorted(set(labels))  # equal labels share a colour
        colours = [_PALETTE[names.index(label) % len(_PALETTE)] for label in labels]
    return np.asarray(draw_box_outlines(canvas, boxes, colours, width, labels))


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
