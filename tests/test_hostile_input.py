"""Hostile input, generated: `-p` strings, `orch.toml` contents, run ids and cron strings.

Whatever is typed, `orch` answers bad input with one line per problem on stderr
(`error: ...`), exit code 2 (bad usage) or 3 (a project file that cannot be loaded), never a
traceback or an "internal error", and writes nothing: the `.orch/` database dump and file
list are the same before and after.

Most examples call `orchlite.cli.main()` in this process with `sys.argv` set and stdout and
stderr captured: the same entry point, error boundary and exit codes as the console script,
without an interpreter start per example. A few examples run `python -m orchlite.cli` as a
child process, with arguments given as raw bytes (invalid UTF-8 too), to check what a real
terminal sees. Each crash these tests found is kept as an explicit `@example`.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchlite import cli
from orchlite.errors import UsageError
from orchlite.parse_cache import CACHE_FILE
from orchlite.schedule_slots import next_fire_times
from orchlite.schedules import cron

FLOW = """
import datetime as dt
import enum
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from orchlite import flow


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: int = 0


@flow
def typed(
    n: int = 1,
    ratio: float = 0.5,
    flag: bool = False,
    name: str = "x",
    day: dt.date | None = None,
    at: dt.datetime | None = None,
    ids: list[int] | None = None,
    pair: tuple[int, str] | None = None,
    tags: set[str] | None = None,
    counts: dict[str, int] | None = None,
    mode: Literal["a", "b", 3] = "a",
    color: Color = Color.RED,
    amount: Decimal | None = None,
    key: uuid.UUID | None = None,
    where: Path | None = None,
    point: Point | None = None,
    anything=None,
) -> int:
    return n


@flow
def plain() -> int:
    return 0
"""

PARAMETERS = [
    "n", "ratio", "flag", "name", "day", "at", "ids", "pair", "tags", "counts", "mode",
    "color", "amount", "key", "where", "point", "anything",
]  # fmt: skip

fast = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- the project, the command, and "nothing written" -----------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the flow file above and one recorded run of each flow."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "flow.py").write_text(FLOW)
    for target in ("flow.py:typed", "flow.py:plain"):
        child = subprocess.run(
            [sys.executable, "-m", "orchlite.cli", "run", target],
            cwd=root,
            env=_env(root),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert child.returncode == 0, child.stderr
    return root


@pytest.fixture(scope="module")
def command() -> Any:
    """The click command typer builds from `cli.app`, built once instead of per call."""
    return typer.main.get_command(cli.app)


@pytest.fixture
def home(project: Path, command: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ORCH_HOME", str(project / ".orch"))
    monkeypatch.chdir(project)
    monkeypatch.setattr(cli, "app", command)  # what `app(...)` calls, without the rebuild
    yield project / ".orch"
    with contextlib.suppress(FileNotFoundError):
        (project / "orch.toml").unlink()


def _env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update(ORCH_HOME=str(root / ".orch"), NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def orch(*args: str) -> tuple[int, str, str]:
    """`orch ARGS` through `cli.main()` in this process: (exit code, stdout, stderr).

    `cli.main()` is the console script's entry point: the same parsing, error boundary and
    exit codes; only the interpreter start is saved.
    """
    out, err = io.StringIO(), io.StringIO()
    engine = logging.getLogger("orchlite.engine")
    saved = (list(logging.getLogger("orchlite").handlers), engine.level)
    code: int | str | None = 0
    try:
        with (
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            _argv(["orch", *args]),
        ):
            cli.main()
    except SystemExit as exc:
        code = exc.code
    finally:
        logging.getLogger("orchlite").handlers[:] = saved[0]  # `orch run` adds a console one
        engine.setLevel(saved[1])
    assert isinstance(code, int), code
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


class Fingerprint:
    """The files of `.orch/` (not SQLite's -wal/-shm, nor the parse cache, which reading a
    project may refresh) and the database's data version.

    `PRAGMA data_version` on a connection held open here changes whenever any other
    connection commits, so an unchanged fingerprint means nothing at all was written.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.conn = sqlite3.connect(home / "orch.db")

    def __call__(self) -> tuple[list[str], int]:
        files = sorted(
            p.relative_to(self.home).as_posix()
            for p in self.home.rglob("*")
            if "orch.db-" not in p.name and p.name != CACHE_FILE
        )
        return files, self.conn.execute("PRAGMA data_version").fetchone()[0]


@pytest.fixture
def fingerprint(home: Path) -> Iterator[Fingerprint]:
    taken = Fingerprint(home)
    yield taken
    taken.conn.close()


def assert_refused(code: int, stderr: str, *, codes: tuple[int, ...] = (2, 3)) -> list[str]:
    """Exit 2 or 3, every stderr line an `error: ...` line, no traceback."""
    assert code in codes, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "no message"
    assert all(line.startswith("error: ") for line in lines), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return lines


def assert_one_line(code: int, stderr: str) -> str:
    [line] = assert_refused(code, stderr)
    return line


# -- `-p key=value` ----------------------------------------------------------------------------

