"""monai_xattn.losses."""
