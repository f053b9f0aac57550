"""Negation/uncertainty-aware attribute extraction on hand-written MIMIC-style reports."""

import numpy as np
import pytest

from monai_xattn.text.attributes import AttributeMatcher, NegExRules, extract_attributes, load_vocabulary

VOCAB = load_vocabulary()


@pytest.mark.parametrize(
    "sentence, present, negated, uncertain",
    [
        ("No pleural effusion or pneumothorax.", [], [], []),
        ("No focal consolidation to suggest pneumonia.", [], ["focal", "consolidation"], []),
        ("Right lower lobe opacity, cannot exclude pneumonia.", ["right", "lower", "lobe", "opacity"], [], []),
        ("Resolved left basilar opacity.", [], ["left", "base", "opacity"], []),
        ("The left basilar opacity has resolved.", [], ["left", "base", "opacity"], []),
        ("No change in the left basilar opacity.", ["left", "base", "opacity"], [], []),
        ("Patchy bibasilar opacities may represent atelectasis.", ["bilateral", "base", "patchy", "opacity"], [], []),
        ("Possible right lower lobe pneumonia.", [], [], ["right", "lower", "lobe"]),
        ("Retrocardiac consolidation cannot be excluded.", [], [], ["retrocardiac", "consolidation"]),
        ("No effusion, but there is a right upper lobe infiltrate.", ["right", "upper", "lobe", "infiltrate"], [], []),
        ("Hazy ground glass and air space opacities.", ["opacity", "airspace", "ground-glass"], [], []),
        ("No evidence of focal airspace consolidation.", [], ["focal", "consolidation", "airspace"], []),
        ("Left lower lobe opacity. No right effusion.", ["left", "lower", "lobe", "opacity"], ["right"], []),
        ("Multifocal opacities, concerning for infection.", ["multifocal", "opacity"], [], []),
        ("Right lower lobe opacity, the left lung is clear.", ["right", "lower", "lobe", "opacity"], ["left"], []),
        ("Opacity is not seen in the left lung.", [], ["left", "opacity"], []),
    ],
)
def test_negex_cases(sentence, present, negated, uncertain):
    result = extract_attributes(sentence, VOCAB, sections=None)
    order = VOCAB.names
    assert result.present == sorted(present, key=order.index)
    assert result.negated == sorted(negated, key=order.index)
    assert result.uncertain == sorted(uncertain, key=order.index)
    assert result.multi_hot.dtype == np.float32 and result.multi_hot.shape == (22,)
    assert set(np.flatnonzero(result.multi_hot)) == {order.index(n) for n in present + uncertain}


def test_positive_mention_wins_and_sections_are_respected():
    report = (
        "INDICATION: eval for left lower lobe pneumonia.\n"
        "FINDINGS: No left effusion. Patchy left lower lobe opacity.\n"
        "IMPRESSION: Possible right upper lobe consolidation."
    )
    result = extract_attributes(report, VOCAB)
    assert result.present == ["left", "lower", "lobe", "patchy", "opacity"]
    assert result.uncertain == ["right", "upper", "consolidation"]  # lobe is present elsewhere
    only_indication = extract_attributes(report, VOCAB, sections=("indication",))
    assert only_indication.present == [] and "left" in only_indication.uncertain


def test_uncertain_policies():
    text = "FINDINGS: Possible right lower lobe opacity. Left apical consolidation."
    right = VOCAB.index("right")
    left = VOCAB.index("left")
    values = {p: extract_attributes(text, VOCAB, uncertain=p).multi_hot for p in ("positive", "negative", "ignore")}
    assert [values[p][right] for p in ("positive", "negative", "ignore")] == [1.0, 0.0, -1.0]
    assert all(values[p][left] == 1.0 for p in values)
    with pytest.raises(ValueError, match="uncertain must be"):
        extract_attributes(text, VOCAB, uncertain="maybe")


def test_scope_window_and_custom_rules():
    text = "No pleural effusion, pneumothorax, edema, fracture, or worrisome right lower lobe opacity."
    assert extract_attributes(text, VOCAB, sections=None).negated == ["right", "lower", "lobe", "opacity"]
    narrow = NegExRules(window=3)
    assert extract_attributes(text, VOCAB, sections=None, rules=narrow).present == ["right", "lower", "lobe", "opacity"]
    with pytest.raises(ValueError, match="windows"):
        AttributeMatcher(VOCAB, NegExRules(post_window=-1))
    with pytest.raises(ValueError, match="'possible' is listed both"):
        AttributeMatcher(VOCAB, NegExRules(negation_pre=("no", "possible")))


def test_whole_word_matching_and_mentions():
    matcher = AttributeMatcher(VOCAB)
    # "leftover", "upright", "baseline", "lobectomy" must not match; "left-sided" does
    result = matcher("Leftover upright baseline after lobectomy. Left-sided opacity.")
    assert result.present == ["left", "opacity"]
    mention = result.mentions[0]
    assert (mention.text, mention.start, mention.status) == ("Left", 43, "positive")