SURROGATES = st.sampled_from(["\udcff", "\udc80", "\udcc3"])  # invalid UTF-8 from a terminal
texts = st.text(max_size=40) | st.builds(
    "".join, st.lists(st.text(max_size=3) | SURROGATES, max_size=6)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
shaped = st.sampled_from(
    [
        "[" * 5000,
        "[" * 5000 + "]" * 5000,
        '{"x": ' * 3000 + "1" + "}" * 3000,
        "9" * 5000,
        "1e400",
        "-0",
        "nan",
        "2026-02-30",
        "2026-11-20T25:00:00Z",
        "Z",
        "red,blue",
        ",",
        "null",
        "None",
        "\x00",
    ]
)
values = (
    texts
    | shaped
    | json_values.map(lambda v: json.dumps(v, allow_nan=True))
    | st.integers().map(str)
    | st.floats().map(repr)
)
keys = st.sampled_from(PARAMETERS) | st.text(max_size=8)
assignments = st.lists(
    st.tuples(keys, values).map(lambda kv: f"{kv[0]}={kv[1]}") | texts, min_size=1, max_size=4
)


@fast
@given(pairs=assignments)
@example(pairs=["ids=" + "[" * 5000 + "]" * 5000])  # RecursionError: was an internal error
@example(pairs=["point=" + '{"x": ' * 3000 + "1" + "}" * 3000])
@example(pairs=["counts=" + "[" * 5000])
def test_parameter_strings(home: Path, fingerprint: Fingerprint, pairs: list[str]) -> None:
    before = fingerprint()
    code, _, err = orch("run", "flow.py:typed", *[a for pair in pairs for a in ("-p", pair)])
    if code == 0:
        return  # a valid set of parameters: the run was recorded
    line = assert_one_line(code, err)
    assert "parameter" in line, line
    assert fingerprint() == before


@settings(fast, max_examples=50)
@given(document=json_values | st.text(max_size=30))
@example(document='{"ids": ' + "[" * 5000 + "]" * 5000 + "}")  # was an internal error
def test_parameters_files(
    fingerprint: Fingerprint, tmp_path_factory: pytest.TempPathFactory, document: object
) -> None:
    path = tmp_path_factory.mktemp("params") / "params.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    before = fingerprint()
    code, _, err = orch("run", "flow.py:typed", "--params-file", str(path))
    if code == 0:
        return
    assert_one_line(code, err)
    assert fingerprint() == before


def test_a_params_file_nested_deeper_than_python_recurses(
    fingerprint: Fingerprint, tmp_path: Path
) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"ids": ' + "[" * 100_000 + "]" * 100_000 + "}")
    before = fingerprint()
    code, _, err = orch("run", "flow.py:typed", "--params-file", str(path))
    assert "nested too deeply" in assert_one_line(code, err)
    assert fingerprint() == before


# -- run id arguments --------------------------------------------------------------------------

run_refs = (
    texts
    | st.text(alphabet="0123456789abcdefABCDEF", max_size=40)
    | st.sampled_from(["last", "LAST", "%", "_", "*", "'", "' OR 1=1 --", "-", "--", "-h"])
)


@settings(fast, max_examples=60)
@given(command=st.sampled_from(["show", "logs", "cancel", "retry"]), ref=run_refs)
@example(command="show", ref="\udcff")
@example(command="retry", ref="last")
def test_run_id_arguments(home: Path, fingerprint: Fingerprint, command: str, ref: str) -> None:
    before = fingerprint()
    code, _, err = orch(command, "--", ref)
    if code != 0:
        assert_one_line(code, err)
    # Every recorded run completed: show, logs and cancel only read; retry refuses.
    assert command != "retry" or code == 2
    assert fingerprint() == before


# -- cron strings ------------------------------------------------------------------------------

cron_tokens = st.sampled_from(
    ["*", "?", "L", "W", "1W", "L-1", "5L", "1#2", "H", "R", "mon", "JAN", "sun-sat", "*/0",
     "0", "59", "60", "-1", "99999999999999999999", "1-", "-", ",", "/", "1/2", "*/7", "31",
     "2", "29", "0-59/15", "1,2,3", "feb", "7", "8", "@", "#", "\t", "１"]
)  # fmt: skip
cron_fields = st.lists(cron_tokens | st.text(max_size=4), min_size=1, max_size=3).map(",".join)
cron_strings = (
    st.lists(cron_fields, min_size=1, max_size=7).map(" ".join)
    | st.sampled_from(["@daily", "@HOURLY", "@reboot", "@", "", "   ", "0 0 30 2 *", "0 0 31 4 *"])
    | st.text(max_size=30)
)
zones = st.sampled_from(["UTC", "Europe/Berlin", "America/St_Johns", "", "../etc", "Nope/Nope"])


@settings(fast, max_examples=150)
@given(expression=cron_strings, zone=zones, day_or=st.booleans())
def test_cron_strings_are_a_schedule_or_one_usage_error(
    expression: str, zone: str, day_or: bool
) -> None:
    import datetime as dt

    try:
        schedule = cron(expression, zone, day_or)
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    after = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.timezone.utc)
    fires = next_fire_times(schedule, after, 3)
    assert len(fires) == 3 and fires == sorted(set(fires)) and fires[0] > after


