"""Secrets: `orch secret set/ls/rm`, `orchlite.secret()`, declarations, and redaction.

Everything runs through the real `orch` command in child processes (`python -m orchlite.cli`)
in a temporary project, with the user's config directory (`XDG_CONFIG_HOME`) pointed at a
temporary folder, a real SQLite store, real child processes and the real daemon; the alert
webhook is a local HTTP server. The central check, `assert_nowhere_in_store`, reads every
file under `.orch/` (database, WAL, blobs) as bytes and looks for each secret value, raw and
escaped as Python's repr and JSON would escape it.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from orchlite import redaction
from tests.helpers import Project, assert_usage_error, describe, wait_for
from tests.helpers.webhook import Hook

API_TOKEN = "tok-5f0e8d1c9b2a7364"
"""Read from the environment in these tests."""
DB_PASSWORD = "pa\"ss\\word-'é-9931"
"""Read from the secrets file; quotes, a backslash and a non-ASCII letter test the escapes."""


pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path / "project")


def config_dir() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "orchlite"


def secrets_file() -> Path:
    return config_dir() / "secrets.json"


def set_secret(project: Project, name: str, value: str, **env: str) -> None:
    """`orch secret set NAME` with the value on stdin, as a script would do it."""
    proc = project.orch("secret", "set", name, input=value + "\n", extra_env=env, expect=None)
    assert proc.returncode == 0, describe(proc)


def forms(value: str) -> set[bytes]:
    """The bytes a value could be stored as: raw, and escaped by repr() and by JSON."""
    texts = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
    texts.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {text.encode() for text in texts}


def assert_nowhere(text: str, *values: str) -> None:
    for value in values:
        for form in forms(value):
            assert form.decode() not in text, f"{value!r} found in:\n{text}"


def assert_nowhere_in_store(project: Project, *values: str) -> None:
    """No file under `.orch/` (database, WAL, shm, blobs, locks) holds any of the values."""
    files = [p for p in project.home.rglob("*") if p.is_file()]
    assert any(p.name == "orch.db" for p in files)
    for path in files:
        data = path.read_bytes()
        for value in values:
            for form in forms(value):
                assert form not in data, f"{value!r} written to {path}"


# -- orch secret set / ls / rm -----------------------------------------------------------------


def test_set_ls_rm_keep_values_in_an_owner_only_file_and_never_print_them(
    project: Project,
) -> None:
    project.root.mkdir()
    set_secret(project, "DB_PASSWORD", DB_PASSWORD)
    proc = project.orch("secret", "set", "SLACK_TOKEN", "--value-from-env", "FROM_VAR", expect=None)
    assert proc.returncode == 2 and "FROM_VAR is not set" in proc.stderr
    proc = project.orch(
        "secret",
        "set",
        "SLACK_TOKEN",
        "--value-from-env",
        "FROM_VAR",
        extra_env={"FROM_VAR": "xoxb-from-a-variable"},
        expect=None,
    )
    assert proc.returncode == 0, describe(proc)

    assert stat.S_IMODE(config_dir().stat().st_mode) == 0o700
    assert stat.S_IMODE(secrets_file().stat().st_mode) == 0o600
    assert json.loads(secrets_file().read_text()) == {
        "DB_PASSWORD": DB_PASSWORD,
        "SLACK_TOKEN": "xoxb-from-a-variable",
    }
    assert sorted(p.name for p in config_dir().iterdir()) == ["secrets.json", "secrets.json.lock"]

    listed = project.orch("secret", "ls")
    assert listed.stdout.splitlines() == [
        "NAME         SOURCE",
        "DB_PASSWORD  secrets file",
        "SLACK_TOKEN  secrets file",
    ]
    assert str(secrets_file()) in listed.stderr
    assert_nowhere(listed.stdout + listed.stderr, DB_PASSWORD, "xoxb-from-a-variable")

    # The environment wins over the file, and `ls` says so.
    proc = project.orch(
        "secret",
        "ls",
        "--json",
        extra_env={"SLACK_TOKEN": "xoxb-from-the-environment"},
        expect=None,
    )
    assert json.loads(proc.stdout) == [
        {"name": "DB_PASSWORD", "source": "secrets file"},
        {"name": "SLACK_TOKEN", "source": "environment"},
    ]
    assert_nowhere(proc.stdout + proc.stderr, "xoxb-from-the-environment", DB_PASSWORD)

    project.orch("secret", "rm", "SLACK_TOKEN")
    assert json.loads(secrets_file().read_text()) == {"DB_PASSWORD": DB_PASSWORD}
    assert stat.S_IMODE(secrets_file().stat().st_mode) == 0o600
    again = project.orch("secret", "rm", "SLACK_TOKEN", expect=None)
    assert_usage_error(again, 2, "no secret 'SLACK_TOKEN'")


def _reading_a_pipe(pid: int) -> bool:
    """Whether process `pid` sleeps in a read of a pipe (its stdin, here)."""
    return Path(f"/proc/{pid}/wchan").read_text().endswith("pipe_read")


def test_concurrent_writers_lose_no_secret(project: Project) -> None:
    project.root.mkdir()
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "orchlite.cli", "secret", "set", f"TOKEN_{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=project.root,
            env=project.env,
            text=True,
        )
        for i in range(8)
    ]
    # Every writer waits in its read of stdin: then they are released together.
    wait_for(lambda: all(_reading_a_pipe(w.pid) for w in writers), what="the writers to read")
    for i, writer in enumerate(writers):
        assert writer.stdin is not None
        writer.stdin.write(f"value-number-{i}\n")
    for writer in writers:
        writer.stdin.close()  # type: ignore[union-attr]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()  # type: ignore[union-attr]
        writer.stdout.close()  # type: ignore[union-attr]
        writer.stderr.close()  # type: ignore[union-attr]
    assert json.loads(secrets_file().read_text()) == {
        f"TOKEN_{i}": f"value-number-{i}" for i in range(8)
    }
    leftovers = [p.name for p in config_dir().iterdir() if p.name.startswith(".secrets-")]
    assert leftovers == []


def test_the_hidden_prompt_does_not_echo_the_value(project: Project) -> None:
    project.root.mkdir()
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "orchlite.cli", "secret", "set", "PROMPTED_TOKEN"],
        cwd=project.root,
        env=project.env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    try:
        while b"Value for PROMPTED_TOKEN" not in seen:
            ready, _, _ = select.select([master], [], [], 20)
            assert ready, f"no prompt; saw {seen!r}"
            seen += os.read(master, 1024)
        os.write(master, b"typed-in-secret-77\n")
        assert child.wait(timeout=30) == 0
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
        if child.poll() is None:
            child.kill()
    assert b"typed-in-secret-77" not in seen
    assert b"saved in" in seen
    assert json.loads(secrets_file().read_text()) == {"PROMPTED_TOKEN": "typed-in-secret-77"}


@pytest.mark.parametrize(
    ("args", "stdin", "needle"),
    [
        (["secret", "set", "bad-name"], "a-long-value", "bad secret name 'bad-name'"),
        (["secret", "set", "1ST"], "a-long-value", "bad secret name '1ST'"),
        (["secret", "rm", "a b"], "", "bad secret name 'a b'"),
        (["secret", "set", "TOKEN", "the-value"], "", "unexpected extra argument"),
        (["secret", "set", "TOKEN"], "abc", "at least 4"),
        (["secret", "set", "TOKEN"], "", "no value given for secret 'TOKEN'"),
        (["secret", "set", "TOKEN", "--value-from-env", "NOT-A-NAME"], "", "bad secret name"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    project: Project, args: list[str], stdin: str, needle: str
) -> None:
    project.root.mkdir()
    assert_usage_error(project.orch(*args, input=stdin, expect=None), 2, needle)
    assert not secrets_file().exists()


def test_a_secrets_file_others_can_read_or_a_broken_one_is_refused(project: Project) -> None:
    project.root.mkdir()
    set_secret(project, "API_TOKEN", API_TOKEN)
    secrets_file().chmod(0o644)
    line = assert_usage_error(project.orch("secret", "ls", expect=None), 2, "chmod 600")
    assert str(secrets_file()) in line
    assert_usage_error(project.orch("secret", "rm", "API_TOKEN", expect=None), 2, "chmod 600")
    assert json.loads(secrets_file().read_text()) == {"API_TOKEN": API_TOKEN}  # untouched

    secrets_file().chmod(0o600)
    secrets_file().write_text('{"API_TOKEN": ')
    line = assert_usage_error(project.orch("secret", "ls", expect=None), 2, "not a JSON object")
    assert API_TOKEN not in line


# -- redaction end to end ----------------------------------------------------------------------

LEAKY_FLOW = """
import sys
from orchlite import flow, get_run_logger, secret, task


