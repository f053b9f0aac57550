"""The bad-input corpus: one generated bad input per case, fed through the entry point a user hits.

Each case of :data:`CASES` names its input, the public entry point, the behaviour it must get and the words
the message must hold (the file or sample, and the reason). ``docs/reliability.md`` lists the same cases; a
test below checks that the two agree, and ``python tests/reliability/test_bad_inputs.py`` prints the table.

Behaviours:

- ``error``: an exception (or a CLI exit status != 0) whose message names the file/sample and the reason;
- ``skip``: the item is left out, counted and named in the printed adapter report, and the run goes on;
- ``result``: the input is legal and gets a defined, checked result (no error).
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from pydicom.encaps import encapsulate

from monai_xattn.data.dicom_writer import write_cxr_dicom

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
BEHAVIOURS = ("error", "skip", "result")
UNCLEAR = ("TypeError", "KeyError", "AttributeError", "IndexError", "AssertionError", "RuntimeError")


@dataclass(frozen=True)
class Outcome:
    """What an entry point did: ``error`` (exception text or CLI output with status != 0) or ``ok`` (its output)."""

    kind: str
    text: str


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        name: case id (a pytest id and a row of the docs table).
        entry: the public entry point the case goes through, as a user calls it.
        behaviour: ``error``, ``skip`` or ``result`` (see the module docstring).
        says: what the message names (file or sample; reason), for the docs table.
        build: ``build(folder) -> (run, mentions)``: writes the input under ``folder``; ``run()`` feeds it to the
            entry point and returns its printed output; ``mentions`` must all appear in the message.
        check: for ``result`` cases, a further assertion on the output text.
    """

    name: str
    entry: str
    behaviour: str
    says: str
    build: Callable[[Path], tuple[Callable[[], str], tuple[str, ...]]]
    check: Callable[[str], None] | None = field(default=None)


def _cli(*argv: str) -> str:
    """Run ``monai-xattn`` in-process; raise ``SystemExit`` carrying its output when it fails."""
    from monai_xattn.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    text = out.getvalue() + err.getvalue()
    if rc != 0:
        raise SystemExit(f"exit status {rc}\n{text}")
    return text


def _load_image(path: Path) -> str:
    from monai_xattn.transforms import LoadCXRd

    image = LoadCXRd("image")({"image": str(path)})["image"]
    return f"loaded {tuple(image.shape)}"


def _dicom(folder: Path, name: str, **kwargs) -> Path:
    stored = (np.arange(24 * 20).reshape(24, 20) * 8 % 4096).astype(np.uint16)
    return write_cxr_dicom(folder / name, stored, **kwargs)


def _edit_dicom(path: Path, edit: Callable[[pydicom.Dataset], None]) -> Path:
    ds = pydicom.dcmread(path)
    edit(ds)
    ds.save_as(path)
    return path


def _phantom(kind: str, folder: Path) -> Path:
    """A private copy of the session's small phantom of layout ``kind`` (see the ``phantoms`` fixture)."""
    root = folder / kind
    shutil.copytree(PHANTOMS[kind], root)
    return root


PHANTOMS: dict[str, Path] = {}  # filled by the session fixture


# image files ----------------------------------------------------------------------------------------------------
def truncated_dicom(folder):
    path = _dicom(folder, "truncated.dcm")
    path.write_bytes(path.read_bytes()[:-200])
    return lambda: _load_image(path), ("CXRLoadError", "truncated.dcm", "truncated")


def dicom_without_pixel_data(folder):
    path = _edit_dicom(_dicom(folder, "no_pixels.dcm"), lambda ds: delattr(ds, "PixelData"))
    return lambda: _load_image(path), ("CXRLoadError", "no_pixels.dcm", "no PixelData")


def unsupported_transfer_syntax(folder):
    def to_mpeg2(ds):
        # MPEG-2 video: pydicom has no decoder for it at all, whatever plugins are installed
        ds.PixelData = encapsulate([ds.PixelData])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML

    path = _edit_dicom(_dicom(folder, "mpeg2.dcm"), to_mpeg2)
    return lambda: _load_image(path), ("CXRLoadError", "mpeg2.dcm", "no decoder for transfer syntax", "MPEG2")


