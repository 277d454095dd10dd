"""The secret values this process knows, and `***` in their place wherever text is recorded.

`orchlite.secret()` adds each value it returns here, and a flow run adds the values of the
secrets its flow declares before its body starts. From then on, for the life of the process,
every piece of text orchlite records or sends passes through `redact()`: log lines, captured
prints, stored parameters, error messages and tracebacks, state messages, alerts. A value is
matched as written, without surrounding whitespace (a value read from a file often ends with a
newline that the code strips), and in the forms its text takes inside other text (`forms()`):
escaped by `repr()` (either quote escaped) and `ascii()`, by JSON (with or without
`ensure_ascii`, upper- or lower-case hex, and JSON inside JSON), and URL-encoded. So a
`KeyError('…')`, a JSON document or a query string does not slip it through.

Values shorter than `MIN_LENGTH` characters are never registered: replacing every "a" or
"true" would mangle the logs, so `orchlite.secret()` refuses such values instead.

A process that stores another's output (the daemon, which stores what each flow run's child
process writes to its stdout and stderr) learns the values that process registers through a
`SecretFeed`: the child forwards each value as it registers it (`forward_to`), before the
value can be printed, and the parent reads what was forwarded before it stores each line. So
output that never passed through the child's `sys.stdout` (`sys.__stdout__`, `os.write(1,
…)`, a subprocess's) is redacted too.

Results are pickled, not text: `check_result()` refuses serialized bytes that hold a known
value in any encoding a pickle keeps text in (UTF-8 for `str`, UTF-32 for numpy string arrays
and `array('u')`, UTF-16 and latin-1 for text the code encoded itself), so a secret never
lands in `.orch/` as a task result either.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

from .errors import SerializationError

MASK = "***"
MIN_LENGTH = 4

_lock = threading.Lock()
_names: dict[str, str] = {}
"""Each registered form of a value → the name of its secret."""
_forms: tuple[str, ...] = ()
"""The keys of `_names`, longest first; replaced as a whole so readers need no lock."""
_values: set[str] = set()
"""The registered values themselves (see `_bases`)."""
_encoded: tuple[tuple[bytes, str], ...] = ()
"""(bytes of a form in one encoding, secret name), for scanning serialized results."""
_forward_fd: int | None = None
"""Where `register` also writes each (name, value) it is given: a `SecretFeed`'s pipe."""


class SecretInResultError(SerializationError):
    """A result about to be stored holds the value of a secret."""


def register(name: str, value: str) -> None:
    """Redact `value` (the value of secret `name`) from now on; short values are ignored."""
    global _forms, _encoded
    bases = _bases(value)
    forms = {form for base in bases for form in text_forms(base)}
    with _lock:
        if all(form in _names for form in forms):
            return
        if _forward_fd is not None:
            _forward(_forward_fd, name, value)
        for form in forms:
            _names.setdefault(form, name)
        _values.update(bases)
        _forms = tuple(sorted(_names, key=len, reverse=True))
        _encoded = tuple(
            (data, _names[form])
            for form in _forms
            for data in _encodings(form, wide=form in _values)
        )


def _bases(value: str) -> set[str]:
    """The value, and the value without surrounding whitespace, when long enough."""
    return {base for base in (value, value.strip()) if len(base) >= MIN_LENGTH}


_HEX_ESCAPE = re.compile(r"(\\u)([0-9a-fA-F]{4})|(%)([0-9a-fA-F]{2})")


def text_forms(value: str) -> set[str]:
    """The forms `value` takes inside other text: as written, and escaped (see the module doc)."""
    forms = {
        value,
        repr(value)[1:-1],
        repr(value + "\"'")[1:-4],  # in a repr that escapes ' (the text also holds a ")
        ascii(value)[1:-1],
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
    }
    for escaped in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
        forms.add(escaped)
        forms.add(json.dumps(escaped)[1:-1])  # a JSON document inside a JSON string
        forms.add(repr(escaped)[1:-1])  # a JSON document in a repr
    for form in list(forms):
        forms.add(_HEX_ESCAPE.sub(_upper_hex, form))
        forms.add(_HEX_ESCAPE.sub(_lower_hex, form))
    return forms


