"""The import graph of negrec/ follows the layering README's "Layout" section draws: no module
imports from a higher layer, and neither packages nor files import each other in a cycle.

Every ``import`` / ``from ... import`` of every negrec/*.py counts, wherever it stands (inside
functions too, so a lazy import cannot hide an upward arrow); ``if TYPE_CHECKING:`` imports
count as well (an annotation that needs a higher layer is an upward dependency too)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "negrec"

#: Layers, lowest first; a module may import from its own layer or lower ones. Keys are the
#: first component below ``negrec`` (a subpackage or a top-level module).
LAYERS: list[set[str]] = [
    # import no negrec module outside this layer (threads: the thread policy, imports errors and
    # cpu_load, the governor that adapts the thread count to the load)
    {"errors", "files", "registry", "progress", "_extension", "_build_info", "_C", "threads",
     "cpu_load"},
    {"ops", "data"},
    {"models", "sim"},
    {"train", "eval"},
    {"experiments", "testing"},  # testing: checks for other teams' test suites
    {"cli"},
]
#: The package's own __init__ (``import negrec``; ``negrec.measure`` is loaded from
#: experiments on first use), ``python -m negrec`` and the environment report sit on top of
#: what they re-export or report.
FACADE = {"__init__": 4, "env": 4, "__main__": len(LAYERS) - 1}

LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names} | FACADE


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the negrec modules the file at ``path`` imports."""
    return imports_in(path.read_text(), module_name(path), is_package=path.name == "__init__.py")


def imports_in(text: str, here: str, *, is_package: bool = False) -> set[str]:
    """Absolute names of the negrec modules that source ``text`` of module ``here`` imports,
    anywhere in it (``from negrec.x import y`` counts as ``negrec.x.y`` when that is a module,
    else as ``negrec.x``; relative imports are resolved against ``here``)."""
    package = here if is_package else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "negrec")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "negrec":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if _is_module(sub) else target)
    return found - {here}


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


def top(name: str) -> str:
    """The layer key of a module name: ``negrec.data.log`` -> ``data``; ``negrec`` -> ``__init__``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_belongs_to_a_layer():
    unknown = {top(m) for m in graph()} - set(LAYER_OF)
    assert not unknown, f"modules outside every layer: {sorted(unknown)}; add them to LAYERS"


def test_no_import_reaches_a_higher_layer():
    upward = [f"{m} (layer {LAYER_OF[top(m)]}) imports {t} (layer {LAYER_OF[top(t)]})"
              for m, targets in graph().items() for t in sorted(targets)
              if LAYER_OF[top(t)] > LAYER_OF[top(m)]]
    assert not upward, "\n".join(upward)


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph ``edges`` (as a path that ends where it starts), or
    None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_cycle_between_files():
    g = graph()
    # a package's __init__ re-exports its modules: an import of the package itself is an
    # edge to the __init__ module only when that is what it names
    cycle = _cycle(g)
    assert cycle is None, " -> ".join(cycle)


def test_no_cycle_between_packages():
    edges: dict[str, set[str]] = defaultdict(set)
    for m, targets in graph().items():
        for t in targets:
            if top(t) != top(m):
                edges[top(m)].add(top(t))
    cycle = _cycle(edges)
    assert cycle is None, " -> ".join(cycle)


def test_the_checker_sees_lazy_relative_and_type_checking_imports():
    """The parser finds an import inside a function, a relative one and one under
    TYPE_CHECKING (else this test module would pass on any tree)."""
    text = ("from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from negrec.train import config\n"
            "def f():\n    from negrec.cli import main\n    from ..sim import simulator\n"
            "import numpy\n")
    found = imports_in(text, "negrec.data.probe")
    assert found == {"negrec.train.config", "negrec.cli", "negrec.sim.simulator"}
    assert [f for f in sorted(found) if LAYER_OF[top(f)] > LAYER_OF["data"]] == sorted(found)


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("name", ["negrec.data.log", "negrec.cli", "negrec"])
def test_layer_of_known_modules(name):
    assert top(name) in LAYER_OF
