"""A real HTTP webhook receiver on loopback, recording every request (for tests and bench)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Threaded HTTP server; `respond` decides each status code (default 200)."""

    respond: Callable[[str, bytes], int] = lambda _path, _body: 200
    deliveries: list[Delivery] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WebhookReceiver:
        """Listen on a free loopback port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.respond(self.path, body)
                with receiver._lock:
                    receiver.deliveries.append(
                        Delivery(self.path, {k.lower(): v for k, v in self.headers.items()},
                                 body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str = "/hook") -> str:
        """URL of a path on this receiver."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def wait_for(
        self, predicate: Callable[[Delivery], bool], *, timeout: float = 60.0
    ) -> Delivery:
        """The first delivery matching `predicate`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for d in self.deliveries:
                    if predicate(d):
                        return d
            time.sleep(0.1)
        raise TimeoutError(f"no matching webhook within {timeout}s; got {len(self.deliveries)}")

    def stop(self) -> None:
        """Shut the server down."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
