"""monai_xattn.losses."""

from monai_xattn.losses.gloria import GloriaLoss, global_loss, local_loss, local_similarity
from monai_xattn.losses.segmentation import FocalLogDiceLoss

__all__ = ["GloriaLoss", "global_loss", "local_loss", "local_similarity", "FocalLogDiceLoss"]
