"""Seeded fuzzing of the dataset adapters' CSV files: truncated, garbled, cut, emptied and re-headed tables.

A session fixture writes a small phantom of each layout (6 studies, 64 px, seed 0, default difficulty); each
:data:`TARGETS` file of it is damaged in :data:`N_PER_FILE` seeded ways (:data:`MUTATIONS`: a line cut mid-field, a
field separator dropped or doubled, a number garbled, random bytes, an unbalanced quote, the file cut mid-line,
emptied, left with its header only, given a wrong header, ...) and the adapter the CLI's ``monai-xattn datalist
<layout>`` calls runs on it. Each run is classified:

- ``datalist``: the adapter returns a datalist that passes the schema check, and nothing went missing silently:
  every row of the damaged table is in the datalist or counted in the report's drops (primary tables), every box
  row is a box or a counted drop (box tables), and a table the adapter does not read changes nothing;
- ``clear error``: a ``ValueError``-family exception (``DatalistError``) naming the damaged file and, when the damage
  is in one data row, a line;
- ``other``: anything else (another exception type, an error naming no file or line, a datalist that breaks the
  schema or loses rows silently, a run over :data:`TIME_LIMIT_S` seconds).

The tests fail on any ``other``. ``python tests/reliability/test_fuzz_csv.py`` prints the outcome table that
``docs/reliability.md`` holds between its ``fuzz table csv`` markers; a test checks that the two agree.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import re
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

START, END = "<!-- fuzz table csv: generated -->", "<!-- end of fuzz table csv -->"
SEED = 2021
N_PER_FILE = 36
TIME_LIMIT_S = 10.0
OUTCOMES = ("datalist", "clear error", "other")
PHANTOM = {"n": 6, "size": 64, "seed": 0}  # default difficulty: other settings are the phantom's own business
LINE = re.compile(r"\b(?:line|lines|row)\b \[?\d+")


@dataclass(frozen=True)
class Target:
    """One CSV of a layout.

    Attributes:
        layout: phantom layout = ``monai-xattn datalist`` dataset name.
        file: the CSV, relative to the dataset root.
        ids: for the table that lists the images, the column naming each entry (every row must end up in the
            datalist or in the drops); ``None`` for the other tables.
        boxes: for tables with one row per box, ``is_box(row) -> bool``: box rows must be boxes or counted drops.
        read: whether the adapter reads the file at all (one it ignores must leave the datalist unchanged).
    """

    layout: str
    file: str
    ids: str | None = None
    boxes: Callable[[dict[str, str]], bool] | None = None
    read: bool = True


TARGETS = (
    Target("chestxray8", "Data_Entry_2017.csv", ids="Image Index"),
    Target("chestxray8", "BBox_List_2017.csv", boxes=lambda row: True),
    Target("rsna", "stage_2_train_labels.csv", ids="patientId", boxes=lambda row: row.get("Target") == "1"),
    Target("rsna", "stage_2_detailed_class_info.csv", read=False),
    Target("siim", "train-rle.csv", ids="ImageId"),
    Target("chexpert", "train.csv", ids="Path"),
    Target("chexpert", "valid.csv", ids="Path"),
    Target("mimic-cxr", "mimic-cxr-2.0.0-metadata.csv.gz", ids="dicom_id"),
    Target("mimic-cxr", "mimic-cxr-2.0.0-split.csv.gz"),
    Target("mimic-cxr", "mimic-cxr-2.0.0-chexpert.csv.gz"),
    Target("ms-cxr", "MS_CXR_Local_Alignment_v1.1.0.csv", ids="dicom_id", boxes=lambda row: True),
    Target("covid", "metadata.csv", ids="filename"),
    Target("covid", "annotations/covid-severity-scores.csv"),
)
LAYOUTS = tuple(dict.fromkeys(t.layout for t in TARGETS))


# ---------------------------------------------------------------------------------------------------- mutations
def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _data_line(lines: list[bytes], rng: random.Random) -> int:
    """Index of a random non-blank line after the header (the header when there is none)."""
    body = [k for k, line in enumerate(lines) if k > 0 and line.strip()]
    return rng.choice(body) if body else 0


def _edit_line(data: bytes, rng: random.Random, edit: Callable[[bytes], bytes]) -> bytes:
    lines = _lines(data)
    k = _data_line(lines, rng)
    lines[k] = edit(lines[k])
    return b"\n".join(lines)


def truncate_line(data, rng):
    return _edit_line(data, rng, lambda line: line[: rng.randrange(1, max(2, len(line)))])


def drop_separator(data, rng):
    def edit(line):
        commas = [i for i, b in enumerate(line) if b == ord(",")]
        if not commas:
            return line
        i = rng.choice(commas)
        return line[:i] + line[i + 1 :]

    return _edit_line(data, rng, edit)


def double_separator(data, rng):
    def edit(line):
        commas = [i for i, b in enumerate(line) if b == ord(",")] or [len(line)]
        i = rng.choice(commas)
        return line[:i] + b"," + line[i:]

    return _edit_line(data, rng, edit)


GARBLED_NUMBERS = (
    b"NaN", b"inf", b"-inf", b"1e999", b"-1e999", b"1e-400", b"-0", b"0x1F", b"12abc", b"1,5", b"1.2.3", b"",
    b" ", b"99999999999999999999999", b"-7", b"0", b"3.5", b"\xe2\x88\x9e", b"\xff\xfe", b"None", b"True",
)  # fmt: skip


def garble_number(data, rng):
    def edit(line):
        numbers = list(re.finditer(rb"-?\d+(?:\.\d+)?", line))
        if not numbers:
            return line + rng.choice(GARBLED_NUMBERS)
        m = rng.choice(numbers)
        return line[: m.start()] + rng.choice(GARBLED_NUMBERS) + line[m.end() :]

    return _edit_line(data, rng, edit)


def insert_bytes(data, rng):
    def edit(line):
        i = rng.randrange(len(line) + 1)
        return line[:i] + rng.randbytes(rng.randint(1, 8)) + line[i:]

    return _edit_line(data, rng, edit)


def unbalanced_quote(data, rng):
    def edit(line):
        i = rng.randrange(len(line) + 1)
        return line[:i] + b'"' + line[i:]

    return _edit_line(data, rng, edit)


def swap_fields(data, rng):
    def edit(line):
        fields = line.split(b",")
        if len(fields) > 1:
            i, j = rng.sample(range(len(fields)), 2)
            fields[i], fields[j] = fields[j], fields[i]
        return b",".join(fields)

    return _edit_line(data, rng, edit)


def nul_byte(data, rng):
    return _edit_line(data, rng, lambda line: line[: len(line) // 2] + b"\x00" + line[len(line) // 2 :])


def duplicate_line(data, rng):
    lines = _lines(data)
    k = _data_line(lines, rng)
    return b"\n".join(lines[: k + 1] + [lines[k]] + lines[k + 1 :])


def delete_line(data, rng):
    lines = _lines(data)
    k = _data_line(lines, rng)
    return b"\n".join(lines[:k] + lines[k + 1 :])


def cut_file(data, rng):
    return data[: rng.randrange(1, max(2, len(data)))]


def empty_file(data, rng):
    return b""


def header_only(data, rng):
    return _lines(data)[0] + b"\n"


def wrong_header(data, rng):
    lines = _lines(data)
    header = lines[0]
    choice = rng.randrange(4)
    if choice == 0:
        header = header.lower()
    elif choice == 1:
        header = b"patientId,x,y,width,height,Target" if b"patientId" not in header else b"ImageId, EncodedPixels"
    elif choice == 2:
        fields = header.split(b",")
        del fields[rng.randrange(len(fields))]
        header = b",".join(fields)
    else:
        lines = lines[1:]  # no header at all: the first data row stands in for it
        return b"\n".join(lines)
    return b"\n".join([header, *lines[1:]])


def blank_lines(data, rng):
    lines = _lines(data)
    for _ in range(3):
        lines.insert(rng.randrange(1, len(lines) + 1), rng.choice((b"", b"   ", b"\t")))
    return b"\n".join(lines)


def line_ends(data, rng):
    return data.replace(b"\n", rng.choice((b"\r\n", b"\r")))


def byte_order_mark(data, rng):
    return b"\xef\xbb\xbf" + data


MUTATIONS: tuple[tuple[str, Callable[[bytes, random.Random], bytes], bool], ...] = (
    # (name, mutate(data, rng) -> data, row-specific: whether an error must name a line)
    ("line cut mid-field", truncate_line, True),
    ("field separator dropped", drop_separator, True),
    ("field separator doubled", double_separator, True),
    ("number garbled", garble_number, True),
    ("random bytes inserted", insert_bytes, True),
    ("unbalanced quote", unbalanced_quote, True),
    ("two fields swapped", swap_fields, True),
    ("NUL byte", nul_byte, True),
    ("line duplicated", duplicate_line, True),
    ("line deleted", delete_line, True),
    ("file cut mid-line", cut_file, True),
    ("empty file", empty_file, False),
    ("header only", header_only, False),
    ("wrong header", wrong_header, False),
    ("blank lines inserted", blank_lines, False),
    ("CRLF or CR line ends", line_ends, False),
    ("UTF-8 byte-order mark", byte_order_mark, False),
)
GZIP_MUTATIONS = (
    ("gzip stream cut", lambda data, rng: data[: rng.randrange(10, len(data))], False),
    ("gzip stream bytes flipped", lambda data, rng: _flip(data, rng), False),
    ("plain text under the .gz name", None, False),  # handled in mutate(): the CSV uncompressed
)


def _flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(4):
        i = rng.randrange(10, len(out))  # past the 10-byte header: the deflate stream itself
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def mutate(original: bytes, gz: bool, k: int, rng: random.Random) -> tuple[str, bytes, bool]:
    """The ``k``-th damaged version of a file: ``(mutation name, new bytes, row-specific)``.

    Mutations take turns so that each is used, and draw their positions and values from ``rng``. A ``.csv.gz``
    file is damaged in its CSV text and recompressed, or (every fourth time) damaged as a gzip stream.
    """
    if gz and k % 4 == 3:
        name, edit, row = GZIP_MUTATIONS[(k // 4) % len(GZIP_MUTATIONS)]
        if edit is None:
            return name, gzip.decompress(original), row
        return name, edit(original, rng), row
    text = gzip.decompress(original) if gz else original
    name, edit, row = MUTATIONS[k % len(MUTATIONS)]
    data = edit(text, rng)
    return name, (gzip.compress(data, mtime=0) if gz else data), row


def mutations_of(target: Target, original: bytes) -> list[tuple[str, bytes, bool]]:
    """The :data:`N_PER_FILE` damaged versions of ``target``, seeded by the target's position."""
    rng = random.Random(f"{SEED}/{target.layout}/{target.file}")
    return [mutate(original, target.file.endswith(".gz"), k, rng) for k in range(N_PER_FILE)]


