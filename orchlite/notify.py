"""Alerts: POST a run's outcome to a webhook, run a shell command and/or send an e-mail.

The rules are `orch.toml`'s `[[alert]]` entries (`orchlite.alert_rules`). A webhook's URL
comes from the environment, or else from the user's secrets file under the name the entry
gives (`orch secret set SLACK_WEBHOOK_URL`): it is never written to the store, to `orch.toml`
or to the log, where a webhook is named by its variable and its host only (no credentials,
path or query: a Slack-style URL holds its token in the path). Credentials in the URL
(`https://user:password@host/hook`) are sent as HTTP basic authentication. Secret values
known to this process are replaced by `***` in what is sent. The webhook gets JSON with a
Slack-compatible `text` plus `flow`, `run_id`, `state`, `message`, `show`, `started`,
`ended`, `target` and `name`; the command gets the same details in `ORCH_RUN_ID`,
`ORCH_FLOW`, `ORCH_STATE`, `ORCH_MESSAGE`, `ORCH_SHOW`, `ORCH_TARGET`, `ORCH_STARTED` and
`ORCH_ENDED`.

The e-mail table is described in `alert_email`. Every process that sees a run end calls
`alert_run` (through the store's hook, `alerting`); each alert is claimed in the store before
it is sent (`store.deliveries`), so it is sent once however many processes saw the run end.

Sending happens in background threads, each bounded in time, so a slow or dead webhook never
stalls the daemon's tick or a run's process; a process that started alerts waits for them
when it exits (`drain`, at most `EXIT_WAIT` seconds). A failing alert is one line in the log
and never raises.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .alert_email import EmailSettings
from .alert_rules import AlertConfig, AlertRule, Log, read_alerts
from .redaction import redact, redact_data, register
from .states import StateName
from .store import FlowRun, Store

COMMAND_TIMEOUT = 60.0
EXIT_WAIT = 75.0
"""How long a process waits, when it exits, for the alerts it is still sending (each is
bounded on its own: a command by COMMAND_TIMEOUT, a webhook or e-mail by its attempts)."""
MAX_PENDING = 64
_MESSAGE_IN_TEXT = 500


# -- what is sent ------------------------------------------------------------------------------


def _iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).isoformat(timespec="seconds")


def payload(run: FlowRun) -> dict[str, Any]:
    """The webhook's JSON body for a run: Slack's `text` plus structured fields."""
    show = f"orch show {run.id}"
    message = run.state_message or ""
    short = message if len(message) <= _MESSAGE_IN_TEXT else message[:_MESSAGE_IN_TEXT] + "…"
    text = f"orch: flow {run.flow_name!r} run {run.id[:12]} {run.state}"
    text += f": {short}" if short else ""
    text += f"\n`{show}`"
    body = {
        "text": text,
        "flow": run.flow_name,
        "run_id": run.id,
        "state": run.state,
        "message": message,
        "show": show,
        "started": _iso(run.started),
        "ended": _iso(run.ended),
        "target": run.target,
        "name": run.name,
    }
    return redact_data(body)  # type: ignore[no-any-return]


def environment(body: dict[str, Any]) -> dict[str, str]:
    """The variables a command alert gets (on top of the daemon's environment)."""
    return {
        "ORCH_RUN_ID": body["run_id"],
        "ORCH_FLOW": body["flow"],
        "ORCH_STATE": body["state"],
        "ORCH_MESSAGE": body["message"] or "",
        "ORCH_SHOW": body["show"],
        "ORCH_TARGET": body["target"] or "",
        "ORCH_STARTED": body["started"] or "",
        "ORCH_ENDED": body["ended"] or "",
    }


# -- sending -----------------------------------------------------------------------------------

_pending: set[threading.Thread] = set()
_pending_lock = threading.Lock()


def alert_run(store: Store, run_id: str, config: AlertConfig, log: Log | None = None) -> int:
    """Start the alerts whose rules match the run's current state; never raises.

    The one path of every alert for a run, whichever process calls it. Each alert is claimed
    in the store first and sent only by the caller that claims it. Reads the run and claims
    in the caller's thread and sends from background threads. Returns how many alerts this
    call started.
    """
    log = log or to_stderr
    if not config.rules:
        return 0
    try:
        run = store.get_flow_run(run_id)
        rules = [r for r in config.rules if r.matches(run)]
        if not rules:
            return 0
        body = payload(run)
        started = 0
        for rule in rules:
            with _pending_lock:
                alive = {t for t in _pending if t.is_alive()}
                _pending.intersection_update(alive)
                full = len(_pending) >= MAX_PENDING
            if full:  # left unclaimed: another process that saw the run end may send it
                log(f"alert {rule.where}: run {run_id[:12]} dropped: too many alerts pending")
                continue
            if not store.claim_alert(run_id, rule.key, run.state):
                continue  # another process saw the run end first and sends it
            thread = threading.Thread(
                target=send,
                args=(rule, body, log),
                name=f"alert-{run_id[:12]}",
                daemon=True,
            )
            with _pending_lock:
                _pending.add(thread)
                _wait_at_exit()
            thread.start()
            started += 1
        return started
    except Exception as exc:  # an alert never stops the daemon
        log(f"alert: run {run_id[:12]}: {type(exc).__name__}: {exc}")
        return 0


_waits_at_exit: list[bool] = []


def _wait_at_exit() -> None:
    """Make this process wait for its alerts when it exits (registered once)."""
    if not _waits_at_exit:
        _waits_at_exit.append(True)
        atexit.register(drain, EXIT_WAIT)


def drain(timeout: float) -> bool:
    """Wait up to `timeout` seconds for the alerts still being sent; True if none is left."""
    deadline = time.monotonic() + timeout
    with _pending_lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def send(rule: AlertRule, body: dict[str, Any], log: Log | None = None) -> bool:
    """Send one alert through every channel of `rule`, in this thread; True if all worked.

    Never raises: each failure is one line in `log`, redacted (a command's error output may
    quote a secret).
    """
    out = log or to_stderr

    def say(line: str) -> None:
        out(redact(line))

    ok = True
    what = f"alert {rule.where}: {body['state']} run {body['run_id'][:12]}"
    try:
        if rule.webhook_env is not None:
            ok = _send_webhook(rule, body, say, what) and ok
        if rule.command is not None:
            ok = _run_command(rule, body, say, what) and ok
        if rule.email is not None:
            ok = _send_email(rule, rule.email, body, say, what) and ok
    except Exception as exc:  # pragma: no cover - a bug here must still not escape
        say(f"{what}: {type(exc).__name__}: {exc}")
        return False
    return ok


def _send_webhook(rule: AlertRule, body: dict[str, Any], log: Log, what: str) -> bool:
    import urllib.error
    import urllib.request

    from .secret_store import SecretError
    from .secrets import lookup

    name = rule.webhook_env or ""
    channel = f"{what}: webhook ${name}"
    try:
        url = (lookup(name)[0] or "").strip()
    except SecretError as exc:
        log(f"{channel}: {exc}")
        return False
    if not url:
        log(f"{channel}: the environment variable {name} is not set")
        return False
    register(name, url)  # from now on `***` wherever this process would write it
    target = _Target.parse(url)
    if target is None:
        log(f"{channel}: the URL in {name} must be an http:// or https:// URL")
        return False
    channel += f" to {target.host}"
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "orchlite-alert"}
    headers.update(target.auth)

    def attempt() -> tuple[str, bool] | None:
        request = urllib.request.Request(target.url, data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=rule.timeout) as response:
                response.read(65536)
            return None
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}", True
        except urllib.error.URLError as exc:
            return target.hide(str(exc.reason)), True
        except Exception as exc:  # timeouts, resets, bad URLs
            return target.hide(f"{type(exc).__name__}: {exc}"), True

    return _retried(rule, attempt, log, channel)


