"""Alerts by e-mail: an `[alert.email]` table of orch.toml, and sending one message by SMTP.

    [[alert]]
    name = "ops"
    [alert.email]
    host = "smtp.example.com"           # required
    port = 587                          # default 25
    from = "orch@example.com"           # required
    to = ["ops@example.com"]            # one address or a list; required
    subject = "orch: {flow} {state}"    # fields: flow, state, run_id, name, target, message
    starttls = true                     # upgrade the connection with STARTTLS; default false
    username = "orch"                   # log in (needs password_env)
    password_env = "SMTP_PASSWORD"      # the NAME of the variable or secret holding it
    ca_file = "/etc/ssl/our-ca.pem"     # trust this CA for STARTTLS besides the system's

The password is read when a message is sent, from the environment or else the user's secrets
file (`orch secret set SMTP_PASSWORD`), like a webhook's URL: it is never in orch.toml, the
store, a log line or a command line, and it is redacted from everything orchlite records from
then on. Sending uses the stdlib's `smtplib`; each attempt is bounded by the alert's
`timeout_seconds`.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

DEFAULT_SUBJECT = "orch: flow {flow} run {run_id:.12} {state}"
SUBJECT_FIELDS = frozenset({"flow", "state", "run_id", "name", "target", "message"})
_KEYS = frozenset(
    {"host", "port", "from", "to", "subject", "starttls", "username", "password_env", "ca_file"}
)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBJECT_LENGTH = 200


@dataclass(frozen=True)
class EmailSettings:
    """Where and how to send an alert's e-mail (the `[alert.email]` table)."""

    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 25
    subject: str = DEFAULT_SUBJECT
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    ca_file: str | None = None


def parse_email(table: Any) -> EmailSettings:
    """The `email` table of an alert; ValueError naming the field (`email.port ...`)."""
    if not isinstance(table, dict):
        raise ValueError('email must be a table, e.g. email = { host = "...", ... }')
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) in email: {', '.join(unknown)}")
    host = table.get("host")
    if not isinstance(host, str) or not host.strip() or any(c.isspace() for c in host):
        raise ValueError("email.host must be the SMTP server's host name")
    port = table.get("port", 25)
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError("email.port must be a whole number from 1 to 65535")
    sender = _address(table.get("from"), "email.from")
    to = table.get("to")
    recipients = [to] if isinstance(to, str) else to
    if not isinstance(recipients, list) or not recipients:
        raise ValueError(
            'email.to must be an address or a list of addresses, e.g. to = ["ops@example.com"]'
        )
    subject = table.get("subject", DEFAULT_SUBJECT)
    _check_subject(subject)
    starttls = table.get("starttls", False)
    if not isinstance(starttls, bool):
        raise ValueError("email.starttls must be true or false")
    username = table.get("username")
    if username is not None and (not isinstance(username, str) or not username):
        raise ValueError("email.username must be a non-empty string")
    password_env = table.get("password_env")
    if password_env is not None and (
        not isinstance(password_env, str) or not _ENV_NAME.fullmatch(password_env)
    ):
        # Never echo the value: it may be the password put in the wrong place.
        raise ValueError(
            "email.password_env must be the NAME of an environment variable or secret holding"
            ' the password (e.g. password_env = "SMTP_PASSWORD"), not the password itself'
        )
    if (username is None) != (password_env is None):
        raise ValueError("email.username and email.password_env go together: give both or neither")
    ca_file = table.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file):
        raise ValueError("email.ca_file must be the path of a PEM file")
    if ca_file is not None and not starttls:
        raise ValueError("email.ca_file needs starttls = true")
    return EmailSettings(
        host=host,
        sender=sender,
        to=tuple(_address(r, "email.to") for r in recipients),
        port=port,
        subject=subject,
        starttls=starttls,
        username=username,
        password_env=password_env,
        ca_file=ca_file,
    )


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        raise ValueError(f"{field} must be an e-mail address, e.g. ops@example.com")
    _, address = parseaddr(value)
    if "@" not in address or address.startswith("@") or address.endswith("@"):
        raise ValueError(f"{field}: {value!r} is not an e-mail address")
    return value


def _check_subject(subject: Any) -> None:
    if not isinstance(subject, str) or not subject.strip():
        raise ValueError("email.subject must be a non-empty string")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(subject) if name is not None]
    except ValueError as exc:
        raise ValueError(f"email.subject is not a valid template: {exc}") from None
    bad = sorted({name for name in fields if name not in SUBJECT_FIELDS})
    if bad:
        raise ValueError(
            f"email.subject uses unknown field(s) {', '.join(repr(b) for b in bad)}"
            f" (expected some of {', '.join(sorted(SUBJECT_FIELDS))})"
        )
    try:
        subject.format_map(dict.fromkeys(SUBJECT_FIELDS, ""))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"email.subject is not a valid template: {exc}") from None


def subject_of(settings: EmailSettings, body: dict[str, Any]) -> str:
    """The subject line for an alert: the template filled in, on one line, capped."""
    values = {name: str(body.get(name) or "") for name in SUBJECT_FIELDS}
    values["run_id"] = str(body["run_id"])
    text = settings.subject.format_map(values)
    text = " ".join(text.split())
    return text if len(text) <= _SUBJECT_LENGTH else text[: _SUBJECT_LENGTH - 1] + "…"


def message_of(settings: EmailSettings, body: dict[str, Any]) -> Any:
    """The e-mail for an alert: the subject, then the alert's text and its fields."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = subject_of(settings, body)
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    lines = [body["text"], ""]
    for name in ("flow", "name", "run_id", "state", "target", "started", "ended", "show"):
        if body.get(name):
            lines.append(f"{name}: {body[name]}")
    if body.get("message"):
        lines += ["", "message:", str(body["message"])]
    message.set_content("\n".join(lines) + "\n")
    return message


def send_email(
    settings: EmailSettings, body: dict[str, Any], password: str | None, timeout: float
) -> None:
    """Send one alert's e-mail; raises (OSError, smtplib.SMTPException) when it fails."""
    import smtplib
    import ssl

    message = message_of(settings, body)
    with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
        if settings.starttls:
            context = ssl.create_default_context()
            if settings.ca_file is not None:
                context.load_verify_locations(cafile=settings.ca_file)
            smtp.starttls(context=context)
        if settings.username is not None and password is not None:
            smtp.login(settings.username, password)
        smtp.send_message(message, from_addr=settings.sender, to_addrs=list(settings.to))