# ---------------------------------------------------------------------------------------------------- checks
class _Hang(BaseException):
    """Raised by the alarm; a ``BaseException`` so that no ``except Exception`` in the adapter swallows it."""


def _alarm(signum, frame):
    raise _Hang()


def _rows(data: bytes, gz: bool) -> list[dict[str, str]]:
    """The damaged table's data rows, read independently of the adapter (stripped, header-keyed)."""
    text = (gzip.decompress(data) if gz else data).decode("utf-8-sig", errors="replace")
    lines = [line for line in io.StringIO(text, newline="") if not line.lstrip().startswith("#")]
    records = [r for r in csv.reader(lines) if any(f.strip() for f in r)]
    if not records:
        return []
    header = [h.strip() for h in records[0]]
    return [dict(zip(header, (f.strip() for f in r), strict=False)) for r in records[1:]]


def _entries(datalist: dict) -> list[dict]:
    return [e for split in datalist.values() for e in split]


def silent_losses(target: Target, data: bytes, datalist: dict, report: Any, baseline: dict | None) -> str:
    """Why the datalist lost rows of the damaged table without counting them, or ``""``."""
    from monai_xattn.data.chexpert import strip_chexpert_prefix

    entries = _entries(datalist)
    if not target.read:
        return (
            "" if baseline is None or datalist == baseline else "a file the adapter does not read changed the datalist"
        )
    rows = _rows(data, target.file.endswith(".gz"))
    dropped = " ".join(item for item, _ in report.drops)
    if target.ids is not None:
        listed = {e["image_id"] for e in entries} | {e["image"] for e in entries}
        missing = []
        for row in rows:
            value = row.get(target.ids, "")
            if target.ids == "Path":
                value = strip_chexpert_prefix(value)
            if value and value not in listed and value not in dropped:
                missing.append(value)
        if missing:
            return f"{len(missing)} rows neither listed nor counted as dropped, e.g. {missing[0]!r}"
    if target.boxes is not None:
        box_rows = sum(1 for row in rows if target.boxes(row))
        boxes = sum(len(e.get("boxes", ())) for e in entries)
        id_column = target.ids or "Image Index"
        # drops of whole images take their box rows with them; box drops name a line or a box index
        image_drops = {item for item, _ in report.drops}
        of_dropped_images = sum(1 for row in rows if target.boxes(row) and row.get(id_column, "") in image_drops)
        box_drops = sum(1 for item, _ in report.drops if "line" in item or "#" in item)
        if box_rows != boxes + box_drops + of_dropped_images:
            return (
                f"{box_rows} box rows but {boxes} boxes + {box_drops} box drops + {of_dropped_images} rows of "
                "dropped images"
            )
    return ""


