"""`orch cron-preview EXPR`: the next fire times of a cron expression in a time zone, by the
daemon's own rules (a skipped wall time fires at the end of the gap, a repeated one once at
its first occurrence: see `orchlite.schedules`), before putting it in a schedule."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated

import typer

from .errors import UsageError
from .isotime import parse_iso_datetime


def cron_preview(
    expression: Annotated[str, typer.Argument(help='A cron expression, e.g. "30 2 * * *".')],
    timezone: Annotated[
        str, typer.Option("--timezone", "--tz", help="An IANA time zone (default UTC).")
    ] = "UTC",
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=1000, help="How many.")] = 5,
    after: Annotated[
        str | None,
        typer.Option("--after", help="Start after this ISO 8601 time (default: now)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Preview a cron expression: `orch cron-preview "30 2 * * *" --timezone Europe/Berlin`."""
    from zoneinfo import ZoneInfo

    from .schedule_slots import next_fire_times
    from .schedules import cron

    schedule = cron(expression, timezone)  # a bad expression or zone is refused here
    zone = ZoneInfo(timezone)
    slots = next_fire_times(schedule, _parse_after(after, zone), count)
    rows = [
        {
            "local": slot.astimezone(zone).isoformat(),
            "utc": slot.isoformat(),
            "zone": slot.astimezone(zone).tzname(),
        }
        for slot in slots
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from .render import table

    table(
        ("#", f"LOCAL ({timezone})", "UTC"),
        [
            (
                str(i + 1),
                f"{slot.astimezone(zone):%a %Y-%m-%d %H:%M} {row['zone']}",
                f"{slot:%Y-%m-%d %H:%M}",
            )
            for i, (slot, row) in enumerate(zip(slots, rows, strict=True))
        ],
        sys.stdout,
    )


def _parse_after(text: str | None, zone: dt.tzinfo) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.timezone.utc)
    try:
        when = parse_iso_datetime(text)
    except ValueError:
        raise UsageError(f"invalid --after {text!r}: expected an ISO 8601 time") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)
