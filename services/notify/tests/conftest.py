"""Fixtures of the notify tests: config with receivers, the service in-process, receivers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from asgi_lifespan import LifespanManager

from phoihop_notify.app import create_app
from phoihop_notify.channels import Channel
from phoihop_notify.runtime import Runtime
from phoihop_notify.settings import NotifySettings
from phoihop_notify.testing import WebhookReceiver, poll
from phoihop_testkit.plugin import TEST_PII_KEY


@dataclass
class Notify:
    """The service running in the test's event loop, and an HTTP client for its API."""

    runtime: Runtime
    client: httpx.AsyncClient

    def as_agency(self, agency: str) -> dict[str, str]:
        """Headers of a development API key."""
        return {"X-API-Key": f"dev-{agency}"}


@pytest.fixture
def write_subscriptions(config_dir: Path) -> Callable[..., Path]:
    """Write `subscriptions.yaml` in the test's config copy."""

    def write(
        subscriptions: list[dict[str, Any]], contacts: dict[str, list[str]] | None = None
    ) -> Path:
        path = config_dir / "subscriptions.yaml"
        doc = {"subscriptions": subscriptions, "contacts": contacts or {}}
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        return path

    return write


@pytest.fixture
def settings_for(
    kafka_bootstrap: str, database_url: str, config_dir: Path
) -> Callable[..., NotifySettings]:
    """Settings of a test: compressed schedule, loopback allowlisted, a fresh group."""
    group = f"notify-test-{uuid.uuid4().hex[:8]}"

    def build(**overrides: Any) -> NotifySettings:
        values: dict[str, Any] = {
            "kafka_bootstrap": kafka_bootstrap,
            "database_url": database_url,
            "config_dir": config_dir,
            "consumer_group": group,
            "allowed_networks": ("127.0.0.0/8",),
            "retry_schedule": (0.0, 0.3, 0.3, 0.3),
            "dispatch_interval": 0.1,
            "order_hold": 2.0,
            "request_timeout": 5.0,
            "pii_key": TEST_PII_KEY,
        }
        values.update(overrides)
        return NotifySettings(**values)

    return build


@pytest.fixture
def run_notify() -> Callable[..., AbstractAsyncContextManager[Notify]]:
    """Start notify in-process (full lifespan) and wait until its consumer is assigned."""

    @asynccontextmanager
    async def run(
        settings: NotifySettings, *, channels: dict[str, Channel] | None = None
    ) -> AsyncIterator[Notify]:
        app = create_app(settings, channels=channels)
        async with LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://notify") as client:
                runtime: Runtime = app.state.runtime
                await poll(lambda: runtime.consumer.assigned, within=60)
                yield Notify(runtime=runtime, client=client)

    return run


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Any]]:
    """Factory of started webhook receivers, all stopped after the test."""
    started: list[WebhookReceiver] = []

    async def make(script: list[tuple[int, dict[str, str]]] | None = None) -> WebhookReceiver:
        receiver = await WebhookReceiver(script=list(script or [])).start()
        started.append(receiver)
        return receiver

    yield make
    for receiver in started:
        await receiver.stop()
