"""The package's layers: modules import only downwards, nothing imports in a circle, and the configuration is
cheap to import. Imports inside functions and under ``TYPE_CHECKING`` count like any other."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lgd_tutorial"
# Upper layers: nothing below them may import them. The library is everything else.
APPLICATIONS = ("lgd_tutorial.cli", "lgd_tutorial.exercises", "lgd_tutorial.workbook", "lgd_tutorial.notebooks",
                "lgd_tutorial.book", "lgd_tutorial.gpu_check", "lgd_tutorial.__main__")
EXPERIMENTS = "lgd_tutorial.experiments"
LEAVES = ("lgd_tutorial.constants", "lgd_tutorial.stats")           # import nothing from the package


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The package modules ``name`` imports anywhere in its file (top level, functions, TYPE_CHECKING)."""
    path = MODULES[name]
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            candidates = [f"{target}.{alias.name}" for alias in node.names] + [target]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in MODULES and "." in candidate:
                candidate = candidate.rsplit(".", 1)[0]
            if candidate in MODULES and candidate != name and candidate.startswith("lgd_tutorial"):
                found.add(candidate)
                break
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_planted_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_package_modules_import_each_other_through_any_chain():
    assert len(GRAPH) > 60 and sum(map(len, GRAPH.values())) > 150      # the scan sees the package
    assert cycles(GRAPH) == []


def _is(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_library_never_imports_the_experiments_or_the_applications():
    library = [m for m in GRAPH if not _is(m, (*APPLICATIONS, EXPERIMENTS))]
    assert "lgd_tutorial.training" in library and "lgd_tutorial.viz.causal" in library
    bad = {m: sorted(t for t in GRAPH[m] if _is(t, (*APPLICATIONS, EXPERIMENTS))) for m in library}
    assert {m: t for m, t in bad.items() if t} == {}


def test_the_experiments_never_import_the_applications():
    bad = {m: sorted(t for t in GRAPH[m] if _is(t, APPLICATIONS)) for m in GRAPH if _is(m, (EXPERIMENTS,))}
    assert {m: t for m, t in bad.items() if t} == {}


def test_the_leaves_and_the_configuration_import_only_what_they_may():
    for leaf in LEAVES:
        assert GRAPH[leaf] <= {"lgd_tutorial"}, leaf
    assert GRAPH["lgd_tutorial.config"] <= {"lgd_tutorial", "lgd_tutorial.constants"}


def test_importing_the_configuration_loads_neither_torch_nor_the_rest_of_the_package():
    code = ("import sys, time; t = time.perf_counter(); import lgd_tutorial.config; "
            "print(time.perf_counter() - t); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', 'numpy', 'lgd_tutorial')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    print(f"import lgd_tutorial.config: {float(out[0]):.3f} s")            # measured, shown with -s; not asserted
    assert eval(out[1]) == ["lgd_tutorial", "lgd_tutorial.config", "lgd_tutorial.constants", "lgd_tutorial.utils"]


def test_every_registered_name_is_listed_for_the_configuration():
    from lgd_tutorial.constants import ARCHITECTURES
    from lgd_tutorial.models import list_models

    assert sorted(ARCHITECTURES) == list_models()


def test_outside_the_command_line_no_package_module_is_imported_inside_a_function():
    """Imports inside functions hide the layers; only ``cli/`` keeps its work's imports inside ``run`` (so that
    ``lgd --help`` answers at once), and third-party heavy or optional libraries may be imported late."""
    late = []
    for name, path in MODULES.items():
        if _is(name, ("lgd_tutorial.cli",)):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                late += [f"{name}:{inner.lineno}" for inner in ast.walk(node)
                         if isinstance(inner, ast.ImportFrom) and (inner.level or (inner.module or "").startswith(
                             "lgd_tutorial"))]
    assert late == []