def classify(
    target: Target,
    root: Path,
    data: bytes,
    row_specific: bool,
    baseline: dict | None,
    limit_s: float = TIME_LIMIT_S,
    adapter: Callable[[Path], tuple[dict, Any]] | None = None,
    retry_slow: bool = True,
) -> tuple[str, str, int]:
    """Write ``data`` as ``target``'s file under ``root``, run the adapter, and classify.

    Returns:
        ``(outcome, detail, drops)``: ``drops`` is the number of drops the report counts (-1 without a datalist).

    ``adapter`` defaults to the function ``monai-xattn datalist <layout>`` calls (another one tests this function).
    A run that finishes but over ``limit_s`` is run once more (``retry_slow``) and counts as slow only if it is slow
    again: an adapter that scales badly is slow every time, while a stall of the machine (measured once in CI: a
    0.1 s case took 10.2 s) is not.
    """
    from monai_xattn.data.datalist import validate_datalist
    from monai_xattn.data.datalist_cli import get_adapter

    adapter = get_adapter(target.layout) if adapter is None else adapter
    path = root / target.file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    start = time.perf_counter()
    try:
        datalist, report = adapter(root)
    except _Hang:
        return "other", f"still running after {limit_s:.0f} s", -1
    except ValueError as exc:  # DatalistError is a ValueError
        message = str(exc)
        if path.name not in message:
            return "other", f"{type(exc).__name__} naming no file: {message[:300]}", -1
        if row_specific and not LINE.search(message) and "column" not in message:
            return "other", f"{type(exc).__name__} naming no line: {message[:300]}", -1
        return "clear error", f"{type(exc).__name__}: {message[:300]}", -1
    except Exception as exc:  # noqa: BLE001 - every other exception type is what this test exists to catch
        return "other", f"{type(exc).__name__}: {str(exc)[:300]}", -1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if time.perf_counter() - start > limit_s:
        if retry_slow:
            return classify(target, root, data, row_specific, baseline, limit_s, adapter, retry_slow=False)
        return "other", f"took {time.perf_counter() - start:.1f} s", -1
    try:
        validate_datalist(datalist, f"{target.layout} datalist")
    except ValueError as exc:
        return "other", f"the datalist breaks the schema: {exc}", -1
    lost = silent_losses(target, data, datalist, report, baseline)
    if lost:
        return "other", lost, -1
    return "datalist", f"{report.images} images, {len(report.drops)} drops", len(report.drops)


