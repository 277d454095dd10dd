"""The flow files of a project, read once: what the project model (`orchlite.project_model`)
reads its flows, schedules and triggers from.

Reading a project's declarations means parsing every `.py` file under its root, to find the
few that declare flows and to report the ones that do not parse. Most files declare none,
and parsing them again and again is most of the cost (a second for 500 files), so:

- `.orch/declarations.json` remembers, per file (its path relative to the root), the
  modification time (ns) and size at which it was parsed, and what it declared: under
  `files`, the files that declare no flow; under `flows`, the others with their flows (name,
  function, line, parameters: what `orch flows` lists and `orch run NAME` looks up) and
  whether one of them declares schedules or triggers. While both stamps are unchanged the
  file is not read at all, except a file whose `@flow(...)` declares schedules or triggers:
  its syntax tree is what their readers need, so it is parsed when they ask
  (`FlowFile.tree`). A file that does not parse is parsed each time (its error is reported
  each time).
- A file modified less than `SETTLE_SECONDS` ago is not remembered, since an edit within the
  same clock tick that keeps the size would otherwise go unseen.
- The cache is JSON, never a pickle, and is read only when it is a regular file owned by
  the current user and writable by nobody else, in a `.orch/` that already exists (it never
  creates one); any other file, or content of another shape, counts as an empty cache.
  It is written to a temporary file and renamed, so a reader never sees half of it.
- Within one process, the trees of the files parsed are kept by path, time and size, so
  reading the schedules and then the triggers parses each once.

A file "declares flows" when `flow_source.scan_tree` finds a flow in it: a top-level function
(under `if`/`try` included) decorated with `flow`, `x.flow`, or a name imported from
orchlite or prefect as `flow`.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .blobs import write_private
from .flow_source import FlowInfo, ParamInfo, flow_functions, parse_file, python_files, scan_tree

CACHE_FILE = "declarations.json"
FORMAT = 2
"""The version of the cache file's shape; another version is ignored (and rewritten)."""
SETTLE_SECONDS = 2.0
DECLARING_KEYWORDS = frozenset({"schedules", "triggers"})
"""The `@flow(...)` keywords whose readers need the file's syntax tree."""

Parsed = ast.Module | SyntaxError | OSError | ValueError
"""A file's syntax tree, or why it cannot be read."""

_trees: dict[str, tuple[tuple[int, int], ast.Module]] = {}
_trees_lock = threading.Lock()


@dataclass(frozen=True)
class FlowFile:
    """A file that declares flows, as the cache or a parse read it."""

    path: Path
    stamp: tuple[int, int]
    """Its modification time (ns) and size when read."""
    flows: tuple[FlowInfo, ...]
    declares: bool
    """Whether a `@flow(...)` in it declares schedules or triggers."""

    def tree(self) -> ast.Module:
        """Its syntax tree (parsed now unless this process holds it at the same stamp);
        SyntaxError, OSError or ValueError when it can no longer be read."""
        return _held(self.path, self.stamp) or _hold(self.path, self.stamp, parse_file(self.path))


Read = FlowFile | SyntaxError | OSError | ValueError
"""A file that declares flows, or why a file cannot be read."""


def read_flow_files(root: Path) -> list[tuple[Path, Read]]:
    """Each `.py` file under `root` that declares flows or cannot be read, sorted, as (its
    path relative to `root`, what it declares or the error reading it); see the module
    docstring."""
    root = Path(root)
    cache_path = root / ".orch" / CACHE_FILE
    known = _load(cache_path)
    kept: dict[str, dict[str, list[Any]]] = {"files": {}, "flows": {}}
    found: list[tuple[Path, Read]] = []
    settled = time.time_ns() - int(SETTLE_SECONDS * 1e9)
    for path in sorted(python_files(root)):
        rel = path.relative_to(root)
        key = rel.as_posix()
        try:
            info = os.stat(path)
        except OSError as exc:
            found.append((rel, exc))
            continue
        stamp = (info.st_mtime_ns, info.st_size)
        for section in ("files", "flows"):
            entry = known[section].get(key)
            if entry is not None and (entry[0], entry[1]) == stamp:
                kept[section][key] = entry
                if section == "flows":
                    found.append((rel, _flow_file(path, rel, entry)))
                break
        else:
            try:
                flow_file = _parsed(path, rel, stamp)
            except (SyntaxError, OSError, ValueError) as exc:
                found.append((rel, exc))
                continue
            if flow_file is not None:
                found.append((rel, flow_file))
            if info.st_mtime_ns < settled:
                if flow_file is None:
                    kept["files"][key] = [*stamp, "none"]
                else:
                    kept["flows"][key] = [*stamp, flow_file.declares, _flows_json(flow_file)]
    if kept != known:
        _save(cache_path, kept)
    return found


