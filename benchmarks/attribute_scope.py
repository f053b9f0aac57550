"""Pneumonia-scoped against whole-report attribute extraction, on phantom MIMIC-CXR reports.

Run: ``python benchmarks/attribute_scope.py [--n 300] [--seed 0] [--workers 1]``.

For a medium and a hard MIMIC-CXR phantom (written to a temporary folder), every study's report is read with
:func:`monai_xattn.text.attributes.extract_attributes` (FINDINGS + IMPRESSION) twice: ``scope=None`` (the whole
sections) and ``scope="pneumonia"``. The positively stated attributes are scored against the sidecar's
``pneumonia_attributes``: the positive attributes of the sentences the generator wrote about the pneumonia (its own
location and look), derived from its templates, independently of our cue lists. Studies without pneumonia count
too (their ground truth is empty, so every attribute found there is a false positive).

Prints Markdown: micro precision/recall/F1 and macro F1 (mean over attributes with support) per method, the share
of studies labelled pneumonia (CheXpert label 1) that get an attribute outside their ground truth, and per-attribute
false positives and P/R/F1 (0 where undefined), sorted by F1 gain.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from monai_xattn.data.phantom.generate import generate
from monai_xattn.text.attributes import extract_attributes, load_vocabulary

METHODS = {"whole report": None, "pneumonia scope": "pneumonia"}


def multi_hot(lists: list[list[str]], names: list[str]) -> np.ndarray:
    out = np.zeros((len(lists), len(names)), dtype=bool)
    for row, found in enumerate(lists):
        out[row, [names.index(n) for n in found]] = True
    return out


def scores(truth: np.ndarray, found: np.ndarray) -> dict[str, np.ndarray | float]:
    """Per-attribute and micro precision/recall/F1 of ``(N, A)`` bool predictions (0 where undefined)."""
    tp, fp, fn = (truth & found).sum(0), (~truth & found).sum(0), (truth & ~found).sum(0)

    def ratio(num, den):
        return np.divide(num, den, out=np.zeros(np.shape(num), dtype=float), where=np.asarray(den) > 0)

    f1 = ratio(2 * tp, 2 * tp + fp + fn)
    supported = (tp + fn) > 0
    return {
        "support": tp + fn,
        "false_positives": fp,
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": f1,
        "micro_precision": float(ratio(tp.sum(), tp.sum() + fp.sum())),
        "micro_recall": float(ratio(tp.sum(), tp.sum() + fn.sum())),
        "micro_f1": float(ratio(2 * tp.sum(), 2 * tp.sum() + fp.sum() + fn.sum())),
        "macro_f1": float(f1[supported].mean()) if supported.any() else 0.0,
    }


def evaluate(root: Path, names: list[str]) -> tuple[dict[str, dict], dict[str, float], int]:
    """Scores of each method on the phantom at ``root``, the share of pneumonia studies with a leaked attribute
    per method, and the number of pneumonia studies."""
    vocabulary = load_vocabulary()
    sidecars = [json.loads(p.read_text()) for p in sorted((root / "ground_truth").glob("*.json"))]
    sidecars = [s for s in sidecars if s.get("report")]
    texts = [(root / s["report"]).read_text(encoding="utf-8") for s in sidecars]
    truth = multi_hot([s["pneumonia_attributes"] for s in sidecars], names)
    pneumonia = np.array([s["labels"].get("Pneumonia") == 1 for s in sidecars])
    results, leaked = {}, {}
    for method, scope in METHODS.items():
        found = multi_hot([extract_attributes(t, vocabulary, scope=scope).present for t in texts], names)
        results[method] = scores(truth, found)
        leaked[method] = float((found & ~truth)[pneumonia].any(1).mean()) if pneumonia.any() else 0.0
    return results, leaked, int(pneumonia.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="studies per phantom")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="phantom generator processes")
    args = parser.parse_args()
    names = load_vocabulary().names
    for difficulty in ("medium", "hard"):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "mimic-cxr"
            generate(root, "mimic-cxr", n=args.n, size=32, seed=args.seed, difficulty=difficulty, workers=args.workers)
            start = time.perf_counter()
            results, leaked, n_pneumonia = evaluate(root, names)
            seconds = time.perf_counter() - start
        print(f"\n### {difficulty}: {args.n} studies ({n_pneumonia} with pneumonia), seed {args.seed}\n")
        print("| method | micro P | micro R | micro F1 | macro F1 | pneumonia studies with a leaked attribute |")
        print("|---|---|---|---|---|---|")
        for method, r in results.items():
            print(
                f"| {method} | {r['micro_precision']:.3f} | {r['micro_recall']:.3f} | {r['micro_f1']:.3f} "
                f"| {r['macro_f1']:.3f} | {leaked[method]:.0%} |"
            )
        whole, scoped = results["whole report"], results["pneumonia scope"]
        print(
            "\n| attribute | support | FP whole | FP scoped | P whole | P scoped | R whole | R scoped | F1 whole "
            "| F1 scoped | ΔF1 |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        gain = scoped["f1"] - whole["f1"]
        for a in np.lexsort((-(whole["false_positives"] - scoped["false_positives"]), -gain)):
            print(
                f"| {names[a]} | {int(whole['support'][a])} | {int(whole['false_positives'][a])} "
                f"| {int(scoped['false_positives'][a])} | {whole['precision'][a]:.3f} | {scoped['precision'][a]:.3f} "
                f"| {whole['recall'][a]:.3f} | {scoped['recall'][a]:.3f} | {whole['f1'][a]:.3f} "
                f"| {scoped['f1'][a]:.3f} | {gain[a]:+.3f} |"
            )
        print(f"\n(extraction of both methods: {seconds:.1f} s)")


if __name__ == "__main__":
    main()
