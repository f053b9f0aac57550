"""monai_xattn.metrics."""
