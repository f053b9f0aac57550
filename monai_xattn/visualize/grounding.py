"""Phrase grounding figure: for each (image, phrase), the image with the phrase's boxes, then each method's map.

Maps are those :func:`monai_xattn.engines.grounding.evaluate_grounding` keeps (MONAI's ``(W', H')`` frame, at
each method's own resolution, covering the whole image); each is stretched to the panel and min-max scaled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from monai_xattn.utils.display import draw_box_outlines, overlay_font, to_display, wrap_words
from monai_xattn.visualize.attention import heat_colormap

__all__ = ["GroundingRow", "grounding_figure"]

_BOX: tuple[int, int, int] = (0, 220, 0)


@dataclass
class GroundingRow:
    """One figure row.

    Attributes:
        image: ``(C, W, H)`` or ``(W, H)`` in MONAI's frame (the whole image).
        boxes: ``(N, 4)`` ``StandardMode`` boxes of the phrase in ``image``'s pixels.
        phrase: the text grounded.
        maps: method -> ``(W', H')`` map over the whole image.
    """

    image: torch.Tensor | np.ndarray
    boxes: Sequence[Sequence[float]]
    phrase: str
    maps: Mapping[str, torch.Tensor | np.ndarray] = field(default_factory=dict)


def grounding_figure(
    rows: Sequence[GroundingRow], path: str | os.PathLike | None = None, panel_size: int = 192, alpha: float = 0.5
) -> Image.Image:
    """Draw ``rows``: one line per phrase, the image with its boxes (green) first, then each method's map with
    the same boxes outlined; methods are the union over the rows, in first-seen order (a missing map is blank).

    Returns:
        the figure (also saved to ``path`` when given).
    """
    if not rows:
        raise ValueError("grounding_figure needs at least one row")
    methods = list(dict.fromkeys(m for row in rows for m in row.maps))
    font = overlay_font(12)
    text_height = 34
    header = 18
    columns = 1 + len(methods)
    figure = Image.new("RGB", (columns * panel_size, header + len(rows) * (panel_size + text_height)), "white")
    draw = ImageDraw.Draw(figure)
    for c, title in enumerate(["image + box", *methods]):
        draw.text((c * panel_size + 4, 2), title, fill="black", font=font)
    for r, row in enumerate(rows):
        grey = to_display(row.image)  # (H, W)
        h, w = grey.shape
        scale = panel_size / max(w, h)
        base = np.repeat(grey[..., None], 3, axis=2)
        y = header + r * (panel_size + text_height)
        tiles = [base]
        for method in methods:
            heat = row.maps.get(method)
            if heat is None:
                tiles.append(np.full_like(base, 255))
                continue
            heat = torch.as_tensor(heat, dtype=torch.float32)
            heat = F.interpolate(heat[None, None], size=(w, h), mode="bilinear", align_corners=False)[0, 0]
            heat = heat.t().numpy()
            span = heat.max() - heat.min()
            heat = (heat - heat.min()) / span if span > 0 else np.zeros_like(heat)
            tiles.append(((1 - alpha) * base + alpha * heat_colormap(heat)).round().astype(np.uint8))
        for c, pixels in enumerate(tiles):
            tile = Image.fromarray(pixels).resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
            draw_box_outlines(tile, row.boxes, _BOX, width=2, scale=scale)
            figure.paste(tile, (c * panel_size, y))
        for k, line in enumerate(wrap_words("", [row.phrase], columns * panel_size - 8, font)[:2]):
            draw.text((4, y + panel_size + 2 + 15 * k), line, fill="black", font=font)
    if path is not None:
        figure.save(path)
    return figure
