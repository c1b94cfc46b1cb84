"""Routing does not depend on the producer's partitioner (issue 11).

The bus as real processes with TWO routing workers sharing the partitions; an agency's
system answers over Kafka with confluent-kafka (librdkafka) and its default partitioner,
`consistent_random` (CRC32 of the key), where the bus's own producers hash with murmur2.
The cases are chosen so that every answer lands on another partition of
`inbound.responses` than its case's, and so that the cases live on every partition (both
workers own some). Every answer is applied once: `answered` in the audit trail, both
workers emitted some, nothing dead-lettered.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Message, Producer

from bench.bus import SUBMITTER, SUPERVISOR, copy_config, key, metric_sum, parse_metrics, scrape
from bench.texts import generate
from phoihop_common.net import free_port
from phoihop_embedded.stack import ServiceProcess, Stack
from phoihop_schemas import codec
from phoihop_schemas.events import Response, ResponseAction
from phoihop_schemas.topics import CANONICAL, INBOUND_RESPONSES, PREFIX, Topic
from phoihop_testkit.polling import poll

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(180)]

CASES_PER_PARTITION = 2

READY_TIMEOUT = 90.0


def _name(stack: Stack, topic: Topic) -> str:
    """The topic's name in this stack (a real Kafka gives each stack its own prefix)."""
    if stack.topic_prefix:
        return stack.topic_prefix + topic.name[len(PREFIX) :]
    return topic.name


def _murmur2_partition(k: bytes, partitions: int) -> int:
    """Java's / aiokafka's / faust's default partitioner (the bus's own producers)."""
    return (murmur2(k) & 0x7FFFFFFF) % partitions


def _crc32_partition(k: bytes, partitions: int) -> int:
    """librdkafka's default partitioner, `consistent_random`, for a non-empty key."""
    return zlib.crc32(k) % partitions


def _choose_keys(marker: str, partitions: int) -> dict[str, str]:
    """Idempotency key -> recommendation id: CASES_PER_PARTITION cases on every partition,
    each one's CRC32 partition differing from its murmur2 partition."""
    chosen: dict[str, str] = {}
    per: dict[int, int] = dict.fromkeys(range(partitions), 0)
    i = 0
    while min(per.values()) < CASES_PER_PARTITION:
        k = f"{marker}-{i}"
        i += 1
        rec_id = codec.submission_id(agency=SUBMITTER, key=k)
        home = _murmur2_partition(rec_id.encode(), partitions)
        if per[home] >= CASES_PER_PARTITION:
            continue
        if _crc32_partition(rec_id.encode(), partitions) == home:
            continue
        per[home] += 1
        chosen[k] = rec_id
    return chosen


def _second_routing_worker(stack: Stack) -> ServiceProcess:
    """Another `python -m phoihop_routing` in the same consumer group (own port, data dir)."""
    port = free_port()
    env = stack.service_env("routing") | {
        "PHOIHOP_ROUTING_PORT": str(port),
        "PHOIHOP_ROUTING_DATA_DIR": str(stack.data_dir / "routing2"),
    }
    proc = ServiceProcess(
        name="routing", port=port, env=env, log_path=stack.data_dir / "routing2.log"
    )
    stack.procs["routing2"] = proc  # stopped (and its log shown on failure) with the stack
    proc.start()
    return proc


