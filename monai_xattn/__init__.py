"""monai_xattn: a MONAI extension for learning from chest X-rays and their radiology reports.

Two published methods are built on MONAI: cross-attention pneumonia localization
(Bhalodia et al., MICCAI 2021) and GLoRIA global-local image-report pretraining
(Huang et al., ICCV 2021). See ``docs/`` and ``bundles/``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