# -- orch.toml ---------------------------------------------------------------------------------


def toml_value(value: object) -> str:
    """`value` written as TOML (a JSON-ish subset; strings may hold what TOML refuses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(repr(value), repr(value))
    if isinstance(value, (int,)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items())
        return "{" + items + "}"
    return json.dumps(str(value))


toml_scalars = (
    st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.lists(st.integers() | st.text(max_size=4), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=3)
)
plausible = {
    "target": st.sampled_from(["flow.py:typed", "flow.py:plain", "flow.py:nope", "x.py:y",
                               "flow.py", ":", "/etc/passwd:main", "pkg.mod:f", "flow.py:"]),
    "cron": cron_strings,
    "interval": st.sampled_from(["15m", "1h30m", "0s", "-5m", "1e400s", "10x", ""])
    | st.floats()
    | st.integers(),
    "timezone": zones,
    "day_or": st.booleans(),
    "anchor": st.text(max_size=10),
    "overlap": st.sampled_from(["skip", "queue", "allow", "cancel", "x"]),
    "catchup": st.sampled_from(["none", "latest", "all", "most"]),
    "max_catchup": st.integers(),
    "grace_seconds": st.floats() | st.integers(),
    "enabled": st.booleans(),
    "name": st.text(max_size=8),
    "parameters": st.dictionaries(
        st.sampled_from(PARAMETERS) | st.text(max_size=4),
        st.sampled_from(["{scheduled_time}", "{scheduled_time:%Y-%m-%d}", "{0}", "{", "}",
                         "{scheduled_time.year}", "{scheduled_time!r}", "{scheduled_time:%Q}"])
        | st.text(max_size=8)
        | st.integers(),
        max_size=3,
    ),
}  # fmt: skip


@st.composite
def schedule_tables(draw: st.DrawFn) -> str:
    keys = draw(st.lists(st.sampled_from(sorted(plausible)), unique=True, max_size=6))
    lines = ["[[schedule]]"]
    for key in ["target", *keys] if draw(st.booleans()) else keys:
        value = draw(plausible[key] | toml_scalars) if key in plausible else None
        lines.append(f"{key} = {toml_value(value)}")
    if draw(st.booleans()):
        lines.append(f"{draw(st.text(min_size=1, max_size=6))!r} = 1")
    return "\n".join(dict.fromkeys(lines))


toml_documents = (
    st.lists(schedule_tables(), min_size=1, max_size=3).map("\n\n".join)
    | st.text(max_size=60)
    | st.sampled_from(["schedule = 1", "[schedule]\ncron = 1", "[[schedule]]", "[daemon]\nx=1"])
)


@fast
@given(document=toml_documents)
@example(document='[[schedule]]\ntarget = "flow.py:plain"\ncron = "0 0 * * *"\n"x" = 1')
def test_orch_toml_contents(home: Path, fingerprint: Fingerprint, document: str) -> None:
    (home.parent / "orch.toml").write_text(document, encoding="utf-8")
    before = fingerprint()
    code, out, err = orch("schedules", "--json")
    listing = json.loads(out)
    if listing["errors"]:
        lines = assert_refused(code, err, codes=(3,))
        assert len(lines) == len(listing["errors"])
    else:
        assert code == 0, err
    assert fingerprint() == before


# -- a real terminal: child processes, raw bytes --------------------------------------------


CHILD_CASES = [
    ["run", "flow.py:typed", "-p", "ids=" + "[" * 3000 + "]" * 3000],
    ["run", "flow.py:typed", "-p", b"n=\xff\xfe"],
    ["run", "flow.py:typed", "-p", b"\xff=1"],
    ["run", b"flow\xff.py:typed"],
    ["show", b"\xff"],
    ["logs", b"\xc3("],
    ["cancel", "' OR 1=1 --"],
    ["retry", "zzz"],
    ["schedules"],
]


@pytest.mark.parametrize("args", CHILD_CASES, ids=range(len(CHILD_CASES)))
def test_a_real_terminal_sees_one_line_and_no_traceback(
    project: Path, args: list[str | bytes]
) -> None:
    home = project / ".orch"
    if args == ["schedules"]:
        (project / "orch.toml").write_bytes(
            b'[[schedule]]\ntarget = "flow.py:plain"\ncron = "\xff"'
        )
    fingerprint = Fingerprint(home)
    try:
        before = fingerprint()
        child = subprocess.run(
            [sys.executable.encode(), b"-m", b"orchlite.cli"]
            + [a if isinstance(a, bytes) else a.encode() for a in args],
            cwd=project,
            env=_env(project),
            capture_output=True,
            timeout=60,
        )
        stderr = child.stderr.decode("utf-8", "replace")
        assert_one_line(child.returncode, stderr)
        assert fingerprint() == before
    finally:
        fingerprint.conn.close()
        (project / "orch.toml").unlink(missing_ok=True)
