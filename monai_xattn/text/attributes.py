"""Attribute vocabulary: the keywords whose Word2Vec vectors stand for a report (m_j in Bhalodia et al.).

The default vocabulary ships as ``attributes.yaml`` beside this module; users pass their own file.
:class:`AttributeMatcher` / :func:`extract_attributes` find the vocabulary's attributes in report text with
NegEx-style negation and uncertainty scopes (Chapman et al., J Biomed Inform 2001); ``scope="pneumonia"`` reads
only the clauses about pneumonia (:mod:`monai_xattn.text.scope`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import yaml

if TYPE_CHECKING:
    from monai_xattn.text.scope import ClauseScope, ScopeRules

#: the ``scope=`` name of no clause scope, the same as ``None``: bundle configs need a spelling for it, since
#: ``monai.bundle``'s command line drops ``None`` overrides
WHOLE_REPORT = "report"


def reads_whole_text(scope: str | ScopeRules | None) -> bool:
    """Whether ``scope`` means every mention of the text (``None`` or :data:`WHOLE_REPORT`)."""
    return scope is None or (isinstance(scope, str) and scope == WHOLE_REPORT)


__all__ = [
    "DEFAULT_VOCABULARY_FILE",
    "WHOLE_REPORT",
    "reads_whole_text",
    "Attribute",
    "AttributeVocabulary",
    "load_vocabulary",
    "NegExRules",
    "DEFAULT_RULES",
    "Mention",
    "AttributeExtraction",
    "AttributeMatcher",
    "extract_attributes",
]

DEFAULT_VOCABULARY_FILE = Path(__file__).with_name("attributes.yaml")


@dataclass(frozen=True)
class Attribute:
    """One attribute: its keyword ``name``, a ``group`` (location/appearance) and its surface forms."""

    name: str
    group: str
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class AttributeVocabulary:
    """An ordered attribute set. The order fixes the index of each attribute in multi-hot vectors.

    Attributes:
        attributes: the attributes, in multi-hot order.
        implies: surface form -> names of every attribute it stands for (``"bibasilar"`` -> bilateral, base).
    """

    attributes: tuple[Attribute, ...]
    implies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    def __len__(self) -> int:
        return len(self.attributes)

    def index(self, name: str) -> int:
        """Position of attribute ``name`` in multi-hot vectors."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"{name!r} is not in the attribute vocabulary {self.names}") from None

    def surface_forms(self) -> dict[str, tuple[str, ...]]:
        """Every lower-case surface form -> the attribute names it denotes (synonyms and ``implies``)."""
        forms: dict[str, tuple[str, ...]] = {}
        for attribute in self.attributes:
            for synonym in attribute.synonyms:
                forms[synonym.lower()] = (attribute.name,)
        for form, names in self.implies.items():
            forms[form.lower()] = tuple(names)
        return forms


def load_vocabulary(path: str | Path | None = None) -> AttributeVocabulary:
    """Load an attribute vocabulary YAML (default: the shipped 22-attribute set).

    Raises:
        ValueError: naming the file, when an entry lacks a name, a name repeats, a surface form is claimed by
            two attributes, or ``implies`` names an unknown attribute.
    """
    path = DEFAULT_VOCABULARY_FILE if path is None else Path(path)
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    entries = raw.get("attributes")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty 'attributes' list")
    attributes, seen_forms = [], {}
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError(f"{path}: attribute #{k} has no 'name'")
        name = str(entry["name"])
        synonyms = tuple(str(s) for s in (entry.get("synonyms") or [name]))
        for form in synonyms:
            if form.lower() in seen_forms:
                raise ValueError(
                    f"{path}: surface form {form!r} belongs to both {seen_forms[form.lower()]!r} and {name!r}"
                )
            seen_forms[form.lower()] = name
        attributes.append(Attribute(name=name, group=str(entry.get("group", "")), synonyms=synonyms))
    names = [a.name for a in attributes]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: attribute names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")
    implies = {}
    for form, targets in (raw.get("implies") or {}).items():
        unknown = [t for t in targets if t not in names]
        if unknown:
            raise ValueError(f"{path}: implies[{form!r}] names unknown attributes {unknown}")
        implies[str(form)] = tuple(targets)
    return AttributeVocabulary(attributes=tuple(attributes), implies=implies)


# ---------------------------------------------------------------------------------------------------------------
# Negation- and uncertainty-aware matching
# ---------------------------------------------------------------------------------------------------------------

UncertainPolicy = Literal["positive", "negative", "ignore"]
_POSITIVE, _UNCERTAIN, _NEGATED = 0, 1, 2


