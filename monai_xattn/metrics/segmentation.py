"""Dice for pneumothorax segmentation: the Kaggle SIIM score and the positive-only Dice.

- **Kaggle Dice** (the SIIM challenge's and GLoRIA's score): per image, ``2|P n G| / (|P| + |G|)``; an image
  with an empty ground truth scores 1 if the prediction is empty too, else 0. Averaged over images.
- **Positive Dice** (``ignore_empty=True``): the same over images with a non-empty ground truth only. A model
  that predicts nothing scores 0 here, but roughly the fraction of negative images in the Kaggle Dice: always
  say which one a number is.
- **All-empty baseline** (``predict_empty=True``): the Kaggle Dice a model that never predicts pneumothorax gets on
  the same images, i.e. the share of images with an empty ground truth. Measured beside a model's score with the
  same code, it is the number the model has to beat.

These are the values of MONAI's ``DiceMetric(include_background=True, ignore_empty=False / True)`` on one
binary channel, which loops over images and channels in Python; :func:`kaggle_dice` computes them for the whole
batch with tensor reductions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from monai.handlers import IgniteMetricHandler, from_engine
from monai.metrics import CumulativeIterationMetric
from monai.metrics.utils import do_metric_reduction
from monai.utils import MetricReduction
from torch import Tensor

__all__ = ["KaggleDice", "KaggleDiceMetric", "kaggle_dice"]


def kaggle_dice(y_pred: Tensor, y: Tensor, ignore_empty: bool = False, threshold: float | None = None) -> Tensor:
    """Per-image, per-channel Dice with SIIM's rule for empty ground truths.

    Args:
        y_pred: binary predictions ``(B, C, W, H)`` (or probabilities with ``threshold``).
        y: binary ground truth, same shape.
        ignore_empty: NaN instead of 0/1 where the ground truth is empty (positive-only Dice).
        threshold: binarise ``y_pred`` as ``y_pred > threshold`` first (GLoRIA: 0.5 on probabilities).

    Returns:
        ``(B, C)`` float tensor.
    """
    if y_pred.shape != y.shape:
        raise ValueError(f"y_pred {tuple(y_pred.shape)} and y {tuple(y.shape)} differ in shape")
    if y_pred.ndim < 3:
        raise ValueError(f"expected (B, C, spatial...), got shape {tuple(y_pred.shape)}")
    pred = y_pred > threshold if threshold is not None else y_pred.bool()
    gt = y.bool()
    dims = tuple(range(2, y.ndim))
    # count_nonzero counts bools without the int64 copy a sum makes
    n_pred, n_gt = torch.count_nonzero(pred, dim=dims), torch.count_nonzero(gt, dim=dims)
    overlap = torch.count_nonzero(pred & gt, dim=dims)
    empty_gt = n_gt == 0
    dice = 2.0 * overlap / (n_pred + n_gt).clamp_min(1)
    empty_score = torch.full_like(dice, float("nan")) if ignore_empty else (n_pred == 0).to(dice.dtype)
    return torch.where(empty_gt, empty_score, dice)


class KaggleDiceMetric(CumulativeIterationMetric):
    """Cumulative :func:`kaggle_dice`: the Kaggle SIIM Dice (or the positive-only Dice with ``ignore_empty``).

    Args:
        ignore_empty: leave images with an empty ground truth out (positive-only Dice).
        threshold: binarise predictions as ``y_pred > threshold`` (``None``: already binary).
        reduction: MONAI reduction over the ``(N, C)`` buffer (NaNs are skipped); ``"mean"`` averages over
            images and channels.
        get_not_nans: also return the number of values averaged.
        predict_empty: score an all-empty prediction instead of ``y_pred`` (which is ignored): the baseline
            of the same images.
    """

    def __init__(
        self,
        ignore_empty: bool = False,
        threshold: float | None = None,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
        predict_empty: bool = False,
    ) -> None:
        super().__init__()
        self.ignore_empty = ignore_empty
        self.threshold = threshold
        self.reduction = reduction
        self.get_not_nans = get_not_nans
        self.predict_empty = predict_empty

    def _compute_tensor(self, y_pred: Tensor, y: Tensor | None = None) -> Tensor:  # type: ignore[override]
        if y is None:
            raise ValueError("KaggleDiceMetric needs the ground truth y")
        if self.predict_empty:
            y_pred = torch.zeros_like(y)
        return kaggle_dice(y_pred, y, self.ignore_empty, self.threshold)

    def aggregate(self, reduction: MetricReduction | str | None = None) -> Tensor | tuple[Tensor, Tensor]:
        data = self.get_buffer()
        if not isinstance(data, Tensor):
            raise ValueError("the buffer holds no tensor: call the metric on at least one batch first")
        value, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (value, not_nans) if self.get_not_nans else value


class KaggleDice(IgniteMetricHandler):
    """Ignite handler of :class:`KaggleDiceMetric` (usable as a key metric of a ``SupervisedEvaluator``).

    Args:
        ignore_empty, threshold, predict_empty: see :class:`KaggleDiceMetric`.
        output_transform: picks ``(y_pred, y)`` from the engine output; the default reads the ``pred`` and
            ``label`` of decollated outputs (post-processed to binary masks).
        save_details: keep per-image values in ``engine.state.metric_details``.
    """

    def __init__(
        self,
        ignore_empty: bool = False,
        threshold: float | None = None,
        output_transform: Callable = from_engine(["pred", "label"]),
        save_details: bool = True,
        predict_empty: bool = False,
    ) -> None:
        super().__init__(
            metric_fn=KaggleDiceMetric(ignore_empty=ignore_empty, threshold=threshold, predict_empty=predict_empty),
            output_transform=output_transform,
            save_details=save_details,
        )
