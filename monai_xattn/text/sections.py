"""Radiology report sections, sentences and GLoRIA's sentence cleaning.

Section extraction follows the rules of the official MIMIC-CXR sectioner (MIT-LCP/mimic-cxr
``txt/section_parser.py``), re-implemented here: a section header is an upper-case run of letters, spaces
and ``()/,-`` that starts a line (after optional spaces) and ends with a colon; header names are normalised
(``CONCLUSION`` -> ``impression``); when a report has neither FINDINGS nor IMPRESSION the last paragraph
stands in for them. On top of those rules this module also handles what real MIMIC files contain: the
centred ``FINAL REPORT`` / ``FINAL ADDENDUM`` banners, addenda written above the report, PHI placeholders
``___`` and irregular whitespace.
"""

from __future__ import annotations

import re

__all__ = [
    "SECTION_ALIASES",
    "extract_sections",
    "select_sections",
    "split_sentences",
    "gloria_clean_sentences",
]

# Normalised header name -> canonical section. Names not listed keep their normalised form
# (lower case, single spaces), so unusual sections stay reachable instead of being dropped.
SECTION_ALIASES: dict[str, str] = {
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "finding": "findings",
    "findings and impression": "impression",
    "impression and findings": "impression",
    "findings/impression": "impression",
    "impression/findings": "impression",
    "comparisons": "comparison",
    "clinical history": "history",
    "clinical information": "history",
    "history of present illness": "history",
    "indications": "indication",
    "clinical indication": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "exam": "examination",
    "type of examination": "examination",
    "procedure": "examination",
    "techniques": "technique",
    "addenda": "addendum",
    "wet read": "wet read",
}

# A header: line start, optional spaces, an upper-case name of letters/spaces/()/,- (at least two letters so
# "A:" labels in lists do not count), a colon. Matches the official sectioner's character class.
_HEADER = re.compile(r"^[ \t]*(?P<name>[A-Z][A-Z ()/,\-]*[A-Z)])[ \t]*:", re.MULTILINE)
# Centred banners without a colon that MIMIC puts above the report and above each addendum.
_BANNER = re.compile(r"^[ \t]*FINAL (?P<kind>REPORT|ADDENDUM)[ \t]*$", re.MULTILINE)
_PHI = re.compile(r"_{2,}")
_WS = re.compile(r"\s+")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


def _normalise_name(name: str) -> str:
    name = _WS.sub(" ", name.strip().lower())
    return SECTION_ALIASES.get(name, name)


def _tidy(text: str, keep_phi: bool) -> str:
    if not keep_phi:
        text = _PHI.sub(" ", text)
    return _WS.sub(" ", text).strip()


