"""Poison in the middle of a steady stream while services are SIGKILLed and restarted: nothing
lost, nothing duplicated, no sequence gap, every poison record dead-lettered, nothing stuck."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from bench.bus import NOTIFY_ENV, SUBMITTER, SUPERVISOR, copy_config, key
from bench.texts import generate
from phoihop_common.kafka import KafkaSettings, producer_kwargs
from phoihop_embedded.stack import Stack
from phoihop_schemas.codec import encode
from phoihop_schemas.events import InboundSubmission, Response, ResponseAction
from phoihop_schemas.topics import INBOUND_RESPONSES, INBOUND_SUBMISSIONS
from tests.faults.dead_letters import read_dead_letters
from tests.faults.flow import Flow, all_routed, kill_and_restart, poll, settled_trails

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]

# Ceilings for conditions polled (generous: they hold with the other core busy).
READY_TIMEOUT = 180.0
FLOWING_TIMEOUT = 60.0
SETTLE_TIMEOUT = 240.0
DEAD_LETTER_TIMEOUT = 120.0
MAX_SUBMISSIONS = 1500
TWO_MB = 2 * 1024 * 1024

Coordinates = tuple[str, int, int]  # topic, partition, offset


def _poison(marker: str) -> list[tuple[str, str, bytes, list[tuple[str, bytes]]]]:
    """(what, topic, value, headers) on each inbound topic: bad JSON, lone surrogate, 2 MB."""
    body = next(iter(generate(1, seed=99, start=1))).body
    sub = encode(InboundSubmission(**body, submitted_by=SUBMITTER), source="/agency/test")
    resp = encode(
        Response(
            response_id=str(uuid.uuid4()), recommendation_id=str(uuid.uuid4()),
            agency="SO_XAY_DUNG", action=ResponseAction.ANSWER, text="MARK",
            responded_at=datetime.now(UTC),
        ),
        source="/agency/test",
    )  # fmt: skip
    out: list[tuple[str, str, bytes, list[tuple[str, bytes]]]] = []
    for topic, value, headers in (
        (INBOUND_SUBMISSIONS.name, sub.value, sub.headers),
        (INBOUND_RESPONSES.name, resp.value, resp.headers),
    ):
        short = topic.rsplit(".", 1)[-1]
        # the text as the JSON escape of a lone surrogate: valid JSON, not valid text
        data = json.loads(value) | {"text": "MARK"}
        surrogate = json.dumps(data).encode().replace(b'"MARK"', b'"abc \\ud800 def"')
        out += [
            (f"{short}-bad-json", topic, b'{"kind": "kien_nghi", "te', headers),
            (f"{short}-surrogate", topic, surrogate, headers),
            (f"{short}-2mb", topic, value[:-1] + b', "pad": "' + b"x" * TWO_MB + b'"}', headers),
        ]
    return [(f"{marker}-{what}", topic, value, headers) for what, topic, value, headers in out]


async def _produce(
    bootstrap: str, records: list[tuple[str, str, bytes, list[tuple[str, bytes]]]]
) -> dict[str, Coordinates]:
    """Produce each record keyed by its name; where it landed, by name."""
    producer = AIOKafkaProducer(
        **producer_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)), max_request_size=4 * TWO_MB
    )
    await producer.start()
    landed: dict[str, Coordinates] = {}
    try:
        for name, topic, value, headers in records:
            meta = await producer.send_and_wait(
                topic, value=value, key=name.encode(), headers=headers
            )
            landed[name] = (topic, meta.partition, meta.offset)
    finally:
        await producer.stop()
    return landed


def _origin(_record: Any, headers: dict[str, str]) -> Coordinates | None:
    """Where a dead letter's original record was read (`dlq_topic/partition/offset`)."""
    try:
        return headers["dlq_topic"], int(headers["dlq_partition"]), int(headers["dlq_offset"])
    except (KeyError, ValueError):
        return None


async def _dead_letters(
    bootstrap: str, wanted: set[Coordinates], *, within: float
) -> dict[Coordinates, list[dict[str, str]]]:
    """Dead letters (headers) of the wanted original coordinates."""
    return await read_dead_letters(bootstrap, wanted, within=within, identify=_origin)


