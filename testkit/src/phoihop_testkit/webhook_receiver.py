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
    received_at: float = 0.0  # time.time() when the request was read

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Threaded HTTP server; `respond` decides each status code (default 200)."""

    respond: Callable[[str, bytes], int] = lambda _path, _body: 200
    deliveries: list[Delivery] = field(default_factory=list)
    on_delivery: Callable[[Delivery], None] | None = None  # called for every request
    keep: bool = True  # False: don't keep deliveries in memory (long benchmarks)
    keep_alive: bool = False  # HTTP/1.1 persistent connections
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WebhookReceiver:
        """Listen on a free loopback port."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = time.time()
                status = receiver.respond(self.path, body)
                delivery = Delivery(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, status, at
                )
                with receiver._lock:
                    if receiver.keep:
                        receiver.deliveries.append(delivery)
                    if receiver.on_delivery is not None:
                        receiver.on_delivery(delivery)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # bursts of webhook connections
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def url(self, path: str = "/hook") -> str:
        """URL of a path on this receiver."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def wait_for(self, predicate: Callable[[Delivery], bool], *, timeout: float = 60.0) -> Delivery:
        """The first delivery matching `predicate`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for d in self.deliveries:
                    if predicate(d):
                        return d
            time.sleep(0.1)
        raise TimeoutError(f"no matching webhook within {timeout}s; got {len(self.deliveries)}")

    def snapshot(self) -> list[Delivery]:
        """A copy of the deliveries so far."""
        with self._lock:
            return list(self.deliveries)

    def stop(self) -> None:
        """Shut the server down."""
        if self._server:
            self._server.shutdown()
            self._server.server_close()
