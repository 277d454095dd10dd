"""Find flows in a project without running it, and load the one a target names.

Discovery reads source with `ast` only, so listing flows never executes user code. A function
counts as a flow when a decorator's name is `flow` (`@flow`, `@flow(...)`, `@orchlite.flow`,
`@x.flow(...)`) or an alias imported from `orchlite`/`prefect` (`from orchlite import flow as f`).

Targets accepted by `load_target`:

    path/to/file.py:name   a file (relative to the root, to the working directory, or absolute)
    path/to/file.py        the file's only flow
    package.module:name    imported with importlib, the root first on sys.path
    name                   a flow's name or function name among the project's flows
                           (its `FlowSource`, else `find_flows_with_errors(root)`),
                           `_` and `-` alike (see `orchlite.names`)
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import importlib.util
import os
import re
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Protocol

from orchlite.errors import LoadError, UsageError
from orchlite.names import default_flow_name, same_flow_name

SKIP_DIRS = frozenset(
    {"__pycache__", "node_modules", "tests", "test", "venv", "site-packages", "build", "dist"}
)
FLOW_MODULES = ("orchlite", "prefect")
"""The packages whose `flow` (and `cron`, `on_files`...) a flow file may import."""
_IMPORT_LOCK = threading.RLock()  # sys.modules and sys.path are shared by every thread


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


class FlowSource(Protocol):
    """Where a name is looked up: the project's flows, read once (`project_model.Project`)."""

    def flow_scan(self) -> FlowScan: ...


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


def load_target(target: str, root: Path, flows: FlowSource | None = None) -> object:
    """The object a target names (the caller checks that it is a flow).

    A name is looked up among `flows` (the project's, read once), else in the files under
    `root`, parsed now.
    """
    root = Path(root)
    where, sep, name = target.rpartition(":")
    if not sep or target.endswith(".py"):  # "C:\\x\\p.py" has a colon but names no flow
        if target.endswith(".py"):
            return _load_only_flow(target, root)
        return _load_by_name(target, root, flows)
    if not where or not name:
        raise UsageError(f"bad target '{target}': expected file.py:flow, module:flow or a name")
    if where.endswith(".py") or "/" in where or os.sep in where:
        path = _resolve_file(where, root)
        return _get_attr(load_file(path), name, _display(path))
    module = _import_module(where, root)
    return _get_attr(module, name, where)


def is_flow_name(target: str) -> bool:
    """Whether `target` names a flow by its name (not `file.py[:name]` or `module:name`)."""
    return ":" not in target and not target.endswith(".py")


def _file_part(target: str) -> tuple[str, str] | None:
    """(file path, ":name" or "") when `target` names a file, as `load_target` reads it."""
    where, sep, name = target.rpartition(":")
    if not sep or target.endswith(".py"):
        return (target, "") if target.endswith(".py") else None
    if where.endswith(".py") or "/" in where or os.sep in where:
        return where, f":{name}"
    return None


def absolute_target_file(target: str) -> Path | None:
    """The flow file an absolute `file.py[:name]` target names; None for any other target."""
    part = _file_part(target)
    if part is None:
        return None
    path = Path(part[0]).expanduser()
    return path if path.is_absolute() else None


def anchored_target(target: str, root: Path) -> str:
    """`target` naming the same file from `root` as it does from here.

    A relative file that only the working directory finds (`orch run flows.py:etl` in a
    subfolder holding flows.py) is rewritten relative to `root` (or made absolute when
    outside it), so the target still loads once the run has moved to the project root,
    and `orch retry` finds it from anywhere in the project.
    """
    part = _file_part(target)
    if part is None:
        return target
    where, suffix = part
    given = Path(where).expanduser()
    if given.is_absolute() or (root / given).is_file() or not (Path.cwd() / given).is_file():
        return target
    path = (Path.cwd() / given).resolve()
    if path.is_relative_to(Path(root).resolve()):
        path = path.relative_to(Path(root).resolve())
    return f"{path.as_posix()}{suffix}"


def _load_by_name(name: str, root: Path, source: FlowSource | None) -> object:
    flows, unreadable = source.flow_scan() if source else find_flows_with_errors(root)
    matches = [f for f in flows if same_flow_name(name, f.name) or same_flow_name(name, f.function)]
    if len(matches) == 1:
        path = root / matches[0].file
        return _get_attr(load_file(path), matches[0].function, _display(path))
    if matches:
        listed = ", ".join(f.target for f in matches)
        raise UsageError(f"several flows named '{name}' in {root}: {listed}; use file.py:function")
    _refuse_unreadable_holder(name, root, unreadable)
    known = sorted({f.name for f in flows} | {f.function for f in flows})
    raise UsageError(f"no flow named '{name}' in {root}{_suggest(name, known)}")


