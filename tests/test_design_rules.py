"""The design rules of docs/architecture.md, checked on the source tree.

- Imports between parity's packages go one way, as the table "Dependency direction" in
  docs/architecture.md says (the table is read from the page: the page and this test
  cannot disagree), and no group of modules imports itself in a circle.
- Every module imports alone, in a fresh interpreter.
- Only the command line (``cli/``, ``__main__.py``) writes to stdout or stderr.
- No function is longer than 60 lines.

Each checker is also run on a small planted example, so a checker that stopped seeing
what it looks for fails here too.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "parity"
ARCHITECTURE = REPO / "docs" / "architecture.md"
TABLE_HEADING = "## Dependency direction"
MAX_FUNCTION_LINES = 60
#: the command line: the only code that may write to stdout/stderr
COMMAND_LINE = ("cli/", "__main__.py")


# --------------------------------------------------------------------------- the source tree


def module_name(path: Path, root: Path) -> str:
    """``root/records/format.py`` -> ``parity.records.format`` (``root`` is the package)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def find_modules(root: Path) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def units(modules: dict[str, Path], root: Path) -> dict[str, str]:
    """Module -> its row in the dependency table: ``target/`` for ``parity.target.loader``,
    ``_io.py`` for ``parity._io``, ``__init__.py`` for ``parity`` itself."""
    out = {}
    for name, path in modules.items():
        rel = path.relative_to(root)
        out[name] = f"{rel.parts[0]}/" if len(rel.parts) > 1 else rel.name
    return out


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported parity module (a submodule when ``from pkg import submodule``)
    line: int


