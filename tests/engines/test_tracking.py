"""``track_dict_output``: MONAI's ``--tracking mlflow`` loss reader made to work on engines that do not decollate."""

from __future__ import annotations

import torch
from monai.handlers import MLFlowHandler, StatsHandler, from_engine

from monai_xattn.engines import track_dict_output


def test_the_default_loss_reader_gets_a_value_from_dict_and_list_outputs(mlflow_tracking):
    default = from_engine(["loss"], first=True)  # what MONAI's default tracking settings give the handler
    loss = torch.tensor(0.5)
    dict_output, list_output = {"loss": loss, "pred": torch.zeros(2)}, [{"loss": loss}, {"loss": loss}]
    assert default(dict_output) == (loss,)  # the 1-tuple MLflow refuses: why the wrapper exists
    tracker = MLFlowHandler(tracking_uri=f"sqlite:///{mlflow_tracking.db}", output_transform=default)
    validator = MLFlowHandler(tracking_uri=f"sqlite:///{mlflow_tracking.db}", iteration_log=False)
    other = StatsHandler(output_transform=default)
    handlers = [other, tracker, validator]
    validator_reader = validator.output_transform
    assert track_dict_output(handlers) == handlers
    assert tracker.output_transform(dict_output) is loss and tracker.output_transform(list_output) is loss
    # handlers that log no iteration, and other kinds, are left as they were
    assert other.output_transform is default and validator.output_transform is validator_reader
    assert track_dict_output(None) == []