def _statuses(stack: Stack, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with httpx.Client(timeout=10, headers=key(SUPERVISOR)) as client:
        for rec_id in ids:
            resp = client.get(f"{stack.url('audit')}/v1/recommendations/{rec_id}")
            if resp.status_code == 200:
                out[rec_id] = resp.json()
    return out


def _answered(stack: Stack, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    with httpx.Client(timeout=10, headers=key(SUPERVISOR)) as client:
        for rec_id in ids:
            resp = client.get(f"{stack.url('audit')}/v1/recommendations/{rec_id}/trail")
            if resp.status_code != 200:
                continue
            events = list(resp.json()["events"])
            if any(e["type"] == "answered" for e in events):
                out[rec_id] = events
    return out


def test_librdkafka_default_partitioner_answers_reach_the_owner_among_two_workers(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    started = time.monotonic()
    config = copy_config(tmp_path / "config", [])
    stack = stack_factory(config_dir=config, services=("audit", "routing", "ingest"))
    print(f"stack ready at {time.monotonic() - started:.1f} s")
    second = _second_routing_worker(stack)
    # the second worker is ready once the group gave it partitions; the first after rejoining
    stack.wait_ready(services=("routing2", "routing"), timeout=READY_TIMEOUT)
    workers = {"routing": stack.procs["routing"], "routing2": second}
    print(f"two routing workers ready at {time.monotonic() - started:.1f} s")

    def dead_letters() -> str:
        """What each worker dead-lettered, by topic and reason (for failure messages)."""
        found: dict[str, float] = {}
        for name, proc in workers.items():
            for metric, labels, value in parse_metrics(scrape(proc.url)):
                if metric == "phoihop_routing_dead_lettered_total" and value:
                    found[f"{name} {labels.get('topic')} {labels.get('reason')}"] = value
        return f"dead letters: {found}"

    responses_topic = _name(stack, INBOUND_RESPONSES)
    # librdkafka with its defaults: `partitioner` is `consistent_random` (CRC32 of the key)
    producer = Producer({"bootstrap.servers": stack.bootstrap, "acks": "all"})
    metadata = producer.list_topics(responses_topic, timeout=10)
    partitions = len(metadata.topics[responses_topic].partitions)
    assert partitions >= 2, f"{responses_topic} has {partitions} partition(s)"

    # Cases on every partition, submitted over HTTP with a chosen idempotency key.
    chosen = _choose_keys(f"part-{uuid.uuid4().hex[:8]}", partitions)
    bodies = (g.body for g in generate(200, seed=17) if g.body["kind"] in ("kien_nghi", "phan_anh"))
    with httpx.Client(timeout=30) as client:
        for (idem, rec_id), body in zip(chosen.items(), bodies, strict=False):
            resp = client.post(
                f"{stack.url('ingest')}/v1/recommendations",
                json=body,
                headers={**key(SUBMITTER), "Idempotency-Key": idem},
            )
            assert resp.status_code == 202, resp.text
            assert resp.json()["id"] == rec_id
    ids = list(chosen.values())
    statuses = poll(
        lambda: (
            (s := _statuses(stack, ids))
            and all(x.get("status") == "assigned" and x.get("agency") for x in s.values())
            and len(s) == len(ids)
            and s
        ),
        timeout=60,
        what="every case assigned",
    )
    print(f"{len(ids)} cases assigned at {time.monotonic() - started:.1f} s")

    # The agency's answers, produced by librdkafka with its default partitioner.
    delivered: dict[str, int] = {}
    errors: list[str] = []

    def on_delivery(err: Any, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered[(msg.key() or b"").decode()] = int(msg.partition() or 0)

    for rec_id in ids:
        record = codec.encode(
            Response(
                response_id=str(uuid.uuid4()),
                recommendation_id=rec_id,
                agency=statuses[rec_id]["agency"],
                action=ResponseAction.ANSWER,
                text="Đơn vị đã kiểm tra và đưa vào kế hoạch xử lý trong quý này.",
                responded_at=datetime.now(UTC),
            ),
            source="/agency/librdkafka",
        )
        producer.produce(
            responses_topic,
            key=record.key,
            value=record.value,
            headers=list(record.headers),
            on_delivery=on_delivery,
        )
    assert producer.flush(30) == 0, "answers not delivered"
    assert not errors, errors
    # The premise: librdkafka hashed with CRC32, so no answer is on its case's partition.
    for rec_id in ids:
        k = rec_id.encode()
        assert delivered[rec_id] == _crc32_partition(k, partitions), (rec_id, delivered)
        assert delivered[rec_id] != _murmur2_partition(k, partitions), (rec_id, delivered)
    assert {_murmur2_partition(i.encode(), partitions) for i in ids} == set(range(partitions))

    # Every answer applied once, by the worker owning its case.
    print(f"answers produced at {time.monotonic() - started:.1f} s")
    applied: dict[str, list[dict[str, Any]]] = {}

    def all_applied() -> dict[str, list[dict[str, Any]]] | None:
        applied.clear()
        applied.update(_answered(stack, ids))
        return dict(applied) if len(applied) == len(ids) else None

    trails = poll(
        all_applied,
        timeout=60,
        what=f"all {len(ids)} answers applied",
        detail=lambda: f"{len(applied)} applied; {dead_letters()}",
    )
    for rec_id, events in trails.items():
        # a case resembling an earlier one gets `duplicate_suggested` right after `assigned`
        types = [e["type"] for e in events]
        assert [t for t in types if t != "duplicate_suggested"] == [
            "received",
            "assigned",
            "answered",
        ], rec_id
        assert types[:2] == ["received", "assigned"], rec_id
        assert [e["sequence"] for e in events] == list(range(1, len(events) + 1)), rec_id
        assert events[-1]["data"]["agency"] == statuses[rec_id]["agency"]

    answered_topic = _name(stack, CANONICAL["answered"])
    emitted: dict[str, float] = {}
    for name, proc in workers.items():
        text = scrape(proc.url)
        emitted[name] = (
            metric_sum(text, "phoihop_routing_events_produced_total", topic=answered_topic) or 0.0
        )
        dead = metric_sum(text, "phoihop_routing_dead_lettered_total") or 0.0
        assert dead == 0, f"{name} dead-lettered {dead} record(s)"
        ready = httpx.get(f"{proc.url}/readyz", timeout=10)
        assert ready.status_code == 200, (name, ready.text)
    assert all(n > 0 for n in emitted.values()), f"one worker applied every answer: {emitted}"
    assert sum(emitted.values()) >= len(ids), emitted
    print(
        f"{len(ids)} answers over {partitions} partitions, by worker {emitted}, "
        f"{time.monotonic() - started:.1f} s"
    )