def parity_imports(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every import of a parity module in ``path``, wherever it is (module level, inside a
    function, under ``if TYPE_CHECKING``): ``import parity.x``, ``from parity.x import y``,
    relative imports. ``from pkg import sub`` counts as an import of ``pkg.sub`` only when
    every name is a submodule (Python then does not need ``pkg``'s own code beyond what
    importing ``pkg.sub`` runs anyway)."""
    top = name.split(".")[0]
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == top or alias.name.startswith(top + "."):
                    found.append(Import(name, _known(alias.name, known), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_from(name, is_package, node)
            if base != top and not base.startswith(top + "."):
                continue
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            if len(subs) < len(node.names):
                found.append(Import(name, _known(base, known), node.lineno))
            found.extend(Import(name, s, node.lineno) for s in subs)
    return found


def _resolve_from(name: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = name.split(".") if is_package else name.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def _known(module: str, known: set[str]) -> str:
    """``module``, or its nearest existing parent (an import of a missing module is the
    import test's business; here it still counts for its package)."""
    while module not in known and "." in module:
        module = module.rpartition(".")[0]
    return module


def import_graph(root: Path) -> tuple[dict[str, Path], list[Import]]:
    modules = find_modules(root)
    known = set(modules)
    edges = [imp for name, path in modules.items() for imp in parity_imports(name, path, known)]
    return modules, [e for e in edges if e.target != e.source]


def lift(edges: list[Import], unit: dict[str, str]) -> list[Import]:
    """The imports between packages (rows of the table), from those between modules."""
    return [Import(unit[e.source], unit[e.target], e.line) for e in edges
            if unit[e.source] != unit[e.target]]


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(groups)


def describe_cycle(group: list[str], edges: list[Import]) -> str:
    members = set(group)
    inside = sorted({f"{e.source}:{e.line} -> {e.target}" for e in edges
                     if e.source in members and e.target in members})
    return "cycle between " + ", ".join(group) + "\n    " + "\n    ".join(inside)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Row:
    layer: int
    may_import: frozenset[str]


def read_table(markdown: str) -> dict[str, Row]:
    """The rows of the table under the heading ``## Dependency direction``:
    ``| layer | package | may import |`` with names in backticks."""
    found = re.search(rf"^{re.escape(TABLE_HEADING)}\b", markdown, re.MULTILINE)
    assert found, f"docs/architecture.md has no section {TABLE_HEADING!r}"
    section = markdown[found.end():]
    end = section.find("\n## ")
    section = section if end < 0 else section[:end]
    rows: dict[str, Row] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].isdigit():
            continue
        names = re.findall(r"`([^`]+)`", cells[1])
        assert len(names) == 1, f"one package per row: {line}"
        assert names[0] not in rows, f"{names[0]} has two rows"
        rows[names[0]] = Row(int(cells[0]), frozenset(re.findall(r"`([^`]+)`", cells[2])))
    return rows


def table_problems(rows: dict[str, Row]) -> list[str]:
    """A row that names an unknown package, or allows an import of its own layer or a
    higher one (the layers make the table itself free of cycles)."""
    problems = []
    for unit, row in sorted(rows.items()):
        for dep in sorted(row.may_import):
            if dep not in rows:
                problems.append(f"{unit} may import {dep}, which has no row")
            elif rows[dep].layer >= row.layer:
                problems.append(f"{unit} (layer {row.layer}) may import {dep} "
                                f"(layer {rows[dep].layer}): only lower layers")
    return problems


def direction_violations(edges: list[Import], rows: dict[str, Row], unit: dict[str, str]) -> list[str]:
    bad = []
    for e in edges:
        src, dst = unit[e.source], unit[e.target]
        if src != dst and dst not in rows.get(src, Row(-1, frozenset())).may_import:
            bad.append(f"{e.source}:{e.line} imports {e.target} ({src} -> {dst} is not in the table)")
    return sorted(set(bad))


# --------------------------------------------------------------------------- output, length

_OUTPUT_CALLS = {"print", "pprint", "echo", "secho", "print_json", "print_exc",
                 "print_exception", "print_stack", "print_tb", "basicConfig", "StreamHandler"}
_STREAMS = {"stdout", "stderr", "__stdout__", "__stderr__"}
_SUBPROCESS = {"run", "Popen", "call", "check_call", "check_output"}


def output_writes(source: str, filename: str = "<src>") -> list[tuple[int, str]]:
    """Places that write to the terminal: print(), click.echo/secho, rich Console(...) and
    console.print, sys.stdout/sys.stderr, os.write to fd 1/2, logging handlers that print,
    and subprocesses whose output is not captured (it would reach the terminal).
    Code under ``if __name__ == "__main__":`` is a script's own, not the library's."""
    tree = ast.parse(source, filename)
    skipped = {id(n) for block in ast.walk(tree) if _is_main_guard(block)
               for n in ast.walk(block)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        what = _output_write(node)
        if what:
            found.append((getattr(node, "lineno", 0), what))
    return sorted(set(found))


def _is_main_guard(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') in (
        '__name__ == "__main__"', '"__main__" == __name__')


def _output_write(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute) and node.attr in _STREAMS and _name(node.value) == "sys":
        return f"sys.{node.attr}"
    if isinstance(node, ast.ImportFrom) and node.module in ("sys", "click", "rich", "builtins"):
        names = {a.name for a in node.names} & (_STREAMS | {"echo", "secho", "print"})
        return f"from {node.module} import {', '.join(sorted(names))}" if names else None
    if not isinstance(node, ast.Call):
        return None
    func = ast.unparse(node.func)
    last = func.rpartition(".")[2]
    if last in _OUTPUT_CALLS or last == "Console":
        return f"{func}(...)"
    if func == "os.write" and node.args and ast.unparse(node.args[0]) in ("1", "2"):
        return "os.write to fd " + ast.unparse(node.args[0])
    if _name(getattr(node.func, "value", None)) == "subprocess" and last in _SUBPROCESS:
        kws = {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}
        captured = kws.get("capture_output") == "True" or (
            ("stdout" in kws or last == "check_output") and "stderr" in kws)
        return None if captured else f"{func}(...) without capture_output"
    return None


def _name(node: ast.AST | None) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def long_functions(source: str, filename: str = "<src>") -> list[tuple[int, str, int]]:
    """(line, name, length) of every def (nested, methods, async too) over the limit;
    the length runs from the ``def`` line (decorators aside) to the last line of the body."""
    return sorted(
        (node.lineno, node.name, node.end_lineno - node.lineno + 1)
        for node in ast.walk(ast.parse(source, filename))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    )


# --------------------------------------------------------------------------- the rules


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Import]]:
    return import_graph(PACKAGE)


@pytest.fixture(scope="module")
def table() -> dict[str, Row]:
    return read_table(ARCHITECTURE.read_text(encoding="utf-8"))


