"""Content words: the words of a phrase or sentence that can name a finding, as opposed to numbering ("1."),
punctuation and function words ("the", "of"). Grounding maps and attention figures average or draw these only."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["FUNCTION_WORDS", "content_word_indices", "finding_sentences"]

#: English function words that never name a finding; negations are kept out of maps too (they name none)
FUNCTION_WORDS = frozenset(
    "a an the of in on at to and or with without is are was were be been there this that these those its it "
    "as by for from into within than then which who no not".split()
)
_WORD = re.compile(r"[A-Za-z]{2,}")
_NUMBERING = re.compile(r"^\s*(?:\d+|[a-z])[.)]\s+", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def content_word_indices(words: Sequence[str]) -> list[int]:
    """Indices of the words made of letters (two or more) that are not :data:`FUNCTION_WORDS`."""
    return [i for i, w in enumerate(words) if _WORD.fullmatch(w.strip()) and w.strip().lower() not in FUNCTION_WORDS]


def finding_sentences(text: str, min_content_words: int = 2) -> list[str]:
    """The sentences of ``text`` with at least ``min_content_words`` content words, list numbering removed.

    A numbered impression ("1. Right lower lobe pneumonia. 2. ...") splits into its items, without the "1.".
    """
    sentences = []
    for part in _SENTENCE_END.split(text):
        sentence = _NUMBERING.sub("", part).strip()
        if len(content_word_indices(re.findall(r"[A-Za-z]+|\S", sentence))) >= min_content_words:
            sentences.append(sentence)
    return sentences
