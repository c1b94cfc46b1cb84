"""Stage 3 in batches, partition-explicit table writes and the bucket-member table: real
faust app (memory store), real classifier and duplicate detector; sends are recorded."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from phoihop_routing.agents import INTERNAL_HEADER, Incoming
from phoihop_routing.app import Routing, create_app
from phoihop_routing.duplicates import CaseSignature
from phoihop_routing.settings import Settings
from phoihop_routing.tables import (
    SignatureCodec,
    compact_signature,
    member_key,
    split_member_key,
)
from phoihop_schemas import codec
from phoihop_schemas.events import Channel, Kind, Received, Response, ResponseAction
from phoihop_schemas.topics import CANONICAL, INBOUND_RESPONSES, ROUTING_COMMANDS

ROAD = "Cử tri thôn 3 đề nghị sửa chữa đường liên thôn 3 - thôn 4 bị xuống cấp nghiêm trọng"


class HeldOutbox:
    """Records sends; their acknowledgements stay pending until `release()`."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.pending: list[asyncio.Future[None]] = []

    async def send(self, *, topic: str, key: bytes | None, value: bytes, headers: Any = ()) -> Any:
        self.sent.append((topic, key, value, list(headers)))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        return fut

    def release(self) -> None:
        for fut in self.pending:
            if not fut.done():
                fut.set_result(None)

    def events(self, name: str) -> list[Any]:
        return [
            codec.decode(value=v, headers=h, key=k).data
            for t, k, v, h in self.sent
            if t == CANONICAL[name].name
        ]


@pytest.fixture
def routing(tmp_path: Path) -> Routing:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path / "routing")
    r = create_app(settings)
    r.app.finalize()
    r.app.flow_control.resume()
    return r


def _received() -> Received:
    return Received(
        recommendation_id=str(uuid.uuid4()),
        sequence=1,
        occurred_at=datetime.now(UTC),
        kind=Kind.KIEN_NGHI,
        channel=Channel.TIEP_XUC_CU_TRI,
        locality="xa-an-binh",
        text=ROAD,
        submitted_by="UBMTTQ_TINH",
    )


def _route(rec: Received, *, partition: int) -> Incoming:
    payload = {
        "op": "route",
        "bucket": "local:xa-an-binh",
        "received": rec.model_dump(mode="json"),
        "classification": {
            "category": "GIAO_THONG",
            "level": "xa",
            "agency": "UBND_XA_XA_AN_BINH",
            "decision": {"rule": "test", "version": "1", "evidence": [], "confidence": 0.9},
        },
    }
    return Incoming(
        topic=ROUTING_COMMANDS.name,
        partition=partition,
        offset=0,
        key=rec.recommendation_id.encode(),
        value=json.dumps(payload).encode(),
        headers=((INTERNAL_HEADER, b"1"),),
    )


def _response(rec_id: str, agency: str, action: ResponseAction, *, partition: int) -> Incoming:
    enc = codec.encode(
        Response(
            response_id=str(uuid.uuid4()),
            recommendation_id=rec_id,
            agency=agency,
            action=action,
            responded_at=datetime.now(UTC),
            text="Đã sửa" if action == ResponseAction.ANSWER else None,
        ),
        source="/test",
    )
    return Incoming(
        topic=INBOUND_RESPONSES.name,
        partition=partition,
        offset=1,
        key=enc.key,
        value=enc.value,
        headers=tuple(enc.headers),
    )


async def test_a_batch_numbers_one_cases_commands_in_order_and_writes_after_the_acks(
    routing: Routing,
) -> None:
    r = routing
    outbox = HeldOutbox()
    r.pipeline.outbox = outbox
    rec = _received()
    agency = "UBND_XA_XA_AN_BINH"
    batch = [
        _route(rec, partition=3),
        _response(rec.recommendation_id, agency, ResponseAction.ACCEPT, partition=3),
        _response(rec.recommendation_id, agency, ResponseAction.ANSWER, partition=3),
    ]
    task = asyncio.create_task(r.pipeline.on_cases(batch))
    await asyncio.sleep(0.05)
    # every event of the batch is sent, with consecutive sequences, but nothing is written
    # while the broker has not acknowledged them
    assert [e.sequence for e in outbox.events("assigned")] == [2]
    assert [e.sequence for e in outbox.events("accepted")] == [3]
    assert [e.sequence for e in outbox.events("answered")] == [4]
    assert not task.done()
    assert r.cases.get(rec.recommendation_id) is None
    outbox.release()
    await task
    state = r.cases[rec.recommendation_id]
    assert (state["sequence"], state["status"], state["partition"]) == (4, "answered", 3)
    assert r.cases.data._key_partition.get(rec.recommendation_id) in (None, 3)