def missing_decoder_plugin(folder):
    # JPEG-LS decodes with pylibjpeg-libjpeg here; unregister that plugin for the call to get a bare install
    def to_jpeg_ls(ds):
        ds.PixelData = encapsulate([ds.PixelData])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLSLossless

    path = _edit_dicom(_dicom(folder, "jpegls.dcm"), to_jpeg_ls)

    def run():
        from pydicom.pixels import get_decoder

        decoder = get_decoder(pydicom.uid.JPEGLSLossless)
        decoder.remove_plugin("pylibjpeg")
        try:
            return _load_image(path)
        finally:
            decoder.add_plugin("pylibjpeg", ("pydicom.pixels.decoders.pylibjpeg", "_decode_frame"))

    return run, ("CXRLoadError", "jpegls.dcm", "no installed decoder", "install one of", "pyjpegls")


def wrong_bits_stored(folder):
    def bits(ds):
        ds.BitsStored, ds.HighBit = 20, 19  # more than the 16 bits allocated

    path = _edit_dicom(_dicom(folder, "bits.dcm"), bits)
    return lambda: _load_image(path), ("CXRLoadError", "bits.dcm", "Bits Stored", "20")


def rgb_dicom(folder):
    stored = np.zeros((16, 12, 3), np.uint8)
    path = write_cxr_dicom(folder / "rgb.dcm", stored, photometric="RGB", bits_stored=8)
    return lambda: _load_image(path), ("CXRLoadError", "rgb.dcm", "SamplesPerPixel=3", "MONOCHROME")


def zero_size_dicom(folder):
    def empty(ds):
        ds.Rows, ds.PixelData = 0, b""

    path = _edit_dicom(_dicom(folder, "zero.dcm"), empty)
    return lambda: _load_image(path), ("CXRLoadError", "zero.dcm", "zero-size image")


def png_that_is_not_a_png(folder):
    path = folder / "not_a.png"
    path.write_text("<html>404 Not Found</html>")
    return lambda: _load_image(path), ("CXRLoadError", "not_a.png", "neither DICOM nor an image format")


def truncated_png(folder):
    from PIL import Image

    path = folder / "cut.png"
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 251).convert("L").save(path)
    path.write_bytes(path.read_bytes()[:-40])
    return lambda: _load_image(path), ("CXRLoadError", "cut.png", "corrupt or truncated")


def missing_image_file(folder):
    path = folder / "gone.dcm"
    return lambda: _load_image(path), ("CXRLoadError", "gone.dcm", "no such file")


def nan_pixels(folder):
    from PIL import Image

    path = folder / "nan.tif"
    values = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    values[2, 3] = np.nan
    Image.fromarray(values).save(path)
    return lambda: _load_image(path), ("CXRLoadError", "nan.tif", "NaN or Inf")


def inf_pixels(folder):
    from PIL import Image

    path = folder / "inf.tif"
    values = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    values[0, 0] = np.inf
    Image.fromarray(values).save(path)
    return lambda: _load_image(path), ("CXRLoadError", "inf.tif", "NaN or Inf")


# dataset folders (through `monai-xattn datalist`) ------------------------------------------------------------------
def missing_image_in_csv(folder):
    root = _phantom("rsna", folder)
    victim = sorted((root / "stage_2_train_images").iterdir())[0]
    victim.unlink()
    out = folder / "rsna.json"

    def run():
        text = _cli("datalist", "rsna", "--root", str(root), "--output", str(out))
        listed = {e["image_id"] for split in json.loads(out.read_text()).values() for e in split}
        return text + f"\nlisted {len(listed)}, missing one listed: {victim.stem in listed}"

    return run, ("dropped 1", "1 x image file missing", victim.stem, "missing one listed: False")


