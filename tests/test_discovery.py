from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from orchlite.discovery import (
    FlowInfo,
    ParamInfo,
    find_flows,
    find_flows_with_errors,
    load_file,
    load_target,
)
from orchlite.errors import LoadError, UsageError

# A stand-in for orchlite's @flow, so these files load without orchlite's decorators.
STUB = """\
class _Flow:
    __orch_flow__ = True

    def __init__(self, fn, name=None):
        self.fn = fn
        self.name = name or fn.__name__


def flow(fn=None, *, name=None):
    if fn is None:
        return lambda f: _Flow(f, name)
    return _Flow(fn)
"""


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def write_flow_file(path: Path, body: str) -> Path:
    return write(path, STUB + textwrap.dedent(body))


@pytest.fixture(autouse=True)
def isolated_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Undo what loading flow files does to sys.modules and sys.path."""
    monkeypatch.chdir(tmp_path)
    modules = set(sys.modules)
    path = list(sys.path)
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    sys.path[:] = path


# --- find_flows --------------------------------------------------------------------------------


def test_detects_every_decorator_form(tmp_path: Path) -> None:
    write(
        tmp_path / "flows.py",
        """\
        import orchlite
        import prefect
        from orchlite import flow, task
        from orchlite import flow as orch_flow
        from prefect import flow as pflow

        @flow
        def plain(): ...

        @flow()
        def called(): ...

        @flow(name="named-flow", retries=2)
        def with_name(): ...

        @orchlite.flow
        def attr(): ...

        @orchlite.flow(name="attr-named")
        def attr_called(): ...

        @prefect.flow(log_prints=True)
        async def async_prefect(): ...

        @orch_flow
        def aliased(): ...

        @pflow(name="p")
        def prefect_alias(): ...

        NAME = "dyn"

        @flow(name=NAME)
        def dynamic_name(): ...

        @task
        def not_a_flow(): ...

        @other
        def also_not(): ...

        def undecorated(): ...

        class Holder:
            @flow
            def method(self): ...

        if True:
            @flow
            def under_if(): ...
        """,
    )
    flows = find_flows(tmp_path)
    assert [(f.function, f.name) for f in flows] == [
        ("plain", "plain"),
        ("called", "called"),
        ("with_name", "named-flow"),
        ("attr", "attr"),
        ("attr_called", "attr-named"),
        ("async_prefect", "async-prefect"),
        ("aliased", "aliased"),
        ("prefect_alias", "p"),
        ("dynamic_name", "dynamic-name"),
        ("under_if", "under-if"),
    ]
    assert flows[0].file == Path("flows.py")
    assert flows[0].line == 8


def test_alias_only_counts_when_imported_from_orchlite_or_prefect(tmp_path: Path) -> None:
    write(
        tmp_path / "a.py",
        """\
        from mylib import flow as mine
        from orchlite.flows import flow as deep

        @mine
        def not_ours(): ...

        @deep
        def ours(): ...
        """,
    )
    assert [f.function for f in find_flows(tmp_path)] == ["ours"]


def test_parameters_are_read_from_the_signature(tmp_path: Path) -> None:
    write(
        tmp_path / "p.py",
        """\
        @flow
        def etl(a, /, day: str, n: int = 3, *args, when: "date | None" = None, strict, **kw): ...
        """,
    )
    (info,) = find_flows(tmp_path)
    assert info.parameters == (
        ParamInfo("a", None, None, True),
        ParamInfo("day", "str", None, True),
        ParamInfo("n", "int", "3", False),
        ParamInfo("when", "'date | None'", "None", False),
        ParamInfo("strict", None, None, True),
    )


def test_target_is_relative_with_forward_slashes(tmp_path: Path) -> None:
    write(tmp_path / "jobs" / "daily" / "etl.py", "@flow\ndef etl(): ...\n")
    (info,) = find_flows(tmp_path)
    assert info.file == Path("jobs/daily/etl.py")
    assert info.target == "jobs/daily/etl.py:etl"
    info2 = FlowInfo("x", "f", Path("a") / "b.py", 1, ())
    assert info2.target == "a/b.py:f"


def test_sorted_by_file_then_line(tmp_path: Path) -> None:
    write(tmp_path / "b.py", "@flow\ndef b2(): ...\n")
    write(tmp_path / "a.py", "@flow\ndef a2(): ...\n\n@flow\ndef a1(): ...\n")
    write(tmp_path / "sub" / "c.py", "@flow\ndef c(): ...\n")
    assert [f.function for f in find_flows(tmp_path)] == ["a2", "a1", "b2", "c"]


@pytest.mark.parametrize(
    "folder",
    [
        ".orch",
        ".hidden",
        ".venv",
        "__pycache__",
        "node_modules",
        "tests",
        "test",
        "venv",
        "site-packages",
        "build",
        "dist",
        "pkg/tests",
    ],
)
def test_skipped_directories(tmp_path: Path, folder: str) -> None:
    write(tmp_path / folder / "hidden_flow.py", "@flow\ndef skipped(): ...\n")
    write(tmp_path / "main.py", "@flow\ndef kept(): ...\n")
    assert [f.function for f in find_flows(tmp_path)] == ["kept"]


def test_virtualenvs_are_recognised_by_pyvenv_cfg(tmp_path: Path) -> None:
    write(tmp_path / "env" / "pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path / "env" / "lib" / "x.py", "@flow\ndef in_env(): ...\n")
    write(tmp_path / "myenv" / "pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path / "myenv" / "x.py", "@flow\ndef in_myenv(): ...\n")
    write(tmp_path / "envs" / "x.py", "@flow\ndef kept(): ...\n")
    assert [f.function for f in find_flows(tmp_path)] == ["kept"]


def test_env_without_pyvenv_cfg_is_scanned(tmp_path: Path) -> None:
    write(tmp_path / "env" / "x.py", "@flow\ndef kept(): ...\n")
    assert [f.target for f in find_flows(tmp_path)] == ["env/x.py:kept"]


def test_files_with_syntax_errors_are_skipped_and_reported(tmp_path: Path) -> None:
    write(tmp_path / "good.py", "@flow\ndef good(): ...\n")
    write(tmp_path / "bad.py", "@flow\ndef bad(:\n    pass\n")
    (tmp_path / "binary.py").write_bytes(b"x = 1\x00\n")
    flows, errors = find_flows_with_errors(tmp_path)
    assert [f.function for f in flows] == ["good"]
    assert [e[0] for e in errors] == [Path("bad.py"), Path("binary.py")]
    assert errors[0][1].startswith("line 2:")
    assert find_flows(tmp_path) == flows


def test_discovery_never_runs_user_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write(tmp_path / "f.py", f"open({str(marker)!r}, 'w').close()\n@flow\ndef f(): ...\n")
    assert len(find_flows(tmp_path)) == 1
    assert not marker.exists()


def test_five_hundred_files_are_all_read(tmp_path: Path) -> None:
    body = "import os\n\n" + "".join(
        f"def helper_{i}(x: int, y: str = 'a') -> int:\n    return x + {i}\n\n" for i in range(20)
    )
    for i in range(500):
        extra = f"@flow(name='f{i}')\ndef flow_{i}(day: str): ...\n" if i % 10 == 0 else ""
        write(tmp_path / f"pkg{i % 20}" / f"mod{i}.py", body + extra)
    flows = find_flows(tmp_path)
    assert sorted(f.name for f in flows) == sorted(f"f{i}" for i in range(0, 500, 10))


# --- load_target -------------------------------------------------------------------------------


def test_load_file_target_relative_to_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "project"
    write_flow_file(root / "jobs" / "pipeline.py", "@flow\ndef etl(day: str):\n    return day\n")
    monkeypatch.chdir(tmp_path)
    obj = load_target("jobs/pipeline.py:etl", root)
    assert getattr(obj, "__orch_flow__", False) is True
    assert obj.fn("x") == "x"  # type: ignore[attr-defined]


def test_load_file_target_relative_to_cwd_and_absolute(tmp_path: Path) -> None:
    path = write_flow_file(tmp_path / "here" / "p.py", "@flow\ndef etl(): ...\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert load_target("here/p.py:etl", elsewhere).name == "etl"  # type: ignore[attr-defined]
    assert load_target(f"{path}:etl", elsewhere).name == "etl"  # type: ignore[attr-defined]


def test_loading_the_same_file_twice_returns_the_same_module(tmp_path: Path) -> None:
    write_flow_file(
        tmp_path / "counter.py",
        """\
        import builtins

        builtins.__dict__.setdefault("_orch_test_count", []).append(1)

        @flow
        def etl(): ...
        """,
    )
    import builtins

    builtins.__dict__.pop("_orch_test_count", None)
    first = load_target("counter.py:etl", tmp_path)
    second = load_target(str(tmp_path / "counter.py") + ":etl", tmp_path)
    assert first is second
    assert builtins.__dict__.pop("_orch_test_count") == [1]


def test_module_is_registered_before_it_runs(tmp_path: Path) -> None:
    write_flow_file(
        tmp_path / "registered.py",
        """\
        import sys
        from dataclasses import dataclass

        assert sys.modules[__name__].__file__ == __file__

        @dataclass
        class Row:
            day: "str"

        @flow
        def etl(): ...
        """,
    )
    load_target("registered.py:etl", tmp_path)
    assert sys.modules["registered"].Row("x").day == "x"


def test_module_name_avoids_clashes(tmp_path: Path) -> None:
    write_flow_file(tmp_path / "a" / "pipeline.py", "@flow\ndef one(): ...\n")
    write_flow_file(tmp_path / "b" / "pipeline.py", "@flow\ndef two(): ...\n")
    write_flow_file(tmp_path / "json.py", "@flow\ndef three(): ...\n")
    write_flow_file(tmp_path / "my-flows.py", "@flow\ndef four(): ...\n")
    one = load_file(tmp_path / "a" / "pipeline.py")
    two = load_file(tmp_path / "b" / "pipeline.py")
    three = load_file(tmp_path / "json.py")
    four = load_file(tmp_path / "my-flows.py")
    assert one.__name__ == "pipeline"
    assert two.__name__.startswith("__orch_pipeline_") and two.__name__.endswith("__")
    assert three.__name__.startswith("__orch_json_")
    assert four.__name__.startswith("__orch_my_flows_")
    assert sys.modules["json"].__name__ == "json" and hasattr(sys.modules["json"], "dumps")
    assert load_file(tmp_path / "b" / "pipeline.py") is two


def test_sibling_imports_work(tmp_path: Path) -> None:
    write(tmp_path / "proj" / "helpers_for_test.py", "def double(x):\n    return 2 * x\n")
    write_flow_file(
        tmp_path / "proj" / "main_flow.py",
        "from helpers_for_test import double\n@flow\ndef etl():\n    return double(2)\n",
    )
    obj = load_target("main_flow.py:etl", tmp_path / "proj")
    assert obj.fn() == 4  # type: ignore[attr-defined]
    assert sys.path[0] == str((tmp_path / "proj").resolve())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"^no such file: nope\.py$"):
        load_target("nope.py:etl", tmp_path)
    with pytest.raises(LoadError, match=r"no such file: dir/nope\.py"):
        load_target("dir/nope.py:etl", tmp_path)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "broken.py", "x = 1\n\ndef etl(:\n    pass\n")
    with pytest.raises(LoadError, match=r"^broken\.py:3: syntax error: "):
        load_target("broken.py:etl", tmp_path)
    assert "broken" not in sys.modules


def test_import_error_names_the_deepest_line_in_the_file(tmp_path: Path) -> None:
    write_flow_file(
        tmp_path / "boom.py",
        """\
        def compute():
            return 1 / 0

        VALUE = compute()
        """,
    )
    line = STUB.count("\n") + 2
    with pytest.raises(LoadError) as info:
        load_target("boom.py:etl", tmp_path)
    assert str(info.value) == (
        f"boom.py:{line}: error while importing: ZeroDivisionError: division by zero"
    )
    assert "boom" not in sys.modules


def test_import_error_in_a_sibling_points_at_the_import_line(tmp_path: Path) -> None:
    write(tmp_path / "sib_broken.py", "raise RuntimeError('bad config')\n")
    write(tmp_path / "uses_sib.py", "x = 1\nimport sib_broken\n")
    with pytest.raises(
        LoadError, match=r"^uses_sib\.py:2: error while importing: RuntimeError: bad"
    ):
        load_target("uses_sib.py:etl", tmp_path)


def test_missing_module_import_in_file(tmp_path: Path) -> None:
    write(tmp_path / "needs.py", "import definitely_not_installed_xyz\n")
    with pytest.raises(LoadError, match=r"needs\.py:1: error while importing: ModuleNotFoundError"):
        load_target("needs.py:etl", tmp_path)


def test_sys_exit_at_import_is_a_load_error(tmp_path: Path) -> None:
    write(tmp_path / "exits.py", "import sys\nsys.exit(3)\n")
    with pytest.raises(LoadError, match=r"exits\.py:2: error while importing: SystemExit: 3"):
        load_target("exits.py:etl", tmp_path)


def test_missing_attribute_suggests_flows_first(tmp_path: Path) -> None:
    write_flow_file(
        tmp_path / "pipe.py",
        "@flow\ndef etl(): ...\n\ndef etl_helper(): ...\n\n@flow\ndef report(): ...\n",
    )
    with pytest.raises(UsageError, match=r"^no flow 'etll' in pipe\.py; did you mean 'etl'\?$"):
        load_target("pipe.py:etll", tmp_path)
    with pytest.raises(UsageError, match=r"no flow 'zzz' in pipe\.py \(its flows: etl, report\)"):
        load_target("pipe.py:zzz", tmp_path)


def test_missing_attribute_falls_back_to_top_level_names(tmp_path: Path) -> None:
    write(tmp_path / "plain.py", "def transform(): ...\n")
    with pytest.raises(UsageError, match="did you mean 'transform'"):
        load_target("plain.py:transfrm", tmp_path)


def test_module_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "mypkg_t" / "__init__.py", "")
    write_flow_file(tmp_path / "mypkg_t" / "jobs.py", "@flow\ndef etl(): ...\n")
    elsewhere = tmp_path / "x"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_target("mypkg_t.jobs:etl", tmp_path).name == "etl"  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match=r"no flow 'nope' in mypkg_t\.jobs"):
        load_target("mypkg_t.jobs:nope", tmp_path)


def test_module_target_errors(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match=r"no module named 'no_such_pkg_q\.jobs'"):
        load_target("no_such_pkg_q.jobs:etl", tmp_path)
    write(tmp_path / "badmod_q.py", "x = 1\nraise ValueError('nope')\n")
    with pytest.raises(LoadError, match=r"badmod_q\.py:2: error while importing: ValueError: nope"):
        load_target("badmod_q:etl", tmp_path)


def test_bare_name_by_flow_name_or_function(tmp_path: Path) -> None:
    write_flow_file(tmp_path / "jobs" / "daily.py", '@flow(name="nightly-etl")\ndef etl(): ...\n')
    assert load_target("nightly-etl", tmp_path).name == "nightly-etl"  # type: ignore[attr-defined]
    assert load_target("etl", tmp_path).name == "nightly-etl"  # type: ignore[attr-defined]


def test_bare_name_ambiguous(tmp_path: Path) -> None:
    write_flow_file(tmp_path / "a.py", "@flow\ndef etl(): ...\n")
    write_flow_file(tmp_path / "b.py", '@flow(name="etl")\ndef other(): ...\n')
    with pytest.raises(UsageError, match=r"several flows named 'etl'.*a\.py:etl, b\.py:other"):
        load_target("etl", tmp_path)


def test_bare_name_missing_suggests(tmp_path: Path) -> None:
    write_flow_file(tmp_path / "a.py", "@flow\ndef etl(): ...\n")
    with pytest.raises(UsageError, match=r"^no flow named 'elt' in .*; did you mean 'etl'\?$"):
        load_target("elt", tmp_path)
    with pytest.raises(UsageError, match=r"^no flow named 'qqqq' in [^;]*$"):
        load_target("qqqq", tmp_path)


def test_file_without_name_loads_its_only_flow(tmp_path: Path) -> None:
    write_flow_file(tmp_path / "single.py", "@flow\ndef etl(): ...\n")
    write_flow_file(tmp_path / "double.py", "@flow\ndef a(): ...\n@flow\ndef b(): ...\n")
    assert load_target("single.py", tmp_path).name == "etl"  # type: ignore[attr-defined]
    with pytest.raises(UsageError, match=r"double\.py holds 2 flows \(a, b\)"):
        load_target("double.py", tmp_path)


def test_bad_target_shape(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="bad target"):
        load_target("file.py:", tmp_path)
