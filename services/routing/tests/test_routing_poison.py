"""One record never stalls an agent: each poison is dead-lettered once, alone, with its reason,
and a normal record right after it is processed. Real faust app (memory store), real
classifier; sends go to an outbox that behaves like aiokafka's producer where it matters
(it refuses a value over 1 MiB) and can be told to fail."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError

from phoihop_routing import agents
from phoihop_routing.agents import STAGE_CASES, Incoming
from phoihop_routing.app import Routing
from phoihop_schemas import codec
from phoihop_schemas.events import Received, ResponseAction
from phoihop_schemas.topics import (
    CANONICAL,
    DEAD_LETTER,
    ROUTING_COMMANDS,
    ROUTING_DEDUP,
)
from services.routing.tests.routing_fakes import (
    ROAD,
    DeadActor,
    FaultyOutbox,
    make_routing,
    once,
    received,
    response,
    route,
    sample,
)

SCHOOL = "Cử tri đề nghị xây thêm phòng học cho trường tiểu học xã An Bình vì thiếu phòng"


@pytest.fixture
def routing(tmp_path: Path) -> tuple[Routing, FaultyOutbox]:
    return make_routing(tmp_path)


async def to_received(r: Routing, *records: tuple[bytes | None, bytes, list[Any]]) -> None:
    async with r.received_agent.test_context() as ctx:
        for key, value, headers in records:
            await ctx.put(value=value, key=key, headers=headers)


async def to_dedup(r: Routing, outbox: FaultyOutbox) -> None:
    async with r.dedup_agent.test_context() as ctx:
        for s in outbox.take(ROUTING_DEDUP.name):
            await ctx.put(value=s.value, key=s.key, headers=s.headers)


async def to_cases(r: Routing, *records: tuple[bytes | None, bytes, list[Any]]) -> None:
    ctx = r.case_agent.test_context()
    ctx.original_channel = r.app.topic(ROUTING_COMMANDS.name)
    async with ctx:
        for key, value, headers in records:
            await ctx.put(value=value, key=key, headers=headers)


def enc(rec: Received) -> tuple[bytes | None, bytes, list[Any]]:
    e = codec.encode(rec, source="/phoihop/ingest")
    return e.key, e.value, list(e.headers)


async def assign(r: Routing, outbox: FaultyOutbox, *recs: Received) -> list[Any]:
    """received -> dedup -> cases for good records already put on stage 1; the assigned."""
    await to_received(r, *(enc(rec) for rec in recs))
    await to_dedup(r, outbox)
    await to_cases(r, *((s.key, s.value, s.headers) for s in outbox.take(ROUTING_COMMANDS.name)))
    return outbox.events("assigned")


def reasons(outbox: FaultyOutbox) -> list[str]:
    return [(s.header("dlq_reason") or b"").decode() for s in outbox.take(DEAD_LETTER.name)]


# ---------------------------------------------------------------- inputs


async def test_a_2_mb_response_is_dead_lettered_summarised_and_the_next_is_processed(
    routing: Any,
) -> None:
    r, outbox = routing
    rec = received()
    (assigned,) = await assign(r, outbox, rec)
    good = response(rec.recommendation_id, ResponseAction.ACCEPT, agency=assigned.agency)
    huge = b'{"text": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    await to_cases(r, (good.key, huge, list(good.headers)), (good.key, good.value, good.headers))
    (dead,) = outbox.take(DEAD_LETTER.name)
    assert dead.header("dlq_reason") == b"oversized"
    assert dead.header("dlq_value_truncated") == b"1"
    assert dead.header("dlq_topic") == ROUTING_COMMANDS.name.encode()
    assert dead.key == good.key
    summary = json.loads(dead.value)
    assert (summary["truncated"], summary["size"]) == (True, len(huge))
    assert len(dead.value) < 4096
    (accepted,) = outbox.events("accepted")
    assert accepted.sequence == 3


async def test_a_lone_surrogate_in_received_text_is_dead_lettered_and_the_next_is_assigned(
    routing: Any,
) -> None:
    r, outbox = routing
    bad = received("abc MARK def")
    key, value, headers = enc(bad)
    value = value.replace(b"MARK", b"\\ud800")  # valid JSON, not encodable text
    good = received()
    await to_received(r, (key, value, headers), enc(good))
    (reason,) = reasons(outbox)
    # refused by the text policy when decoding, else by the agent when it encodes the text
    assert reason in {"schema_violation", "invalid_text"}
    await to_dedup(r, outbox)
    await to_cases(r, *((s.key, s.value, s.headers) for s in outbox.take(ROUTING_COMMANDS.name)))
    (assigned,) = outbox.events("assigned")
    assert assigned.recommendation_id == good.recommendation_id


async def test_text_that_cannot_be_encoded_in_an_internal_message_is_invalid_text(
    routing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, outbox = routing
    real = r.pipeline.classifier.classify

    def classify(*, text: str, **kw: Any) -> Any:
        c = real(text=text, **kw)
        # what `internal()` met before the text policy: a lone surrogate to encode
        return c if "MARK" not in text else agents.dataclasses.replace(c, agency="\ud800")

    monkeypatch.setattr(r.pipeline.classifier, "classify", classify)
    bad, good = received(f"{ROAD} MARK"), received(SCHOOL)
    assert await assign(r, outbox, bad, good) != []
    (dead,) = outbox.take(DEAD_LETTER.name)
    assert dead.header("dlq_reason") == b"invalid_text"
    assert b"UnicodeEncodeError" in (dead.header("dlq_detail") or b"")
    assert dead.key == bad.recommendation_id.encode()
    assert sample("phoihop_routing_agent_errors_total", stage="received") >= 1


async def test_a_classifier_that_raises_dead_letters_that_record_only(
    routing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, outbox = routing
    real = r.pipeline.classifier.classify

    def classify(*, text: str, **kw: Any) -> Any:
        if "MARK" in text:
            raise RuntimeError("classifier bug")
        return real(text=text, **kw)

    monkeypatch.setattr(r.pipeline.classifier, "classify", classify)
    bad, good = received(f"{ROAD} MARK"), received(SCHOOL)
    (assigned,) = await assign(r, outbox, bad, good)
    assert assigned.recommendation_id == good.recommendation_id
    (dead,) = outbox.take(DEAD_LETTER.name)
    assert dead.header("dlq_reason") == b"classification_failed"
    assert b"classifier bug" in (dead.header("dlq_detail") or b"")


async def test_a_record_whose_send_fails_for_good_is_dead_lettered_with_the_exception(
    routing: Any,
) -> None:
    r, outbox = routing
    bad, good = received(f"{ROAD} MARK"), received(SCHOOL)
    outbox.send_fault = once(RuntimeError("boom"), topic=ROUTING_DEDUP.name, marker=b"MARK")
    (assigned,) = await assign(r, outbox, bad, good)
    assert assigned.recommendation_id == good.recommendation_id
    (dead,) = outbox.take(DEAD_LETTER.name)
    assert dead.header("dlq_reason") == b"internal_error"
    assert b"RuntimeError('boom')" in (dead.header("dlq_detail") or b"")


async def test_broker_trouble_on_one_send_is_retried_in_process_without_a_dead_letter(
    routing: Any,
) -> None:
    r, outbox = routing
    before = sample(
        "phoihop_routing_consumer_retries_total", consumer="routing-received", kind="record"
    )
    outbox.send_fault = once(KafkaConnectionError("down"), topic=ROUTING_DEDUP.name)
    rec = received()
    (assigned,) = await assign(r, outbox, rec)
    assert assigned.recommendation_id == rec.recommendation_id
    assert outbox.take(DEAD_LETTER.name) == []
    after = sample(
        "phoihop_routing_consumer_retries_total", consumer="routing-received", kind="record"
    )
    assert after == before + 1


async def test_non_utf8_key_and_headers_are_dead_lettered_and_the_next_is_processed(
    routing: Any,
) -> None:
    r, outbox = routing
    key, value, headers = enc(received())
    broken_headers = [(n, b"\xff\xfe" if n == "ce_source" else v) for n, v in headers]
    good = received()
    await to_received(r, (b"\xff\xfe", value, headers), (key, value, broken_headers), enc(good))
    assert reasons(outbox) == ["bad_envelope", "bad_envelope"]
    (assigned,) = await assign(r, outbox)  # the good one's candidate is already waiting
    assert assigned.recommendation_id == good.recommendation_id
    # the same on the case agent: a response with a key that is not UTF-8
    answer = response(good.recommendation_id, ResponseAction.ACCEPT)
    await to_cases(r, (b"\xff\xfe", answer.value, answer.headers))
    await to_cases(r, (answer.key, answer.value, answer.headers))
    (dead,) = outbox.take(DEAD_LETTER.name)
    assert dead.key == b"\xff\xfe"
    assert dead.header("dlq_reason") in (b"bad_envelope", b"key_mismatch")
    assert [e.sequence for e in outbox.events("accepted")] == [3]


async def test_a_dead_letter_that_cannot_be_sent_is_counted_and_the_agent_goes_on(
    routing: Any,
) -> None:
    r, outbox = routing
    before = sample("phoihop_routing_dead_letter_failures_total", topic="phoihop.inbound.x")
    outbox.send_fault = lambda topic, _v: (
        RuntimeError("dlq down") if topic == DEAD_LETTER.name else None
    )
    poison = Incoming("phoihop.inbound.x", 0, 5, b"k", b"not json", ())
    await r.pipeline.on_received(poison)  # does not raise
    after = sample("phoihop_routing_dead_letter_failures_total", topic="phoihop.inbound.x")
    assert after == before + 1
    outbox.send_fault = None
    rec = received()
    (assigned,) = await assign(r, outbox, rec)
    assert assigned.recommendation_id == rec.recommendation_id


# ---------------------------------------------------------------- stage 3 batches


async def test_a_record_whose_apply_raises_is_dead_lettered_and_its_neighbours_written(
    routing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, outbox = routing
    a, bad, c = received(), received(), received()
    real = agents.apply

    def apply(state: Any, command: Any, **kw: Any) -> Any:
        if (
            getattr(getattr(command, "received", None), "recommendation_id", "")
            == bad.recommendation_id
        ):
            raise ZeroDivisionError("bug in the state machine")
        return real(state, command, **kw)

    monkeypatch.setattr(agents, "apply", apply)
    await r.pipeline.on_cases([route(a, offset=1), route(bad, offset=2), route(c, offset=3)])
    (dead,) = outbox.take(DEAD_LETTER.name)
    assert (dead.header("dlq_reason"), dead.header("dlq_offset")) == (b"internal_error", b"2")
    assert b"ZeroDivisionError" in (dead.header("dlq_detail") or b"")
    assert {e.recommendation_id for e in outbox.events("assigned")} == {
        a.recommendation_id,
        c.recommendation_id,
    }
    assert r.cases[a.recommendation_id]["sequence"] == 2
    assert r.cases[c.recommendation_id]["sequence"] == 2
    assert r.cases.get(bad.recommendation_id) is None


async def test_an_ack_refused_for_good_dead_letters_its_record_and_the_batch_is_rerun(
    routing: Any,
) -> None:
    r, outbox = routing
    a, bad, c = received(), received(), received()
    outbox.ack_fault = once(
        MessageSizeTooLargeError("too large for the topic"),
        topic=CANONICAL["assigned"].name,
        marker=bad.recommendation_id.encode(),
    )
    await r.pipeline.on_cases([route(a, offset=1), route(bad, offset=2), route(c, offset=3)])
    (dead,) = outbox.take(DEAD_LETTER.name)
    assert (dead.header("dlq_reason"), dead.header("dlq_offset")) == (b"produce_failed", b"2")
    assigned = outbox.take(CANONICAL["assigned"].name)
    ids = {codec.decode(value=s.value, headers=s.headers, key=s.key).id for s in assigned}
    assert len(assigned) == 4  # a and c sent twice (the batch ran again) ...
    assert len(ids) == 2  # ... with the same event ids
    assert r.cases[a.recommendation_id]["sequence"] == 2
    assert r.cases[c.recommendation_id]["sequence"] == 2
    assert r.cases.get(bad.recommendation_id) is None


async def test_acks_that_time_out_rerun_the_whole_batch_without_dead_letters(
    routing: Any,
) -> None:
    r, outbox = routing
    a, b = received(), received()
    outbox.ack_fault = once(KafkaTimeoutError(), topic=CANONICAL["assigned"].name)
    await r.pipeline.on_cases([route(a), route(b)])
    assert outbox.take(DEAD_LETTER.name) == []
    assert len({e.recommendation_id for e in outbox.events("assigned")}) == 2
    assert r.cases[a.recommendation_id]["sequence"] == 2
    assert r.cases[b.recommendation_id]["sequence"] == 2
    assert r.pipeline.health[STAGE_CASES].retrying_since is None
    assert r.pipeline.problem() is None


# ---------------------------------------------------------------- readiness


async def test_readiness_reports_a_stuck_stage_a_crash_and_a_dead_agent(routing: Any) -> None:
    r, _ = routing
    assert r.problem() is None
    health = r.pipeline.health[STAGE_CASES]
    health.retrying_since = asyncio.get_running_loop().time() - 3600  # monotonic clock
    health.last_error = "KafkaTimeoutError: no ack"
    assert (r.problem() or "").startswith("routing-cases: retrying one batch")
    health.retrying_since = None
    r.pipeline.record_crash(STAGE_CASES, RuntimeError("escaped"))
    problem = r.problem() or ""
    assert "crashed" in problem
    assert "escaped" in problem
    health.crashed_at = None
    assert r.problem() is None
    dead = DeadActor()
    r.dedup_agent._actors.add(dead)  # a WeakSet: `dead` stays referenced below
    try:
        assert (r.problem() or "").startswith("agent routing-dedup crashed")
    finally:
        r.dedup_agent._actors.discard(dead)


async def test_an_exception_escaping_an_agent_body_is_recorded(
    routing: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    r, _ = routing

    def broken(_message: Any) -> Incoming:
        raise RuntimeError("cannot read the message")

    monkeypatch.setattr(agents.Incoming, "of", staticmethod(broken))
    with pytest.raises(RuntimeError):
        await to_received(r, enc(received()))
    assert "cannot read the message" in (r.pipeline.problem() or "")
