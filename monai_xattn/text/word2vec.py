"""Word2Vec attribute vectors (m_j in Bhalodia et al.) with gensim: corpus, training, loading, negatives.

Multiword attributes: before tokenising, every multiword or hyphenated surface form of the vocabulary
("ground glass", "air-space", "both lungs") is joined into one token with underscores (``ground_glass``), so
Word2Vec learns one vector for the phrase. :func:`attribute_vectors` looks an attribute up by its joined
name; an attribute whose name never occurs gets the mean vector of its surface forms that do.

Corpus: :func:`word2vec_corpus` is the one builder of the training sentences, for ``monai-xattn word2vec`` and the
``cxr_xattn`` bundle alike: each report's sentences (:func:`report_to_sentences`), then every vocabulary attribute as
a one-word sentence, so that vectors trained either way hold every attribute the localizer looks up.

Determinism: with ``workers=1`` and a fixed ``seed`` training is repeatable. gensim 4 draws the initial
vectors from ``numpy.random.default_rng(seed)``; its ``hashfxn`` argument (Python's salted ``hash`` by
default, which depends on ``PYTHONHASHSEED``) only feeds ``Word2Vec.seeded_vector``, which training does not
call; runs under different ``PYTHONHASHSEED`` values gave byte-identical vectors (gensim 4.4). Older gensim
(< 4) seeded each word from ``hash(word)``: there set ``PYTHONHASHSEED`` for repeatable runs. With
``workers > 1`` results depend on thread scheduling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from gensim.models import KeyedVectors, Word2Vec

from monai_xattn.text.attributes import AttributeVocabulary, load_vocabulary
from monai_xattn.text.sections import gloria_clean_sentences, select_sections

__all__ = [
    "phrase_token",
    "join_phrases",
    "report_to_sentences",
    "Word2VecCorpus",
    "word2vec_corpus",
    "train_word2vec",
    "save_word2vec",
    "load_word2vec",
    "attribute_vectors",
    "nearest_negatives",
    "nearest_negative_table",
]

_SEPARATORS = re.compile(r"[\s\-]+")


def phrase_token(form: str) -> str:
    """The corpus token of a surface form: lower case, spaces and hyphens joined by ``_``."""
    return _SEPARATORS.sub("_", form.strip().lower())


def _phrase_regex(vocabulary: AttributeVocabulary) -> re.Pattern | None:
    forms = {f for f in vocabulary.surface_forms() if _SEPARATORS.search(f.strip())}
    forms |= {n.lower() for n in vocabulary.names if _SEPARATORS.search(n)}
    if not forms:
        return None
    ordered = sorted(forms, key=lambda f: (-len(f), f))
    alternation = "|".join(r"[\s\-]+".join(re.escape(w) for w in _SEPARATORS.split(f)) for f in ordered)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


_PHRASE_CACHE: dict[int, tuple[AttributeVocabulary, re.Pattern | None]] = {}


def join_phrases(text: str, vocabulary: AttributeVocabulary | None = None) -> str:
    """Replace the vocabulary's multiword/hyphenated surface forms in ``text`` by :func:`phrase_token` s."""
    cached = _PHRASE_CACHE.get(id(vocabulary))
    if cached is None or cached[0] is not vocabulary:
        vocab = load_vocabulary() if vocabulary is None else vocabulary
        cached = _PHRASE_CACHE[id(vocabulary)] = (vocabulary, _phrase_regex(vocab))
    pattern = cached[1]
    return text if pattern is None else pattern.sub(lambda m: phrase_token(m.group()), text)


def report_to_sentences(
    text: str,
    sections: Sequence[str] | None = ("findings", "impression"),
    vocabulary: AttributeVocabulary | None = None,
) -> list[list[str]]:
    """A report as Word2Vec training sentences.

    The chosen sections (:func:`~monai_xattn.text.sections.select_sections`, ``None`` = whole report) get
    their multiword attribute forms joined (:func:`join_phrases`) and are cleaned with GLoRIA's rules
    (:func:`~monai_xattn.text.sections.gloria_clean_sentences`).

    Returns:
        one token list per sentence.
    """
    text = join_phrases(select_sections(text, sections), vocabulary)
    return [s.split() for s in gloria_clean_sentences(text)]


