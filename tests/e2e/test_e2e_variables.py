"""`orch variable` from the shell, and a flow run under `orch run` reading what it set."""

from __future__ import annotations

import json

from tests.helpers import Project, assert_usage_error


def test_variables_set_from_the_shell_reach_a_flow_run(project: Project) -> None:
    project.write(
        "flows.py",
        """
        from orchlite import flow
        from orchlite.variables import Variable

        @flow
        def report() -> str:
            return f"{Variable.get('region')}:{Variable.get('batch_size') * 2}"
        """,
    )
    project.orch("variable", "set", "region", "eu-west")
    project.orch("variable", "set", "batch_size", "250", "--tag", "tuning")
    assert project.orch("variable", "get", "region").stdout == "eu-west\n"
    assert project.orch("variable", "get", "batch_size").stdout == "250\n"

    shown = json.loads(project.orch("run", "flows.py:report", "--json").stdout)
    assert shown["state"] == "COMPLETED"
    assert shown["result"] == "'eu-west:500'"

    listed = project.json("variable", "ls", "--json")
    assert [(v["name"], v["value"], v["tags"]) for v in listed] == [
        ("batch_size", 250, ["tuning"]),
        ("region", "eu-west", []),
    ]
    table = project.orch("variable", "ls").stdout
    assert table.splitlines()[0].split() == ["NAME", "VALUE", "TAGS"]


def test_bad_variable_commands_say_why_and_keep_what_was_stored(project: Project) -> None:
    project.orch("variable", "set", "mode", '{"fast": true}')
    proc = project.orch("variable", "set", "mode", "slow", expect=2)
    assert_usage_error(proc, 2, "exists: pass --overwrite")
    assert project.orch("variable", "get", "mode").stdout == '{"fast": true}\n'
    assert_usage_error(project.orch("variable", "get", "nope", expect=2), 2, "no variable 'nope'")
    assert_usage_error(project.orch("variable", "set", "Bad", "1", expect=2), 2, "invalid variable")
    assert_usage_error(project.orch("variable", "rm", "nope", expect=2), 2, "no variable 'nope'")
    project.orch("variable", "set", "mode", "slow", "--overwrite")
    project.orch("variable", "rm", "mode")
    assert project.json("variable", "ls", "--json") == []
