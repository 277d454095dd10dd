"""The secret values this process knows, and `***` in their place wherever text is recorded.

`orchlite.secret()` adds each value it returns here, and a flow run adds the values of the
secrets its flow declares before its body starts. From then on, for the life of the process,
every piece of text orchlite records or sends passes through `redact()`: log lines, captured
prints, stored parameters, error messages and tracebacks, state messages, alerts. A value is
matched as written and in the escaped forms Python's `repr()` and JSON give it (so a
`KeyError('…')` or a JSON document does not slip it through).

Values shorter than `MIN_LENGTH` characters are never registered: replacing every "a" or
"true" would mangle the logs, so `orchlite.secret()` refuses such values instead.

Results are pickled, not text: `check_result()` refuses serialized bytes that hold a known
value verbatim, so a secret never lands in `.orch/` as a task result either.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from .errors import SerializationError

MASK = "***"
MIN_LENGTH = 4

_lock = threading.Lock()
_names: dict[str, str] = {}
"""Each registered form of a value → the name of its secret."""
_forms: tuple[str, ...] = ()
"""The keys of `_names`, longest first; replaced as a whole so readers need no lock."""
_encoded: tuple[tuple[bytes, str], ...] = ()
"""(UTF-8 bytes of a form, secret name), for scanning serialized results."""


class SecretInResultError(SerializationError):
    """A result about to be stored holds the value of a secret."""


def register(name: str, value: str) -> None:
    """Redact `value` (the value of secret `name`) from now on; short values are ignored."""
    global _forms, _encoded
    if len(value) < MIN_LENGTH:
        return
    forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    with _lock:
        if all(form in _names for form in forms):
            return
        for form in forms:
            _names.setdefault(form, name)
        _forms = tuple(sorted(_names, key=len, reverse=True))
        _encoded = tuple((form.encode("utf-8", "surrogatepass"), _names[form]) for form in _forms)


def active() -> bool:
    """Whether any value is registered (callers skip work on the common path when not)."""
    return bool(_forms)


def redact(text: str) -> str:
    """`text` with every known secret value replaced by `***`."""
    forms = _forms
    if not forms or not text:
        return text
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact(text)


def redact_cut(text: str) -> str:
    """`redact()` for a text cut short at its end (a preview): a secret's value whose end was
    cut off is masked too, from wherever it starts in the remaining tail."""
    text = redact(text)
    forms = _forms
    longest = 0
    for form in forms:
        for size in range(min(len(form) - 1, len(text)), longest, -1):
            if text.endswith(form[:size]):
                longest = size
                break
    return text[: len(text) - longest] + MASK if longest else text


def redact_data(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, scalars) with secret values replaced.

    Works on the structure rather than on JSON text, so the result is still valid JSON even
    when a secret looks like a number: a number whose digits hold a secret becomes `"***"`.
    """
    if not _forms:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(k)): redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
        return value if redact(text) == text else MASK
    return value


def secret_in(data: bytes) -> str | None:
    """The name of a secret whose value appears verbatim in `data`, or None."""
    for form, name in _encoded:
        if form in data:
            return name
    return None


def check_result(data: bytes) -> None:
    """Refuse serialized result bytes that hold a secret's value (SecretInResultError)."""
    if not _encoded:
        return
    name = secret_in(data)
    if name is not None:
        raise SecretInResultError(
            f"the result holds the value of secret {name!r}, and secret values are never "
            "written to .orch/: return something else, or set persist_result=False"
        )


class RedactingStream:
    """A text stream that writes through `redact()`; everything else is the wrapped one's.

    Installed on `sys.stdout` and `sys.stderr` of the child process that runs a flow for
    `orch run --subprocess` and the daemon, whose output is stored as run logs: a plain
    `print()` of a secret, or a traceback quoting one, reaches the store as `***`. A value
    is matched within one `write()` call (one `print()` argument list, one traceback line).
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redact_std_streams() -> None:
    """Route this process's `sys.stdout` and `sys.stderr` through `redact()`."""
    import sys

    if not isinstance(sys.stdout, RedactingStream):
        sys.stdout = RedactingStream(sys.stdout)  # type: ignore[assignment]
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)  # type: ignore[assignment]
