"""The package's layering (docs/architecture.md): no import cycle, no import from a lower layer
to a higher one, at module level or inside a function, and no module too long to read.

The import graph is read from the source with ``ast`` (nothing is imported): ``from a.b import c``
depends on the module ``a.b.c`` when there is one, else on ``a.b``.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first; a module may import modules of its own layer or below. The first prefix that
# matches a module's name gives its layer.
LAYERS: list[tuple[str, ...]] = [
    (
        "unisal.errors",
        "unisal.events",
        "unisal.registry",
        "unisal.seeds",
        "unisal.io",
        "unisal.threads",
        "unisal.device",
        "unisal.memory",
        "unisal.diagnostics",
        "unisal.stopping",
        "unisal.estimate",
        "unisal.data.images",
        "unisal.data.splits",
        "unisal.data.views",
        "unisal.datasets.download",
        "unisal.distributed",
    ),
    ("unisal.config",),
    ("unisal.data",),
    ("unisal.datasets", "unisal.models"),
    ("unisal.train", "unisal.guard"),
    ("unisal.learners",),
    ("unisal.query",),
    (
        "unisal.state",
        "unisal.run_folder",
        "unisal.settings",
        "unisal.pipeline",
        "unisal.resume",
        "unisal.loop",
        "unisal.reference",
        "unisal.benchmark",
    ),
    ("unisal.app",),
    ("unisal.cli", "unisal.__main__"),
]
# Modules still over the length limit, each to be split (issue 16); the list only shrinks.
TOO_LONG_FOR_NOW: set[str] = set()
MAX_LINES = 400


def modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def import_graph(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the unisal modules it imports anywhere in its source."""
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in mods]
                targets = subs + ([base] if len(subs) < len(node.names) else [])
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer(name: str) -> int:
    if name == "unisal":
        return 0  # the package itself holds only its version
    for level, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return level
    raise AssertionError(f"module {name} is in no layer: add it to LAYERS")


def test_the_graph_reader_sees_function_level_imports_and_cycles(tmp_path: Path) -> None:
    pkg = tmp_path / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg.b import g\n")
    (pkg / "b.py").write_text("from pkg import a\ng = 1\n")
    (pkg / "c.py").write_text("from pkg.a import f\n")
    mods = {
        "pkg": pkg / "__init__.py",
        "pkg.a": pkg / "a.py",
        "pkg.b": pkg / "b.py",
        "pkg.c": pkg / "c.py",
    }
    graph = import_graph(mods)
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.a"}}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]


def test_no_import_cycle() -> None:
    assert cycles(import_graph(modules())) == []


def test_every_module_is_in_a_layer_and_imports_nothing_above_it() -> None:
    graph = import_graph(modules())
    upward = sorted(
        f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
        for m in graph
        for t in graph[m]
        if layer(t) > layer(m)
    )
    assert upward == []


def test_no_module_is_too_long() -> None:
    lengths = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    too_long = sorted(
        f"{m}: {n} lines" for m, n in lengths.items() if n > MAX_LINES and m not in TOO_LONG_FOR_NOW
    )
    shrunk = sorted(m for m in TOO_LONG_FOR_NOW if lengths.get(m, 0) <= MAX_LINES)
    assert too_long == [], f"split these (at most {MAX_LINES} lines)"
    assert shrunk == [], "take these off TOO_LONG_FOR_NOW"


# The one place each step of a round is done (docs/architecture.md, "A round"): a call of these
# names anywhere else means a second way through the code.
ONE_PLACE = {
    "build_cache": {"unisal.data.prepare"},  # decoding items into the image cache
    "QueryContext": {"unisal.pipeline"},  # what a strategy is asked with
    "Learner.fit": {"unisal.pipeline"},  # calls of fit on a learner object
}


def _calls(path: Path) -> set[str]:
    """Names called in a module: ``f(...)`` and ``learner.fit(...)`` / ``self.learner.fit(...)``."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            out.add(func.id)
        elif isinstance(func, ast.Attribute) and func.attr == "fit":
            owner = func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if "learner" in name.lower():
                out.add("Learner.fit")
    return out


def test_each_step_of_a_round_is_done_in_one_place() -> None:
    mods = modules()
    found = {name: sorted(m for m, path in mods.items() if name in _calls(path)) for name in ONE_PLACE}
    assert {name: set(where) for name, where in found.items()} == ONE_PLACE