@dataclass(frozen=True)
class Word2VecCorpus:
    """The training sentences of :func:`word2vec_corpus` and what went into them.

    Attributes:
        sentences: token lists: the reports' sentences, then one ``[attribute]`` sentence per attribute.
        n_reports: how many reports were read.
        no_sentence: the sources of the reports that gave no sentence (no chosen section, or only noise).
    """

    sentences: list[list[str]]
    n_reports: int
    no_sentence: list[str] = field(default_factory=list)


def word2vec_corpus(
    reports: Iterable[tuple[str, str]],
    sections: Sequence[str] | None = ("findings", "impression"),
    vocabulary: AttributeVocabulary | None = None,
) -> Word2VecCorpus:
    """The attribute Word2Vec's training sentences from ``(source, text)`` reports.

    Each report becomes :func:`report_to_sentences`; then every vocabulary attribute is added as a one-word
    sentence. An attribute that no report mentions thus still gets a vector (its random initial one): it can serve
    as a negative ``T_n`` and :func:`attribute_vectors` finds it; never occurring as a positive, its vector does not
    matter otherwise.

    Args:
        reports: ``(source, text)`` pairs, one per distinct report, as from
            :func:`~monai_xattn.text.reports.iter_datalist_reports`; ``source`` only names a report in
            :attr:`Word2VecCorpus.no_sentence`.
        sections: the report sections to read (``None``: the whole report).
        vocabulary: the attribute vocabulary (default: the shipped one).
    """
    vocabulary = load_vocabulary() if vocabulary is None else vocabulary
    sentences: list[list[str]] = []
    n_reports, no_sentence = 0, []
    for source, text in reports:
        n_reports += 1
        report_sentences = report_to_sentences(text, sections, vocabulary)
        if not report_sentences:
            no_sentence.append(source)
        sentences += report_sentences
    sentences += [[phrase_token(a.name)] for a in vocabulary.attributes]
    return Word2VecCorpus(sentences, n_reports, no_sentence)


def train_word2vec(
    sentences: Iterable[list[str]],
    vector_size: int = 300,
    window: int = 5,
    min_count: int = 1,
    epochs: int = 10,
    seed: int = 0,
    workers: int = 1,
    **kwargs,
) -> KeyedVectors:
    """Train gensim Word2Vec (CBOW unless ``sg=1`` is passed) and return its word vectors.

    Args:
        sentences: token lists (iterated several times; a generator is materialised first).
        vector_size: dimension D of the vectors (300 as in the paper's Word2Vec).
        window, min_count: gensim's parameters.
        epochs: gensim's training passes; 0 returns the vocabulary's random initial vectors (an ablation: word
            vectors without the corpus's distributional meaning).
        seed: random seed; with ``workers=1`` training is deterministic (see the module docstring).
        workers: training threads; more than one makes the result depend on thread scheduling.
        kwargs: passed to :class:`gensim.models.Word2Vec`.

    Raises:
        ValueError: when the corpus has no tokens.
    """
    sentences = [list(s) for s in sentences]
    if not any(sentences):
        raise ValueError("the Word2Vec corpus is empty: no sentence has a token")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    settings = dict(vector_size=vector_size, window=window, min_count=min_count, seed=seed, workers=workers, **kwargs)
    if epochs == 0:
        # gensim refuses to train for 0 epochs: build the vocabulary (and its seeded random vectors) only
        model = Word2Vec(**settings)
        model.build_vocab(sentences)
        return model.wv
    return Word2Vec(sentences=sentences, epochs=epochs, **settings).wv


def save_word2vec(kv: KeyedVectors, path: str | Path) -> Path:
    """Save word vectors: word2vec binary format for ``.bin``, text for ``.txt``/``.vec``, gensim's own otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".bin", ".txt", ".vec"):
        kv.save_word2vec_format(str(path), binary=path.suffix == ".bin")
    else:
        kv.save(str(path))
    return path


def load_word2vec(path: str | Path) -> KeyedVectors:
    """Load word vectors saved by :func:`save_word2vec` (format chosen by suffix as there).

    gensim's own format is a pickle: load only files you trust; the ``.bin``/``.txt`` word2vec formats are not.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no word vectors there")
    if path.suffix in (".bin", ".txt", ".vec"):
        return KeyedVectors.load_word2vec_format(str(path), binary=path.suffix == ".bin")
    return KeyedVectors.load(str(path))