@dataclass(frozen=True)
class NegExRules:
    """Trigger phrases and scope limits of the NegEx-style matcher.

    A *pre* trigger governs the attribute mentions after it, a *post* trigger those before it, within the same
    scope: a scope ends at a sentence end (``. ! ? ; :`` followed by space), a blank line, a ``terminators``
    word ("but", "however", ...) or after ``window`` (pre) / ``post_window`` (post) word tokens between trigger
    and mention; a post trigger's scope also ends at a comma. Post triggers get the shorter reach because
    what precedes "clear" or "has resolved" by more than a few words, or before a comma, is usually another
    statement ("Right lower lobe opacity, the left lung is clear"), while pre triggers govern lists
    ("No effusion, pneumothorax or focal consolidation").
    When several triggers reach a mention the nearest one (in tokens) decides. ``pseudo`` phrases ("no change") are matched
    first and trigger nothing, so the "no" inside them does not negate ("No change in the left basilar
    opacity" states an opacity). Phrases are whole-word, case-insensitive; spaces match any whitespace.

    Attributes:
        negation_pre, negation_post: phrases that negate the mentions after / before them.
        uncertain_pre, uncertain_post: phrases that make the mentions after / before them uncertain.
        pseudo: phrases that contain a trigger but are none.
        terminators: words that close a scope.
        window: maximum number of word tokens between a pre trigger and a mention it governs.
        post_window: the same for post triggers.
    """

    negation_pre: tuple[str, ...] = (
        "no", "not", "without", "free of", "negative for", "no evidence of", "no signs of", "no sign of",
        "no definite", "no convincing", "clear of", "resolved", "resolution of", "interval resolution of",
        "absence of", "absent", "rather than", "ruled out", "no longer", "removal of", "not seen",
        "not identified", "not present", "not visualized", "not demonstrated", "not appreciated", "not evident",
        "not detected", "not visible",
    )  # fmt: skip
    negation_post: tuple[str, ...] = (
        "resolved", "has resolved", "have resolved", "is resolved", "are resolved", "has cleared",
        "have cleared", "cleared", "clear", "is clear", "are clear", "not seen", "not identified",
        "not present", "not visualized", "not demonstrated", "not appreciated", "not evident", "not detected",
        "not visible", "is absent", "are absent", "no longer seen", "no longer visible", "is ruled out",
        "has been ruled out",
    )  # fmt: skip
    uncertain_pre: tuple[str, ...] = (
        "cannot exclude", "can not exclude", "can't exclude", "cannot rule out", "can not rule out",
        "not exclude", "difficult to exclude", "may", "may represent", "might", "could", "could represent",
        "possible", "possibly", "questionable", "question of", "concerning for", "concern for",
        "suspicious for", "suspicion of", "suggestive of", "suggests", "suggesting", "suggest", "worrisome for",
        "likely", "probable", "probably", "versus", "vs", "differential", "rule out", "evaluate for", "eval for",
        "evaluation for", "assess for", "equivocal", "borderline",
    )  # fmt: skip
    uncertain_post: tuple[str, ...] = (
        "cannot be excluded", "can not be excluded", "cannot be ruled out", "can not be ruled out",
        "not excluded", "is not excluded", "not ruled out", "is possible", "are possible", "is questioned",
        "versus", "vs", "is suspected", "are suspected", "is not entirely excluded",
    )  # fmt: skip
    pseudo: tuple[str, ...] = (
        "no change", "no significant change", "no interval change", "no appreciable change",
        "no significant interval change", "not changed", "not significantly changed", "no increase",
        "no decrease", "not only", "without change", "without interval change", "gram negative",
    )  # fmt: skip
    terminators: tuple[str, ...] = (
        "but", "however", "although", "though", "except", "aside from", "apart from", "whereas", "while",
    )  # fmt: skip
    window: int = 15
    post_window: int = 6


DEFAULT_RULES = NegExRules()


@dataclass(frozen=True)
class Mention:
    """One matched surface form: its text, character span, the attributes it denotes and its status."""

    text: str
    start: int
    end: int
    names: tuple[str, ...]
    status: Literal["positive", "uncertain", "negated"]


