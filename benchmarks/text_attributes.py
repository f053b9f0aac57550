"""Speed of negation-aware attribute extraction against a naive keyword loop, on MIMIC-like reports.

Run: ``python benchmarks/text_attributes.py [--reports 2000] [--repeat 3]``.

- ``naive``: the reference most code starts from: for each sentence, for each surface form, one ``re.search``
  (whole word, case-insensitive; patterns precompiled) and no negation at all.
- ``matcher``: :func:`monai_xattn.text.attributes.extract_attributes` on the same reports: section selection,
  one alternation for all forms, one for all triggers, NegEx scopes resolved with array operations.

Prints reports/s for both, the ratio matcher/naive (measured in this run; > 1 means the full extractor is faster
than the naive loop that does less), and the peak traced Python memory of each (``tracemalloc``, measured
in a separate run because tracing slows allocation-heavy code).
"""

from __future__ import annotations

import argparse
import random
import re
import time
import tracemalloc

from monai_xattn.text.attributes import extract_attributes, load_vocabulary
from monai_xattn.text.sections import select_sections, split_sentences

SIDES, LEVELS = ["left", "right", "bilateral"], ["upper", "mid", "lower"]
PLACES = ["lobe", "base", "apex", "perihilar region", "retrocardiac region", "lingula"]
LOOKS, FINDS = (
    ["patchy", "focal", "multifocal", "diffuse"],
    ["consolidation", "opacity", "infiltrate", "airspace disease"],
)


def make_report(rng: random.Random) -> str:
    """A MIMIC-like report with banner, indication, findings and impression, mixing stated/negated/hedged text."""
    side, level, place = rng.choice(SIDES), rng.choice(LEVELS), rng.choice(PLACES)
    look, find = rng.choice(LOOKS), rng.choice(FINDS)
    hedge = rng.choice(["", "Possible ", "Cannot exclude "])
    return (
        "                                 FINAL REPORT\n"
        " INDICATION:  ___ with fever and cough, eval for pneumonia.\n \n"
        f" FINDINGS:  There is {look} {find} in the {side} {level} {place}.  No pleural effusion or\n"
        f" pneumothorax.  No change in the {rng.choice(SIDES)} basilar atelectasis.  Heart size is normal.\n \n"
        f" IMPRESSION:  {hedge}{side} {level} {place} pneumonia.  No {rng.choice(FINDS)} on the other side.\n"
    )


def naive(reports: list[str], patterns: list[tuple[re.Pattern, str]]) -> list[set[str]]:
    found = []
    for text in reports:
        names = set()
        for sentence in split_sentences(select_sections(text)):
            for pattern, name in patterns:
                if pattern.search(sentence):
                    names.add(name)
        found.append(names)
    return found


def measure(fn, repeat: int) -> tuple[float, float]:
    """Best wall time of ``repeat`` runs (after a warm-up), then the peak traced memory of one more run.

    Tracing slows allocation-heavy code, so time and memory come from separate runs.
    """
    fn()  # warm-up: compiles and caches the matcher
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(0)
    reports = [make_report(rng) for _ in range(args.reports)]
    vocab = load_vocabulary()
    patterns = [
        (re.compile(rf"(?<!\w){re.escape(form)}(?!\w)", re.IGNORECASE), names[0])
        for form, names in vocab.surface_forms().items()
    ]
    t_naive, m_naive = measure(lambda: naive(reports, patterns), args.repeat)
    t_match, m_match = measure(lambda: [extract_attributes(r, vocab) for r in reports], args.repeat)
    print(f"reports: {args.reports}, surface forms: {len(patterns)}")
    print(f"naive keyword loop (no negation): {args.reports / t_naive:9.0f} reports/s, peak {m_naive:6.1f} MiB")
    print(f"extract_attributes (NegEx):       {args.reports / t_match:9.0f} reports/s, peak {m_match:6.1f} MiB")
    print(f"ratio matcher/naive throughput: {t_naive / t_match:.2f}")


if __name__ == "__main__":
    main()
