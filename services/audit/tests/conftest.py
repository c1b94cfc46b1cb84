"""Fixtures of the audit tests: settings on the test database, event builders, an API client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import BaseModel

from phoihop_audit import trail
from phoihop_audit.app import Runtime, build_runtime, create_app
from phoihop_audit.settings import AuditSettings
from phoihop_common.pii import seal_reporter
from phoihop_schemas import codec
from phoihop_schemas.events import (
    Answered,
    Assigned,
    Decision,
    Escalated,
    LifecycleEvent,
    Merged,
    NotificationOutcome,
    Received,
    Reporter,
)
from phoihop_testkit.plugin import TEST_PII_KEY, fixed_pii_cipher

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
RULE = Decision(rule="test-rule", version="1")


class Events:
    """Builders of realistic canonical events (schema models), encoded and decoded."""

    @staticmethod
    def received(
        rec: str,
        *,
        at: datetime = T0,
        kind: str = "kien_nghi",
        text: str = "Cử tri đề nghị sửa chữa đường liên thôn",
        locality: str = "xa-an-binh",
        submitted_by: str = "UBMTTQ_TINH",
        reporter: Reporter | None = None,
    ) -> Received:
        """A `received` event, its reporter encrypted as ingest does (with TEST_PII_KEY)."""
        return Received(
            recommendation_id=rec,
            sequence=1,
            occurred_at=at,
            kind=kind,
            channel="tiep_xuc_cu_tri",
            locality=locality,
            text=text,
            submitted_by=submitted_by,
            reporter=seal_reporter(reporter, recommendation_id=rec, cipher=fixed_pii_cipher())
            if reporter is not None
            else None,
        )

    @staticmethod
    def assigned(
        rec: str,
        *,
        seq: int = 2,
        agency: str = "SO_XAY_DUNG",
        category: str = "GIAO_THONG",
        kind: str = "kien_nghi",
        locality: str = "xa-an-binh",
        at: datetime = T0 + timedelta(hours=1),
        deadline: datetime | None = None,
    ) -> Assigned:
        return Assigned(
            recommendation_id=rec,
            sequence=seq,
            occurred_at=at,
            agency=agency,
            category=category,
            level="tinh",
            kind=kind,
            locality=locality,
            deadline=deadline or at + timedelta(days=30),
            decision=RULE,
        )

    @staticmethod
    def answered(
        rec: str,
        *,
        seq: int = 3,
        agency: str = "SO_XAY_DUNG",
        at: datetime = T0 + timedelta(days=5),
        on_time: bool = True,
    ) -> Answered:
        return Answered(
            recommendation_id=rec,
            sequence=seq,
            occurred_at=at,
            agency=agency,
            text="Sở đã bố trí kinh phí sửa chữa trong quý III",
            on_time=on_time,
        )

    @staticmethod
    def merged(rec: str, *, into: str, seq: int = 2, submitted_by: str = "DOAN_DBQH") -> Merged:
        return Merged(
            recommendation_id=rec,
            sequence=seq,
            occurred_at=T0 + timedelta(hours=1),
            duplicate_of=into,
            similarity=0.93,
            decision=RULE,
            submitted_by=submitted_by,
        )

    @staticmethod
    def escalated(rec: str, *, seq: int, level: int = 1) -> Escalated:
        return Escalated(
            recommendation_id=rec,
            sequence=seq,
            occurred_at=T0 + timedelta(days=31),
            agency="SO_XAY_DUNG",
            level=level,
            deadline=T0 + timedelta(days=30),
            recipients=("TT_HDND", "UBMTTQ_TINH"),
        )

    @staticmethod
    def outcome(rec: str, *, of: LifecycleEvent) -> NotificationOutcome:
        return NotificationOutcome(
            recommendation_id=rec,
            event_id=codec.lifecycle_event_id(rec, of.sequence),
            event_type=type(of).event_name,
            subscription_id="sub-1",
            agency="SO_XAY_DUNG",
            channel="webhook",
            attempt=1,
            outcome="delivered",
            status_code=204,
            latency_ms=12.5,
            attempted_at=of.occurred_at + timedelta(seconds=2),
        )

    @staticmethod
    def envelope(model: BaseModel, *, source: str = "/phoihop/test") -> codec.Envelope:
        record = codec.encode(model, source=source)
        return codec.decode(value=record.value, headers=record.headers, key=record.key)


@pytest.fixture
def ev() -> type[Events]:
    """Event builders."""
    return Events


@pytest.fixture
def new_id() -> Callable[[], str]:
    """Fresh recommendation ids."""
    return lambda: str(uuid.uuid4())


@pytest.fixture
def settings(database_url: str, tmp_path: Path, config_dir: Path) -> AuditSettings:
    """Audit settings on the test database with keys in a private data dir."""
    return AuditSettings(
        database_url=database_url,
        data_dir=tmp_path / "audit-data",
        config_dir=config_dir,
        checkpoint_interval=3600,
        pii_key=TEST_PII_KEY,
    )


@pytest.fixture
def rt(settings: AuditSettings) -> Runtime:
    """A runtime (migrated database, keys, reference data) without HTTP."""
    runtime = build_runtime(settings)
    yield runtime
    runtime.engine.dispose()


@pytest.fixture
def store(rt: Runtime) -> Callable[[Iterable[BaseModel]], trail.AppendResult]:
    """Store events as the consumer does (encode → decode → append)."""

    def _store(models: Iterable[BaseModel]) -> trail.AppendResult:
        batch = [trail.prepare(Events.envelope(m), cipher=rt.cipher) for m in models]
        return trail.append(rt.engine, batch, cipher=rt.cipher)

    return _store


@pytest.fixture
async def client(settings: AuditSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The audit API over ASGI (no Kafka consumer), sharing the test database."""
    app = create_app(settings, consume=False)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://audit"
        ) as http,
    ):
        yield http


def key(agency: str) -> dict[str, Any]:
    """Headers of a development API key."""
    return {"X-API-Key": f"dev-{agency}"}


@pytest.fixture
def as_agency() -> Callable[[str], dict[str, Any]]:
    """Headers for an agency's development key."""
    return key
