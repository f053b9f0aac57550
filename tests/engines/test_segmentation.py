"""Balanced seeded SIIM training fractions; the checkpoint an evaluation reads; the RLE submission CSV round-trips
predicted masks."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from monai_xattn.data.siim import rle_decode
from monai_xattn.engines import RLESubmissionSaver, balanced_fraction
from monai_xattn.engines.segmentation import eval_checkpoint_file


def _entries(n_pos: int, n_neg: int) -> list[dict]:
    return [{"image_id": f"p{i}", "rle": ["1 2"]} for i in range(n_pos)] + [
        {"image_id": f"n{i}", "rle": []} for i in range(n_neg)
    ]


def test_balanced_fraction_is_balanced_seeded_and_sized():
    entries = _entries(40, 200)
    full = balanced_fraction(entries, 1.0)
    assert sum(bool(e["rle"]) for e in full) == 40 and len(full) == 80
    tenth = balanced_fraction(entries, 0.1, seed=3)
    assert sum(bool(e["rle"]) for e in tenth) == 4 and len(tenth) == 8
    assert tenth == balanced_fraction(entries, 0.1, seed=3)
    assert tenth != balanced_fraction(entries, 0.1, seed=4)
    assert len(balanced_fraction(entries, 0.01)) == 2  # at least one positive, and one negative
    unbalanced = balanced_fraction(entries, 0.5, balance=False)
    assert sum(bool(e["rle"]) for e in unbalanced) == 20 and len(unbalanced) == 120
    with pytest.raises(ValueError, match="fraction"):
        balanced_fraction(entries, 0.0)
    with pytest.raises(ValueError, match="no positive"):
        balanced_fraction(_entries(0, 5), 1.0)


def test_eval_checkpoint_file_is_the_best_or_the_last(tmp_path):
    assert eval_checkpoint_file(tmp_path) == str(tmp_path / "model.pt")
    assert eval_checkpoint_file(tmp_path, "last") == str(tmp_path / "last.pt")
    with pytest.raises(ValueError, match="'best', 'last'"):
        eval_checkpoint_file(tmp_path, "model.pt")


def test_rle_submission_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    masks = [rng.random((1, 9, 6)) > 0.7, np.zeros((1, 9, 6), bool)]  # (1, W, H) in MONAI's frame
    saver = RLESubmissionSaver(tmp_path / "sub" / "submission.csv")
    engine = SimpleNamespace(
        state=SimpleNamespace(
            batch=[{"image_id": "a"}, {"image_id": "b"}],
            output=[{"pred": torch.from_numpy(m).float()} for m in masks],
        )
    )
    saver._reset(engine)
    saver(engine)
    path = saver.write()
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ImageId", "EncodedPixels"]
    assert rows[2] == ["b", "-1"]
    decoded = rle_decode(rows[1][1], height=6, width=9)  # (H, W) of the file
    assert np.array_equal(decoded.T, masks[0][0])
    assert not list(tmp_path.glob("sub/.*tmp"))  # the temporary file was renamed, not left behind
