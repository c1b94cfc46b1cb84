"""The faust agents with `agent.test_context()` and the memory store: real classifier, real
duplicate detector, real tables; what the agents send is recorded instead of produced."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from phoihop_routing.agents import INTERNAL_HEADER
from phoihop_routing.app import Routing, create_app, worker_ready
from phoihop_routing.settings import Settings
from phoihop_schemas import codec
from phoihop_schemas.events import (
    Answered,
    Assigned,
    DuplicateSuggested,
    Escalated,
    Merged,
    Received,
    Response,
    ResponseAction,
)
from phoihop_schemas.topics import (
    CANONICAL,
    DEAD_LETTER,
    ROUTING_COMMANDS,
    ROUTING_DEDUP,
    ROUTING_TIMERS,
)
from services.routing.tests.routing_fakes import FaultyOutbox, Sent, received

# the same commune's roads, another concern: ranked as a suggestion (below the merge bar)
ROAD_NEARBY = "Đề nghị bố trí kinh phí bê tông hóa các tuyến ngõ xóm còn lại là đường đất"
ROAD_AGAIN = "Cu tri de nghi sua chua duong lien thon 3 - thon 4 vi da xuong cap, di lai kho khan"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def routing(tmp_path: Path) -> tuple[Routing, FaultyOutbox, Clock]:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1", store="memory://", data_dir=tmp_path / "routing"
    )
    clock = Clock()
    r = create_app(settings, clock=clock)
    r.app.finalize()
    r.app.flow_control.resume()
    outbox = FaultyOutbox()
    r.pipeline.outbox = outbox
    return r, outbox, clock


def response(rec_id: str, agency: str, action: ResponseAction, **kw: Any) -> codec.Record:
    model = Response(
        response_id=str(uuid.uuid4()),
        recommendation_id=rec_id,
        agency=agency,
        action=action,
        responded_at=datetime.now(UTC),
        **kw,
    )
    return codec.encode(model, source="/test")


async def put(ctx: Any, *, key: bytes | None, value: bytes, headers: Any) -> None:
    await ctx.put(value=value, key=key, headers=list(headers))


async def run_through(r: Routing, outbox: FaultyOutbox, rec: Received) -> list[Sent]:
    """received -> dedup -> case agent; returns the canonical events sent."""
    enc = codec.encode(rec, source="/phoihop/ingest")
    async with r.received_agent.test_context() as ctx:
        await put(ctx, key=enc.key, value=enc.value, headers=enc.headers)
    (candidate,) = outbox.take(ROUTING_DEDUP.name)
    async with r.dedup_agent.test_context() as ctx:
        await put(ctx, key=candidate.key, value=candidate.value, headers=candidate.headers)
    (verdict,) = outbox.take(ROUTING_COMMANDS.name)
    await to_case(r, verdict.key, verdict.value, verdict.headers)
    return [s for s in outbox.sent if s.topic.startswith(CANONICAL["received"].name[:-8])]


async def to_case(r: Routing, key: bytes | None, value: bytes, headers: Any) -> None:
    ctx = r.case_agent.test_context()
    # the case agent reads three topics; test messages are stamped with one of them
    ctx.original_channel = r.app.topic(ROUTING_COMMANDS.name)
    async with ctx:
        await put(ctx, key=key, value=value, headers=headers)


async def test_received_is_assigned_then_answered(routing: Any) -> None:
    r, outbox, _ = routing
    rec = received()
    await run_through(r, outbox, rec)
    (assigned,) = outbox.events("assigned")
    assert isinstance(assigned, Assigned)
    assert assigned.recommendation_id == rec.recommendation_id
    assert assigned.sequence == 2
    assert (assigned.agency, assigned.category, assigned.level) == (
        "UBND_XA_XA_AN_BINH",
        "GIAO_THONG",
        "xa",
    )
    assert assigned.decision.rule
    assert assigned.decision.version
    assert assigned.decision.evidence
    assert assigned.deadline > assigned.occurred_at
    assert r.cases[rec.recommendation_id]["sequence"] == 2

    # a second `received` for the same id is ignored
    await run_through(r, outbox, rec)
    assert outbox.events("assigned") == []

    # another agency's answer is dead-lettered, the assignee's is answered
    bad = response(rec.recommendation_id, "SO_Y_TE", ResponseAction.ANSWER, text="Không phải")
    await to_case(r, bad.key, bad.value, bad.headers)
    (dlq,) = outbox.take(DEAD_LETTER.name)
    assert dlq.header("dlq_reason") == b"not_assignee"
    good = response(rec.recommendation_id, assigned.agency, ResponseAction.ANSWER, text="Đã sửa")
    await to_case(r, good.key, good.value, good.headers)
    (answered,) = outbox.events("answered")
    assert isinstance(answered, Answered)
    assert (answered.sequence, answered.on_time, answered.recipients) == (3, True, ("UBMTTQ_TINH",))


async def test_duplicate_is_merged_and_its_source_gets_the_answer(routing: Any) -> None:
    r, outbox, _ = routing
    first = received()
    await run_through(r, outbox, first)
    (assigned,) = outbox.events("assigned")
    second = received(ROAD_AGAIN, submitted_by="DOAN_DBQH")
    await run_through(r, outbox, second)
    (merged,) = outbox.events("merged")
    assert isinstance(merged, Merged)
    assert (merged.recommendation_id, merged.duplicate_of, merged.sequence) == (
        second.recommendation_id,
        first.recommendation_id,
        2,
    )
    (link,) = outbox.take(ROUTING_COMMANDS.name)
    assert link.key == first.recommendation_id.encode()
    await to_case(r, link.key, link.value, link.headers)
    answer = response(first.recommendation_id, assigned.agency, ResponseAction.ANSWER, text="Xong")
    await to_case(r, answer.key, answer.value, answer.headers)
    (answered,) = outbox.events("answered")
    assert answered.recipients == ("UBMTTQ_TINH", "DOAN_DBQH")


async def test_near_duplicate_is_assigned_then_suggested(routing: Any) -> None:
    r, outbox, _ = routing
    first = received()
    await run_through(r, outbox, first)
    assert len(outbox.events("assigned")) == 1
    assert outbox.events("duplicate_suggested") == []
    second = received(ROAD_NEARBY, submitted_by="DOAN_DBQH")
    await run_through(r, outbox, second)
    assert outbox.events("merged") == []
    (assigned,) = outbox.events("assigned")
    (suggested,) = outbox.events("duplicate_suggested")
    assert isinstance(suggested, DuplicateSuggested)
    assert suggested.recommendation_id == second.recommendation_id
    assert (assigned.sequence, suggested.sequence) == (2, 3)
    assert suggested.agency == assigned.agency
    assert suggested.recipients == (assigned.agency, "TT_HDND")
    (candidate,) = suggested.candidates
    assert candidate.recommendation_id == first.recommendation_id
    assert 0.15 <= candidate.similarity < 0.3
    assert any("suggested" in e for e in candidate.evidence)
    assert suggested.decision.rule == "duplicates.rank_candidates"
    assert r.cases[second.recommendation_id]["sequence"] == 3
    # not merged: the second case is an open member of the bucket too
    bucket = r.cases[second.recommendation_id]["bucket"]
    members = {m.recommendation_id for m in r.pipeline.bucket_members(bucket)}
    assert members == {first.recommendation_id, second.recommendation_id}


async def test_closed_case_leaves_its_bucket(routing: Any) -> None:
    r, outbox, _ = routing
    first = received()
    await run_through(r, outbox, first)
    outbox.events("assigned")
    close = response(first.recommendation_id, "TT_HDND", ResponseAction.CLOSE)
    await to_case(r, close.key, close.value, close.headers)
    assert len(outbox.events("closed")) == 1
    (leave,) = outbox.take(ROUTING_DEDUP.name)
    assert json.loads(leave.value)["op"] == "leave"
    async with r.dedup_agent.test_context() as ctx:
        await put(ctx, key=leave.key, value=leave.value, headers=leave.headers)
    assert r.pipeline.bucket_members(leave.key.decode()) == []
    assert len(r.buckets) == 0  # the member's table entry is gone too
    # the same concern again is a new case now
    await run_through(r, outbox, received(ROAD_AGAIN))
    assert len(outbox.events("assigned")) == 1


async def test_poison_records_are_dead_lettered(routing: Any) -> None:
    r, outbox, _ = routing
    await to_case(r, b"k", b"\xff\x00 not an event", [("ce_type", b"x")])
    async with r.received_agent.test_context() as ctx:
        await put(ctx, key=b"k", value=b"{}", headers=[])
    reasons = [s.header("dlq_reason") for s in outbox.take(DEAD_LETTER.name)]
    assert reasons == [b"not_cloudevent", b"not_cloudevent"]
    await to_case(r, b"k", b"[1]", [(INTERNAL_HEADER, b"1")])
    unknown = response(str(uuid.uuid4()), "SO_Y_TE", ResponseAction.ACCEPT)
    await to_case(r, unknown.key, unknown.value, unknown.headers)
    reasons = [s.header("dlq_reason") for s in outbox.take(DEAD_LETTER.name)]
    assert reasons == [b"bad_internal_message", b"unknown_recommendation"]


async def test_timer_scan_sends_ticks_and_the_case_agent_escalates(routing: Any) -> None:
    r, outbox, clock = routing
    rec = received()
    await run_through(r, outbox, rec)
    (assigned,) = outbox.events("assigned")
    accept = response(rec.recommendation_id, assigned.agency, ResponseAction.ACCEPT)
    await to_case(r, accept.key, accept.value, accept.headers)
    assert len(outbox.events("accepted")) == 1
    assert await r.pipeline.scan_due() == 0
    clock.now = assigned.deadline + timedelta(seconds=1)
    assert await r.pipeline.scan_due() == 1
    assert await r.pipeline.scan_due() == 0  # not re-sent while the tick is in flight
    (tick,) = outbox.take(ROUTING_TIMERS.name)
    await to_case(r, tick.key, tick.value, tick.headers)
    (escalated,) = outbox.events("escalated")
    assert isinstance(escalated, Escalated)
    assert (escalated.level, escalated.sequence, escalated.stage) == (1, 4, "answer")
    assert escalated.recipients == ("UBND_TINH", "TT_HDND", "UBMTTQ_TINH")
    # the same tick again (a replay) does nothing
    await to_case(r, tick.key, tick.value, tick.headers)
    assert outbox.events("escalated") == []


async def test_low_confidence_goes_to_triage_whose_classification_reroutes(
    tmp_path: Path,
) -> None:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",
        data_dir=tmp_path / "routing",
        triage_confidence=0.99,
    )
    r = create_app(settings)
    r.app.finalize()
    r.app.flow_control.resume()
    outbox = FaultyOutbox()
    r.pipeline.outbox = outbox
    rec = received()
    await run_through(r, outbox, rec)
    (triaged,) = outbox.events("assigned")
    assert triaged.agency == "TT_HDND"
    assert triaged.decision.rule == "triage:low_confidence"
    classify = response(
        rec.recommendation_id,
        "TT_HDND",
        ResponseAction.CLASSIFY,
        category="GIAO_THONG",
        level="tinh",
    )
    await to_case(r, classify.key, classify.value, classify.headers)
    (rerouted,) = outbox.events("assigned")
    assert (rerouted.agency, rerouted.sequence, rerouted.hop) == ("SO_XAY_DUNG", 3, 0)
    assert rerouted.decision.rule == "triage:classification"
    leave, join = outbox.take(ROUTING_DEDUP.name)
    assert (json.loads(leave.value)["op"], json.loads(join.value)["op"]) == ("leave", "join")
    for msg in (leave, join):
        async with r.dedup_agent.test_context() as ctx:
            await put(ctx, key=msg.key, value=msg.value, headers=msg.headers)
    members = r.pipeline.bucket_members(join.key.decode())
    assert [m.recommendation_id for m in members] == [rec.recommendation_id]


async def test_duplicate_of_an_answered_case_gets_the_answer_on_its_own_trail(
    routing: Any,
) -> None:
    r, outbox, _ = routing
    first = received()
    await run_through(r, outbox, first)
    (assigned,) = outbox.events("assigned")
    answer = response(first.recommendation_id, assigned.agency, ResponseAction.ANSWER, text="Xong")
    await to_case(r, answer.key, answer.value, answer.headers)
    (answered_first,) = outbox.events("answered")
    assert answered_first.recipients == ("UBMTTQ_TINH",)

    # the answered case is still in its bucket (it may be reopened): the repeat is merged
    second = received(ROAD_AGAIN, submitted_by="DOAN_DBQH")
    await run_through(r, outbox, second)
    (merged,) = outbox.events("merged")
    assert merged.duplicate_of == first.recommendation_id
    (link,) = outbox.take(ROUTING_COMMANDS.name)
    await to_case(r, link.key, link.value, link.headers)
    assert outbox.events("answered") == []  # nothing written into the answered case
    assert r.cases[first.recommendation_id]["sequence"] == answered_first.sequence
    (share,) = outbox.take(ROUTING_COMMANDS.name)
    assert share.key == second.recommendation_id.encode()  # the duplicate's own partition
    assert json.loads(share.value)["op"] == "answer_of"
    await to_case(r, share.key, share.value, share.headers)
    (answered,) = outbox.events("answered")
    assert isinstance(answered, Answered)
    assert answered.recommendation_id == second.recommendation_id
    assert (answered.sequence, answered.text, answered.agency) == (3, "Xong", assigned.agency)
    assert answered.recipients == ("DOAN_DBQH",)
    assert r.cases[second.recommendation_id]["status"] == "answered"
    # replays of the link and of the delivery emit nothing more
    await to_case(r, link.key, link.value, link.headers)
    await to_case(r, share.key, share.value, share.headers)
    assert outbox.events("answered") == []
    assert outbox.take(ROUTING_COMMANDS.name) == []
    assert outbox.take(DEAD_LETTER.name) == []


async def test_case_not_accepted_by_its_accept_deadline_is_escalated(routing: Any) -> None:
    r, outbox, clock = routing
    rec = received()
    await run_through(r, outbox, rec)
    (assigned,) = outbox.events("assigned")
    assert assigned.accept_deadline is not None
    clock.now = assigned.accept_deadline + timedelta(seconds=1)
    assert await r.pipeline.scan_due() == 1
    (tick,) = outbox.take(ROUTING_TIMERS.name)
    await to_case(r, tick.key, tick.value, tick.headers)
    (escalated,) = outbox.events("escalated")
    assert isinstance(escalated, Escalated)
    assert (escalated.stage, escalated.level, escalated.sequence) == ("accept", 1, 3)
    assert escalated.deadline == assigned.accept_deadline
    assert escalated.recipients == ("UBND_TINH", "TT_HDND", "UBMTTQ_TINH")
    # accepted now: no more accept-stage escalations, the next timer is the answer reminder
    accept = response(rec.recommendation_id, assigned.agency, ResponseAction.ACCEPT)
    await to_case(r, accept.key, accept.value, accept.headers)
    assert r.pipeline.due_index[rec.recommendation_id] < assigned.deadline
    assert r.pipeline.due_index[rec.recommendation_id] > clock.now


def fake_app(
    *, rebalancing: bool = False, recovered: bool = True, unassigned: bool = False, tps: Any = ()
) -> Any:
    completed = asyncio.Event()
    if recovered:
        completed.set()

    def assignment() -> set[Any]:
        return set(tps)

    return SimpleNamespace(
        rebalancing=rebalancing,
        unassigned=unassigned,
        tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)),
        consumer=SimpleNamespace(assignment=assignment),
    )


def test_worker_without_partitions_is_ready_once_it_joined_the_group() -> None:
    # more workers than partitions: the group gave this one nothing, recovery completed
    assert worker_ready(fake_app(unassigned=True))
    assert worker_ready(fake_app(tps={("routing-commands", 0)}))
    # not yet joined (no assignment received), rebalancing, or recovering: not ready
    assert not worker_ready(fake_app())
    assert not worker_ready(fake_app(unassigned=True, rebalancing=True))
    assert not worker_ready(fake_app(unassigned=True, recovered=False))
    assert not worker_ready(fake_app(tps={("routing-commands", 0)}, recovered=False))


async def test_readiness_of_the_real_app(routing: Any) -> None:
    r, _, _ = routing
    assert not r.ready()  # consumer not started, recovery not done
    r.app.tables.recovery.completed.set()
    assert not r.ready()  # consumer not started: no assignment yet (no crash either)
    r.app.unassigned = True  # what faust sets when the group assigns no partition
    assert r.ready()
