"""Fixtures shared by every test folder.

``official_gloria``: a faithful stand-in for the official GLoRIA checkpoint (``chexpert_resnet50.ckpt``, PyTorch-Lightning 1.1.x).

Built from the documented structure (``shared`` reference, official ``gloria`` code): the Lightning top-level
entries, callbacks keyed by Lightning's callback *classes*, an OmegaConf ``DictConfig`` of hyper-parameters (the
real class when omegaconf is importable, else a stand-in class at its real module path), and the ``state_dict``
under the official key names: a torchvision ResNet trunk (no ``fc``), the global and local embedders, and a BERT
text model with its ``position_ids`` buffer. The foreign classes exist only while the file is written, so the
reader is shown to work without Lightning or OmegaConf installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import Tensor

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist workers (`make test PYTEST_ARGS="-n 4 --dist loadfile"`) share the machine's cores, so each
    # gets its share in-process. The bundle runs a test starts keep torch's default, as in a serial run: a learning
    # test's margin was measured with those numerics (one thread in the training subprocesses turned Proposed
    # 0.295 -> 0.102 against a random ROI's 0.218; issue 20's note)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))


def build_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """``build(folder)`` once per test session, also across pytest-xdist workers; returns the folder it filled.

    A session fixture is otherwise built once per worker: the costly ones (a trained detector, a GLoRIA
    pretraining, a wheel built in the source tree) are built by the first worker that needs them, under a file
    lock, and read from disk by the others (pytest-xdist's recipe for session fixtures).
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / name  # the session's folder, shared by its workers
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def build_once_fixture():
    """:func:`build_once`, for the conftest files below (modules are imported by path here)."""
    return build_once


OFFICIAL_CLASSES = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.nodes.AnyNode",
)


@contextlib.contextmanager
def _foreign_classes() -> Iterator[dict[str, type]]:
    """Classes at Lightning's and OmegaConf's module paths, importable by pickle only inside the block."""
    created: dict[str, type] = {}
    added: list[str] = []
    for qualified in OFFICIAL_CLASSES:
        module_name, cls_name = qualified.rsplit(".", 1)
        parts = module_name.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        cls = type(cls_name, (), {"__module__": module_name, "__qualname__": cls_name})
        setattr(sys.modules[module_name], cls_name, cls)
        created[qualified] = cls
    try:
        yield created
    finally:
        for name in added:
            sys.modules.pop(name, None)