def _refuse_unreadable_holder(name: str, root: Path, unreadable: list[tuple[Path, str]]) -> None:
    """LoadError for the first file that could not be read but mentions `name`.

    Such a file most likely holds the flow asked for, so its error (a syntax error, say) is
    the answer, not "no flow named".
    """
    spellings = sorted({name, name.replace("-", "_")})
    mention = re.compile("|".join(rf"(?<![\w-]){re.escape(s)}(?![\w-])" for s in spellings))
    for rel, message in unreadable:
        path = root / rel
        try:
            if not mention.search(path.read_text(errors="replace")):
                continue
            parse_file(path)
        except SyntaxError as exc:
            raise LoadError(_syntax_error(path, exc)) from None
        except (OSError, ValueError):
            pass
        raise LoadError(f"{_display(path)}: {message}")


def _syntax_error(path: Path, exc: SyntaxError) -> str:
    where = f"{_display(path)}:{exc.lineno}" if exc.lineno else _display(path)
    return f"{where}: syntax error: {exc.msg}"


def _load_only_flow(where: str, root: Path) -> object:
    path = _resolve_file(where, root)
    try:
        flows = scan_tree(parse_file(path), Path(path.name))
    except SyntaxError as exc:
        raise LoadError(_syntax_error(path, exc)) from None
    if len(flows) != 1:
        found = ", ".join(f.function for f in flows) or "none"
        raise UsageError(f"{where} holds {len(flows)} flows ({found}); name one: {where}:<flow>")
    return _get_attr(load_file(path), flows[0].function, _display(path))


def _resolve_file(where: str, root: Path) -> Path:
    given = Path(where).expanduser()
    candidates = [given] if given.is_absolute() else [root / given, Path.cwd() / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise LoadError(f"no such file: {where}")


def load_file(path: Path) -> ModuleType:
    """Import a Python file by path; loading the same file again returns the same module.

    The module is registered in sys.modules before it runs (dataclasses and cloudpickle look
    it up there) and the file's folder goes first on sys.path, so sibling imports work, also
    from inside flow functions at run time.
    """
    path = Path(path).resolve()
    with _IMPORT_LOCK:
        return _load_file(path)


def _load_file(path: Path) -> ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    names = [f"__orch_{stem}_{digest}__"]
    if path.stem.isidentifier() and path.stem not in sys.stdlib_module_names:
        names.insert(0, path.stem)
    for name in names:
        existing = sys.modules.get(name)
        if existing is None:
            break
        if _same_file(getattr(existing, "__file__", None), path):
            return existing
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LoadError(f"{_display(path)}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(name, None)
        raise _import_error(exc, path) from None
    return module


def _import_module(dotted: str, root: Path) -> ModuleType:
    folder = str(root.resolve())
    try:
        with _IMPORT_LOCK:
            if folder not in sys.path:
                sys.path.insert(0, folder)
            return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name and (dotted == exc.name or dotted.startswith(exc.name + ".")):
            raise LoadError(f"no module named '{dotted}' (searched {root} and sys.path)") from None
        raise _import_error(exc, None) from None
    except (Exception, SystemExit) as exc:
        raise _import_error(exc, None) from None


def _import_error(exc: BaseException, path: Path | None) -> LoadError:
    """One line naming the file and line where importing failed."""
    if isinstance(exc, SyntaxError):
        where = exc.filename or (str(path) if path else "?")
        return LoadError(f"{_display(Path(where))}:{exc.lineno}: syntax error: {exc.msg}")
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith("<") and (path is None or _same_file(f.filename, path))
    ]
    shown = path if path is not None else (Path(frames[-1].filename) if frames else None)
    where = f"{_display(shown)}:{frames[-1].lineno}" if frames and shown else str(shown or "?")
    return LoadError(f"{where}: error while importing: {type(exc).__name__}: {exc}")


def _get_attr(module: ModuleType, name: str, shown: str) -> object:
    try:
        return getattr(module, name)
    except AttributeError:
        pass
    members = vars(module)
    flows = [k for k, v in members.items() if not isinstance(v, type) and _is_flow(v)]
    hint = _suggest(name, flows) or _suggest(name, [k for k in members if not k.startswith("_")])
    if not hint and flows:
        hint = f" (its flows: {', '.join(flows)})"
    raise UsageError(f"no flow '{name}' in {shown}{hint}")


def _is_flow(value: object) -> bool:
    try:
        return getattr(value, "__orch_flow__", False) is True
    except Exception:
        return False


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?" if close else ""


def _same_file(a: str | os.PathLike[str] | None, b: Path) -> bool:
    try:
        return a is not None and Path(a).resolve() == b.resolve()
    except OSError:
        return False


def _display(path: Path) -> str:
    """A path relative to the working directory when it is under it, else absolute."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)
