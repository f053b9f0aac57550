"""Zero-shot class prompts (GLoRIA): phrase slots per class, their Cartesian product, seeded sampling.

Each class of a prompt set lists phrase slots (sub-type, severity, location, ...); its candidate prompts are the
Cartesian product of the slots in the order written, joined by spaces. ``n`` prompts per class are drawn from
the candidates with one ``random.Random(seed)`` per set, class after class in file order; the official code
does the same with Python's global ``random`` seeded 6 at import, so ``seed=6`` on the shipped ``chexpert`` set
draws the official prompts (provided nothing else consumed that global generator first).

The vocabulary ships as ``prompts.yaml`` beside this module (the official CheXpert vocabulary and an RSNA
pneumonia-vs-normal set of ours); pass your own file of the same shape.
"""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

__all__ = [
    "DEFAULT_PROMPTS_FILE",
    "PromptVocabulary",
    "load_prompt_vocabulary",
    "class_prompt_candidates",
    "generate_class_prompts",
]

DEFAULT_PROMPTS_FILE = Path(__file__).with_name("prompts.yaml")
"""The shipped vocabulary: prompt sets ``chexpert`` (official GLoRIA) and ``rsna`` (ours)."""

PromptVocabulary = Mapping[str, Mapping[str, Sequence[str]]]
"""``{class name: {slot name: [phrase, ...]}}``: one prompt set."""


def _check_set(vocabulary: object, source: str) -> dict[str, dict[str, list[str]]]:
    if not isinstance(vocabulary, Mapping) or not vocabulary:
        raise ValueError(
            f"{source}: a prompt set must be a non-empty mapping class -> slots, got {type(vocabulary).__name__}"
        )
    out: dict[str, dict[str, list[str]]] = {}
    for name, slots in vocabulary.items():
        if not isinstance(slots, Mapping) or not slots:
            raise ValueError(f"{source}: class {name!r} needs a non-empty mapping slot -> phrases")
        out[str(name)] = {}
        for slot, phrases in slots.items():
            if isinstance(phrases, str) or not isinstance(phrases, Sequence) or not phrases:
                raise ValueError(
                    f"{source}: class {name!r}, slot {slot!r} must be a non-empty list of phrases "
                    '("" for an empty phrase)'
                )
            bad = [p for p in phrases if not isinstance(p, str)]
            if bad:
                raise ValueError(f"{source}: class {name!r}, slot {slot!r} holds non-string phrases {bad[:3]}")
            out[str(name)][str(slot)] = list(phrases)
    return out


def load_prompt_vocabulary(
    path: str | os.PathLike | None = None, prompt_set: str = "chexpert"
) -> dict[str, dict[str, list[str]]]:
    """Read one prompt set from a YAML file.

    Args:
        path: YAML file of prompt sets; ``None`` reads :data:`DEFAULT_PROMPTS_FILE`.
        prompt_set: the top-level key to read (``chexpert`` or ``rsna`` in the shipped file).

    Returns:
        ``{class name: {slot name: [phrase, ...]}}`` in file order.

    Raises:
        FileNotFoundError: no such file.
        KeyError: the file has no ``prompt_set`` (the message lists those it has).
        ValueError: a class or slot is malformed (named with the file).
    """
    path = Path(DEFAULT_PROMPTS_FILE if path is None else path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt vocabulary {path} does not exist")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: expected a mapping of prompt sets, got {type(raw).__name__}")
    if prompt_set not in raw:
        raise KeyError(f"{path}: no prompt set {prompt_set!r}; it has {sorted(raw)}")
    return _check_set(raw[prompt_set], f"{path} [{prompt_set}]")


def class_prompt_candidates(vocabulary: PromptVocabulary, unique: bool = False) -> dict[str, list[str]]:
    """Every prompt of every class: the Cartesian product of its slots, empty phrases left out.

    Args:
        vocabulary: one prompt set (see :func:`load_prompt_vocabulary`).
        unique: drop repeated prompts (keeping the first); the official code keeps them, which weighs the
            sampling towards a duplicated phrase (its Pleural Effusion list holds one twice).

    Returns:
        ``{class name: [prompt, ...]}`` in product order (the first slot varies slowest).
    """
    vocabulary = _check_set(vocabulary, "prompt vocabulary")
    out = {}
    for name, slots in vocabulary.items():
        prompts = [" ".join(p for p in combo if p) for combo in itertools.product(*slots.values())]
        out[name] = list(dict.fromkeys(prompts)) if unique else prompts
    return out


def generate_class_prompts(
    vocabulary: PromptVocabulary | str | os.PathLike | None = None,
    n: int | None = 5,
    seed: int = 6,
    prompt_set: str = "chexpert",
    unique: bool = False,
) -> dict[str, list[str]]:
    """Sample ``n`` prompts per class (GLoRIA's ``generate_chexpert_class_prompts``, seeded).

    Args:
        vocabulary: a prompt set, a YAML file, or ``None`` for the shipped file.
        n: prompts per class; ``None`` returns every candidate (in product order, nothing is sampled).
        seed: seed of the ``random.Random`` shared by the classes of the set (official: 6).
        prompt_set: which set of a YAML file to read.
        unique: see :func:`class_prompt_candidates`.

    Returns:
        ``{class name: [prompt, ...]}``.

    Raises:
        ValueError: ``n`` is below 1 or above a class's number of candidates (the class is named).
    """
    if vocabulary is None or isinstance(vocabulary, (str, os.PathLike)):
        vocabulary = load_prompt_vocabulary(vocabulary, prompt_set)
    candidates = class_prompt_candidates(vocabulary, unique)
    if n is None:
        return candidates
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    short = {name: len(c) for name, c in candidates.items() if len(c) < n}
    if short:
        raise ValueError(f"cannot sample {n} prompts: classes with fewer candidates: {short}")
    rng = random.Random(seed)
    return {name: rng.sample(c, n) for name, c in candidates.items()}
