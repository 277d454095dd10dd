"""Flows read from source, never run: which files of a project may hold flows, their syntax
trees, and the flows (name, function, line, parameters) a tree declares.

A function counts as a flow when a decorator's name is `flow` (`@flow`, `@flow(...)`,
`@orchlite.flow`, `@x.flow(...)`) or an alias imported from `orchlite`/`prefect`
(`from orchlite import flow as f`). Only top-level functions count, those under a top-level
`if`/`try` included. The project model (`orchlite.project_model`) reads a project's flows
through the parse cache; `find_flows` reads a folder's now.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .names import default_flow_name

SKIP_DIRS = frozenset(
    {"__pycache__", "node_modules", "tests", "test", "venv", "site-packages", "build", "dist"}
)
FLOW_MODULES = ("orchlite", "prefect")
"""The packages whose `flow` (and `cron`, `on_files`...) a flow file may import."""


@dataclass(frozen=True)
class ParamInfo:
    name: str
    annotation: str | None
    default: str | None
    """Source text of the default value; None when the parameter is required."""
    required: bool


@dataclass(frozen=True)
class FlowInfo:
    name: str
    function: str
    file: Path
    """Relative to the scanned root."""
    line: int
    parameters: tuple[ParamInfo, ...]

    @property
    def target(self) -> str:
        return f"{self.file.as_posix()}:{self.function}"


FlowScan = tuple[list[FlowInfo], list[tuple[Path, str]]]
"""A project's flows, and (relative path, message) for each file that could not be read."""


def find_flows(root: Path) -> list[FlowInfo]:
    """Every flow under `root`, sorted by file then line; files that do not parse are skipped."""
    return find_flows_with_errors(root)[0]


def find_flows_with_errors(root: Path) -> FlowScan:
    """Flows under `root`, each file parsed now (the project model reads them through the
    parse cache), plus (relative path, message) for each file that could not be read."""
    root = Path(root)
    flows: list[FlowInfo] = []
    errors: list[tuple[Path, str]] = []
    for path in python_files(root):
        rel = path.relative_to(root)
        try:
            flows.extend(scan_tree(parse_file(path), rel))
        except (SyntaxError, OSError, ValueError) as exc:  # unreadable, null bytes, encoding
            errors.append((rel, read_problem(exc)))
    return sorted_scan(flows, errors)


def sorted_scan(flows: list[FlowInfo], errors: list[tuple[Path, str]]) -> FlowScan:
    """Flows sorted by file then line, and unreadable files sorted by path."""
    flows = sorted(flows, key=lambda f: (f.file.as_posix(), f.line))
    return flows, sorted(errors, key=lambda e: e[0].as_posix())


def read_problem(exc: Exception) -> str:
    """Why a file could not be read, as one line (see `syntax_problem`)."""
    return syntax_problem(exc) if isinstance(exc, SyntaxError) else str(exc)


def python_files(root: Path) -> list[Path]:
    """The `.py` files a project's flows are looked for in (not in hidden, test, build or
    virtualenv folders)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        # A virtualenv is recognised by its pyvenv.cfg, whatever the folder is called.
        if "pyvenv.cfg" in filenames and Path(dirpath) != root:
            dirnames.clear()
            continue
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS]
        found.extend(Path(dirpath, f) for f in filenames if f.endswith(".py"))
    return found


def parse_file(path: Path) -> ast.Module:
    """The syntax tree of a Python file, for reading it without running it.

    SyntaxError for any file the parser refuses, also one nested so deeply (an expression
    of thousands of operators, say) that parsing it runs out of stack or parser memory:
    reading a project must survive any file in it, as it survives a syntax error.
    """
    source = path.read_bytes()
    if sys.version_info < (3, 11) and len(source) > _LARGE_SOURCE and not _parses_in_a_child(path):
        raise SyntaxError("nested too deeply for Python's parser to read")
    try:
        return ast.parse(source, filename=str(path))
    except (RecursionError, MemoryError):
        raise SyntaxError("nested too deeply for Python's parser to read") from None


_LARGE_SOURCE = 64 * 1024
"""Python 3.10's parser overflows the C stack (a segfault, not a RecursionError) on an
expression of some 150,000 operators, which takes more than 64 kB of source: a larger file
is parsed in a child process first, so such a file crashes the child, not `orch`."""


def _parses_in_a_child(path: Path) -> bool:
    """Whether a child interpreter parses `path` without crashing (a SyntaxError is fine:
    the caller reports it as for any file)."""
    check = (
        "import ast, sys\n"
        "try: ast.parse(open(sys.argv[1], 'rb').read())\n"
        "except SyntaxError: pass\n"
    )
    child = subprocess.run([sys.executable, "-c", check, str(path)], capture_output=True)
    return child.returncode == 0


def syntax_problem(exc: SyntaxError) -> str:
    """A SyntaxError as one line: "line N: what" (or "what" when no line is known)."""
    return f"line {exc.lineno}: {exc.msg}" if exc.lineno else str(exc.msg)


def scan_tree(tree: ast.Module, rel: Path) -> list[FlowInfo]:
    """The flows a file's syntax tree declares; `rel` is its path from the scanned root."""
    return [
        FlowInfo(flow_name(call, fn.name), fn.name, rel, fn.lineno, _parameters(fn.args))
        for fn, call in flow_functions(tree)
    ]


def flow_functions(
    tree: ast.Module,
) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef, ast.Call | None]]:
    """Each top-level function decorated with `@flow` (or an alias of it), with the
    decorator's call (None for a bare `@flow`)."""
    aliases = {"flow"}
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        if node.module.split(".")[0] in FLOW_MODULES:
            aliases.update(a.asname or a.name for a in node.names if a.name == "flow")
    for fn in top_level_functions(tree.body):
        for deco in fn.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call else deco
            if (isinstance(target, ast.Name) and target.id in aliases) or (
                isinstance(target, ast.Attribute) and target.attr == "flow"
            ):
                yield fn, call
                break  # one @flow per function


def top_level_functions(body: list[ast.stmt]) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Module-level functions, including those under a top-level `if`/`try`."""
    out: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append(node)
        elif isinstance(node, ast.If):
            out += top_level_functions(node.body) + top_level_functions(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                out += top_level_functions(block)
    return out


def flow_name(call: ast.Call | None, function: str) -> str:
    """The flow's `name=` when the decorator gives it as a literal, else the default name."""
    for kw in call.keywords if call else ():
        value = kw.value.value if isinstance(kw.value, ast.Constant) else None
        if kw.arg == "name" and isinstance(value, str):
            return value
    return default_flow_name(function)


def _parameters(args: ast.arguments) -> tuple[ParamInfo, ...]:
    """Named parameters only: `*args` and `**kwargs` cannot be given by name on the CLI."""
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    pairs = [
        *zip(positional, defaults, strict=True),
        *zip(args.kwonlyargs, args.kw_defaults, strict=True),
    ]
    return tuple(
        ParamInfo(
            name=arg.arg,
            annotation=ast.unparse(arg.annotation) if arg.annotation else None,
            default=ast.unparse(default) if default is not None else None,
            required=default is None,
        )
        for arg, default in pairs
    )
