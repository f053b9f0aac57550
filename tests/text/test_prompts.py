"""Zero-shot prompt vocabulary: shipped sets, product order, seeded sampling (official draw), errors."""

import itertools
import random

import pytest
import yaml

from monai_xattn.text.prompts import (
    DEFAULT_PROMPTS_FILE,
    class_prompt_candidates,
    generate_class_prompts,
    load_prompt_vocabulary,
)

COMPETITION = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]


def test_shipped_sets_have_the_official_sizes():
    vocab = load_prompt_vocabulary()
    assert list(vocab) == COMPETITION
    sizes = {name: len(c) for name, c in class_prompt_candidates(vocab).items()}
    # products of the official slot sizes (REFERENCE: 210, 15, 192, 18, 54 with 36 unique)
    assert sizes == {
        "Atelectasis": 3 * 7 * 10,
        "Cardiomegaly": 15,
        "Consolidation": 4 * 6 * 8,
        "Edema": 6 * 3,
        "Pleural Effusion": 6 * 3 * 3,
    }
    assert len(class_prompt_candidates(vocab, unique=True)["Pleural Effusion"]) == 36
    assert (
        "apperance of patchy consolidation at the right uppper lobe" in class_prompt_candidates(vocab)["Consolidation"]
    )
    rsna = load_prompt_vocabulary(prompt_set="rsna")
    assert set(rsna) == {"Normal", "Pneumonia"}


def test_product_order_and_empty_phrases():
    vocab = {"A": {"s": ["", "mild"], "t": ["x", "y"], "u": [""]}, "B": {"only": ["z"]}}
    assert class_prompt_candidates(vocab) == {"A": ["x", "y", "mild x", "mild y"], "B": ["z"]}
    assert generate_class_prompts(vocab, n=None) == class_prompt_candidates(vocab)


def test_seed_6_draws_the_official_prompts():
    """The official code: f-strings of the three slots in dict order, then random.sample(n) per class in order,
    from Python's random seeded 6. Our prompts are the same phrases (without the empty slots' spaces)."""
    raw = yaml.safe_load(DEFAULT_PROMPTS_FILE.read_text())["chexpert"]
    rng = random.Random(6)
    official = {}
    for name, slots in raw.items():
        a, b, c = slots.values()
        official[name] = rng.sample([f"{x} {y} {z}" for x in a for y in b for z in c], 5)
    ours = generate_class_prompts(n=5, seed=6)
    assert {k: [" ".join(p.split()) for p in v] for k, v in official.items()} == ours
    assert generate_class_prompts(n=5, seed=7) != ours
    assert all(len(v) == 5 for v in ours.values())


def test_user_file_and_errors(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("mine:\n  Pneumonia:\n    a: [left, right]\n    b: [pneumonia]\n  Normal:\n    a: [clear lungs]\n")
    prompts = generate_class_prompts(path, n=1, seed=0, prompt_set="mine")
    assert prompts["Normal"] == ["clear lungs"] and prompts["Pneumonia"][0] in ("left pneumonia", "right pneumonia")
    with pytest.raises(ValueError, match="fewer candidates.*Normal"):
        generate_class_prompts(path, n=2, prompt_set="mine")
    with pytest.raises(KeyError, match="no prompt set 'chexpert'.*mine"):
        load_prompt_vocabulary(path)
    path.write_text("mine:\n  Pneumonia:\n    a: pneumonia\n")
    with pytest.raises(ValueError, match=r"p.yaml \[mine\]: class 'Pneumonia', slot 'a'"):
        load_prompt_vocabulary(path, "mine")
    with pytest.raises(FileNotFoundError):
        load_prompt_vocabulary(tmp_path / "missing.yaml")
    assert list(itertools.chain(*generate_class_prompts(n=3).values()))
