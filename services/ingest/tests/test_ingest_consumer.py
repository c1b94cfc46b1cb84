"""The inbound submissions topic: valid records become `received`, poison is dead-lettered."""

from __future__ import annotations

import json

import httpx
from aiokafka import AIOKafkaProducer
from ingest_testkit import ReadTopic

from phoihop_ingest.idempotency import recommendation_id
from phoihop_schemas.codec import decode, encode
from phoihop_schemas.events import InboundSubmission, Received, Reporter
from phoihop_schemas.topics import CANONICAL, DEAD_LETTER, INBOUND_SUBMISSIONS


def submission(**changes: object) -> InboundSubmission:
    """A valid inbound submission."""
    fields: dict[str, object] = {
        "kind": "phan_anh",
        "channel": "cong_thong_tin",
        "locality": "phuong-bac-son",
        "text": "Người dân phản ánh đèn chiếu sáng đường Nguyễn Trãi hỏng nhiều ngày.",
        "submitted_by": "UBMTTQ_TINH",
        "idempotency_key": "portal-42",
    }
    fields.update(changes)
    return InboundSubmission.model_validate(fields)


async def test_poison_goes_to_dead_letter_and_valid_records_flow(
    ingest: httpx.AsyncClient, kafka_bootstrap: str, read_topic: ReadTopic
) -> None:
    good = encode(submission(), source="/agency/portal")
    again = encode(submission(), source="/agency/portal")  # redelivered: another event id
    headers = good.headers
    with_type = [(k, v) for k, v in headers if k != "ce_type"]
    schema_bad = json.loads(good.value) | {"kind": "kien_nghi_x"}
    poison: list[tuple[bytes, list[tuple[str, bytes]], str]] = [
        (b"{not json", headers, "bad_json"),
        (good.value, [*with_type, ("ce_type", b"vn.example.unknown.v1")], "unknown_type"),
        (json.dumps(schema_bad).encode(), headers, "schema_violation"),
        (
            encode(submission(locality="xa-khong-co"), source="/a").value,
            headers,
            "unknown_locality",
        ),
        (encode(submission(submitted_by="NOBODY"), source="/a").value, headers, "unknown_agency"),
        (encode(submission(kind="to_cao"), source="/a").value, headers, "reporter_required"),
        (b"{" + b" " * (300 * 1024) + b"}", headers, "oversized"),
        (good.value, [], "not_cloudevent"),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=2**21)
    await producer.start()
    try:
        for value, hdrs, _reason in poison:
            await producer.send_and_wait(INBOUND_SUBMISSIONS.name, value=value, headers=hdrs)
        await producer.send_and_wait(
            INBOUND_SUBMISSIONS.name, value=good.value, headers=good.headers
        )
        await producer.send_and_wait(
            INBOUND_SUBMISSIONS.name, value=again.value, headers=again.headers
        )
        denounced = encode(
            submission(
                kind="to_cao",
                idempotency_key=None,
                reporter=Reporter(name="Lê Văn C", phone="0987654321"),
            ),
            source="/a",
        )
        await producer.send_and_wait(
            INBOUND_SUBMISSIONS.name, value=denounced.value, headers=denounced.headers
        )
    finally:
        await producer.stop()

    dead = await read_topic(DEAD_LETTER.name, count=len(poison))
    reasons = sorted(dict(r.headers)["dlq_reason"].decode() for r in dead)
    assert reasons == sorted(reason for _v, _h, reason in poison)
    for record in dead:
        dlq = dict(record.headers)
        assert dlq["dlq_topic"] == INBOUND_SUBMISSIONS.name.encode()
        assert dlq["dlq_service"] == b"ingest"

    received = await read_topic(CANONICAL["received"].name, count=2)
    assert len(received) == 2  # the redelivered copy made no second case
    events = [decode(value=r.value, headers=r.headers, key=r.key).data for r in received]
    assert all(isinstance(e, Received) and e.sequence == 1 for e in events)
    ids = {e.recommendation_id for e in events if isinstance(e, Received)}
    assert recommendation_id(agency="UBMTTQ_TINH", key="portal-42") in ids
    # the agent kept running after the poison: readiness and metrics still answer
    assert (await ingest.get("/readyz")).status_code == 200
    metrics = (await ingest.get("/metrics")).text
    assert 'phoihop_ingest_dead_lettered_total{reason="bad_json"' in metrics
