"""Word2Vec corpus, training, persistence, attribute vectors and nearest negatives; the CLI."""

import json
import random

import numpy as np
import pytest

from monai_xattn.cli import main
from monai_xattn.text.attributes import load_vocabulary
from monai_xattn.text.word2vec import (
    attribute_vectors,
    join_phrases,
    load_word2vec,
    nearest_negative_table,
    nearest_negatives,
    phrase_token,
    report_to_sentences,
    save_word2vec,
    train_word2vec,
)

VOCAB = load_vocabulary()
SIDES = ["left", "right", "bilateral"]
LEVELS = ["upper", "middle", "lower"]
PLACES = ["lobe", "base", "apical", "perihilar", "retrocardiac", "lingula"]
LOOKS = ["patchy", "focal", "multifocal", "diffuse"]
FINDINGS = [
    "consolidation",
    "opacity",
    "infiltrate",
    "airspace disease",
    "ground-glass opacity",
    "interstitial markings",
]


def make_report(rng: random.Random) -> str:
    """A MIMIC-like report: words of one slot (sides, levels, ...) share contexts, as in real reports."""
    f = (
        f"There is {rng.choice(LOOKS)} {rng.choice(FINDINGS)} in the {rng.choice(SIDES)} {rng.choice(LEVELS)} "
        f"{rng.choice(PLACES)}. The {rng.choice(SIDES)} lung is otherwise clear. No pleural effusion."
    )
    return f"FINDINGS: {f}\nIMPRESSION: {rng.choice(LOOKS)} {rng.choice(SIDES)} {rng.choice(FINDINGS)}."


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(0)
    return [s for _ in range(600) for s in report_to_sentences(make_report(rng), vocabulary=VOCAB)]


@pytest.fixture(scope="module")
def kv(corpus):
    return train_word2vec(corpus, vector_size=24, window=3, epochs=15, seed=0)


def test_corpus_joins_multiword_forms_and_cleans():
    assert phrase_token(" Ground Glass ") == "ground_glass" and phrase_token("air-space") == "air_space"
    assert join_phrases("Ground-glass and air space opacities, both lungs.", VOCAB) == (
        "ground_glass and air_space opacities, both_lungs."
    )
    sentences = report_to_sentences("INDICATION: fever.\nFINDINGS: Patchy ground glass opacity. Ok.\n")
    assert sentences == [["patchy", "ground_glass", "opacity"]]
    assert report_to_sentences("INDICATION: fever and cough.", sections=None)[0] == [
        "indication",
        "fever",
        "and",
        "cough",
    ]


def test_training_is_deterministic(corpus, kv):
    again = train_word2vec(corpus, vector_size=24, window=3, epochs=15, seed=0)
    np.testing.assert_array_equal(again.vectors, kv.vectors)
    assert not np.array_equal(train_word2vec(corpus, vector_size=24, window=3, epochs=15, seed=1).vectors, kv.vectors)
    with pytest.raises(ValueError, match="empty"):
        train_word2vec([[], []])


def test_zero_epochs_keeps_the_seeded_random_vectors(corpus, kv):
    untrained = train_word2vec(corpus, vector_size=24, window=3, epochs=0, seed=0)
    # the same vocabulary, none of the training: the ablation of the corpus in Table 1
    assert untrained.index_to_key == kv.index_to_key
    assert not np.allclose(untrained.vectors, kv.vectors)
    np.testing.assert_array_equal(untrained.vectors, train_word2vec(corpus, vector_size=24, window=3, epochs=0).vectors)
    with pytest.raises(ValueError, match="epochs"):
        train_word2vec(corpus, epochs=-1)


@pytest.mark.parametrize("suffix", [".kv", ".bin", ".txt"])
def test_save_load_roundtrip(kv, tmp_path, suffix):
    path = save_word2vec(kv, tmp_path / "sub" / f"w2v{suffix}")
    loaded = load_word2vec(path)
    assert loaded.index_to_key == kv.index_to_key
    np.testing.assert_allclose(loaded.vectors, kv.vectors, atol=1e-5 if suffix == ".txt" else 0)
    with pytest.raises(FileNotFoundError, match="no word vectors"):
        load_word2vec(tmp_path / "missing.kv")


def test_attribute_vectors(kv):
    table = attribute_vectors(kv, VOCAB)
    assert table.shape == (22, 24) and table.dtype == np.float32
    np.testing.assert_array_equal(table[VOCAB.index("ground-glass")], kv["ground_glass"])
    np.testing.assert_array_equal(table[VOCAB.index("lower")], kv["lower"])
    unit = attribute_vectors(kv, VOCAB, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)


