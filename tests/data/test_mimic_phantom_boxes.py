"""build_mimic_cxr_datalist(phantom_boxes=True): the phantom's pneumonia boxes come with the datalist."""

from __future__ import annotations

from monai_xattn.data import build_mimic_cxr_datalist
from monai_xattn.data.mimic_cxr import attach_phantom_boxes
from monai_xattn.data.phantom import generate


def test_phantom_boxes_option_attaches_the_sidecar_boxes(tmp_path):
    root = tmp_path / "mimic"
    generate(root, layout="mimic-cxr", n=8, size=32, seed=0, difficulty="easy", workers=1)
    plain, _ = build_mimic_cxr_datalist(root, views=("PA", "AP"))
    boxed, _ = build_mimic_cxr_datalist(root, views=("PA", "AP"), phantom_boxes=True)
    assert all("boxes" not in e for split in plain.values() for e in split)
    for split, entries in plain.items():
        assert boxed[split] == attach_phantom_boxes(entries, root)
    assert any(e["boxes"] for split in boxed.values() for e in split)
