"""Signed webhook delivery from config subscriptions: retries, 410, dead letters, replay, order."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import create_engine, select
from standardwebhooks import Webhook

from phoihop_common.kafka import KafkaSettings, client_kwargs, producer_kwargs
from phoihop_common.pii import seal_reporter
from phoihop_notify.models import events
from phoihop_notify.store import new_secret
from phoihop_notify.testing import poll, publish
from phoihop_schemas.codec import decode, lifecycle_event_id
from phoihop_schemas.events import (
    Accepted,
    Assigned,
    Decision,
    Kind,
    Level,
    NotificationOutcome,
    Received,
    Reporter,
)
from phoihop_schemas.topics import CANONICAL, DEAD_LETTER
from phoihop_testkit.plugin import fixed_pii_cipher

pytestmark = pytest.mark.integration
NOW = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)


def received(rec: str, *, by: str = "UBMTTQ_TINH", reporter: Reporter | None = None) -> Received:
    return Received(
        recommendation_id=rec,
        sequence=1,
        occurred_at=NOW,
        kind=Kind.TO_CAO,
        channel="don_thu",
        locality="xa-an-binh",
        text="Tố cáo cán bộ xã thu tiền trái quy định khi cấp giấy chứng nhận",
        reporter=seal_reporter(reporter, recommendation_id=rec, cipher=fixed_pii_cipher())
        if reporter
        else None,
        submitted_by=by,
    )


def assigned(rec: str, *, agency: str = "SO_XAY_DUNG", sequence: int = 2) -> Assigned:
    return Assigned(
        recommendation_id=rec,
        sequence=sequence,
        occurred_at=NOW,
        agency=agency,
        category="GIAO_THONG",
        level=Level.TINH,
        kind=Kind.KIEN_NGHI,
        locality="xa-an-binh",
        deadline=NOW + timedelta(days=30),
        decision=Decision(rule="keywords", version="1"),
    )


def accepted(rec: str, *, agency: str = "SO_XAY_DUNG", sequence: int = 3) -> Accepted:
    return Accepted(recommendation_id=rec, sequence=sequence, occurred_at=NOW, agency=agency)


def sub(agency: str, url: str, secret: str, **extra: object) -> dict[str, object]:
    return {"agency": agency, "url": url, "secret": secret, **extra}


async def outcomes(bootstrap: str, *, want: int, within: float = 30) -> list[NotificationOutcome]:
    """Read notification outcome events from the canonical topic."""
    consumer = AIOKafkaConsumer(
        CANONICAL["notification_outcome"].name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **client_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)),
    )
    await consumer.start()
    found: list[NotificationOutcome] = []
    try:
        deadline = asyncio.get_running_loop().time() + within
        while len(found) < want and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    data = decode(value=r.value, headers=r.headers, key=r.key).data
                    assert isinstance(data, NotificationOutcome)
                    found.append(data)
    finally:
        await consumer.stop()
    return found


async def test_signed_delivery_from_config_and_outcome_event(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    secret = new_secret()
    receiver = await receivers()
    write_subscriptions([sub("SO_XAY_DUNG", receiver.url, secret, event_types=["assigned"])])
    rec = str(uuid.uuid4())
    async with run_notify(settings_for()):
        await publish(kafka_bootstrap, received(rec), assigned(rec))
        await poll(lambda: receiver.ok())
        hit = receiver.requests[0]
        event = Webhook(secret).verify(hit.body, hit.headers)
        assert event["id"] == lifecycle_event_id(rec, 2)
        assert event["type"] == "vn.phoihop.recommendation.assigned.v1"
        assert event["specversion"] == "1.0"
        assert event["data"]["agency"] == "SO_XAY_DUNG"
        assert hit.headers["webhook-id"].startswith("msg_")
        found = await outcomes(kafka_bootstrap, want=1)
    assert len(receiver.requests) == 1  # received is not addressed to SO_XAY_DUNG
    assert [(o.outcome, o.attempt, o.status_code) for o in found] == [("delivered", 1, 200)]
    assert found[0].recommendation_id == rec
    assert found[0].agency == "SO_XAY_DUNG"
    assert found[0].latency_ms is not None


async def test_retries_keep_webhook_id_and_deliver_once(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    secret = new_secret()
    receiver = await receivers(script=[(500, {}), (503, {"Retry-After": "0"}), (502, {})])
    write_subscriptions([sub("SO_XAY_DUNG", receiver.url, secret)])
    rec = str(uuid.uuid4())
    async with run_notify(settings_for(retry_schedule=(0, 0.2, 0.2, 0.2, 0.2))) as notify:
        await publish(kafka_bootstrap, received(rec), assigned(rec, sequence=2))
        await poll(lambda: receiver.ok())
        # outcome events go out after their attempt is recorded: then the listing shows it
        found = await outcomes(kafka_bootstrap, want=4)
        listing = await notify.client.get(
            "/v1/deliveries",
            params={"status": "delivered"},
            headers=notify.as_agency("SO_XAY_DUNG"),
        )
    assert [r.status for r in receiver.requests] == [500, 503, 502, 200]
    assert len(receiver.ok()) == 1
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for r in receiver.requests:
        Webhook(secret).verify(r.body, r.headers)
    assert listing.json()["items"][0]["attempts"] == 4
    assert [(o.attempt, o.outcome) for o in found] == [
        (1, "retry_scheduled"),
        (2, "retry_scheduled"),
        (3, "retry_scheduled"),
        (4, "delivered"),
    ]
    assert found[0].error == "http_500"
    assert found[0].status_code == 500


async def test_410_disables_the_endpoint(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    receiver = await receivers(script=[(410, {})])
    write_subscriptions([sub("SO_XAY_DUNG", receiver.url, new_secret(), id="so-xd-main")])
    rec = str(uuid.uuid4())
    async with run_notify(settings_for()) as notify:
        await publish(kafka_bootstrap, assigned(rec))
        headers = notify.as_agency("SO_XAY_DUNG")

        async def disabled() -> bool:
            got = await notify.client.get("/v1/subscriptions/so-xd-main", headers=headers)
            return got.json()["enabled"] is False

        await poll(disabled)
        await publish(kafka_bootstrap, accepted(rec))
        await poll(
            lambda: notify.client.get(
                "/v1/deliveries", params={"status": "pending"}, headers=headers
            )
        )
        pending = await poll(_pending_count(notify, headers, want=2))
        assert pending == 2
        assert len(receiver.requests) == 1  # nothing more goes to a disabled endpoint
        found = await outcomes(kafka_bootstrap, want=1)
        assert found[0].outcome == "disabled"
        assert found[0].status_code == 410
        # Re-enabling sends what waited, in order.
        got = await notify.client.patch(
            "/v1/subscriptions/so-xd-main", json={"enabled": True}, headers=headers
        )
        assert got.status_code == 200
        assert got.json()["disabled_reason"] is None
        await poll(lambda: len(receiver.ok()) == 2)
    seqs = [json.loads(r.body)["data"]["sequence"] for r in receiver.ok()]
    assert seqs == [2, 3]


def _pending_count(notify, headers, *, want: int):
    async def check() -> int | None:
        got = await notify.client.get(
            "/v1/deliveries", params={"status": "pending"}, headers=headers
        )
        n = len(got.json()["items"])
        return n if n == want else None

    return check


async def test_exhausted_dead_letter_and_replay(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    secret = new_secret()
    receiver = await receivers(script=[(500, {})] * 6)
    write_subscriptions([sub("SO_XAY_DUNG", receiver.url, secret)])
    rec1, rec2 = str(uuid.uuid4()), str(uuid.uuid4())
    async with run_notify(settings_for(retry_schedule=(0, 0.1, 0.1))) as notify:
        headers = notify.as_agency("SO_XAY_DUNG")
        before = datetime.now(UTC)
        await publish(kafka_bootstrap, assigned(rec1), assigned(rec2))

        async def failed() -> list[dict[str, object]] | None:
            got = await notify.client.get(
                "/v1/deliveries", params={"status": "failed"}, headers=headers
            )
            items = got.json()["items"]
            return items if len(items) == 2 else None

        dead = await poll(failed)
        assert {d["attempts"] for d in dead} == {3}
        assert all(d["last_error"] == "http_500" for d in dead)
        # Another agency sees nothing of it.
        other = await notify.client.get(
            "/v1/deliveries", params={"status": "failed"}, headers=notify.as_agency("SO_Y_TE")
        )
        assert other.json()["items"] == []
        one = next(d for d in dead if d["recommendation_id"] == rec1)
        got = await notify.client.post(f"/v1/deliveries/{one['id']}/replay", headers=headers)
        assert got.status_code == 202
        await poll(lambda: len(receiver.ok()) == 1)
        assert receiver.ok()[0].headers["webhook-id"] == one["id"]
        Webhook(secret).verify(receiver.ok()[0].body, receiver.ok()[0].headers)
        got = await notify.client.post(
            "/v1/deliveries/replay", params={"since": before.isoformat()}, headers=headers
        )
        assert got.json() == {"replayed": 1}
        await poll(lambda: len(receiver.ok()) == 2)
        found = await outcomes(kafka_bootstrap, want=8)
    assert sorted(o.outcome for o in found).count("dead_lettered") == 2
    assert sorted(o.outcome for o in found).count("delivered") == 2
    assert max(o.attempt for o in found) == 4  # replay continues the attempt count


async def test_reporter_identity_only_reaches_the_submitter(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    submitter, supervisor = await receivers(), await receivers()
    s1, s2 = new_secret(), new_secret()
    write_subscriptions(
        [
            sub("UBMTTQ_TINH", submitter.url, s1, event_types=["received"]),
            sub("TT_HDND", supervisor.url, s2, scope="jurisdiction"),
        ]
    )
    rec = str(uuid.uuid4())
    reporter = Reporter(name="Nguyễn Văn A", phone="0912345678", address="Thôn 3, Xã An Bình")
    async with run_notify(settings_for()):
        await publish(kafka_bootstrap, received(rec, reporter=reporter))
        await poll(lambda: submitter.ok() and supervisor.ok())
    mine = Webhook(s1).verify(submitter.ok()[0].body, submitter.ok()[0].headers)
    theirs = Webhook(s2).verify(supervisor.ok()[0].body, supervisor.ok()[0].headers)
    assert mine["data"]["reporter"]["name"] == "Nguyễn Văn A"
    assert theirs["data"]["reporter"] is None
    assert "Nguyễn Văn A" not in supervisor.ok()[0].body.decode("unicode_escape")
    assert "0912345678" not in supervisor.ok()[0].body.decode()
    assert "ciphertext" not in supervisor.ok()[0].body.decode()  # not even encrypted
    # At rest notify keeps the reporter as it came: encrypted.
    engine = create_engine(settings_for().database_url)
    try:
        with engine.connect() as conn:
            stored = " ".join(str(d) for (d,) in conn.execute(select(events.c.data)))
    finally:
        engine.dispose()
    assert "ciphertext" in stored
    assert "Nguy" not in stored
    assert "0912345678" not in stored


async def test_per_endpoint_order_and_idempotent_redelivery(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    receiver = await receivers()
    write_subscriptions([sub("TT_HDND", receiver.url, new_secret(), scope="jurisdiction")])
    rec = str(uuid.uuid4())
    async with run_notify(settings_for(order_hold=60.0)) as notify:
        # Later events of the case arrive first, on other topics; the same event twice.
        await publish(kafka_bootstrap, accepted(rec), accepted(rec))
        headers = notify.as_agency("TT_HDND")
        await poll(_pending_count(notify, headers, want=1))
        await asyncio.sleep(0.5)
        assert receiver.requests == []  # held until sequences 1 and 2 were seen
        await publish(kafka_bootstrap, assigned(rec), received(rec))
        await poll(lambda: len(receiver.ok()) == 3)
        await publish(kafka_bootstrap, assigned(rec))  # redelivered record
        got = await notify.client.get("/v1/deliveries", headers=headers)
        assert len(got.json()["items"]) == 3
    seqs = [json.loads(r.body)["data"]["sequence"] for r in receiver.requests]
    assert seqs == [1, 2, 3]


async def test_undecodable_record_goes_to_dead_letter_topic(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    receiver = await receivers()
    write_subscriptions([sub("SO_XAY_DUNG", receiver.url, new_secret())])
    rec = str(uuid.uuid4())
    async with run_notify(settings_for()):
        producer = AIOKafkaProducer(
            **producer_kwargs(KafkaSettings(kafka_bootstrap=kafka_bootstrap))
        )
        await producer.start()
        await producer.send_and_wait(
            CANONICAL["assigned"].name,
            value=b"{not json",
            key=rec.encode(),
            headers=[("ce_type", b"x"), ("ce_specversion", b"1.0")],
        )
        await producer.stop()
        await publish(kafka_bootstrap, assigned(rec))
        await poll(lambda: receiver.ok())  # the consumer kept going
        consumer = AIOKafkaConsumer(
            DEAD_LETTER.name,
            auto_offset_reset="earliest",
            **client_kwargs(KafkaSettings(kafka_bootstrap=kafka_bootstrap)),
        )
        await consumer.start()
        try:
            batch = await poll(lambda: consumer.getmany(timeout_ms=500))
        finally:
            await consumer.stop()
    record = next(iter(batch.values()))[0]
    assert dict(record.headers)["dlq_reason"] == b"bad_json"
    assert dict(record.headers)["dlq_service"] == b"notify"