def _upper_hex(match: re.Match[str]) -> str:
    return f"%{match[4].upper()}" if match[3] else f"\\u{match[2].upper()}"


def _lower_hex(match: re.Match[str]) -> str:
    return f"%{match[4].lower()}" if match[3] else f"\\u{match[2].lower()}"


_WIDE_ENCODINGS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


def _encodings(form: str, *, wide: bool) -> set[bytes]:
    """The bytes `form` can be held as in a pickle: UTF-8 and latin-1 always; UTF-16 and
    UTF-32 (numpy string arrays, `array('u')`) for the value itself (`wide`)."""
    encoded = {form.encode("utf-8", "surrogatepass")}
    with contextlib.suppress(UnicodeEncodeError):
        encoded.add(form.encode("latin-1"))
    if wide:
        encoded.update(form.encode(codec, "surrogatepass") for codec in _WIDE_ENCODINGS)
    return encoded


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


def holds_mask(value: Any) -> bool:
    """Whether recorded JSON-like data shows a redacted value (`***`) anywhere in it."""
    return MASK in json.dumps(value, default=str)


def secret_in(data: bytes) -> str | None:
    """The name of a secret whose value appears in `data` (in any form and encoding), or None."""
    for form, name in _encoded:
        if form in data:
            return name
    return None


def secrets_known() -> bool:
    """Whether any secret value is registered (only then is there anything to mask)."""
    return bool(_forms)


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
        sys.stdout = RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, RedactingStream):
        sys.stderr = RedactingStream(sys.stderr)


# -- passing values to the process that stores this one's output ------------------------------


def forward_to(fd: int) -> None:
    """Write every value registered in this process, from now on and so far, to pipe `fd`.

    The value is written before `register` returns, so before anything can print it.
    """
    global _forward_fd
    os.set_inheritable(fd, False)  # user code's subprocesses get no copy
    with _lock:
        _forward_fd = fd
        for value in _values:
            _forward(fd, _names[value], value)


def _forward(fd: int, name: str, value: str) -> None:
    data = (json.dumps([name, value]) + "\n").encode("utf-8", "surrogatepass")
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass  # the reading process is gone: nothing of ours is stored any more


class SecretFeed:
    """The reading end of `forward_to`: registers here the values another process forwards.

    Call `drain()` before storing each piece of that process's output: every value it
    registered before writing that piece is then registered here. A background thread also
    drains, so a writer never blocks on a full pipe.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self._lock = threading.Lock()
        self._partial = b""
        self._closed = False

    def start(self) -> None:
        """Close this process's copy of the writing end (the child has its own), and drain
        in the background until the child and its forks close theirs."""
        os.close(self.write_fd)
        threading.Thread(
            target=self._drain_until_closed, name="orch-secret-feed", daemon=True
        ).start()

    def drain(self) -> None:
        """Register every value forwarded so far."""
        with self._lock:
            while not self._closed:
                try:
                    chunk = os.read(self.read_fd, 65536)
                except BlockingIOError:
                    return
                if not chunk:
                    self._closed = True  # the background thread closes the fd
                    return
                lines = (self._partial + chunk).split(b"\n")
                self._partial = lines.pop()
                for line in lines:
                    _register_forwarded(line)

    def close(self) -> None:
        """Close both ends, for a child that never started."""
        os.close(self.read_fd)
        os.close(self.write_fd)

    def _drain_until_closed(self) -> None:
        import select

        poller = select.poll()  # not select(): the daemon may hold fds past FD_SETSIZE
        poller.register(self.read_fd, select.POLLIN)
        while not self._closed:
            poller.poll()  # an end-of-file stays readable (POLLHUP)
            self.drain()
        os.close(self.read_fd)


def _register_forwarded(line: bytes) -> None:
    try:
        name, value = json.loads(line)
    except ValueError:
        return  # not one of ours: a forked process's partly interleaved write
    if isinstance(name, str) and isinstance(value, str):
        register(name, value)