def _send_email(
    rule: AlertRule, email: EmailSettings, body: dict[str, Any], log: Log, what: str
) -> bool:
    import smtplib
    import ssl

    from .alert_email import send_email
    from .secret_store import SecretError
    from .secrets import lookup

    channel = f"{what}: email to {', '.join(email.to)} via {email.host}:{email.port}"
    password = None
    if email.password_env is not None:
        name = email.password_env
        try:
            password = lookup(name)[0]
        except SecretError as exc:
            log(f"{channel}: {exc}")
            return False
        if not password:
            log(f"{channel}: the password variable {name} is not set (nor a secret of that name)")
            return False
        register(name, password)  # from now on `***` wherever this process would write it

    def attempt() -> tuple[str, bool] | None:
        try:
            send_email(email, body, password, rule.timeout)
            return None
        except smtplib.SMTPResponseException as exc:
            said = exc.smtp_error
            text = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
            return f"SMTP {exc.smtp_code} {' '.join(text.split())}", exc.smtp_code < 500
        except smtplib.SMTPRecipientsRefused:
            return "every recipient was refused", False
        except (smtplib.SMTPNotSupportedError, ssl.SSLError) as exc:
            return f"{type(exc).__name__}: {exc}", False
        except (OSError, smtplib.SMTPException) as exc:  # refused, timed out, reset
            return f"{type(exc).__name__}: {exc}", True

    return _retried(rule, attempt, log, channel)


