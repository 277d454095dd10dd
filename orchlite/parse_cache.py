"""The flow files of a project, parsed once: what `orch schedules`, `orch upcoming` and the
daemon read their `@flow(...)` declarations from.

Reading a project's declarations means parsing every `.py` file under its root, to find the
few that declare flows and to report the ones that do not parse. Most files declare none,
and parsing them again and again is most of the cost (a second for 500 files), so:

- `.orch/declarations.json` remembers, per file (its path relative to the root), the
  modification time (ns) and size at which it parsed and declared no flow. While both are
  unchanged the file is not read at all. A file that declares flows is parsed each time (its
  syntax tree is what the readers need), and so is one that does not parse (its error is
  reported each time).
- A file modified less than `SETTLE_SECONDS` ago is not remembered, since an edit within the
  same clock tick that keeps the size would otherwise go unseen.
- The cache is JSON, never a pickle, and is read only when it is a regular file owned by
  the current user and writable by nobody else, in a `.orch/` that already exists (it never
  creates one); any other file, or content of another shape, counts as an empty cache.
  It is written to a temporary file and renamed, so a reader never sees half of it.
- Within one process, the trees of the files that declare flows are kept by path, time and
  size, so reading the schedules and then the triggers parses each once.

A file that "declares no flow" has no top-level function (under `if`/`try` included) with a
decorator named `flow`, `x.flow`, or a name imported (at the top level) as `flow`: a looser
test than the readers' own, so a file it lets through may still declare nothing, never the
reverse.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

from .blobs import write_private
from .discovery import parse_file, python_files, top_level_functions

CACHE_FILE = "declarations.json"
FORMAT = 1
"""The version of the cache file's shape; another version is ignored (and rewritten)."""
SETTLE_SECONDS = 2.0

Parsed = ast.Module | SyntaxError | OSError | ValueError
"""A file's syntax tree, or why it cannot be read."""

_trees: dict[str, tuple[tuple[int, int], ast.Module]] = {}
_trees_lock = threading.Lock()


def flow_files(root: Path) -> list[tuple[Path, Parsed]]:
    """Each `.py` file under `root` that may declare flows, sorted, as (its path relative to
    `root`, its tree or the error reading it); see the module docstring."""
    root = Path(root)
    cache_path = root / ".orch" / CACHE_FILE
    known = _load(cache_path)
    kept: dict[str, list[Any]] = {}
    found: list[tuple[Path, Parsed]] = []
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
        entry = known.get(key)
        if entry is not None and (entry[0], entry[1]) == stamp:
            kept[key] = entry
            continue
        try:
            tree = _tree(path, stamp)
        except (SyntaxError, OSError, ValueError) as exc:
            found.append((rel, exc))
            continue
        if tree is not None:
            found.append((rel, tree))
        elif info.st_mtime_ns < settled:
            kept[key] = [*stamp, "none"]
    if kept != known:
        _save(cache_path, kept)
    return found


def declares_flows(tree: ast.Module) -> bool:
    """Whether a top-level function may be a flow: see the module docstring."""
    names = {"flow"}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names.update(a.asname for a in node.names if a.name == "flow" and a.asname)
    for fn in top_level_functions(tree.body):
        for deco in fn.decorator_list:
            func = deco.func if isinstance(deco, ast.Call) else deco
            if (isinstance(func, ast.Name) and func.id in names) or (
                isinstance(func, ast.Attribute) and func.attr == "flow"
            ):
                return True
    return False


def _tree(path: Path, stamp: tuple[int, int]) -> ast.Module | None:
    """`parse_file(path)` if it declares flows (else None), or the tree this process parsed
    at the same time and size."""
    key = str(path)
    with _trees_lock:
        held = _trees.get(key)
    if held is not None and held[0] == stamp:
        return held[1]
    tree = parse_file(path)
    if not declares_flows(tree):
        return None
    with _trees_lock:
        _trees[key] = (stamp, tree)
    return tree


def _load(path: Path) -> dict[str, list[Any]]:
    """The remembered files, or {} for a missing, untrusted or malformed cache."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            return {}
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    files = data.get("files")
    if not isinstance(files, dict):
        return {}
    return {
        key: entry
        for key, entry in files.items()
        if isinstance(key, str)
        and isinstance(entry, list)
        and len(entry) == 3
        and all(isinstance(n, int) and not isinstance(n, bool) for n in entry[:2])
        and entry[2] == "none"
    }


def _save(path: Path, files: dict[str, list[Any]]) -> None:
    """Write the cache atomically, if its `.orch/` exists and is ours; never an error."""
    try:
        folder = os.lstat(path.parent)
        if not stat.S_ISDIR(folder.st_mode) or folder.st_uid != os.getuid():
            return
        temporary = path.with_name(f".{CACHE_FILE}.{os.getpid()}.{threading.get_ident()}")
        write_private(temporary, json.dumps({"format": FORMAT, "files": files}))
        os.replace(temporary, path)
    except OSError:
        return  # a read-only or full disk: the next call parses again
