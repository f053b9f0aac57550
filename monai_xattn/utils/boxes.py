"""Box conversion and checks shared by the dataset adapters and the box transforms.

Boxes are MONAI ``StandardMode`` (``[x0, y0, x1, y1]``, pixel edges) in MONAI's frame, where x runs along spatial
axis 0 of a ``(C, W, H)`` image; an image size is ``[W, H]``. Here, below both ``data`` and ``transforms``, so that
the adapters convert every dataset box once and the transforms re-export the same function.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["check_boxes", "xywh_to_xyxy"]


def xywh_to_xyxy(boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Top-left ``x, y, w, h`` -> StandardMode ``[x0, y0, x1, y1]``, shape ``(N, 4)`` float64.

    ``monai.data.box_utils.convert_box_mode`` computes the same but round-trips through float32, which
    changes NIH's 15-digit coordinates; adapters keep the file's values exactly.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def check_boxes(boxes_xyxy: np.ndarray, image_size: Sequence[int] | None) -> np.ndarray:
    """Reasons a StandardMode box is unusable, one string per box (``""`` = fine), shape ``(N,)``.

    A box is rejected when a coordinate is not finite, its width or height is not positive, or (when
    ``image_size = [W, H]`` is known) it is not contained in ``[0, W] x [0, H]``.
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    reasons = np.full(len(b), "", dtype=object)
    with np.errstate(invalid="ignore"):
        outside = np.zeros(len(b), dtype=bool)
        if image_size is not None:
            w, h = image_size
            outside = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > w) | (b[:, 3] > h)
            reasons[outside] = f"box outside the {w}x{h} image"
        empty = (b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1])
        reasons[empty] = "box with zero or negative width/height"
    reasons[~np.isfinite(b).all(axis=1)] = "box coordinate missing or not a number"
    return reasons
