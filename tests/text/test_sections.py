"""Report sectioning, sentence splitting and GLoRIA cleaning on MIMIC-CXR-style reports."""

import pytest

from monai_xattn.text.sections import extract_sections, gloria_clean_sentences, select_sections, split_sentences

# Layout of a real MIMIC-CXR report with an addendum: centred banners, a leading space on each line,
# PHI placeholders, sentences wrapped over lines, CONCLUSION instead of IMPRESSION.
MIMIC_WITH_ADDENDUM = "\n".join(
    [
        "                                 FINAL ADDENDUM",
        " ADDENDUM:  Findings were discussed with Dr. ___ by ___ at 4:05 p.m.",
        " ",
        "                                 FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___F with cough and fever  // eval for pneumonia",
        " ",
        " COMPARISON:  ___",
        " ",
        " FINDINGS: ",
        " ",
        " There is a new patchy opacity in the right lower lobe.  No pleural effusion or",
        " pneumothorax.  Heart size is normal.",
        " ",
        " CONCLUSION: ",
        " ",
        " Right lower lobe pneumonia.",
        "",
    ]
)


def test_mimic_sections_banners_addendum_and_aliases():
    sections = extract_sections(MIMIC_WITH_ADDENDUM)
    assert list(sections) == ["addendum", "examination", "indication", "findings", "impression"]
    assert sections["findings"] == (
        "There is a new patchy opacity in the right lower lobe. No pleural effusion or pneumothorax. "
        "Heart size is normal."
    )
    assert sections["impression"] == "Right lower lobe pneumonia."
    assert sections["examination"] == "CHEST (PA AND LAT)"
    assert "___" not in sections["addendum"] and sections["addendum"].startswith("Findings were discussed")
    assert "comparison" not in sections  # only a PHI placeholder: empty once the placeholder is removed
    assert "___" in extract_sections(MIMIC_WITH_ADDENDUM, keep_phi=True)["comparison"]


def test_no_header_report_falls_back_to_last_paragraph():
    text = "PA and lateral chest.\n\nComparison none.\n\nMild left basilar atelectasis.\nOtherwise clear.\n"
    sections = extract_sections(text)
    assert sections["last_paragraph"] == "Mild left basilar atelectasis. Otherwise clear."
    assert select_sections(text) == sections["last_paragraph"]
    assert select_sections(text, fallback=False) == ""


def test_repeated_section_joined_and_preamble_kept():
    text = "WET READ: ___ pna?\nFINDINGS: Lungs clear.\nIMPRESSION: None.\nFINDINGS: Addendum finding."
    sections = extract_sections(text)
    assert sections["findings"] == "Lungs clear. Addendum finding."
    assert sections["wet read"] == "pna?"
    assert select_sections(text, ("impression", "findings")) == "None. Lungs clear. Addendum finding."


def test_lower_case_colon_is_not_a_header():
    sections = extract_sections("FINDINGS: Note: the left base is clear.\nImpression: ignored header")
    assert list(sections) == ["findings"]


def test_crlf_and_non_str():
    assert extract_sections("FINDINGS:\r\n Right opacity.\r\n")["findings"] == "Right opacity."
    with pytest.raises(TypeError, match="must be str"):
        extract_sections(None)
    with pytest.raises(TypeError, match="must be str, got bytes"):
        select_sections(b"FINDINGS: x", None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1. Right lower lobe opacity, 1.5 cm. 2. No effusion.", ["Right lower lobe opacity, 1.5 cm.", "No effusion."]),
        ("Heart normal!  Lungs clear?\n\nNo acute process", ["Heart normal!", "Lungs clear?", "No acute process"]),
        ("Opacity at T12.\nStable.", ["Opacity at T12.", "Stable."]),
        ("", []),
    ],
)
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


def test_gloria_cleaning_rules():
    text = "1. Right lower lobe opacity.\n2. Small \u00e9ffusion. Ok. 3.5 cm nodule  ___ noted."
    # numbered markers split (also "3." of the decimal, as GLoRIA's regex does), one-token sentences
    # ("Ok", "5 cm"... has 3 tokens) dropped, lower-cased, non-ASCII stripped, PHI removed
    assert gloria_clean_sentences(text) == ["right lower lobe opacity", "small ffusion", "5 cm nodule noted"]
    assert gloria_clean_sentences("Ok. Fine.") == []
    assert "___" in gloria_clean_sentences("a ___ b", drop_phi=False)[0]
