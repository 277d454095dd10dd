"""Flow names: the name a flow gets, and which spellings name the same flow.

A flow is named by `@flow(name=...)`, else by its function's name with underscores turned
into hyphens: Prefect 3's rule, so `def sales_etl` is the flow `sales-etl`. That one name is
what `orch flows` lists and what every run records.

Where a user names a flow (`orch run NAME`, `orch runs --flow NAME`, `orch backfill NAME`, a
flow trigger's `after`, an alert's `flows`), an underscore and a hyphen are the same letter:
`sales_etl` and `sales-etl` name the same flow, and runs a store recorded under the other
spelling (a flow renamed since, or an older orchlite) are found too.
"""

from __future__ import annotations


def default_flow_name(function_name: str) -> str:
    """The name of a flow whose decorator gives none: `sales_etl` -> `sales-etl`."""
    return function_name.replace("_", "-")


def same_flow_name(a: str, b: str) -> bool:
    """Whether two names name the same flow (underscores and hyphens alike)."""
    return default_flow_name(a) == default_flow_name(b)


def spellings(name: str) -> list[str]:
    """`name` as given, all hyphens and all underscores: what an exact match looks for."""
    return sorted({name, name.replace("_", "-"), name.replace("-", "_")})
