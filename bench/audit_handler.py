"""Audit's cost per event, without Kafka: encoded events through `AuditConsumer.handle`.

    python -m bench.audit_handler [--events 2000] [--batch 1,10,100] [--url URL] [--profile]

Feeds `--events` canonical events (received with an encrypted reporter, assigned, a
notification outcome, answered; recommendations interleaved as on the live bus) through
the handler in batches of each `--batch` size, on a fresh SQLite file (default) or on the
PostgreSQL database of `--url` (its name must contain `bench`: its audit tables are
emptied). Prints events/s and CPU ms per event (`time.process_time`, the database work in
the handler's thread included), the CPU of a redelivery (all duplicates), and checks that
the full chain verifies. `--profile` prints cProfile's top frames (database work inline).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import BaseModel
from sqlalchemy import make_url, text

from phoihop_audit.consumer import AuditConsumer
from phoihop_audit.log import verify_log
from phoihop_audit.runtime import build_runtime
from phoihop_audit.settings import AuditSettings
from phoihop_common.logs import configure_logging
from phoihop_common.pii import seal_reporter
from phoihop_schemas import codec
from phoihop_schemas.events import (
    Answered,
    Assigned,
    Decision,
    NotificationOutcome,
    Received,
    Reporter,
)
from phoihop_schemas.topics import CANONICAL
from phoihop_testkit.plugin import TEST_PII_KEY, fixed_pii_cipher

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
RULE = Decision(rule="bench", version="1")
TABLES = ("audit_events", "audit_recommendations", "audit_involvement", "audit_checkpoints")


def case_events(rec: str, i: int) -> list[BaseModel]:
    """One case's events: received (reporter sealed), assigned, a webhook outcome, answered."""
    reporter = seal_reporter(
        Reporter(name=f"Nguyễn Văn {i}"), recommendation_id=rec, cipher=fixed_pii_cipher()
    )
    at = T0 + timedelta(hours=1)
    return [
        Received(
            recommendation_id=rec,
            sequence=1,
            occurred_at=T0,
            kind="kien_nghi",
            channel="tiep_xuc_cu_tri",
            locality="xa-an-binh",
            text=f"Cử tri đề nghị sửa chữa đường liên thôn số {i}",
            submitted_by="UBMTTQ_TINH",
            reporter=reporter,
        ),
        Assigned(
            recommendation_id=rec,
            sequence=2,
            occurred_at=at,
            agency="SO_XAY_DUNG",
            category="GIAO_THONG",
            level="tinh",
            kind="kien_nghi",
            locality="xa-an-binh",
            deadline=T0 + timedelta(days=30),
            decision=RULE,
        ),
        NotificationOutcome(
            recommendation_id=rec,
            event_id=codec.lifecycle_event_id(rec, 2),
            event_type="assigned",
            subscription_id="sub-1",
            agency="SO_XAY_DUNG",
            channel="webhook",
            attempt=1,
            outcome="delivered",
            status_code=204,
            latency_ms=12.5,
            attempted_at=at + timedelta(seconds=2),
        ),
        Answered(
            recommendation_id=rec,
            sequence=3,
            occurred_at=T0 + timedelta(days=5),
            agency="SO_XAY_DUNG",
            text="Sở đã bố trí kinh phí",
            on_time=True,
        ),
    ]


def _raw(model: BaseModel, offset: int) -> ConsumerRecord[bytes, bytes]:
    rec = codec.encode(model, source="/phoihop/bench")
    topic = CANONICAL[type(model).event_name].name  # type: ignore[attr-defined]
    return ConsumerRecord(
        topic, 0, offset, 0, 0, rec.key, rec.value, None, 0, len(rec.value), tuple(rec.headers)
    )


def stream(n: int) -> list[ConsumerRecord[bytes, bytes]]:
    """`n` records; case i's k-th event comes about 3k cases after its first, as live."""
    cases = [case_events(str(uuid.uuid4()), i) for i in range((n + 3) // 4)]
    order = sorted((i + 3 * k, k, i) for i in range(len(cases)) for k in range(4))
    return [_raw(cases[i][k], off) for off, (_, k, i) in enumerate(order)][:n]


async def _inline(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


async def measure(*, url: str, events: int, batch: int, profile: bool = False) -> dict[str, Any]:
    """One measurement: events/s, CPU ms per event, of a redelivery, the chain checked."""
    tmp = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    settings = AuditSettings(
        database_url=url, data_dir=tmp / "data", checkpoint_interval=3600, pii_key=TEST_PII_KEY
    )
    rt = build_runtime(settings)
    if rt.engine.dialect.name != "sqlite":
        with rt.engine.begin() as conn:
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
            conn.execute(text("UPDATE audit_log_head SET size=0, head_hash=:h"), {"h": "0" * 64})
    consumer = AuditConsumer(
        settings=settings, engine=rt.engine, cipher=rt.cipher, metrics=rt.metrics
    )
    warm, records = stream(40), stream(events)
    for i in range(0, len(warm), batch):
        await consumer.handle(warm[i : i + batch])
    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    for i in range(0, events, batch):
        rejects = await consumer.handle(records[i : i + batch])
        if rejects:
            raise RuntimeError(f"rejected: {rejects[0].reason} {rejects[0].detail}")
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    again = min(events, 500)
    redelivery = time.process_time()
    for i in range(0, again, batch):
        await consumer.handle(records[i : i + batch])
    redelivery = time.process_time() - redelivery
    verified = verify_log(rt.engine, signer=rt.signer)
    if not verified["ok"] or verified["checked"] != events + 40:
        raise RuntimeError(f"chain does not verify: {verified}")
    rt.engine.dispose()
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return {
        "dialect": rt.engine.dialect.name,
        "batch": batch,
        "events_per_s": round(events / wall),
        "cpu_ms_per_event": round(cpu * 1000 / events, 4),
        "redelivery_cpu_ms_per_event": round(redelivery * 1000 / again, 4),
        "verified": verified["checked"],
    }


async def run(*, url: str, events: int, batch: int, profile: bool) -> str:
    """One measurement; returns its line."""
    m = await measure(url=url, events=events, batch=batch, profile=profile)
    return (
        f"{m['dialect']:10s} batch {batch:4d}: {m['events_per_s']:7.0f} events/s, "
        f"{m['cpu_ms_per_event']:6.3f} ms CPU/event; redelivery "
        f"{m['redelivery_cpu_ms_per_event']:6.3f} ms CPU/event; chain verified ({m['verified']})"
    )


def main(argv: list[str] | None = None) -> int:
    """Run every batch size and print one line each."""
    parser = argparse.ArgumentParser(prog="python -m bench.audit_handler", description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", default="1,10,100", help="batch sizes, comma separated")
    parser.add_argument("--url", default=None, help="PostgreSQL URL of a *bench* database")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    configure_logging(service="audit-bench", level="WARNING")
    if args.url and "bench" not in (make_url(args.url).database or ""):
        parser.error("--url: the database name must contain 'bench' (its audit tables are emptied)")
    if args.profile:
        asyncio.to_thread = _inline  # type: ignore[assignment]  # profile the database work too
    for size in (int(b) for b in args.batch.split(",")):
        url = args.url or f"sqlite:///{tempfile.mkdtemp(prefix='audit-bench-')}/audit.db"
        print(asyncio.run(run(url=url, events=args.events, batch=size, profile=args.profile)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
