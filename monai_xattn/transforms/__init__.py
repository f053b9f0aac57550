"""monai_xattn.transforms."""
