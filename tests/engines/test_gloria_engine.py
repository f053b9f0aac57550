import pytest
import torch
import torch.nn.functional as F
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from torch import nn

from monai_xattn.engines import GloriaLossMetric, GloriaPrepareBatch, GloriaRetrievalMetric, GloriaTrainingIteration
from monai_xattn.losses import GloriaLoss


class TinyGloria(nn.Module):
    """Stands in for GLoRIA: same inputs, same output dict, a few parameters."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.local = nn.Conv2d(1, d, kernel_size=1)
        self.image = nn.Linear(16, d)
        self.text = nn.Embedding(50, d)

    def forward(self, image, input_ids, attention_mask, word_ids):
        local = self.local(F.adaptive_avg_pool2d(image, 2))
        words = self.text(input_ids).transpose(1, 2)  # one "word" per token
        mask = attention_mask.bool() & (word_ids >= 0)
        text = (words * mask[:, None]).sum(-1)
        return {
            "image_local": local,
            "image_global": self.image(F.adaptive_avg_pool2d(image, 4).flatten(1)),
            "words": words,
            "word_mask": mask,
            "text_global": text,
        }


def make_batch(b=4, length=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 7, (b,), generator=g)
    positions = torch.arange(length)[None]
    attention = (positions < lengths[:, None]).long()
    input_ids = torch.randint(1, 50, (b, length), generator=g) * attention
    word_ids = torch.where((positions > 0) & (positions < lengths[:, None] - 1), positions - 1, -1)
    return {
        "image": torch.rand(b, 1, 16, 16, generator=g),
        "input_ids": input_ids,
        "attention_mask": attention,
        "word_ids": word_ids,
        "report_text": [f"class {i % 2}" for i in range(b)],
    }


def test_prepare_batch_trims_shared_padding_and_names_missing_keys():
    batch = make_batch()
    image, label, args, tokens = GloriaPrepareBatch(label_key="report_text")(batch)
    longest = int(batch["attention_mask"].sum(1).max())
    assert image.shape == (4, 1, 16, 16) and label == batch["report_text"] and args == ()
    assert all(t.shape == (4, longest) for t in tokens.values())
    assert torch.equal(tokens["input_ids"], batch["input_ids"][:, :longest])
    with pytest.raises(KeyError, match="word_ids"):
        GloriaPrepareBatch()({k: v for k, v in batch.items() if k != "word_ids"})


@pytest.mark.parametrize("clip", [1e-4, None])
def test_training_iteration_steps_and_clips(clip):
    torch.manual_seed(0)
    net = TinyGloria()
    before = torch.cat([p.detach().flatten().clone() for p in net.parameters()])
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[make_batch(seed=1)],
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=1.0),
        loss_function=GloriaLoss(),
        prepare_batch=GloriaPrepareBatch(),
        iteration_update=GloriaTrainingIteration(clip_grad_norm=clip),
        decollate=False,
    )
    trainer.run()
    out = trainer.state.output
    assert {"loss", "global_i2t", "local_t2i", "attention", "pred"} <= set(out)
    assert torch.isfinite(out["loss"]) and not out["loss"].requires_grad
    step = (torch.cat([p.detach().flatten() for p in net.parameters()]) - before).norm()
    if clip:
        assert 0 < step <= clip * 1.0001  # SGD, lr 1: the step is the clipped gradient
    else:
        assert step > 1e-2


def test_validation_metrics():
    torch.manual_seed(0)
    net = TinyGloria()
    data = [make_batch(seed=s) for s in range(3)]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=data,
        network=net,
        prepare_batch=GloriaPrepareBatch(label_key="report_text"),
        key_val_metric={"val_loss": GloriaLossMetric()},
        additional_metrics={"p2": GloriaRetrievalMetric(k=2, mode="global")},
        decollate=False,
    )
    evaluator.run()
    with torch.no_grad():
        expected = [
            float(
                GloriaLoss()(**net(b["image"], **{k: b[k] for k in ("input_ids", "attention_mask", "word_ids")}))[
                    "loss"
                ]
            )
            for b in data
        ]
    assert evaluator.state.metrics["val_loss"] == pytest.approx(sum(expected) / 3, rel=1e-5)
    assert 0.0 <= evaluator.state.metrics["p2"] <= 1.0


def test_retrieval_metric_counts_same_class_reports():
    labels = ["a", "b", "a", "b", "c", "c"]
    codes = F.one_hot(torch.tensor([0, 1, 0, 1, 2, 2]), 4).float()
    pred = {
        "image_local": torch.rand(6, 4, 2, 2),
        "image_global": codes,
        "words": torch.rand(6, 4, 3),
        "word_mask": torch.ones(6, 3, dtype=torch.bool),
        "text_global": codes,
    }
    metric = GloriaRetrievalMetric(k=2, mode="global")
    metric.reset()
    metric.update(({k: v[:3] for k, v in pred.items()}, labels[:3]))
    metric.update(({k: v[3:] for k, v in pred.items()}, labels[3:]))
    assert metric.compute() == pytest.approx(1.0)
    metric.reset()
    metric.update(({**pred, "text_global": codes.roll(1, 0)}, labels))
    assert metric.compute() < 1.0
    with pytest.raises(ValueError, match="fusion"):
        GloriaRetrievalMetric(fusion="sum")


def test_param_groups_give_the_image_encoder_its_own_learning_rate():
    from monai_xattn.engines.gloria import gloria_param_groups

    class TwoEncoders(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.image_encoder = nn.Linear(3, 2)
            self.text_encoder = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
            self.text_encoder[0].requires_grad_(False)  # frozen layers stay out of the optimizer

    net = TwoEncoders()
    image, text = gloria_param_groups(net, 5e-5, 1e-3)
    assert image["lr"] == 1e-3 and text["lr"] == 5e-5
    assert {id(p) for p in image["params"]} == {id(p) for p in net.image_encoder.parameters()}
    assert {id(p) for p in text["params"]} == {id(p) for p in net.text_encoder[1].parameters()}
    # the paper's single learning rate; a DDP-style wrapper is unwrapped
    wrapper = nn.Module()
    wrapper.module = net
    assert [g["lr"] for g in gloria_param_groups(wrapper, 5e-5)] == [5e-5, 5e-5]
    net.text_encoder.requires_grad_(False)
    assert len(gloria_param_groups(net, 5e-5, 1e-3)) == 1
    torch.optim.Adam(gloria_param_groups(net, 5e-5, 1e-3))


def test_positive_label_set_is_the_class_of_a_study():
    from monai_xattn.engines.gloria import positive_label_set

    assert positive_label_set({"Pneumonia": 1, "Edema": 0, "Atelectasis": -1, "Lung Opacity": 1, "Other": None}) == (
        "Lung Opacity,Pneumonia"
    )
    assert positive_label_set({"No Finding": 1, "Edema": 0}) == "No Finding"
    assert positive_label_set({"Edema": 0, "Cardiomegaly": None}) == "No Finding"
    assert positive_label_set({"Edema": -1, "Cardiomegaly": 1}, positive=-1, none="none") == "Edema"


def test_recompute_batch_norm_replaces_stale_statistics():
    from monai_xattn.engines.gloria import PreciseBatchNorm, recompute_batch_norm

    net = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3), nn.ReLU())
    net.eval()
    batches = [
        {"image": 3.0 + 2.0 * torch.randn(8, 1, 4, 4, generator=torch.Generator().manual_seed(i))} for i in range(4)
    ]
    with torch.no_grad():
        conv = torch.cat([net[0](b["image"]) for b in batches])  # what the BN layer sees
    weight = net[0].weight.detach().clone()
    assert recompute_batch_norm(net, batches) == 4
    bn = net[1]
    # the cumulative average of the per-batch means/variances (all batches equal-sized)
    means = torch.stack([c.mean(dim=(0, 2, 3)) for c in conv.split(8)])
    variances = torch.stack([c.var(dim=(0, 2, 3)) for c in conv.split(8)])  # unbiased, as BN's running_var
    assert torch.allclose(bn.running_mean, means.mean(0), atol=1e-5)
    assert torch.allclose(bn.running_var, variances.mean(0), atol=1e-4)
    assert not net.training and bn.momentum == 0.1 and torch.equal(net[0].weight, weight)  # mode, momentum, weights

    before = bn.running_mean.clone()
    assert recompute_batch_norm(net, batches, max_batches=0) == 0 and torch.equal(bn.running_mean, before)
    assert recompute_batch_norm(net, [], max_batches=None) == 0 and torch.equal(bn.running_mean, before)
    assert recompute_batch_norm(nn.Linear(2, 2), batches) == 0  # nothing to do without batch norm

    bn.reset_running_stats()
    handler = PreciseBatchNorm(net, batches, max_batches=1)
    handler(None)
    assert torch.allclose(bn.running_mean, means[0], atol=1e-5)
