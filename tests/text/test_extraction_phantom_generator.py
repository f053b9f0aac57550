"""Attribute extraction against the phantom report generator's ground truth (no files: reports in memory).

The phantom writes each sentence with one status for all its attribute words and derives the ground truth from
that, independently of our NegEx rules; see ``monai_xattn/data/phantom/reports.py``. ``pytest -s`` prints the
per-attribute table. The same check on the files of a generated phantom layout (sidecars) lives in
``tests/data/test_attribute_extraction_phantom.py``.
"""

import numpy as np
import pytest

from monai_xattn.data.phantom.findings import sample_findings
from monai_xattn.data.phantom.reports import write_report
from monai_xattn.text.attributes import extract_attributes, load_vocabulary

VOCAB = load_vocabulary()


def names_to_hot(lists: list[list[str]]) -> np.ndarray:
    """(N, A) bool from N lists of attribute names."""
    hot = np.zeros((len(lists), len(VOCAB)), dtype=bool)
    rows = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
    hot[rows, [VOCAB.index(n) for x in lists for n in x]] = True
    return hot


def prf_table(gt: np.ndarray, pred: np.ndarray) -> tuple[str, float]:
    """Per-attribute precision/recall/F1 table of (N, A) bool matrices and the micro-F1."""
    tp, fp, fn = (gt & pred).sum(0), (~gt & pred).sum(0), (gt & ~pred).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision, recall = tp / (tp + fp), tp / (tp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
    lines = [f"{'attribute':<14} {'support':>7} {'P':>6} {'R':>6} {'F1':>6}"]
    lines += [
        f"{n:<14} {int(tp[a] + fn[a]):>7} {precision[a]:>6.3f} {recall[a]:>6.3f} {f1[a]:>6.3f}"
        for a, n in enumerate(VOCAB.names)
    ]
    micro = 2 * tp.sum() / max(2 * tp.sum() + fp.sum() + fn.sum(), 1)
    lines.append(f"{'micro':<14} {int((tp + fn).sum()):>7} {'':>6} {'':>6} {micro:>6.3f}")
    return "\n".join(lines), float(micro)


@pytest.mark.parametrize("difficulty", ["medium", "hard"])
def test_extraction_f1_on_generated_reports(difficulty):
    gts, preds = {"present": [], "uncertain": [], "negated": []}, {"present": [], "uncertain": [], "negated": []}
    for k in range(400):
        rng = np.random.default_rng([k, 7])
        report = write_report(sample_findings(rng, difficulty), rng, difficulty=difficulty)
        truth, found = report.attributes(), extract_attributes(report.text(), VOCAB)
        for key, gt_key in (
            ("present", "attributes"),
            ("uncertain", "uncertain_attributes"),
            ("negated", "negated_attributes"),
        ):
            gts[key].append(truth[gt_key])
            preds[key].append(getattr(found, key))
    table, micro = prf_table(names_to_hot(gts["present"]), names_to_hot(preds["present"]))
    print(f"\nphantom '{difficulty}' reports, positively stated attributes (400 reports)\n{table}")
    assert names_to_hot(gts["present"]).sum() > 500  # the sample exercises the vocabulary
    assert micro >= 0.95
    for key in ("uncertain", "negated"):
        _, f1 = prf_table(names_to_hot(gts[key]), names_to_hot(preds[key]))
        print(f"{key}: micro-F1 {f1:.3f}")
        assert f1 >= 0.95
