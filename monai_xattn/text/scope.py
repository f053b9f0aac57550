"""Finding scope: the clauses of a report that describe one finding (by default pneumonia).

Bhalodia et al. (MICCAI 2021) build, per report, "a dictionary of text-attributes indicative of pneumonia location
and characteristics". Reading attribute words from the whole report also collects those of other statements:
``left`` from "small left pleural effusion", ``base`` from "left basilar atelectasis", ``right`` from "right IJ
line". :class:`ClauseScope` splits report text into clauses and keeps those about the finding; the attribute
matcher (:class:`~monai_xattn.text.attributes.AttributeMatcher`, ``scope="pneumonia"``) then counts only the
mentions inside them, each with the negation/uncertainty status it has in the whole text.

Clauses. Sentences are those of :func:`~monai_xattn.text.sections.split_sentences`. Within a sentence, strong
splitters (``;`` and contrast words such as "but", "however") start a new *statement*; weak splitters (``,``,
``:`` and conjunctions such as "and", "with") start a new clause of the same statement. Phrases that contain a
conjunction but join nothing ("compatible with", "and/or") do not split.

Decision per clause, from its cues (each cue carries its NegEx status, found with the same rules as the attributes):

1. a non-negated *finding* cue (pneumonia, consolidation, infiltrate, ...): in scope;
2. else a non-negated *other finding* cue (atelectasis, effusion, edema, nodule, devices, ...): out of scope
   ("left basilar opacity likely atelectasis", "opacity compatible with effusion");
3. else any finding or *opacity* cue (opacity, airspace, haziness, ...): in scope, negated ones included, so that
   "no right consolidation" reads ``right`` as negated;
4. else only negated other findings ("no effusion"): out of scope;
5. else (no cue: "in the right upper lobe", "right greater than left") the clause continues its statement: it
   takes the decision of the clause before it, or of the one after it when it leads the statement; a statement
   without any cue is out of scope.

Attribution across clauses: a clause that names no non-negated finding and has an *attribution* phrase followed
by a non-negated other finding ("..., likely atelectasis", "... and vascular congestion compatible with edema")
takes the opacities of the clauses before it in its statement out of scope too, back to the last one that states
a finding.

All cue lists are fields of :class:`ScopeRules`; phrases are whole-word, case-insensitive, spaces match any
whitespace.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from itertools import chain
from typing import Literal

import numpy as np

from monai_xattn.text.attributes import (
    DEFAULT_RULES,
    WHOLE_REPORT,
    Attribute,
    AttributeMatcher,
    AttributeVocabulary,
    NegExRules,
    _norm,
    _phrase_pattern,
)

# the sentence boundaries of split_sentences, used here on the text itself to keep character offsets
from monai_xattn.text.sections import _LIST_MARKER, _SENTENCE_END

__all__ = [
    "ScopeRules",
    "PNEUMONIA_SCOPE",
    "SCOPES",
    "Clause",
    "ClauseScope",
    "resolve_scope",
    "scope_clauses",
]


@dataclass(frozen=True)
class ScopeRules:
    """Cue phrases that decide which clauses describe the finding of interest (default: pneumonia).

    The lists follow the wording of chest X-ray reports (MIMIC-CXR, Fleischner glossary terms), not any one
    generator of synthetic reports. A phrase may appear in one cue list only.

    Attributes:
        findings: the finding itself and words that name it; a clause stating one is in scope.
        opacities: unspecific opacity words; in scope unless the clause, or an attribution after it in the same
            statement, ties them to another finding.
        other_findings: other findings and support devices; their clauses are out.
        attributions: phrases that tie what precedes them to what follows ("likely", "compatible with").
        conjunctions: words that start a new clause of the same statement.
        contrasts: words that start a new statement.
        pseudo_conjunctions: phrases that contain a conjunction but join nothing.
        clause_punctuation: characters that start a new clause when followed by whitespace.
        statement_punctuation: characters that start a new statement when followed by whitespace.
    """

    findings: tuple[str, ...] = (
        "pneumonia", "pneumonias", "pneumonic", "bronchopneumonia", "pna", "consolidation", "consolidations",
        "consolidative", "consolidated", "infiltrate", "infiltrates", "infiltration", "infiltrative", "infection",
        "infections", "infectious", "aspiration",
    )  # fmt: skip
    opacities: tuple[str, ...] = (
        "opacity", "opacities", "opacification", "opacifications", "opacified", "airspace", "air space",
        "air-space", "alveolar", "haziness", "hazy", "density", "densities", "ground-glass", "ground glass",
        "groundglass", "ggo", "ggos",
    )  # fmt: skip
    other_findings: tuple[str, ...] = (
        # atelectasis
        "atelectasis", "atelectases", "atelectatic", "collapse", "collapsed", "volume loss",
        # pleura
        "effusion", "effusions", "pleural fluid", "hydrothorax", "empyema", "pneumothorax", "pneumothoraces",
        "hydropneumothorax", "pleural thickening", "pleural plaque", "pleural plaques", "blunting",
        # edema, heart
        "edema", "congestion", "vascular engorgement", "cephalization", "kerley", "fluid overload",
        "volume overload", "chf", "heart failure", "cardiomegaly", "cardiac enlargement", "enlarged heart",
        "enlarged cardiac silhouette", "enlargement of the cardiac silhouette",
        # masses, chronic disease
        "nodule", "nodules", "nodular", "mass", "masses", "lesion", "lesions", "neoplasm", "tumor",
        "malignancy", "metastasis", "metastases", "metastatic", "granuloma", "granulomas", "granulomatous",
        "calcification", "calcifications", "calcified", "lymphadenopathy", "adenopathy", "scar", "scarring",
        "fibrosis", "fibrotic", "emphysema", "emphysematous", "bulla", "bullae", "bullous", "hyperinflation",
        "hyperinflated", "bronchiectasis", "pneumomediastinum", "pneumoperitoneum", "hernia", "fracture",
        "fractures", "fractured", "osseous", "degenerative", "scoliosis",
        # support devices
        "tube", "tubes", "catheter", "catheters", "line", "lines", "picc", "port", "port-a-cath", "portacath",
        "pacemaker", "pacer", "lead", "leads", "wire", "wires", "electrode", "electrodes", "defibrillator", "icd",
        "aicd", "ett", "ngt", "drain", "drains", "stent", "stents", "clip", "clips", "sternotomy", "valve",
        "prosthesis", "hardware", "cannula", "sheath", "introducer", "ij", "swan-ganz", "swan ganz",
        "balloon pump", "iabp", "lvad",
    )  # fmt: skip
    attributions: tuple[str, ...] = (
        "likely", "most likely", "more likely", "probably", "possibly", "possible", "presumably", "presumed",
        "consistent with",
        "most consistent with", "compatible with", "most compatible with", "in keeping with", "suggestive of",
        "most suggestive of", "suggesting", "concerning for", "suspicious for", "worrisome for", "represent",
        "represents", "representing", "reflect", "reflects", "reflecting", "may be", "could be", "due to",
        "related to", "secondary to", "attributable to", "attributed to", "associated with", "c/w",
        "corresponds to", "corresponding to", "correlates with", "favoring", "favor", "favored",
    )  # fmt: skip
    conjunctions: tuple[str, ...] = (
        "and", "with", "as well as", "along with", "together with", "in addition to", "plus",
    )  # fmt: skip
    contrasts: tuple[str, ...] = (
        "but", "however", "although", "though", "whereas", "while", "except", "aside from", "apart from",
        "otherwise",
    )  # fmt: skip
    pseudo_conjunctions: tuple[str, ...] = ("and/or", "compared with", "in comparison with")
    clause_punctuation: str = ",:"
    statement_punctuation: str = ";"


PNEUMONIA_SCOPE = ScopeRules()
#: scope names accepted by ``scope=`` arguments
SCOPES: dict[str, ScopeRules] = {"pneumonia": PNEUMONIA_SCOPE}

_FINDING, _OPACITY, _OTHER = "finding", "opacity", "other"
_WORD = re.compile(r"\w")
_WEAK, _STRONG, _ATTRIBUTION, _PSEUDO = 0, 1, 2, 3


def resolve_scope(scope: str | ScopeRules) -> ScopeRules:
    """The :class:`ScopeRules` of a scope name of :data:`SCOPES`, or ``scope`` itself.

    Raises:
        ValueError: an unknown name or a value of another type.
    """
    if isinstance(scope, ScopeRules):
        return scope
    if isinstance(scope, str) and scope in SCOPES:
        return SCOPES[scope]
    raise ValueError(f"scope must be None, {WHOLE_REPORT!r}, one of {sorted(SCOPES)} or a ScopeRules, got {scope!r}")


@dataclass(frozen=True)
class Clause:
    """One clause of a report and the scope decision on it.

    Attributes:
        text: the clause as written (splitter words and punctuation excluded).
        start, end: its character span in the text given to :meth:`ClauseScope.clauses`.
        in_scope: whether its attribute mentions are read.
        reason: ``finding``, ``opacity``, ``attributed`` (an opacity tied to another finding), ``other``,
            ``continues`` (no cue: follows its neighbour) or ``none`` (no cue in its whole statement).
    """

    text: str
    start: int
    end: int
    in_scope: bool
    reason: Literal["finding", "opacity", "attributed", "other", "continues", "none"]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    cuts = sorted((m.start(), m.end()) for m in chain(_SENTENCE_END.finditer(text), _LIST_MARKER.finditer(text)))
    spans, pos = [], 0
    for start, end in [*cuts, (len(text), len(text))]:
        if start > pos and _WORD.search(text, pos, start):
            spans.append((pos, start))
        pos = max(pos, end)
    return spans


class ClauseScope:
    """Splits report text into clauses and decides which describe the finding of ``rules`` (see the module doc).

    Args:
        rules: cue phrases (default :data:`PNEUMONIA_SCOPE`).
        negex: negation/uncertainty rules that give each cue its status (default
            :data:`~monai_xattn.text.attributes.DEFAULT_RULES`); pass those of the attribute matcher.

    Raises:
        ValueError: a phrase listed in two cue lists.

    Example:
        >>> [c.text for c in ClauseScope().clauses("Right lower lobe pneumonia; small left effusion.") if c.in_scope]
        ['Right lower lobe pneumonia']
    """

    def __init__(self, rules: ScopeRules | None = None, negex: NegExRules | None = None) -> None:
        self.rules = PNEUMONIA_SCOPE if rules is None else rules
        r = self.rules
        owner: dict[str, str] = {}
        for field_name in ("findings", "opacities", "other_findings", "attributions", "conjunctions", "contrasts"):
            for phrase in getattr(r, field_name):
                if owner.setdefault(_norm(phrase), field_name) != field_name:
                    raise ValueError(f"scope cue {phrase!r} is listed in both {owner[_norm(phrase)]} and {field_name}")
        # cues get their NegEx status from a matcher of their own, so "no consolidation" and "likely atelectasis"
        # are read exactly as the attribute matcher reads attribute words
        cues = AttributeVocabulary(
            attributes=(
                Attribute(_FINDING, "scope", tuple(r.findings)),
                Attribute(_OPACITY, "scope", tuple(r.opacities)),
                Attribute(_OTHER, "scope", tuple(r.other_findings)),
            )
        )
        self._cues = AttributeMatcher(cues, DEFAULT_RULES if negex is None else negex)
        # one trie for all splitting and attribution phrases: the longest phrase at a position wins, so the
        # "with" of "compatible with" or the "and" of "and/or" never splits
        kinds: dict[str, int] = {}
        for phrases, kind in (
            (r.conjunctions, _WEAK),
            (r.contrasts, _STRONG),
            (r.attributions, _ATTRIBUTION),
            (r.pseudo_conjunctions, _PSEUDO),
        ):
            kinds.update((_norm(p), kind) for p in phrases)
        self._phrase_kind = kinds
        punctuation = "".join(re.escape(c) for c in r.clause_punctuation + r.statement_punctuation)
        self._splitters = re.compile(
            rf"(?<!\w)(?:{_phrase_pattern(kinds)})(?!\w)" + (rf"|[{punctuation}](?=\s|$)" if punctuation else ""),
            re.IGNORECASE,
        )

    def _kind(self, match: re.Match) -> int:
        kind = self._phrase_kind.get(_norm(match.group()))
        if kind is None:  # punctuation
            return _STRONG if match.group() in self.rules.statement_punctuation else _WEAK
        return kind

    def clauses(self, text: str) -> list[Clause]:
        """The clauses of ``text`` in order, each with its scope decision."""
        pieces: list[list] = []  # [start, end, statement, attribution positions]
        statement = 0
        splitters = list(self._splitters.finditer(text))
        k = 0
        for s_start, s_end in _sentence_spans(text):
            statement += 1
            pos, attributions = s_start, []
            while k < len(splitters) and splitters[k].start() < s_start:
                k += 1
            while k < len(splitters) and splitters[k].end() <= s_end:
                m, kind = splitters[k], self._kind(splitters[k])
                k += 1
                if kind == _ATTRIBUTION:
                    attributions.append(m.start())
                elif kind in (_WEAK, _STRONG):
                    pieces.append([pos, m.start(), statement, attributions])
                    pos, attributions = m.end(), []
                    statement += kind == _STRONG
            pieces.append([pos, s_end, statement, attributions])
        pieces = [p for p in pieces if _WORD.search(text, p[0], p[1])]  # punctuation alone is no clause
        if not pieces:
            return []

        # per clause: stated finding, stated other finding (positions), any finding / opacity cue, negated other
        starts = np.array([p[0] for p in pieces])
        stated_finding = np.zeros(len(pieces), dtype=bool)
        finding = np.zeros(len(pieces), dtype=bool)
        opacity = np.zeros(len(pieces), dtype=bool)
        negated_other = np.zeros(len(pieces), dtype=bool)
        other_at: list[list[int]] = [[] for _ in pieces]
        mentions = self._cues.mentions(text)
        owners = np.searchsorted(starts, [m.start for m in mentions], side="right") - 1
        for mention, c in zip(mentions, owners.tolist(), strict=True):
            if c < 0 or mention.start >= pieces[c][1]:
                continue  # inside a splitter phrase
            kind, stated = mention.names[0], mention.status != "negated"
            if kind == _OTHER:
                if stated:
                    other_at[c].append(mention.start)
                else:
                    negated_other[c] = True
            elif kind == _FINDING:
                finding[c] = True
                stated_finding[c] |= stated
            else:
                opacity[c] = True

        reasons: list[str | None] = []
        for c in range(len(pieces)):
            if stated_finding[c]:
                reasons.append("finding")
            elif other_at[c]:
                reasons.append("attributed" if finding[c] or opacity[c] else "other")
            elif finding[c]:
                reasons.append("finding")
            elif opacity[c]:
                reasons.append("opacity")
            else:
                reasons.append("other" if negated_other[c] else None)
        # an attribution to another finding ("..., likely atelectasis") reaches back over its statement to the last
        # clause stating the finding: one sweep from the end, attributing while such a clause lies ahead
        attributing, statement = False, None
        for c in range(len(pieces) - 1, -1, -1):
            if pieces[c][2] != statement:
                attributing, statement = False, pieces[c][2]
            if stated_finding[c]:
                attributing = False
            elif pieces[c][3] and other_at[c] and min(pieces[c][3]) < max(other_at[c]):
                attributing = True
            elif attributing and reasons[c] in ("opacity", None):
                reasons[c] = "attributed"
        # clauses without a cue continue their statement: the decision before them, else the first one after
        decided: list[bool | None] = [None if r is None else r in ("finding", "opacity") for r in reasons]
        source: list[int | None] = [None] * len(pieces)
        last: tuple[int, int] | None = None  # (statement, clause) of the last decided clause
        for c, piece in enumerate(pieces):
            if decided[c] is not None:
                last = (piece[2], c)
            elif last is not None and last[0] == piece[2]:
                source[c] = last[1]
        following: tuple[int, int] | None = None
        for c in range(len(pieces) - 1, -1, -1):
            if decided[c] is not None:
                following = (pieces[c][2], c)
            elif source[c] is None and following is not None and following[0] == pieces[c][2]:
                source[c] = following[1]
        clauses = []
        for c, piece in enumerate(pieces):
            in_scope, reason = decided[c], reasons[c]
            if reason is None:
                j = source[c]
                in_scope, reason = (decided[j], "continues") if j is not None else (False, "none")
            start, end = piece[0], piece[1]
            # trim the whitespace the splitters leave, so spans hold the clause's words only
            start += len(text[start:end]) - len(text[start:end].lstrip())
            end -= len(text[start:end]) - len(text[start:end].rstrip())
            clauses.append(Clause(text[start:end], start, end, bool(in_scope), reason))
        return clauses

    def contains(self, text: str, positions) -> np.ndarray:
        """``(P,)`` bool: whether each character position of ``text`` lies in an in-scope clause."""
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size == 0:
            return np.zeros(positions.shape, dtype=bool)
        spans = [(c.start, c.end) for c in self.clauses(text) if c.in_scope]
        if not spans:
            return np.zeros(positions.shape, dtype=bool)
        starts, ends = np.array(spans).T
        k = np.searchsorted(starts, positions, side="right") - 1
        return (k >= 0) & (positions < ends[np.maximum(k, 0)])


@functools.lru_cache(maxsize=16)
def _clause_scope(rules: ScopeRules, negex: NegExRules) -> ClauseScope:
    return ClauseScope(rules, negex)


def scope_clauses(text: str, scope: str | ScopeRules = "pneumonia", negex: NegExRules | None = None) -> list[Clause]:
    """The clauses of ``text`` with their scope decisions (see :class:`ClauseScope`), for inspection.

    Args:
        text: report text, usually already restricted to sections
            (:func:`~monai_xattn.text.sections.select_sections`).
        scope: a name of :data:`SCOPES` or a :class:`ScopeRules`.
        negex: negation/uncertainty rules of the cues (default
            :data:`~monai_xattn.text.attributes.DEFAULT_RULES`).

    Example:
        >>> [(c.text, c.in_scope) for c in scope_clauses("Clear right lung. Left base airspace disease.")]
        [('Clear right lung.', False), ('Left base airspace disease.', True)]
    """
    return _clause_scope(resolve_scope(scope), DEFAULT_RULES if negex is None else negex).clauses(text)