def test_custom_vocabulary_file(tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("attributes:\n  - {name: effusion, synonyms: [effusion, effusions]}\n  - {name: pleural}\n")
    vocab = load_vocabulary(path)
    result = extract_attributes("No effusions. Pleural thickening.", vocab, sections=None)
    assert result.present == ["pleural"] and result.negated == ["effusion"]
    assert result.multi_hot.tolist() == [0.0, 1.0]


# Whole reports laid out as in MIMIC-CXR (banner, leading spaces, wrapped lines, PHI, wet read).
REAL_REPORTS = [
    (  # new consolidation, the other lung clear
        "\n".join(
            [
                " FINAL REPORT",
                " EXAMINATION:  CHEST (PA AND LAT)",
                " ",
                " INDICATION:  ___M with fever, cough  // ? pneumonia",
                " ",
                " COMPARISON:  ___",
                " ",
                " FINDINGS: ",
                " ",
                " There is new patchy consolidation in the right lower lobe, concerning for",
                " pneumonia.  Left lung is clear.  There is no pleural effusion or pneumothorax. ",
                " The cardiomediastinal silhouette is normal.",
                " ",
                " IMPRESSION: ",
                " ",
                " Right lower lobe pneumonia.",
                "",
            ]
        ),
        ["right", "lower", "lobe", "patchy", "consolidation"],
        ["left"],
        [],
    ),
    (  # improving but present, resolved, numbered impression
        "\n".join(
            [
                " FINAL REPORT",
                " INDICATION:  History: ___F with SOB  ",
                " ",
                " FINDINGS:  ",
                " ",
                " Interval improvement in bibasilar opacities, with residual mild left basilar",
                " atelectasis.  Previously noted right upper lobe consolidation has resolved. ",
                " No new focal consolidation.",
                " ",
                " IMPRESSION:  ",
                " ",
                " 1. Resolution of right upper lobe pneumonia.",
                " 2. Minimal left basilar atelectasis.",
                "",
            ]
        ),
        ["left", "bilateral", "base", "opacity"],
        ["right", "upper", "lobe", "focal", "consolidation"],
        [],
    ),
    (  # wet read above the banner, no FINDINGS/IMPRESSION: last paragraph; 'may reflect A versus B' hedges
        "\n".join(
            [
                " WET READ: ___ ___ ___ 9:12 PM",
                "  Hazy opacity at the left base, could be atelectasis, though infection cannot be",
                "  excluded.",
                " ______________________________________________________________________________",
                "                                 FINAL REPORT",
                " AP CHEST:",
                " ",
                " Lung volumes are low.  Hazy retrocardiac opacity may reflect atelectasis versus",
                " pneumonia.  No pulmonary edema.  Mild cardiomegaly is stable.",
                "",
            ]
        ),
        [],
        [],
        ["retrocardiac", "opacity"],
    ),
]


@pytest.mark.parametrize("report, present, negated, uncertain", REAL_REPORTS)
def test_whole_mimic_style_reports(report, present, negated, uncertain):
    result = extract_attributes(report, VOCAB)
    assert (result.present, result.negated, result.uncertain) == (present, negated, uncertain)


def test_trie_pattern_matches_like_a_longest_first_alternation():
    import random
    import re

    from monai_xattn.text.attributes import DEFAULT_RULES, _phrase_pattern

    rules = DEFAULT_RULES
    phrases = {*rules.negation_pre, *rules.negation_post, *rules.uncertain_pre, *rules.uncertain_post, *rules.pseudo}
    phrases |= set(VOCAB.surface_forms())
    flat = "|".join(r"\s+".join(map(re.escape, p.split())) for p in sorted(phrases, key=lambda p: (-len(p), p)))
    reference = re.compile(rf"(?<!\w)(?:{flat})(?!\w)", re.IGNORECASE)
    trie = re.compile(rf"(?<!\w)(?:{_phrase_pattern(phrases)})(?!\w)", re.IGNORECASE)
    rng = random.Random(0)
    words = [w for p in phrases for w in p.split()] + ["change", "opacity", "the", "x", ",", "."]
    for _ in range(300):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 30)))
        assert [m.span() for m in trie.finditer(text)] == [m.span() for m in reference.finditer(text)]


def test_long_text_in_bounded_memory_with_the_statuses_of_its_sentences():
    """Scopes end at sentence ends, so every mention of a long report has the status it has in its sentence alone.
    The matcher compares each mention only with the triggers inside its token windows; comparing all pairs took
    gigabytes for a 1 MB text (measured: 6 GB at 0.47 MB) and was killed at 1 MB."""
    import random
    import tracemalloc

    sentences = [
        "Patchy right lower lobe opacity.",
        "No left effusion or focal consolidation.",
        "Possible retrocardiac airspace disease, but the left lung is clear.",
        "Bibasilar opacities have resolved.",
        "No change in the left basilar opacity; cannot exclude pneumonia.",
        "Multifocal ground glass opacities, concerning for infection.",
    ]
    matcher = AttributeMatcher(VOCAB)
    alone = [[(m.text, m.status) for m in matcher.mentions(s)] for s in sentences]
    rng = random.Random(0)
    picks = [rng.randrange(len(sentences)) for _ in range(6000)]  # about 0.3 MB
    tracemalloc.start()
    try:
        mentions = matcher.mentions(" ".join(sentences[k] for k in picks))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(m.text, m.status) for m in mentions] == [pair for k in picks for pair in alone[k]]
    assert peak < 100e6, f"{peak / 1e6:.0f} MB"