def official_trunk(seed: int = 0, depth: int = 50) -> torchvision.models.ResNet:
    """A torchvision ResNet whose weights and batch-norm statistics are all non-trivial (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    net = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if tensor.dtype.is_floating_point:
                noise = torch.randn(tensor.shape, generator=gen)
                if name.endswith("running_var"):
                    tensor.copy_(0.5 + noise.abs())
                elif name.endswith(("running_mean", "bias")):
                    tensor.copy_(0.1 * noise)
                elif name.endswith("weight") and tensor.ndim == 1:  # batch-norm gamma
                    tensor.copy_(1.0 + 0.1 * noise)
                else:
                    fan_in = tensor[0].numel()
                    tensor.copy_(noise * (2.0 / fan_in) ** 0.5)
    return net.eval()


def write_official_gloria_checkpoint(
    path: str | os.PathLike,
    trunk: torchvision.models.ResNet,
    text_state: Mapping[str, Tensor],
    embed_dim: int,
    seed: int = 0,
) -> dict[str, Tensor]:
    """Write a Lightning checkpoint with the official GLoRIA layout.

    Args:
        path: file to write.
        trunk: torchvision ResNet (its ``fc`` is left out, as the official encoder replaces it by Identity).
        text_state: a Hugging Face BERT state dict (``embeddings.position_ids`` is added when absent).
        embed_dim: ``D`` of the embedders (768 for ClinicalBERT).

    Returns:
        the ``state_dict`` written.
    """
    gen = torch.Generator().manual_seed(seed)
    trunk_state = {k: v.clone() for k, v in trunk.state_dict().items() if not k.startswith("fc.")}
    in_global = trunk.fc.in_features
    state = {f"gloria.img_encoder.model.{k}": v for k, v in trunk_state.items()}
    state["gloria.img_encoder.global_embedder.weight"] = 0.02 * torch.randn(embed_dim, in_global, generator=gen)
    state["gloria.img_encoder.global_embedder.bias"] = 0.02 * torch.randn(embed_dim, generator=gen)
    state["gloria.img_encoder.local_embedder.weight"] = 0.02 * torch.randn(
        embed_dim, in_global // 2, 1, 1, generator=gen
    )
    text = {k: v.clone() for k, v in text_state.items()}
    if "embeddings.position_ids" not in text:
        n_pos = text["embeddings.position_embeddings.weight"].shape[0]
        text["embeddings.position_ids"] = torch.arange(n_pos).unsqueeze(0)
    state.update({f"gloria.text_encoder.model.{k}": v for k, v in text.items()})
    with _foreign_classes() as cls:
        hparams = cls["omegaconf.dictconfig.DictConfig"]()
        meta = cls["omegaconf.base.ContainerMetadata"]()
        meta.__dict__.update({"ref_type": None, "object_type": dict, "optional": True, "key": None, "flags": {}})
        lr = cls["omegaconf.nodes.AnyNode"]()
        lr.__dict__.update({"_val": 5e-5, "_parent": None})
        hparams.__dict__.update(
            {
                "_metadata": meta,
                "_content": {"lightning": {"trainer": {"gpus": 1}}, "lr": lr},
                "_parent": None,
                "_flags_cache": None,
            }
        )
        checkpoint = {
            "epoch": 17,
            "global_step": 41_000,
            "pytorch-lightning_version": "1.1.4",
            "callbacks": {
                cls["pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"]: {
                    "monitor": "val_loss",
                    "best_model_score": torch.tensor(3.21),
                    "best_model_path": "ckpt/best.ckpt",
                    "current_score": torch.tensor(3.3),
                    "dirpath": "ckpt",
                },
                cls["pytorch_lightning.callbacks.early_stopping.EarlyStopping"]: {
                    "wait_count": 2,
                    "stopped_epoch": 0,
                    "best_score": torch.tensor(3.21),
                    "patience": 10,
                },
            },
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 5e-5, "betas": (0.5, 0.999), "params": [0]}]}],
            "lr_schedulers": [{"mode": "min", "factor": 0.5, "best": 3.21, "_last_lr": [5e-5]}],
            "native_amp_scaling_state": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 12},
            "state_dict": state,
            "hparams_name": "cfg",
            "hyper_parameters": hparams,
            "hparams_type": cls["omegaconf.dictconfig.DictConfig"],
        }
        torch.save(checkpoint, path)
    return state


@dataclass
class OfficialGloria:
    """The stand-in official checkpoint: its file, the torchvision trunk it holds and its ``state_dict``."""

    path: Path
    trunk: torchvision.models.ResNet
    state: dict[str, Tensor]
    embed_dim: int


@pytest.fixture(scope="session")
def official_gloria(tmp_path_factory) -> OfficialGloria:
    """A ResNet-50 official-layout checkpoint whose text model is the offline MiniLM default (so that the project's
    default ``GLoRIA`` can load it: the official file holds Bio_ClinicalBERT, which cannot be shipped)."""
    from monai_xattn.networks import GloriaTextEncoder

    text = GloriaTextEncoder(None)
    path = tmp_path_factory.mktemp("official_gloria") / "chexpert_resnet50.ckpt"
    trunk = official_trunk(seed=0, depth=50)
    state = write_official_gloria_checkpoint(path, trunk, text.model.state_dict(), text.hidden_size)
    return OfficialGloria(path, trunk, state, text.hidden_size)


@pytest.fixture(scope="session")
def location_word_vectors():
    """A small Word2Vec (8-d) over the pneumonia attributes' location and descriptor words, trained in a second."""
    from monai_xattn.text.word2vec import train_word2vec

    words = ["left", "right", "bilateral", "upper", "mid", "lower", "lobe", "base", "apical", "perihilar"]
    words += ["retrocardiac", "lingula", "patchy", "focal", "multifocal", "diffuse", "consolidation", "opacity"]
    words += ["infiltrate", "airspace", "ground_glass", "interstitial"]
    rng = np.random.default_rng(0)
    return train_word2vec([list(rng.choice(words, 6)) for _ in range(200)], vector_size=8, epochs=2)


