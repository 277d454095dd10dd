"""The crash tests reuse the end-to-end helpers (`tests/e2e/orchtest.py`)."""

from __future__ import annotations

import sys
from pathlib import Path

E2E = str(Path(__file__).resolve().parents[1] / "e2e")
if E2E not in sys.path:
    sys.path.insert(0, E2E)