async def test_a_crash_before_the_acks_replays_the_same_event_ids(routing: Routing) -> None:
    r = routing
    first = HeldOutbox()
    r.pipeline.outbox = first
    rec = _received()
    batch = [_route(rec, partition=0)]
    task = asyncio.create_task(r.pipeline.on_cases(batch))
    await asyncio.sleep(0.05)
    task.cancel()  # the worker dies while waiting for the acks
    with pytest.raises(asyncio.CancelledError):
        await task
    assert r.cases.get(rec.recommendation_id) is None
    again = HeldOutbox()
    r.pipeline.outbox = again
    again_task = asyncio.create_task(r.pipeline.on_cases(batch))
    await asyncio.sleep(0.05)
    again.release()
    await again_task
    ids = [
        codec.decode(value=v, headers=h, key=k).id
        for out in (first, again)
        for t, k, v, h in out.sent
        if t == CANONICAL["assigned"].name
    ]
    assert len(ids) == 2
    assert ids[0] == ids[1]
    assert r.cases[rec.recommendation_id]["sequence"] == 2


async def test_table_writes_go_to_the_named_changelog_partition(routing: Routing) -> None:
    r = routing
    sent: list[tuple[Any, int | None]] = []

    def record(partition: int | None, key: Any, value: Any, *args: Any, **kw: Any) -> Any:
        sent.append((key, partition))

        class _Fut:
            class message:  # noqa: N801 - mimics faust's FutureMessage.message
                pass

        fut = _Fut()
        fut.message.partition = partition  # type: ignore[attr-defined]
        return fut

    r.cases.send_changelog = record  # type: ignore[method-assign]

    # no faust event is current here: the partition comes from the call alone
    r.cases.put("a", {"x": 1}, partition=2)
    r.cases.put("b", {"x": 2}, partition=1)
    r.cases.remove("a", partition=2)
    r.cases.remove("missing", partition=2)  # absent: nothing logged
    assert sent == [("a", 2), ("b", 1), ("a", 2)]
    assert dict(r.cases.items()) == {"b": {"x": 2}}
    with pytest.raises(TypeError):
        r.cases["c"] = {"x": 3}  # a plain write still needs faust's current event


def test_signature_codec_round_trip_interns_strings() -> None:
    sig = CaseSignature(
        recommendation_id="r1",
        locality="xa-an-binh",
        bucket="local:xa-an-binh",
        words=("duong", "lien"),
        identifiers=("hamlet:3",),
    )
    codec_ = SignatureCodec()
    back = codec_.loads(codec_.dumps(sig))
    assert back == sig
    other = compact_signature(sig.to_dict())
    assert back.words[0] is other.words[0]  # interned: one copy for every open case
    assert split_member_key(member_key("local:xa-an-binh", "r1")) == ("local:xa-an-binh", "r1")


async def test_bucket_index_is_rebuilt_from_the_member_table(routing: Routing) -> None:
    r = routing
    p = r.pipeline
    sig = CaseSignature(recommendation_id="r1", locality="xa-an-binh", bucket="local:xa-an-binh")

    r.buckets.put(member_key(sig.bucket, "r1"), sig, partition=0)
    assert p.bucket_members(sig.bucket) == []  # written behind the index's back
    p.rebuild_buckets(generation=7)
    assert p.bucket_members(sig.bucket) == [sig]
    assert p.bucket_generation == 7


async def test_each_app_fetches_with_its_own_settings(tmp_path: Path) -> None:
    """Two routing apps in one process: each worker consumer waits and sizes as its app says."""
    made = []
    for name, wait, least in (("a", 77, 3), ("b", 500, 1)):
        settings = Settings(
            kafka_bootstrap="127.0.0.1:1",
            data_dir=tmp_path / name,
            kafka_fetch_max_wait_ms=wait,
            kafka_fetch_min_bytes=least,
        )
        made.append(create_app(settings))
    seen = []
    for r in made:
        consumer = r.app.consumer._thread._create_worker_consumer(r.app.transport)
        seen.append((consumer._fetch_max_wait_ms, consumer._fetch_min_bytes))
        await consumer.stop()
    assert seen == [(77, 3), (500, 1)]