def duplicate_ids(folder):
    root = _phantom("siim", folder)
    first = sorted((root / "dicom-images-train").rglob("*.dcm"))[0]
    copy = root / "dicom-images-train" / "extra_study" / "extra_series" / first.name
    copy.parent.mkdir(parents=True)
    shutil.copy(first, copy)
    run = lambda: _cli("datalist", "siim", "--root", str(root), "--output", str(folder / "siim.json"))  # noqa: E731
    return run, ("exit status 1", "duplicate DICOM file name", first.stem)


def duplicate_csv_rows(folder):
    root = _phantom("mimic-cxr", folder)
    meta = next(root.glob("mimic-cxr-2.0.0-metadata.csv*"))
    import pandas as pd

    df = pd.read_csv(meta, dtype=str)
    df = pd.concat([df, df.iloc[[0]]])
    df.to_csv(meta, index=False)
    run = lambda: _cli("datalist", "mimic-cxr", "--root", str(root), "--output", str(folder / "m.json"))  # noqa: E731
    return run, ("exit status 1", meta.name, "duplicate dicom_id", df["dicom_id"].iloc[0])


def box_outside_image_csv(folder):
    root = _phantom("rsna", folder)
    csv = root / "stage_2_train_labels.csv"
    lines = csv.read_text().splitlines()
    patient = lines[1].split(",")[0]
    lines.append(f"{patient},50,10,40,20,1")  # x + w = 90 > 64
    # the patient's other rows must agree on Target (the adapter checks it): make them all positive boxes
    lines = [ln if not ln.startswith(patient + ",,") else f"{patient},5,5,10,10,1" for ln in lines]
    csv.write_text("\n".join(lines) + "\n")
    run = lambda: _cli("datalist", "rsna", "--root", str(root), "--output", str(folder / "r.json"))  # noqa: E731
    return run, ("dropped 1", "box outside the 64x64 image", patient)


def rle_longer_than_image_csv(folder):
    root = _phantom("siim", folder)
    csv = root / "train-rle.csv"
    lines = csv.read_text().splitlines()
    image_id = lines[-1].split(",")[0]
    lines = [ln for ln in lines if not ln.startswith(image_id)] + [f"{image_id}, 4000 200"]  # 64 * 64 = 4096
    csv.write_text("\n".join(lines) + "\n")
    out = folder / "s.json"
    run = lambda: _cli("datalist", "siim", "--root", str(root), "--output", str(out), "--set", "rle_mode=relative")  # noqa: E731
    return run, ("dropped 1", "bad RLE", "runs to pixel 4200 but the image has 4096 pixels", image_id)


def config_override_wrong_type(folder):
    root = _phantom("rsna", folder)
    out = folder / "o.json"
    run = lambda: _cli("datalist", "rsna", "--root", str(root), "--output", str(out), "--set", 'read_headers="no"')  # noqa: E731
    return run, ("exit status 1", "read_headers='no'", "(str)", "bool")


def config_override_unknown_option(folder):
    root = _phantom("rsna", folder)
    out = folder / "o.json"
    run = lambda: _cli("datalist", "rsna", "--root", str(root), "--output", str(out), "--set", "viewz=PA")  # noqa: E731
    return run, ("exit status 1", "no option(s) ['viewz']")


# pipeline inputs (datalist JSON, transforms) ----------------------------------------------------------------------
def _datalist(folder: Path, name: str, content: str | dict) -> Callable[[], str]:
    from monai_xattn.data import load_datalist

    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return lambda: f"{len(load_datalist(path, folder)['training'])} entries"


def datalist_wrong_schema(folder):
    run = _datalist(folder, "wrong_keys.json", {"train": [{"image": "a.dcm"}]})
    return run, ("DatalistError", "wrong_keys.json", "split keys must be among", "'train'")


def datalist_entry_wrong_type(folder):
    run = _datalist(folder, "entry.json", {"training": [{"image": "a.dcm", "labels": {"Pneumonia": "yes"}}]})
    return run, ("DatalistError", "entry.json", "training[0] (a.dcm)", "'labels' must map names to -1, 0 or 1")


