"""The dispatcher: concurrency across endpoints and cases, order per case, batches, claims."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from phoihop_notify import store
from phoihop_notify.channels import Message, Target, WebhookChannel
from phoihop_notify.dispatcher import TokenBucket
from phoihop_notify.exceptions import UrlNotAllowedError
from phoihop_notify.models import deliveries, events, subscriptions
from phoihop_notify.ssrf import UrlGuard
from phoihop_notify.store import new_secret
from phoihop_notify.testing import poll, publish
from phoihop_schemas.events import Accepted, Assigned, Decision, Kind, Level, Received

pytestmark = pytest.mark.integration
NOW = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)


def received(rec: str) -> Received:
    return Received(
        recommendation_id=rec,
        sequence=1,
        occurred_at=NOW,
        kind=Kind.KIEN_NGHI,
        channel="don_thu",
        locality="xa-an-binh",
        text="Đề nghị sửa đường liên xã bị hư hỏng sau mùa mưa",
        submitted_by="UBMTTQ_TINH",
    )


def assigned(rec: str) -> Assigned:
    return Assigned(
        recommendation_id=rec,
        sequence=2,
        occurred_at=NOW,
        agency="SO_XAY_DUNG",
        category="GIAO_THONG",
        level=Level.TINH,
        kind=Kind.KIEN_NGHI,
        locality="xa-an-binh",
        deadline=NOW + timedelta(days=30),
        decision=Decision(rule="keywords", version="1"),
    )


def accepted(rec: str) -> Accepted:
    return Accepted(recommendation_id=rec, sequence=3, occurred_at=NOW, agency="SO_XAY_DUNG")


def sub(agency: str, url: str, secret: str, **extra: object) -> dict[str, object]:
    return {"agency": agency, "url": url, "secret": secret, **extra}


def _seq(body: bytes) -> tuple[str, int]:
    event = json.loads(body)
    return event["subject"], event["data"]["sequence"]


def _in_case_order(bodies: list[bytes]) -> bool:
    """True when each recommendation's events arrived in sequence order."""
    last: dict[str, int] = {}
    for body in bodies:
        rec, seq = _seq(body)
        if seq <= last.get(rec, 0):
            return False
        last[rec] = seq
    return True


