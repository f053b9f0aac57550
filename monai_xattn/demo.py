"""``monai-xattn demo``: the whole chain on phantom data, step by step, resumable, ending in a report.

Localization paper: ``cxr_retinanet`` (the supervised baseline and the ROI proposer) -> ``cxr_xattn`` (Proposed,
and Proposed without attribute classification) + ``cxr_cam_baseline`` (CAM, GradCAM) -> Table 1 on the phantom
MIMIC-CXR and ChestX-ray8 test splits. GLoRIA: ``gloria_pretrain`` -> ``gloria_eval`` (retrieval, zero-shot, linear
probes) -> ``siim_unet`` from GLoRIA weights vs random init. Then ``report.md`` / ``report.html`` with the
published numbers beside ours (:mod:`monai_xattn.report`).

Each step records a marker file in the output folder once it succeeded; a rerun skips finished steps
(``--force`` redoes them), so an interrupted demo resumes where it stopped. Bundles run through
``python -m monai.bundle run`` -- the demo is a user of the bundles, not a second code path. Each bundle's full
log goes to ``OUT/logs/<step>.log``; the terminal shows the step counter and per-epoch progress.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monai_xattn.bundles_cli import PROFILES, bundle_command, bundle_root, load_profile, profile_config
from monai_xattn.siim_table import CHECKPOINTS as SIIM_CHECKPOINTS
from monai_xattn.siim_table import SEEDS as SIIM_SEEDS

__all__ = [
    "PHANTOMS",
    "BUNDLES",
    "Step",
    "BundleStep",
    "demo_steps",
    "resolved_profile",
    "run_demo",
    "print_bundle_failure",
    "PARTS",
    "LOCALIZATION_SEEDS",
    "XATTN_VARIANTS",
    "ABLATIONS",
    "add_arguments",
    "run",
]

# Per profile (the bundles' own profiles, ``bundles/<bundle>/configs/profiles/<profile>.json``): the phantom studies
# the demo makes per folder and their image size. "tiny" exists for the end-to-end test (a few iterations per
# bundle); "cpu" is `make demo`; "paper" is the published setting, for a GPU machine and the real datasets
# (docs/reproduce.md) -- on the phantom it only shows that the settings run.
PHANTOMS: dict[str, dict] = {
    "tiny": {
        "size": 64,
        "n": {
            "rsna": 24,
            "mimic-cxr": 24,
            "mimic-cxr_eval": 24,
            "chestxray8": 24,
            "chexpert": 60,
            "chexpert_eval": 300,
            "siim": 24,
            "covid": 8,
            "ms-cxr": 24,
        },
    },
    "cpu": {
        "size": 128,
        "n": {
            "rsna": 240,
            "mimic-cxr": 160,
            "mimic-cxr_eval": 420,
            "chestxray8": 440,
            "chexpert": 600,
            "chexpert_eval": 1200,
            "siim": 160,
            "covid": 12,
            "ms-cxr": 200,
        },
    },
    "paper": {
        "size": 512,
        "n": {
            "chestxray8": 1000,
            "mimic-cxr": 1000,
            "chexpert": 2000,
            "chexpert_eval": 2000,
            "siim": 1000,
            "covid": 50,
            "ms-cxr": 1000,
        },
    },
}
#: the bundles the demo runs, in order
BUNDLES = ("cxr_retinanet", "cxr_xattn", "cxr_cam_baseline", "gloria_pretrain", "gloria_eval", "siim_unet")
# phantom folders that are not named after their layout: GLoRIA's evaluation set (5xN, linear probe) is a second
# CheXpert-layout phantom with another seed, unseen in pretraining (as the gloria_eval bundle's own default)
PHANTOM_FOLDERS = {"chexpert_eval": ("chexpert", 1), "mimic-cxr_eval": ("mimic-cxr", 1)}
# localization evaluation sets: Table 1's two column groups; the tiny profile evaluates on MIMIC-CXR only (the
# bundle tests cover the ChestX-ray8 evaluation; this saves 6 runs)
EVAL_DATASETS = ("mimic-cxr", "chestxray8")
_EVAL_DATASETS_OF = {"tiny": ("mimic-cxr",)}
# the phantom each evaluation set is read from, whole (``eval_split`` "all"): MIMIC-CXR's is a second phantom of
# the layout with another seed, so the training phantom's studies never reach Table 1 (>= 150 images with boxes in
# the cpu profile); ChestX-ray8 is never trained on
EVAL_FOLDERS = {"mimic-cxr": "mimic-cxr_eval", "chestxray8": "chestxray8"}
#: the two papers' chains, and the phantom folders each reads
PARTS = ("localization", "gloria")
PART_FOLDERS = {
    "localization": ("rsna", "mimic-cxr", "mimic-cxr_eval", "chestxray8", "covid", "ms-cxr"),
    "gloria": ("chexpert", "chexpert_eval", "siim", "ms-cxr"),
}
#: profiles whose demo runs the GLoRIA-vs-random detection table on its own RSNA phantom (the paper profile needs the
#: real RSNA: `monai-xattn detection-transfer --profile paper --data DIR`)
TRANSFER_PROFILES = ("tiny", "cpu")
#: localization training seeds per profile, counted from --seed (the detector is trained once and stays fixed)
LOCALIZATION_SEEDS: dict[str, tuple[int, ...]] = {"tiny": (0,), "cpu": (0, 1, 2), "paper": (0, 1, 2)}
#: cross-attention runs per seed: run-folder suffix -> bundle overrides (Table 1 rows, see report.builder)
XATTN_VARIANTS: dict[str, dict] = {
    "": {},  # Proposed: the paper's alpha (softmax over ROIs of a learned function of phi), BCE + triplet
    "_no_bce": {"use_bce": False},  # Proposed w/o classification
    "_residual": {"alpha_mode": "residual"},  # ours: the detector's logit plus a bounded learned term
}
#: the ablation of issue 18 (``ablation=True``): Proposed with one of the paper's rules undone at a time, trained
#: with the first localization seed only (its intervals are over images; the CPU budget of one table run)
ABLATIONS: dict[str, dict] = {
    "_whole_report": {"attribute_scope": "report"},  # attributes from the whole report, not the pneumonia sentences
    "_all_studies": {"training_rule": "all"},  # every study with a report trains the head
    "_no_scope_no_rule": {"attribute_scope": "report", "training_rule": "all"},  # the round-1 pipeline (learned alpha)
    "_untrained_word_vectors": {"word2vec_epochs": 0},  # Word2Vec's random initial vectors: no corpus at all
}


@dataclass
class Step:
    """One demo step: ``action(out_dir)`` runs it and returns its summary.

    It counts as done once its marker exists and so do its ``outputs`` (paths relative to the output folder): a
    deleted checkpoint makes the step run again rather than break the steps that read it.
    """

    name: str
    action: Callable[[Path], dict]
    outputs: list[str] = field(default_factory=list)
    always: bool = False  # the report: rebuilt on every run, from whatever the other steps left

    def marker(self, out_dir: Path) -> Path:
        return out_dir / "steps" / f"{self.name}.done.json"

    def is_done(self, out_dir: Path) -> bool:
        return not self.always and self.marker(out_dir).is_file() and all((out_dir / o).exists() for o in self.outputs)


# an iteration line of MONAI's StatsHandler ("Epoch: 2/8, Iter: 3/10 -- train_loss: 0.5"); a validation summary
_ITERATION = re.compile(r"Epoch: (\d+)/(\d+), Iter: (\d+)/(\d+) -- \w+: ([-+\d.eEnaif]+)")
_VAL_METRICS = re.compile(r"Epoch\[(\d+)\] Metrics -- (.*)")


@dataclass
class BundleStep:
    """Run bundle configs through ``python -m monai.bundle run``; the bundle's outputs go to ``out_dir/<run_dir>``.

    Args:
        bundle: the bundle folder name under ``bundles/``.
        configs: its config files, merged in order.
        run_dir: output folder under ``out_dir`` (the bundle's ``output_dir``).
        data: override key -> phantom layout, resolved to ``out_dir/data/<layout>`` (the bundle never makes its own
            phantom and never writes into the source tree).
        paths: override key -> a path relative to ``out_dir`` (e.g. another step's checkpoint).
        overrides: further bundle overrides.
        metrics_file: a ``MetricsSaver`` CSV (relative to ``run_dir``) whose values go into the step summary.
        json_files: JSON results (relative to ``run_dir``) that go into the step summary.
        profile: the bundle's ``configs/profiles/<profile>.json``, merged after ``configs`` (``None``: none).
    """

    bundle: str
    configs: list[str]
    run_dir: str
    data: dict[str, str] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    metrics_file: str | None = None
    json_files: list[str] = field(default_factory=list)
    log_name: str = ""
    profile: str | None = None

    def command(self, out_dir: Path) -> list[str]:
        out_dir = out_dir.resolve()
        overrides = {
            "bundle_root": bundle_root() / self.bundle,
            "output_dir": out_dir / self.run_dir,
            "make_phantom": False,
            **{key: out_dir / "data" / layout for key, layout in self.data.items()},
            **{key: out_dir / path for key, path in self.paths.items()},
            **self.overrides,
        }
        configs = [*self.configs, *([profile_config(self.bundle, self.profile)] if self.profile else [])]
        return bundle_command(self.bundle, configs, overrides)

    def __call__(self, out_dir: Path) -> dict:
        cmd = self.command(out_dir)
        log_path = out_dir / "logs" / f"{self.log_name or self.run_dir}.log"
        curve = _run_logged(cmd, log_path, cwd=out_dir)
        result: dict = {"command": " ".join(cmd[1:]), "log": str(log_path.relative_to(out_dir)), "curve": curve}
        run_dir = out_dir / self.run_dir
        if self.metrics_file is not None:
            # the per-image results (MetricsSaver's details) lie beside it: the report's intervals read them
            result["metrics_path"] = f"{self.run_dir}/{self.metrics_file}"
            rows = (run_dir / self.metrics_file).read_text().splitlines()
            result["metrics"] = {name: float(value) for name, value in (row.split(",", 1) for row in rows if row)}
        for name in self.json_files:
            result.setdefault("tables", {})[Path(name).stem] = json.loads((run_dir / name).read_text())
        return result


def _run_logged(cmd: list[str], log_path: Path, cwd: Path) -> dict:
    """Run ``cmd`` with its output in ``log_path``; show epoch progress; return the training curve it logged.

    Returns:
        ``{"train_loss": [mean loss of epoch 1, ...], "val": {metric: [value per validation]}}``.

    Raises:
        subprocess.CalledProcessError: the bundle failed; the message ends with the log's last lines.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    losses: dict[int, list[float]] = {}
    val: dict[str, list[float]] = {}
    tty = sys.stdout.isatty()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (
        open(log_path, "w", encoding="utf-8") as log,
        subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if match := _ITERATION.search(line):
                epoch, epochs, it, its, loss = match.groups()
                losses.setdefault(int(epoch), []).append(float(loss))
                done = (int(epoch) - 1 + int(it) / int(its)) / int(epochs)
                text = f"    epoch {epoch}/{epochs} [{'#' * round(20 * done):<20}] iteration {it}/{its}"
                if tty:
                    print("\r" + text, end="", flush=True)
                elif it == its:
                    print(text, flush=True)
            elif match := _VAL_METRICS.search(line):
                for name, value in re.findall(r"(\w+): ([-+\d.eE]+|nan|inf)", match.group(2)):
                    val.setdefault(name, []).append(float(value))
        proc.wait()
    if tty and losses:
        print()
    if proc.returncode != 0:
        tail = "".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-25:])
        raise subprocess.CalledProcessError(proc.returncode, cmd, output=f"log {log_path}:\n{tail}")
    return {"train_loss": [sum(v) / len(v) for _, v in sorted(losses.items())], "val": val}


#: bundles whose network holds the GLoRIA text encoder: the demo's --text-model goes to them
TEXT_MODEL_BUNDLES = ("gloria_pretrain", "gloria_eval")


def _text_model_override(bundle: str, text_model: str | None) -> dict:
    return {"text_model": text_model} if text_model is not None and bundle in TEXT_MODEL_BUNDLES else {}


def resolved_profile(profile: str) -> dict:
    """What ``profile`` runs: its phantom, its evaluation sets and each bundle's overrides, read from the bundles.

    The demo writes it to ``steps/profile.json``; the report reads it from there.
    """
    return {
        "profile": profile,
        "phantom": PHANTOMS[profile],
        "eval_datasets": list(_EVAL_DATASETS_OF.get(profile, EVAL_DATASETS)),
        "bundles": {bundle: load_profile(bundle, profile) for bundle in BUNDLES},
    }


def demo_steps(
    profile: str,
    difficulty: str,
    seed: int,
    text_model: str | os.PathLike | None = None,
    parts: Sequence[str] = PARTS,
    ablation: bool = False,
) -> list[Step]:
    """The steps of the demo, in order, for one profile.

    Args:
        profile: one of :data:`monai_xattn.bundles_cli.PROFILES`.
        difficulty, seed: of the phantom.
        text_model: GLoRIA's text model, a local folder (``None``: the bundles' offline default). The ``paper``
            profile needs one: it trains Bio_ClinicalBERT, as the paper.
        parts: which paper's chain to run, from :data:`PARTS` (``monai-xattn table1`` runs the localization only).
        ablation: add the localization ablation runs (:data:`ABLATIONS`), with the first localization seed.

    Raises:
        ValueError: the ``paper`` profile without ``text_model``, or an unknown part.
    """
    unknown = set(parts) - set(PARTS)
    if unknown or not parts:
        raise ValueError(f"parts must be a non-empty subset of {PARTS}, got {list(parts)}")
    if profile == "paper" and text_model is None and "gloria" in parts:
        raise ValueError(
            "the paper profile trains GLoRIA's text encoder on Bio_ClinicalBERT: pass --text-model DIR, "
            "a local copy of emilyalsentzer/Bio_ClinicalBERT (nothing is downloaded)"
        )
    text_model = None if text_model is None else os.fspath(text_model)
    phantom = PHANTOMS[profile]
    eval_datasets = _EVAL_DATASETS_OF.get(profile, EVAL_DATASETS)

    def make_phantom(out_dir: Path) -> dict:
        from monai_xattn.data.phantom.generate import generate

        layouts = {}
        for folder, n in folders.items():
            layout, seed_offset = PHANTOM_FOLDERS.get(folder, (folder, 0))
            layouts[folder] = generate(
                out_dir / "data" / folder,
                layout=layout,
                n=n,
                size=phantom["size"],
                seed=seed + seed_offset,
                difficulty=difficulty,
                overwrite=True,
            )["layouts"][layout]
        return {"layouts": layouts, "size": phantom["size"], "difficulty": difficulty, "seed": seed}

    folders = {f: n for f, n in phantom["n"].items() if any(f in PART_FOLDERS[part] for part in parts)}
    common = {"seed": seed, "phantom_size": phantom["size"]}
    steps = [Step("phantom", make_phantom, [f"data/{folder}/phantom.json" for folder in folders])]

    def add(name: str, bundle_step: BundleStep, outputs: Sequence[str] = ()) -> None:
        bundle_step.overrides = {
            **common,
            **_text_model_override(bundle_step.bundle, text_model),
            **bundle_step.overrides,
        }
        bundle_step.profile = profile
        bundle_step.log_name = name
        outputs = [*outputs, bundle_step.metrics_file, *bundle_step.json_files]
        if name.endswith("_train"):
            outputs.append("model.pt")
        steps.append(Step(name, bundle_step, [f"{bundle_step.run_dir}/{o}" for o in outputs if o]))

    if "localization" in parts:
        # -- localization paper (issue 18): the detector learns RSNA's pneumonia boxes and stays fixed ("pretrained and
        # fixed"); the head (Proposed, without attribute BCE, and our residual alpha) and the CAM classifier learn from
        # MIMIC-CXR, once per localization seed; every row is evaluated on the same images: every study of a held-out
        # MIMIC-CXR phantom and of the ChestX-ray8 phantom (neither ever trained on)
        detector = {"detector_checkpoint": "cxr_retinanet/model.pt"}
        add(
            "cxr_retinanet_train",
            BundleStep("cxr_retinanet", ["train.json"], "cxr_retinanet", data={"dataset_dir": "rsna"}),
        )
        for ds in eval_datasets:
            add(
                f"cxr_retinanet_evaluate_{ds}",
                BundleStep(
                    "cxr_retinanet",
                    ["train.json", "evaluate.json"],
                    "cxr_retinanet",
                    data={"dataset_dir": "rsna", "eval_dataset_dir": EVAL_FOLDERS[ds]},
                    overrides={"eval_dataset": ds, "eval_split": "all", "eval_boxes_only": True},
                    metrics_file=f"eval_{ds}/metrics.csv",
                ),
            )
        for loc_seed in (seed + offset for offset in LOCALIZATION_SEEDS[profile]):
            suffix = "" if loc_seed == seed else f"_seed{loc_seed}"
            for variant, head in (XATTN_VARIANTS | (ABLATIONS if ablation and loc_seed == seed else {})).items():
                run_dir = f"cxr_xattn{variant}{suffix}"
                head = {**head, "seed": loc_seed}
                add(
                    f"{run_dir}_train",
                    BundleStep(
                        "cxr_xattn",
                        ["train.json"],
                        run_dir,
                        data={"dataset_dir": "mimic-cxr"},
                        paths=detector,
                        overrides=head,
                    ),
                )
                for ds in eval_datasets:
                    add(
                        f"{run_dir}_evaluate_{ds}",
                        BundleStep(
                            "cxr_xattn",
                            ["train.json", "evaluate.json"],
                            run_dir,
                            data={"dataset_dir": "mimic-cxr", "eval_dataset_dir": EVAL_FOLDERS[ds]},
                            paths=detector,
                            overrides={**head, "eval_dataset": ds, "eval_split": "all", "eval_boxes_only": True},
                            metrics_file=f"eval_{ds}/metrics.csv",
                        ),
                    )
        add(
            "cxr_xattn_inference",
            BundleStep(
                "cxr_xattn",
                ["train.json", "inference.json"],
                "cxr_xattn",
                data={"dataset_dir": "mimic-cxr"},
                paths={"detector_checkpoint": "cxr_retinanet/model.pt"},
            ),
            outputs=["predictions/predictions.json"],
        )
        covid_inference = BundleStep(
            "cxr_xattn",
            ["train.json", "inference.json"],
            "cxr_xattn",
            data={"dataset_dir": "covid"},
            paths={
                "detector_checkpoint": "cxr_retinanet/model.pt",
                "datalist_file": "cxr_xattn/datalist_covid.json",
                "prediction_dir": "cxr_xattn/predictions_covid",
            },
            overrides=common,
            log_name="cxr_xattn_inference_covid",
            profile=profile,
        )

        def case_study(out_dir: Path) -> dict:
            # Fig. 3 of the paper: the model trained on MIMIC-CXR, applied to the covid-chestxray-dataset layout
            from monai_xattn.data import build_covid_datalist, write_datalist

            datalist, report = build_covid_datalist(out_dir / "data" / "covid", views=["PA", "AP"])
            entries = [e for split in datalist.values() for e in split]
            write_datalist(
                {"training": [], "validation": [], "test": entries}, out_dir / "cxr_xattn" / "datalist_covid.json"
            )
            return {**covid_inference(out_dir), "images": len(entries)}

        steps.append(Step("cxr_xattn_inference_covid", case_study, ["cxr_xattn/predictions_covid/predictions.json"]))
        # phrase grounding (issue 22): the cross-attention model given each MS-CXR phrase's attributes, and its
        # detector's top box as the phrase-agnostic floor, on the phantom MS-CXR layout
        add(
            "cxr_xattn_grounding",
            BundleStep(
                "cxr_xattn",
                ["train.json", "evaluate_grounding.json"],
                "cxr_xattn",
                data={"dataset_dir": "mimic-cxr", "grounding_dataset_dir": "ms-cxr"},
                paths=detector,
            ),
            outputs=["grounding_xattn.json"],
        )
        for loc_seed in (seed + offset for offset in LOCALIZATION_SEEDS[profile]):
            run_dir = "cxr_cam_baseline" + ("" if loc_seed == seed else f"_seed{loc_seed}")
            add(
                f"{run_dir}_train",
                BundleStep(
                    "cxr_cam_baseline",
                    ["train.json"],
                    run_dir,
                    data={"dataset_dir": "mimic-cxr"},
                    overrides={"seed": loc_seed},
                ),
            )
            for method in ("cam", "gradcam"):
                for ds in eval_datasets:
                    add(
                        f"{run_dir}_evaluate_{method}_{ds}",
                        BundleStep(
                            "cxr_cam_baseline",
                            ["train.json", "evaluate.json"],
                            run_dir,
                            data={"dataset_dir": "mimic-cxr", "eval_dataset_dir": EVAL_FOLDERS[ds]},
                            overrides={
                                "seed": loc_seed,
                                "cam_method": method,
                                "eval_dataset": ds,
                                "eval_split": "all",
                                "eval_boxes_only": True,
                            },
                            metrics_file=f"eval_{ds}_{method}/metrics.csv",
                        ),
                    )
    if "gloria" in parts:
        # -- GLoRIA: pretraining, then its image encoder downstream
        add(
            "gloria_pretrain_train",
            BundleStep("gloria_pretrain", ["train.json"], "gloria_pretrain", data={"dataset_dir": "chexpert"}),
        )
        gloria_eval = {"data": {"dataset_dir": "chexpert_eval"}, "paths": {"checkpoint": "gloria_pretrain/model.pt"}}
        add(
            "gloria_eval_evaluate",
            BundleStep("gloria_eval", ["evaluate.json"], "gloria_eval", **gloria_eval, json_files=["evaluate.json"]),
        )
        add(
            "gloria_eval_linear_probe",
            BundleStep(
                "gloria_eval",
                ["evaluate.json", "linear_probe.json"],
                "gloria_eval",
                **gloria_eval,
                json_files=["linear_probe.json"],
            ),
        )
        # phrase grounding (issue 22): GLoRIA's word-region maps of each MS-CXR phrase, and the uniform floor
        add(
            "gloria_eval_grounding",
            BundleStep(
                "gloria_eval",
                ["evaluate.json", "evaluate_grounding.json"],
                "gloria_eval",
                data={"grounding_dataset_dir": "ms-cxr"},
                paths={"checkpoint": "gloria_pretrain/model.pt"},
            ),
            outputs=["grounding_gloria.json"],
        )
        # SIIM as monai-xattn siim-table's 100 % column: the profile's training seeds counted from --seed (the data and
        # its split stay those of --seed), each run's best-validation and last-epoch weights evaluated
        for init in ("random", "gloria"):
            weights = {"weights": "gloria_pretrain/model.pt"} if init == "gloria" else {}
            for siim_seed in (seed + offset for offset in SIIM_SEEDS[profile]):
                run_dir = f"siim_unet_{init}" + ("" if siim_seed == seed else f"_seed{siim_seed}")
                seeds = {"seed": siim_seed, "data_seed": seed}
                add(
                    f"{run_dir}_train",
                    BundleStep(
                        "siim_unet",
                        ["train.json"],
                        run_dir,
                        data={"dataset_dir": "siim"},
                        paths=weights,
                        overrides={"init": init, **seeds},
                    ),
                )
                for checkpoint, folder in SIIM_CHECKPOINTS.items():
                    add(
                        f"{run_dir}_evaluate" + ("" if checkpoint == "best" else f"_{checkpoint}"),
                        BundleStep(
                            "siim_unet",
                            ["train.json", "evaluate.json"],
                            run_dir,
                            data={"dataset_dir": "siim"},
                            overrides={**seeds, "eval_checkpoint": checkpoint},
                            metrics_file=f"{folder}/metrics.csv",
                        ),
                    )
    if "localization" in parts and "gloria" in parts and profile in TRANSFER_PROFILES:
        # -- joining the papers (issue 22): the pneumonia detector from random init vs from this run's GLoRIA
        # pretraining, at 1 / 10 / 100 % of the training images, per training seed (monai-xattn detection-transfer)
        def detection_transfer(out_dir: Path) -> dict:
            from monai_xattn.detection_transfer import SEEDS as TRANSFER_SEEDS
            from monai_xattn.detection_transfer import run_detection_transfer

            summary = run_detection_transfer(
                out_dir / "detection_transfer",
                out_dir / "gloria_pretrain" / "model.pt",
                profile=profile,
                seeds=[seed + offset for offset in TRANSFER_SEEDS[profile]],
                data_seed=seed,
                difficulty=difficulty,
            )
            return {k: summary[k] for k in ("settings", "cells", "differences")}

        steps.append(Step("detection_transfer", detection_transfer, ["detection_transfer/detection_transfer.json"]))
    # -- the report reads every step's summary and the bundles' outputs
    steps.append(Step("report", lambda out_dir: _report(out_dir, profile), always=True))
    return steps


def _report(out_dir: Path, profile: str) -> dict:
    from monai_xattn.report import write_report

    return write_report(out_dir, profile=profile)


def run_demo(
    out_dir: Path,
    profile: str = "cpu",
    difficulty: str = "medium",
    seed: int = 0,
    force: bool = False,
    text_model: str | os.PathLike | None = None,
    parts: Sequence[str] = PARTS,
    ablation: bool = False,
) -> list[dict]:
    """Run (or resume) the demo into ``out_dir``; return one summary dict per step (``text_model``, ``parts``,
    ``ablation``: see :func:`demo_steps`)."""
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "steps").is_dir():
        raise FileExistsError(f"{out_dir} is not empty and holds no earlier demo run; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    settings_file = out_dir / "steps" / "settings.json"
    settings = {"profile": profile, "difficulty": difficulty, "seed": seed}
    if tuple(parts) != PARTS or ablation:
        settings.update(parts=list(parts), ablation=ablation)
    if text_model is not None:
        settings["text_model"] = os.fspath(text_model)
    if settings_file.is_file() and json.loads(settings_file.read_text()) != settings and not force:
        raise ValueError(
            f"{out_dir} holds a demo run with {settings_file.read_text().strip()}; resuming it with "
            f"{settings} would mix two runs: use --force or another --out"
        )
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(json.dumps(settings))
    (out_dir / "steps" / "profile.json").write_text(json.dumps(resolved_profile(profile), indent=1) + "\n")
    steps = demo_steps(profile, difficulty, seed, text_model, parts, ablation)
    summaries = []
    for k, step in enumerate(steps, 1):
        marker = step.marker(out_dir)
        if step.is_done(out_dir) and not force:
            print(f"[{k}/{len(steps)}] {step.name}: done before, skipped (--force to redo)")
            summaries.append(json.loads(marker.read_text()))
            continue
        print(f"[{k}/{len(steps)}] {step.name} ...", flush=True)
        start = time.perf_counter()
        result = step.action(out_dir)
        summary = {"step": step.name, "seconds": round(time.perf_counter() - start, 1), "result": result}
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(summary, indent=2, default=str))
        print(f"[{k}/{len(steps)}] {step.name}: finished in {summary['seconds']} s", flush=True)
        summaries.append(summary)
    return summaries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default: demo_out)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    parser.add_argument("--difficulty", choices=["easy", "medium", "hard"], default="medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="redo steps that finished before")
    parser.add_argument(
        "--text-model",
        type=Path,
        default=None,
        help="GLoRIA's text model, a local folder (required by --profile paper: Bio_ClinicalBERT)",
    )


def print_bundle_failure(error: subprocess.CalledProcessError) -> None:
    """Tell the user which bundle failed (its log's tail) and that a rerun resumes."""
    print(f"\na bundle failed (exit {error.returncode}); {error.output}", file=sys.stderr)
    print("fix the cause and rerun the same command: finished steps are skipped", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        summaries = run_demo(args.out, args.profile, args.difficulty, args.seed, args.force, args.text_model)
    except subprocess.CalledProcessError as e:
        print_bundle_failure(e)
        return 1
    total = sum(s["seconds"] for s in summaries)
    report = summaries[-1]["result"]
    print("\n" + report.get("summary", ""))
    print(f"steps: {len(summaries)}, {total:.0f} s of work; report: {(args.out / 'report.html').resolve()}")
    return 0
