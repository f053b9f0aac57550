"""Attribute vocabulary: the keywords whose Word2Vec vectors stand for a report (m_j in Bhalodia et al.).

The default vocabulary ships as ``attributes.yaml`` beside this module; users pass their own file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["DEFAULT_VOCABULARY_FILE", "Attribute", "AttributeVocabulary", "load_vocabulary"]

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
                raise ValueError(f"{path}: surface form {form!r} belongs to both {seen_forms[form.lower()]!r} and {name!r}")
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
