"""Shared fixtures of the data tests: one small phantom of every layout, generated once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

PHANTOM_SETTINGS = {"n": 24, "size": 128, "seed": 0, "difficulty": "medium"}


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory) -> Path:
    """Root of a ``layout="all"`` phantom (24 studies per layout, 128 px, seed 0, medium): one sub-folder per
    layout (``mimic-cxr``, ``mimic-cxr-jpg``, ``chestxray8``, ``rsna``, ``siim``, ``chexpert``, ``covid``,
    ``ms-cxr``). Treat it as read-only: other tests share it."""
    from monai_xattn.data.phantom import generate

    root = tmp_path_factory.mktemp("phantom") / "all"
    generate(root, layout="all", workers=2, **PHANTOM_SETTINGS)
    return root