def extract_sections(text: str, keep_phi: bool = False) -> dict[str, str]:
    """Split a radiology report into named sections.

    Args:
        text: the report as stored (MIMIC-CXR ``s<study>.txt`` or any report with ``HEADER:`` lines).
        keep_phi: keep MIMIC's ``___`` de-identification placeholders; by default they become spaces so no
            downstream tokenizer sees them as words.

    Returns:
        ordered ``{section: text}`` with whitespace collapsed to single spaces. Keys are lower-case
        canonical names (``findings``, ``impression``, ``comparison``, ``indication``, ``history``,
        ``technique``, ``examination``, ``addendum``, ...). Text before the first header is ``preamble``.
        A section that occurs twice is joined with a space. When neither ``findings`` nor ``impression`` is
        present, ``last_paragraph`` holds the report's last non-empty paragraph (the official fallback).
        Empty sections are omitted.

    Example:
        >>> extract_sections("FINDINGS: Right lower lobe opacity.\\nCONCLUSION: Pneumonia.")
        {'findings': 'Right lower lobe opacity.', 'impression': 'Pneumonia.'}
    """
    if not isinstance(text, str):
        raise TypeError(f"report text must be str, got {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    # Banners start a new block: the addendum banner opens an addendum section, the report banner ends it.
    marks = [(m.start(), m.end(), "addendum" if m["kind"] == "ADDENDUM" else None) for m in _BANNER.finditer(text)]
    marks += [(m.start(), m.end(), _normalise_name(m["name"])) for m in _HEADER.finditer(text)]
    marks.sort()

    sections: dict[str, str] = {}

    def add(name: str, body: str) -> None:
        body = _tidy(body, keep_phi)
        if body:
            sections[name] = f"{sections[name]} {body}" if name in sections else body

    # the text before the first header or banner
    add("preamble", text[: marks[0][0]] if marks else text)
    current, last_end = None, None
    for start, end, name in marks:
        if last_end is not None:
            add(current or "preamble", text[last_end:start])
        # a FINAL REPORT banner (name None) sends what follows it, up to the first header, to the preamble;
        # an "ADDENDUM:" header under a FINAL ADDENDUM banner continues the same "addendum" section
        current, last_end = name, end
    if last_end is not None:
        add(current or "preamble", text[last_end:])

    if "findings" not in sections and "impression" not in sections:
        paragraphs = [p for p in (_tidy(p, keep_phi) for p in _PARAGRAPH.split(text)) if p]
        if paragraphs:
            last = _BANNER.sub("", paragraphs[-1]).strip()
            if last:
                sections["last_paragraph"] = last
    return sections


def select_sections(
    text: str, sections: tuple[str, ...] | list[str] | None = ("findings", "impression"), fallback: bool = True
) -> str:
    """Join the named sections of ``text`` (in the given order) into one string.

    Args:
        text: a whole report.
        sections: canonical section names; ``None`` returns the whole report, whitespace-tidied.
        fallback: when none of ``sections`` exists, use ``last_paragraph`` (see :func:`extract_sections`).

    Returns:
        the joined sections, ``""`` when none exists and ``fallback`` is off or finds nothing.
    """
    if not isinstance(text, str):
        raise TypeError(f"report text must be str, got {type(text).__name__}")
    if sections is None:
        return _tidy(text, keep_phi=False)
    found = extract_sections(text)
    parts = [found[name] for name in sections if name in found]
    if not parts and fallback:
        parts = [found.get("last_paragraph", "")]
    return " ".join(p for p in parts if p)


# Sentence ends: . ! ? followed by whitespace or end of text, but not a decimal point ("1.5 cm") and not the
# marker of a numbered list ("1. "), which is split off separately. Blank lines also end a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n[ \t]*\n")
_LIST_MARKER = re.compile(r"(?:^|(?<=\s))\d{1,2}[.)]\s+(?=\S)")


def split_sentences(text: str) -> list[str]:
    """Split report text into sentences.

    Boundaries are ``.``/``!``/``?`` followed by whitespace, blank lines and numbered-list markers
    (``"1. ... 2. ..."``, removed). Decimal numbers such as ``1.5 cm`` are not split. Whitespace inside a
    sentence is collapsed; empty pieces are dropped.

    Example:
        >>> split_sentences("1. Right lower lobe opacity, 1.5 cm. 2. No effusion.")
        ['Right lower lobe opacity, 1.5 cm.', 'No effusion.']
    """
    pieces = _SENTENCE_END.split(_LIST_MARKER.sub("\n\n", text))
    return [s for s in (_WS.sub(" ", p).strip() for p in pieces) if s]


_GLORIA_SPLIT = re.compile(r"[0-9]+\.")
_WORD = re.compile(r"\w+")


def gloria_clean_sentences(text: str, drop_phi: bool = True) -> list[str]:
    """GLoRIA's report cleaning (marshuang80/gloria ``datasets/pretraining_dataset.py``), re-implemented.

    Steps, in GLoRIA's order: newlines -> spaces; split on numbered-list markers (regex ``[0-9]+\\.``, which
    also splits decimals such as ``1.5`` exactly as GLoRIA does); split each piece on ``.``; drop the
    ``U+FFFD U+FFFD`` pairs; lower-case; keep ``\\w+`` tokens; drop sentences with at most one token; strip
    non-ASCII characters from the tokens; join with single spaces.

    Args:
        text: the report text (GLoRIA used the impression only).
        drop_phi: remove MIMIC's ``___`` placeholders first (``\\w`` matches ``_``, so GLoRIA's rule would keep
            them as words). GLoRIA's CheXpert reports contain none, so this does not change its output there.

    Returns:
        the cleaned sentences, possibly empty (GLoRIA drops studies with none).
    """
    text = text.replace("\n", " ")
    if drop_phi:
        text = _PHI.sub(" ", text)
    sentences = []
    for piece in _GLORIA_SPLIT.split(text):
        for sentence in piece.split("."):
            tokens = _WORD.findall(sentence.replace("\ufffd\ufffd", " ").lower())
            if len(tokens) <= 1:
                continue
            tokens = [t for t in (t.encode("ascii", "ignore").decode("ascii") for t in tokens) if t]
            if tokens:
                sentences.append(" ".join(tokens))
    return sentences
