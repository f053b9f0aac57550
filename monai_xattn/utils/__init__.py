"""monai_xattn.utils: small helpers shared by several layers (bottom layer: imports nothing of the package)."""

from monai_xattn.utils.checkpoints import (
    STAND_IN_MODULES,
    Checkpoint,
    CheckpointError,
    load_checkpoint_file,
    read_state_dict,
)

__all__ = ["STAND_IN_MODULES", "Checkpoint", "CheckpointError", "load_checkpoint_file", "read_state_dict"]
