"""The project model: a project's flows, schedules, triggers, alerts, retention and problems,
read from orch.toml (parsed once) and the flow files (through the parse cache)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchlite.discovery import load_target
from orchlite.errors import LoadError, UsageError
from orchlite.parse_cache import CACHE_FILE
from orchlite.project_model import FLOW_FILES, Project
from orchlite.settings import PROJECT_FILE

FLOWS = """
from orchlite import flow, interval, on_flow


@flow(schedules=[interval(60)])
def beat(day: str = "today"):
    return day


@flow(name="nightly-etl", triggers=[on_flow("beat")])
def etl(rows: int):
    return rows
"""
HELPER = "def helper(x):\n    return x + 1\n"
BROKEN = "def helper(x) \n    return x + 1\n"  # the same size, a syntax error
TOML = """
[[schedule]]
target = "flows.py:etl"
cron = "0 3 * * *"
name = "nightly"
parameters = { rows = 10 }

[[trigger]]
target = "flows.py:beat"
watch = ["data/*.csv"]

[[alert]]
on = ["FAILED"]
command = "true"

[daemon]
retention_days = 7
"""


def _age(*paths: Path, seconds: float = 60) -> None:
    past = time.time() - seconds
    for path in paths:
        os.utime(path, (past, past))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / ".orch").mkdir(mode=0o700)
    (tmp_path / "flows.py").write_text(FLOWS)
    (tmp_path / "helpers.py").write_text(HELPER)
    (tmp_path / PROJECT_FILE).write_text(TOML)
    _age(tmp_path / "flows.py", tmp_path / "helpers.py")
    return tmp_path


@pytest.fixture
def fresh_modules():
    """Flow files loaded by a test are dropped from sys.modules afterwards."""
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_the_model_holds_every_declaration_of_the_project(root: Path) -> None:
    project = Project(root)
    assert [(f.name, f.target) for f in project.flows] == [
        ("beat", "flows.py:beat"),
        ("nightly-etl", "flows.py:etl"),
    ]
    assert [p.name for p in project.flows[0].parameters] == ["day"]
    assert [(e.source, e.target, e.flow_name) for e in project.schedules] == [
        ("code", "flows.py:beat", "beat"),
        (PROJECT_FILE, "flows.py:etl", "nightly-etl"),
    ]
    assert sorted((t.source, t.target, t.trigger.kind) for t in project.triggers) == [
        ("code", "flows.py:etl", "flow"),
        (PROJECT_FILE, "flows.py:beat", "file"),
    ]
    assert [(rule.on, rule.command) for rule in project.alerts.rules] == [
        (frozenset({"FAILED"}), "true")
    ]
    assert project.retention_days == 7
    assert project.problems == [] and project.unreadable == []


def test_orch_toml_and_the_flow_files_are_read_once_whatever_is_asked(root: Path) -> None:
    project = Project(root)
    assert project.reads == {}  # nothing is read before it is asked for
    asked = (project.flows, project.schedules, project.triggers, project.alerts)
    assert all(asked) and project.retention_days == 7
    assert project.problems == [] and project.flow_scan()[0] == project.flows
    assert project.reads == {PROJECT_FILE: 1, FLOW_FILES: 1}


def test_listing_flows_reads_no_orch_toml(root: Path) -> None:
    project = Project(root)
    assert len(project.flows) == 2
    assert project.reads == {FLOW_FILES: 1}


def test_a_file_with_a_syntax_error_is_a_problem_and_the_rest_still_loads(root: Path) -> None:
    (root / "broken.py").write_text("from orchlite import flow\n\n@flow\ndef bad(:\n    pass\n")
    project = Project(root)
    assert [f.function for f in project.flows] == ["beat", "etl"]
    assert [(rel.as_posix(), message) for rel, message in project.unreadable] == [
        ("broken.py", "line 4: invalid syntax")
    ]
    assert [(p.source, p.where, p.message) for p in project.problems] == [
        ("code", "broken.py", "line 4: invalid syntax")
    ]
    assert len(project.schedules) == 2


def test_broken_orch_toml_tables_are_problems_each_naming_its_table(root: Path) -> None:
    (root / PROJECT_FILE).write_text('[daemon]\nretention_days = "soon"\n\n[[alert]]\non = 3\n')
    project = Project(root)
    assert project.retention_days is None
    assert [p.where for p in project.problems] == [f"{PROJECT_FILE} [daemon]", "orch.toml alert #1"]
    assert project.reads[PROJECT_FILE] == 1


def test_an_unreadable_orch_toml_is_one_problem_and_the_flows_still_load(root: Path) -> None:
    (root / PROJECT_FILE).write_text("[[schedule]\n")
    project = Project(root)
    assert [f.function for f in project.flows] == ["beat", "etl"]
    assert [e.source for e in project.schedules] == ["code"]
    assert next(p.where for p in project.problems) == PROJECT_FILE
    assert project.retention_days == 30


def _swap_keeping_stamp(path: Path, text: str) -> None:
    before = os.stat(path)
    assert len(text.encode()) == before.st_size
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_file_is_read_again_when_its_time_or_size_changes(root: Path) -> None:
    assert len(Project(root).flows) == 2
    assert (root / ".orch" / CACHE_FILE).is_file()  # helpers.py remembered as flowless
    # The same time and size: the cache answers, the new content is not read.
    _swap_keeping_stamp(root / "helpers.py", BROKEN)
    assert Project(root).unreadable == []
    # A new time: read again.
    _age(root / "helpers.py", seconds=30)
    assert [rel.as_posix() for rel, _ in Project(root).unreadable] == ["helpers.py"]
    # A new size at the remembered time: read again.
    (root / "helpers.py").write_text(HELPER)
    _age(root / "helpers.py", seconds=120)
    assert Project(root).unreadable == []  # remembered as flowless again
    stamp = os.stat(root / "helpers.py").st_mtime_ns
    (root / "helpers.py").write_text(
        HELPER + "from orchlite import flow\n@flow\ndef h():\n    pass\n"
    )
    os.utime(root / "helpers.py", ns=(stamp, stamp))
    assert [f.function for f in Project(root).flows] == ["beat", "etl", "h"]


def test_a_model_is_a_snapshot_and_a_new_one_sees_changes(root: Path) -> None:
    project = Project(root)
    assert len(project.flows) == 2
    (root / "more.py").write_text("from orchlite import flow\n@flow\ndef more():\n    pass\n")
    assert len(project.flows) == 2
    assert len(Project(root).flows) == 3


def test_a_name_is_looked_up_in_the_model(root: Path, fresh_modules: None) -> None:
    project = Project(root)
    flow = load_target("nightly_etl", root, project)
    assert getattr(flow, "name", None) == "nightly-etl"
    assert project.reads == {FLOW_FILES: 1}
    with pytest.raises(UsageError, match=r"^no flow named 'beet' in .*did you mean 'beat'\?$"):
        load_target("beet", root, Project(root))


def test_a_name_in_a_file_that_does_not_parse_reports_the_syntax_error(root: Path) -> None:
    (root / "jobs.py").write_text(
        textwrap.dedent(
            """
            from orchlite import flow

            @flow
            def nightly_load(:
                pass
            """
        )
    )
    with pytest.raises(LoadError, match=r"jobs\.py:5: syntax error: invalid syntax$"):
        load_target("nightly-load", root, Project(root))
    with pytest.raises(UsageError, match=r"^no flow named 'absent'"):
        load_target("absent", root, Project(root))


def test_warm_flows_come_from_the_cache_without_parsing_a_file(root: Path) -> None:
    (root / "plain.py").write_text(
        "from orchlite import flow\n\n@flow\ndef plain(n: int = 1):\n    return n\n"
    )
    _age(root / "plain.py")
    cold = Project(root)
    assert [f.function for f in cold.flows] == ["beat", "etl", "plain"]
    # Broken behind the cache's back (the same time and size): the flows listing, and a name
    # looked up, still come from the cache, so the file was not read.
    text = (root / "plain.py").read_text()
    _swap_keeping_stamp(root / "plain.py", text.replace("def plain(n", "def plain(:"))
    warm = Project(root)
    assert warm.flows == cold.flows and warm.unreadable == []
    assert [(p.name, p.default) for p in warm.flows[2].parameters] == [("n", "1")]
    # Schedules and triggers need only the trees of the files that declare them.
    assert len(warm.schedules) == 2 and warm.problems == []


def test_a_cache_entry_of_another_shape_is_read_again(root: Path) -> None:
    assert Project(root).flows
    cache = root / ".orch" / CACHE_FILE
    data = json.loads(cache.read_text())
    data["flows"]["flows.py"][3] = [["beat", "beat", "one", []]]  # a line that is not a number
    cache.write_text(json.dumps(data))
    assert [(f.function, f.line) for f in Project(root).flows] == [("beat", 6), ("etl", 11)]
