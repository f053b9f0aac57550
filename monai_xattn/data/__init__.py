"""monai_xattn.data."""
