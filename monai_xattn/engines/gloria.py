"""Pieces that let MONAI's stock ``SupervisedTrainer`` / ``SupervisedEvaluator`` pretrain GLoRIA.

- :class:`GloriaPrepareBatch` turns a collated batch (image + ``Tokenized`` report) into
  ``network(image, input_ids=..., attention_mask=..., word_ids=...)`` calls, trimming the batch's common padding.
- :class:`GloriaTrainingIteration` is the trainer's ``iteration_update``: forward, :class:`GloriaLoss` (a dict of
  terms), backward, gradient-norm clipping (GLoRIA: 0.25, which the stock iteration cannot do between backward and
  step under AMP), optimizer step. The output holds the detached loss terms and the attention maps.
- :class:`GloriaLossMetric` is an Ignite metric for the evaluator: the loss (or one of its terms) averaged over
  the validation batches, as the official validation loss.
- :class:`GloriaRetrievalMetric`: image->text Precision@K over the whole evaluation set (class-level, as the
  paper's 5x200 protocol), from :func:`monai_xattn.networks.gloria_tasks.gloria_similarity`;
  :func:`positive_label_set` gives each study its class (the set of its positive labels).
- :class:`PreciseBatchNorm`: a trainer handler that re-estimates the image encoder's batch-norm statistics at the
  end of each epoch (before validation and checkpointing), see :func:`recompute_batch_norm`.
- :func:`gloria_param_groups`: optimizer parameter groups with a separate learning rate for the image encoder (a
  from-scratch trunk needs a larger one than the paper's 5e-5, which fine-tunes an ImageNet ResNet).

Engines run with ``decollate=False``; log with ``output_transform=monai_xattn.engines.loss_output``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from ignite.metrics import Metric
from ignite.metrics.metric import reinit__is_reduced, sync_all_reduce
from monai.engines.utils import IterationEvents, PrepareBatch
from monai.utils.enums import CommonKeys as Keys

from monai_xattn.losses.gloria import GloriaLoss

__all__ = [
    "GloriaPrepareBatch",
    "GloriaTrainingIteration",
    "GloriaLossMetric",
    "GloriaRetrievalMetric",
    "PreciseBatchNorm",
    "TOKEN_KEYS",
    "recompute_batch_norm",
    "gloria_param_groups",
    "positive_label_set",
]

TOKEN_KEYS = ("input_ids", "attention_mask", "word_ids")


def gloria_param_groups(
    network: torch.nn.Module, learning_rate: float, image_learning_rate: float | None = None
) -> list[dict[str, Any]]:
    """Optimizer parameter groups of a :class:`monai_xattn.networks.GLoRIA`: image encoder, then text encoder.

    The paper trains everything with one learning rate (5e-5) because its image ResNet starts from ImageNet
    weights; a trunk trained from scratch (the CPU phantom runs) needs a larger one for the image encoder while the
    pretrained text model keeps the small one.

    Args:
        network: a ``GLoRIA`` (or a wrapper such as ``DistributedDataParallel`` with it as ``module``).
        learning_rate: learning rate of the text encoder (and of the image encoder when ``image_learning_rate`` is
            None).
        image_learning_rate: learning rate of the image encoder; ``"same"`` (or ``None``) uses ``learning_rate``,
            the paper's single rate. Bundles spell it ``"same"``: MONAI's command-line override parser drops
            ``None`` values, so ``--image_learning_rate None`` would silently keep the config's default.

    Returns:
        two groups ``[{"params", "lr"}, ...]``; frozen parameters (``requires_grad=False``) are left out.
    """
    net = getattr(network, "module", network)
    if isinstance(image_learning_rate, str) and image_learning_rate != "same":
        raise ValueError(f"image_learning_rate must be a number or 'same', got {image_learning_rate!r}")
    image_lr = learning_rate if image_learning_rate in (None, "same") else image_learning_rate
    groups = [
        {"params": [p for p in net.image_encoder.parameters() if p.requires_grad], "lr": float(image_lr)},
        {"params": [p for p in net.text_encoder.parameters() if p.requires_grad], "lr": float(learning_rate)},
    ]
    return [g for g in groups if g["params"]]


def recompute_batch_norm(
    module: torch.nn.Module,
    batches: Iterable[Mapping[str, Any]],
    image_key: str = "image",
    max_batches: int | None = None,
) -> int:
    """Replace the running statistics of ``module``'s batch-norm layers by their average over ``batches``.

    The running averages (momentum 0.1) trail the weights: with a from-scratch trunk and a learning rate of 1e-4 or
    more they describe the network of many steps ago, and in eval mode the image codes of a whole validation set
    then fall onto one direction (mean pairwise cosine 1.000 measured on the phantom) although the same weights
    with batch statistics separate them (0.67). Re-estimating them with the current weights ("precise BN",
    Wu & Johnson 2021) removes that mismatch; the weights are not touched.

    Args:
        module: the network (e.g. the GLoRIA image encoder); called as ``module(images)``.
        batches: collated batches holding ``image_key`` ``(B, C, W, H)``, e.g. the training data loader.
        image_key: key of the images.
        max_batches: stop after this many batches (``None``: all).

    Returns:
        the number of batches used (0 when the module has no batch-norm layer or ``max_batches`` is 0; the
        statistics are then left as they were).
    """
    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or max_batches == 0:
        return 0
    device = next(module.parameters()).device
    training = module.training
    momenta = [m.momentum for m in norms]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    module.train()
    used = 0
    with torch.no_grad():
        for batch in batches:
            if max_batches is not None and used >= max_batches:
                break
            module(torch.as_tensor(batch[image_key]).to(device))
            used += 1
    module.train(training)
    for m, momentum, (mean, var, count) in zip(norms, momenta, saved, strict=True):
        m.momentum = momentum
        if used == 0:  # an empty loader: keep the old statistics rather than the reset ones
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
    return used


class PreciseBatchNorm:
    """Trainer handler: :func:`recompute_batch_norm` at the end of every epoch.

    Attach it before the ``ValidationHandler`` and the checkpoint savers (Ignite runs the handlers of an event in
    the order they were attached), so that validation and the saved encoders use the re-estimated statistics.

    Args:
        module: the module whose statistics are re-estimated (the image encoder; not a DDP wrapper).
        data_loader: batches to estimate them on (the training loader: the training augmentation's statistics).
        max_batches: batches per estimate; ``None``: the whole loader; ``0``: the handler does nothing.
        image_key: key of the images in a batch.
    """

    def __init__(
        self,
        module: torch.nn.Module,
        data_loader: Iterable[Mapping[str, Any]],
        max_batches: int | None = None,
        image_key: str = "image",
    ) -> None:
        self.module, self.data_loader = module, data_loader
        self.max_batches, self.image_key = max_batches, image_key

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        recompute_batch_norm(self.module, self.data_loader, self.image_key, self.max_batches)


def positive_label_set(labels: Mapping[str, Any], positive: Any = 1, none: str = "No Finding") -> str:
    """A study's retrieval class: its positive labels, sorted and joined with ``","``.

    Retrieval by identical report text under-rates an encoder on templated reports (the phantom's): normal studies
    get one of several interchangeable phrasings and most findings a unique one, so no image can tell which text is
    "its" and the top of the achievable Precision@K sits close to chance. The paper scores retrieval by class
    (CheXpert 5x200); this is the multi-label counterpart for a whole datalist.

    Args:
        labels: label name -> value (CheXpert: 1 / 0 / -1 / None).
        positive: the value that counts as positive.
        none: the class of a study with no positive label.

    Returns:
        e.g. ``"Lung Opacity,Pneumonia"``; ``none`` when nothing is positive.
    """
    names = sorted(name for name, value in labels.items() if value is not None and value == positive)
    return ",".join(names) if names else none


class GloriaPrepareBatch(PrepareBatch):
    """Collated GLoRIA batch -> ``(image, None, (), {"input_ids", "attention_mask", "word_ids"})``.

    Token tensors come from :class:`monai_xattn.transforms.Tokenized` padded to ``max_length`` (so they collate);
    columns that are padding in every report of the batch are dropped, so the text encoder runs on the batch's
    longest report rather than on ``max_length`` tokens.

    Args:
        image_key: key of the ``(B, C, W, H)`` images.
        token_prefix: prefix of the token keys (``Tokenized``'s ``output_prefix``).
        label_key: optional key passed on as the engine's label (e.g. a class for retrieval metrics).
    """

    def __init__(self, image_key: str = "image", token_prefix: str = "", label_key: str | None = None) -> None:
        self.image_key = image_key
        self.label_key = label_key
        self.token_keys = {name: f"{token_prefix}{name}" for name in TOKEN_KEYS}

    def __call__(
        self,
        batchdata: Mapping[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, Any, tuple, dict[str, torch.Tensor]]:
        if not isinstance(batchdata, Mapping):
            raise ValueError("GLoRIA batches are collated dicts: use the default collate (not no_collation)")
        wanted = (self.image_key, *self.token_keys.values(), *((self.label_key,) if self.label_key else ()))
        missing = [k for k in wanted if k not in batchdata]
        if missing:
            raise KeyError(
                f"GLoRIA batch lacks {missing} (keys: {sorted(batchdata)}); tokenize the report with "
                "monai_xattn.transforms.Tokenized"
            )
        tokens = {name: torch.as_tensor(batchdata[key]) for name, key in self.token_keys.items()}
        length = int(tokens["attention_mask"].sum(dim=1).max())
        tokens = {name: t[:, :length].to(device=device, non_blocking=non_blocking) for name, t in tokens.items()}
        image = torch.as_tensor(batchdata[self.image_key]).to(device=device, non_blocking=non_blocking, **kwargs)
        label = batchdata[self.label_key] if self.label_key else None
        return image, label, (), tokens


class GloriaTrainingIteration:
    """``iteration_update`` of a ``SupervisedTrainer`` whose ``loss_function`` is a :class:`GloriaLoss`.

    Args:
        clip_grad_norm: maximum gradient norm (official: 0.25); ``None`` or ``0`` disables clipping.

    The engine's output: ``image``, ``label`` (None), ``pred`` (the network's dict, detached), ``loss`` and each
    loss term (detached 0-d tensors), ``attention`` ``(B, T, W', H')`` (detached).
    """

    def __init__(self, clip_grad_norm: float | None = 0.25) -> None:
        self.clip_grad_norm = clip_grad_norm

    def __call__(self, engine: Any, batchdata: Mapping[str, Any]) -> dict[str, Any]:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        image, _, args, kwargs = engine.prepare_batch(
            batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs
        )
        engine.state.output = {Keys.IMAGE: image, Keys.LABEL: None}
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        device_type = torch.device(engine.state.device).type if engine.state.device is not None else "cpu"
        with torch.autocast(device_type, enabled=bool(engine.amp), **(engine.amp_kwargs or {})):
            pred = engine.inferer(image, engine.network, *args, **kwargs)
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_function(**pred)
        loss = terms["loss"]
        engine.state.output[Keys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        scaler = engine.scaler if engine.amp else None
        (scaler.scale(loss) if scaler is not None else loss).backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        if self.clip_grad_norm:
            if scaler is not None:
                scaler.unscale_(engine.optimizer)  # clip the true gradients, not the scaled ones
            params = [p for group in engine.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
        if scaler is not None:
            scaler.step(engine.optimizer)
            scaler.update()
        else:
            engine.optimizer.step()
        engine.state.output.update({k: v.detach() for k, v in terms.items() if k != "attention"})
        engine.state.output["attention"] = terms["attention"].detach()
        engine.state.output[Keys.PRED] = {k: v.detach() for k, v in pred.items()}
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def _pred(output: Mapping[str, Any]) -> Mapping[str, torch.Tensor]:
    return output[Keys.PRED]


_PRED_KEYS = ("image_local", "image_global", "words", "word_mask", "text_global")


class GloriaLossMetric(Metric):
    """Validation GLoRIA loss: one term of :class:`GloriaLoss` averaged over batches (weighted by batch size).

    Args:
        loss_function: the loss (default: ``GloriaLoss()`` with the official settings).
        term: ``"loss"`` (weighted total) or a term name (``"global_i2t"``, ``"local_t2i"``, ...).
        output_transform: engine output -> the network's output dict (default: ``output["pred"]``, for
            ``decollate=False`` evaluators).
    """

    def __init__(
        self,
        loss_function: GloriaLoss | None = None,
        term: str = "loss",
        output_transform: Callable = _pred,
        device: str | torch.device = "cpu",
    ) -> None:
        self.loss_function = GloriaLoss() if loss_function is None else loss_function
        self.term = term
        self.required_output_keys = _PRED_KEYS  # Ignite hands update() these values of the output dict, in order
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._sum = 0.0
        self._count = 0

    @reinit__is_reduced
    def update(self, output: Sequence[torch.Tensor]) -> None:
        output = dict(zip(_PRED_KEYS, output, strict=True))
        with torch.no_grad():
            terms = self.loss_function(**output)
        if self.term not in terms:
            raise KeyError(f"GloriaLossMetric: no loss term {self.term!r}; terms are {sorted(terms)}")
        n = int(output["image_global"].shape[0])
        self._sum += float(terms[self.term]) * n
        self._count += n

    @sync_all_reduce("_sum", "_count")
    def compute(self) -> float:
        if self._count == 0:
            raise RuntimeError("GloriaLossMetric has seen no batch")
        return self._sum / self._count


def _pred_and_label(output: Mapping[str, Any]) -> tuple[Mapping[str, torch.Tensor], Any]:
    return output[Keys.PRED], output[Keys.LABEL]


class GloriaRetrievalMetric(Metric):
    """Image->text Precision@K over an evaluation set: every image against every report of the set.

    The engine's label (``GloriaPrepareBatch(label_key=...)``) is the class that makes a report relevant to an
    image (the paper: the CheXpert 5x200 class; on the phantom, the report text itself).

    Args:
        k: the K of Precision@K (must not exceed the set size).
        mode: ``"global"``, ``"local"`` or ``"both"`` (see ``gloria_similarity``).
        fusion: how ``"both"`` combines them: ``"zscore"`` (default for retrieval) or the official ``"mean"``.
        output_transform: engine output -> ``(pred dict, labels)``.
    """

    def __init__(
        self,
        k: int = 5,
        mode: str = "both",
        fusion: str = "zscore",
        output_transform: Callable = _pred_and_label,
        device: str | torch.device = "cpu",
    ) -> None:
        from monai_xattn.networks.gloria_tasks import FUSIONS, SIMILARITY_MODES

        # checked here, not at the end of the first epoch's validation
        if mode not in SIMILARITY_MODES or fusion not in FUSIONS:
            raise ValueError(
                f"mode must be one of {SIMILARITY_MODES} and fusion one of {FUSIONS}, got {mode!r}, {fusion!r}"
            )
        self.k, self.mode, self.fusion = int(k), mode, fusion
        super().__init__(output_transform=output_transform, device=device)

    @reinit__is_reduced
    def reset(self) -> None:
        self._outputs: list[dict[str, torch.Tensor]] = []
        self._labels: list[Any] = []

    @reinit__is_reduced
    def update(self, output: tuple[Mapping[str, torch.Tensor], Any]) -> None:
        pred, labels = output
        if labels is None:
            raise ValueError("GloriaRetrievalMetric needs labels: set GloriaPrepareBatch(label_key=...)")
        self._outputs.append({k: v.detach().cpu() for k, v in pred.items()})
        self._labels.extend(labels.tolist() if isinstance(labels, torch.Tensor) else list(labels))

    def compute(self) -> float:
        from monai_xattn.metrics.retrieval import precision_at_k
        from monai_xattn.networks.gloria_tasks import gloria_similarity

        if not self._outputs:
            raise RuntimeError("GloriaRetrievalMetric has seen no batch")
        t = max(o["words"].shape[2] for o in self._outputs)
        merged = {
            key: torch.cat([o[key] for o in self._outputs]) for key in ("image_local", "image_global", "text_global")
        }
        # batches are padded to their own longest report: pad words and masks to the set's longest
        merged["words"] = torch.cat([F.pad(o["words"], (0, t - o["words"].shape[2])) for o in self._outputs])
        merged["word_mask"] = torch.cat(
            [F.pad(o["word_mask"], (0, t - o["word_mask"].shape[1])) for o in self._outputs]
        )
        with torch.no_grad():
            similarity = gloria_similarity(**merged, mode=self.mode, fusion=self.fusion)
        return float(precision_at_k(similarity, self._labels, self._labels, self.k)[0])
