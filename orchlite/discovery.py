"""Load the object a target names: a file's flow, a module's, or a flow found by its name.

Finding flows reads source only (`orchlite.flow_source`); only the file (or module) that holds
the flow asked for is imported.

Targets accepted by `load_target`:

    path/to/file.py:name   a file (relative to the root, to the working directory, or absolute)
    path/to/file.py        the file's only flow
    package.module:name    imported with importlib, the root first on sys.path
    name                   a flow's name or function name among the project's flows
                           (its `FlowSource`, else `find_flows_with_errors(root)`),
                           `_` and `-` alike (see `orchlite.names`)
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import os
import re
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import Protocol

from .errors import LoadError, UsageError
from .flow_source import (
    FlowInfo,
    FlowScan,
    ParamInfo,
    find_flows,
    find_flows_with_errors,
    parse_file,
    scan_tree,
)
from .names import same_flow_name

__all__ = [
    "FlowInfo",
    "FlowSource",
    "ParamInfo",
    "absolute_target_file",
    "anchored_target",
    "find_flows",
    "find_flows_with_errors",
    "is_flow_name",
    "load_file",
    "load_target",
]
"""Also what reading flows from source gives (`flow_source`), as this module's callers knew it."""

_IMPORT_LOCK = threading.RLock()  # sys.modules and sys.path are shared by every thread


class FlowSource(Protocol):
    """Where a name is looked up: the project's flows, read once (`project_model.Project`)."""

    def flow_scan(self) -> FlowScan: ...


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
