"""Helpers of ingest's tests (imported by the test modules; conftest puts this dir on the path)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiokafka import ConsumerRecord
from asgi_lifespan import LifespanManager

from phoihop_ingest.app import create_app
from phoihop_ingest.settings import IngestSettings

Records = list[ConsumerRecord[bytes, bytes]]
ReadTopic = Callable[..., Awaitable[Records]]


def key(agency: str) -> dict[str, str]:
    """The development API key header of an agency."""
    return {"X-API-Key": f"dev-{agency}"}


@asynccontextmanager
async def running_ingest(settings: IngestSettings, *, ready: bool = True) -> AsyncIterator[Any]:
    """The ingest app with its lifespan running, and an httpx client bound to it."""
    app = create_app(settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://ingest", timeout=60
        ) as client,
    ):
        if ready:
            deadline = time.monotonic() + 30
            while (await client.get("/readyz")).status_code != 200:
                assert time.monotonic() < deadline, (await client.get("/readyz")).json()
                await asyncio.sleep(0.1)
        yield client
