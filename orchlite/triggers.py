"""Triggers: start a flow when files change or when another flow ends.

    @flow(triggers=[on_files("data/incoming/*.csv"), on_flow("extract", states=["COMPLETED"])])
    def load(paths: list[Path] = [], upstream_run_id: str = ""): ...

or in `orch.toml` (read by `project.read_triggers`, without importing user code):

    [[trigger]]
    target = "etl.py:load"
    watch = ["data/incoming/*.csv"]    # file trigger; optional: debounce = 2.5 (seconds)

    [[trigger]]
    target = "etl.py:cleanup"
    after = "extract"                  # flow trigger: the upstream flow's name
    states = ["FAILED", "CRASHED"]     # default ["COMPLETED"]

    [[trigger]]
    command = "./notify.sh"            # a shell command instead of a flow (`shell_jobs`)
    after = "extract"

File triggers. The daemon watches the project root with watchfiles (inotify, in a background
thread: `orchlite.watcher`) and hands each batch of changed paths to `TriggerRunner.on_changes`.
A change matches a trigger when its
path relative to the project root matches one of its globs (`*` and `?` within a path
segment, `**` across segments). Changes under `.orch/`, `.git/` and `__pycache__/`, temp
files and editor swap files (`IGNORED_NAMES`) and deletions never match. Matching changes are
debounced: the trigger fires once its files have been quiet for `debounce_seconds` (default
1 s), with every path collected since it last fired. While the run it started last is still
unfinished it does not fire again: the changes arriving meanwhile are kept and start ONE
follow-up run after it ends. A flow with a parameter named `paths` receives the changed files
as a sorted list of absolute paths; other flows get no parameters. Runs have trigger "file".
Changes seen while no daemon runs are not replayed. When a trigger fires it also sweeps its
globs for matching files changed since its previous fire (`orchlite.file_sweep`), so the
events a burst drops from the kernel's bounded queue still reach a run.

Flow triggers. On each tick the daemon looks at the runs (from any process) of the upstream
flow, matched by flow name, that ended since the trigger's mark (minus `SLACK_SECONDS`, for
runs whose end is committed late) in one of the trigger's states, and records one run per
upstream run, id `flow_trigger_run_id(key, upstream run id)`, so a run fires once even across
restarts or two daemons. A trigger first seen by a daemon ignores runs that ended before.
The upstream run id goes to the downstream flow's `upstream_run_id` parameter when it declares
one, and is always recorded in the triggered run's first state message ("after <flow> run
<id> <STATE>", in `orch show ID --json`). Runs have trigger "flow".

Both kinds of run are claimed SCHEDULED (with a `schedule_slots` row under the trigger's
key) and started by the daemon like scheduled runs, within its `max_runs` limit.

Nothing here imports the store or watchfiles at import time; the daemon side (`TriggerRunner`)
takes the store as an argument.
"""

from __future__ import annotations

import ast
import fnmatch
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .file_sweep import FileSweep
from .literal_calls import build_literal_call
from .names import spellings
from .shell_jobs import COMMAND_KEYS, ENTRY_KEYS, RunOptions

if TYPE_CHECKING:
    from .store import Store

DEFAULT_DEBOUNCE = 1.0
SLACK_SECONDS = 10.0
PATHS_PARAMETER = "paths"
UPSTREAM_PARAMETER = "upstream_run_id"
FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED", "TIMED_OUT", "SKIPPED"})
IGNORED_DIRS = frozenset({".orch", ".git", "__pycache__", ".hg", ".svn", ".mypy_cache"})
IGNORED_NAMES = (
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    "*.tmp",
    "*.temp",
    "*.part",
    "*.crdownload",
    ".~lock.*",
    "4913",
    ".DS_Store",
)


@dataclass(frozen=True)
class FileTrigger:
    """Fire when files matching `globs` (relative to the project root) change."""

    globs: tuple[str, ...]
    debounce_seconds: float = DEFAULT_DEBOUNCE

    kind = "file"

    def describe(self) -> str:
        return f"files {', '.join(self.globs)} (debounce {self.debounce_seconds:g} s)"

    def definition(self) -> dict[str, Any]:
        return {"kind": "file", "globs": list(self.globs)}


@dataclass(frozen=True)
class FlowTrigger:
    """Fire when a run of the flow named `flow_name` ends in one of `states`."""

    flow_name: str
    states: tuple[str, ...] = ("COMPLETED",)

    kind = "flow"

    def describe(self) -> str:
        return f"after {self.flow_name} {'|'.join(self.states)}"

    def definition(self) -> dict[str, Any]:
        return {"kind": "flow", "flow": self.flow_name, "states": sorted(self.states)}


