"""The package as a user installs it: a wheel built from this tree, installed (without dependencies) into a scratch
folder (the session fixture ``installed_wheel``), carries its bundles, lists them, copies one out and runs it with
``python -m monai.bundle run``. Every command runs outside the source tree. ``tests/test_demo.py`` runs the demo
from the same install.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_BUNDLES = sorted(p.parent.parent.name for p in (ROOT / "bundles").glob("*/configs/metadata.json"))


def test_the_installed_package_is_the_wheel_and_carries_every_bundle(installed_wheel, tmp_path):
    probe = (
        "import json, monai_xattn; from monai_xattn.bundles_cli import bundle_root; "
        "print(json.dumps([monai_xattn.__file__, str(bundle_root())]))"
    )
    module_file, root = json.loads(installed_wheel.run([sys.executable, "-c", probe], tmp_path).stdout)
    target = installed_wheel.target.resolve()
    assert Path(module_file).resolve().is_relative_to(target), module_file
    assert Path(root).resolve() == target / "monai_xattn" / "bundles"
    listed = installed_wheel.run([installed_wheel.script, "bundles"], tmp_path).stdout.splitlines()
    assert sorted(line.split()[0] for line in listed) == SHIPPED_BUNDLES
    for name in SHIPPED_BUNDLES:  # what the bundle ships, not what a run in place wrote beside it
        shipped = sorted(p.relative_to(ROOT / "bundles" / name) for p in (ROOT / "bundles" / name).rglob("*"))
        in_wheel = sorted(p.relative_to(Path(root) / name) for p in (Path(root) / name).rglob("*"))
        assert in_wheel == [p for p in shipped if p.parts[0] in ("LICENSE", "configs", "docs")], name


def test_a_copied_bundle_runs_from_anywhere(installed_wheel, tmp_path):
    before = installed_wheel.snapshot()
    work = tmp_path / "my_bundles"
    installed_wheel.run([installed_wheel.script, "bundles", "--copy-to", work, "siim_unet"], tmp_path)
    bundle = work / "siim_unet"
    assert sorted(p.name for p in bundle.iterdir()) == ["LICENSE", "configs", "docs"]
    (bundle / "configs" / "profiles" / "tiny.json").write_text(json.dumps({"epochs": 1, "spatial_size": 64}))
    # copying again would overwrite the user's edits: refused, the copy left as it was
    again = installed_wheel.run(
        [installed_wheel.script, "bundles", "--copy-to", work, "siim_unet"], tmp_path, check=False
    )
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    assert json.loads((bundle / "configs" / "profiles" / "tiny.json").read_text()) == {"epochs": 1, "spatial_size": 64}
    configs = json.dumps(["configs/train.json", "configs/profiles/tiny.json"])
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs]
    cmd += ["--meta_file", "configs/metadata.json", "--logging_file", "configs/logging.conf"]
    cmd += ["--phantom_studies", "24", "--phantom_size", "64", "--batch_size", "4", "--depth", "18"]
    installed_wheel.run(cmd, bundle)
    # the run wrote its phantom and checkpoint inside the copy (bundle_root "."), nothing into the install
    assert (bundle / "models" / "model.pt").is_file() and (bundle / "data" / "phantom_siim").is_dir()
    assert installed_wheel.snapshot() == before
