"""monai-xattn siim-table: argument checks and the Markdown table (the bundle runs are tested in tests/bundles)."""

from __future__ import annotations

import pytest

from monai_xattn.cli import build_parser
from monai_xattn.siim_table import format_table, run_siim_table


def test_format_table_rows_per_init_columns_per_fraction():
    cells = [
        {"init": "random", "fraction": 0.01, "metrics": {"val_kaggle_dice": 0.1}},
        {"init": "random", "fraction": 1.0, "metrics": {"val_kaggle_dice": 0.5}},
        {"init": "gloria", "fraction": 0.01, "metrics": {"val_kaggle_dice": 0.25}},
    ]
    lines = format_table(cells, "val_kaggle_dice", [0.01, 1.0]).splitlines()
    assert lines[0] == "| init | 1 % | 100 % |"
    assert lines[2] == "| random | 0.100 | 0.500 |"
    assert lines[3] == "| gloria | 0.250 | - |"


def test_gloria_row_needs_an_existing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="--gloria"):
        run_siim_table(tmp_path, inits=["random", "gloria"])
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        run_siim_table(tmp_path, inits=["gloria"], gloria=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="profile"):
        run_siim_table(tmp_path, profile="huge")
    assert not (tmp_path / "runs").exists()


def test_cli_registration():
    args = build_parser().parse_args(["siim-table", "--fraction", "0.1", "1", "--init", "random", "--profile", "tiny"])
    assert args.fraction == [0.1, 1.0] and args.init == ["random"] and args.profile == "tiny"