def test_attribute_missing_from_corpus_names_it():
    kv = train_word2vec([["left", "lung"], ["right", "lung"]], vector_size=4, epochs=1)
    with pytest.raises(KeyError, match="attribute 'bilateral'"):
        attribute_vectors(kv, VOCAB)


def test_nearest_negatives_left_right_and_no_synonyms(kv):
    assert "right" in nearest_negatives(kv, "left", 3, VOCAB)
    for word in ("left", "lt", "bases", "bibasilar", "opacities", "ground glass"):
        own = set(VOCAB.surface_forms()[word.lower()])
        negatives = nearest_negatives(kv, word, 5, VOCAB)
        assert len(negatives) == 5 and not own & set(negatives)
    assert not {"bilateral", "base"} & set(nearest_negatives(kv, "bibasilar", 21, VOCAB))
    assert len(nearest_negatives(kv, "left", 100, VOCAB)) == 21
    corpus_words = nearest_negatives(kv, "opacity", 10, VOCAB, among="corpus")
    forms = {phrase_token(f) for f in VOCAB.attributes[VOCAB.index("opacity")].synonyms}
    assert len(corpus_words) == 10 and not forms & set(corpus_words)
    with pytest.raises(KeyError, match="not among"):
        nearest_negatives(kv, "pneumothorax", 1, VOCAB)


def test_nearest_negative_table_matches_single_queries(kv):
    table = nearest_negative_table(kv, VOCAB, k=2)
    assert table.shape == (22, 2)
    assert (table != np.arange(22)[:, None]).all()
    for name in ("left", "patchy", "ground-glass"):
        assert [VOCAB.names[i] for i in table[VOCAB.index(name)]] == nearest_negatives(kv, name, 2, VOCAB)


def test_word2vec_cli(tmp_path, capsys):
    rng = random.Random(1)
    root = tmp_path / "dataset"
    (root / "files").mkdir(parents=True)
    training = []
    for k in range(150):
        (root / "files" / f"s{k}.txt").write_text(make_report(rng))
        # two images of one study share the report: it must be read once
        training += [
            {"image": f"{k}a.dcm", "report": f"files/s{k}.txt"},
            {"image": f"{k}b.dcm", "report": f"files/s{k}.txt"},
        ]
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"training": training, "test": [{"report_text": "IMPRESSION: Mid lung opacity."}]}))
    out = tmp_path / "model" / "w2v.kv"
    before = sorted(root.rglob("*"))
    code = main(
        ["word2vec", "--datalist", str(datalist), "--root", str(root), "--out", str(out), "--vector-size", "16"]
    )
    text = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "reports: 151," in text
    assert len(load_word2vec(out)["left"]) == 16
    assert sorted(root.rglob("*")) == before  # nothing written into the dataset
    assert "nearest negatives of 'left'" in text and "warning" not in text


def test_datalist_reports_errors(tmp_path):
    from monai_xattn.text.reports import iter_datalist_reports

    with pytest.raises(ValueError, match=r"training\[1\] has neither 'report' nor 'report_text'"):
        list(iter_datalist_reports({"training": [{"report_text": "a b"}, {"image": "x.png"}]}, tmp_path))
    with pytest.raises(ValueError, match="no list"):
        list(iter_datalist_reports({"training": []}, tmp_path, splits=["validation"]))
    with pytest.raises(FileNotFoundError):
        list(iter_datalist_reports({"training": [{"report": "missing.txt"}]}, tmp_path))


def test_nearest_negatives_on_phantom_reports():
    from monai_xattn.data.phantom.findings import sample_findings
    from monai_xattn.data.phantom.reports import write_report

    sentences = []
    for k in range(800):
        rng = np.random.default_rng([k, 11])
        sentences += report_to_sentences(write_report(sample_findings(rng, "medium"), rng).text(), vocabulary=VOCAB)
    kv = train_word2vec(sentences, vector_size=32, epochs=20, seed=0)
    assert nearest_negatives(kv, "left", 1, VOCAB) == ["right"]
    assert nearest_negatives(kv, "right", 1, VOCAB) == ["left"]
    assert {"middle", "lower"} & set(nearest_negatives(kv, "upper", 2, VOCAB))
    for name in VOCAB.names:  # never the attribute itself, across the whole ranking
        assert name not in nearest_negatives(kv, name, 21, VOCAB)
