"""Linear probe of a frozen image encoder (GLoRIA Table 2): features -> linear classifier -> AUROC.

Protocol (official GLoRIA classification code, CheXpert): the average-pooled last-stage features (2048-d for a
ResNet-50) feed one linear layer trained with BCE on the tasks' binary labels, Adam (lr 1e-4, betas 0.5/0.999,
weight decay 1e-6), batch 64, on 1 %, 10 % and 100 % of the training split; the score is the mean AUROC over
the tasks on the test split (MONAI's ``compute_roc_auc`` per task). Baselines in the same run: a randomly initialised
encoder and, when a weight file is given, ImageNet.

Differences from the official code, on purpose:

- the encoder is frozen **including batch-norm statistics** (the official code leaves BN in train mode, so its
  "frozen" encoder drifts);
- the encoder is run once and its features cached, so the classifier sees no crop augmentation (the official
  code random-crops each epoch); this makes a probe on a CPU a matter of seconds;
- the training subsets are drawn per stratum (label combination) with a seed, at least one image per stratum,
  where the official code samples rows unstratified; on small sets the smallest fraction therefore holds
  somewhat more than its share.
"""

from __future__ import annotations

import math
import os
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import DataLoader
from monai.engines import SupervisedTrainer
from torch import Tensor, nn

from monai_xattn.metrics.classification import macro_auroc
from monai_xattn.networks.resnet_weights import load_encoder_weights
from monai_xattn.networks.trunk import resnet_trunk

__all__ = [
    "LINEAR_PROBE_FRACTIONS",
    "build_trunk",
    "load_trunk_weights",
    "gloria_trunk",
    "probe_trunks",
    "label_entries",
    "stratified_subset",
    "extract_features",
    "train_linear_probe",
    "probe_auroc",
    "run_linear_probe",
]

LINEAR_PROBE_FRACTIONS = (0.01, 0.1, 1.0)
"""The training fractions of GLoRIA's Table 2."""


def build_trunk(depth: int = 50, in_channels: int = 1) -> nn.Module:
    """The ResNet trunk of :class:`~monai_xattn.networks.GloriaImageEncoder`, ending in the average pool.

    Returns:
        a MONAI ResNet (2D, ``conv1_t_stride=2``, no classifier) mapping ``(B, C, W, H)`` to ``(B, F)``
        (F = 512 for depths 18/34, 2048 for 50/101).
    """
    return resnet_trunk(depth, in_channels)


def load_trunk_weights(
    trunk: nn.Module, source: str | os.PathLike | Mapping[str, Tensor], transpose_kernels: bool = True
) -> None:
    """Load a torchvision-layout ResNet state dict (e.g. ImageNet ``resnet50-*.pth``) into :func:`build_trunk`'s.

    A thin wrapper over :func:`monai_xattn.networks.resnet_weights.load_encoder_weights` (``kind="imagenet"``):
    the trunk's key prefix is found before ``layer1.0.conv1.weight``; ``fc.*`` and other tensors with no place in
    the trunk are ignored; a 3-channel first convolution is summed over channels for a 1-channel trunk (grey
    replicated to RGB gives the same features); the shortcut-convolution biases MONAI's ResNet has and
    torchvision's lacks are set to zero. Every trunk weight must come from ``source``.

    Args:
        trunk: from :func:`build_trunk`.
        source: weight file (read with ``weights_only=True``) or state dict.
        transpose_kernels: weights learned on ``(H, W)`` arrays (torchvision, official GLoRIA) compute the same
            features on MONAI's ``(W, H)`` images after transposing every kernel.

    Raises:
        ValueError: naming the file, when it holds no ResNet trunk, a trunk weight is missing or has another
            shape; the trunk is then left as it was.
    """
    name = "<state dict>" if isinstance(source, Mapping) else os.fspath(source)
    before = {k: v.detach().clone() for k, v in trunk.state_dict().items()}  # restored if the source does not fit
    result = load_encoder_weights(trunk, source, "imagenet", strict=False, transpose_kernels=transpose_kernels)
    if result.missing or result.mismatched:
        trunk.load_state_dict(before)
        if result.missing:
            raise ValueError(
                f"{name}: {len(result.missing)} trunk weights missing, e.g. {result.missing[:4]} (another depth?)"
            )
        raise ValueError(
            f"{name}: {len(result.mismatched)} trunk weights of another shape, e.g. "
            f"{result.mismatched[:4]} (another depth?)"
        )


