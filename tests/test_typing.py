"""The public API's types, as a user's type checker sees them (tests/typing/public_api.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_decorated_functions_keep_their_types_for_a_type_checker() -> None:
    """mypy with the project's settings: `assert_type` on `@task`/`@flow` calls, `.submit`,
    `.map` and `.with_options`, and wrong calls that must stay errors (an unused ignore
    comment fails the check). The cache in `.mypy_cache` makes later runs take a second."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "tests/typing/public_api.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
