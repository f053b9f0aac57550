"""Linear probe pieces: stratified seeded subsets, torchvision weights into the trunk, probe training + AUROC."""

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from monai_xattn.engines.linear_probe import (
    build_trunk,
    extract_features,
    label_entries,
    load_trunk_weights,
    probe_auroc,
    run_linear_probe,
    stratified_subset,
    train_linear_probe,
)


def test_stratified_subset_counts_and_seed():
    strata = ["a"] * 50 + ["b"] * 30 + ["c"] * 2
    idx = stratified_subset(strata, 0.1, seed=0)
    picked = np.asarray(strata)[idx]
    assert (picked == "a").sum() == 5 and (picked == "b").sum() == 3 and (picked == "c").sum() == 1
    assert np.array_equal(idx, stratified_subset(strata, 0.1, seed=0))
    assert not np.array_equal(idx, stratified_subset(strata, 0.1, seed=1))
    assert np.array_equal(stratified_subset(strata, 1.0), np.arange(82))
    with pytest.raises(ValueError, match="fraction"):
        stratified_subset(strata, 0.0)


def test_torchvision_weights_reproduce_torchvision_features():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18()
    tv.fc = nn.Identity()
    tv.eval()
    trunk = build_trunk(18, in_channels=1)
    load_trunk_weights(trunk, {f"model.{k}": v for k, v in tv.state_dict().items()})  # prefix found by itself
    trunk.eval()
    image = torch.rand(2, 1, 48, 40)  # MONAI (B, C, W, H)
    upright = image.transpose(-1, -2).repeat(1, 3, 1, 1)  # what torchvision sees: (B, 3, H, W) grey as RGB
    torch.testing.assert_close(trunk(image), tv(upright), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="trunk weights missing"):
        load_trunk_weights(build_trunk(34), tv.state_dict())


def test_probe_learns_informative_features_and_not_noise():
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(200, 2, generator=g) < 0.5).float()
    informative = torch.cat([y * 2 - 1, torch.randn(200, 6, generator=g)], dim=1) + 0.5 * torch.randn(
        200, 8, generator=g
    )
    noise = torch.randn(200, 8, generator=g)
    train, test = slice(0, 120), slice(120, 200)
    good = train_linear_probe(informative[train], y[train], epochs=30, learning_rate=1e-2, batch_size=32)
    bad = train_linear_probe(noise[train], y[train], epochs=30, learning_rate=1e-2, batch_size=32)
    auc_good, per_task = probe_auroc(good, informative[test], y[test])
    auc_bad, _ = probe_auroc(bad, noise[test], y[test])
    assert len(per_task) == 2 and auc_good > 0.9 and auc_bad < 0.7
    # seeded: the same seed trains the same classifier
    again = train_linear_probe(informative[train], y[train], epochs=30, learning_rate=1e-2, batch_size=32)
    torch.testing.assert_close(again.weight, good.weight)


def test_run_linear_probe_table_and_label_errors():
    entries = [{"image": "a.png", "labels": {"X": 1, "Y": 0}}, {"image": "b.png", "labels": {"X": -1, "Y": 0}}]
    with pytest.raises(ValueError, match=r"#1 \(b.png\).*'X': -1"):
        label_entries(entries, ["X", "Y"])
    assert label_entries(entries[:1], ["X", "Y"])[0]["label"] == [1.0, 0.0]
    g = torch.Generator().manual_seed(1)
    labels = (torch.rand(40, 1, generator=g) < 0.5).float()
    images = torch.rand(40, 1, 32, 32, generator=g) + labels[:, :, None, None]  # brighter = positive
    batches = [{"image": images[i : i + 10], "label": labels[i : i + 10]} for i in range(0, 40, 10)]
    x, y = extract_features(build_trunk(18), batches)
    assert x.shape == (40, 512) and torch.equal(y, labels)
    out = run_linear_probe({"Random": build_trunk(18)}, batches[:2], batches[2:], fractions=(0.1, 1.0), epochs=2)
    n_pos = int(labels[:20].sum())
    expected_small = int(np.ceil(0.1 * n_pos) + np.ceil(0.1 * (20 - n_pos)))  # one stratum per label value
    assert set(out["auroc"]["Random"]) == {0.1, 1.0} and out["train_sizes"] == {0.1: expected_small, 1.0: 20}
    assert all(0.0 <= v <= 1.0 for v in out["auroc"]["Random"].values())