def gloria_trunk(checkpoint: str | os.PathLike, depth: int = 50, in_channels: int = 1) -> nn.Module:
    """The image trunk of a GLoRIA checkpoint: ``bundles/gloria_pretrain``'s ``model.pt``, the official
    ``chexpert_resnet50.ckpt`` or a torchvision ResNet state dict (converted to MONAI's frame; every trunk weight
    must come from the file)."""
    trunk = build_trunk(depth, in_channels)
    load_encoder_weights(trunk, checkpoint, "gloria", strict=True)
    return trunk


def probe_trunks(
    gloria_checkpoint: str | os.PathLike | None,
    depth: int = 50,
    in_channels: int = 1,
    imagenet_weights: str | os.PathLike | None = None,
    seed: int = 0,
) -> dict[str, nn.Module]:
    """The encoders Table 2 compares, built the same way: GLoRIA (when a checkpoint is given), random
    initialisation (seeded) and ImageNet (when a torchvision weight file is given).

    Returns:
        ``{"GLoRIA": ..., "Random": ..., "ImageNet": ...}`` (the available ones).
    """
    trunks = {}
    if gloria_checkpoint is not None:
        trunks["GLoRIA"] = gloria_trunk(gloria_checkpoint, depth, in_channels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunks["Random"] = build_trunk(depth, in_channels)
    if imagenet_weights is not None:
        trunks["ImageNet"] = build_trunk(depth, in_channels)
        load_trunk_weights(trunks["ImageNet"], imagenet_weights, transpose_kernels=True)
    return trunks


def label_entries(
    entries: Sequence[Mapping[str, Any]], tasks: Sequence[str], label_key: str = "label", source: str = "datalist"
) -> list[dict[str, Any]]:
    """Copy datalist entries with a ``(len(tasks),)`` 0/1 label vector taken from their ``labels`` dict.

    Raises:
        ValueError: an entry lacks a task or holds a value other than 0/1 (apply an uncertainty policy first).
    """
    out = []
    for i, e in enumerate(entries):
        labels = e.get("labels", {})
        values = [labels.get(t) for t in tasks]
        if any(v not in (0, 1) for v in values):
            bad = {t: v for t, v in zip(tasks, values, strict=True) if v not in (0, 1)}
            raise ValueError(
                f"{source} entry #{i} ({e.get('image', '?')}): labels {bad} are not 0/1; map "
                "uncertain/blank labels when building the datalist"
            )
        out.append({**e, label_key: [float(v) for v in values]})
    return out


def stratified_subset(
    strata: Sequence[Hashable], fraction: float, seed: int = 0, min_per_stratum: int = 1
) -> np.ndarray:
    """Seeded stratified sample of indices: ``ceil(fraction * n_s)`` (at least ``min_per_stratum``) per stratum.

    Args:
        strata: ``(N,)`` stratum of each item (a class, or a tuple of multi-label values).
        fraction: in ``(0, 1]``; 1 returns every index.
        seed: sampling seed.
        min_per_stratum: floor per stratum (capped at its size).

    Returns:
        sorted ``int64`` indices.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = len(strata)
    if fraction == 1:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    groups: dict[Hashable, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    chosen = []
    for key in sorted(groups, key=repr):  # a fixed order, so the seed alone decides the draw
        idx = np.asarray(groups[key])
        k = min(len(idx), max(min_per_stratum, math.ceil(fraction * len(idx))))
        chosen.append(rng.choice(idx, size=k, replace=False))
    return np.sort(np.concatenate(chosen))


@torch.no_grad()
def extract_features(
    trunk: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    image_key: str = "image",
    label_key: str = "label",
    device: str | torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    """Run a frozen trunk (eval mode: batch-norm statistics fixed) over a loader.

    Returns:
        ``(features, labels)``: ``(N, F)`` and ``(N, T)`` float tensors on the CPU.
    """
    if device is not None:
        trunk = trunk.to(device)
    device = next(trunk.parameters()).device
    trunk.eval()
    feats, labels = [], []
    for batch in batches:
        # plain tensors: MetaTensor rows would carry their batch's metadata into the probe's own batches
        image = torch.as_tensor(batch[image_key]).as_subclass(torch.Tensor).to(device)
        feats.append(trunk(image).float().cpu())
        label = torch.as_tensor(batch[label_key]).as_subclass(torch.Tensor)
        labels.append(label.float().reshape(feats[-1].shape[0], -1))
    if not feats:
        raise ValueError("extract_features got no batch")
    return torch.cat(feats), torch.cat(labels)


def train_linear_probe(
    features: Tensor,
    labels: Tensor,
    epochs: int = 50,
    learning_rate: float = 1e-4,
    batch_size: int = 64,
    weight_decay: float = 1e-6,
    betas: tuple[float, float] = (0.5, 0.999),
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> nn.Linear:
    """Train a linear classifier on cached features with MONAI's ``SupervisedTrainer`` (BCE over the tasks).

    Args:
        features: ``(N, F)``. labels: ``(N, T)`` 0/1.
        epochs, learning_rate, batch_size, weight_decay, betas: optimiser settings (official defaults).
        seed: initialisation and shuffling seed.

    Returns:
        the trained ``nn.Linear(F, T)`` in eval mode.
    """
    if features.ndim != 2 or labels.ndim != 2 or features.shape[0] != labels.shape[0] or not len(features):
        raise ValueError(
            f"expected (N, F) features and (N, T) labels with N > 0, got {tuple(features.shape)} and "
            f"{tuple(labels.shape)}"
        )
    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's generator
        torch.manual_seed(seed)
        linear = nn.Linear(features.shape[1], labels.shape[1]).to(device)
    data = [{"image": f, "label": y} for f, y in zip(features, labels.float(), strict=True)]
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=epochs,
        train_data_loader=DataLoader(
            data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
        ),
        network=linear,
        optimizer=torch.optim.Adam(linear.parameters(), lr=learning_rate, betas=betas, weight_decay=weight_decay),
        loss_function=nn.BCEWithLogitsLoss(),
    )
    trainer.run()
    return linear.eval()


@torch.no_grad()
def probe_auroc(linear: nn.Module, features: Tensor, labels: Tensor) -> tuple[float, list[float]]:
    """AUROC of a probe per task and their mean (:func:`~monai_xattn.metrics.classification.macro_auroc`: a task
    without both classes in the test labels is NaN and left out of the mean)."""
    device = next(linear.parameters()).device
    return macro_auroc(torch.sigmoid(linear(features.to(device))).cpu(), labels)


def run_linear_probe(
    trunks: Mapping[str, nn.Module],
    train_batches: Iterable[Mapping[str, Any]],
    test_batches: Iterable[Mapping[str, Any]],
    fractions: Sequence[float] = LINEAR_PROBE_FRACTIONS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    image_key: str = "image",
    label_key: str = "label",
    **train_kwargs: Any,
) -> dict[str, Any]:
    """Table 2 for several encoders in one run: the same subsets, the same seed, the same test set.

    Args:
        trunks: ``{name: frozen trunk}`` (e.g. ``{"GLoRIA": gloria_trunk(...), "Random": build_trunk()}``).
        train_batches, test_batches: re-iterable loaders (a ``DataLoader``) of dicts with images and label vectors
            (see :func:`label_entries`); the training loader must not shuffle.
        fractions: training fractions.
        seed: seed of the subsets and of the classifiers.
        train_kwargs: forwarded to :func:`train_linear_probe`.

    Returns:
        ``{"auroc": {name: {fraction: mean AUROC}}, "per_task": {name: {fraction: [AUROC per task]}},
        "train_sizes": {fraction: n}}``.
    """
    out: dict[str, Any] = {"auroc": {}, "per_task": {}, "train_sizes": {}}
    for name, trunk in trunks.items():
        train_x, train_y = extract_features(trunk, train_batches, image_key, label_key, device)
        test_x, test_y = extract_features(trunk, test_batches, image_key, label_key, device)
        strata = [tuple(row) for row in train_y.int().tolist()]
        out["auroc"][name], out["per_task"][name] = {}, {}
        for fraction in fractions:
            idx = torch.as_tensor(stratified_subset(strata, fraction, seed))
            out["train_sizes"][fraction] = len(idx)
            linear = train_linear_probe(train_x[idx], train_y[idx], seed=seed, device=device, **train_kwargs)
            out["auroc"][name][fraction], out["per_task"][name][fraction] = probe_auroc(linear, test_x, test_y)
    return out
