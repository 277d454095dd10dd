"""What a slot's run is: its id (`slot_id`, a persisted contract, see `orchlite.schedules`)
and its parameters, with `{scheduled_time:...}` filled in."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import re
import string
import uuid
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from .cron_expressions import cron_fields
from .errors import UsageError
from .schedules import Cron, Schedule
from .timezones import ONE_US, as_utc, zone_of


def schedule_key(target: str, schedule: Schedule) -> str:
    """A stable key for `schedule` on `target`: `"<target>|<16 hex digits>"`.

    The digits hash the definition (not the policy): see the module docstring.
    """
    if isinstance(schedule, Cron):
        definition: dict[str, Any] = {
            "kind": "cron",
            "expression": cron_fields(schedule.expression),
            "timezone": schedule.timezone,
            "day_or": schedule.day_or,
        }
    else:
        step, anchor = schedule.grid()
        definition = {
            "kind": "interval",
            "microseconds": step,
            "anchor": anchor.isoformat(),
            "timezone": schedule.timezone,
        }
    definition["name"] = schedule.name
    definition["parameters"] = schedule.parameters
    try:
        text = json.dumps(
            definition,
            sort_keys=True,
            ensure_ascii=False,
            separators=(",", ":"),
            default=_json_default,
        )
    except (TypeError, ValueError) as exc:
        raise UsageError(f"schedule parameters of {target} have no stable form: {exc}") from None
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{target}|{digest[:16]}"


def slot_id(schedule_key: str, slot: dt.datetime) -> str:
    """The run id of `slot`: 32 hex digits, the same for the same key and instant."""
    text = f"{schedule_key}|{as_utc(slot, 'slot').isoformat()}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return f"{value // ONE_US}us"
    if isinstance(value, (decimal.Decimal, uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(json.dumps(v, sort_keys=True, default=_json_default) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"a {type(value).__qualname__} is not JSON-like")


_FIELD = re.compile(r"scheduled_time(?:\.[a-z][a-z_]*)?")


class _Template(string.Formatter):
    """str.format that only knows `scheduled_time` (and its public attributes)."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        if not _FIELD.fullmatch(field_name):
            raise ValueError(f"unknown field {{{field_name}}}: the only field is scheduled_time")
        return super().get_field(field_name, args, kwargs)


_TEMPLATE = _Template()


def render_parameters(
    parameters: Mapping[str, Any], scheduled_time: dt.datetime, *, timezone: str | None = None
) -> dict[str, Any]:
    """`parameters` with `{scheduled_time:...}` filled in string values (nested ones too).

    `scheduled_time` is formatted as given, or in `timezone` when one is given. Write `{{`
    and `}}` for literal braces. A bad template raises `UsageError` naming the parameter.
    """
    if timezone is not None:
        scheduled_time = as_utc(scheduled_time, "scheduled_time").astimezone(zone_of(timezone))

    def fill(name: str, value: Any) -> Any:
        if isinstance(value, str):
            if "{" not in value and "}" not in value:
                return value
            try:
                return _TEMPLATE.format(value, scheduled_time=scheduled_time)
            except (ValueError, KeyError, IndexError, AttributeError) as exc:
                raise UsageError(
                    f"invalid template in parameter {name!r} ({value!r}): {exc}"
                ) from None
        if isinstance(value, dict):
            return {k: fill(name, v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(name, v) for v in value]
        if isinstance(value, tuple):
            return tuple(fill(name, v) for v in value)
        return value

    return {name: fill(name, value) for name, value in parameters.items()}


def run_parameters(schedule: Schedule, slot: dt.datetime) -> dict[str, Any]:
    """The parameters of the run for `slot`: rendered with the slot in the schedule's zone."""
    return render_parameters(schedule.parameters, slot, timezone=schedule.timezone)
