"""monai_xattn.visualize."""
