"""monai_xattn.networks."""
