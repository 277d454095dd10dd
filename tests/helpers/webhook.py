"""A webhook receiver on 127.0.0.1 for the alert tests (the `hook` fixture in conftest)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "T0KEN-s3cret-4f9a"
"""A made-up token in every hook URL, so tests can check it never lands in the store or logs."""


class Hook:
    """A webhook receiver on 127.0.0.1: records each POST, answers with `status`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.delay = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                hook.requests.append(
                    {
                        "path": self.path,
                        "type": self.headers.get("Content-Type"),
                        "auth": self.headers.get("Authorization"),
                        "body": json.loads(raw),
                    }
                )
                if hook.delay:
                    time.sleep(hook.delay)
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{TOKEN}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
