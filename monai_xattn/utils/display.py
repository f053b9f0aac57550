"""The one way an image in MONAI's frame becomes a picture, and boxes are drawn on it.

MONAI's 2D image is ``(C, W, H)``: spatial axis 0 is the image x (columns). A picture (Pillow, PNG, a figure
panel) is ``(H, W)`` rows x columns, so :func:`to_display` transposes once, here; boxes stay in MONAI's
``StandardMode`` ``[x0, y0, x1, y1]``, whose ``(x, y)`` are already a picture's ``(column, row)``.

Here, below ``engines`` and ``visualize``, because both the detection writer and the figures draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = ["Colour", "draw_box_outlines", "to_display"]

Colour = tuple[int, int, int]
"""An RGB colour, 0-255 per channel."""


def to_display(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """MONAI-frame image -> grey picture rows, min-max scaled to the full 8-bit range.

    Args:
        image: ``(C, W, H)`` (channel 0 is drawn) or ``(W, H)``, tensor or array, any real dtype.

    Returns:
        ``(H, W)`` uint8, row = image y; a constant image is black.

    Raises:
        ValueError: ``image`` is neither 2D nor 3D.
    """
    arr = torch.as_tensor(image).detach().float().cpu()
    if arr.ndim == 3:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"image must be (C, W, H) or (W, H), got shape {tuple(arr.shape)}")
    rows = arr.t().numpy()
    lo, hi = float(rows.min()), float(rows.max())
    if hi <= lo:
        return np.zeros(rows.shape, np.uint8)
    return np.rint((rows - lo) / (hi - lo) * 255).astype(np.uint8)


def draw_box_outlines(
    picture: Image.Image,
    boxes: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
    colours: Colour | Sequence[Colour],
    width: int = 1,
    labels: Sequence[str] | None = None,
    scale: float = 1.0,
) -> Image.Image:
    """Outline ``StandardMode`` boxes on a picture, in place.

    Args:
        picture: an RGB picture of the image (e.g. ``Image.fromarray(to_display(image)).convert("RGB")``,
            possibly resized by ``scale``).
        boxes: ``(N, 4)`` ``[x0, y0, x1, y1]`` in the image's pixels (MONAI's frame: x = column).
        colours: one RGB colour for every box, or one per box.
        width: line width in pixels.
        labels: one text per box, written inside its top-left corner.
        scale: picture pixels per image pixel.

    Returns:
        ``picture``.
    """
    array = np.asarray(torch.as_tensor(boxes).detach().cpu(), dtype=np.float64).reshape(-1, 4) * scale
    per_box = len(colours) == len(array) and all(isinstance(c, Sequence) for c in colours)
    draw = ImageDraw.Draw(picture)
    for k, (x0, y0, x1, y1) in enumerate(array):
        colour = tuple(colours[k]) if per_box else tuple(colours)
        # PIL's rectangle includes its end pixel; StandardMode's end is exclusive
        x_end, y_end = max(x0, x1 - 1), max(y0, y1 - 1)
        if x_end == x0 or y_end == y0:  # one pixel thin: PIL would draw a degenerate rectangle two pixels thick
            draw.line([(x0, y0), (x_end, y_end)], fill=colour, width=1)
        else:
            draw.rectangle([x0, y0, x_end, y_end], outline=colour, width=width)
        if labels is not None:
            draw.text((x0 + 2, y0 + 1), labels[k], fill=colour)
    return picture