@pytest.fixture(scope="session")
def reliability_docs_block():
    """``read(start, end)``: the generated block of ``docs/reliability.md`` between two markers, stripped."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"

    def read(start: str, end: str) -> str:
        text = doc.read_text()
        assert start in text and end in text, f"docs/reliability.md lacks the {start} ... {end} block"
        return text[text.index(start) : text.index(end)].split("\n", 1)[1].strip()

    return read


@dataclass
class TrainedDetector:
    """One cxr_retinanet training as shipped (CPU profile) on an easy RSNA phantom; read-only for its users."""

    out: Path  # the bundle's output folder: model.pt, datalist.json
    data: Path  # the RSNA phantom it learned from

    @property
    def checkpoint(self) -> Path:
        return self.out / "model.pt"


REPO_ROOT = Path(__file__).resolve().parents[1]
RETINANET_BUNDLE = REPO_ROOT / "bundles" / "cxr_retinanet"


def run_bundle(bundle: Path, configs: list[str], cwd: Path, **overrides) -> None:
    """``python -m monai.bundle run`` of ``bundle``'s configs; fails the test with the log's tail."""

    from monai_xattn.bundles_cli import cli_value

    files = str([str(bundle / "configs" / c) for c in configs])
    args = [a for k, v in overrides.items() for a in (f"--{k}", cli_value(v))]
    done = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", files, "--bundle_root", str(bundle), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(f"{bundle.name} {configs} failed:\n{(done.stdout + done.stderr)[-3000:]}")


@pytest.fixture(scope="session")
def bundle_runner():
    """:func:`run_bundle`, for tests (modules are imported by path here, so helpers travel as fixtures)."""
    return run_bundle


@pytest.fixture(scope="session")
def rsna_detector(tmp_path_factory) -> TrainedDetector:
    """The detector of the localization protocol (issue 18): cxr_retinanet's defaults (ResNet-18, 128 px, 8 epochs)
    on a 240-study easy RSNA phantom, trained once for the RetinaNet and Table 1 learning tests (~3 min on 2 cores)."""

    def train(root: Path) -> None:
        run_bundle(
            RETINANET_BUNDLE,
            ["train.json"],
            root,
            output_dir=root / "out",
            dataset_dir=root / "rsna",
            phantom_studies=240,
            phantom_difficulty="easy",
            progress=False,
        )

    root = build_once(tmp_path_factory, "rsna_detector", train)
    out, data = root / "out", root / "rsna"
    return TrainedDetector(out, data)


def best_fixed_box(training: list[dict]) -> np.ndarray:
    """The image-blind baseline: the one training box that hits (IoU >= 0.25) the most training images' boxes.

    A box that knows where lesions tend to lie but sees no image; unlike a centred box (0 on lesions that sit in
    the lungs' fields), it scores above 0 wherever the training boxes cluster.
    """
    from torchvision.ops import box_iou

    per_image = [torch.as_tensor(e["boxes"], dtype=torch.float32).reshape(-1, 4) for e in training if e.get("boxes")]
    candidates = torch.cat(per_image)
    hits = torch.stack([(box_iou(candidates, boxes) >= 0.25).any(dim=1) for boxes in per_image], dim=1)
    return candidates[hits.float().mean(dim=1).argmax()].numpy()


@pytest.fixture(scope="session")
def fixed_box_baseline():
    """:func:`best_fixed_box`, for tests."""
    return best_fixed_box


@dataclass
class MlflowTracking:
    """MONAI's built-in MLflow tracking (``python -m monai.bundle run ... --tracking mlflow``) into a local store."""

    db: Path
    experiment: str = "monai_xattn_test"

    def args(self) -> list[str]:
        """The command-line settings of a tracked bundle run: MONAI's defaults, pointed at ``db``."""
        return ["--tracking", "mlflow", "--tracking_uri", f"sqlite:///{self.db}", "--experiment_name", self.experiment]

    def runs(self) -> list[dict]:
        """Every run of the experiment: ``{"status", "params", "metrics", "artifacts"}``."""
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{self.db}")
        experiment = client.get_experiment_by_name(self.experiment)
        assert experiment is not None, f"no MLflow experiment {self.experiment!r} in {self.db}"
        return [
            {
                "status": run.info.status,
                "params": dict(run.data.params),
                "metrics": dict(run.data.metrics),
                "artifacts": [a.path for a in client.list_artifacts(run.info.run_id)],
            }
            for run in client.search_runs([experiment.experiment_id])
        ]

    def assert_one_finished_run(self, *metrics: str) -> dict:
        """Exactly one run (under DDP: rank 0's alone), finished, with the trainer's params, the given metrics (a
        finite ``train_loss`` among them) and the executed config as an artifact; returns it."""
        (run,) = self.runs()
        assert run["status"] == "FINISHED", run
        assert {"max_epochs", "epoch_length"} <= set(run["params"]), run["params"]
        assert set(metrics) <= set(run["metrics"]), run["metrics"]
        # validation metrics are nan where a tiny split has no box; the loss never is
        assert np.isfinite(run["metrics"]["train_loss"]), run["metrics"]
        assert any(a.startswith("config_") and a.endswith(".json") for a in run["artifacts"]), run["artifacts"]
        return run


@pytest.fixture
def mlflow_tracking(tmp_path_factory) -> MlflowTracking:
    """A fresh local MLflow store (SQLite: MLflow 3 dropped the file store) for one tracked bundle run.

    The suite needs the ``tracking`` extra (``make test`` installs it): without it the tests fail, not skip.
    """
    try:
        import mlflow  # noqa: F401
    except ImportError as e:
        pytest.fail(f"{e}: the tests need the optional extra, `pip install -e '.[test,tracking]'`")
    return MlflowTracking(tmp_path_factory.mktemp("mlflow") / "mlruns.db")


@dataclass
class InstalledWheel:
    """A wheel built from this tree, installed without dependencies into ``target``, which ``env`` puts on
    ``PYTHONPATH`` in front of this environment (whose torch, monai, ... it reuses)."""

    target: Path
    wheel: Path
    env: dict

    @property
    def script(self) -> Path:
        """The ``monai-xattn`` console script of the install."""
        return self.target / "bin" / "monai-xattn"

    def run(self, cmd: list, cwd: Path, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``cmd`` with the installed package; with ``check``, a failure fails the test with the output's tail."""
        done = subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=self.env, timeout=timeout
        )
        if check and done.returncode != 0:
            pytest.fail(f"{cmd} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        return done

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every file of the install with its size and modification time: a run must leave it as it was."""
        return {str(p.relative_to(self.target)): (p.stat().st_size, p.stat().st_mtime_ns) for p in self._files()}

    def _files(self) -> list[Path]:
        return sorted(p for p in self.target.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.fixture(scope="session")
def installed_wheel(tmp_path_factory) -> InstalledWheel:
    """``pip wheel --no-deps`` of this tree, ``pip install --no-deps --target`` of that wheel (no torch reinstall)."""

    def build_and_install(base: Path) -> None:
        def pip(*args: str) -> None:
            done = subprocess.run(
                [sys.executable, "-m", "pip", *args, "--quiet"], capture_output=True, text=True, cwd=base
            )
            assert done.returncode == 0, f"pip {args}\n{done.stderr[-3000:]}"

        pip("wheel", "--no-deps", "-w", str(base / "dist"), str(REPO_ROOT))
        (wheel,) = (base / "dist").glob("monai_xattn-*.whl")
        pip("install", "--no-deps", "--target", str(base / "site"), str(wheel))

    base = build_once(tmp_path_factory, "wheel", build_and_install)
    target, (wheel,) = base / "site", (base / "dist").glob("monai_xattn-*.whl")
    env = {**os.environ, "PYTHONPATH": str(target), "PYTHONUNBUFFERED": "1"}
    return InstalledWheel(target, wheel, env)
