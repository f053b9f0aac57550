"""Phantom reports: the attribute ground truth follows the findings and the text, labels follow the statements."""

from __future__ import annotations

import re

import numpy as np

from monai_xattn.data.phantom.findings import sample_findings
from monai_xattn.data.phantom.reports import CHEXPERT_LABELS, _typo, _vocab_pattern, write_report


def reports(difficulty: str, n: int = 300):
    for k in range(n):
        rng = np.random.default_rng([k, 11])
        findings = sample_findings(rng, difficulty)
        yield findings, write_report(findings, rng, difficulty=difficulty)


def test_location_and_type_of_a_pneumonia_reach_the_attributes():
    hits, total = 0, 0
    for findings, report in reports("medium"):
        pneumonia = [f for f in findings if f.kind == "pneumonia" and f.distribution == "single"]
        if not pneumonia:
            continue
        gt = report.attributes()
        stated = set(gt["attributes"]) | set(gt["uncertain_attributes"])
        total += 1
        # "retrocardiac", "lingula" and abbreviations (RLL) may stand for the side; an opacity word is always there
        by_side = pneumonia[0].side in stated or {"retrocardiac", "lingula"} & stated
        hits += bool(by_side or re.search(r"\b[RL][UML]L\b", report.text()))
        assert stated & {"opacity", "consolidation", "infiltrate", "ground-glass", "interstitial"}, report.text()
    assert total > 30 and hits == total


def test_labels_follow_the_findings():
    for findings, report in reports("hard"):
        kinds = {f.kind for f in findings}
        labels = report.labels
        assert set(labels) == set(CHEXPERT_LABELS)
        assert (labels["Pneumonia"] in (1, -1)) == ("pneumonia" in kinds)
        assert (labels["Pleural Effusion"] == 1) == ("effusion" in kinds)
        assert (labels["Pneumothorax"] == 1) == ("pneumothorax" in kinds)
        assert (labels["Support Devices"] == 1) == ("device" in kinds)
        assert (labels["No Finding"] == 1) == (not kinds - {"device"})


def test_hard_reports_hedge_and_misspell_easy_ones_do_not():
    def rates(difficulty):
        texts = [(r.labels["Pneumonia"], r.text()) for _, r in reports(difficulty)]
        hedged = sum(label == -1 for label, _ in texts)
        typos = sum(bool(re.search(r"pnuemonia|effusoin|silhouete|pnemothorax|pulmonry|normla", t)) for _, t in texts)
        return hedged, typos

    assert rates("easy") == (0, 0)
    hedged, typos = rates("hard")
    assert hedged > 5 and typos > 20


def test_typos_never_touch_attribute_words():
    pattern, _ = _vocab_pattern(None)
    changed = 0
    for _, report in reports("easy", 100):
        for k, sentence in enumerate(report.sentences):
            noisy = _typo(np.random.default_rng(k), sentence.text, pattern, 1.0)
            changed += noisy != sentence.text
            forms = sorted(m.group().lower() for m in pattern.finditer(sentence.text))
            assert sorted(m.group().lower() for m in pattern.finditer(noisy)) == forms, (sentence.text, noisy)
    assert changed > 50
