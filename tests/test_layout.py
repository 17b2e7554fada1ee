"""The layout rules of the packages, checked on the import graph (static, from the source):
no import circles, the interface at the bottom, training above the models, `codec/` free of UI
and plotting, `analysis/` and `app/` reaching models through the interface and the registry."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("codec", "analysis", "app")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Project modules `path` imports (at module level or inside functions): `from a.b import
    c` counts a.b.c when that is a module, else a.b; each imported module's parent packages
    count too (importing a.b.c runs a/__init__.py and a/b/__init__.py), except the importing
    module's own parents (Python runs those before the module itself anyway)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name in known:
                parts = name.split(".")
                found.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    own = _module_name(path).split(".")
    parents = {".".join(own[:i]) for i in range(1, len(own))}
    return {m for m in found if m in known and m not in parents}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, known) - {name} for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _reach(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def test_no_import_circles(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []
    # the check sees circles: a made-up back edge from the checkpoint module to the interface
    assert _cycles({**graph, "codec.checkpoint": graph["codec.checkpoint"] | {"codec.models.base"}})


def test_the_interface_imports_nothing_above_it(graph: dict[str, set[str]]) -> None:
    below = {"codec", "codec.checkpoint", "codec.alloc_budget", "codec.schema", "codec.models",
             "codec.models.base", "codec.models.trainable"}  # fmt: skip
    assert _reach(graph, "codec.models.base") <= below


def test_models_never_import_training_analysis_or_the_app(graph: dict[str, set[str]]) -> None:
    for name, deps in graph.items():
        if name.startswith("codec.models"):
            bad = {d for d in deps if d.startswith(("codec.training", "analysis", "app"))}
            assert not bad, (name, bad)
        if name.startswith("codec"):
            assert not {d for d in deps if d.startswith(("analysis", "app"))}, name


def test_codec_has_no_ui_or_plotting_imports() -> None:
    for path in (ROOT / "codec").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for n in names:
                assert n.split(".")[0] not in {"gradio", "plotly", "matplotlib", "umap"}, path


def test_analysis_and_app_reach_models_only_through_the_interface(
    graph: dict[str, set[str]],
) -> None:
    """No concrete model module: the interface, the registry and shared modules only."""
    concrete = ("codec.models.almtokenizer", "codec.models.encodec", "codec.models.seanet")
    for name, deps in graph.items():
        if name.startswith(("analysis", "app")):
            assert not {d for d in deps if d.startswith(concrete)}, name
