"""One Word2Vec corpus for ``monai-xattn word2vec`` and the cxr_xattn bundle (issue 16 item 3)."""

from __future__ import annotations

import pytest

from monai_xattn.cli import main
from monai_xattn.data import build_mimic_cxr_datalist, load_datalist, write_datalist
from monai_xattn.data.phantom import generate
from monai_xattn.engines.xattn import train_attribute_word2vec
from monai_xattn.text.attributes import load_vocabulary
from monai_xattn.text.word2vec import load_word2vec, phrase_token, word2vec_corpus

VOCAB = load_vocabulary()
ATTRIBUTE_TOKENS = {phrase_token(a.name) for a in VOCAB.attributes}


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A MIMIC-CXR phantom small enough that its training reports leave some attributes unmentioned."""
    tmp = tmp_path_factory.mktemp("w2v_phantom")
    root = tmp / "mimic"
    generate(root, layout="mimic-cxr", n=6, size=32, seed=0, difficulty="easy", workers=1)
    datalist = write_datalist(build_mimic_cxr_datalist(root, views=("PA", "AP"))[0], tmp / "datalist.json")
    return root, datalist


def test_corpus_ends_with_one_sentence_per_attribute():
    corpus = word2vec_corpus([("a", "FINDINGS: Left lower lobe opacity."), ("b", "")], vocabulary=VOCAB)
    assert corpus.n_reports == 2 and corpus.no_sentence == ["b"]
    assert corpus.sentences[0] == ["left", "lower", "lobe", "opacity"]
    assert corpus.sentences[1:] == [[phrase_token(a.name)] for a in VOCAB.attributes]


@pytest.fixture(scope="module")
def bundle_vectors(phantom):
    root, datalist = phantom
    return train_attribute_word2vec(load_datalist(datalist, root)["training"], vector_size=8, epochs=1)


def test_bundle_vectors_hold_every_attribute(phantom, bundle_vectors):
    from monai_xattn.text.reports import iter_datalist_reports

    root, datalist = phantom
    reports = word2vec_corpus(iter_datalist_reports(datalist, root, ["training"]), vocabulary=VOCAB)
    mentioned = {t for s in reports.sentences[: -len(VOCAB)] for t in s}
    assert ATTRIBUTE_TOKENS - mentioned, "the phantom should leave an attribute unmentioned, or the test tests nothing"
    assert ATTRIBUTE_TOKENS <= set(bundle_vectors.key_to_index)


def test_cli_and_bundle_train_on_the_same_vocabulary(phantom, bundle_vectors, tmp_path):
    root, datalist = phantom
    out = tmp_path / "cli.kv"
    args = [
        "word2vec",
        "--datalist",
        str(datalist),
        "--root",
        str(root),
        "--out",
        str(out),
        "--splits",
        "training",
        "--vector-size",
        "8",
        "--epochs",
        "1",
    ]
    assert main(args) == 0
    assert set(load_word2vec(out).key_to_index) == set(bundle_vectors.key_to_index)
