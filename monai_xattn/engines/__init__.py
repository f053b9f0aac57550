"""monai_xattn.engines."""

from monai_xattn.engines.bad_samples import (
    SkipBadSamples,
    SkippedSamplesHandler,
    TooManyBadSamplesError,
    skip_bad_samples,
)
from monai_xattn.engines.cam import CAMThresholdTuner, select_cam_threshold, tune_cam_threshold
from monai_xattn.engines.checkpoint import AtomicCheckpointSaver, AtomicDiskSaver, ResumeCheckpointLoader
from monai_xattn.engines.detection import (
    DetectionLoss,
    DetectionPrepareBatch,
    DetectionWriter,
    compile_detector,
    distribute_detector,
    loss_output,
)
from monai_xattn.engines.distributed import RANK0_ONLY_HANDLERS, handlers_for_rank, shutdown_distributed
from monai_xattn.engines.gloria import (
    GloriaLossMetric,
    GloriaPrepareBatch,
    GloriaRetrievalMetric,
    GloriaTrainingIteration,
)
from monai_xattn.engines.segmentation import RLESubmissionSaver, balanced_fraction, is_positive
from monai_xattn.engines.tracking import track_dict_output

__all__ = [
    "track_dict_output",
    "SkipBadSamples",
    "SkippedSamplesHandler",
    "TooManyBadSamplesError",
    "skip_bad_samples",
    "CAMThresholdTuner",
    "select_cam_threshold",
    "tune_cam_threshold",
    "AtomicCheckpointSaver",
    "AtomicDiskSaver",
    "ResumeCheckpointLoader",
    "DetectionLoss",
    "DetectionPrepareBatch",
    "DetectionWriter",
    "compile_detector",
    "distribute_detector",
    "loss_output",
    "RANK0_ONLY_HANDLERS",
    "handlers_for_rank",
    "shutdown_distributed",
    "GloriaLossMetric",
    "GloriaPrepareBatch",
    "GloriaRetrievalMetric",
    "GloriaTrainingIteration",
    "RLESubmissionSaver",
    "balanced_fraction",
    "is_positive",
]
