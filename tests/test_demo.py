"""``monai-xattn demo``: the whole chain on the tiny profile, its report, resuming, and a foreign folder refused.

The report is also rendered in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it and sets
``MONAI_XATTN_REQUIRE_BROWSER=1`` so that CI fails rather than skips when it is missing).
"""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from monai_xattn.cli import main
from monai_xattn.demo import demo_steps

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, installed_wheel):
    """The tiny demo, run as a user who installed the wheel runs it (``tests/test_wheel.py``): from another folder,
    with the bundles the package carries; it writes nothing into the install."""
    out = tmp_path_factory.mktemp("demo") / "out"
    before = installed_wheel.snapshot()
    installed_wheel.run([installed_wheel.script, "demo", "--out", out, "--profile", "tiny"], out.parent, timeout=1800)
    assert installed_wheel.snapshot() == before
    return out


def _summary(out, step):
    return json.loads((out / "steps" / f"{step}.done.json").read_text())


def test_every_step_ran_through_its_bundle_and_measured(demo_run, installed_wheel):
    out = demo_run
    names = [s.name for s in demo_steps("tiny", "medium", 0)]
    assert names[0] == "phantom" and names[-1] == "report"
    for name in names:
        assert (out / "steps" / f"{name}.done.json").is_file(), name
    assert _summary(out, "phantom")["result"]["layouts"]["chestxray8"]
    for checkpoint in (
        "cxr_retinanet",
        "cxr_xattn",
        "cxr_xattn_no_bce",
        "cxr_cam_baseline",
        "gloria_pretrain",
        "siim_unet_random",
        "siim_unet_gloria",
    ):
        assert (out / checkpoint / "model.pt").is_file(), checkpoint
    # bundle commands: `python -m monai.bundle run`, outputs redirected into the demo folder
    command = _summary(out, "cxr_xattn_train")["result"]["command"]
    assert command.startswith("-m monai.bundle run") and str(out / "cxr_retinanet" / "model.pt") in command
    assert str(installed_wheel.target / "monai_xattn" / "bundles" / "cxr_xattn" / "configs") in command
    for step in (
        "cxr_retinanet_evaluate_mimic-cxr",
        "cxr_xattn_evaluate_mimic-cxr",
        "cxr_cam_baseline_evaluate_gradcam_mimic-cxr",
    ):
        metrics = _summary(out, step)["result"]["metrics"]
        assert {"val_acc_iou25", "val_acc_iou50", "val_acc_iou75"} <= set(metrics), step
        assert all(0.0 <= v <= 1.0 for v in metrics.values()), step
    for init in ("random", "gloria"):
        assert 0.0 <= _summary(out, f"siim_unet_{init}_evaluate")["result"]["metrics"]["val_kaggle_dice"] <= 1.0
    # the training curve comes from the bundle's own log
    curve = _summary(out, "gloria_pretrain_train")["result"]["curve"]
    assert len(curve["train_loss"]) == 1 and np.isfinite(curve["train_loss"][0])
    assert (out / "logs" / "gloria_pretrain_train.log").is_file()


def test_report_holds_the_tables_beside_the_papers_and_the_figures(demo_run):
    md = (demo_run / "report.md").read_text()
    for title in (
        "Localization, Table 1",
        "Attribute classification",
        "GLoRIA Table 1",
        "GLoRIA Table 2",
        "GLoRIA Table 3",
        "GLoRIA Table 4",
        "Phrase grounding (MS-CXR metrics) on the phantom",
        "GLoRIA weights for the pneumonia detector: mAP",
        "## Timings",
        "## Versions",
    ):
        assert title in md, title
    # every method row twice: this run and the paper, labelled
    for method in ("CAM", "GradCAM", "RetinaNet", "Proposed w/o classification", "Proposed"):
        assert f"| {method} | ours, phantom |" in md and f"| {method} | paper, real data |" in md, method
    # our number in the table is the one the bundle wrote
    ours = _summary(demo_run, "cxr_retinanet_evaluate_mimic-cxr")["result"]["metrics"]["val_acc_iou25"]
    assert re.search(rf"\| RetinaNet \| ours, phantom \| 1 \| {ours:.3f} \[\d\.\d{{3}}, \d\.\d{{3}}\] \|", md)
    # our variant is labelled as ours, and each Proposed row is compared with RetinaNet on the same images
    assert "| Proposed, residual alpha (ours) | ours, phantom |" in md
    assert re.search(r"\| Proposed - RetinaNet \| ours, phantom \| [+-]\d\.\d{3} \[", md)
    # the CAM rows' pointing game, from the same evaluations
    assert re.search(r"the pointing game[^\n]*\n\n\|[^\n]*\n\|[^\n]*\n\| CAM \| ours, phantom \| \d\.\d{3} \[", md)
    html = (demo_run / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', html)
    drawn = {"figures/fig2_localization.png", "figures/fig4_gloria_attention.png", "figures/grounding.png"}
    assert drawn <= set(images)
    # phrase grounding: both papers' models and both floors scored on the same pneumonia phrases
    for method in ("GLoRIA similarity", "GLoRIA attention", "uniform", "cross-attention", "detector top box"):
        assert re.search(rf"\| Pneumonia \| {method} \| \d+ \| \d\.\d{{3}} \[", md), method
    for image in images:
        assert Image.open(demo_run / image).size[0] > 100
    assert html.count("<svg") >= 5  # training curves
    assert "not drawn" not in html


def _chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("MONAI_XATTN_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (MONAI_XATTN_REQUIRE_BROWSER=1) but not on PATH")
        pytest.skip("chromium not installed (Debian package `chromium`); .ci/run installs it")
    return found


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    chromium = _chromium()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    url = (demo_run / "report.html").as_uri()
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<table") >= 6 and "Localization, Table 1" in dom
    shot = tmp_path / "report.png"
    subprocess.run(
        [chromium, *flags, "--window-size=1200,2400", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (2400, 1200)
    # a rendered page: mostly white background, with text, tables and figures (dark pixels) spread down the page
    dark_rows = (pixels < 128).any(axis=1)
    assert dark_rows[:600].any() and dark_rows[600:1800].mean() > 0.2


def test_resume_skips_finished_steps_and_reruns_a_step_whose_output_went_missing(demo_run, capsys):
    (demo_run / "siim_unet_gloria" / "eval" / "metrics.csv").unlink()  # as if interrupted during that step
    capsys.readouterr()
    assert main(["demo", "--out", str(demo_run), "--profile", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "phantom: done before, skipped" in printed and "gloria_pretrain_train: done before, skipped" in printed
    assert "siim_unet_gloria_evaluate: finished" in printed and "report: finished" in printed
    assert (demo_run / "siim_unet_gloria" / "eval" / "metrics.csv").is_file()


def test_resuming_with_other_settings_is_refused(demo_run):
    with pytest.raises(ValueError, match="would mix two runs"):
        main(["demo", "--out", str(demo_run), "--profile", "tiny", "--difficulty", "easy"])


def test_demo_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "my_dataset.csv").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        main(["demo", "--out", str(tmp_path), "--profile", "tiny"])
    assert (tmp_path / "my_dataset.csv").read_text() == "precious"