Trigger = FileTrigger | FlowTrigger


def on_files(*globs: str, debounce_seconds: float = DEFAULT_DEBOUNCE) -> FileTrigger:
    """A file trigger: `on_files("data/incoming/*.csv", debounce_seconds=2)`."""
    if len(globs) == 1 and isinstance(globs[0], (list, tuple)):
        globs = tuple(globs[0])
    if not globs:
        raise UsageError("on_files() needs at least one glob")
    for glob in globs:
        if not isinstance(glob, str) or not glob.strip():
            raise UsageError(f"invalid glob {glob!r}: expected a non-empty string")
        if PurePosixPath(glob).is_absolute() or ".." in PurePosixPath(glob).parts:
            raise UsageError(f"invalid glob {glob!r}: use a path relative to the project root")
    if isinstance(debounce_seconds, bool) or not isinstance(debounce_seconds, (int, float)):
        raise UsageError(f"invalid debounce {debounce_seconds!r}: expected seconds")
    if not 0 <= debounce_seconds <= 3600:
        raise UsageError(f"invalid debounce {debounce_seconds!r}: expected 0 to 3600 seconds")
    return FileTrigger(tuple(g.strip().lstrip("./") or g for g in globs), float(debounce_seconds))


def on_flow(flow_name: str, states: Iterable[str] = ("COMPLETED",)) -> FlowTrigger:
    """A flow trigger: `on_flow("extract", states=["FAILED"])` (the upstream's flow name)."""
    if not isinstance(flow_name, str) or not flow_name.strip():
        raise UsageError(f"invalid flow name {flow_name!r}")
    if isinstance(states, str):
        states = (states,)
    found = tuple(dict.fromkeys(str(s).upper() for s in states))
    if not found:
        raise UsageError("states must name at least one final state")
    bad = [s for s in found if s not in FINAL_STATES]
    if bad:
        raise UsageError(
            f"invalid state(s) {', '.join(bad)}: expected some of {', '.join(sorted(FINAL_STATES))}"
        )
    return FlowTrigger(flow_name.strip(), found)


def trigger_list(triggers: Any) -> list[Trigger]:
    """`@flow(triggers=...)` as a list (a single trigger is accepted too)."""
    if triggers is None:
        return []
    if isinstance(triggers, (FileTrigger, FlowTrigger)):
        triggers = [triggers]
    items = list(triggers)
    for item in items:
        if not isinstance(item, (FileTrigger, FlowTrigger)):
            raise TypeError(f"triggers must hold on_files(...) or on_flow(...), not {item!r}")
    return items


# -- entries: what project.read_triggers finds -------------------------------------------


@dataclass(frozen=True)
class TriggerEntry:
    """One trigger of one flow, with where it was declared."""

    source: str
    """"code" or "orch.toml"."""
    where: str
    target: str
    flow_name: str
    trigger: Trigger
    wants_paths: bool = False
    wants_upstream: bool = False
    options: RunOptions = field(default_factory=RunOptions)
    """How its runs start: working directory, environment, a command's timeout and retries."""

    @property
    def key(self) -> str:
        return trigger_key(self.target, self.trigger)


def trigger_key(target: str, trigger: Trigger) -> str:
    """`f"{target}|{kind}|{16 hex}"`: stable for the same definition (debounce left out)."""
    text = json.dumps(trigger.definition(), sort_keys=True, separators=(",", ":"))
    return f"{target}|{trigger.kind}|{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def flow_trigger_run_id(key: str, upstream_run_id: str) -> str:
    """The run a flow trigger starts for one upstream run: the same in every process."""
    return hashlib.sha256(f"{key}|{upstream_run_id}".encode()).hexdigest()[:32]


def accepted_parameters(names: Iterable[str]) -> tuple[bool, bool]:
    """(has a `paths` parameter, has an `upstream_run_id` parameter), given a flow's named
    parameters as read from source."""
    named = set(names)
    return PATHS_PARAMETER in named, UPSTREAM_PARAMETER in named


def from_call(node: ast.expr, factories: dict[str, str]) -> Trigger:
    """A literal `on_files(...)` / `on_flow(...)` call read from source; UsageError if not."""
    trigger: Trigger = build_literal_call(
        node, factories, {"on_files": on_files, "on_flow": on_flow}, "trigger"
    )
    return trigger


