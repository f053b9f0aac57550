"""Localization figures like Fig. 2 of Bhalodia et al. (MICCAI 2021): each panel shows a radiograph with its
ground-truth boxes and report attributes in green and the predicted boxes and attributes in red.

Drawn with Pillow only. Inputs follow MONAI's frame: image ``(C, W, H)`` / ``(W, H)``, boxes StandardMode
``[x0, y0, x1, y1]`` with x along spatial axis 0; panels are drawn as the radiograph is viewed (rows = H).

:func:`detection_overlay` (defined in :mod:`monai_xattn.utils.display`, where the inference writer of
``engines`` can reach it) is the one-study picture of inference: the radiograph at a readable size with its top-k
boxes, their scores and the predicted attributes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from monai_xattn.utils.display import detection_overlay, draw_box_outlines, to_display, wrap_words

__all__ = [
    "GT_COLOUR",
    "PRED_COLOUR",
    "LocalizationPanel",
    "detection_overlay",
    "localization_figure",
    "localization_panel",
]

GT_COLOUR = (0, 200, 0)
PRED_COLOUR = (230, 30, 30)


@dataclass
class LocalizationPanel:
    """One study of the figure.

    Attributes:
        image: ``(C, W, H)`` or ``(W, H)``.
        gt_boxes: ``(G, 4)`` ground-truth boxes in the image's frame.
        pred_boxes: ``(P, 4)`` predicted boxes, best first.
        gt_attributes: attribute names of the report.
        pred_attributes: attribute names the model predicts.
        title: text above the panel (e.g. the image id).
    """

    image: torch.Tensor | np.ndarray
    gt_boxes: torch.Tensor | np.ndarray | Sequence = ()
    pred_boxes: torch.Tensor | np.ndarray | Sequence = ()
    gt_attributes: Sequence[str] = field(default_factory=list)
    pred_attributes: Sequence[str] = field(default_factory=list)
    title: str = ""


def localization_panel(panel: LocalizationPanel, size: int = 256, max_pred: int = 1) -> Image.Image:
    """Draw one panel: the image with its boxes (green ground truth, red predictions), below it the title and both
    attribute lists.

    Args:
        panel: the study.
        size: the image is scaled to ``size`` pixels wide.
        max_pred: predicted boxes drawn (the top-scored first; Table 1 scores only the first).
    """
    grey = to_display(panel.image)  # (H, W) rows x cols
    h, w = grey.shape
    scale = size / w
    picture = Image.fromarray(grey).convert("RGB").resize((size, round(h * scale)))
    draw_box_outlines(picture, panel.gt_boxes, GT_COLOUR, width=2, scale=scale)
    draw_box_outlines(
        picture, torch.as_tensor(panel.pred_boxes).reshape(-1, 4)[:max_pred], PRED_COLOUR, width=2, scale=scale
    )
    font = ImageFont.load_default()
    text = [(panel.title, (0, 0, 0))] if panel.title else []
    text += [(line, GT_COLOUR) for line in wrap_words("GT: ", panel.gt_attributes, size - 8, font)]
    text += [(line, PRED_COLOUR) for line in wrap_words("Pred: ", panel.pred_attributes, size - 8, font)]
    line_h = 12
    out = Image.new("RGB", (size, picture.height + line_h * len(text) + 8), "white")
    out.paste(picture, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, (line, colour) in enumerate(text):
        draw.text((4, picture.height + 4 + i * line_h), line, fill=colour, font=font)
    return out


def localization_figure(
    panels: Sequence[LocalizationPanel],
    path: str | os.PathLike | None = None,
    columns: int = 4,
    size: int = 256,
    max_pred: int = 1,
) -> Image.Image:
    """Panels of :func:`localization_panel` in a grid, saved to ``path`` (PNG) when given.

    Returns:
        the figure as a Pillow RGB image.
    """
    if not panels:
        raise ValueError("localization_figure needs at least one panel.")
    images = [localization_panel(p, size, max_pred) for p in panels]
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    cell_h = max(im.height for im in images)
    figure = Image.new("RGB", (columns * (size + 6), rows * (cell_h + 6)), "white")
    for i, im in enumerate(images):
        figure.paste(im, ((i % columns) * (size + 6), (i // columns) * (cell_h + 6)))
    if path is not None:
        figure.save(path)
    return figure
