"""monai_xattn.visualize."""

from monai_xattn.visualize.attention import attention_figure, gloria_attention_figure, heat_colormap
from monai_xattn.visualize.grounding import GroundingRow, grounding_figure

__all__ = ["attention_figure", "gloria_attention_figure", "heat_colormap", "GroundingRow", "grounding_figure"]