Row = tuple[str, str, str, bool]
"""One damaged version's ``(mutation, outcome, detail, the report counts more drops than for the intact file)``."""


def run_fuzz(phantoms: dict[str, Path], folder: Path) -> dict[str, list[Row]]:
    """Every damaged version of every target through its adapter: ``{"<layout>/<file>": [Row, ...]}``."""
    from monai_xattn.data.datalist_cli import get_adapter

    outcomes: dict[str, list[Row]] = {}
    for layout in LAYOUTS:
        root = folder / layout
        shutil.copytree(phantoms[layout], root)
        baseline, baseline_report = get_adapter(layout)(root)
        n_dropped = len(baseline_report.drops)
        for target in (t for t in TARGETS if t.layout == layout):
            path = root / target.file
            original = path.read_bytes()
            rows = []
            for name, data, row_specific in mutations_of(target, original):
                outcome, detail, drops = classify(target, root, data, row_specific, baseline)
                rows.append((name, outcome, detail, drops > n_dropped))
            path.write_bytes(original)
            outcomes[f"{layout}/{target.file}"] = rows
    return outcomes


def build_phantoms(folder: Path) -> dict[str, Path]:
    from monai_xattn.data.phantom import generate

    phantoms = {}
    for layout in LAYOUTS:
        generate(folder / layout, layout=layout, workers=1, **PHANTOM)
        phantoms[layout] = folder / layout
    return phantoms


