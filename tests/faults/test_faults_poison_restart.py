"""Poison in the middle of a steady stream while services are SIGKILLed and restarted: nothing
lost, nothing duplicated, no sequence gap, every poison record dead-lettered, nothing stuck."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(600)]

# Ceilings for conditions polled (generous: they hold with the other core busy).
READY_TIMEOUT = 180.0
FLOWING_TIMEOUT = 60.0
SETTLE_TIMEOUT = 240.0
DEAD_LETTER_TIMEOUT = 120.0
MAX_SUBMISSIONS = 1500
TWO_MB = 2 * 1024 * 1024

Coordinates = tuple[str, int, int]  # topic, partition, offset


@dataclass
class Flow:
    """Single submissions over HTTP from background threads; ids that got 202."""

    ingest_url: str
    accepted: dict[str, int] = field(default_factory=dict)
    attempts: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def _body(self) -> dict[str, Any]:
        with self._lock:
            index, self._next = self._next, self._next + 1
        return next(iter(generate(1, seed=17, start=index))).body

    def _submit(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set() and len(self.accepted) < MAX_SUBMISSIONS:
                body = self._body()
                headers = {**key(SUBMITTER), "Idempotency-Key": str(uuid.uuid4())}
                for _ in range(6):  # retried with the same key: at most one case
                    try:
                        resp = client.post(
                            f"{self.ingest_url}/v1/recommendations", json=body, headers=headers
                        )
                    except httpx.HTTPError as exc:
                        self.attempts[type(exc).__name__] += 1
                        self.stop.wait(0.5)
                        continue
                    self.attempts[str(resp.status_code)] += 1
                    if resp.status_code == 202:
                        self.accepted[str(resp.json()["id"])] = len(self.accepted)
                        break
                    self.stop.wait(0.5)
                self.stop.wait(0.05)

    def start(self, threads: int = 3) -> Flow:
        """Submit from `threads` threads until `finish`."""
        for _ in range(threads):
            t = threading.Thread(target=self._submit, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def flowing(self, since: int, *, more: int = 20) -> bool:
        """`more` submissions accepted since `since` (or the flow is full)."""
        return len(self.accepted) >= min(since + more, MAX_SUBMISSIONS)

    def finish(self) -> None:
        """Stop and wait for the threads (bounded)."""
        self.stop.set()
        for t in self._threads:
            t.join(timeout=60)


def _poll(fn: Callable[[], Any], *, timeout: float, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    last = fn()
    while not last and time.monotonic() < deadline:
        time.sleep(every)
        last = fn()
    return last


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


def _trails(stack: Stack, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    def one(client: httpx.Client, rec_id: str) -> tuple[str, dict[str, Any] | None]:
        resp = client.get(f"{stack.url('audit')}/v1/recommendations/{rec_id}/trail")
        return rec_id, resp.json() if resp.status_code == 200 else None

    with httpx.Client(timeout=30, headers=key(SUPERVISOR)) as client, ThreadPoolExecutor(8) as ex:
        return dict(ex.map(lambda i: one(client, i), ids))


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


def _all_routed(stack: Stack, count: int) -> bool:
    """Audit knows `count` recommendations and none is still waiting for routing.

    Read from audit's read model, not from its `events_stored` counter: that counter starts
    again from zero when audit is restarted, so it would never reach `count`.
    """
    url = f"{stack.url('audit')}/v1/recommendations"
    try:
        with httpx.Client(timeout=30, headers=key(SUPERVISOR)) as client:
            known = client.get(url, params={"page_size": 1}).json()["total"]
            waiting = client.get(url, params={"status": "received", "page_size": 1}).json()
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(known >= count and waiting["total"] == 0)


def _kill_and_restart(stack: Stack, name: str) -> None:
    proc = stack.procs[name]
    proc.kill()
    proc.restart()
    stack.wait_ready(services=(name,), timeout=READY_TIMEOUT)


@pytest.mark.parametrize("second", ["notify", "routing"])
def test_poison_mid_stream_while_services_restart_loses_and_sticks_nothing(
    stack_factory: Callable[..., Stack], tmp_path: Path, second: str
) -> None:
    config = copy_config(tmp_path / "config", [])
    env = {**NOTIFY_ENV, "PHOIHOP_ROUTING_TIMER_INTERVAL": "1.0"}
    stack = stack_factory(config_dir=config, extra_env=env)
    marker = f"poison-{uuid.uuid4().hex[:8]}"
    poison = _poison(marker)
    half = len(poison) // 2
    flow = Flow(stack.url("ingest")).start()
    landed: dict[str, Coordinates] = {}
    started = time.monotonic()
    timeline: list[str] = []  # what happened when (in every failure message)

    def mark(what: str) -> None:
        timeline.append(f"{time.monotonic() - started:.0f}s {what} ({len(flow.accepted)})")

    try:
        assert _poll(lambda: len(flow.accepted) >= 50, timeout=120), dict(flow.attempts)
        # poison on the submissions topic, then audit killed while it is in flight
        landed |= asyncio.run(_produce(stack.bootstrap, poison[:half]))
        mark("poison on submissions")
        _kill_and_restart(stack, "audit")
        mark("audit killed and ready again")
        _poll(partial(flow.flowing, len(flow.accepted)), timeout=FLOWING_TIMEOUT)
        # poison on the responses topic, then the second service killed
        landed |= asyncio.run(_produce(stack.bootstrap, poison[half:]))
        mark("poison on responses")
        _kill_and_restart(stack, second)
        mark(f"{second} killed and ready again")
        _poll(partial(flow.flowing, len(flow.accepted), more=50), timeout=FLOWING_TIMEOUT)
    finally:
        flow.finish()
    mark("flow stopped")
    ids = sorted(flow.accepted)
    context = f"timeline {timeline}; {len(ids)} accepted; attempts {dict(flow.attempts)}"
    assert len(ids) >= 100, f"too little flowed; {context}"

    # Nothing lost, nothing duplicated: each accepted submission received and routed once.
    deadline = time.monotonic() + SETTLE_TIMEOUT
    _poll(partial(_all_routed, stack, len(ids)), timeout=SETTLE_TIMEOUT, every=2.0)
    while (problems := _problems(_trails(stack, ids))) and time.monotonic() < deadline:
        time.sleep(3.0)
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
