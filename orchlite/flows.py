"""`prefect.flows` names: the decorator and the class."""

from __future__ import annotations

from .registry import Flow, flow

__all__ = ["Flow", "flow"]
