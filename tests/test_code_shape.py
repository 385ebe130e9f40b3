"""The code's own shape, checked like behaviour: lint, format, import layers, no cycles, small files and functions.

The layers are the contracts in pyproject.toml (``[tool.importlinter]``); ruff's rules and format are there too.
Sizes are counted in lines (ruff counts statements): a file over 400 lines or a function over 50 says a
concept is due for its own module. Migrations are exempt: each is a record of a schema at one time, and
editing an old one would change what it meant.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CHECKED = ("src", "tests", "devtools", "bench")
MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 50
EXEMPT = ("src/scheduler_server/pipelines/storage/migrations/versions/",)


def _run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_ruff_lint_passes():
    done = _run(str(BIN / "ruff"), "check", "--no-cache", *CHECKED)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_applied():
    done = _run(str(BIN / "ruff"), "format", "--check", "--no-cache", *CHECKED)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_layers_hold():
    done = _run(str(BIN / "lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr


def test_no_import_cycle_anywhere():
    """Between modules, counting imports inside functions too (a lazy import is still an arrow)."""
    graph = grimp.build_graph("scheduler_server", cache_dir=None)
    modules = sorted(graph.modules)
    imports = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    cycles = _cycles(modules, imports)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def _cycles(modules: list[str], imports: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(imports[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(imports[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    imports = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert _cycles(sorted(imports), imports) == [["a", "b", "c"]]
    assert _cycles(["x", "y"], {"x": ["y"], "y": []}) == []


def _python_files() -> list[Path]:
    files = [p for d in CHECKED for p in (ROOT / d).rglob("*.py")]
    return [p for p in files if not str(p.relative_to(ROOT)).startswith(EXEMPT)]


def test_no_file_is_over_400_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in _python_files() if (n := p.read_text().count("\n")) > MAX_FILE_LINES]
    assert not long, "\n".join(long)


def test_no_function_is_over_50_lines():
    long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines}")
    assert not long, "\n".join(long)
