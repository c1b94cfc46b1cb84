"""Test support: a real local webhook receiver, an event publisher, polling helpers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import uvicorn
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from phoihop_common.kafka import KafkaSettings, producer_kwargs
from phoihop_common.net import free_port
from phoihop_schemas.codec import encode
from phoihop_schemas.events import LifecycleEvent
from phoihop_schemas.topics import CANONICAL

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and what it answered."""

    headers: dict[str, str]
    body: bytes
    status: int
    at: float  # time.monotonic() on arrival


@dataclass
class WebhookReceiver:
    """An HTTP server on a free loopback port answering from a script (then 200)."""

    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    port: int = 0
    gate: asyncio.Event | None = None  # when given, requests are answered only once it is set
    arrived: list[bytes] = field(default_factory=list)  # bodies, in order of arrival
    in_flight: int = 0
    max_in_flight: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Webhook URL."""
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        self.arrived.append(body)
        if self.gate is not None:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await self.gate.wait()
            finally:
                self.in_flight -= 1
        status, headers = self.script.pop(0) if self.script else (200, {})
        self.requests.append(Received(dict(request.headers), body, status, time.monotonic()))
        return Response(status_code=status, headers=headers)

    async def start(self) -> WebhookReceiver:
        """Serve in the running event loop."""
        self.port = self.port or free_port()
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await poll(lambda: self._server is not None and self._server.started, within=10)
        return self

    async def stop(self) -> None:
        """Shut the server down."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    def ok(self) -> list[Received]:
        """Requests answered with 2xx."""
        return [r for r in self.requests if 200 <= r.status < 300]


async def publish(bootstrap: str, *events: LifecycleEvent, source: str = "/phoihop/test") -> None:
    """Write lifecycle events to their canonical topics (acks=all)."""
    producer = AIOKafkaProducer(**producer_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)))
    await producer.start()
    try:
        for event in events:
            record = encode(event, source=source)
            await producer.send_and_wait(
                CANONICAL[event.event_name].name,
                value=record.value,
                key=record.key,
                headers=record.headers,
            )
    finally:
        await producer.stop()


async def poll(
    check: Callable[[], Any | Awaitable[Any]], *, within: float = 30.0, interval: float = 0.1
) -> Any:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)
