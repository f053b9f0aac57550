"""Embedded phantom: synthetic chest radiographs with reports, boxes and masks, in the real datasets' layouts.

Sub-modules: :mod:`.anatomy` (image synthesis), :mod:`.findings` (structured findings, boxes, masks),
:mod:`.reports` (MIMIC-style report text and attribute ground truth), :mod:`.synth` (one study),
:mod:`.layouts` (writers for each dataset layout) and :mod:`.generate` (the parallel driver).
"""
