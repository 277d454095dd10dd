"""A child process's stdout and stderr, line by line, as log records of its run.

Stdout lines are stored at INFO (logger "orchlite.stdout"), stderr lines at WARNING
("orchlite.stderr"), each redacted of the secret values known here (and, given a
`SecretFeed`, of those the child forwards), so `orch logs RUN` shows what the child wrote.
A reader may also echo each line, as written, to a file descriptor of this process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from .errors import OrchError
from .redaction import SecretFeed, redact

STDOUT_LOGGER = "orchlite.stdout"
STDERR_LOGGER = "orchlite.stderr"
CAPTURE_ENV = "ORCH_CAPTURE_OUTPUT"
"""Set in a child whose parent stores its output: the child stores none of it itself."""


def start_readers(
    child: subprocess.Popen[bytes],
    home: Path,
    run_id: str,
    feed: SecretFeed | None = None,
    *,
    echo: bool = False,
) -> list[threading.Thread]:
    """One thread per pipe of `child`, storing its lines until end-of-file; with `echo`,
    each line also goes, unchanged, to this process's file descriptor 1 or 2."""
    streams = [
        (child.stdout, logging.INFO, STDOUT_LOGGER, 1),
        (child.stderr, logging.WARNING, STDERR_LOGGER, 2),
    ]
    readers = []
    for stream, level, logger, fd in streams:
        reader = threading.Thread(
            target=_copy_lines,
            args=(stream, home, run_id, level, logger, feed, fd if echo else None),
            name=f"output-{run_id[:12]}",
            daemon=True,
        )
        reader.start()
        readers.append(reader)
    return readers


def _copy_lines(
    stream: Any,
    home: Path,
    run_id: str,
    level: int,
    logger: str,
    feed: SecretFeed | None,
    echo_fd: int | None,
) -> None:
    """Write each line of a child's output, redacted, as a log record of its run, until EOF."""
    from .store import Store

    store: Store | None = None
    with contextlib.closing(stream):
        for raw in iter(stream.readline, b""):
            if echo_fd is not None:
                with contextlib.suppress(OSError):
                    os.write(echo_fd, raw)
            if feed is not None:
                feed.drain()  # every value the child knew before it wrote this line
            line = redact(raw.decode("utf-8", "replace").rstrip("\r\n"))
            try:
                store = store or Store(home)
                store.write_logs([(run_id, None, None, time.time(), level, logger, line)])
            except OrchError:
                continue  # the store is unusable: keep draining so the child never blocks
    if store is not None:
        store.close()
