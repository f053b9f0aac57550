"""monai_xattn.text."""