def datalist_not_json(folder):
    run = _datalist(folder, "broken.json", '{"training": [{"image": "a.dcm"},]}')
    return run, ("DatalistError", "broken.json", "not valid JSON")


def box_x2_less_than_x1(folder):
    entry = {"image": "b.dcm", "image_size": [64, 64], "boxes": [[40, 10, 20, 30]], "box_labels": ["Pneumonia"]}
    run = _datalist(folder, "inverted.json", {"training": [entry]})
    return run, ("DatalistError", "inverted.json", "training[0] (b.dcm)", "x0 <= x1")


def box_outside_image(folder):
    entry = {"image": "c.dcm", "image_size": [64, 64], "boxes": [[10, 10, 80, 30]], "box_labels": ["Pneumonia"]}
    run = _datalist(folder, "outside.json", {"training": [entry]})
    return run, ("DatalistError", "outside.json", "training[0] (c.dcm)", "reach outside", "[64, 64]")


def box_not_finite(folder):
    text = '{"training": [{"image": "d.dcm", "boxes": [[NaN, 1, 5, 6]], "box_labels": ["Pneumonia"]}]}'
    run = _datalist(folder, "nan_box.json", text)
    return run, ("DatalistError", "nan_box.json", "training[0] (d.dcm)", "finite")


def rle_longer_than_image(folder):
    from monai_xattn.transforms import RLEToMaskd

    sample = {"image": torch.zeros(1, 8, 8), "rle": ["10 60"], "image_id": "1.2.3.rle"}
    return lambda: str(RLEToMaskd("rle")(sample)["label"].shape), ("1.2.3.rle", "runs to pixel 70", "64 pixels")


def _report(folder: Path, name: str, data: bytes) -> Callable[[], str]:
    from monai_xattn.transforms import LoadReportd

    (folder / name).write_bytes(data)
    return lambda: LoadReportd(base_dir=folder)({"report": name})["report_text"]


def empty_report(folder):
    return _report(folder, "empty.txt", b" \n\n  \n"), ("ValueError", "empty.txt", "the report is empty")


def non_utf8_report(folder):
    data = "FINDINGS: Opacit\u00e9 in the right lower lobe.".encode("latin-1")
    return _report(folder, "latin1.txt", data), ("ValueError", "latin1.txt", "not UTF-8", "errors='replace'")


def negated_only_report(folder):
    from monai_xattn.transforms import ExtractAttributesd

    text = "FINDINGS: No focal consolidation. No pleural effusion.\nIMPRESSION: No pneumonia. No opacity."

    def run():
        extract = ExtractAttributesd()
        negated = extract({"report_text": text})
        affirmed = extract({"report_text": text.replace("No ", "")})
        return (
            f"negated: {negated['attribute_names']} sum {float(negated['attributes'].sum())}; "
            f"affirmed: {affirmed['attribute_names']}"
        )

    return run, ("negated: [] sum 0.0",)


def _affirmed_names_found(text: str) -> None:
    # the same sentences without "No" must find attributes, or an all-zero result proves nothing
    assert "consolidation" in text.split("affirmed:")[1], text


