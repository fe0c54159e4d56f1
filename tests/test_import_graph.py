"""No import circle inside callrec: the module graph, function-level imports included, is acyclic.

An import circle works only as long as every module in it happens to be imported in a lucky order;
the first refactor that moves a name to module level turns it into an ImportError at start-up (or,
worse, in a worker only). Two guards:

* the graph test parses every module under ``callrec_plugin/`` and ``hooks/`` with ``ast`` and
  follows every ``import`` statement wherever it sits (module level, inside functions, under
  ``TYPE_CHECKING``) — a function-level import that closes a circle counts as a circle;
* the isolation test imports each module alone in a fresh interpreter, so a module that only works
  when something else was imported first fails by name.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "callrec_plugin"
# Installed namespace: setup.cfg maps these folders into callrec_plugin (DESIGN.md §3).
FOLDERS = {"callrec_plugin": ROOT / "callrec_plugin", "callrec_plugin.hooks": ROOT / "hooks"}


def _modules():
    """{dotted name: path} for every .py file of the package and its mapped folders."""
    found = {}
    for prefix, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def _is_package(name):
    return MODULES[name].name == "__init__.py"


def _resolve(importer, node):
    """Absolute module names an import statement of ``importer`` refers to (callrec ones only)."""
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        if node.level:
            base = importer.split(".")
            base = base if _is_package(importer) else base[:-1]
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        # `from package import name`: name is a submodule if such a file exists, else an attribute
        # of the package (an edge to the package itself).
        submodules = [f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES]
        attributes = len(submodules) < len(node.names)
        candidates = submodules + ([module] if attributes else [])
    targets = set()
    for candidate in candidates:
        # `import a.b.c` imports a, a.b and a.b.c: keep the deepest module of ours that exists.
        while candidate and candidate not in MODULES:
            candidate = candidate.rpartition(".")[0]
        if candidate:
            targets.add(candidate)
    return targets


def import_graph():
    """{module: {modules it imports}} over callrec's own modules; package __init__ edges included."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges |= _resolve(name, node)
        edges.discard(name)
        # Importing a.b.c runs a/__init__ and a/b/__init__ first, but a package importing its own
        # submodules is the normal direction; only the explicit edges count.
        graph[name] = edges
    return graph


def find_cycles(graph):
    """Every strongly connected component with more than one module (Tarjan), as sorted lists."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def _a_cycle_through(graph, component):
    """One concrete circle inside a strongly connected component, for a readable failure message."""
    members = set(component)
    start = component[0]
    path, seen = [start], {start}
    node = start
    while True:
        nxt = sorted(t for t in graph[node] if t in members)
        back = [t for t in nxt if t == start]
        if back and len(path) > 1:
            return path + [start]
        fresh = [t for t in nxt if t not in seen]
        if not fresh:
            return path + [nxt[0]] if nxt else path
        node = fresh[0]
        path.append(node)
        seen.add(node)


def test_the_scanner_sees_function_level_imports_and_relative_ones():
    source = (
        "from callrec_plugin import audit\n"
        "def f():\n"
        "    from callrec_plugin import purge\n"
        "    from . import exports\n"
        "    import callrec_plugin.models\n"
    )
    edges = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            edges |= _resolve("callrec_plugin.jobs", node)
    assert edges == {"callrec_plugin.audit", "callrec_plugin.purge", "callrec_plugin.exports",
                     "callrec_plugin.models"}


def test_find_cycles_reports_a_circle_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_covers_the_whole_package():
    graph = import_graph()
    assert "callrec_plugin.jobs" in graph and "callrec_plugin.hooks.extension" in graph
    assert "callrec_plugin.views" in graph and "callrec_plugin.ingest" in graph
    assert len(graph) >= 40


def test_no_import_circle_among_callrec_modules():
    graph = import_graph()
    # The package's own __init__ re-exports CallRec for hosts (``from callrec_plugin import CallRec``);
    # a submodule that imports the package root would close a circle through it, so it is included.
    cycles = find_cycles(graph)
    described = ["  " + " -> ".join(_a_cycle_through(graph, component)) + f"   ({len(component)} modules)"
                 for component in cycles]
    assert not cycles, "import circles:\n" + "\n".join(described)


def test_state_accessors_live_in_a_leaf_module():
    graph = import_graph()
    assert graph["callrec_plugin.state"] == set()
    importers_of_extension = sorted(name for name, edges in graph.items() if "callrec_plugin.extension" in edges)
    assert importers_of_extension == ["callrec_plugin"], importers_of_extension


def test_rq_job_function_path_stays_importable():
    """Workers enqueue and run this dotted path; moving it would strand every queued job."""
    from callrec_plugin import queueing

    assert queueing.JOB_FUNCTION == "callrec_plugin.jobs.run_job"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    env = {key: value for key, value in os.environ.items() if not key.startswith("CALLREC_")}
    result = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"import {module} alone failed:\n{result.stderr[-3000:]}"
