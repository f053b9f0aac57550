"""The one way an image in MONAI's frame becomes a picture, and boxes are drawn on it.

MONAI's 2D image is ``(C, W, H)``: spatial axis 0 is the image x (columns). A picture (Pillow, PNG, a figure
panel) is ``(H, W)`` rows x columns, so :func:`to_display` transposes once, here; boxes stay in MONAI's
``StandardMode`` ``[x0, y0, x1, y1]``, whose ``(x, y)`` are already a picture's ``(column, row)``.

:func:`detection_overlay` is the picture a person reads after inference: the radiograph at a readable size with
the few best boxes, their scores and (for the cross-attention model) the predicted attributes.

Here, below ``engines`` and ``visualize``, because both the detection writer and the figures draw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "OVERLAY_COLOUR",
    "Colour",
    "detection_overlay",
    "draw_box_outlines",
    "overlay_font",
    "to_display",
    "wrap_words",
]

Colour = tuple[int, int, int]
"""An RGB colour, 0-255 per channel."""

OVERLAY_COLOUR: Colour = (255, 64, 0)
"""Predicted boxes on :func:`detection_overlay`'s pictures: orange, far from any grey of the radiograph."""


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


def overlay_font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (FreeType); the fixed bitmap font where Pillow has no FreeType."""
    try:
        return ImageFont.load_default(size=max(1, int(size)))
    except ImportError:  # Pillow built without FreeType: the bitmap font cannot scale, but text still shows
        return ImageFont.load_default()


def wrap_words(prefix: str, words: Sequence[str], width: float, font: ImageFont.ImageFont) -> list[str]:
    """``prefix`` then the comma-separated ``words``, broken into lines of at most ``width`` pixels in ``font``.

    A word wider than ``width`` gets a line of its own; no words give ``prefix + "(none)"``.
    """
    lines, line = [], prefix
    for word in words:
        candidate = line + word if line == prefix else f"{line}, {word}"
        if line != prefix and font.getlength(candidate) > width:
            lines.append(line + ",")
            line = word
        else:
            line = candidate
    return [*lines, line + ("(none)" if line == prefix else "")]


def detection_overlay(
    image: torch.Tensor | np.ndarray,
    boxes: torch.Tensor | np.ndarray | Sequence[Sequence[float]],
    scores: torch.Tensor | np.ndarray | Sequence[float],
    size: int = 1024,
    top_k: int | None = 3,
    min_score: float = 0.0,
    attributes: Mapping[str, float] | None = None,
    colour: Colour = OVERLAY_COLOUR,
) -> Image.Image:
    """The radiograph at a readable size with its best boxes, each with its score, and optionally a caption.

    The picture is :func:`to_display` of ``image`` resized (Lanczos) so that its long side is ``size`` pixels, the
    aspect ratio kept; the boxes are scaled by the same factor. Line width and text scale with ``size``
    (``size / 256`` and ``size / 40`` pixels: 4 and 26 at 1024), so a picture looks the same at any size. Each
    drawn box has its score (two decimals) on a label of its colour above its top-left corner (inside the box when
    the box touches the top edge).

    Args:
        image: ``(C, W, H)`` (channel 0 is drawn) or ``(W, H)`` in MONAI's frame; the original radiograph (or its
            display rendering) for a readable picture, the network input only when nothing better is at hand.
        boxes: ``(N, 4)`` StandardMode ``[x0, y0, x1, y1]`` in ``image``'s pixels.
        scores: ``(N,)`` one score per box; boxes are drawn best first whatever their order here.
        size: long side of the radiograph in the output, pixels.
        top_k: at most this many boxes are drawn (the highest-scored); ``None`` draws all.
        min_score: boxes scoring below this are not drawn.
        attributes: attribute name -> probability, written in this order as a caption
            (``"Predicted attributes: consolidation 0.93, ..."``) on a white strip below the radiograph, which
            then makes the picture taller than ``size``; ``None`` writes no caption, an empty mapping ``"(none)"``.
        colour: RGB of the boxes and their labels.

    Returns:
        An RGB picture ``size`` pixels on the radiograph's long side (``(round(W * s), round(H * s))`` with
        ``s = size / max(W, H)``), plus the caption strip when ``attributes`` is given.

    Raises:
        ValueError: ``size < 1``, ``top_k < 0``, or not one score per box.
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}.")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None, got {top_k}.")
    array = np.asarray(torch.as_tensor(boxes).detach().cpu(), dtype=np.float64).reshape(-1, 4)
    score = np.asarray(torch.as_tensor(scores).detach().cpu(), dtype=np.float64).reshape(-1)
    if len(score) != len(array):
        raise ValueError(f"one score per box: {len(array)} boxes, {len(score)} scores.")
    order = [k for k in np.argsort(-score, kind="stable") if score[k] >= min_score][:top_k]

    grey = to_display(image)  # (H, W) rows x cols
    rows, cols = grey.shape
    scale = size / max(rows, cols)
    dims = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    picture = Image.fromarray(grey).resize(dims, Image.Resampling.LANCZOS).convert("RGB")

    width, text_px = max(1, round(size / 256)), max(10, round(size / 40))
    font = overlay_font(text_px)
    # worst first, so that where labels or outlines overlap the best box's stay on top
    draw_box_outlines(picture, array[order[::-1]], colour, width=width, scale=scale)
    draw = ImageDraw.Draw(picture)
    pad = max(1, text_px // 6)
    for k in order[::-1]:
        text = f"{score[k]:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 2 * pad, bottom - top + 2 * pad
        x0, y0 = array[k, 0] * scale, array[k, 1] * scale
        x = min(max(0.0, x0), picture.width - w)
        y = y0 - h if y0 >= h else y0  # above the box; inside its top edge when there is no room above
        draw.rectangle([x, y, x + w - 1, y + h - 1], fill=colour)
        draw.text((x + pad - left, y + pad - top), text, fill=(0, 0, 0), font=font)
    if attributes is None:
        return picture

    margin = pad * 2
    words = [f"{name} {prob:.2f}" for name, prob in attributes.items()]
    lines = wrap_words("Predicted attributes: ", words, picture.width - 2 * margin, font)
    line_h = round(text_px * 1.25)
    out = Image.new("RGB", (picture.width, picture.height + len(lines) * line_h + 2 * margin), "white")
    out.paste(picture, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((margin, picture.height + margin + i * line_h), line, fill=(0, 0, 0), font=font)
    return out
