"""The layering rules of the developers' guide, checked on the source: no import cycles (module
imports anywhere in a file, including the package ``__init__`` a dotted import runs; imports
under ``if TYPE_CHECKING:`` never run and are left out), library code never imports the CLI,
``dgm``/``inference`` import neither torch nor the zoo when imported, and every ``dgm``
subcommand starts (``--help``) without the optional matplotlib."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("backends", "dgm", "inference", "zoo", "benchmarks")


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package ``__init__``) for every module of the packages."""
    out = {}
    for package in PACKAGES:
        for f in (ROOT / package).rglob("*.py"):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


def _targets(name: str, is_pkg: bool, node: ast.AST, modules) -> set[str]:
    """The project modules an import statement of module ``name`` executes: the imported
    modules and every package ``__init__`` on their way that is not one of ``name``'s own."""
    if isinstance(node, ast.Import):
        found = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            parent = name.split(".") if is_pkg else name.split(".")[:-1]
            parent = parent[:len(parent) - node.level + 1]
            base = ".".join(parent + ([base] if base else []))
        found = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                 for a in node.names]
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
    out = set()
    for target in found:
        parts = target.split(".")
        out |= {p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
                if p in modules and p not in own}
    return out


def _imports(tree: ast.AST) -> list[ast.AST]:
    """Every import statement of a module, except those under ``if TYPE_CHECKING:``."""
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING"
               for stmt in node.body for n in ast.walk(stmt)}
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
            and id(n) not in skipped]


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, (path, is_pkg) in modules.items():
        graph[name] = set()
        for node in _imports(ast.parse(path.read_text())):
            graph[name] |= _targets(name, is_pkg, node, modules)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on.discard(component[-1])
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "modules that import each other (directly or in a loop): " + "; ".join(
        " <-> ".join(c) for c in found)


def test_library_never_imports_the_cli():
    graph = import_graph()
    offenders = sorted(m for m, deps in graph.items() if not m.startswith("zoo.cli")
                       and any(d == "zoo.cli" or d.startswith("zoo.cli.") for d in deps))
    assert not offenders


def test_core_never_imports_torch_or_the_zoo_on_import():
    """Module-level imports of ``dgm/`` and ``inference/`` (torch is reached through
    ``backends``; a function that needs torch or Pyro, e.g. the Pyro adapter, imports it)."""
    offenders = []
    for path in [p for pkg in ("dgm", "inference") for p in sorted((ROOT / pkg).rglob("*.py"))]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names
                          if n.split(".")[0] in ("torch", "pyro", "zoo")]
    assert not offenders


HIDE_MATPLOTLIB = """
import sys
sys.modules["matplotlib"] = None   # hidden: `import matplotlib` raises ModuleNotFoundError
from zoo import plotting
assert not plotting.available()
from zoo.cli import COMMANDS, main
for command in (*COMMANDS, "zoo list", "zoo card", "zoo convert"):
    try:
        main(command.split() + ["--help"])
    except SystemExit as exit:
        assert exit.code == 0, command
print("ok", len(COMMANDS))
"""


def test_every_subcommand_starts_without_matplotlib():
    run = subprocess.run([sys.executable, "-c", HIDE_MATPLOTLIB], cwd=ROOT, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT), "DGM_KEEP_MALLOC": "0"},
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("ok 6")
