"""ISO 8601 times typed by users: one parser, the same on every supported Python."""

from __future__ import annotations

import datetime as dt


def parse_iso_datetime(text: str) -> dt.datetime:
    """Parse an ISO 8601 date-time; a trailing `Z` means UTC.

    `datetime.fromisoformat` accepts `Z` only from Python 3.11, and `2026-03-28T12:00Z`
    is what users paste from logs and APIs. Raises ValueError like `fromisoformat`.
    """
    text = text.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    return dt.datetime.fromisoformat(text)
