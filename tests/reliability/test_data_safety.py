"""Data safety: no command writes into a dataset folder; generators refuse to overwrite folders they did not write."""

from __future__ import annotations

import contextlib
import hashlib
import io
import shutil
from pathlib import Path

import pytest

from monai_xattn.cli import main


def _snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file and folder under ``root``: ``relative path -> (size, mtime_ns, sha256)`` ('' for folders)."""
    out = {}
    for p in sorted(root.rglob("*")):
        stat = p.stat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[p.relative_to(root).as_posix()] = (stat.st_size if p.is_file() else 0, stat.st_mtime_ns, digest)
    return out


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(list(argv))
    return rc, out.getvalue()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A small MIMIC-CXR phantom (DICOMs, reports, CSVs) that every test here treats as a user's dataset."""
    root = tmp_path_factory.mktemp("ds") / "mimic"
    rc, text = _cli(
        "phantom", "--layout", "mimic-cxr", "--out", str(root), "--n", "6", "--size", "64", "--workers", "1"
    )
    assert rc == 0, text
    return root


def test_datalist_and_word2vec_and_loading_leave_the_dataset_untouched(dataset, tmp_path):
    before = _snapshot(dataset)
    rc, text = _cli("datalist", "mimic-cxr", "--root", str(dataset), "--output", str(tmp_path / "dl.json"))
    assert rc == 0, text
    rc, text = _cli(
        "word2vec",
        "--datalist",
        str(tmp_path / "dl.json"),
        "--root",
        str(dataset),
        "--out",
        str(tmp_path / "w2v.txt"),
        "--vector-size",
        "8",
        "--epochs",
        "1",
    )
    assert rc == 0, text

    from monai_xattn.data import load_datalist
    from monai_xattn.transforms import LoadCXRd, LoadReportd

    entries = load_datalist(tmp_path / "dl.json", dataset)["training"]
    for entry in entries[:4]:
        LoadReportd()(LoadCXRd("image")(entry))
    assert _snapshot(dataset) == before
    assert {p.name for p in tmp_path.iterdir()} == {"dl.json", "w2v.txt"}


@pytest.mark.parametrize("inside", ["datalist.json", "sub/out.json"])
def test_datalist_refuses_an_output_inside_the_dataset(dataset, inside):
    before = _snapshot(dataset)
    target = dataset / inside
    rc, text = _cli("datalist", "mimic-cxr", "--root", str(dataset), "--output", str(target))
    assert rc == 1 and "refusing to write inside the dataset folder" in text and str(target) in text
    assert _snapshot(dataset) == before


def test_word2vec_refuses_an_output_inside_the_dataset(dataset, tmp_path):
    rc, text = _cli("datalist", "mimic-cxr", "--root", str(dataset), "--output", str(tmp_path / "dl.json"))
    assert rc == 0, text
    before = _snapshot(dataset)
    target = dataset / "vectors" / "w2v.txt"
    rc, text = _cli("word2vec", "--datalist", str(tmp_path / "dl.json"), "--root", str(dataset), "--out", str(target))
    assert rc == 1 and "refusing to write inside the dataset folder" in text and str(target) in text
    assert _snapshot(dataset) == before


def test_phantom_refuses_a_folder_it_did_not_write(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("a user's file")
    before = _snapshot(folder)
    for extra in ([], ["--overwrite"]):
        rc, text = _cli("phantom", "--layout", "rsna", "--out", str(folder), "--n", "2", "--size", "64", *extra)
        assert rc == 2 and str(folder) in text and ("not empty" in text), text
        assert _snapshot(folder) == before
    assert "not written by the phantom" in text  # the --overwrite refusal says why


def test_phantom_overwrites_its_own_folder_only_when_asked(tmp_path):
    folder = tmp_path / "ph"
    argv = ("phantom", "--layout", "rsna", "--out", str(folder), "--n", "2", "--size", "64", "--workers", "1")
    assert _cli(*argv)[0] == 0
    before = _snapshot(folder)
    rc, text = _cli(*argv)
    assert rc == 2 and "--overwrite" in text and _snapshot(folder) == before
    rc, text = _cli(*argv, "--overwrite")
    assert rc == 0, text
    assert set(_snapshot(folder)) == set(before)  # the same phantom again, nothing else


def test_demo_refuses_a_folder_that_holds_no_earlier_demo(tmp_path, dataset):
    folder = tmp_path / "busy"
    shutil.copytree(dataset, folder)
    before = _snapshot(folder)
    with pytest.raises(FileExistsError, match=r"busy is not empty and holds no earlier demo run"):
        main(["demo", "--out", str(folder), "--profile", "tiny"])
    assert _snapshot(folder) == before
