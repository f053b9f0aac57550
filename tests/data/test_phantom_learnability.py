"""The phantom is learnable, and its difficulty setting is real: a tiny CNN trained for a few seconds tells
pneumonia from normal studies well on 'easy' and clearly worse on 'hard'."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import ROCAUCMetric

from monai_xattn.data.phantom import synthesize_study


def pneumonia_vs_normal(difficulty: str, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(2 * per_class, 1, 64, 64)`` standardised images and 0/1 targets (1 = pneumonia, 0 = no finding)."""
    images, targets, counts, k = [], [], [0, 0], 0
    while min(counts) < per_class:
        study = synthesize_study(np.random.default_rng([seed, k]), 64, difficulty)
        k += 1
        y = 1 if study.has_pneumonia else (0 if study.is_normal else None)
        if y is None or counts[y] >= per_class:
            continue
        counts[y] += 1
        images.append(study.image)
        targets.append(y)
    x = torch.from_numpy(np.stack(images))[:, None]
    # per-image standardisation removes exposure differences: the net has to find the lesion
    x = (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True)
    return x, torch.tensor(targets, dtype=torch.float32)


def train_and_score(difficulty: str) -> float:
    x_train, y_train = pneumonia_vs_normal(difficulty, 200, seed=1)
    x_test, y_test = pneumonia_vs_normal(difficulty, 80, seed=2)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5, stride=2, padding=2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveMaxPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 1),
    )
    opt = torch.optim.Adam(net.parameters(), 5e-3)
    for _ in range(40):
        for batch in torch.randperm(len(y_train)).split(50):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x_train[batch])[:, 0], y_train[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        scores = net(x_test)
    metric = ROCAUCMetric()
    metric(scores, y_test[:, None])
    return float(metric.aggregate())


@pytest.fixture
def one_thread():
    # tiny convolutions run fastest on one thread, and the machine is shared
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_easy_is_learnable_and_hard_is_harder(one_thread):
    easy, hard = train_and_score("easy"), train_and_score("hard")
    assert easy > 0.8, easy
    assert hard < easy - 0.15, (easy, hard)