def flow_files(root: Path) -> list[tuple[Path, Parsed]]:
    """Each `.py` file under `root` that declares flows or cannot be read, sorted, as (its
    path relative to `root`, its tree or the error reading it)."""
    out: list[tuple[Path, Parsed]] = []
    for rel, read in read_flow_files(root):
        if isinstance(read, FlowFile):
            try:
                out.append((rel, read.tree()))
            except (SyntaxError, OSError, ValueError) as exc:  # changed since
                out.append((rel, exc))
        else:
            out.append((rel, read))
    return out


def _parsed(path: Path, rel: Path, stamp: tuple[int, int]) -> FlowFile | None:
    """The file parsed now: what it declares, or None when it declares no flow."""
    tree = _held(path, stamp) or parse_file(path)
    flows = tuple(scan_tree(tree, rel))
    if not flows:
        return None
    _hold(path, stamp, tree)
    declares = any(
        kw.arg in DECLARING_KEYWORDS
        for _fn, call in flow_functions(tree)
        for kw in (call.keywords if call else ())
    )
    return FlowFile(path, stamp, flows, declares)


def _held(path: Path, stamp: tuple[int, int]) -> ast.Module | None:
    """The tree of a flow file this process parsed at the same time and size."""
    with _trees_lock:
        held = _trees.get(str(path))
    return held[1] if held is not None and held[0] == stamp else None


def _hold(path: Path, stamp: tuple[int, int], tree: ast.Module) -> ast.Module:
    with _trees_lock:
        _trees[str(path)] = (stamp, tree)
    return tree


def _flows_json(flow_file: FlowFile) -> list[Any]:
    return [
        [f.name, f.function, f.line, [[p.name, p.annotation, p.default] for p in f.parameters]]
        for f in flow_file.flows
    ]


def _flow_file(path: Path, rel: Path, entry: list[Any]) -> FlowFile:
    """A remembered `flows` entry (checked by `_load`) as a FlowFile."""
    flows = tuple(
        FlowInfo(
            name,
            function,
            rel,
            line,
            tuple(
                ParamInfo(p, annotation, default, default is None)
                for p, annotation, default in params
            ),
        )
        for name, function, line, params in entry[3]
    )
    return FlowFile(path, (entry[0], entry[1]), flows, entry[2])


def _load(path: Path) -> dict[str, dict[str, list[Any]]]:
    """The remembered files, or none for a missing, untrusted or malformed cache."""
    empty: dict[str, dict[str, list[Any]]] = {"files": {}, "flows": {}}
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return empty
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return empty
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return empty
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return empty
    files, flows = data.get("files"), data.get("flows")
    if not isinstance(files, dict) or not isinstance(flows, dict):
        return empty
    return {
        "files": {
            key: entry
            for key, entry in files.items()
            if isinstance(key, str) and _stamped(entry, 3) and entry[2] == "none"
        },
        "flows": {
            key: entry
            for key, entry in flows.items()
            if isinstance(key, str)
            and _stamped(entry, 4)
            and isinstance(entry[2], bool)
            and _flows_shape(entry[3])
        },
    }


def _stamped(entry: object, length: int) -> bool:
    return (
        isinstance(entry, list)
        and len(entry) == length
        and all(isinstance(n, int) and not isinstance(n, bool) for n in entry[:2])
    )


def _flows_shape(flows: object) -> bool:
    """Whether remembered flows have the shape `_flows_json` writes."""
    if not isinstance(flows, list) or not flows:
        return False
    for flow in flows:
        if not (isinstance(flow, list) and len(flow) == 4):
            return False
        name, function, line, params = flow
        if not (isinstance(name, str) and isinstance(function, str) and isinstance(params, list)):
            return False
        if not isinstance(line, int) or isinstance(line, bool):
            return False
        for param in params:
            if not (isinstance(param, list) and len(param) == 3 and isinstance(param[0], str)):
                return False
            if not all(v is None or isinstance(v, str) for v in param[1:]):
                return False
    return True


def _save(path: Path, cache: dict[str, dict[str, list[Any]]]) -> None:
    """Write the cache atomically, if its `.orch/` exists and is ours; never an error."""
    try:
        folder = os.lstat(path.parent)
        if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != os.getuid():
            return
        temporary = path.with_name(f".{CACHE_FILE}.{os.getpid()}.{threading.get_ident()}")
        write_private(temporary, json.dumps({"format": FORMAT, **cache}))
        os.replace(temporary, path)
    except OSError:
        return  # a read-only or full disk: the next call parses again