async def test_endpoints_and_cases_go_concurrently_in_order_per_case(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    slow = await receivers()
    slow.gate = asyncio.Event()
    fast = await receivers()
    write_subscriptions(
        [
            sub("TT_HDND", slow.url, new_secret(), scope="jurisdiction"),
            sub("SO_XAY_DUNG", fast.url, new_secret(), event_types=["assigned"]),
        ]
    )
    recs = [str(uuid.uuid4()) for _ in range(5)]
    try:
        async with run_notify(settings_for()):
            await publish(kafka_bootstrap, *(e for r in recs for e in (received(r), assigned(r))))
            # One endpoint answers nothing yet: the other one still gets everything.
            await poll(lambda: len(fast.ok()) == 5 and slow.in_flight == 5)
            # The held endpoint has one attempt per case in flight: only first events.
            assert slow.max_in_flight == 5
            assert sorted(_seq(b)[1] for b in slow.arrived) == [1] * 5
            slow.gate.set()
            await poll(lambda: len(slow.ok()) == 10)
    finally:
        slow.gate.set()
    assert _in_case_order(slow.arrived)
    assert {_seq(r.body)[0] for r in fast.ok()} == set(recs)


async def test_many_deliveries_each_exactly_once_in_case_order(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    receiver = await receivers()
    secret = new_secret()
    write_subscriptions([sub("TT_HDND", receiver.url, secret, scope="jurisdiction")])
    recs = [str(uuid.uuid4()) for _ in range(150)]
    async with run_notify(settings_for(dispatch_batch=50)) as notify:
        await publish(
            kafka_bootstrap,
            *(e for r in recs for e in (received(r), assigned(r), accepted(r))),
        )
        await poll(lambda: len(receiver.ok()) >= 450, within=120)
        # attempts leave in-flight once recorded, after the receiver answered them
        await poll(lambda: notify.runtime.dispatcher.in_flight == 0, within=30)
        await asyncio.sleep(0.5)  # nothing more may come
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 450
    assert len(set(ids)) == 450
    assert _in_case_order(receiver.arrived)
    for r in receiver.requests[:20]:
        Webhook(secret).verify(r.body, r.headers)


def _count_recorded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Sizes of the batches the dispatcher records (the real `record_attempts` does it)."""
    sizes: list[int] = []
    real = store.record_attempts

    def counting(engine: Any, *, attempts: Any) -> store.Recorded:
        recorded = real(engine, attempts=attempts)
        sizes.append(len(attempts))  # once committed: a poll on the sizes sees the rows
        return recorded

    monkeypatch.setattr(store, "record_attempts", counting)
    return sizes


def _statuses(engine: Any) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(select(deliveries.c.status)))


async def test_attempts_finishing_together_are_recorded_in_one_transaction(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers, monkeypatch
):
    receiver = await receivers()
    write_subscriptions([sub("SO_XAY_DUNG", receiver.url, new_secret())])
    sizes = _count_recorded(monkeypatch)
    recs = [str(uuid.uuid4()) for _ in range(20)]
    async with run_notify(settings_for(record_linger=0.5)) as notify:
        await publish(kafka_bootstrap, *(assigned(r) for r in recs))
        await poll(lambda: sum(sizes) == 20, within=60)
        assert _statuses(notify.runtime.engine) == [store.DELIVERED] * 20
    assert len(receiver.ok()) == 20
    assert len(sizes) < 20, sizes
    assert max(sizes) > 1, sizes


async def test_attempts_waiting_to_be_recorded_are_recorded_at_shutdown(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers, monkeypatch
):
    receiver = await receivers()
    write_subscriptions([sub("SO_XAY_DUNG", receiver.url, new_secret())])
    sizes = _count_recorded(monkeypatch)
    recs = [str(uuid.uuid4()) for _ in range(3)]
    async with run_notify(settings_for(record_linger=30.0)) as notify:
        await publish(kafka_bootstrap, *(assigned(r) for r in recs))
        await poll(lambda: len(receiver.ok()) == 3, within=60)
        assert sizes == []  # still lingering
        engine = notify.runtime.engine
        assert engine is not None
    # shut down within the linger: the finished attempts are recorded, not given back
    assert sum(sizes) == 3
    assert _statuses(engine) == [store.DELIVERED] * 3


async def test_rate_limit_spaces_sends_to_one_endpoint(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    receiver = await receivers()
    write_subscriptions([sub("SO_XAY_DUNG", receiver.url, new_secret(), event_types=["assigned"])])
    async with run_notify(settings_for(rate_limit_per_second=5.0)):
        await publish(kafka_bootstrap, *(assigned(str(uuid.uuid4())) for _ in range(10)))
        await poll(lambda: len(receiver.ok()) == 10)
    # A burst of 5, then 5 per second: the last send cannot come before ~1 s.
    times = [r.at for r in receiver.requests]
    assert times[-1] - times[0] >= 0.8


# --------------------------------------------------------------------------- store level


def _seed_delivery(engine, *, rec: str, sequence: int, sub_id: str = "s1") -> str:
    now = datetime.now(UTC)
    event_id = f"{rec}-{sequence}"
    with engine.begin() as conn:
        if conn.execute(subscriptions.select().where(subscriptions.c.id == sub_id)).first() is None:
            conn.execute(
                subscriptions.insert().values(
                    id=sub_id,
                    agency="TT_HDND",
                    channel="webhook",
                    target="http://127.0.0.1:9/hook",
                    event_types=[],
                    scope="jurisdiction",
                    secret=new_secret(),
                    enabled=True,
                    source="api",
                    created_at=now,
                    updated_at=now,
                )
            )
        conn.execute(
            events.insert().values(
                event_id=event_id,
                event_type="assigned",
                recommendation_id=rec,
                sequence=sequence,
                attributes={"id": event_id},
                data={"sequence": sequence},
                processed_at=now,
            )
        )
        delivery = store.delivery_id(event_id=event_id, subscription_id=sub_id)
        conn.execute(
            deliveries.insert().values(
                id=delivery,
                event_id=event_id,
                subscription_id=sub_id,
                recommendation_id=rec,
                sequence=sequence,
                status=store.PENDING,
                attempts=0,
                round_start=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
    return delivery


@pytest.fixture
def engine(database_url):
    engine = store.make_engine(database_url)
    store.migrate(engine)
    yield engine
    engine.dispose()


def _due(engine, **kw):
    return store.due_deliveries(
        engine, now=datetime.now(UTC), hold=timedelta(seconds=60), limit=100, **kw
    )


def test_claim_is_exclusive_and_release_gives_back(engine):
    recs = [str(uuid.uuid4()) for _ in range(3)]
    for r in recs:
        _seed_delivery(engine, rec=r, sequence=1)
    now = datetime.now(UTC)
    due = _due(engine)
    assert len(due) == 3
    lease = now + timedelta(seconds=30)
    first = store.claim(engine, items=due, lease_until=lease, now=now)
    second = store.claim(engine, items=due, lease_until=lease, now=now)
    assert [d.id for d in first] == [d.id for d in due]
    assert second == []
    assert _due(engine) == []  # leased
    store.release(engine, items=first[:1], now=datetime.now(UTC))
    again = _due(engine)
    assert [(d.id, d.attempts) for d in again] == [(first[0].id, 0)]


def test_due_respects_case_order_and_skips(engine):
    rec = str(uuid.uuid4())
    one = _seed_delivery(engine, rec=rec, sequence=1)
    _seed_delivery(engine, rec=rec, sequence=2)
    other = _seed_delivery(engine, rec=str(uuid.uuid4()), sequence=1, sub_id="s2")
    assert {d.id for d in _due(engine)} == {one, other}
    assert [d.id for d in _due(engine, skip_subscriptions=["s2"])] == [one]
    assert [d.id for d in _due(engine, skip_ids=[one])] == [other]


def test_take_due_claims_within_the_allowance_in_one_go(engine):
    one, two, three = (
        _seed_delivery(engine, rec=str(uuid.uuid4()), sequence=1, sub_id=sid)
        for sid in ("s1", "s1", "s2")
    )
    fourth = _seed_delivery(engine, rec=str(uuid.uuid4()), sequence=1, sub_id="s3")
    now = datetime.now(UTC)
    allowance = store.Allowance(
        room=10,
        slots={"s1": 1},  # one connection free: the second of s1 waits (starved)
        tokens={"s3": 0},  # no token: s3 waits for its rate limit (not starved)
        fresh_slots=4,
        fresh_tokens=4,
    )
    taken = store.take_due(
        engine,
        now=now,
        hold=timedelta(seconds=60),
        limit=100,
        allowance=allowance,
        lease_until=now + timedelta(seconds=30),
    )
    got = {d.id for d in taken.claimed}
    assert got == {three} | ({one, two} & got)
    assert len(got & {one, two}) == 1
    assert fourth not in got
    assert taken.starved
    assert not taken.full
    assert all(d.attempts == 0 for d in taken.claimed)  # as read; the claim made it 1
    assert {d.id for d in _due(engine)} == {one, two, fourth} - got  # the claimed are leased


def test_pick_counts_room_connections_and_tokens() -> None:
    def due(sid: str) -> store.Due:
        return store.Due(
            id=str(uuid.uuid4()), event_id="e", event_type="assigned", recommendation_id="r",
            sequence=1, attempts=0, round_start=0, subscription_id=sid, agency="A",
            channel="webhook", target="http://127.0.0.1/", secrets=(), failing_since=None,
            attributes={}, data={},
        )  # fmt: skip

    rows = [due("a"), due("a"), due("b"), due("c"), due("c")]
    base = store.Allowance(room=10, slots={}, tokens={}, fresh_slots=2, fresh_tokens=2)
    assert store.dispatch.pick(rows, base) == (rows, False)
    # the room is spent after two: the rest waits, starved
    short = store.Allowance(room=2, slots={}, tokens={}, fresh_slots=2, fresh_tokens=2)
    assert store.dispatch.pick(rows, short) == (rows[:2], True)
    # one token for c: its second waits for the rate limit, which is not starvation
    rated = store.Allowance(room=10, slots={}, tokens={"c": 1}, fresh_slots=2, fresh_tokens=2)
    assert store.dispatch.pick(rows, rated) == (rows[:4], False)
    # no free connection for a: both of a wait, starved
    busy = store.Allowance(room=10, slots={"a": 0}, tokens={}, fresh_slots=2, fresh_tokens=2)
    assert store.dispatch.pick(rows, busy) == (rows[2:], True)


def test_record_attempts_batch_outcomes_health_and_unblocking(engine):
    rec = str(uuid.uuid4())
    _seed_delivery(engine, rec=rec, sequence=1)
    _seed_delivery(engine, rec=rec, sequence=2)
    now = datetime.now(UTC)
    (due,) = _due(engine)
    (claimed,) = store.claim(engine, items=[due], lease_until=now + timedelta(seconds=30), now=now)

    def attempt(status: str, failed: bool, at: datetime) -> store.Attempt:
        return store.Attempt(
            due=claimed,
            attempt=1,
            status=status,
            next_attempt_at=at,
            status_code=500 if failed else 200,
            error="http_500" if failed else None,
            failed=failed,
            disable_reason=None,
            outcome_id=f"o-{uuid.uuid4()}",
            outcome_payload={"outcome": "retry_scheduled" if failed else "delivered"},
            at=at,
        )

    recorded = store.record_attempts(engine, attempts=[attempt(store.DELIVERED, False, now)])
    assert recorded.unblocked  # sequence 2 of the same case may go now
    assert recorded.disabled == set()
    assert [d.sequence for d in _due(engine)] == [2]
    # Endpoint health: failures after the last success start `failing_since` at the first.
    later = now + timedelta(seconds=1)
    fails = [
        attempt(store.PENDING, True, now + timedelta(seconds=2)),
        attempt(store.DELIVERED, False, now + timedelta(seconds=3)),
        attempt(store.PENDING, True, later + timedelta(seconds=3)),
        attempt(store.PENDING, True, later + timedelta(seconds=4)),
    ]
    store.record_attempts(engine, attempts=fails)
    with engine.connect() as conn:
        since = conn.scalar(select(subscriptions.c.failing_since))
    assert since == later + timedelta(seconds=3)
    store.record_attempts(engine, attempts=[attempt(store.DELIVERED, False, later)])
    with engine.connect() as conn:
        assert conn.scalar(select(subscriptions.c.failing_since)) is None


# --------------------------------------------------------------------------- units


def test_token_bucket_empty_does_not_spend():
    bucket = TokenBucket(rate=2.0)
    assert not bucket.empty()
    assert bucket.take()
    assert bucket.take()
    assert bucket.empty()
    assert not bucket.take()


async def test_url_guard_remembers_verdicts_and_skips_dns_for_literals():
    guard = UrlGuard(allowed=())
    with pytest.raises(UrlNotAllowedError):
        await guard.check("http://127.0.0.1:9/hook")
    with pytest.raises(UrlNotAllowedError):  # from the cache, same verdict
        await guard.check("http://127.0.0.1:9/hook")
    await UrlGuard(allowed=()).check("http://93.184.216.34/hook")  # public literal: no lookup


@pytest.mark.parametrize("backend", ["aiohttp", "httpx"])
async def test_webhook_channel_backends_classify_alike(receivers, backend):
    receiver = await receivers(
        script=[(200, {}), (410, {}), (429, {"Retry-After": "7"}), (302, {"Location": "/x"})]
    )
    channel = WebhookChannel(timeout=5.0, backend=backend)
    secret = new_secret()
    msg = Message(id="msg_1", event_type="assigned", recommendation_id="r", body=b"{}", summary="s")
    try:
        results = [
            await channel.deliver(
                target=Target(address=receiver.url, secrets=(secret,)), message=msg
            )
            for _ in range(4)
        ]
        refused = await channel.deliver(
            target=Target(address="http://127.0.0.1:9/closed", secrets=(secret,)), message=msg
        )
    finally:
        await channel.close()
    assert channel.backend == backend
    assert [(r.ok, r.status_code) for r in results] == [
        (True, 200),
        (False, 410),
        (False, 429),
        (False, 302),  # redirects are not followed
    ]
    assert results[1].gone
    assert results[2].retry_after == 7.0
    assert not refused.ok
    assert refused.error
    for r in receiver.requests:
        Webhook(secret).verify(r.body, r.headers)
