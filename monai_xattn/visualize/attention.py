"""GLoRIA word-to-region attention figures, like Fig. 4 of Huang et al. (ICCV 2021): the image, then one panel per
word with that word's attention over the image regions overlaid as a heat map.

Drawn with Pillow only (the official code needs a font file it does not ship; Pillow's default font is used here).
Inputs follow MONAI's frame: image ``(C, W, H)`` / ``(W, H)`` and attention ``(T, W', H')``; panels are drawn as
the radiograph is viewed (rows = H).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from monai_xattn.text.content_words import content_word_indices
from monai_xattn.utils.display import to_display

__all__ = ["attention_figure", "gloria_attention_figure", "heat_colormap"]

# piecewise-linear "jet": dark blue -> blue -> cyan -> yellow -> red -> dark red
_JET = np.array([[0.0, 0.0, 0.5], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]])


def heat_colormap(values: np.ndarray) -> np.ndarray:
    """Map values in ``[0, 1]`` to RGB ``uint8`` (shape ``values.shape + (3,)``) with a jet-like colormap."""
    x = np.clip(values, 0.0, 1.0) * (len(_JET) - 1)
    low = np.floor(x).astype(int).clip(0, len(_JET) - 2)
    frac = (x - low)[..., None]
    return ((_JET[low] * (1 - frac) + _JET[low + 1] * frac) * 255).round().astype(np.uint8)


def attention_figure(
    image: torch.Tensor | np.ndarray,
    attention: torch.Tensor | np.ndarray,
    words: Sequence[str],
    path: str | os.PathLike | None = None,
    panel_size: int = 160,
    alpha: float = 0.5,
    columns: int = 6,
) -> Image.Image:
    """Draw an image and its per-word attention maps.

    Args:
        image: ``(C, W, H)`` or ``(W, H)``; channel 0 is drawn.
        attention: ``(T, W', H')`` attention of the image's regions for each of the ``T`` words (padded words,
            beyond ``len(words)``, are not drawn).
        words: the ``T`` (or fewer) words, in order.
        path: if given, the figure is saved there (PNG by extension).
        panel_size: side of each panel in pixels.
        alpha: opacity of the heat map.
        columns: panels per row (the image counts as one).

    Returns:
        the figure as a Pillow RGB image.
    """
    grey = to_display(image)  # (H, W) rows x cols
    attn = torch.as_tensor(attention).detach().float().cpu()
    if attn.ndim != 3:
        raise ValueError(f"attention_figure: attention must be (T, W', H'), got shape {tuple(attn.shape)}")
    if len(words) > attn.shape[0]:
        raise ValueError(f"attention_figure: {len(words)} words but attention for only {attn.shape[0]}")
    h, w = grey.shape
    # MONAI (W', H') -> upsample to (W, H) -> transpose to rows x cols like the image
    maps = F.interpolate(attn[: len(words)].unsqueeze(1), size=(w, h), mode="bilinear", align_corners=False)
    maps = maps[:, 0].transpose(1, 2).numpy()
    lo = maps.reshape(len(words), -1).min(axis=1)[:, None, None]
    hi = maps.reshape(len(words), -1).max(axis=1)[:, None, None]
    maps = (maps - lo) / np.where(hi - lo > 0, hi - lo, 1.0)

    base = np.repeat(grey[..., None], 3, axis=2)
    panels = [("image", base)]
    for word, heat in zip(words, maps, strict=False):
        blend = (1 - alpha) * base + alpha * heat_colormap(heat)
        panels.append((word, blend.round().astype(np.uint8)))

    font = ImageFont.load_default()
    label_height = 16
    rows = (len(panels) + columns - 1) // columns
    ncols = min(columns, len(panels))
    figure = Image.new("RGB", (ncols * panel_size, rows * (panel_size + label_height)), "white")
    draw = ImageDraw.Draw(figure)
    for k, (label, pixels) in enumerate(panels):
        x, y = (k % columns) * panel_size, (k // columns) * (panel_size + label_height)
        tile = Image.fromarray(pixels).resize((panel_size, panel_size), Image.Resampling.BILINEAR)
        figure.paste(tile, (x, y))
        draw.text((x + 4, y + panel_size + 2), label, fill="black", font=font)
    if path is not None:
        figure.save(path)
    return figure


def gloria_attention_figure(
    model: torch.nn.Module,
    image: torch.Tensor,
    text: str,
    path: str | os.PathLike | None = None,
    temp1: float = 4.0,
    words: str = "content",
    kind: str = "attention",
    **kwargs,
) -> Image.Image:
    """Run a :class:`monai_xattn.networks.GLoRIA` on one (image, report) pair and draw its per-word maps.

    Args:
        model: a GLoRIA model.
        image: one preprocessed image, ``(C, W, H)``.
        text: its report (or sentence).
        path: where to save the PNG.
        temp1: attention sharpness (the loss's).
        words: ``"content"`` draws the content words only (not numbering, punctuation or function words, see
            :func:`monai_xattn.text.content_words.content_word_indices`; all words if none is); ``"all"`` every word.
        kind: ``"attention"`` (the loss's word-to-region attention, GLoRIA's Fig. 4) or ``"similarity"`` (the
            region-word cosine it is a softmax of), see :func:`monai_xattn.engines.grounding.gloria_word_maps`.
        kwargs: passed to :func:`attention_figure`.
    """
    from monai_xattn.engines.grounding import gloria_word_maps

    names, maps = gloria_word_maps(model, image, text, kind=kind, temp1=temp1)
    keep = content_word_indices(names) if words == "content" else []
    keep = [i for i in keep if i < len(maps)] or list(range(min(len(names), len(maps))))
    return attention_figure(image, maps[keep], [names[i] for i in keep], path, **kwargs)
