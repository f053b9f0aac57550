"""MONAI's built-in experiment tracking (``python -m monai.bundle run ... --tracking mlflow``) on our engines."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from monai.handlers import MLFlowHandler

__all__ = ["track_dict_output"]


def _one_value(transform: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def read(output: Any) -> Any:
        value = transform(output)
        return value[0] if isinstance(value, tuple) and len(value) == 1 else value

    return read


def track_dict_output(handlers: Sequence | None) -> list:
    """The trainer's handlers, with the MLflow handlers that MONAI's ``--tracking mlflow`` appends able to read a
    ``decollate=False`` engine's loss.

    MONAI's default tracking settings read the loss with ``from_engine(["loss"], first=True)``. On the output of an
    engine that does not decollate (one dict for the batch: the GLoRIA, detection and cross-attention trainers), that
    returns a 1-tuple, which MLflow refuses ("float() argument must be ... not 'tuple'"); the run fails at its first
    iteration. The transform is wrapped so that a 1-tuple gives its value; any other result passes unchanged.

    Args:
        handlers: a bundle's ``train#handlers`` (``None`` -> empty).

    Returns:
        The same handlers, in order.
    """
    handlers = list(handlers or [])
    for handler in handlers:
        if isinstance(handler, MLFlowHandler) and handler.iteration_log:
            handler.output_transform = _one_value(handler.output_transform)
    return handlers
