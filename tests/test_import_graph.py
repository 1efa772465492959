"""No import cycle anywhere in ``src/seglosses``, and the layers of ``seglosses.bench`` hold.

The graph is built from the source with :mod:`ast` (nothing is imported), so it sees every
import statement:

* absolute (``import seglosses.metrics``, ``from seglosses.bench.store import ResultStore``) and
  relative (``from .store import ...``, ``from . import io``, ``from ..job import ...``) imports;
* module-level **and** function-level (lazy) imports. Lazy imports count: they only postpone a
  cycle to the first call, and a module that needs a lazy import to break a cycle is usually in
  the wrong layer. Imports under ``if TYPE_CHECKING:`` do not count: they never run (they exist
  for annotations only). (``importlib.import_module`` with a string is not seen; ``seglosses.cli``
  dispatches to its sub-command modules that way, and nothing imports ``seglosses.cli``.)

An edge goes to the module named; ``from package import name`` goes to ``package.name`` when that
is a module, else to ``package``. The implicit import of a module's parent packages is not an
edge: every submodule would otherwise "import" a package ``__init__`` that re-exports it, which
is the normal package pattern, not a cycle between concepts.

The one exception is :data:`LAZY_EXEMPT`: lazy edges from the loss registry to the modules whose
decorators fill it (``seglosses.registry._ensure_loaded``). The test checks that each exempt edge
still exists and is only function-level (so no module-level cycle hides behind it); when the
registry stops loading its plugins itself, the test fails until the entry is removed.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "seglosses"


def _modules(src: Path = SRC) -> Dict[str, Path]:
    """``dotted name -> file`` of every module of the package (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve_relative(module: str, is_package: bool, level: int, target: Optional[str]) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_edges(src: Path = SRC) -> Dict[Tuple[str, str], bool]:
    """``(module, imported module) -> lazy`` for every import between modules of the package;
    ``lazy`` is True when every import of that pair is inside a function."""
    modules = _modules(src)
    edges: Dict[Tuple[str, str], bool] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        lazy_nodes = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f)
        }
        typing_only = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, ast.If) and _is_type_checking(f.test)
            for stmt in f.body
            for n in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            targets: List[str] = []
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _resolve_relative(name, is_package, node.level, node.module)
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in modules else base)
            for t in targets:
                if t in modules and t != name:
                    lazy = id(node) in lazy_nodes
                    edges[(name, t)] = edges.get((name, t), True) and lazy
    return edges


def import_graph(src: Path = SRC, exempt=()) -> Dict[str, Set[str]]:
    """``module -> modules of the package it imports`` (see the module docstring for the rules),
    without the ``exempt`` edges."""
    graph: Dict[str, Set[str]] = {m: set() for m in _modules(src)}
    for (a, b) in import_edges(src):
        if (a, b) not in exempt:
            graph[a].add(b)
    return graph


#: Lazy edges allowed to close a cycle, with the reason (see the module docstring).
LAZY_EXEMPT = {
    (f"{PACKAGE}.registry", f"{PACKAGE}.functional"): "build_loss loads the registered functional losses",
    (f"{PACKAGE}.registry", f"{PACKAGE}.losses.compound"): "build_loss loads the registered compounds",
    (f"{PACKAGE}.registry", f"{PACKAGE}.losses._classes"): "the generated module classes bind to their entries",
}


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One cycle ``[a, b, ..., a]`` of the directed graph, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = {n: WHITE for n in graph}
    stack: List[str] = []

    def visit(n: str) -> Optional[List[str]]:
        colour[n] = GREY
        stack.append(n)
        for m in sorted(graph[n]):
            if colour[m] == GREY:
                return stack[stack.index(m) :] + [m]
            if colour[m] == WHITE:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        colour[n] = BLACK
        return None

    for n in sorted(graph):
        if colour[n] == WHITE:
            found = visit(n)
            if found:
                return found
    return None