@pytest.fixture(scope="session")
def csv_outcomes(tmp_path_factory) -> dict[str, list[Row]]:
    """The outcomes of the whole CSV fuzz run, once per session."""
    phantoms = build_phantoms(tmp_path_factory.mktemp("fuzz_csv_phantoms"))
    return run_fuzz(phantoms, tmp_path_factory.mktemp("fuzz_csv"))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_adapter_gives_a_datalist_or_a_clear_error(layout, csv_outcomes):
    others = []
    for target in (t for t in TARGETS if t.layout == layout):
        rows = csv_outcomes[f"{layout}/{target.file}"]
        counts = Counter(outcome for _, outcome, _, _ in rows)
        print(
            f"{layout}/{target.file}: {len(rows)} damaged versions: " + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES)
        )
        others += [f"{target.file}, {name}: {detail}" for name, outcome, detail, _ in rows if outcome == "other"]
    assert not others, f"{len(others)} unclear outcomes:\n" + "\n".join(others[:20])


def test_mutations_are_seeded_and_damaging():
    original = b"patientId,x,y,width,height,Target\na,,,,,0\nb,1.0,2.0,3.0,4.0,1\nc,,,,,0\n"
    target = Target("rsna", "stage_2_train_labels.csv")
    first, second = mutations_of(target, original), mutations_of(target, original)
    assert first == second
    assert {name for name, _, _ in first} == {name for name, _, _ in MUTATIONS}  # every mutation takes its turn
    assert sum(data != original for _, data, _ in first) >= 0.8 * len(first)
    packed = gzip.compress(original, mtime=0)
    gz = mutations_of(Target("mimic-cxr", "x.csv.gz"), packed)
    assert {name for name, _, _ in GZIP_MUTATIONS} <= {name for name, _, _ in gz}