CASES: tuple[Case, ...] = (
    Case(
        "truncated DICOM",
        "LoadCXRd",
        "error",
        "file; PixelData holds N bytes, M expected: the file is truncated",
        truncated_dicom,
    ),
    Case("DICOM without PixelData", "LoadCXRd", "error", "file; no PixelData element", dicom_without_pixel_data),
    Case(
        "transfer syntax pydicom cannot decode (MPEG-2)",
        "LoadCXRd",
        "error",
        "file; pydicom has no decoder for transfer syntax MPEG2 ...",
        unsupported_transfer_syntax,
    ),
    Case(
        "transfer syntax whose decoder plugin is not installed",
        "LoadCXRd",
        "error",
        "file; no installed decoder for JPEG-LS; install one of: gdcm, pyjpegls",
        missing_decoder_plugin,
    ),
    Case(
        "wrong BitsStored (> BitsAllocated)",
        "LoadCXRd",
        "error",
        "file; 'Bits Stored' value of '20' is invalid",
        wrong_bits_stored,
    ),
    Case("RGB DICOM", "LoadCXRd", "error", "file; SamplesPerPixel=3 ...: only MONOCHROME1/2", rgb_dicom),
    Case("zero-size image", "LoadCXRd", "error", "file; zero-size image (Rows=0, ...)", zero_size_dicom),
    Case(
        "PNG that is not a PNG",
        "LoadCXRd",
        "error",
        "file; neither DICOM nor an image format Pillow recognises",
        png_that_is_not_a_png,
    ),
    Case("truncated PNG", "LoadCXRd", "error", "file; corrupt or truncated image", truncated_png),
    Case("missing image file", "LoadCXRd", "error", "file; no such file", missing_image_file),
    Case("NaN pixel values (float TIFF)", "LoadCXRd", "error", "file; float image contains NaN or Inf", nan_pixels),
    Case("Inf pixel values (float TIFF)", "LoadCXRd", "error", "file; float image contains NaN or Inf", inf_pixels),
    Case(
        "missing image referenced by a CSV",
        "monai-xattn datalist rsna",
        "skip",
        "report: `1 x image file missing (e.g. <patientId>)`; entry not in the datalist",
        missing_image_in_csv,
    ),
    Case(
        "duplicate ids (two DICOMs with one SOPInstanceUID)",
        "monai-xattn datalist siim",
        "error",
        "exit 1; folder; duplicate DICOM file name <id> on lines ...",
        duplicate_ids,
    ),
    Case(
        "duplicate ids (repeated CSV row)",
        "monai-xattn datalist mimic-cxr",
        "error",
        "exit 1; CSV; duplicate dicom_id <id> on lines [...]",
        duplicate_csv_rows,
    ),
    Case(
        "box outside the image in a dataset CSV",
        "monai-xattn datalist rsna",
        "skip",
        "report: `1 x box outside the 64x64 image (e.g. <patientId> (line n))`",
        box_outside_image_csv,
    ),
    Case(
        "RLE longer than the image in a dataset CSV",
        "monai-xattn datalist siim",
        "skip",
        "report: `1 x bad RLE: ... runs to pixel 4200 but the image has 4096 pixels`",
        rle_longer_than_image_csv,
    ),
    Case(
        "config override with a wrong type",
        "monai-xattn datalist --set",
        "error",
        "exit 1; option read_headers='no' (str) does not fit read_headers: bool",
        config_override_wrong_type,
    ),
    Case(
        "config override naming no option",
        "monai-xattn datalist --set",
        "error",
        "exit 1; rsna has no option(s) ['viewz']",
        config_override_unknown_option,
    ),
    Case(
        "datalist JSON with wrong split keys",
        "load_datalist",
        "error",
        "file; split keys must be among [...]",
        datalist_wrong_schema,
    ),
    Case(
        "datalist entry with a wrongly typed field",
        "load_datalist",
        "error",
        "file; training[0] (image); 'labels' must map names to -1, 0 or 1",
        datalist_entry_wrong_type,
    ),
    Case(
        "datalist file that is not JSON",
        "load_datalist",
        "error",
        "file; not valid JSON (line, column)",
        datalist_not_json,
    ),
    Case(
        "box with x2 < x1",
        "load_datalist",
        "error",
        "file; training[0] (image); x0 <= x1 and y0 <= y1",
        box_x2_less_than_x1,
    ),
    Case(
        "box outside the image",
        "load_datalist",
        "error",
        "file; training[0] (image); boxes [...] reach outside the [W, H] image",
        box_outside_image,
    ),
    Case(
        "box with a NaN coordinate",
        "load_datalist",
        "error",
        "file; training[0] (image); coordinates must be finite",
        box_not_finite,
    ),
    Case(
        "RLE longer than the image",
        "RLEToMaskd",
        "error",
        "sample id; key; runs to pixel N but the image has M pixels",
        rle_longer_than_image,
    ),
    Case("empty report", "LoadReportd", "error", "file; the report is empty", empty_report),
    Case(
        "non-UTF-8 report", "LoadReportd", "error", "file; not UTF-8 (byte n); pass errors='replace'", non_utf8_report
    ),
    Case(
        "report with only negated findings",
        "ExtractAttributesd",
        "result",
        "all-zero attribute vector, no names; the affirmed text finds them",
        negated_only_report,
        _affirmed_names_found,
    ),
)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> dict[str, tuple[Callable[[], str], tuple[str, ...]]]:
    """Every case's input, written once under a session temporary folder: ``name -> (run, mentions)``."""
    from monai_xattn.data.phantom import generate

    base = tmp_path_factory.mktemp("phantoms")
    for kind in ("rsna", "siim", "mimic-cxr"):
        generate(base / kind, layout=kind, n=6, size=64, seed=0, workers=1)
        PHANTOMS[kind] = base / kind
    built = {}
    for k, case in enumerate(CASES):
        folder = tmp_path_factory.mktemp(f"case{k:02d}")
        built[case.name] = case.build(folder)
    return built


