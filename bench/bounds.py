"""How far the per-record goals can go: the work each service cannot skip, timed alone.

Three figures, each this process's CPU (`time.process_time`), without Kafka:

- routing: its stage logic per consumed record (`bench.routing_stages`: decode, classify,
  duplicate search, lifecycle, encode), on distinct generated texts;
- audit: its handler per event at its batch bound (`bench.audit_handler`, a SQLite file:
  validation, the sealed reporter, the keyed digest, the hash chain, the read model);
- notify: one signed webhook delivery through notify's own `WebhookChannel` (aiohttp,
  keep-alive) to the bench's receiver process, a few at a time.

`bench.goals` sets them beside the ceilings of the same run. Routing consumes and produces
every record at least as the bare faust passthrough does and then runs its stages, so its
share of the passthrough is at most passthrough / (passthrough + stages). Audit's share of
the plain aiokafka loop is at most loop / handler (its consuming left out). Notify keeps
every event it consumes at least as the durable-consumer floor does and sends one webhook per
recommendation, so its share is at most loop / (floor + webhook / events per recommendation).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import audit_handler, routing_stages
from bench.helpers import ReceiverProcess
from phoihop_common.config import Reference, load_reference
from phoihop_common.consumer import ConsumerPolicy
from phoihop_notify.bodies import cloudevent_body, envelope_attributes, summary
from phoihop_notify.channels import Message, Target, WebhookChannel
from phoihop_notify.store.base import new_secret
from phoihop_schemas import codec
from phoihop_schemas.events import Assigned
from phoihop_schemas.topics import ce_type_for
from phoihop_testkit.plugin import fixed_pii_cipher

WEBHOOK_CONCURRENCY = 8


def _message(i: int, *, reference: Reference) -> Message:
    """Case i's `assigned` event as notify sends it: structured CloudEvent, the agency's view."""
    rec = str(uuid.uuid4())
    assigned = audit_handler.case_events(rec, i)[1]
    assert isinstance(assigned, Assigned)
    attributes = envelope_attributes(
        event_id=codec.lifecycle_event_id(rec, 2),
        ce_type=ce_type_for("assigned"),
        source="/phoihop/routing",
        subject=rec,
        time=assigned.occurred_at,
        extensions={},
    )
    body = cloudevent_body(
        attributes=attributes,
        data=assigned.model_dump(mode="json"),
        viewer=assigned.agency,
        cipher=fixed_pii_cipher(),
        reference=reference,
    )
    return Message(
        id=f"msg_{uuid.uuid4().hex}",
        event_type="assigned",
        recommendation_id=rec,
        body=body,
        summary=summary(event_type="assigned", recommendation_id=rec),
    )


async def webhook(*, url: str, deliveries: int) -> dict[str, Any]:
    """CPU ms per signed webhook delivery (`WEBHOOK_CONCURRENCY` in flight), all 2xx."""
    channel = WebhookChannel(timeout=10.0)
    target = Target(address=url, secrets=(new_secret(),))
    gate = asyncio.Semaphore(WEBHOOK_CONCURRENCY)
    failed: list[str] = []

    async def one(message: Message) -> None:
        async with gate:
            result = await channel.deliver(target=target, message=message)
        if not result.ok:
            failed.append(str(result.error or result.status_code))

    try:
        reference = load_reference()
        await asyncio.gather(*(one(_message(i, reference=reference)) for i in range(50)))
        # built before the clock starts: what is timed is signing and sending
        messages = [_message(i, reference=reference) for i in range(deliveries)]
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(m) for m in messages))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await channel.close()
    if failed:
        raise RuntimeError(f"{len(failed)} webhook deliveries failed, e.g. {failed[0]}")
    return {
        "deliveries": deliveries,
        "backend": channel.backend,
        "per_s": round(deliveries / wall, 1),
        "cpu_ms_per_delivery": round(cpu * 1000 / deliveries, 4),
    }


def measure(*, tmp: Path, records: int) -> dict[str, Any]:
    """The three figures, each on about `records` // 10 recommendations, events or posts."""
    n = max(records // 10, 200)
    routing = asyncio.run(routing_stages.measure(recommendations=n))
    audit = asyncio.run(
        audit_handler.measure(
            url=f"sqlite:///{tempfile.mkdtemp(prefix='audit-bound-', dir=tmp)}/audit.db",
            events=n,
            batch=ConsumerPolicy().consumer_max_records,
        )
    )
    receiver = ReceiverProcess(out_path=tmp / "bounds-receiver.log").start()
    try:
        hooks = asyncio.run(webhook(url=receiver.url("/hooks/bound"), deliveries=n))
    finally:
        receiver.stop()
    return {
        "routing_stages": routing,
        "audit_handler": audit,
        "webhook": hooks,
    }
