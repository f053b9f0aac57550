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
    "tiny": {"phantom": {"n": 24, "size": 128}, "bundle_overrides": {"max_epochs": 1}},
    "cpu": {"phantom": {"n": 200, "size": 256}, "bundle_overrides": {}},
    "paper": {"phantom": {"n": 1000, "size": 512}, "bundle_overrides": {}},
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
    """Run one bundle config through ``python -m monai.bundle run`` with overrides."""

    bundle: str
    configs: list[str]
    overrides: dict = field(default_factory=dict)

    def __call__(self, out_dir: Path) -> dict:
        config_dir = bundle_root() / self.bundle / "configs"
        files = [str(config_dir / c) for c in self.configs]
        cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(files)]
        cmd += ["--bundle_root", str(bundle_root() / self.bundle)]
        for key, value in self.overrides.items():
            cmd += [f"--{key}", str(value)]
        subprocess.run(cmd, check=True, cwd=out_dir)
        return {"command": cmd}


def demo_steps(profile: str, difficulty: str, seed: int) -> list[Step]:
    """The steps of the demo, in order, for one profile."""
    settings = PROFILES[profile]

    def make_phantom(out_dir: Path) -> dict:
        from monai_xattn.data.phantom.generate import generate

        return generate(out_dir / "data", layout="all", seed=seed, difficulty=difficulty, overwrite=True,
                        **settings["phantom"])

    return [Step("phantom", make_phantom)]


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
        print(f"  {summary['step']:<16} {summary['seconds']:>7} s  {json.dumps(summary['result'], default=str)[:100]}")
    print(f"outputs in {args.out.resolve()}")
    return 0