def run_case(run: Callable[[], str]) -> Outcome:
    """Run one entry point; an exception or a failing CLI becomes an ``error`` outcome with its message."""
    try:
        return Outcome("ok", run())
    except SystemExit as exc:  # _cli's failure: its output
        return Outcome("error", str(exc))
    except Exception as exc:  # noqa: BLE001 - every exception type is a possible outcome here
        return Outcome("error", f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, corpus):
    run, mentions = corpus[case.name]
    outcome = run_case(run)
    assert outcome.kind == ("error" if case.behaviour == "error" else "ok"), outcome.text
    # a bare Python error escaping from deep inside is the unclear answer this corpus exists to catch
    assert not outcome.text.startswith(UNCLEAR), outcome.text
    missing = [m for m in mentions if m not in outcome.text]
    assert not missing, f"message lacks {missing}:\n{outcome.text}"
    if case.check is not None:
        case.check(outcome.text)


def test_registry_is_well_formed():
    assert len({c.name for c in CASES}) == len(CASES), "case names must be unique (they are test ids and doc rows)"
    assert {c.behaviour for c in CASES} <= set(BEHAVIOURS)


def markdown_table() -> str:
    """The docs table of the cases: case, entry point, behaviour, test."""
    rows = ["| # | bad input | entry point | behaviour | the message names | test |", "|---|---|---|---|---|---|"]
    for k, case in enumerate(CASES, 1):
        test = f"`test_case[{case.name}]`"
        rows.append(f"| {k} | {case.name} | `{case.entry}` | {case.behaviour} | {case.says} | {test} |")
    counts = {b: sum(c.behaviour == b for c in CASES) for b in BEHAVIOURS}
    rows.append("")
    rows.append(
        f"{len(CASES)} cases: {counts['error']} clear errors, {counts['skip']} counted and reported skips, "
        f"{counts['result']} with a defined result; 0 unclear."
    )
    return "\n".join(rows)


def test_docs_table_lists_exactly_the_cases():
    text = DOC.read_text()
    start = text.index("<!-- bad-input table: generated -->")
    end = text.index("<!-- end of bad-input table -->")
    assert text[start:end].split("\n", 1)[1].strip() == markdown_table().strip(), (
        "docs/reliability.md is out of date: paste the output of `python tests/reliability/test_bad_inputs.py`"
    )


def test_docs_name_every_reliability_test():
    """Each other test of ``tests/reliability`` is a row of the docs, each row names a test that exists, and the
    per-file counts the docs give are right."""
    text = DOC.read_text()
    named = set(re.findall(r"`(test_\w+\.py)::(test_\w+)`", text))
    existing = {
        (path.name, node.name)
        for path in Path(__file__).parent.glob("test_*.py")
        if path.name != Path(__file__).name
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }
    assert named == existing, f"only in docs: {named - existing}; only in tests: {existing - named}"
    for name, count in re.findall(r"(test_\w+\.py) (\d+)", text):
        assert int(count) == sum(f == name for f, _ in existing), name


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
