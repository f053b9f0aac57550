"""monai-xattn siim-table: argument checks, the seeds x checkpoints orchestration and the Markdown table.

The bundle runs themselves are tested in tests/bundles/test_siim_unet.py; here ``subprocess.run`` is replaced by a
stand-in that writes the metrics files an evaluation would, so several seeds cost nothing.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from monai_xattn import demo, siim_table
from monai_xattn.bundles_cli import load_profile
from monai_xattn.cli import build_parser
from monai_xattn.report import paper
from monai_xattn.report.builder import collect_tables
from monai_xattn.siim_table import format_spread, format_table, run_siim_table

CONFIGS = Path(siim_table.__file__).resolve().parents[1] / "bundles" / "siim_unet" / "configs"


def _cell(init, fraction, seed, best, last, empty=0.6):
    metrics = {c: {"val_kaggle_dice": v, "val_empty_kaggle_dice": empty} for c, v in (("best", best), ("last", last))}
    return {"init": init, "fraction": fraction, "seed": seed, "metrics": metrics}


def test_format_spread_says_mean_and_sample_std():
    assert format_spread([]) == "-"
    assert format_spread([0.25]) == "0.250"
    assert format_spread([0.1, 0.2, 0.6]) == f"0.300 ± {statistics.stdev([0.1, 0.2, 0.6]):.3f}" == "0.300 ± 0.265"


def test_format_table_rows_per_init_columns_per_fraction_and_checkpoint():
    cells = [
        _cell("random", 0.01, 0, 0.1, 0.2),
        _cell("random", 0.01, 1, 0.3, 0.4),
        _cell("random", 1.0, 0, 0.5, 0.5),
        _cell("gloria", 0.01, 0, 0.25, 0.35),
    ]
    lines = format_table(cells, "val_kaggle_dice", [0.01, 1.0]).splitlines()
    assert lines[0] == "| init | 1 % best | 1 % last | 100 % best | 100 % last |"
    assert lines[2] == "| random | 0.200 ± 0.141 | 0.300 ± 0.141 | 0.500 | 0.500 |"
    assert lines[3] == "| gloria | 0.250 | 0.350 | - | - |"
    assert lines[4] == "| all-empty prediction | 0.600 ± 0.000 | 0.600 ± 0.000 | 0.600 | 0.600 |"
    # the positive Dice has no baseline row (an empty prediction scores 0 there) and no values here
    assert format_table(cells, "val_positive_dice", [1.0]).splitlines()[-1] == "| gloria | - | - |"


def test_gloria_row_needs_an_existing_checkpoint(tmp_path):
    with pytest.raises(ValueError, match="--gloria"):
        run_siim_table(tmp_path, inits=["random", "gloria"])
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        run_siim_table(tmp_path, inits=["gloria"], gloria=tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="profile"):
        run_siim_table(tmp_path, profile="huge")
    with pytest.raises(ValueError, match="--data"):
        run_siim_table(tmp_path, profile="paper", inits=["random"])
    with pytest.raises(FileNotFoundError, match="no such folder"):
        run_siim_table(tmp_path, profile="paper", inits=["random"], data_dir=tmp_path / "siim")
    with pytest.raises(ValueError, match="seed"):
        run_siim_table(tmp_path, inits=["random"], seeds=[])
    assert not (tmp_path / "runs").exists()


def _bundle_keys() -> set[str]:
    keys = set()
    for name in ("train.json", "evaluate.json"):
        keys |= set(json.loads((CONFIGS / name).read_text()))
    return keys


def test_several_seeds_train_once_and_evaluate_best_and_last(tmp_path, monkeypatch):
    commands = []
    keys = _bundle_keys()

    def fake_run(cmd, check, cwd):
        args = dict(zip(cmd[4::2], cmd[5::2], strict=True))  # after: python -m monai.bundle run
        commands.append(args)
        # every override is a key of the bundle's configs (a misspelt key would be added silently)
        assert {k.removeprefix("--") for k in args} - {"config_file", "meta_file", "logging_file"} <= keys, args
        if "--eval_checkpoint" in args:  # what evaluate.json's MetricsSaver writes, from the run's seed
            seed, last = int(args["--seed"]), args["--eval_checkpoint"] == "last"
            folder = Path(args["--bundle_root"]) / "models" / ("eval_last" if last else "eval")
            folder.mkdir(parents=True, exist_ok=True)
            value = 0.1 * seed + 0.05 * last
            (folder / "metrics.csv").write_text(f"val_kaggle_dice,{value}\nval_empty_kaggle_dice,0.6\n")

    monkeypatch.setattr(siim_table.subprocess, "run", fake_run)
    result = run_siim_table(tmp_path, inits=["random"], fractions=[1.0], profile="tiny", seeds=[0, 1, 2], data_seed=5)
    trains = [c for c in commands if "--eval_checkpoint" not in c]
    evals = [c for c in commands if "--eval_checkpoint" in c]
    assert [c["--seed"] for c in trains] == ["0", "1", "2"] and len(evals) == 6
    assert {c["--data_seed"] for c in commands} == {"5"}  # one phantom and one split for every seed
    assert {c["--eval_checkpoint"] for c in evals} == {"best", "last"} and {c["--eval_split"] for c in evals} == {
        "test"
    }
    assert all("--init" not in c and "--weights" not in c for c in evals)
    # the profile's settings come from the bundle's own profile file, merged after the configs
    assert all(json.loads(c["--config_file"])[-1].endswith("configs/profiles/tiny.json") for c in commands)
    table = result["tables"]["val_kaggle_dice"].splitlines()
    assert table[2] == "| random | 0.100 ± 0.100 | 0.150 ± 0.100 |"
    assert table[3] == "| all-empty prediction | 0.600 ± 0.000 | 0.600 ± 0.000 |"
    assert "mean ± sample standard deviation over 3 seeds" in (tmp_path / "siim_table.md").read_text()
    # finished runs are kept: a second call runs nothing
    commands.clear()
    run_siim_table(tmp_path, inits=["random"], fractions=[1.0], profile="tiny", seeds=[0, 1, 2], data_seed=5)
    assert commands == []


def test_demo_trains_siim_with_the_tables_settings_and_seeds(tmp_path):
    steps = demo.demo_steps("cpu", "medium", 4)
    names = [s.name for s in steps]
    for k, seed in enumerate((4, 5, 6)):
        run = "siim_unet_gloria" + (f"_seed{seed}" if k else "")
        assert {f"{run}_train", f"{run}_evaluate", f"{run}_evaluate_last"} <= set(names), run
    # the demo and the table read the same file: the bundle's cpu profile
    train = next(s for s in steps if s.name == "siim_unet_gloria_train").action.command(tmp_path)
    assert json.loads(train[train.index("--config_file") + 1])[-1].endswith("siim_unet/configs/profiles/cpu.json")
    paper = load_profile("siim_unet", "paper")
    assert paper["epochs"] == 100 and paper["early_stop_patience"] == 20 and paper["depth"] == 50


def test_demo_report_shows_best_last_spread_and_the_empty_baseline(tmp_path):
    (tmp_path / "steps").mkdir()
    runs = {"siim_unet_random": (0.2, 0.3), "siim_unet_random_seed1": (0.4, 0.5), "siim_unet_gloria": (0.7, 0.6)}
    for run_dir, (best, last) in runs.items():
        for suffix, value in (("", best), ("_last", last)):
            name = f"{run_dir}_evaluate{suffix}"
            metrics = {"val_kaggle_dice": value, "val_positive_dice": value / 2, "val_empty_kaggle_dice": 0.6}
            (tmp_path / "steps" / f"{name}.done.json").write_text(
                json.dumps({"step": name, "result": {"metrics": metrics}})
            )
    table = next(t for t in collect_tables(tmp_path) if t.title.startswith("GLoRIA Table 4"))
    rows = {(r[0], r[1]): r[2:] for r in table.rows}
    assert rows["random", "ours, phantom, 100 %, 2 seeds"][:3] == ["0.300 ± 0.141", "0.400 ± 0.141", "0.600 ± 0.000"]
    assert rows["gloria", "ours, phantom, 100 %, 1 seed"][:3] == ["0.700", "0.600", "0.600"]
    # the published number sits in the last-epoch column: the official code tests the last epoch's weights
    assert rows["gloria", "paper, real data, 100 %"][:2] == [None, paper.GLORIA_SIIM_DICE["gloria"][2]]


def test_cli_registration():
    args = build_parser().parse_args(
        ["siim-table", "--fraction", "0.1", "1", "--init", "random", "--profile", "tiny", "--seeds", "0", "1"]
    )
    assert args.fraction == [0.1, 1.0] and args.init == ["random"] and args.profile == "tiny" and args.seeds == [0, 1]
    args = build_parser().parse_args(["siim-table", "--profile", "paper", "--data", "siim", "--seed", "3"])
    assert args.data == Path("siim") and args.seeds == [3] and args.data_seed == 0
