"""The code base stays lint-clean and formatted as `make lint` checks it: ruff's rules and ruff's formatter over
the package, the tests and the benchmarks (settings in pyproject.toml)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TREES = ["monai_xattn", "tests", "benchmarks", "setup.py"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["lint", "format"])
def test_ruff(command):
    done = subprocess.run([sys.executable, "-m", "ruff", *command, *TREES], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _table_ends(tree) -> set[int]:
    """Last lines of module- and class-level assignments of a literal tuple, list or dict (tables of constants)."""
    bodies = [tree.body] + [node.body for node in tree.body if isinstance(node, ast.ClassDef)]
    return {
        node.end_lineno
        for body in bodies
        for node in body
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(node.value, (ast.Tuple, ast.List, ast.Dict))
    }


def test_formatter_is_skipped_only_for_tables_of_constants():
    """``# fmt: skip`` keeps a hand-aligned table of constants (CSV headers in their file's column order, trigger
    lists, per-level settings side by side) readable; code itself is laid out by the formatter."""
    misplaced = []
    for tree_name in TREES:
        for path in sorted((ROOT / tree_name).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if "# fmt: skip" not in text:
                continue
            allowed = _table_ends(ast.parse(text))
            lines = [k for k, line in enumerate(text.splitlines(), 1) if line.rstrip().endswith("# fmt: skip")]
            misplaced += [f"{path.relative_to(ROOT)}:{k}" for k in lines if k not in allowed]
    assert not misplaced, misplaced