def _problems(trails: dict[str, dict[str, Any] | None]) -> list[str]:
    """What is wrong with the trails: missing, not routed, duplicated, gaps."""
    problems: list[str] = []
    event_ids: Counter[str] = Counter()
    for rec_id, trail in trails.items():
        if trail is None:
            problems.append(f"{rec_id}: unknown to audit")
            continue
        events = trail["events"]
        event_ids.update(e["event_id"] for e in events)
        types = Counter(e["type"] for e in events)
        seqs = [e["sequence"] for e in events]
        if seqs != list(range(1, len(seqs) + 1)) or trail.get("missing_sequences"):
            problems.append(f"{rec_id}: sequences {seqs}")
        if types["received"] != 1:
            problems.append(f"{rec_id}: {types['received']} received events")
        if types["assigned"] + types["merged"] != 1:
            problems.append(f"{rec_id}: routed {types['assigned'] + types['merged']} times")
    problems += [f"event {e} stored {n} times" for e, n in event_ids.items() if n > 1]
    return problems


def test_poison_mid_stream_while_services_restart_loses_and_sticks_nothing(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    config = copy_config(tmp_path / "config", [])
    env = {**NOTIFY_ENV, "PHOIHOP_ROUTING_TIMER_INTERVAL": "1.0"}
    stack = stack_factory(config_dir=config, extra_env=env)
    marker = f"poison-{uuid.uuid4().hex[:8]}"
    poison = _poison(marker)
    half = len(poison) // 2
    flow = Flow(
        stack.url("ingest"), bulk=0, singles=3, single_pause=0.05, max_submissions=MAX_SUBMISSIONS
    ).start()
    landed: dict[str, Coordinates] = {}
    started = time.monotonic()
    timeline: list[str] = []  # what happened when (in every failure message)

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - started:.0f}s {what} ({len(flow.accepted)})")

    try:
        assert poll(lambda: len(flow.accepted) >= 50, timeout=120, every=0.5), dict(flow.attempts)
        # poison on the submissions topic, then audit killed while it is in flight
        landed |= asyncio.run(_produce(stack.bootstrap, poison[:half]))
        mark("poison on submissions")
        kill_and_restart(stack, "audit", timeout=READY_TIMEOUT)
        mark("audit killed and ready again")
        poll(partial(flow.flowing, len(flow.accepted)), timeout=FLOWING_TIMEOUT, every=0.5)
        # poison on the responses topic, then routing and notify killed together while it
        # is in flight and the flow goes on
        landed |= asyncio.run(_produce(stack.bootstrap, poison[half:]))
        mark("poison on responses")
        kill_and_restart(stack, "routing", "notify", timeout=READY_TIMEOUT)
        mark("routing and notify killed and ready again")
        poll(partial(flow.flowing, len(flow.accepted), more=50), timeout=FLOWING_TIMEOUT, every=0.5)
    finally:
        flow.finish()
    mark("flow stopped")
    ids = sorted(flow.accepted)
    context = f"timeline {timeline}; {len(ids)} accepted; attempts {dict(flow.attempts)}"
    assert len(ids) >= 100, f"too little flowed; {context}"

    # Nothing lost, nothing duplicated: each accepted submission received and routed once.
    deadline = time.monotonic() + SETTLE_TIMEOUT
    poll(partial(all_routed, stack.url("audit"), len(ids)), timeout=SETTLE_TIMEOUT, every=2.0)
    _, problems = settled_trails(
        stack.url("audit"), ids, timeout=max(0.0, deadline - time.monotonic()), problems=_problems
    )
    mark("trails complete")
    assert not problems, f"{len(problems)} problems: {problems[:10]}; {context}"
    with httpx.Client(timeout=60, headers=key(SUPERVISOR)) as client:
        rec = client.get(f"{stack.url('audit')}/v1/audit/reconciliation")
        assert rec.status_code == 200, rec.text
        assert not rec.json().get("gaps"), f"reconciliation: {rec.text[:1000]}"

    # Each poison record dead-lettered (at least once: a restart may replay it).
    wanted = set(landed.values())
    found = asyncio.run(_dead_letters(stack.bootstrap, wanted, within=DEAD_LETTER_TIMEOUT))
    mark("dead letters read")
    missing = {name: where for name, where in landed.items() if where not in found}
    assert not missing, f"not dead-lettered: {missing}; found {sorted(found)}; {context}"
    for name, where in landed.items():
        entries = found[where]
        assert all(e.get("dlq_reason") for e in entries), (name, entries)
        if name.endswith("-2mb"):
            assert any(e.get("dlq_value_truncated") == "1" for e in entries), (name, entries)

    # Nothing stuck.
    for name, proc in stack.procs.items():
        ready = httpx.get(f"{proc.url}/readyz", timeout=10)
        assert ready.status_code == 200, (name, ready.text)
    print("timeline:", "; ".join(timeline))
