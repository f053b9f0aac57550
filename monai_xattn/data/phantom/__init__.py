"""Embedded phantom: synthetic chest radiographs with reports, boxes and masks, in the real datasets' layouts.

Sub-modules: :mod:`.anatomy` (image synthesis), :mod:`.findings` (structured findings, boxes, masks),
:mod:`.reports` (MIMIC-style report text and attribute ground truth), :mod:`.synth` (one study),
:mod:`.layouts` (writers for each dataset layout) and :mod:`.generate` (the parallel driver); the command line lives in
:mod:`monai_xattn.data.phantom_cli`.
"""

from monai_xattn.data.phantom.generate import LAYOUT_NAMES, generate
from monai_xattn.data.phantom.reports import write_report
from monai_xattn.data.phantom.synth import synthesize_study

# ``generate`` names both a sub-module and its function: the import above rebinds the package attribute to the
# function after the sub-module has loaded, so ``monai_xattn.data.phantom.generate`` is the function
__all__ = ["LAYOUT_NAMES", "generate", "synthesize_study", "write_report"]