def _resolve(kv: KeyedVectors, vocabulary: AttributeVocabulary) -> np.ndarray:
    vectors = []
    for attribute in vocabulary.attributes:
        key = phrase_token(attribute.name)
        if key in kv.key_to_index:
            vectors.append(kv[key])
            continue
        found = [phrase_token(f) for f in attribute.synonyms if phrase_token(f) in kv.key_to_index]
        if not found:
            raise KeyError(
                f"attribute {attribute.name!r}: none of its forms {[phrase_token(f) for f in attribute.synonyms]} "
                "is in the Word2Vec vocabulary; train on a corpus that mentions it or lower min_count"
            )
        vectors.append(np.mean([kv[f] for f in found], axis=0))
    return np.stack(vectors).astype(np.float32)


def attribute_vectors(
    kv: KeyedVectors, vocabulary: AttributeVocabulary | None = None, normalize: bool = False
) -> np.ndarray:
    """The vector m_j of each attribute, ``(A, D)`` float32 in vocabulary order.

    An attribute is looked up by its joined name (``ground-glass`` -> ``ground_glass``); if the corpus never
    used the name, the mean of the vectors of its surface forms that it did use stands in.

    Raises:
        KeyError: naming the attribute, when none of its forms is in ``kv``.
    """
    vectors = _resolve(kv, load_vocabulary() if vocabulary is None else vocabulary)
    if normalize:
        vectors /= np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return vectors


def _cosine_to(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    unit = vectors / np.clip(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12, None)
    return unit @ (query / max(float(np.linalg.norm(query)), 1e-12))


def nearest_negatives(
    kv: KeyedVectors,
    word: str,
    k: int = 1,
    vocabulary: AttributeVocabulary | None = None,
    among: Literal["attributes", "corpus"] = "attributes",
) -> list[str]:
    """The ``k`` words nearest to ``word`` (cosine) that are neither ``word`` nor one of its synonyms.

    These serve as negative text for the triplet loss (T_n in Bhalodia et al.).

    Args:
        kv: trained word vectors.
        word: an attribute name or any surface form ("bibasilar" stands for both bilateral and base, so
            neither is returned for it), or with ``among="corpus"`` any corpus word.
        k: how many to return (fewer when fewer candidates exist).
        vocabulary: the attribute vocabulary (default: the shipped one).
        among: ``"attributes"`` ranks attribute names against the vector of the attribute(s) ``word``
            denotes; ``"corpus"`` ranks corpus tokens against ``word``'s own vector (the attribute vector if the
            corpus lacks it), excluding every surface form of the attributes ``word`` denotes.

    Raises:
        KeyError: when ``word`` is neither a vocabulary form nor (for ``"corpus"``) in ``kv``.
    """
    if among not in ("attributes", "corpus"):
        raise ValueError(f"among must be 'attributes' or 'corpus', got {among!r}")
    vocabulary = load_vocabulary() if vocabulary is None else vocabulary
    names = vocabulary.names
    forms = {phrase_token(f): n for f, n in vocabulary.surface_forms().items()} | {phrase_token(n): (n,) for n in names}
    token = phrase_token(word)
    own = set(forms.get(token, ()))
    if among == "corpus" and token in kv.key_to_index:
        query = kv[token]
    elif own:
        subset = AttributeVocabulary(attributes=tuple(a for a in vocabulary.attributes if a.name in own))
        query = attribute_vectors(kv, subset).mean(axis=0)  # a form implying several attributes: their mean
    else:
        where = "the vocabulary's attribute forms" + (" or the corpus" if among == "corpus" else "")
        raise KeyError(f"{word!r} is not among {where}")

    if among == "attributes":
        candidates, sims = names, _cosine_to(attribute_vectors(kv, vocabulary), query)
        excluded = own
    else:
        candidates, sims = kv.index_to_key, _cosine_to(kv.vectors, query)
        excluded = {token} | {f for f, ns in forms.items() if own & set(ns)}
    order = np.argsort(-sims, kind="stable")
    return [candidates[i] for i in order if candidates[i] not in excluded][:k]


def nearest_negative_table(kv: KeyedVectors, vocabulary: AttributeVocabulary | None = None, k: int = 1) -> np.ndarray:
    """For every attribute, the indices of its ``k`` nearest other attributes: ``(A, k)`` int64.

    The batched form of :func:`nearest_negatives` over attribute names (``among="attributes"``).
    """
    vocabulary = load_vocabulary() if vocabulary is None else vocabulary
    if not 1 <= k < len(vocabulary):
        raise ValueError(f"k must be in [1, {len(vocabulary) - 1}], got {k}")
    unit = attribute_vectors(kv, vocabulary, normalize=True)
    sims = unit @ unit.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]
