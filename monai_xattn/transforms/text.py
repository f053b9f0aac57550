"""Report transforms: load, select sections/sentences, extract attributes, tokenize, attribute word vectors.

Each comes as an array ``Transform`` and a dictionary ``MapTransform`` (trailing ``d``). Typical chains::

    # cross-attention: report -> attribute multi-hot + Word2Vec vectors m_j
    LoadReportd("report", base_dir=root) -> ExtractAttributesd("report_text") -> Word2Vecd("attributes", kv)
    # GLoRIA: report -> impression sentences -> one random sentence -> BERT tokens with word ids
    LoadReportd("report", base_dir=root) -> ReportSentencesd("report_text", ("impression",))
        -> RandSentenced("report_text") -> Tokenized("report_text", tokenizer)

Batching: ``attribute_names`` (a list of variable length) does not collate with PyTorch's default collate;
drop it (``names_key=None``) in batched pipelines; the tensors (multi-hot, vectors, mask) collate.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Randomizable, Transform
from monai.utils import ensure_tuple_rep

from monai_xattn.text.attributes import (
    AttributeMatcher,
    AttributeVocabulary,
    NegExRules,
    load_vocabulary,
    reads_whole_text,
)
from monai_xattn.text.reports import read_report
from monai_xattn.text.scope import ScopeRules
from monai_xattn.text.sections import gloria_clean_sentences, select_sections, split_sentences

__all__ = [
    "LoadReport",
    "LoadReportd",
    "ReportSentences",
    "ReportSentencesd",
    "RandSentence",
    "RandSentenced",
    "ExtractAttributes",
    "ExtractAttributesd",
    "Tokenize",
    "Tokenized",
    "Word2Vec",
    "Word2Vecd",
]


def _vocabulary(vocabulary: AttributeVocabulary | str | Path | None) -> AttributeVocabulary:
    return vocabulary if isinstance(vocabulary, AttributeVocabulary) else load_vocabulary(vocabulary)


class LoadReport(Transform):
    """Read a report file as UTF-8 text.

    Args:
        base_dir: folder that relative paths are joined to (datalists hold paths relative to the dataset root).
        errors: ``"strict"`` raises a ``ValueError`` naming the file on non-UTF-8 bytes; ``"replace"`` decodes
            them as U+FFFD.
        empty: ``"error"`` raises a ``ValueError`` naming the file for an empty report; ``"allow"`` returns ``""``.
    """

    def __init__(
        self,
        base_dir: str | Path | None = None,
        errors: Literal["strict", "replace"] = "strict",
        empty: Literal["error", "allow"] = "error",
    ) -> None:
        self.base_dir = None if base_dir is None else Path(base_dir)
        self.errors, self.empty = errors, empty

    def __call__(self, path: str | Path) -> str:
        path = Path(path)
        if self.base_dir is not None and not path.is_absolute():
            path = self.base_dir / path
        return read_report(path, errors=self.errors, empty=self.empty)


class LoadReportd(MapTransform):
    """Dictionary version of :class:`LoadReport`.

    Args:
        keys: keys holding report paths (datalist key ``report``).
        output_keys: where the text goes, one per key (default ``report_text``, the datalist key for report text);
            ``None`` replaces the path in place.
        base_dir, errors, empty: see :class:`LoadReport`.
        allow_missing_keys: skip entries without ``keys`` (e.g. CheXpert entries that already hold ``report_text``).
    """

    def __init__(
        self,
        keys: KeysCollection = "report",
        output_keys: KeysCollection | None = "report_text",
        base_dir: str | Path | None = None,
        errors: Literal["strict", "replace"] = "strict",
        empty: Literal["error", "allow"] = "error",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_keys = self.keys if output_keys is None else ensure_tuple_rep(output_keys, len(self.keys))
        self.loader = LoadReport(base_dir, errors, empty)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, out in self.key_iterator(d, self.output_keys):
            d[out] = self.loader(d[key])
        return d


class ReportSentences(Transform):
    """Report text -> the sentences of chosen sections.

    Args:
        sections: section names (see :func:`~monai_xattn.text.sections.extract_sections`); ``None`` = whole text.
            When none exists the last paragraph is used.
        clean: ``"gloria"`` applies GLoRIA's cleaning (lower case, ``\\w+`` tokens, one-token sentences dropped);
            ``"none"`` returns the sentences as written.
    """

    def __init__(
        self, sections: Sequence[str] | None = ("impression",), clean: Literal["gloria", "none"] = "gloria"
    ) -> None:
        if clean not in ("gloria", "none"):
            raise ValueError(f"clean must be 'gloria' or 'none', got {clean!r}")
        self.sections = None if sections is None else tuple(sections)
        self.clean = clean

    def __call__(self, text: str) -> list[str]:
        text = select_sections(text, self.sections)
        return gloria_clean_sentences(text) if self.clean == "gloria" else split_sentences(text)


class ReportSentencesd(MapTransform):
    """Dictionary version of :class:`ReportSentences`; writes ``output_keys`` (default: in place)."""

    def __init__(
        self,
        keys: KeysCollection = "report_text",
        sections: Sequence[str] | None = ("impression",),
        clean: Literal["gloria", "none"] = "gloria",
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_keys = self.keys if output_keys is None else ensure_tuple_rep(output_keys, len(self.keys))
        self.splitter = ReportSentences(sections, clean)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, out in self.key_iterator(d, self.output_keys):
            d[out] = self.splitter(d[key])
        return d


class RandSentence(Randomizable, Transform):
    """Sentences -> one of them at random (GLoRIA trains on one random report sentence per image per step).

    Args:
        full_report: return all sentences joined by spaces instead (GLoRIA's ``full_report: true``).

    Raises:
        ValueError: for an empty sentence list (GLoRIA drops such studies: filter them when building the list).
    """

    def __init__(self, full_report: bool = False) -> None:
        self.full_report = full_report
        self._index = 0

    def randomize(self, data: Sequence[str]) -> None:
        self._index = int(self.R.randint(len(data)))

    def __call__(self, sentences: Sequence[str], randomize: bool = True) -> str:
        if isinstance(sentences, str):
            raise TypeError("RandSentence takes a list of sentences (see ReportSentences), not a string")
        if not sentences:
            raise ValueError("RandSentence got no sentence")
        if self.full_report:
            return " ".join(sentences)
        if randomize:
            self.randomize(sentences)
        return sentences[self._index]


class RandSentenced(Randomizable, MapTransform):
    """Dictionary version of :class:`RandSentence`; writes ``output_keys`` (default: in place)."""

    def __init__(
        self,
        keys: KeysCollection = "report_text",
        full_report: bool = False,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.output_keys = self.keys if output_keys is None else ensure_tuple_rep(output_keys, len(self.keys))
        self.picker = RandSentence(full_report)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> RandSentenced:
        super().set_random_state(seed, state)
        self.picker.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        pass  # each key draws its own sentence in the array transform

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, out in self.key_iterator(d, self.output_keys):
            d[out] = self.picker(d[key])
        return d


class ExtractAttributes(Transform):
    """Report text -> attribute multi-hot ``(A,)`` float32 tensor and the names it marks.

    Negation and uncertainty are handled NegEx-style (:class:`~monai_xattn.text.attributes.AttributeMatcher`).

    Args:
        vocabulary: an :class:`AttributeVocabulary`, a YAML file, or ``None`` for the shipped 22 attributes.
        sections: sections read (default FINDINGS + IMPRESSION, else the last paragraph); ``None`` = whole text.
        uncertain: uncertain attributes become 1 (``"positive"``), 0 (``"negative"``) or -1 (``"ignore"``).
        rules: trigger phrases and scope window.
        scope: ``None`` (or ``"report"``) reads every sentence of the sections; ``"pneumonia"`` only the clauses about
            pneumonia-indicative findings (:mod:`monai_xattn.text.scope`; a ``ScopeRules`` for other cues).

    Returns:
        ``(multi_hot, names)``: names are those with value 1, in vocabulary order.
    """

    def __init__(
        self,
        vocabulary: AttributeVocabulary | str | Path | None = None,
        sections: Sequence[str] | None = ("findings", "impression"),
        uncertain: Literal["positive", "negative", "ignore"] = "positive",
        rules: NegExRules | None = None,
        scope: str | ScopeRules | None = None,
    ) -> None:
        if uncertain not in ("positive", "negative", "ignore"):
            raise ValueError(f"uncertain must be 'positive', 'negative' or 'ignore', got {uncertain!r}")
        self.matcher = AttributeMatcher(_vocabulary(vocabulary), rules)
        if not reads_whole_text(scope):
            self.matcher.clause_scope(scope)  # compiles it now and rejects an unknown scope at construction
        self.sections = None if sections is None else tuple(sections)
        self.uncertain = uncertain
        self.scope = scope

    def __call__(self, text: str) -> tuple[torch.Tensor, list[str]]:
        result = self.matcher(select_sections(text, self.sections), uncertain=self.uncertain, scope=self.scope)
        names = self.matcher.vocabulary.names
        return torch.from_numpy(result.multi_hot), [names[i] for i in np.flatnonzero(result.multi_hot == 1)]


class ExtractAttributesd(MapTransform):
    """Dictionary version of :class:`ExtractAttributes`.

    Args:
        keys: keys holding report text (datalist key ``report_text``).
        multi_hot_keys: output key(s) of the ``(A,)`` multi-hot (default ``attributes``).
        names_keys: output key(s) of the name lists (default ``attribute_names``; ``None`` to skip, e.g. when
            batching with the default collate).
        vocabulary, sections, uncertain, rules, scope: see :class:`ExtractAttributes`.
    """

    def __init__(
        self,
        keys: KeysCollection = "report_text",
        multi_hot_keys: KeysCollection = "attributes",
        names_keys: KeysCollection | None = "attribute_names",
        vocabulary: AttributeVocabulary | str | Path | None = None,
        sections: Sequence[str] | None = ("findings", "impression"),
        uncertain: Literal["positive", "negative", "ignore"] = "positive",
        rules: NegExRules | None = None,
        allow_missing_keys: bool = False,
        scope: str | ScopeRules | None = None,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.multi_hot_keys = ensure_tuple_rep(multi_hot_keys, len(self.keys))
        self.names_keys = ensure_tuple_rep(names_keys, len(self.keys))
        self.extractor = ExtractAttributes(vocabulary, sections, uncertain, rules, scope)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, hot_key, names_key in self.key_iterator(d, self.multi_hot_keys, self.names_keys):
            d[hot_key], names = self.extractor(d[key])
            if names_key is not None:
                d[names_key] = names
        return d


def _check_encodable(text: Any, index: int) -> None:
    """Raise naming the text and the character when ``text`` cannot reach a Rust tokenizer.

    Hugging Face fast tokenizers take UTF-8; a lone surrogate (left by ``errors="surrogateescape"`` decoding or by
    a broken UTF-16 source) makes them raise a bare ``TypeError`` about ``TextEncodeInput`` that names neither.
    """
    if not isinstance(text, str):
        raise TypeError(f"Tokenize: text {index} is a {type(text).__name__}, not a str")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        snippet = text[max(0, e.start - 20) : e.start + 20]
        raise ValueError(
            f"Tokenize: text {index} holds a lone surrogate U+{ord(text[e.start]):04X} at character {e.start} "
            f"(near {snippet!r}), which has no UTF-8 form; read reports with errors='replace' (LoadReport's "
            "option), not 'surrogateescape'"
        ) from None


class Tokenize(Transform):
    """Text -> Hugging Face fast-tokenizer ids, attention mask and word ids.

    Word ids map each token to the index of the word it belongs to (-1 for special and padding tokens), for
    merging sub-word pieces into words (GLoRIA sums the pieces of a word: ``index_add_`` over ``word_ids``).

    Args:
        tokenizer: a fast tokenizer, or a local directory loaded with ``AutoTokenizer.from_pretrained`` without
            network access.
        max_length: sequence length L (GLoRIA: 97).
        padding: ``"max_length"`` pads every text to L (stackable); ``"longest"`` pads a list to its longest.
        truncation: cut texts longer than L.

    Returns:
        ``{"input_ids", "attention_mask", "word_ids"}`` LongTensors of shape ``(L,)`` for one text or ``(N, L)``
        for a list of N texts.

    Raises:
        ValueError: naming the text's index and the character, for a text holding a lone surrogate (it has no
            UTF-8 form, so no tokenizer can read it).
    """

    def __init__(
        self,
        tokenizer: Any,
        max_length: int = 97,
        padding: Literal["max_length", "longest"] = "max_length",
        truncation: bool = True,
    ) -> None:
        if isinstance(tokenizer, (str, Path)):
            from transformers import AutoTokenizer  # heavy, and only tokenizers given by name need it

            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer), local_files_only=True, use_fast=True)
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(f"{type(tokenizer).__name__} is not a fast tokenizer: word ids need a fast one")
        self.tokenizer = tokenizer
        self.max_length, self.padding, self.truncation = max_length, padding, truncation

    def __call__(self, text: str | Sequence[str]) -> dict[str, torch.Tensor]:
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        if not texts:
            raise ValueError("Tokenize got an empty list of texts")
        for i, t in enumerate(texts):
            _check_encodable(t, i)
        enc = self.tokenizer(
            texts,
            max_length=self.max_length,
            padding=self.padding,
            truncation=self.truncation,
            return_tensors="pt",
        )
        # word_ids() has None for special/pad tokens; a float array turns those into NaN in one conversion
        word_ids = np.array([enc.word_ids(i) for i in range(len(texts))], dtype=np.float64)
        out = {
            "input_ids": enc["input_ids"].long(),
            "attention_mask": enc["attention_mask"].long(),
            "word_ids": torch.from_numpy(np.nan_to_num(word_ids, nan=-1).astype(np.int64)),
        }
        return {k: v[0] for k, v in out.items()} if single else out


class Tokenized(MapTransform):
    """Dictionary version of :class:`Tokenize`.

    Outputs ``{prefix}input_ids``, ``{prefix}attention_mask`` and ``{prefix}word_ids``; the prefix is ``""``
    for a single key and ``"{key}_"`` for several unless ``output_prefix`` is given.
    """

    def __init__(
        self,
        keys: KeysCollection = "report_text",
        tokenizer: Any = None,
        max_length: int = 97,
        padding: Literal["max_length", "longest"] = "max_length",
        truncation: bool = True,
        output_prefix: str | Sequence[str] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if tokenizer is None:
            raise ValueError("Tokenized needs a tokenizer (object or local directory)")
        if output_prefix is None:
            output_prefix = [""] if len(self.keys) == 1 else [f"{k}_" for k in self.keys]
        self.prefixes = ensure_tuple_rep(output_prefix, len(self.keys))
        if len(set(self.prefixes)) != len(self.prefixes):
            raise ValueError(f"output_prefix must differ per key, got {self.prefixes}")
        self.tokenize = Tokenize(tokenizer, max_length, padding, truncation)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, prefix in self.key_iterator(d, self.prefixes):
            for name, value in self.tokenize(d[key]).items():
                d[f"{prefix}{name}"] = value
        return d


class Word2Vec(Transform):
    """Attributes of a report -> their Word2Vec vectors m_j, packed and padded to the vocabulary size.

    Args:
        word_vectors: gensim ``KeyedVectors``, a file for :func:`~monai_xattn.text.word2vec.load_word2vec`, or
            an ``(A, D)`` array of attribute vectors in vocabulary order.
        vocabulary: the attribute vocabulary the multi-hot/names refer to (default: the shipped one).
        negatives: also return, per present attribute, the vector of the nearest attribute (cosine) that is
            not present in the same report (T_n, the negative words of the triplet loss; the nearest one
            overall if every attribute is present).

    Input: a multi-hot ``(A,)`` (entries equal to 1 are present; 0 and -1 are not) or a list of names.

    Returns:
        ``(vectors, mask)`` or ``(vectors, mask, negative_vectors)``: ``vectors`` ``(A, D)`` float32 whose first
        M rows are the present attributes (vocabulary order) and the rest zeros; ``mask`` ``(A,)`` bool, True
        on the first M rows.
    """

    def __init__(
        self,
        word_vectors: Any,
        vocabulary: AttributeVocabulary | str | Path | None = None,
        negatives: bool = False,
    ) -> None:
        from monai_xattn.text import word2vec as w2v  # gensim is imported only where word vectors are used

        self.vocabulary = _vocabulary(vocabulary)
        if isinstance(word_vectors, (str, Path)):
            word_vectors = w2v.load_word2vec(word_vectors)
        if isinstance(word_vectors, (np.ndarray, torch.Tensor)):
            table = np.asarray(word_vectors, dtype=np.float32)
            if table.ndim != 2 or table.shape[0] != len(self.vocabulary):
                raise ValueError(f"attribute vectors must be (A={len(self.vocabulary)}, D), got {table.shape}")
            if negatives:
                raise ValueError("negatives need KeyedVectors, not a precomputed table")
        else:
            table = w2v.attribute_vectors(word_vectors, self.vocabulary)
        self.table = torch.from_numpy(table)
        # (A, A-1): every other attribute, nearest first
        self.ranking = (
            torch.from_numpy(w2v.nearest_negative_table(word_vectors, self.vocabulary, k=len(self.vocabulary) - 1))
            if negatives
            else None
        )

    def _present(self, attributes: Any) -> torch.Tensor:
        if isinstance(attributes, (np.ndarray, torch.Tensor)):
            hot = torch.as_tensor(attributes)
            if hot.shape != (len(self.vocabulary),):
                raise ValueError(f"multi-hot must have shape ({len(self.vocabulary)},), got {tuple(hot.shape)}")
            return hot == 1
        names = self.vocabulary.names
        unknown = [a for a in attributes if a not in names]
        if unknown:
            raise KeyError(f"attributes {unknown} are not in the vocabulary {names}")
        present = torch.zeros(len(names), dtype=torch.bool)
        present[[names.index(a) for a in attributes]] = True
        return present

    def __call__(self, attributes: Any) -> tuple[torch.Tensor, ...]:
        present = self._present(attributes)
        index = torch.nonzero(present).flatten()  # (M,) in vocabulary order
        mask = torch.zeros(len(self.vocabulary), dtype=torch.bool)
        mask[: len(index)] = True
        vectors = torch.zeros_like(self.table)
        vectors[: len(index)] = self.table[index]
        if self.ranking is None:
            return vectors, mask
        ranking = self.ranking[index]  # (M, A-1)
        # first candidate in each row that the report does not mention; argmax of all-False is 0 = nearest
        first_absent = (~present[ranking]).int().argmax(dim=1)
        negative = torch.zeros_like(self.table)
        negative[: len(index)] = self.table[ranking[torch.arange(len(index)), first_absent]]
        return vectors, mask, negative


class Word2Vecd(MapTransform):
    """Dictionary version of :class:`Word2Vec`.

    Args:
        keys: key(s) holding the multi-hot (``attributes``) or the name list.
        word_vectors, vocabulary: see :class:`Word2Vec`.
        vectors_keys, mask_keys: output keys (default ``attribute_vectors``, ``attribute_mask``).
        negative_keys: output key(s) of the nearest-negative vectors; ``None`` skips them.
    """

    def __init__(
        self,
        keys: KeysCollection = "attributes",
        word_vectors: Any = None,
        vocabulary: AttributeVocabulary | str | Path | None = None,
        vectors_keys: KeysCollection = "attribute_vectors",
        mask_keys: KeysCollection = "attribute_mask",
        negative_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if word_vectors is None:
            raise ValueError("Word2Vecd needs word_vectors (KeyedVectors, a file or an (A, D) array)")
        self.vectors_keys = ensure_tuple_rep(vectors_keys, len(self.keys))
        self.mask_keys = ensure_tuple_rep(mask_keys, len(self.keys))
        self.negative_keys = ensure_tuple_rep(negative_keys, len(self.keys))
        self.embed = Word2Vec(word_vectors, vocabulary, negatives=negative_keys is not None)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key, vec_key, mask_key, neg_key in self.key_iterator(
            d, self.vectors_keys, self.mask_keys, self.negative_keys
        ):
            out = self.embed(d[key])
            d[vec_key], d[mask_key] = out[0], out[1]
            if neg_key is not None:
                d[neg_key] = out[2]
        return d
