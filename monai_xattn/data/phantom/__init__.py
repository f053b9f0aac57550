"""Embedded phantom: synthetic chest radiographs with reports, boxes and masks, in the real datasets' layouts.

Sub-modules: :mod:`.anatomy` (image synthesis), :mod:`.findings` (structured findings, boxes, masks),
:mod:`.reports` (MIMIC-style report text and attribute ground truth), :mod:`.synth` (one study),
:mod:`.layouts` (writers for each dataset layout) and :mod:`.generate` (the parallel driver).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["LAYOUT_NAMES", "generate", "synthesize_study", "write_report"]

if TYPE_CHECKING:
    from monai_xattn.data.phantom.generate import LAYOUT_NAMES, generate
    from monai_xattn.data.phantom.reports import write_report
    from monai_xattn.data.phantom.synth import synthesize_study

_LAZY = {
    "LAYOUT_NAMES": "monai_xattn.data.phantom.generate",
    "generate": "monai_xattn.data.phantom.generate",
    "synthesize_study": "monai_xattn.data.phantom.synth",
    "write_report": "monai_xattn.data.phantom.reports",
}


def __getattr__(name: str):
    # imported on first use: `monai-xattn --help` builds every command's parser and must stay fast
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
