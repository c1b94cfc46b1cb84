"""A TCP proxy on a loopback port the test controls: cut every connection, refuse, restore.

Every wait is bounded, `stop()` included: it aborts the sockets, cancels the connection
tasks, stops the loop and joins its thread, so a test's teardown cannot hang on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

CALL_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `cut()` drops and refuses connections."""

    target_host: str
    target_port: int
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.base_events.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _cut: bool = False
    connections: int = 0

    def start(self) -> TcpProxy:
        """Listen on a free loopback port (own thread and event loop)."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=CALL_TIMEOUT)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            # cancelled by `stop()`: end quietly (asyncio logs a handler task that ends cancelled)
            with contextlib.suppress(asyncio.CancelledError):
                await self._forward(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(self.target_host, self.target_port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                return_exceptions=True,
            )  # fmt: skip
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    def _call(self, fn: Callable[[], None]) -> None:
        assert self._loop is not None

        async def run() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=CALL_TIMEOUT)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""

        def do() -> None:
            self._cut = True
            for w in list(self._writers):
                w.transport.abort()

        self._call(do)

    def restore(self) -> None:
        """Accept and forward connections again."""

        def do() -> None:
            self._cut = False

        self._call(do)

    def stop(self) -> None:
        """Abort every connection, close the listener, stop the loop and join its thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def close() -> None:
            self._cut = True
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=CALL_TIMEOUT / 2)

        with contextlib.suppress(TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(close(), loop).result(timeout=CALL_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=CALL_TIMEOUT)
            if not self._thread.is_alive():
                loop.close()
