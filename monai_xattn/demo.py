"""``monai-xattn demo``: the whole chain on phantom data, step by step, resumable.

Each step records a marker file in the output folder once it succeeded; a rerun skips finished steps
(``--force`` redoes them), so an interrupted demo resumes where it stopped. Bundles run through
``python -m monai.bundle run`` — the demo is a user of the bundles, not a second code path.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from monai_xattn.bundles_cli import bundle_root

__all__ = ["PROFILES", "Step", "BundleStep", "demo_steps", "run_demo", "add_arguments", "run"]

# phantom settings and per-bundle overrides of each profile; "tiny" exists for the end-to-end test
PROFILES: dict[str, dict] = {
    "tiny": {"phantom": {"n": 24, "size": 128}, "cxr_retinanet": {"epochs": 1, "batch_size": 2}},
    "cpu": {"phantom": {"n": 200, "size": 128}, "cxr_retinanet": {}},
    "paper": {"phantom": {"n": 1000, "size": 512}, "cxr_retinanet": {"depth": 50, "image_size": 512}},
}


@dataclass
class Step:
    """One demo step: ``action(out_dir)`` runs it; it counts as done once its marker exists."""

    name: str
    action: Callable[[Path], dict]

    def marker(self, out_dir: Path) -> Path:
        return out_dir / "steps" / f"{self.name}.done.json"


@dataclass
class BundleStep:
    """Run bundle configs through ``python -m monai.bundle run``; outputs go to ``out_dir/<bundle>``.

    The bundle reads the phantom the demo wrote (``out_dir/data/<dataset>``) and never writes into the source
    tree: ``output_dir`` is redirected, ``make_phantom`` is off.
    """

    bundle: str
    configs: list[str]
    dataset: str
    overrides: dict = field(default_factory=dict)
    metrics_file: str | None = None  # MetricsSaver output, relative to the bundle's output folder

    def command(self, out_dir: Path) -> list[str]:
        config_dir = bundle_root() / self.bundle / "configs"
        files = [str(config_dir / c) for c in self.configs]
        overrides = {
            "bundle_root": bundle_root() / self.bundle,
            "output_dir": (out_dir / self.bundle).resolve(),
            "dataset_dir": (out_dir / "data" / self.dataset).resolve(),
            "make_phantom": False,
            **self.overrides,
        }
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(files)]
        for key, value in overrides.items():
            cmd += [f"--{key}", str(value)]
        return cmd

    def __call__(self, out_dir: Path) -> dict:
        cmd = self.command(out_dir)
        subprocess.run(cmd, check=True, cwd=out_dir)
        result: dict = {"command": " ".join(cmd[1:])}
        if self.metrics_file is not None:
            rows = (out_dir / self.bundle / self.metrics_file).read_text().splitlines()
            result["metrics"] = {name: float(value) for name, value in (row.split(",", 1) for row in rows if row)}
        return result


def demo_steps(profile: str, difficulty: str, seed: int) -> list[Step]:
    """The steps of the demo, in order, for one profile."""
    settings = PROFILES[profile]

    def make_phantom(out_dir: Path) -> dict:
        from monai_xattn.data.phantom.generate import generate

        return generate(out_dir / "data", layout="all", seed=seed, difficulty=difficulty, overwrite=True,
                        **settings["phantom"])

    retinanet = settings["cxr_retinanet"]
    return [
        Step("phantom", make_phantom),
        Step("cxr_retinanet_train", BundleStep("cxr_retinanet", ["train.json"], "chestxray8", retinanet)),
        Step("cxr_retinanet_evaluate",
             BundleStep("cxr_retinanet", ["train.json", "evaluate.json"], "chestxray8", retinanet, "eval/metrics.csv")),
    ]


def run_demo(out_dir: Path, profile: str = "cpu", difficulty: str = "medium", seed: int = 0,
             force: bool = False) -> list[dict]:
    """Run (or resume) the demo into ``out_dir``; return one summary dict per step."""
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "steps").is_dir():
        raise FileExistsError(f"{out_dir} is not empty and holds no earlier demo run; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = demo_steps(profile, difficulty, seed)
    summaries = []
    for k, step in enumerate(steps, 1):
        marker = step.marker(out_dir)
        if marker.exists() and not force:
            print(f"[{k}/{len(steps)}] {step.name}: done before, skipped (--force to redo)")
            summaries.append(json.loads(marker.read_text()))
            continue
        print(f"[{k}/{len(steps)}] {step.name} ...", flush=True)
        start = time.perf_counter()
        result = step.action(out_dir)
        summary = {"step": step.name, "seconds": round(time.perf_counter() - start, 1), "result": result}
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(summary, indent=2, default=str))
        print(f"[{k}/{len(steps)}] {step.name}: finished in {summary['seconds']} s")
        summaries.append(summary)
    return summaries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="redo steps that finished before")


def run(args: argparse.Namespace) -> int:
    summaries = run_demo(args.out, args.profile, args.difficulty, args.seed, args.force)
    print("\nsummary")
    for summary in summaries:
        metrics = summary["result"].get("metrics")
        shown = json.dumps(metrics) if metrics else json.dumps(summary["result"], default=str)[:90]
        print(f"  {summary['step']:<24} {summary['seconds']:>7} s  {shown}")
    print(f"outputs in {args.out.resolve()}")
    return 0
