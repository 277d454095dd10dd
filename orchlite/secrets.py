"""`orchlite.secret(NAME)`: a secret's value, and the rule on who may read it.

Lookup order: the environment variable NAME (an empty one counts as unset), then the user's
secrets file (`orch secret set NAME`, see `secret_store`). Every value returned is registered
for redaction (`redaction`), so it shows up as `***` wherever orchlite records or sends text.

Inside a flow run (its body, its tasks, in any task runner's threads or worker processes) a
flow may read only the secrets it declares with `@flow(secrets=["NAME", ...])`; reading
another one raises SecretNotDeclaredError naming both. A subflow declares its own. Outside
any flow run (a plain script, a task called on its own, a thread you start yourself) every
secret may be read: there is no flow whose declaration could be checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from . import redaction
from .context import flow_run_var
from .secret_store import SecretError, check_name, read_secrets

ENVIRONMENT = "environment"
FILE = "secrets file"


class SecretNotFoundError(SecretError):
    """The secret is neither in the environment nor in the secrets file."""


class SecretNotDeclaredError(SecretError):
    """A flow read a secret it does not declare in `@flow(secrets=[...])`."""


def secret(name: str) -> str:
    """The value of secret `name`, from the environment or the user's secrets file.

    From now on the value is replaced by `***` in everything orchlite records or sends.
    """
    check_name(name)
    _check_declared(name)
    value, _ = lookup(name)
    if value is None:
        raise SecretNotFoundError(
            f"secret {name!r} is not set: export {name}=... or run `orch secret set {name}`"
        )
    check_length(name, value)
    redaction.register(name, value)
    return value


def lookup(name: str) -> tuple[str | None, str | None]:
    """(value, where it came from: ENVIRONMENT or FILE), or (None, None); no checks."""
    value = os.environ.get(name)
    if value:
        return value, ENVIRONMENT
    value = read_secrets().get(name)
    if value:
        return value, FILE
    return None, None


def check_length(name: str, value: str) -> None:
    """Refuse a value too short to redact without mangling every log line."""
    if len(value) < redaction.MIN_LENGTH:
        raise SecretError(
            f"secret {name!r} is {len(value)} character(s) long; secrets must have at least "
            f"{redaction.MIN_LENGTH} so that they can be redacted without mangling logs"
        )


def register_declared(names: Iterable[str]) -> None:
    """Redact the values of these secrets from now on, whether or not the flow reads them.

    Called as a flow run starts, before its parameters are recorded. A declared secret that
    is not set, or too short, is skipped here: reading it raises.
    """
    from_file: dict[str, str] | None = None
    for name in names:
        value = os.environ.get(name)
        if not value:
            if from_file is None:
                from_file = read_secrets()
            value = from_file.get(name)
        if value and len(value) >= redaction.MIN_LENGTH:
            redaction.register(name, value)


def _check_declared(name: str) -> None:
    ctx = flow_run_var.get()
    declared = getattr(ctx, "declared_secrets", None)
    if ctx is None or declared is None or name in declared:
        return
    flow_name = ctx.flow_name
    raise SecretNotDeclaredError(
        f"flow {flow_name!r} reads secret {name!r} but does not declare it: "
        f"add it to @flow(secrets=[...])"
    )
