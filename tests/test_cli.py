"""The ``monai-xattn`` entry point: version, help, errors, bundle listing."""

import json
import subprocess
import sys

import pytest

from monai_xattn import __version__
from monai_xattn.bundles_cli import list_bundles
from monai_xattn.cli import main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"monai-xattn {__version__}"


def test_unknown_subcommand_is_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: monai-xattn" in capsys.readouterr().out


def test_console_script_installed():
    out = subprocess.run(
        [sys.executable, "-m", "monai_xattn.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert __version__ in out.stdout


def test_bundles_lists_metadata(tmp_path, capsys):
    for name, version in [("b_two", "0.2.0"), ("a_one", "0.1.0")]:
        (tmp_path / name / "configs").mkdir(parents=True)
        meta = {"version": version, "description": f"bundle {name}"}
        (tmp_path / name / "configs" / "metadata.json").write_text(json.dumps(meta))
    (tmp_path / "not_a_bundle").mkdir()
    assert [b[0] for b in list_bundles(tmp_path)] == ["a_one", "b_two"]
    assert main(["bundles", "--root", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["a_one", "0.1.0"] and "bundle b_two" in lines[1]


def test_bundles_empty_folder_fails(tmp_path):
    assert main(["bundles", "--root", str(tmp_path)]) == 1


def test_bundles_copy_refuses_unknown_names_and_names_without_a_target(tmp_path, capsys):
    (tmp_path / "src" / "one" / "configs").mkdir(parents=True)
    (tmp_path / "src" / "one" / "configs" / "metadata.json").write_text(json.dumps({"version": "0.1.0"}))
    root = ["--root", str(tmp_path / "src")]
    assert main(["bundles", *root, "--copy-to", str(tmp_path / "out"), "one", "two"]) == 1
    assert "unknown bundle(s) ['two']" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["bundles", *root, "one"]) == 2
    assert "--copy-to" in capsys.readouterr().err
    assert main(["bundles", *root, "--copy-to", str(tmp_path / "out")]) == 0  # no names: all
    assert (tmp_path / "out" / "one" / "configs" / "metadata.json").is_file()


def test_bundle_overrides_reach_the_bundle_as_the_values_given():
    # monai.bundle run parses its CLI with python-fire: JSON's false/null would arrive as truthy strings
    from pathlib import Path

    from fire.parser import DefaultParseValue

    from monai_xattn.bundles_cli import bundle_command, cli_value

    for value in (False, True, None, 3, 5e-05, [64, 32, 16], {"global": 1.0}, "mimic-cxr", ["PA", "AP"]):
        assert DefaultParseValue(cli_value(value)) == value, value
    assert cli_value(Path("/data/x")) == "/data/x"
    cmd = bundle_command("siim_unet", ["train.json"], {"use_bce": False, "weights": "w.pt"})
    assert cmd[1:4] == ["-m", "monai.bundle", "run"] and cmd[cmd.index("--use_bce") + 1] == "False"
    assert cmd[cmd.index("--weights") + 1] == "w.pt"
    # monai.bundle's override parser drops None (update_kwargs(ignore_none=True)): refused rather than lost
    with pytest.raises(ValueError, match=r"\['weights'\] of siim_unet are None"):
        bundle_command("siim_unet", ["train.json"], {"weights": None})


def test_help_imports_no_sub_command():
    """``monai-xattn --help`` lists every command without importing one (nor torch): start-up stays fast."""
    code = (
        "import sys\n"
        "from monai_xattn.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith('monai_xattn.') and m != 'monai_xattn.cli')\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "demo" in out and "phantom" in out
    assert out.strip().splitlines()[-1] == "HEAVY []", out.strip().splitlines()[-1]
