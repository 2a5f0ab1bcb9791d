"""The package's layering, read from the source with `ast` (nothing is imported or run).

Rules (issue 15):
1. Nothing outside `magnet_eval/cli/` imports `magnet_eval.cli`, at any level: the library never
   reaches up into the command line (the CLI only parses options and prints).
2. No import cycle among `magnet_eval` modules through *module-level* imports (those that run when
   a module is imported; imports under `if TYPE_CHECKING:` do not run and do not count).
   Function-level (lazy) imports may close a cycle: they run after every module involved has
   finished importing, which is the documented way to keep heavy libraries and registries off the
   import path (DEVELOPERS.md); rules 1 and 3 still apply to them.
3. Metrics are free of I/O: no module under `magnet_eval/metrics/` imports `magnet_eval.evaluation`,
   `.pipeline`, `.manifest` or `.audio` (at any level), or calls `open()` or a file-reading function.
   They take embeddings, probabilities or descriptors and return numbers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "magnet_eval"
METRICS_FORBIDDEN = ("magnet_eval.evaluation", "magnet_eval.pipeline", "magnet_eval.manifest", "magnet_eval.audio")
# calls that read files: builtins, numpy / pandas / torch / soundfile readers and the toolkit's own
READ_CALLS = {"open", "read_any", "read_text", "read_bytes", "load_audio", "read_csv", "read_parquet", "load_torch",
              "loadtxt", "genfromtxt", "read_manifest", "read_jsonl", "read_descriptors"}
READ_ATTR_CALLS = {("np", "load"), ("numpy", "load"), ("torch", "load"), ("json", "load"), ("pickle", "load"),
                   ("sf", "read"), ("soundfile", "read"), ("Manifest", "read"), ("pd", "read_json")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute magnet_eval module names an import statement loads (a `from pkg import sub` names pkg.sub)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "magnet_eval"]
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        pkg = ".".join(base + ([node.module] if node.module else []))
    else:
        pkg = node.module or ""
    if pkg.split(".")[0] != "magnet_eval":
        return []
    out = []
    for a in node.names:
        sub = f"{pkg}.{a.name}"
        out.append(sub if sub in MODULES else pkg)
    return out


def imports(module: str) -> tuple[set[str], set[str]]:
    """(module-level, all) magnet_eval imports of a module; TYPE_CHECKING blocks count only in 'all'."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    top: set[str] = set()
    every: set[str] = set()

    def walk(nodes: list[ast.stmt], runs_at_import: bool) -> None:
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = _targets(node, module, is_package)
                every.update(names)
                if runs_at_import:
                    top.update(names)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                walk(node.body, False)
                walk(node.orelse, runs_at_import)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                walk(node.body, False)  # runs when called, not when the module is imported
            else:  # class bodies, try/with/for/if blocks run at import like the module body
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.stmt):
                        walk([child], runs_at_import)
                    elif isinstance(child, ast.excepthandler):
                        walk(child.body, runs_at_import)

    walk(tree.body, True)
    return top, every


GRAPH = {m: imports(m) for m in MODULES}


def test_the_walk_sees_both_kinds_of_import():
    """Guards the walker itself: a known module-level and a known function-level import are found."""
    top, every = GRAPH["magnet_eval.pipeline"]
    assert "magnet_eval.errors" in top  # module level
    assert "magnet_eval.evaluation" in every and "magnet_eval.evaluation" not in top  # inside a function
    assert "magnet_eval.pipeline" in GRAPH["magnet_eval.cli.generate"][0]


def test_nothing_outside_cli_imports_cli():
    bad = sorted(f"{m} imports {t}" for m, (_, every) in GRAPH.items() if not m.startswith("magnet_eval.cli")
                 for t in every if t == "magnet_eval.cli" or t.startswith("magnet_eval.cli."))
    assert not bad, "the library must not import the command line:\n" + "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a module importing itself (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_module_level():
    edges = {m: {t for t in top if t != m} for m, (top, _) in GRAPH.items()}
    cycles = _cycles(edges)
    assert not cycles, "module-level import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _metric_violations() -> list[str]:
    found = []
    for m, path in MODULES.items():
        if not m.startswith("magnet_eval.metrics"):
            continue
        found += [f"{m} imports {t}" for t in sorted(GRAPH[m][1])
                  if any(t == f or t.startswith(f + ".") for f in METRICS_FORBIDDEN)]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id in READ_CALLS:
                found.append(f"{m}:{node.lineno} calls {f.id}()")
            elif isinstance(f, ast.Attribute) and (f.attr in READ_CALLS or (
                    isinstance(f.value, ast.Name) and (f.value.id, f.attr) in READ_ATTR_CALLS)):
                found.append(f"{m}:{node.lineno} calls .{f.attr}()")
    return found


def test_metric_violation_finder_sees_a_read(tmp_path):
    """Guards the metric check: the forbidden call and import shapes are recognised."""
    tree = ast.parse("import numpy as np\nx = np.load('a.npy')\nwith open('f') as f: pass\n")
    calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(isinstance(c, ast.Attribute) and (c.value.id, c.attr) in READ_ATTR_CALLS for c in calls)
    assert any(isinstance(c, ast.Name) and c.id in READ_CALLS for c in calls)


def test_metrics_are_free_of_io():
    assert _metric_violations() == []
