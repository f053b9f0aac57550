"""monai_xattn.visualize."""

from monai_xattn.visualize.attention import attention_figure, gloria_attention_figure, heat_colormap

__all__ = ["attention_figure", "gloria_attention_figure", "heat_colormap"]
