"""The examples and the README's quickstart, run the way a user runs them.

Each test copies `examples/` into a temporary project and runs `orch` (as
`python -m orchlite.cli`) or `python examples/x.py` there as a child process, so what is
checked is the installed command, the example files and the store they leave behind.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ORCH, child_env
from tests.helpers import orch as run_orch

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
README = REPO / "README.md"
TIMEOUT = 60


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A temporary project holding a copy of `examples/` and an empty `.orch/`.

    The `.orch/` is made up front so that the store used is this one, even if a folder
    above the temporary directory happens to hold a `.orch/` of its own.
    """
    shutil.copytree(EXAMPLES, tmp_path / "examples", ignore=shutil.ignore_patterns("out"))
    (tmp_path / ".orch").mkdir(mode=0o700)
    return tmp_path


def run(args: list[str], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """Run a command in `cwd`; assert its exit code and return the finished process."""
    proc = subprocess.run(
        args,
        cwd=cwd,
        env=child_env(None),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == expect, (
        f"{shlex.join(args)} exited {proc.returncode}, expected {expect}\n"
        f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    )
    return proc


def orch(*args: str, cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    """`orch ARGS` in `cwd`, which finds its store from there (no ORCH_HOME)."""
    return run_orch(cwd, *args, env=child_env(None), expect=expect, timeout=TIMEOUT)


def show_last(cwd: Path) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(orch("show", "last", "--json", cwd=cwd).stdout)
    return detail


def task_states(detail: dict[str, Any]) -> dict[str, str]:
    return {task["name"]: task["state"] for task in detail["tasks"]}


# -- the examples through the CLI ---------------------------------------------------------


def test_hello(project: Path) -> None:
    proc = orch("run", "examples/hello.py:hello", "-p", "name=Ada", cwd=project)
    assert "HELLO, ADA!" in proc.stderr
    detail = show_last(project)
    assert detail["flow"] == "hello"
    assert detail["state"] == "COMPLETED"
    assert detail["parameters"] == {"name": "Ada"}
    assert task_states(detail) == {"greet-0": "COMPLETED", "shout-0": "COMPLETED"}
    logs = orch("logs", "last", cwd=project).stdout
    assert "greeted Ada" in logs
    assert "HELLO, ADA!" in logs


def test_hello_in_a_subprocess(project: Path) -> None:
    orch("run", "--subprocess", "examples/hello.py:hello", cwd=project)
    assert show_last(project)["state"] == "COMPLETED"


def test_etl_writes_the_summary_and_caches_transform_across_runs(project: Path) -> None:
    orch("run", "examples/etl.py:etl", cwd=project)
    first = show_last(project)
    assert first["state"] == "COMPLETED"
    assert task_states(first) == {
        "extract-0": "COMPLETED",
        "transform-0": "COMPLETED",
        "load-0": "COMPLETED",
    }

    summary = json.loads((project / "out" / "summary.json").read_text())
    with (project / "examples" / "data" / "orders.csv").open(newline="") as fh:
        orders = [row for row in csv.DictReader(fh) if row["status"] == "shipped"]
    assert {row["region"] for row in summary} == {"East", "North", "South", "West"}
    assert sum(row["orders"] for row in summary) == len(orders)
    assert round(sum(row["revenue"] for row in summary), 2) == round(
        sum(float(row["amount"]) for row in orders), 2
    )
    with (project / "out" / "summary.csv").open(newline="") as fh:
        assert [row["region"] for row in csv.DictReader(fh)] == [r["region"] for r in summary]

    orch("run", "examples/etl.py:etl", cwd=project)
    second = show_last(project)
    assert second["id"] != first["id"]
    assert task_states(second) == {
        "extract-0": "COMPLETED",
        "transform-0": "CACHED",
        "load-0": "COMPLETED",
    }
    transform = next(t for t in second["tasks"] if t["name"] == "transform-0")
    assert transform["cached"] is True
    assert transform["attempts"] == 0


def test_etl_misses_the_cache_when_the_csv_changes(project: Path) -> None:
    orch("run", "examples/etl.py:etl", cwd=project)
    data = project / "examples" / "data" / "orders.csv"
    with data.open("a") as fh:
        fh.write("SO-9999,2025-11-01,North,Globex,widget,1,1000.00,shipped\n")
    orch("run", "examples/etl.py:etl", "-p", "out_dir=report", cwd=project)
    assert task_states(show_last(project))["transform-0"] == "COMPLETED"
    summary = json.loads((project / "report" / "summary.json").read_text())
    north = next(row for row in summary if row["region"] == "North")
    assert north["revenue"] > 1000


def test_github_stars(project: Path) -> None:
    fixture = json.loads((EXAMPLES / "data" / "github_repos.json").read_text())
    proc = orch("run", "examples/github_stars.py:github_stars", cwd=project)
    for repo in ("PrefectHQ/prefect", "pallets/flask", "python/cpython"):
        assert f"{repo} has {fixture[repo]['stars']} stars!" in proc.stderr
    detail = show_last(project)
    assert detail["flow"] == "github-stars"
    assert detail["task_counts"] == {"COMPLETED": 3}

    proc = orch(
        "run", "examples/github_stars.py:github_stars", "-p", "repos=pola-rs/polars", cwd=project
    )
    assert f"pola-rs/polars has {fixture['pola-rs/polars']['stars']} stars!" in proc.stderr
    assert show_last(project)["parameters"] == {"repos": ["pola-rs/polars"]}


def test_github_stars_unknown_repo_fails_after_its_retries(project: Path) -> None:
    target = "examples/github_stars.py:github_stars"
    orch("run", target, "-p", "repos=nobody/nothing", cwd=project, expect=1)
    detail = show_last(project)
    assert detail["state"] == "FAILED"
    (task,) = detail["tasks"]
    assert task["state"] == "FAILED"
    assert task["attempts"] == 4
    assert "nobody/nothing is not in github_repos.json" in task["error"]


def test_the_crontab_example_is_what_import_crontab_makes_of_it(project: Path) -> None:
    folder = project / "examples" / "crontab"
    made = orch("import-crontab", "crontab.txt", cwd=folder).stdout
    assert made == (EXAMPLES / "crontab" / "orch.toml").read_text(), (
        "examples/crontab/orch.toml drifted: regenerate it with "
        "`orch import-crontab crontab.txt -o orch.toml --force` in examples/crontab"
    )
    (folder / ".orch").mkdir(mode=0o700)
    listed = json.loads(orch("schedules", "--json", cwd=folder).stdout)
    assert listed["errors"] == []
    assert [row["schedule_name"] for row in listed["schedules"]] == [
        "pg_dump-shop",
        "python3-etl.py",
        "report",
        "find-tmp-30",
    ]


# -- the examples as plain scripts --------------------------------------------------------

SCRIPTS = {"hello.py": "hello", "etl.py": "etl", "github_stars.py": "github-stars"}


def test_every_example_is_covered() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(SCRIPTS)


@pytest.mark.parametrize(("script", "flow_name"), sorted(SCRIPTS.items()))
def test_plain_python_records_in_the_nearest_store(
    project: Path, script: str, flow_name: str
) -> None:
    # Run from a subfolder: the store is found by walking up to the project's .orch/.
    workdir = project / "work"
    workdir.mkdir()
    run([sys.executable, str(Path("..", "examples", script))], workdir)
    assert not (workdir / ".orch").exists()
    runs = json.loads(orch("runs", "--json", cwd=project).stdout)
    assert [(r["flow"], r["state"]) for r in runs] == [(flow_name, "COMPLETED")]


# -- the README ---------------------------------------------------------------------------


def _section(markdown: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    return match.group(1)


def _blocks(markdown: str, *languages: str) -> list[str]:
    pattern = r"^```(\w*)\n(.*?)^```"
    return [body for lang, body in re.findall(pattern, markdown, re.M | re.S) if lang in languages]


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    intro = text.split("\n## ", 1)[0]
    commands = [block.strip() for block in _blocks(intro, "sh")]
    assert commands == [
        "pip install . && orch run examples/hello.py:hello",
        "pip install -e '.[test]' && python -m pytest",
    ]


def test_readme_quickstart_flow_is_examples_hello() -> None:
    (code,) = _blocks(_section(README.read_text(), "Quickstart"), "python")
    assert code.strip() in (EXAMPLES / "hello.py").read_text()


def test_readme_quickstart_commands_work(project: Path) -> None:
    shell = _blocks(_section(README.read_text(), "Quickstart"), "sh")[0]
    lines = [shlex.split(line, comments=True) for line in shell.splitlines()]
    commands = [words for words in lines if words]
    assert [words[0] for words in commands][:5] == ["orch", "orch", "orch", "orch", "python"]
    outputs = []
    for program, *args in commands:
        assert program in ("orch", "python"), f"unexpected command {program!r} in the quickstart"
        prefix = ORCH if program == "orch" else [sys.executable]
        outputs.append(run([*prefix, *args], project))
    runs = json.loads(orch("runs", "--json", cwd=project).stdout)
    assert [r["state"] for r in runs] == ["COMPLETED", "COMPLETED"]
    assert "hello" in outputs[1].stdout  # orch runs
    assert "greet-0" in outputs[2].stdout  # orch show last
    assert "greeted Ada" in outputs[3].stdout  # orch logs last


def test_readme_python_blocks_compile() -> None:
    for number, code in enumerate(_blocks(README.read_text(), "python")):
        compile(code, f"README.md python block {number}", "exec")
