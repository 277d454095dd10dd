"""`orchlite.variables.Variable`, as Prefect 3's variables docs describe it: named, mutable
JSON values; `set` refuses to replace one unless `overwrite=True`; `get` returns a default
(None unless given) for a missing one; `unset` says whether it removed one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from orchlite import flow
from orchlite.context import existing_store
from orchlite.errors import UsageError
from orchlite.variables import Variable
from orchlite.views import variable_list


def test_set_get_overwrite_and_unset(orch_home: Path) -> None:
    assert Variable.get("the_answer") is None
    assert Variable.get("the_answer", default="42") == "42"
    assert not (orch_home / "orch.db").exists()  # looking does not create a store

    var = Variable.set("the_answer", 42, tags=["config"])
    assert (var.name, var.value, var.tags) == ("the_answer", 42, ["config"])
    assert Variable.get("the_answer") == 42

    with pytest.raises(ValueError, match=r"already exists\. Use `overwrite=True`"):
        Variable.set("the_answer", 43)
    Variable.set("the_answer", 43, overwrite=True)
    assert Variable.get("the_answer") == 43

    assert Variable.unset("the_answer") is True
    assert Variable.unset("the_answer") is False
    assert Variable.get("the_answer") is None


@pytest.mark.parametrize(
    "value", ["text", 3.5, True, None, [1, "two"], {"nested": {"list": [1, 2, {"a": None}]}}]
)
def test_values_of_every_json_type_come_back_equal(value: object) -> None:
    Variable.set("v", value, overwrite=True)
    assert Variable.get("v", default="missing") == value


def test_flows_read_variables_and_async_code_awaits_them() -> None:
    Variable.set("batch_size", 500)

    @flow
    def pipeline() -> int:
        size: int = Variable.get("batch_size", default=100)
        Variable.set("last_batch_size", size, overwrite=True)
        return size

    assert pipeline() == 500
    assert Variable.get("last_batch_size") == 500

    async def read() -> object:
        await Variable.aset("mode", "fast")
        return await Variable.aget("mode")

    assert asyncio.run(read()) == "fast"
    names = [v["name"] for v in variable_list(existing_store())]
    assert names == ["batch_size", "last_batch_size", "mode"]


@pytest.mark.parametrize("name", ["Upper", "has space", "", "x" * 256, "dot.ted"])
def test_names_outside_prefects_rules_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="invalid variable name"):
        Variable.set(name, 1)


def test_values_that_are_not_json_or_too_long_are_refused() -> None:
    with pytest.raises(UsageError, match="must be JSON"):
        Variable.set("when", object())
    with pytest.raises(UsageError, match="at most 5,000"):
        Variable.set("blob", "x" * 5000)
    assert Variable.get("blob") is None
