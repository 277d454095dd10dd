"""A crontab read as orch.toml entries: `parse_crontab` (lines -> jobs, alerts and problems),
then `render_toml` (-> the TOML text `orch import-crontab` prints).

What each crontab line becomes:

- `MIN HOUR DOM MON DOW COMMAND` (with a user field before COMMAND in `/etc/cron.d` files and
  `/etc/crontab`: `system=True`): a `[[schedule]]` running `command`, its five fields passed
  through as `cron = "..."` once the project's cron parser accepts them (numbers, ranges,
  steps, lists, `jan`/`mon` names, `*`; 0 and 7 both Sunday). A `@daily`-style macro is kept
  as written (`@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
  `@hourly`); `@reboot` has no equivalent and becomes a comment.
- `NAME=value` (spaces around `=` allowed, one pair of quotes stripped) applies to the jobs
  after it, as in cron: most names go into each job's `env = {...}`. `CRON_TZ` and `TZ` set
  the jobs' `timezone` (`TZ` stays in `env` too, as cron hands it to the command); `HOME` is
  also their `working_dir` (cron starts a command there; without it, `"~"`: your home
  folder); a `SHELL` other than `/bin/sh` wraps the command in `SHELL -c '...'` (orchlite
  runs commands with `/bin/sh`); `PATH` goes into `env` like any other name. `MAILTO`
  becomes an `[[alert]]` with an `[alert.email]` table for the jobs after it (`MAILTO=""`:
  none), `MAILFROM` its sender.
- A command that starts with `cd DIR && ` or `cd DIR; ` runs the rest in `working_dir =
  "DIR"` (a relative DIR taken from the folder cron starts in, `HOME`), when DIR is one
  word with nothing for the shell to expand (a `$VAR` or a glob keeps the `cd` in the command).
- A command with an unescaped `%` (cron's newline and stdin) is not translated; `\\%` is a
  plain `%`. Comments and blank lines are skipped; anything else is a problem.

Each job is named from its command by `orchlite.shell_jobs.command_flow_name`, made unique
with `-2`, `-3`...; each untranslated line is a `Problem` naming its line number, rendered as
a comment. Nothing here reads files or the clock.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from .errors import UsageError
from .schedules import cron
from .shell_jobs import command_flow_name

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
ALERT_STATES = ("FAILED", "CRASHED", "TIMED_OUT")
SMTP_HOST_PLACEHOLDER = "smtp.example.com"
_SENDER_PLACEHOLDER = "cron@example.com"
_ENV_LINE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*")
_FIVE = r"\s*(\S+\s+\S+\s+\S+\s+\S+\s+\S+)\s+"
_ENTRY = re.compile(_FIVE + r"(\S.*?)\s*")
_SYSTEM_ENTRY = re.compile(_FIVE + r"(\S+)\s+(\S.*?)\s*")
_MACRO_ENTRY = re.compile(r"\s*(@\w+)\s+(\S.*?)\s*")
_SYSTEM_MACRO_ENTRY = re.compile(r"\s*(@\w+)\s+(\S+)\s+(\S.*?)\s*")
_UNESCAPED_PERCENT = re.compile(r"(?<!\\)%")
_PLAIN_SHELLS = {"/bin/sh", "sh"}
_CD_WORD = r"""(?:"[^"$`\\]*"|'[^']*'|[^\s;&|<>()"'$`\\*?\[])+"""
_CD = re.compile(rf"\s*cd\s+({_CD_WORD})\s*(?:&&|;)\s*(\S.*)", re.S)
"""`cd DIR && REST` or `cd DIR; REST`, DIR one word the shell expands nothing in (but `~`)."""


@dataclass(frozen=True)
class Job:
    """One crontab line as a `[[schedule]]` entry running a command."""

    line: int
    text: str
    """The line as written, for the comment above the entry."""
    name: str
    command: str
    cron: str
    timezone: str
    working_dir: str
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None
    """The user field of a system crontab line (orchlite runs it as the daemon's user)."""


@dataclass(frozen=True)
class Alert:
    """A `MAILTO` as an `[[alert]]`: its addresses and the jobs it covers."""

    name: str
    line: int
    to: tuple[str, ...]
    sender: str | None
    flows: tuple[str, ...]


@dataclass(frozen=True)
class Problem:
    """A line that is not translated, and why."""

    line: int
    text: str
    reason: str


@dataclass
class Crontab:
    """What a crontab holds, in orch.toml's terms."""

    jobs: list[Job] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


@dataclass
class _Env:
    """The variables in effect at a line, as cron applies them to the lines after them."""

    timezone: str
    values: dict[str, str] = field(default_factory=dict)
    mailto: tuple[int, str] | None = None
    """(line, value) of the MAILTO in effect."""
    sender: str | None = None
    """The MAILFROM in effect."""

    def set(self, name: str, value: str, line: int) -> None:
        if name == "CRON_TZ":
            self.timezone = value or self.timezone
        elif name == "MAILTO":
            self.mailto = (line, value)
        elif name == "MAILFROM":
            self.sender = value or None
        else:
            if name == "TZ" and value:
                self.timezone = value
            self.values[name] = value

    def mail(self) -> tuple[int, tuple[str, ...], str | None] | None:
        """(line, addresses, sender) of the MAILTO in effect; None for none or ""."""
        if self.mailto is None:
            return None
        line, value = self.mailto
        to = tuple(a.strip() for a in value.split(",") if a.strip())
        return (line, to, self.sender) if to else None


def parse_crontab(text: str, *, timezone: str = "UTC", system: bool = False) -> Crontab:
    """The jobs, alerts and problems of a crontab's text.

    `timezone` is the zone cron runs in (the machine's) until a `CRON_TZ` or `TZ` line;
    `system`: the lines have a user field (`/etc/cron.d`, `/etc/crontab`).
    """
    found = Crontab()
    env = _Env(timezone)
    mail_groups: dict[tuple[int, tuple[str, ...], str | None], list[str]] = {}
    taken: set[str] = set()
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if "\x00" in line:
            found.problems.append(Problem(number, line, "the line has a NUL character"))
            continue
        assignment = _ENV_LINE.fullmatch(line)
        if assignment:
            env.set(assignment.group(1), _unquote(assignment.group(2)), number)
            continue
        try:
            job = _job(line, number, env, system, taken)
        except UsageError as exc:
            found.problems.append(Problem(number, line, str(exc)))
            continue
        taken.add(job.name)
        found.jobs.append(job)
        mail = env.mail()
        if mail is not None:
            mail_groups.setdefault(mail, []).append(job.name)
    alert_names: set[str] = set()
    for (line_number, to, sender), names in mail_groups.items():
        name = _unique("mailto", alert_names)
        alert_names.add(name)
        found.alerts.append(Alert(name, line_number, to, sender, tuple(names)))
    return found


def _job(line: str, number: int, env: _Env, system: bool, taken: set[str]) -> Job:
    """One entry line as a Job; UsageError saying why it cannot be one."""
    when, user, command = _split_entry(line, system)
    if when.lower() == "@reboot":
        raise UsageError("@reboot has no equivalent (start it from a systemd unit instead)")
    if _UNESCAPED_PERCENT.search(command):
        raise UsageError(
            "the command has a % (cron's newline; the text after the first % is its stdin)"
        )
    command = command.replace("\\%", "%")
    when = " ".join(when.split())
    cron(when, env.timezone)  # UsageError naming the field croniter refuses
    variables = dict(env.values)
    home = variables.get("HOME") or "~"
    folder, command = _leading_cd(command, home)
    shell = variables.pop("SHELL", "/bin/sh")
    run = command if shell in _PLAIN_SHELLS else f"{shell} -c {shlex.quote(command)}"
    name = _unique(command_flow_name(command), taken)
    return Job(number, line, name, run, when, env.timezone, folder, tuple(variables.items()), user)


def _leading_cd(command: str, home: str) -> tuple[str, str]:
    """(the folder the command runs in, the command): `cd DIR && REST` is REST run in DIR
    (from `home`, where cron starts it, unless absolute); any other command runs in `home`."""
    match = _CD.fullmatch(command)
    if match is None:
        return home, command
    word, rest = match.groups()
    (folder,) = shlex.split(word)
    if folder.startswith("~") and not word.startswith("~"):
        return home, command  # a quoted ~ is no home folder to the shell
    if not folder.startswith(("/", "~")):
        folder = f"{home.rstrip('/')}/{folder}"
    return folder, rest


def _split_entry(line: str, system: bool) -> tuple[str, str | None, str]:
    """(the schedule: 5 fields or a macro, the user field or None, the command)."""
    stripped = line.strip()
    if stripped.startswith("@"):
        pattern = _SYSTEM_MACRO_ENTRY if system else _MACRO_ENTRY
        what = "@macro USER COMMAND" if system else "@macro COMMAND"
    else:
        pattern = _SYSTEM_ENTRY if system else _ENTRY
        what = "5 time fields, a user and a command" if system else "5 time fields and a command"
    match = pattern.fullmatch(line)
    if match is None:
        raise UsageError(f"not a crontab line: expected {what}, or NAME=value")
    if system:
        return match.group(1), match.group(2), match.group(3)
    return match.group(1), None, match.group(2)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    number = 2
    while f"{name}-{number}" in taken:
        number += 1
    return f"{name}-{number}"


# -- TOML ---------------------------------------------------------------------------------

_TOML_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def toml_string(value: str) -> str:
    """`value` as a TOML basic string: quotes, backslashes and control characters escaped."""
    out = []
    for char in value:
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _comment(text: str) -> str:
    """`text` fit for a TOML comment: control characters shown escaped."""
    return toml_string(text)[1:-1].replace('\\"', '"').replace("\\\\", "\\")


def render_toml(found: Crontab, source: str) -> str:
    """orch.toml text for `found`: a `[[schedule]]` per job, an `[[alert]]` per MAILTO, and
    a comment for every line not translated, naming its line in `source`."""
    source = _comment(source)
    out = [
        f"# Made by `orch import-crontab` from {source}: review before use.",
        "# Commands run with /bin/sh in working_dir, as the daemon's user; an alert mails a",
        "# failed run (cron mailed any output).",
    ]
    entries: list[tuple[int, list[str]]] = [
        (job.line, _job_toml(job, source)) for job in found.jobs
    ]
    entries += [
        (
            p.line,
            [
                f"# {source} line {p.line} not translated: {_comment(p.reason)}",
                f"#   {_comment(p.text.strip())}",
            ],
        )
        for p in found.problems
    ]
    for _line, lines in sorted(entries, key=lambda item: item[0]):
        out += ["", *lines]
    for alert in found.alerts:
        out += ["", *_alert_toml(alert, source)]
    return "\n".join(out) + "\n"


def _job_toml(job: Job, source: str) -> list[str]:
    lines = [f"# {source} line {job.line}: {_comment(job.text.strip())}"]
    if job.user is not None:
        lines.append(
            f"# cron ran it as {_comment(job.user)}; orchlite runs it as the daemon's user"
        )
    lines += [
        "[[schedule]]",
        f"name = {toml_string(job.name)}",
        f"command = {toml_string(job.command)}",
        f"cron = {toml_string(job.cron)}",
        f"timezone = {toml_string(job.timezone)}",
        f"working_dir = {toml_string(job.working_dir)}",
    ]
    if job.env:
        pairs = ", ".join(f"{name} = {toml_string(value)}" for name, value in job.env)
        lines.append(f"env = {{ {pairs} }}")
    return lines


def _alert_toml(alert: Alert, source: str) -> list[str]:
    sender = alert.sender or _SENDER_PLACEHOLDER
    return [
        f"# {source} line {alert.line}: MAILTO={_comment(','.join(alert.to))}",
        "[[alert]]",
        f"name = {toml_string(alert.name)}",
        f"on = [{', '.join(toml_string(s) for s in ALERT_STATES)}]",
        f"flows = [{', '.join(toml_string(f) for f in alert.flows)}]",
        "",
        "[alert.email]",
        f"host = {toml_string(SMTP_HOST_PLACEHOLDER)}  # FILL IN: your SMTP server",
        "port = 25",
        f"from = {toml_string(sender)}"
        + ("" if alert.sender else "  # FILL IN: the sender (MAILFROM)"),
        f"to = [{', '.join(toml_string(a) for a in alert.to)}]",
    ]
