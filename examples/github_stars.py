"""Prefect's "GitHub stars" quickstart, offline: the numbers come from a local fixture.

    orch run examples/github_stars.py:github_stars
    orch run examples/github_stars.py:github_stars -p repos=pallets/flask,python/cpython
    python examples/github_stars.py

`get_stars` reads `data/github_repos.json` (a fixed snapshot with rounded numbers) where the
original calls `https://api.github.com/repos/{repo}`; the shape of the flow is the same. To
call the real API, replace the body of `get_stars` with an HTTP request: the retries then
cover a flaky network.
"""

from __future__ import annotations

import json
from pathlib import Path

from orchlite import flow, task

FIXTURE = Path(__file__).parent / "data" / "github_repos.json"


@task(retries=3)
def get_stars(repo: str) -> int:
    """The star count of `owner/name`."""
    repos = json.loads(FIXTURE.read_text())
    if repo not in repos:
        raise LookupError(f"{repo} is not in {FIXTURE.name} (known: {', '.join(sorted(repos))})")
    count = int(repos[repo]["stars"])
    print(f"{repo} has {count} stars!")
    return count


@flow(name="github-stars", log_prints=True)
def github_stars(
    repos: list[str] = ["PrefectHQ/prefect", "pallets/flask", "python/cpython"],  # noqa: B006
) -> dict[str, int]:
    """Print the star count of each repository."""
    return {repo: get_stars(repo) for repo in repos}


if __name__ == "__main__":
    github_stars()
