import pytest

from monai_xattn.text.attributes import load_vocabulary


def test_default_vocabulary_has_22_unique_attributes():
    vocab = load_vocabulary()
    assert len(vocab) == 22 and len(set(vocab.names)) == 22
    assert vocab.index("left") == 0
    forms = vocab.surface_forms()
    assert forms["bibasilar"] == ("bilateral", "base") and forms["air space"] == ("airspace",)


@pytest.mark.parametrize(
    "text, message",
    [
        ("attributes: []\n", "non-empty"),
        ("attributes:\n  - {name: a, synonyms: [x]}\n  - {name: b, synonyms: [x]}\n", "belongs to both"),
        ("attributes:\n  - {name: a}\nimplies: {y: [zz]}\n", "unknown attributes"),
        ("attributes:\n  - {group: g}\n", "has no 'name'"),
    ],
)
def test_bad_vocabulary_names_the_file(tmp_path, text, message):
    path = tmp_path / "vocab.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as exc:
        load_vocabulary(path)
    assert str(path) in str(exc.value)