def test_the_table_is_layered_and_names_every_package(table, graph):
    modules, _ = graph
    assert table_problems(table) == []
    present = set(units(modules, PACKAGE).values())
    assert sorted(present - set(table)) == [], "packages without a row in the table"
    assert sorted(set(table) - present) == [], "rows for packages that do not exist"


def test_imports_follow_the_dependency_table(table, graph):
    modules, edges = graph
    bad = direction_violations(edges, table, units(modules, PACKAGE))
    assert not bad, "imports against docs/architecture.md, Dependency direction:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules(graph):
    _, edges = graph
    groups = cycles(edges)
    assert not groups, "\n".join(describe_cycle(g, edges) for g in groups)


def test_no_import_cycles_between_packages(graph):
    modules, edges = graph
    groups = cycles(lift(edges, units(modules, PACKAGE)))
    assert not groups, "packages importing each other: " + "; ".join(" <-> ".join(g) for g in groups)


_IMPORT_EACH = r"""
import importlib, json, os, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a fork of this untouched interpreter: nothing of parity is imported yet
        os.close(read)
        code = 0
        try:
            if name.endswith(".__main__"):
                sys.argv = [name, "--version"]
            importlib.import_module(name)
        except SystemExit as exc:
            code = 0 if exc.code in (0, None) else 1
            if code:
                os.write(write, f"SystemExit({exc.code!r})".encode())
        except BaseException:
            os.write(write, traceback.format_exc()[-2000:].encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status:
        failed[name] = message or f"wait status {status}"
print(json.dumps(failed))
"""


def import_each_alone(names: list[str], path: Path | None = None) -> dict[str, str]:
    """Module -> why it failed, for the modules of ``names`` that do not import alone
    (each in a fork of one fresh interpreter; ``path`` goes first on its sys.path)."""
    code = (f"import sys; sys.path.insert(0, {str(path)!r})\n" if path else "") + _IMPORT_EACH
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(names)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    failed: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return failed


_needs_fork = pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")


@_needs_fork
def test_every_module_imports_alone_in_a_fresh_interpreter(graph):
    modules, _ = graph
    failed = import_each_alone(sorted(modules))
    assert not failed, "\n\n".join(f"{name}:\n{why}" for name, why in sorted(failed.items()))


@_needs_fork
def test_a_module_that_needs_another_imported_first_is_caught(tmp_path):
    pkg = tmp_path / "plantpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "helper.py").write_text("VALUE = 1\n")
    # works only when some earlier import loaded plantpkg.helper
    (pkg / "user.py").write_text("import plantpkg\n\nVALUE = plantpkg.helper.VALUE\n")
    failed = import_each_alone(["plantpkg.helper", "plantpkg.user", "plantpkg"], tmp_path)
    assert sorted(failed) == ["plantpkg.user"]
    assert "AttributeError" in failed["plantpkg.user"]


def _library_files() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if not p.relative_to(PACKAGE).as_posix().startswith(COMMAND_LINE)]


def test_only_the_command_line_writes_to_the_terminal():
    files = _library_files()
    assert any(p.relative_to(PACKAGE).parts[0] == "report" for p in files)  # report/ is scanned
    bad = [f"src/parity/{p.relative_to(PACKAGE).as_posix()}:{line}: {what}"
           for p in files for line, what in output_writes(p.read_text(encoding="utf-8"), str(p))]
    assert not bad, "only cli/ prints; return a result or a renderable instead:\n" + "\n".join(bad)


def test_no_function_is_longer_than_60_lines():
    bad = [f"src/parity/{p.relative_to(PACKAGE).as_posix()}:{line}: {name} has {n} lines"
           for p in sorted(PACKAGE.rglob("*.py"))
           for line, name, n in long_functions(p.read_text(encoding="utf-8"), str(p))]
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- the checkers see


