"""MONAI transforms for chest X-rays and their reports (array ``Transform`` + dictionary ``MapTransform`` pairs)."""

from monai_xattn.transforms.io import CXRLoadError, LoadCXR, LoadCXRD, LoadCXRd, LoadCXRDict

__all__ = ["CXRLoadError", "LoadCXR", "LoadCXRd", "LoadCXRD", "LoadCXRDict"]