def test_the_checker_sees_relative_absolute_and_lazy_imports(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import x\n")
    (pkg / "c.py").write_text("import seglosses.a\n")
    graph = import_graph(tmp_path)
    assert graph[f"{PACKAGE}.a"] == {f"{PACKAGE}.sub.b"}
    assert graph[f"{PACKAGE}.sub.b"] == {f"{PACKAGE}.c"}
    edges = import_edges(tmp_path)
    assert edges[(f"{PACKAGE}.sub.b", f"{PACKAGE}.c")] is True and edges[(f"{PACKAGE}.c", f"{PACKAGE}.a")] is False
    assert find_cycle(graph) == [f"{PACKAGE}.a", f"{PACKAGE}.sub.b", f"{PACKAGE}.c", f"{PACKAGE}.a"]
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import seglosses.a\n")
    assert find_cycle(import_graph(tmp_path)) is None


def test_no_import_cycle_in_the_package():
    graph = import_graph(exempt=LAZY_EXEMPT)
    assert len(graph) > 30 and f"{PACKAGE}.bench.runner" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_exempt_edges_exist_and_are_lazy():
    edges = import_edges()
    for edge, reason in LAZY_EXEMPT.items():
        assert edge in edges, f"{edge} is not imported any more: remove it from LAZY_EXEMPT ({reason})"
        assert edges[edge], f"{edge[0]} imports {edge[1]} at module level: that is a cycle, not a lazy load"


#: Layers of ``seglosses.bench`` (docs/bench_layout.md): a module may import only modules of its
#: own layer or of the layers before it.
BENCH_LAYERS = [
    ("data", {"io", "data", "data_layouts", "data_sampling", "synthetic", "presets", "plotting", "profile"}),
    ("one run", {"model", "train", "evaluate", "job", "plan"}),
    ("executors", {"executors", "executors.base", "executors.local", "executors.threads", "executors.process", "executors.ray", "executors.lifeline"}),
    ("results", {"store", "results", "evidence"}),
    ("driver and report", {"runner", "report", "report_blocks", "report_figures"}),
    ("command line", {"cli"}),
]


def bench_violations(graph: Dict[str, Set[str]]) -> List[str]:
    """What breaks the bench layering: unplaced modules, imports of a later layer, the runner and
    the report importing each other, a bench module other than the CLI importing the runner."""
    prefix = f"{PACKAGE}.bench."
    layer_of = {prefix + n: i for i, (_, names) in enumerate(BENCH_LAYERS) for n in names}
    bench = sorted(m for m in graph if m.startswith(prefix))
    problems = [f"{m} is in no layer of BENCH_LAYERS" for m in bench if m not in layer_of]
    problems += [
        f"{m} ({BENCH_LAYERS[layer_of[m]][0]}) imports {t} ({BENCH_LAYERS[layer_of[t]][0]})"
        for m in bench
        if m in layer_of
        for t in sorted(graph[m])
        if t in layer_of and layer_of[t] > layer_of[m]
    ]
    if prefix + "report" in graph.get(prefix + "runner", ()):
        problems.append("the runner imports the report")
    if prefix + "runner" in graph.get(prefix + "report", ()):
        problems.append("the report imports the runner")
    problems += [
        f"{m} imports the runner (only the CLI may)"
        for m in bench
        if prefix + "runner" in graph[m] and m != prefix + "cli"
    ]
    return problems


def test_bench_layers_import_only_earlier_layers():
    problems = bench_violations(import_graph(exempt=LAZY_EXEMPT))
    assert not problems, "bench layering:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "module, bad, expected",
    [
        ("runner", "from .report import write_report", "the runner imports the report"),
        ("report", "from .runner import run_bench", "the report imports the runner"),
        ("results", "from .report import write_report", "seglosses.bench.results (results) imports"),
        ("job", "from .store import ResultStore", "seglosses.bench.job (one run) imports seglosses.bench.store"),
    ],
)
def test_a_layer_violation_is_caught(module, bad, expected, tmp_path):
    import shutil

    shutil.copytree(SRC / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    path = tmp_path / PACKAGE / "bench" / f"{module}.py"
    path.write_text(path.read_text() + f"\n\ndef _lazy():\n    {bad}\n")
    problems = bench_violations(import_graph(tmp_path))
    assert any(expected in p for p in problems), problems
