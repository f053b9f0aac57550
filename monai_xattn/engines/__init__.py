"""monai_xattn.engines."""