TOML_KEYS = frozenset(
    {"target", "watch", "debounce", "after", "states", "name", *ENTRY_KEYS, *COMMAND_KEYS}
)


def from_toml(item: Any) -> Trigger:
    """The trigger of one `[[trigger]]` table (its target is checked by the caller)."""
    if not isinstance(item, dict):
        raise UsageError("expected a table")
    unknown = sorted(set(item) - TOML_KEYS)
    if unknown:
        raise UsageError(f"unknown key(s): {', '.join(unknown)}")
    if ("watch" in item) == ("after" in item):
        raise UsageError("give exactly one of watch (file trigger) or after (flow trigger)")
    if "watch" in item:
        if "states" in item:
            raise UsageError("states belongs to an `after` trigger")
        watch = item["watch"]
        globs = [watch] if isinstance(watch, str) else watch
        if not isinstance(globs, list):
            raise UsageError("watch must be a glob or a list of globs")
        return on_files(*globs, debounce_seconds=item.get("debounce", DEFAULT_DEBOUNCE))
    if "debounce" in item:
        raise UsageError("debounce belongs to a `watch` trigger")
    states = item.get("states", ["COMPLETED"])
    if not isinstance(states, (list, str)):
        raise UsageError("states must be a list of state names")
    return on_flow(item["after"], states)


# -- matching files ---------------------------------------------------------------------


def is_ignored(rel: str) -> bool:
    """Whether a changed path (relative, POSIX) is never a trigger's business."""
    parts = PurePosixPath(rel).parts
    if not parts or any(p in IGNORED_DIRS for p in parts[:-1]) or parts[0] in IGNORED_DIRS:
        return True
    return any(fnmatch.fnmatchcase(parts[-1], pattern) for pattern in IGNORED_NAMES)


def glob_match(pattern: str, rel: str) -> bool:
    """`*`/`?`/`[...]` within one segment, `**` for any number of segments."""
    return _match(PurePosixPath(pattern).parts, PurePosixPath(rel).parts)


def _match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _match(rest, parts[1:])


def _matcher(globs: Sequence[str]) -> Callable[[str], bool]:
    return lambda rel: not is_ignored(rel) and any(glob_match(g, rel) for g in globs)


# -- debounce and coalescing (pure: the caller passes the times) -------------------------


@dataclass
class _Pending:
    paths: set[str] = field(default_factory=set)
    last_event: float = 0.0


class Debouncer:
    """Collects changed paths per trigger key and says when each trigger should fire.

    `add(key, paths, at)` records changes; `ready(at, window, busy)` returns, and forgets,
    every trigger quiet for its window (`window(key)` seconds since its last change) that
    is not `busy(key)` (its previous run still unfinished), with its paths sorted. Changes
    of a busy trigger stay pending, so they become one follow-up run. Thread-safe.
    """

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def add(self, key: str, paths: Iterable[str], at: float) -> None:
        with self._lock:
            pending = self._pending.setdefault(key, _Pending())
            pending.paths.update(paths)
            pending.last_event = max(pending.last_event, at)

    def ready(
        self,
        at: float,
        window: Callable[[str], float],
        busy: Callable[[str], bool] = lambda key: False,
    ) -> list[tuple[str, list[str]]]:
        out = []
        with self._lock:
            for key, pending in list(self._pending.items()):
                if at - pending.last_event < window(key) or busy(key):
                    continue
                del self._pending[key]
                out.append((key, sorted(pending.paths)))
        return out

    def forget(self, keep: Iterable[str]) -> None:
        """Drop pending changes of triggers that no longer exist."""
        keep = set(keep)
        with self._lock:
            for key in set(self._pending) - keep:
                del self._pending[key]

    def __len__(self) -> int:
        return len(self._pending)


# -- the daemon side --------------------------------------------------------------------