@dataclass(frozen=True)
class AttributeExtraction:
    """Attributes found in one report.

    An attribute stated positively anywhere counts as ``present`` even if also negated elsewhere; otherwise an
    uncertain mention makes it ``uncertain``; otherwise a negated mention makes it ``negated``. The three lists
    are disjoint and in vocabulary order.

    Attributes:
        present: names of positively stated attributes.
        negated: names only ever negated.
        uncertain: names stated with uncertainty and never positively.
        multi_hot: ``(A,)`` float32 in vocabulary order: 1 for present, 0 for negated/absent; uncertain ones
            follow the policy (1 ``positive``, 0 ``negative``, -1 ``ignore``: mask with ``multi_hot >= 0``).
        mentions: every match, for inspection.
    """

    present: list[str]
    negated: list[str]
    uncertain: list[str]
    multi_hot: np.ndarray
    mentions: list[Mention] = field(default_factory=list)


def _phrase_pattern(phrases) -> str:
    """One regex alternation of ``phrases`` factored as a character trie (spaces match any whitespace).

    Python's ``re`` tries the branches of a flat alternation one by one at every position; sharing prefixes
    ("no", "no change", "no evidence of", ...) makes the pattern several times faster. Optional tails are
    greedy, so the longest phrase that ends on a word boundary wins, as with a longest-first alternation.
    """
    trie: dict = {}
    for phrase in {" ".join(p.lower().split()) for p in phrases}:
        node = trie
        for ch in phrase:
            node = node.setdefault(ch, {})
        node[""] = {}  # end of a phrase

    def build(node: dict) -> str:
        branches = [(r"\s+" if ch == " " else re.escape(ch)) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a phrase may end here: the rest is optional
            body = f"(?:{body})?"
        return body

    return build(trie)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


class AttributeMatcher:
    """Finds a vocabulary's attributes in text, with negation and uncertainty (NegEx-style).

    All surface forms are compiled into one trie-factored regular expression (the longest form ending on a
    word boundary wins, so "air space" beats a shorter overlapping form), all trigger phrases into another;
    scopes are then resolved for all mention/trigger pairs at once with array operations.

    Args:
        vocabulary: the attribute vocabulary (default: the shipped one).
        rules: trigger phrases and scope limits (default :data:`DEFAULT_RULES`).

    Example:
        >>> matcher = AttributeMatcher(load_vocabulary())
        >>> matcher("Right lower lobe opacity. No left effusion.").present
        ['right', 'lower', 'lobe', 'opacity']
    """

    def __init__(self, vocabulary: AttributeVocabulary | None = None, rules: NegExRules | None = None) -> None:
        self.vocabulary = load_vocabulary() if vocabulary is None else vocabulary
        self.rules = DEFAULT_RULES if rules is None else rules
        if min(self.rules.window, self.rules.post_window) < 0:
            raise ValueError(f"NegExRules windows must be >= 0, got {self.rules.window}, {self.rules.post_window}")
        names = self.vocabulary.names
        forms = self.vocabulary.surface_forms()
        self._form_index = {_norm(f): np.array([names.index(n) for n in ns]) for f, ns in forms.items()}
        self._concepts = re.compile(rf"(?<!\w)(?:{_phrase_pattern(self._form_index)})(?!\w)", re.IGNORECASE)
        # trigger phrase -> (is_pre, is_post, status); a phrase listed as both pre and post governs both ways
        r = self.rules
        kinds: dict[str, list] = {}
        for phrases, pre, status in (
            (r.negation_pre, True, _NEGATED),
            (r.negation_post, False, _NEGATED),
            (r.uncertain_pre, True, _UNCERTAIN),
            (r.uncertain_post, False, _UNCERTAIN),
            (r.pseudo, None, _POSITIVE),
        ):
            for phrase in phrases:
                kind = kinds.setdefault(_norm(phrase), [False, False, status])
                if pre is not None and kind[2] != status and (kind[0] or kind[1]):
                    raise ValueError(f"trigger {phrase!r} is listed both as a negation and as an uncertainty")
                if pre is None:
                    kind[:] = [False, False, _POSITIVE]
                else:
                    kind[0 if pre else 1] = True
                    kind[2] = status
        self._trigger_kind = {k: tuple(v) for k, v in kinds.items()}
        self._triggers = re.compile(rf"(?<!\w)(?:{_phrase_pattern(kinds)})(?!\w)", re.IGNORECASE)
        self._boundaries = re.compile(
            rf"[.!?;:](?=\s|$)|\n[ \t]*\n|(?<!\w)(?:{_phrase_pattern(r.terminators)})(?!\w)", re.IGNORECASE
        )
        self._scopes: dict = {}

    def _match(self, text: str) -> tuple[list[re.Match], np.ndarray]:
        """Surface-form matches of ``text`` and their status codes ``(C,)``."""
        concepts = list(self._concepts.finditer(text))
        if not concepts:
            return [], np.zeros(0, dtype=np.int64)
        token_starts = np.array([m.start() for m in re.finditer(r"\w+", text)])
        bounds = np.array([m.start() for m in self._boundaries.finditer(text)], dtype=np.int64)
        # post triggers do not reach back over a comma either: lists follow pre triggers ("no A, B or C"), while
        # a comma before "is clear" / "has resolved" usually closes another statement
        post_bounds = np.union1d(bounds, [m.start() for m in re.finditer(",", text)]).astype(np.int64)

        def token_of(pos):  # index of the word token containing/preceding each character position
            return np.searchsorted(token_starts, pos, side="right") - 1

        c_start = np.array([m.start() for m in concepts])
        c_end = np.array([m.end() for m in concepts])
        c_first, c_last = token_of(c_start), token_of(c_end - 1)
        c_scope = np.searchsorted(bounds, c_start, side="right")
        c_post_scope = np.searchsorted(post_bounds, c_start, side="right")
        status = np.full(len(concepts), _POSITIVE)

        triggers = [(m, self._trigger_kind[_norm(m.group())]) for m in self._triggers.finditer(text)]
        triggers = [(m, k) for m, k in triggers if k[0] or k[1]]  # pseudo-triggers only block
        if triggers:
            t_start = np.array([m.start() for m, _ in triggers])
            t_end = np.array([m.end() for m, _ in triggers])
            t_pre = np.array([k[0] for _, k in triggers])
            t_post = np.array([k[1] for _, k in triggers])
            t_status = np.array([k[2] for _, k in triggers])
            t_first, t_last = token_of(t_start), token_of(t_end - 1)
            t_scope = np.searchsorted(bounds, t_start, side="right")
            t_post_scope = np.searchsorted(post_bounds, t_start, side="right")
            # Only triggers within the token windows can govern a mention. Matches do not overlap, so the trigger
            # arrays are sorted and those candidates are one contiguous run [lo, hi) per mention, at most about
            # window + post_window long; comparing every mention with every trigger instead costs C x T memory
            # (gigabytes for a 1 MB text).
            lo = np.searchsorted(t_last, c_first - self.rules.window - 1, side="left")
            hi = np.searchsorted(t_first, c_last + self.rules.post_window + 1, side="right")
            width = int((hi - lo).max(initial=0))
            # (C, K): candidate trigger k of each mention; columns past hi are masked out
            cand = lo[:, None] + np.arange(max(width, 1))[None, :]
            valid = cand < hi[:, None]
            cand = np.minimum(cand, len(triggers) - 1)
            same = c_scope[:, None] == t_scope[cand]
            same_post = c_post_scope[:, None] == t_post_scope[cand]
            gap_pre = c_first[:, None] - t_last[cand] - 1
            gap_post = t_first[cand] - c_last[:, None] - 1
            pre = valid & same & t_pre[cand] & (t_end[cand] <= c_start[:, None]) & (gap_pre <= self.rules.window)
            post = (
                valid
                & same_post
                & t_post[cand]
                & (t_start[cand] >= c_end[:, None])
                & (gap_post <= self.rules.post_window)
            )
            big = np.iinfo(np.int64).max
            dist = np.minimum(np.where(pre, gap_pre, big), np.where(post, gap_post, big))
            # candidates are in trigger order, so ties go to the earlier trigger, as over all triggers
            nearest = dist.argmin(axis=1)
            governed = dist[np.arange(len(concepts)), nearest] < big
            status = np.where(governed, t_status[cand[np.arange(len(concepts)), nearest]], _POSITIVE)

        return concepts, status

    def mentions(self, text: str) -> list[Mention]:
        """Every surface-form match in ``text`` with its status (positive, uncertain or negated)."""
        return self._mentions(*self._match(text))

    def _mentions(self, concepts: list[re.Match], status: np.ndarray) -> list[Mention]:
        labels = ("positive", "uncertain", "negated")
        names = self.vocabulary.names
        return [
            Mention(
                m.group(), m.start(), m.end(), tuple(names[i] for i in self._form_index[_norm(m.group())]), labels[s]
            )
            for m, s in zip(concepts, status, strict=True)
        ]

    def clause_scope(self, scope: str | ScopeRules) -> ClauseScope:
        """The compiled :class:`~monai_xattn.text.scope.ClauseScope` of ``scope`` (a name or rules), its cues read
        with this matcher's negation rules; compiled once per matcher and scope."""
        from monai_xattn.text.scope import ClauseScope, resolve_scope

        rules = resolve_scope(scope)
        compiled = self._scopes.get(rules)
        if compiled is None:
            compiled = self._scopes[rules] = ClauseScope(rules, self.rules)
        return compiled

    def __call__(
        self, text: str, uncertain: UncertainPolicy = "positive", scope: str | ScopeRules | None = None
    ) -> AttributeExtraction:
        """Extract the attributes of ``text`` (already restricted to the wanted sections).

        Args:
            text: report text.
            uncertain: how uncertain attributes enter ``multi_hot`` (see :func:`extract_attributes`).
            scope: ``None`` (or ``"report"``) reads the whole text; ``"pneumonia"`` (or a
                :class:`~monai_xattn.text.scope.ScopeRules`) only the mentions inside the clauses about that
                finding, each with the status it has in the whole text; ``mentions`` then lists those only.
        """
        if uncertain not in ("positive", "negative", "ignore"):
            raise ValueError(f"uncertain must be 'positive', 'negative' or 'ignore', got {uncertain!r}")
        names = self.vocabulary.names
        concepts, status = self._match(text)
        if not reads_whole_text(scope):
            keep = self.clause_scope(scope).contains(text, [m.start() for m in concepts])
            concepts, status = [m for m, k in zip(concepts, keep, strict=True) if k], status[keep]
        # (A, 3) counts of positive / uncertain / negated mentions per attribute; a form may denote several
        counts = np.zeros((len(names), 3), dtype=np.int64)
        if concepts:
            targets = [self._form_index[_norm(m.group())] for m in concepts]
            np.add.at(counts, (np.concatenate(targets), np.repeat(status, [len(t) for t in targets])), 1)
        present = counts[:, _POSITIVE] > 0
        unsure = ~present & (counts[:, _UNCERTAIN] > 0)
        negated = ~present & ~unsure & (counts[:, _NEGATED] > 0)
        multi_hot = present.astype(np.float32)
        multi_hot[unsure] = {"positive": 1.0, "negative": 0.0, "ignore": -1.0}[uncertain]
        return AttributeExtraction(
            present=[n for n, p in zip(names, present, strict=True) if p],
            negated=[n for n, p in zip(names, negated, strict=True) if p],
            uncertain=[n for n, p in zip(names, unsure, strict=True) if p],
            multi_hot=multi_hot,
            mentions=self._mentions(concepts, status),
        )


_MATCHERS: dict[int, tuple[AttributeVocabulary | None, AttributeMatcher]] = {}


def extract_attributes(
    text: str,
    vocabulary: AttributeVocabulary | None = None,
    sections: tuple[str, ...] | list[str] | None = ("findings", "impression"),
    uncertain: UncertainPolicy = "positive",
    rules: NegExRules | None = None,
    scope: str | ScopeRules | None = None,
) -> AttributeExtraction:
    """Extract the vocabulary's attributes from a radiology report.

    Args:
        text: the whole report.
        vocabulary: attribute vocabulary (default: the shipped 22 attributes).
        sections: sections to read (see :func:`monai_xattn.text.sections.extract_sections`); when the report
            has none of them its last paragraph is read; ``None`` reads the whole text.
        uncertain: how uncertain attributes enter ``multi_hot``: ``"positive"`` (1), ``"negative"`` (0) or
            ``"ignore"`` (-1, to be masked).
        rules: negation/uncertainty triggers and scope (default :data:`DEFAULT_RULES`).
        scope: ``None`` reads every sentence of the sections; ``"pneumonia"`` only the clauses that describe
            pneumonia-indicative findings (pneumonia, consolidation, infiltrate, airspace disease, opacity not
            attributed to another finding), see :mod:`monai_xattn.text.scope`; a
            :class:`~monai_xattn.text.scope.ScopeRules` sets other cues.

    Returns:
        an :class:`AttributeExtraction`.

    Raises:
        ValueError: an unknown ``uncertain`` policy or ``scope``.
    """
    from monai_xattn.text.sections import select_sections

    if rules is not None:
        matcher = AttributeMatcher(vocabulary, rules)
    else:
        # compiling the patterns costs more than matching one report: reuse one matcher per vocabulary object,
        # kept beside it so a recycled id() cannot hand back another vocabulary's matcher
        cached = _MATCHERS.get(id(vocabulary))
        if cached is None or cached[0] is not vocabulary:
            cached = _MATCHERS[id(vocabulary)] = (vocabulary, AttributeMatcher(vocabulary))
        matcher = cached[1]
    return matcher(select_sections(text, sections), uncertain=uncertain, scope=scope)