@task(retries=1, retry_delay_seconds=0)
def call_api(token: str) -> int:
    get_run_logger().info("calling with %s", token)
    print("task print", token)
    raise PermissionError(f"token {token!r} was refused")


@task
def length(token: str) -> int:
    return len(token)


@task
def report(token: str) -> str:
    return "line of a report; " * 1000  # over 4 KiB: stored as a blob file


@flow(
    secrets=["API_TOKEN", "DB_PASSWORD"],
    log_prints=True,
    flow_run_name="leak-{given}",
)
def leaky(given: str = "none", other: str = "none"):
    token = secret("API_TOKEN")
    password = secret("DB_PASSWORD")
    get_run_logger().info("token=%s password=%s", token, password)
    print("flow print", token, password)
    get_run_logger().warning("as data %r", {"password": password})
    length(token)
    report(token)
    call_api.submit(token).wait()
    try:
        raise KeyError(password)
    except KeyError:
        get_run_logger().exception("lookup failed")
    raise RuntimeError(f"giving up with {token} and {password}")
"""


@pytest.mark.parametrize("mode", ["in-process", "subprocess"])
def test_secret_values_are_redacted_everywhere_and_never_stored(
    project: Project, mode: str
) -> None:
    project.write_flow("leak.py", LEAKY_FLOW)
    set_secret(project, "DB_PASSWORD", DB_PASSWORD)
    args = ["run", "leak.py:leaky", "-p", f"given={API_TOKEN}", "-p", f"other={DB_PASSWORD}"]
    args += ["--json"] + (["--subprocess"] if mode == "subprocess" else [])
    proc = project.orch(*args, extra_env={"API_TOKEN": API_TOKEN}, expect=None)
    assert proc.returncode == 1, describe(proc)
    assert_nowhere(proc.stdout + proc.stderr, API_TOKEN, DB_PASSWORD)
    printed = json.loads(proc.stdout) if mode == "in-process" else project.show()
    assert printed["parameters"] == {"given": "***", "other": "***"}
    assert printed["name"] == "leak-***"
    assert printed["message"] == "RuntimeError: giving up with *** and ***"
    failed = [t for t in printed["tasks"] if t["state"] == "FAILED"]
    assert [t["error"] for t in failed] == ["PermissionError: token '***' was refused"]
    retrying = [h for h in failed[0]["history"] if h["state"] == "RETRYING"]
    assert "token '***' was refused" in retrying[0]["message"]

    shown = project.orch("show", "last", "--json").stdout
    assert "raise PermissionError" in shown  # the traceback is there, redacted
    logs = project.orch("logs", "last").stdout
    for line in (
        "token=*** password=***",
        "flow print *** ***",
        "as data {'password': '***'}",
        "calling with ***",
        "task print ***",
        "KeyError: '***'",
        "RuntimeError: giving up with *** and ***",
    ):
        assert line in logs, logs
    listed = project.orch("runs", "--json").stdout
    for text in (shown, logs, listed):
        assert_nowhere(text, API_TOKEN, DB_PASSWORD)
    assert project.blob_files()
    assert_nowhere_in_store(project, API_TOKEN, DB_PASSWORD)


def test_reading_an_undeclared_secret_fails_naming_it_and_the_flow(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        from orchlite import flow, secret, task
        from orchlite.task_runners import ProcessPoolTaskRunner


        @task
        def read(name: str) -> int:
            return len(secret(name))


        @flow
        def undeclared_in_body():
            secret("API_TOKEN")


        @flow(secrets=["API_TOKEN"])
        def in_threads():
            assert read("API_TOKEN") == 20
            return read.submit("DB_PASSWORD")  # its state decides the flow's


        @flow(secrets=["API_TOKEN"], task_runner=ProcessPoolTaskRunner(max_workers=1))
        def in_processes():
            assert read.submit("API_TOKEN").result() == 20
            return read.submit("DB_PASSWORD")


        @flow
        def child():
            return secret("API_TOKEN")


        @flow(secrets=["API_TOKEN"])
        def parent():
            return child()


        if __name__ == "__main__":
            print(len(secret("API_TOKEN")))  # a plain script: no flow, no declaration needed
        """,
    )
    env = {"API_TOKEN": API_TOKEN, "DB_PASSWORD": "db-password-value"}

    def run(target: str) -> subprocess.CompletedProcess[str]:
        return project.orch("run", target, "--json", extra_env=env, expect=None)

    proc = run("flows.py:undeclared_in_body")
    assert proc.returncode == 1, describe(proc)
    assert json.loads(proc.stdout)["message"] == (
        "SecretNotDeclaredError: flow 'undeclared-in-body' reads secret 'API_TOKEN' but does "
        "not declare it: add it to @flow(secrets=[...])"
    )
    for target in ("flows.py:in_threads", "flows.py:in_processes"):
        proc = run(target)
        assert proc.returncode == 1, describe(proc)
        detail = json.loads(proc.stdout)
        states = [(t["name"], t["state"]) for t in detail["tasks"]]
        assert states == [("read-0", "COMPLETED"), ("read-1", "FAILED")], target
        error = detail["tasks"][1]["error"]
        assert error.startswith("SecretNotDeclaredError: flow ")
        assert "reads secret 'DB_PASSWORD' but does not declare it" in error
        assert detail["flow"] in error
    proc = run("flows.py:parent")
    assert proc.returncode == 1, describe(proc)
    detail = project.show(json.loads(proc.stdout)["children"][0]["id"])
    assert "flow 'child' reads secret 'API_TOKEN'" in detail["message"]

    plain = subprocess.run(
        [sys.executable, "flows.py"],
        cwd=project.root,
        env={**project.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == 0 and plain.stdout.strip() == str(len(API_TOKEN)), describe(plain)


def test_a_missing_secret_fails_the_run_naming_it(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        from orchlite import flow, secret

        @flow(secrets=["NOT_SET_ANYWHERE"])
        def needs_it():
            secret("NOT_SET_ANYWHERE")
        """,
    )
    proc = project.orch("run", "flows.py:needs_it", expect=1)
    assert "Run " in proc.stderr and "FAILED" in proc.stderr
    assert project.show()["message"] == (
        "SecretNotFoundError: secret 'NOT_SET_ANYWHERE' is not set: export "
        "NOT_SET_ANYWHERE=... or run `orch secret set NOT_SET_ANYWHERE`"
    )


def test_a_result_holding_a_secret_is_never_stored(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        from orchlite import flow, secret, task


        @task
        def returns_it() -> dict:
            return {"headers": {"Authorization": "Bearer " + secret("API_TOKEN")}}


        @task(persist_result=False)
        def token() -> str:
            return secret("API_TOKEN")


        @task
        def use(token: str) -> int:
            return len(token)


        @flow(secrets=["API_TOKEN"])
        def refused():
            returns_it()


        @flow(secrets=["API_TOKEN"])
        def kept_in_memory() -> str:
            assert use(token()) == 20
            return token()  # the flow's own result: not persisted, with a warning
        """,
    )

    def run(target: str) -> subprocess.CompletedProcess[str]:
        return project.orch("run", target, extra_env={"API_TOKEN": API_TOKEN}, expect=None)

    proc = run("flows.py:refused")
    assert proc.returncode == 1, describe(proc)
    task = project.show()["tasks"][0]
    assert task["state"] == "FAILED"
    assert task["message"] == (
        "the result holds the value of secret 'API_TOKEN', and secret values are never "
        "written to .orch/: return something else, or set persist_result=False"
    )
    proc = run("flows.py:kept_in_memory")
    assert proc.returncode == 0, describe(proc)
    assert "Result not persisted" in proc.stderr and "'API_TOKEN'" in proc.stderr
    detail = project.show()
    assert [t["state"] for t in detail["tasks"]] == ["COMPLETED"] * 3
    assert_nowhere(proc.stdout + proc.stderr, API_TOKEN)
    assert_nowhere_in_store(project, API_TOKEN)


def test_daemon_runs_redact_captured_output_and_alerts(project: Project, hook: Hook) -> None:
    project.write_flow(
        "flows.py",
        """
        import sys
        from orchlite import flow, interval, secret


        @flow(schedules=[interval(seconds=1)], secrets=["API_TOKEN"])
        def nightly():
            token = secret("API_TOKEN")
            print("plain stdout", token)
            print("plain stderr", token, file=sys.stderr)
            raise ValueError(f"rejected {token}")
        """,
    )
    out = project.root / "alert.txt"
    project.write(
        "orch.toml",
        f"""
        [[alert]]
        flows = ["nightly"]
        webhook_env = "TEST_ALERT_HOOK"
        command = 'printf "%s" "$ORCH_MESSAGE" > "{out}"'
        """,
    )
    set_secret(project, "TEST_ALERT_HOOK", hook.url)  # the URL comes from the secrets file
    daemon = project.popen("daemon", "--tick", "0.2", extra_env={"API_TOKEN": API_TOKEN})
    try:
        wait_for(lambda: hook.requests and out.exists() and out.read_text(), timeout=30)
        assert (project.home / "orch.db-wal").exists()  # the daemon holds the database open
        assert_nowhere_in_store(project, API_TOKEN, hook.url)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    body = hook.requests[0]["body"]
    assert body["state"] == "FAILED"
    assert body["message"] == "ValueError: rejected ***"
    assert "rejected ***" in body["text"]
    assert out.read_text() == "ValueError: rejected ***"
    logs = project.orch("logs", body["run_id"]).stdout  # the daemon has stopped: all stored
    assert "plain stdout ***" in logs and "plain stderr ***" in logs
    assert "ValueError: rejected ***" in logs
    assert_nowhere(json.dumps(hook.requests) + err + logs, API_TOKEN)
    assert_nowhere_in_store(project, API_TOKEN, hook.url)


def test_daemon_runs_redact_output_that_bypasses_sys_stdout(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        import os
        import subprocess
        import sys
        from orchlite import flow, interval, secret


        @flow(schedules=[interval(seconds=1)], secrets=["API_TOKEN"])
        def raw_writes():
            token = secret("API_TOKEN")
            sys.__stdout__.write(f"dunder stdout {token}\\n")
            sys.__stdout__.flush()
            os.write(2, f"fd two {token}\\n".encode())
            subprocess.run(["sh", "-c", 'echo "grandchild $API_TOKEN"'], check=True)
        """,
    )
    daemon = project.popen("daemon", "--tick", "0.2", extra_env={"API_TOKEN": API_TOKEN})
    try:
        wait_for(lambda: any(r["state"] == "COMPLETED" for r in project.runs()), timeout=30)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    done = next(r for r in project.runs() if r["state"] == "COMPLETED")
    logs = project.orch("logs", done["id"]).stdout
    for line in ("dunder stdout ***", "fd two ***", "grandchild ***"):
        assert line in logs, logs
    assert_nowhere(logs + err, API_TOKEN)
    assert_nowhere_in_store(project, API_TOKEN)


# -- the redaction rules -----------------------------------------------------------------------


def test_short_values_are_refused_and_never_redacted(project: Project) -> None:
    redaction.register("SHORT", "abc")
    assert redaction.redact("abc abc") == "abc abc"
    project.write_flow(
        "flows.py",
        """
        from orchlite import flow, secret

        @flow(secrets=["PIN"])
        def short():
            secret("PIN")
        """,
    )
    proc = project.orch("run", "flows.py:short", extra_env={"PIN": "123"}, expect=None)
    assert proc.returncode == 1, describe(proc)
    assert "secret 'PIN' is 3 character(s) long; secrets must have at least 4" in proc.stderr


def test_redacted_data_stays_valid_json_and_escaped_forms_are_caught() -> None:
    redaction.register("NUMERIC", "90210417")
    redaction.register("QUOTED", 'q"uo\\te-ä-31')
    data = {"zip": 90210417, "nested": [{"x": 'q"uo\\te-ä-31'}], "flag": True, "n": 7}
    assert redaction.redact_data(data) == {
        "zip": "***",
        "nested": [{"x": "***"}],
        "flag": True,
        "n": 7,
    }
    assert redaction.redact(repr(KeyError('q"uo\\te-ä-31'))) == "KeyError('***')"
    assert redaction.redact(json.dumps({"v": 'q"uo\\te-ä-31'})) == '{"v": "***"}'
    assert redaction.secret_in(b"prefix 90210417 suffix") == "NUMERIC"
    assert redaction.secret_in(b"nothing here") is None


def test_a_serialization_error_quoting_a_secret_is_stored_redacted(project: Project) -> None:
    project.write_flow(
        "flows.py",
        """
        from orchlite import flow, secret, task


        class Session:
            def __init__(self, token):
                self.token = token

            def __reduce__(self):
                raise TypeError(f"cannot pickle a session holding {self.token}")


        @task
        def connect() -> Session:
            return Session(secret("API_TOKEN"))


        @flow(secrets=["API_TOKEN"])
        def task_result():
            connect()


        @flow(secrets=["API_TOKEN"], persist_result=True)
        def flow_result():
            return Session(secret("API_TOKEN"))
        """,
    )
    printed = ""
    for target in ("flows.py:task_result", "flows.py:flow_result"):
        proc = project.orch("run", target, extra_env={"API_TOKEN": API_TOKEN}, expect=None)
        assert proc.returncode == 1, describe(proc)
        shown = project.orch("show", "last", "--json").stdout
        printed += proc.stdout + proc.stderr + shown
        detail = json.loads(shown)
        failed = detail["tasks"][0] if detail["tasks"] else detail
        assert failed["state"] == "FAILED"
        assert "cannot pickle a session holding ***" in failed["message"]
        assert "cannot pickle a session holding ***" in failed["history"][-1]["message"]
    assert_nowhere(printed, API_TOKEN)
    assert_nowhere_in_store(project, API_TOKEN)


ESCAPED_FLOW = """
import array
import json
from urllib.parse import urlencode

import numpy
from orchlite import flow, get_run_logger, secret, task


@task(persist_result=False)
def log_every_form(quoted: str, umlaut: str, padded: str) -> None:
    logger = get_run_logger()
    logger.info("header %r", f'Bearer "{quoted}"')
    logger.info("body %s", json.dumps({"password": umlaut}))
    logger.info("body as text %r", json.dumps({"password": umlaut}))
    logger.info("query %s", urlencode({"password": umlaut, "token": quoted}))
    logger.info("stripped %s", padded.strip())
    raise ValueError(f"rejected {padded.strip()!r} and {ascii(umlaut)}")


@task
def as_numpy(value: str):
    return numpy.array(["padding", value])


@task
def as_wide_chars(value: str):
    return array.array("u", value)


@task
def as_utf16(value: str) -> bytes:
    return value.encode("utf-16-le")


@task
def as_latin1(value: str) -> bytes:
    return value.encode("latin-1")


@flow(secrets=["QUOTED", "UMLAUT", "PADDED"])
def escaped():
    quoted, umlaut, padded = secret("QUOTED"), secret("UMLAUT"), secret("PADDED")
    futures = [log_every_form.submit(quoted, umlaut, padded)]
    for make in (as_numpy, as_wide_chars, as_utf16, as_latin1):
        futures.append(make.submit(umlaut))
    return futures  # their states decide the flow's
"""

QUOTED = "p4ss'w0rd!"
UMLAUT = "hunter2-p\u00e4ss"
PADDED = "file-token-0042\n"


def test_escaped_encoded_and_stripped_forms_never_reach_the_store(project: Project) -> None:
    project.write_flow("flows.py", ESCAPED_FLOW)
    set_secret(project, "UMLAUT", UMLAUT)
    env = {"QUOTED": QUOTED, "PADDED": PADDED}
    proc = project.orch("run", "flows.py:escaped", extra_env=env, expect=None)
    assert proc.returncode == 1, describe(proc)
    logs = project.orch("logs", "last").stdout
    for line in (
        "header 'Bearer \"***\"'",
        'body {"password": "***"}',
        'body as text \'{"password": "***"}\'',
        "query password=***&token=***",
        "stripped ***",
        "ValueError: rejected '***' and '***'",
    ):
        assert line in logs, logs
    tasks = project.show()["tasks"]
    assert [t["state"] for t in tasks] == ["FAILED"] * 5
    for refused in tasks[1:]:
        assert refused["message"].startswith("the result holds the value of secret 'UMLAUT'")
    stripped = PADDED.strip()
    written = [
        QUOTED.replace("'", "\\'"),
        "hunter2-p\\u00e4ss",
        "hunter2-p\\\\u00e4ss",
        "hunter2-p%C3%A4ss",
        "hunter2-p\\xe4ss",
        "p4ss%27w0rd%21",
    ]
    assert_nowhere(proc.stdout + proc.stderr + logs, QUOTED, UMLAUT, stripped)
    assert_nowhere_in_store(project, QUOTED, UMLAUT, stripped)
    encoded = [UMLAUT.encode(codec) for codec in ("utf-16-le", "utf-32-le", "latin-1")]
    encoded += [text.encode() for text in written]
    for path in (p for p in project.home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for form in encoded:
            assert form not in data, f"{form!r} written to {path}"


def test_a_secret_feed_passes_every_value_before_the_output_that_follows_it() -> None:
    """A child forwards values (one larger than a pipe's buffer) and prints each right after;
    every line read back is redacted once the feed is drained."""
    feed = redaction.SecretFeed()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\n"
            "from orchlite import redaction\n"
            f"redaction.forward_to({feed.write_fd})\n"
            "for i in range(20):\n"
            "    value = f'feed-value-{i}-' + 'x' * (300_000 if i == 7 else 10)\n"
            "    redaction.register(f'V{i}', value)\n"
            "    sys.__stdout__.write(f'line {i} {value}\\n')\n",
        ],
        stdout=subprocess.PIPE,
        pass_fds=(feed.write_fd,),
    )
    feed.start()
    assert child.stdout is not None
    lines = []
    for raw in child.stdout:
        feed.drain()
        lines.append(redaction.redact(raw.decode().rstrip("\n")))
    assert child.wait(timeout=60) == 0
    assert lines == [f"line {i} ***" for i in range(20)]


GREETER = """
from orchlite import flow, secret


@flow(secrets=["API_TOKEN"])
def greet(token: str, name: str = "world") -> str:
    secret("API_TOKEN")
    return f"{name}: {len(token)}"
"""


def test_retry_never_sends_a_parameter_recorded_redacted_as_stars(project: Project) -> None:
    """A parameter stored as `***` (it held a secret) is asked for again, not sent as `***`."""
    project.write_flow("greet.py", GREETER)
    env = {"API_TOKEN": API_TOKEN}
    project.orch("run", "greet.py:greet", "-p", f"token={API_TOKEN}", extra_env=env)
    assert project.show()["parameters"] == {"token": "***", "name": "world"}
    refused = project.orch("retry", "last", "--force", extra_env=env, expect=2)
    assert_usage_error(refused, 2, "parameter 'token'")
    assert "-p token=VALUE" in refused.stderr
    project.orch("retry", "last", "--force", "-p", f"token={API_TOKEN}", extra_env=env)
    retried = project.show()
    assert retried["state"] == "COMPLETED" and retried["result"] == "'world: 20'"
