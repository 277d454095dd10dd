"""The `?` screen: every key, by screen."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
[b]orch tui[/b] — live view of this project's runs (read-only; actions ask first)

[b]Runs[/b]
  enter      open the run            l   its logs
  /          search (id, name, flow, trigger, message)
  f          filter by flow (any part of its name)
  s          filter by states: failed,crashed
  w          filter by time: 24h, 7d, 2026-12-01, 7d..1d (a range)
  #          filter by tags: nightly,eu (runs with every one)
  escape     back to the table (there: clear the selection, else the filters)
  m          load older runs (so does reaching the last row, ctrl+end)
  t          show or hide the trends (each flow's last runs and durations)
  c          cancel the run          r   retry the run
  e          edit its parameters, then retry it or start a fresh run
  space      select the run or not   a   select every run shown
  c / r      with runs selected: cancel / retry them all (one question)
[b]Run detail[/b]
  l          logs                    c / r   cancel / retry
  e          edit & re-run: its parameters in a form, then a retry or a fresh run
  up / down  pick a task run: its result's preview shows under Result
  u          load the stored results themselves (unpickles them; asks first)
  p          resume a paused run (a form for the input it waits for)
  enter      on a task run: its detail; on a subflow: its run
  g          the run graph
  tab        move between tasks and related runs (enter opens one)
  escape     back
[b]Run graph[/b] (g)
  up / down  pick a node (a task run, a map group, a subflow)
  enter      open it: a task run's detail (a map group's first failed), a subflow's run
  l          logs                    escape  back
[b]Task run[/b] (enter on a task run)
  tab        move to the task runs it waited for, or that waited for it (enter opens one)
  l          its log lines           escape  back
[b]Schedules[/b] (S)
  enter      open the last run of the highlighted schedule or trigger
  p          pause or resume the highlighted schedule
  r          run the highlighted schedule now (asks first)
  escape     back
[b]Flow health[/b] (h)
  w          next window: 24 hours, 7 days, 30 days (1, 2, 3 pick one)
  enter      the flow's runs (the runs screen, filtered to it)
  escape     back
[b]Logs[/b]
  1-5        minimum level: debug, info, warning, error, critical
  t          filter by task run (or the flow run's own lines)
  /          only lines containing a text
  end        follow the newest lines again
  escape     back
[b]Anywhere[/b]
  n          run a flow now (pick it, fill in its parameters, confirm)
  S          schedules, triggers and the daemon
  h          flow health: failure rate, durations, late and skipped runs
  ?          this help               q   quit
  ctrl+p     command palette (every action; "Theme" switches light/dark)
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss_help", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(HELP, id="help-text")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
