"""The package's layers point down, and its parts import each other without cycles (``docs/architecture.md``).

Every module of ``monai_xattn`` is parsed with :mod:`ast`; every ``import`` / ``from ... import`` counts, at module
level, inside functions (lazy imports) and under ``TYPE_CHECKING``, as does a string constant that names one of the
package's modules exactly (the CLI's command registry, ``"module:function"`` tables). A *part* is a top-level
subpackage (``data``, ``networks``, ...) or top-level module (``demo``, ``cli``, ...); the package root
(``monai_xattn/__init__.py``, only ``__version__``) belongs to the bottom layer.

Layers, bottom up (an import may go to its own layer or any lower one):

0. ``utils`` (and the package root): helpers every layer shares; nothing else of the package.
1. ``text``: report text (sections, attribute vocabulary, Word2Vec); below ``data`` because the phantom generator
   writes its reports with the attribute vocabulary, while ``text`` never needs a dataset adapter (what both need,
   e.g. the rule that nothing is written inside a dataset folder, lives in ``utils``).
2. ``data``: dataset adapters -> datalists, the phantom generator.
3. ``transforms``
4. ``networks``
5. ``losses``, ``metrics``
6. ``engines``
7. everything else: ``visualize``, ``report``, ``demo``, the CLIs, the table scripts. ``visualize`` sits here, above
   ``engines``, because what an engine handler draws with (``utils.display``) is shared from below.

Within a layer parts may import each other, but no two parts may import each other, directly or round a longer
loop (the cycle check).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import monai_xattn

PACKAGE_DIR = Path(monai_xattn.__file__).parent
ROOT = "monai_xattn"
TOP = 7

#: layer of each part; a part not listed is in the top layer
LAYERS: dict[str, int] = {
    ROOT: 0,
    "utils": 0,
    "text": 1,
    "data": 2,
    "transforms": 3,
    "networks": 4,
    "losses": 5,
    "metrics": 5,
    "engines": 6,
}

#: imports left in place although they close a cycle, each with why; (importer part, imported part)
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    """Dotted module name of a file under the package folder."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def part_of(module: str) -> str:
    """The part (top-level subpackage or module) a dotted module name belongs to; the root is ``monai_xattn``."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else ROOT


def imported_modules(path: Path, known_modules: set[str]) -> set[str]:
    """Every module of the package that ``path`` imports, wherever the import statement stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing package
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # `from pkg import submodule` imports the submodule too
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value.split(":", 1)[0]
            # importlib registries ("monai_xattn.data.siim:build_siim_datalist"); a bare "monai_xattn" is a word
            if name in known_modules and name != ROOT:
                found.add(name)
    return {m for m in found if m == ROOT or m.startswith(ROOT + ".")}


def package_edges() -> dict[tuple[str, str], list[str]]:
    """``(importer part, imported part) -> ["importer module -> imported module", ...]`` between distinct parts."""
    files = sorted(PACKAGE_DIR.rglob("*.py"))
    known = {module_name(f) for f in files}
    edges: dict[tuple[str, str], list[str]] = {}
    for path in files:
        source = module_name(path)
        for target in imported_modules(path, known):
            if target not in known:  # `from monai_xattn.x import name`: name is not a module
                continue
            a, b = part_of(source), part_of(target)
            if a != b:
                edges.setdefault((a, b), []).append(f"{source} -> {target}")
    return edges


def layer_violations(
    edges: Iterable[tuple[str, str]], layers: Mapping[str, int], top: int = TOP
) -> list[tuple[str, str]]:
    """The ``(importer, imported)`` edges that import from a higher layer, sorted."""
    return sorted((a, b) for a, b in set(edges) if layers.get(b, top) > layers.get(a, top))


def import_cycles(edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Strongly connected components of more than one part (Tarjan), each sorted; ``[]`` when the graph is a DAG."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


@pytest.fixture(scope="module")
def edges() -> dict[tuple[str, str], list[str]]:
    return package_edges()


def test_the_scan_sees_imports(edges):
    # module-level, lazy (in a function) and registry-string imports are all found
    assert ("transforms", "utils") in edges  # transforms.box: module level
    assert ("report", "visualize") in edges  # report.figures: inside a function
    assert ("cli", "data") in edges  # cli.COMMANDS: "monai_xattn.data.datalist_cli"


def test_layers_point_down(edges):
    bad = layer_violations(edges, LAYERS)
    assert not bad, "imports from a higher layer:\n" + "\n".join(f"{a} -> {b}: {edges[a, b]}" for a, b in bad)


def test_no_cycle_between_parts(edges):
    kept = [e for e in edges if e not in KNOWN_EXCEPTIONS]
    cycles = import_cycles(kept)
    assert not cycles, f"import cycles between parts: {cycles}; edges: " + str(
        {e: edges[e] for e in kept if any(e[0] in c and e[1] in c for c in cycles)}
    )


def test_known_exceptions_are_still_needed(edges):
    # an exception whose import is gone must leave the list, so that the cycle check covers that edge again
    stale = [e for e in KNOWN_EXCEPTIONS if e not in edges]
    assert not stale, f"remove from KNOWN_EXCEPTIONS, the import is gone: {stale}"


def test_checkers_catch_bad_edges():
    layers = {"utils": 0, "data": 2, "engines": 6}
    assert layer_violations([("engines", "utils"), ("data", "utils")], layers) == []
    assert layer_violations([("utils", "engines")], layers) == [("utils", "engines")]
    assert layer_violations([("data", "visualize")], layers) == [("data", "visualize")]  # unlisted: top layer
    assert import_cycles([("a", "b"), ("b", "c")]) == []
    assert import_cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c"]]
    # a bad edge added to the real graph is caught by both checks
    real = package_edges()
    assert layer_violations([*real, ("utils", "engines")], LAYERS) == [("utils", "engines")]
    cycles = import_cycles([e for e in [*real, ("utils", "engines")] if e not in KNOWN_EXCEPTIONS])
    assert any({"engines", "utils"} <= set(c) for c in cycles)
