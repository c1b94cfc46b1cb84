"""Stage R, the `routing-responses` agent: agencies' responses are checked without their case
and re-keyed onto ROUTING_COMMANDS, so the case agent never reads a partition an agency's
client chose. Real faust app (memory store) with `agent.test_context()`; sends go to an
outbox that acts like aiokafka's producer where it matters and can be told to fail."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from prometheus_client import REGISTRY

from phoihop_routing import agents
from phoihop_routing.agents import (
    INTERNAL_HEADER,
    ORIGIN_OFFSET,
    ORIGIN_PARTITION,
    ORIGIN_TOPIC,
    STAGE_RESPONSES,
    Incoming,
    origin_of,
)
from phoihop_routing.app import Routing
from phoihop_schemas import codec
from phoihop_schemas.events import Received, ResponseAction
from phoihop_schemas.topics import (
    DEAD_LETTER,
    INBOUND_RESPONSES,
    ROUTING_COMMANDS,
    ROUTING_DEDUP,
    ROUTING_TIMERS,
)
from services.routing.tests.routing_fakes import (
    AGENCY,
    DeadActor,
    FaultyOutbox,
    Sent,
    make_routing,
    once,
    received,
    response,
    route,
    sample,
)

Raw = tuple[bytes | None, bytes, list[tuple[str, bytes]]]


@pytest.fixture
def routing(tmp_path: Path) -> tuple[Routing, FaultyOutbox]:
    return make_routing(tmp_path)


def raw(record: codec.Record) -> Raw:
    return record.key, record.value, list(record.headers)


def canonical_event(rec: Received) -> codec.Record:
    """A canonical event (here `received`) where a response is expected."""
    return codec.encode(rec, source="/rogue")


async def assigned_case(r: Routing, outbox: FaultyOutbox, *, partition: int) -> Received:
    rec = received()
    await r.pipeline.on_cases([route(rec, partition=partition)])
    (assigned,) = outbox.events("assigned")
    assert assigned.agency == AGENCY
    return rec


async def to_responses(r: Routing, *records: Raw, partition: int = 0) -> None:
    """Records on INBOUND_RESPONSES, at `partition`, offsets 0, 1, 2 ..."""
    async with r.responses_agent.test_context() as ctx:
        for key, value, headers in records:
            await ctx.put(value=value, key=key, headers=headers, partition=partition)


async def to_cases(r: Routing, *sent: Sent, partition: int) -> None:
    ctx = r.case_agent.test_context()
    ctx.original_channel = r.app.topic(ROUTING_COMMANDS.name)
    async with ctx:
        for s in sent:
            await ctx.put(value=s.value, key=s.key, headers=s.headers, partition=partition)


def dlq(outbox: FaultyOutbox) -> list[dict[str, bytes]]:
    return [dict(s.headers) for s in outbox.take(DEAD_LETTER.name)]


def inbound(record: codec.Record, *, partition: int, offset: int) -> Incoming:
    return Incoming(
        INBOUND_RESPONSES.name, partition, offset, record.key, record.value, tuple(record.headers)
    )


# ---------------------------------------------------------------- wiring


def test_the_case_agent_reads_only_topics_routing_writes(routing: Any) -> None:
    r, _ = routing
    assert set(r.case_agent.channel.topics) == {ROUTING_COMMANDS.name, ROUTING_TIMERS.name}
    assert tuple(r.responses_agent.channel.topics) == (INBOUND_RESPONSES.name,)
    assert r.responses_agent.name == "routing-responses"


# ---------------------------------------------------------------- forwarding


async def test_a_response_is_forwarded_unchanged_to_its_cases_partition_and_applied_once(
    routing: Any,
) -> None:
    r, outbox = routing
    rec = await assigned_case(r, outbox, partition=2)
    answer = response(rec.recommendation_id, ResponseAction.ANSWER, text="Đã sửa xong")
    # the agency's client put it on partition 3 (say, librdkafka's CRC32), the case is on 2
    await to_responses(r, raw(answer), partition=3)
    assert outbox.events("answered") == []  # stage R applies nothing itself
    (forwarded,) = outbox.take(ROUTING_COMMANDS.name)
    assert forwarded.key == rec.recommendation_id.encode()
    assert forwarded.value == answer.value
    assert forwarded.headers == [
        *answer.headers,
        (ORIGIN_TOPIC, INBOUND_RESPONSES.name.encode()),
        (ORIGIN_PARTITION, b"3"),
        (ORIGIN_OFFSET, b"0"),
    ]
    # stage 3 reads it where routing's producer put it: the case's own partition
    await to_cases(r, forwarded, partition=2)
    (answered,) = outbox.events("answered")
    assert (answered.sequence, answered.agency, answered.text) == (3, AGENCY, "Đã sửa xong")
    assert r.cases[rec.recommendation_id]["partition"] == 2
    # forwarded twice (stage R replayed after a crash): applied once, nothing dead-lettered
    await to_cases(r, forwarded, partition=2)
    assert outbox.events("answered") == []
    assert outbox.take(DEAD_LETTER.name) == []
    assert r.cases[rec.recommendation_id]["sequence"] == 3


async def test_origin_headers_an_agency_sends_are_replaced_and_trusted_only_on_commands(
    routing: Any,
) -> None:
    r, outbox = routing
    rec = await assigned_case(r, outbox, partition=0)
    accept = response(rec.recommendation_id, ResponseAction.ACCEPT)
    spoofed = [*accept.headers, (ORIGIN_TOPIC, ROUTING_DEDUP.name.encode()), (ORIGIN_OFFSET, b"7")]
    await to_responses(r, (accept.key, accept.value, spoofed), partition=1)
    (forwarded,) = outbox.take(ROUTING_COMMANDS.name)
    origin = [(k, v) for k, v in forwarded.headers if k.startswith("phoihop_origin_")]
    assert origin == [
        (ORIGIN_TOPIC, INBOUND_RESPONSES.name.encode()),
        (ORIGIN_PARTITION, b"1"),
        (ORIGIN_OFFSET, b"0"),
    ]
    # read anywhere but ROUTING_COMMANDS, or unreadable: a record is its own origin
    on_inbound = Incoming(INBOUND_RESPONSES.name, 1, 4, b"k", b"v", tuple(spoofed))
    assert origin_of(on_inbound) is on_inbound
    garbled = Incoming(
        ROUTING_COMMANDS.name,
        0,
        9,
        b"k",
        b"v",
        ((ORIGIN_TOPIC, b"t"), (ORIGIN_PARTITION, b"x"), (ORIGIN_OFFSET, b"1")),
    )
    assert origin_of(garbled) is garbled


# ---------------------------------------------------------------- poison


async def test_poison_responses_are_dead_lettered_by_stage_r_alone_with_their_reason(
    routing: Any,
) -> None:
    r, outbox = routing
    rec = await assigned_case(r, outbox, partition=0)
    good = response(rec.recommendation_id, ResponseAction.ACCEPT)
    hdrs = list(good.headers)
    other_event = canonical_event(received())
    poison: list[tuple[str, Raw]] = [
        ("not_cloudevent", (good.key, b"hello", [])),
        ("bad_json", (good.key, b'{"response_id": "x', hdrs)),
        ("schema_violation", (good.key, json.dumps({"action": "answer"}).encode(), hdrs)),
        ("oversized", (good.key, good.value[:-1] + b', "pad": "' + b"x" * 2**21 + b'"}', hdrs)),
        ("unexpected_type", raw(other_event)),
        ("key_mismatch", (b"not-the-recommendation", good.value, hdrs)),
        ("bad_envelope", (b"\xff\xfe", good.value, hdrs)),
    ]
    await to_responses(r, *(p for _, p in poison), raw(good), partition=2)
    dead = dlq(outbox)
    assert [d["dlq_reason"].decode() for d in dead] == [reason for reason, _ in poison]
    assert {d["dlq_topic"] for d in dead} == {INBOUND_RESPONSES.name.encode()}
    assert {d["dlq_service"] for d in dead} == {b"routing"}
    assert [d["dlq_offset"] for d in dead] == [str(i).encode() for i in range(len(poison))]
    assert {d["dlq_partition"] for d in dead} == {b"2"}
    assert dead[3].get("dlq_value_truncated") == b"1"
    # only the good neighbour went on, and it is applied
    (forwarded,) = outbox.take(ROUTING_COMMANDS.name)
    await to_cases(r, forwarded, partition=0)
    (accepted,) = outbox.events("accepted")
    assert accepted.sequence == 3
    assert r.problem() is None


async def test_an_internal_command_written_to_the_inbound_topic_is_not_obeyed(
    routing: Any,
) -> None:
    # the case agent used to read INBOUND_RESPONSES too, where a record with the
    # `phoihop_internal` header and no `ce_type` was parsed as one of routing's commands
    r, outbox = routing
    rec = await assigned_case(r, outbox, partition=0)
    tick = {"op": "tick", "recommendation_id": rec.recommendation_id}
    await to_responses(
        r,
        (rec.recommendation_id.encode(), json.dumps(tick).encode(), [(INTERNAL_HEADER, b"1")]),
        raw(canonical_event(received())),
    )
    assert [d["dlq_reason"] for d in dlq(outbox)] == [b"not_cloudevent", b"unexpected_type"]
    assert outbox.take(ROUTING_COMMANDS.name) == []


async def test_a_forwarded_response_rejected_by_its_case_is_dead_lettered_as_the_inbound_record(
    routing: Any,
) -> None:
    r, outbox = routing
    rec = await assigned_case(r, outbox, partition=1)
    not_mine = response(rec.recommendation_id, ResponseAction.ANSWER, agency="SO_Y_TE", text="?")
    unknown = response(str(uuid.uuid4()), ResponseAction.ACCEPT)
    await to_responses(r, raw(not_mine), raw(unknown), partition=3)
    forwarded = outbox.take(ROUTING_COMMANDS.name)
    assert len(forwarded) == 2
    await to_cases(r, *forwarded, partition=1)
    first, second = outbox.take(DEAD_LETTER.name)
    for dead, original, offset, reason in (
        (first, not_mine, b"0", b"not_assignee"),
        (second, unknown, b"1", b"unknown_recommendation"),
    ):
        assert dead.header("dlq_reason") == reason
        assert (dead.header("dlq_topic"), dead.header("dlq_partition")) == (
            INBOUND_RESPONSES.name.encode(),
            b"3",
        )
        assert dead.header("dlq_offset") == offset
        assert (dead.key, dead.value) == (original.key, original.value)
        assert not [k for k, _ in dead.headers if k.startswith("phoihop_origin_")]
        assert dead.header("ce_id") == dict(original.headers)["ce_id"]
    assert r.cases[rec.recommendation_id]["sequence"] == 2


# ---------------------------------------------------------------- broker trouble


async def test_broker_trouble_on_one_forward_is_retried_in_process_without_a_dead_letter(
    routing: Any,
) -> None:
    r, outbox = routing
    rec = await assigned_case(r, outbox, partition=0)
    before = sample(
        "phoihop_routing_consumer_retries_total", consumer="routing-responses", kind="record"
    )
    outbox.send_fault = once(KafkaConnectionError("down"), topic=ROUTING_COMMANDS.name)
    await to_responses(r, raw(response(rec.recommendation_id, ResponseAction.ACCEPT)))
    assert len(outbox.take(ROUTING_COMMANDS.name)) == 1
    assert outbox.take(DEAD_LETTER.name) == []
    after = sample(
        "phoihop_routing_consumer_retries_total", consumer="routing-responses", kind="record"
    )
    assert after == before + 1


async def test_a_forward_refused_for_good_dead_letters_that_response_only(
    routing: Any,
) -> None:
    r, outbox = routing
    a, bad, c = (received() for _ in range(3))
    records = [
        inbound(response(x.recommendation_id, ResponseAction.ACCEPT), partition=2, offset=i)
        for i, x in enumerate((a, bad, c), start=10)
    ]
    outbox.ack_fault = once(
        MessageSizeTooLargeError("too large for the topic"),
        topic=ROUTING_COMMANDS.name,
        marker=bad.recommendation_id.encode(),
    )
    await r.pipeline.on_responses(records)
    (dead,) = outbox.take(DEAD_LETTER.name)
    assert (dead.header("dlq_reason"), dead.header("dlq_offset")) == (b"produce_failed", b"11")
    assert dead.header("dlq_topic") == INBOUND_RESPONSES.name.encode()
    assert (dead.header("dlq_detail") or b"").startswith(b"responses: MessageSizeTooLargeError")
    # the others were acknowledged: sent once, not again
    keys = [s.key for s in outbox.take(ROUTING_COMMANDS.name)]
    assert keys == [a.recommendation_id.encode(), c.recommendation_id.encode()]


async def test_acks_that_time_out_resend_the_batch_and_each_response_applies_once(
    routing: Any,
) -> None:
    r, outbox = routing
    one = await assigned_case(r, outbox, partition=0)
    two = await assigned_case(r, outbox, partition=0)
    records = [
        inbound(response(x.recommendation_id, ResponseAction.ACCEPT), partition=1, offset=i)
        for i, x in enumerate((one, two))
    ]
    outbox.ack_fault = once(KafkaTimeoutError(), topic=ROUTING_COMMANDS.name)
    await r.pipeline.on_responses(records)
    assert outbox.take(DEAD_LETTER.name) == []
    forwarded = outbox.take(ROUTING_COMMANDS.name)
    assert len(forwarded) == 3  # the second one twice: the whole batch was sent again
    assert r.pipeline.health[STAGE_RESPONSES].retrying_since is None
    assert r.pipeline.problem() is None
    await to_cases(r, *forwarded, partition=0)
    accepted = outbox.events("accepted")
    assert sorted(e.recommendation_id for e in accepted) == sorted(
        [one.recommendation_id, two.recommendation_id]
    )
    assert outbox.take(DEAD_LETTER.name) == []


# ---------------------------------------------------------------- readiness


async def test_readiness_covers_the_responses_stage_and_its_agent(routing: Any) -> None:
    r, _ = routing
    assert r.problem() is None
    health = r.pipeline.health[STAGE_RESPONSES]
    health.retrying_since = asyncio.get_running_loop().time() - 3600  # monotonic clock
    health.last_error = "KafkaTimeoutError: no ack"
    assert (r.problem() or "").startswith("routing-responses: retrying one batch")
    stuck = {"consumer": "routing-responses"}
    assert REGISTRY.get_sample_value("phoihop_routing_consumer_stuck", stuck) == 1.0
    health.retrying_since = None
    assert r.problem() is None
    assert REGISTRY.get_sample_value("phoihop_routing_consumer_stuck", stuck) == 0.0
    dead = DeadActor()
    r.responses_agent._actors.add(dead)  # a WeakSet: `dead` stays referenced below
    try:
        assert (r.problem() or "").startswith("agent routing-responses crashed")
    finally:
        r.responses_agent._actors.discard(dead)


async def test_an_exception_escaping_the_responses_agent_is_recorded(
    routing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, _ = routing

    def broken(_message: Any) -> Incoming:
        raise RuntimeError("cannot read the response")

    monkeypatch.setattr(agents.Incoming, "of", staticmethod(broken))
    with pytest.raises(RuntimeError):
        await to_responses(r, (b"k", b"v", []))
    problem = r.pipeline.problem() or ""
    assert problem.startswith("routing-responses:")
    assert "cannot read the response" in problem