def _tree(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "parity"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return pkg


def test_the_import_reader_sees_every_form_of_import(tmp_path):
    pkg = _tree(tmp_path, {
        "__init__.py": "",
        "errors.py": "",
        "a/__init__.py": "from .mod import x\n",
        "a/mod.py": """\
            import parity.errors
            from parity.b import sub as s, VALUE
            from .. import c
            from ..c.deep import y
            def lazy():
                from parity.d.inner import z
                import parity.d as dd
            if TYPE_CHECKING:
                from parity.e import T
            """,
        "b/__init__.py": "", "b/sub.py": "",
        "c/__init__.py": "", "c/deep.py": "",
        "d/__init__.py": "", "d/inner.py": "",
        "e/__init__.py": "",
    })
    _, edges = import_graph(pkg)
    got = sorted({(e.source, e.target) for e in edges})
    assert got == [
        ("parity.a", "parity.a.mod"),
        ("parity.a.mod", "parity.b"),
        ("parity.a.mod", "parity.b.sub"),
        ("parity.a.mod", "parity.c"),
        ("parity.a.mod", "parity.c.deep"),
        ("parity.a.mod", "parity.d"),
        ("parity.a.mod", "parity.d.inner"),
        ("parity.a.mod", "parity.e"),
        ("parity.a.mod", "parity.errors"),
    ]


def test_the_checkers_catch_a_wrong_way_import_and_a_cycle(tmp_path):
    pkg = _tree(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "", "low/one.py": "def f():\n    from parity.low import two\n",
        "low/two.py": "from parity.low.one import f\nfrom parity.high import VALUE\n",
        "high/__init__.py": "", "high/thing.py": "from parity.low import one\n",
    })
    modules, edges = import_graph(pkg)
    unit = units(modules, pkg)
    assert cycles(edges) == [["parity.low.one", "parity.low.two"]]
    rows = {"low/": Row(0, frozenset()), "high/": Row(1, frozenset({"low/"})),
            "__init__.py": Row(2, frozenset())}
    assert direction_violations(edges, rows, unit) == [
        "parity.low.two:2 imports parity.high (low/ -> high/ is not in the table)"]
    assert cycles(lift(edges, unit)) == [["high/", "low/"]]


def test_the_table_reader_and_its_own_checks():
    page = textwrap.dedent("""\
        ## Dependency direction

        | layer | package | may import |
        |---|---|---|
        | 0 | `errors.py` | — |
        | 1 | `target/` | `errors.py` |
        | 1 | `env/` | `target/`, `nowhere/` |

        ## Next
        | 5 | `ignored/` | — |
        """)
    rows = read_table(page)
    assert rows == {"errors.py": Row(0, frozenset()), "target/": Row(1, frozenset({"errors.py"})),
                    "env/": Row(1, frozenset({"target/", "nowhere/"}))}
    assert table_problems(rows) == ["env/ may import nowhere/, which has no row",
                                    "env/ (layer 1) may import target/ (layer 1): only lower layers"]


def test_the_output_scan_sees_each_way_of_writing():
    source = textwrap.dedent("""\
        import os, subprocess, sys
        from rich.console import Console
        from click import echo
        def f(console, proc):
            print("x")
            sys.stdout.write("x")
            json.dump({}, sys.stderr)
            click.echo("x")
            Console().print("x")
            console.print("x")
            os.write(1, b"x")
            subprocess.run(["ls"])
            subprocess.run(["ls"], capture_output=True)
            subprocess.run(["ls"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            subprocess.check_output(["ls"], stderr=subprocess.DEVNULL)
            proc.stdout.read()
            contextlib.redirect_stdout(io.StringIO())
        if __name__ == "__main__":
            print("a script may")
        """)
    assert output_writes(source) == [
        (3, "from click import echo"),
        (5, "print(...)"),
        (6, "sys.stdout"),
        (7, "sys.stderr"),
        (8, "click.echo(...)"),
        (9, "Console().print(...)"),
        (9, "Console(...)"),
        (10, "console.print(...)"),
        (11, "os.write to fd 1"),
        (12, "subprocess.run(...) without capture_output"),
    ]


def test_the_length_check_counts_nested_functions_and_methods():
    body = "\n".join(f"    x{i} = {i}" for i in range(58))
    source = (f"def fits():\n{body}\n    return 0\n\n"             # 60 lines
              f"class C:\n    def method(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n"
              f"        y = 1\n        return 0\n\n"             # 61 lines
              f"def outer():\n    def inner():\n    {body.replace(chr(10), chr(10) + '    ')}\n"
              f"        y = 1\n        return 0\n    return inner\n")
    names = [(name, n) for _, name, n in long_functions(source)]
    assert names == [("method", 61), ("outer", 63), ("inner", 61)]