def test_classifier_catches_what_is_not_clear(tmp_path):
    """Each kind of ``other`` is recognised; a clear error and an honest datalist are not flagged."""
    from monai_xattn.data.datalist import AdapterReport, DatalistError

    target = Target("rsna", "labels.csv", ids="patientId")
    data = b"patientId,Target\na,0\nb,0\n"
    entry = {"image": "a.dcm", "image_id": "a"}

    def run(adapter, row_specific=True, limit_s=TIME_LIMIT_S):
        return classify(target, tmp_path, data, row_specific, None, limit_s, adapter)[0]

    def raises(exc):
        def adapter(root):
            raise exc

        return adapter

    def returns(entries, drops=()):
        report = AdapterReport("rsna")
        for item in drops:
            report.drop(item, "image file missing")
        return lambda root: ({"training": entries}, report)

    assert run(raises(KeyError("Target"))) == "other"
    assert run(raises(ValueError("could not convert string to float: 'x'"))) == "other"  # names no file
    assert run(raises(DatalistError(f"{tmp_path / 'labels.csv'}: Target must be 0 or 1"))) == "other"  # no line
    assert run(raises(DatalistError(f"{tmp_path / 'labels.csv'}: line 3: Target must be 0 or 1"))) == "clear error"
    assert run(raises(DatalistError(f"{tmp_path / 'labels.csv'}: the file is empty")), row_specific=False) == (
        "clear error"
    )
    assert run(lambda root: time.sleep(3), limit_s=0.2) == "other"

    assert run(returns([entry])) == "other"  # row b vanished without a drop
    assert run(returns([entry], drops=["b"])) == "datalist"
    assert run(returns([{"image_id": "a"}], drops=["b"])) == "other"  # breaks the schema: no image


def test_a_slow_run_counts_only_if_it_is_slow_again(tmp_path, monkeypatch):
    """A run that ends over the limit (the alarm held off, as C code can) is retried once; slow twice is slow."""
    from monai_xattn.data.datalist import AdapterReport

    target = Target("rsna", "labels.csv", ids="patientId")
    monkeypatch.setattr(signal, "setitimer", lambda *args: None)  # what a stall inside C code amounts to
    calls = []

    def slow(times):
        def adapter(root):
            calls.append(1)
            if len(calls) <= times:
                time.sleep(0.3)
            return {"training": [{"image": "a.dcm", "image_id": "a"}]}, AdapterReport("rsna")

        return adapter

    data = b"patientId,Target\na,0\n"
    assert classify(target, tmp_path, data, True, None, 0.2, slow(1))[0] != "other" and len(calls) == 2
    calls.clear()
    outcome, detail, _ = classify(target, tmp_path, data, True, None, 0.2, slow(2))
    assert outcome == "other" and detail.startswith("took") and len(calls) == 2


def markdown_table(outcomes: dict[str, list[Row]]) -> str:
    """The docs table: outcome counts per adapter and damaged file."""
    rows = [
        "| adapter (`monai-xattn datalist`) | damaged file | versions | datalist | of which with counted drops "
        "| clear error | other |",
        "|---|---|---|---|---|---|---|",
    ]
    totals: Counter = Counter()
    for target in TARGETS:
        found = outcomes[f"{target.layout}/{target.file}"]
        counts = Counter(outcome for _, outcome, _, _ in found)
        counts["drops"] = sum(more for _, _, _, more in found)
        totals.update(counts)
        note = "" if target.read else " (not read by the adapter)"
        cells = [counts["datalist"], counts["drops"], counts["clear error"], counts["other"]]
        rows.append(
            f"| `{target.layout}` | `{target.file}`{note} | {len(found)} | " + " | ".join(map(str, cells)) + " |"
        )
    rows.append("")
    rows.append(
        f"{sum(totals[o] for o in OUTCOMES)} runs (seed {SEED}, {N_PER_FILE} per file): {totals['datalist']} datalists "
        f"({totals['drops']} with counted drops), {totals['clear error']} clear errors, {totals['other']} other."
    )
    return "\n".join(rows)


def test_docs_fuzz_table_csv_matches_the_outcomes(csv_outcomes, reliability_docs_block):
    block = reliability_docs_block(START, END)
    assert block == markdown_table(csv_outcomes).strip(), (
        "docs/reliability.md is out of date: paste the output of `python tests/reliability/test_fuzz_csv.py`"
    )


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        found = run_fuzz(build_phantoms(Path(tmp) / "phantoms"), Path(tmp) / "work")
    sys.stdout.write(markdown_table(found) + "\n")