class TriggerRunner:
    """What the daemon does for triggers: match changed files, find ended upstream runs,
    claim runs.

    `update(entries)` after each reload; `on_changes(paths, at)` with the paths the project
    watcher saw change; `tick(now)` once per daemon tick returns the ids of the runs it
    claimed.
    """

    def __init__(self, store: Store, root: Path, log: Callable[[str], None]) -> None:
        self.store = store
        self.root = Path(root)
        self.log = log
        self.entries: list[TriggerEntry] = []
        self.debouncer = Debouncer()
        self.last_run: dict[str, str] = {}  # file trigger key -> the run it started last
        self._files: list[TriggerEntry] = []
        self._lock = threading.Lock()
        self.clock: Callable[[], float] = time.monotonic
        self.sweep = FileSweep(self.root, IGNORED_DIRS)

    def update(self, entries: Sequence[TriggerEntry]) -> None:
        with self._lock:
            self.entries = list(entries)
            self._files = [e for e in entries if isinstance(e.trigger, FileTrigger)]
        self.debouncer.forget(e.key for e in self._files)
        self.sweep.watch(e.key for e in self._files)

    # -- files ----------------------------------------------------------------------------

    def on_changes(self, paths: Iterable[str], at: float) -> None:
        """Record changed absolute paths against the file triggers they match."""
        root = self.root.resolve()
        with self._lock:
            files = list(self._files)
        hits: dict[str, set[str]] = {}
        for path in paths:
            try:
                rel = Path(path).relative_to(root).as_posix()
            except ValueError:
                continue
            if is_ignored(rel):
                continue
            for entry in files:
                assert isinstance(entry.trigger, FileTrigger)
                if any(glob_match(g, rel) for g in entry.trigger.globs):
                    hits.setdefault(entry.key, set()).add(str(root / rel))
        for key, found in hits.items():
            self.debouncer.add(key, found, at)

    # -- a tick -----------------------------------------------------------------------------

    def tick(self, now: float) -> list[str]:
        """Claim the runs of file triggers that are due and of flow triggers that matched."""
        return self._fire_files(now) + self._fire_flows(now)

    def _fire_files(self, now: float) -> list[str]:
        by_key = {e.key: e for e in self._files}
        fired = []

        def window(key: str) -> float:
            entry = by_key.get(key)
            return entry.trigger.debounce_seconds if entry else 0.0  # type: ignore[union-attr]

        for key, reported in self.debouncer.ready(self.clock(), window, self._busy):
            entry = by_key.get(key)
            if entry is None:
                continue
            globs = entry.trigger.globs  # type: ignore[union-attr]
            paths = self.sweep.collect(key, globs, _matcher(globs), reported)
            if not paths:
                continue
            params = {PATHS_PARAMETER: paths} if entry.wants_paths else {}
            run_id = uuid.uuid4().hex
            message = (
                f"{len(paths)} changed file(s): "
                + ", ".join(Path(p).relative_to(self.root.resolve()).as_posix() for p in paths[:5])
                + (" ..." if len(paths) > 5 else "")
            )
            self.store.claim_trigger_run(
                run_id=run_id,
                key=key,
                flow_name=entry.flow_name,
                name=f"{entry.flow_name}-files-{run_id[:8]}",
                target=entry.target,
                parameters=json.dumps(params),
                trigger="file",
                message=message,
                now=now,
                started_by=entry.trigger.describe(),
                run_options=entry.options.stored(),
            )
            self.last_run[key] = run_id
            fired.append(run_id)
            self.log(f"fire {entry.target} on {message} run {run_id[:12]}")
        return fired

    def _busy(self, key: str) -> bool:
        run_id = self.last_run.get(key)
        if run_id is None:
            return False
        try:
            state = self.store.get_flow_run(run_id).state
        except Exception:
            return False
        return state not in FINAL_STATES

    def _fire_flows(self, now: float) -> list[str]:
        fired = []
        for entry in self.entries:
            trigger = entry.trigger
            if not isinstance(trigger, FlowTrigger):
                continue
            key = entry.key
            first_seen = self.store.schedule_mark(f"{key}|since", now)
            mark = self.store.schedule_mark(key, now)
            since = max(first_seen, mark - SLACK_SECONDS)
            newest = mark
            names = spellings(trigger.flow_name)
            for upstream in self.store.ended_flow_runs(names, trigger.states, since):
                newest = max(newest, upstream.ended or newest)
                run_id = flow_trigger_run_id(key, upstream.id)
                params = {UPSTREAM_PARAMETER: upstream.id} if entry.wants_upstream else {}
                message = f"after {upstream.flow_name} run {upstream.id} {upstream.state}"
                claimed = self.store.claim_trigger_run(
                    run_id=run_id,
                    key=key,
                    flow_name=entry.flow_name,
                    name=f"{entry.flow_name}-after-{upstream.id[:8]}",
                    target=entry.target,
                    parameters=json.dumps(params),
                    trigger="flow",
                    message=message,
                    now=now,
                    started_by=trigger.describe(),
                    run_options=entry.options.stored(),
                )
                if claimed:
                    fired.append(run_id)
                    self.log(f"fire {entry.target} {message} run {run_id[:12]}")
            self.store.move_trigger_mark(key, min(newest, now), now)
        return fired