def _retried(
    rule: AlertRule, attempt: Callable[[], tuple[str, bool] | None], log: Log, channel: str
) -> bool:
    """Call `attempt` up to `rule.retries` times, with backoff, until it returns None (sent);
    it returns (error, worth retrying) when it fails. Logs the outcome as one line."""
    error = ""
    for number in range(1, rule.retries + 1):
        failure = attempt()
        if failure is None:
            log(f"{channel}: sent")
            return True
        error, again = failure
        if not again:
            break
        if number < rule.retries:
            time.sleep(rule.backoff * 2 ** (number - 1))
    log(f"{channel}: failed after {number} attempt(s): {error}")
    return False


def _run_command(rule: AlertRule, body: dict[str, Any], log: Log, what: str) -> bool:
    channel = f"{what}: command"
    env = {**os.environ, **environment(body)}
    try:
        done = subprocess.run(
            rule.command or "",
            shell=True,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=COMMAND_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        log(f"{channel}: killed after {COMMAND_TIMEOUT:g} s")
        return False
    except OSError as exc:
        log(f"{channel}: cannot start: {exc}")
        return False
    if done.returncode != 0:
        tail = (done.stderr or "").strip().splitlines()
        detail = f": {tail[-1][:200]}" if tail else ""
        log(f"{channel}: exited with status {done.returncode}{detail}")
        return False
    log(f"{channel}: done")
    return True


@dataclass(frozen=True)
class _Target:
    """A webhook URL read from a secret: where to send, and what never to print of it."""

    url: str
    """The URL without its credentials."""
    host: str
    auth: dict[str, str]
    """The basic-authentication header for credentials given in the URL, if any."""
    hidden: tuple[str, ...]
    """Every part of the URL but its scheme and host, longest first."""

    @classmethod
    def parse(cls, url: str) -> _Target | None:
        """None unless `url` is an http(s) URL with a host."""
        import base64
        from urllib.parse import unquote, urlsplit

        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
            port = parts.port
        except ValueError:  # a bad port, an unbalanced [
            return None
        if parts.scheme.lower() not in ("http", "https") or not host:
            return None
        where = f"[{host}]" if ":" in host else host
        netloc = where if port is None else f"{where}:{port}"
        auth: dict[str, str] = {}
        if parts.username is not None or parts.password is not None:
            pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
            auth["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        userinfo = parts.netloc.rpartition("@")[0]
        pieces = {url, parts.netloc, userinfo, parts.username, parts.password, parts.path}
        pieces |= {parts.query, parts.fragment, unquote(parts.path), parts.path.lstrip("/")}
        hidden = sorted((p for p in pieces if p and len(p) > 1), key=len, reverse=True)
        return cls(parts._replace(netloc=netloc).geturl(), host, auth, tuple(hidden))

    def hide(self, text: str) -> str:
        """`text` on one line, with no part of the URL but its host (see `hidden`)."""
        for piece in self.hidden:
            text = text.replace(piece, "***")
        return redact(text).replace("\n", " ")


def to_stderr(message: str) -> None:
    stamp = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"{stamp} orch alert: {message}", file=sys.stderr, flush=True)


# -- `orch alert test` -------------------------------------------------------------------------


def send_test(root: Path, log: Log | None = None) -> tuple[int, int]:
    """Send a test alert through every configured rule, waiting for each; (sent, failed).

    Config problems are logged and count as failures.
    """
    log = log or to_stderr
    config = read_alerts(Path(root))
    for problem in config.problems:
        log(f"error: {problem}")
    now = time.time()
    run = FlowRun(
        id="test-" + "0" * 27,
        flow_name="orch-alert-test",
        name="orch-alert-test",
        target=None,
        parameters="{}",
        state=StateName.FAILED.value,
        state_message="a test alert from `orch alert test`",
        trigger="test",
        parent_run_id=None,
        parent_position=None,
        retry_of=None,
        created=now,
        started=now,
        ended=now,
        attempts=1,
        pid=None,
        host=None,
        heartbeat=None,
        deadline=None,
        result_ref=None,
        result_serializer=None,
    )
    body = payload(run)
    sent = failed = 0
    for rule in config.rules:
        if send(rule, body, log):
            sent += 1
        else:
            failed += 1
    return sent, failed + len(config.problems)
