"""Subscription API: ownership, validation, SSRF refusal, secret rotation, health and metrics."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from phoihop_notify.store import new_secret
from phoihop_notify.testing import poll, publish
from phoihop_schemas.events import Assigned, Decision, Kind, Level, Received

pytestmark = pytest.mark.integration
NOW = datetime(2025, 9, 1, 8, 0, tzinfo=UTC)


def case(rec: str, agency: str) -> tuple[Received, Assigned]:
    return (
        Received(
            recommendation_id=rec,
            sequence=1,
            occurred_at=NOW,
            kind=Kind.KIEN_NGHI,
            channel="tiep_xuc_cu_tri",
            locality="xa-tan-phu",
            text="Cử tri đề nghị sửa chữa cầu treo qua suối",
            submitted_by="UBMTTQ_TINH",
        ),
        Assigned(
            recommendation_id=rec,
            sequence=2,
            occurred_at=NOW,
            agency=agency,
            category="GIAO_THONG",
            level=Level.TINH,
            kind=Kind.KIEN_NGHI,
            locality="xa-tan-phu",
            deadline=NOW + timedelta(days=30),
            decision=Decision(rule="keywords", version="1"),
        ),
    )


async def test_crud_is_scoped_to_the_agency(settings_for, run_notify, receivers):
    receiver = await receivers()
    async with run_notify(settings_for()) as notify:
        c = notify.client
        mine, theirs = notify.as_agency("SO_XAY_DUNG"), notify.as_agency("SO_Y_TE")
        got = await c.post("/v1/subscriptions", json={"url": receiver.url}, headers=mine)
        assert got.status_code == 201, got.text
        created = got.json()
        assert created["secret"].startswith("whsec_")
        Webhook(created["secret"])  # a valid Standard Webhooks secret
        sid = created["id"]
        listed = (await c.get("/v1/subscriptions", headers=mine)).json()["items"]
        assert [s["id"] for s in listed] == [sid]
        assert "secret" not in listed[0]
        assert (await c.get("/v1/subscriptions", headers=theirs)).json()["items"] == []
        denied = await c.get(f"/v1/subscriptions/{sid}", headers=theirs)
        assert denied.status_code == 404
        assert denied.json()["error"] == "not_found"
        assert (await c.delete(f"/v1/subscriptions/{sid}", headers=theirs)).status_code == 404
        got = await c.patch(
            f"/v1/subscriptions/{sid}", json={"event_types": ["assigned", "reminded"]}, headers=mine
        )
        assert got.json()["event_types"] == ["assigned", "reminded"]
        assert (await c.delete(f"/v1/subscriptions/{sid}", headers=mine)).status_code == 204
        assert (await c.get(f"/v1/subscriptions/{sid}", headers=mine)).status_code == 404
        anonymous = await c.get("/v1/subscriptions")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"] == "missing_api_key"
        bad_key = await c.get("/v1/subscriptions", headers={"X-API-Key": "nope"})
        assert bad_key.status_code == 401
        assert bad_key.json()["error"] == "invalid_api_key"


async def test_validation_errors(settings_for, run_notify, receivers):
    receiver = await receivers()
    async with run_notify(settings_for()) as notify:
        c, mine = notify.client, notify.as_agency("SO_XAY_DUNG")
        got = await c.post(
            "/v1/subscriptions", json={"url": receiver.url, "event_types": ["nope"]}, headers=mine
        )
        assert got.status_code == 422
        assert got.json()["error"] == "invalid_subscription"
        got = await c.post(
            "/v1/subscriptions", json={"url": receiver.url, "scope": "jurisdiction"}, headers=mine
        )
        assert got.status_code == 403
        assert got.json()["error"] == "scope_not_allowed"
        got = await c.post(
            "/v1/subscriptions",
            json={"url": receiver.url, "scope": "jurisdiction"},
            headers=notify.as_agency("TT_HDND"),
        )
        assert got.status_code == 201
        got = await c.post("/v1/subscriptions", json={"link": receiver.url}, headers=mine)
        assert got.status_code == 422
        assert got.json()["error"] == "invalid_request"


REFUSED = [
    "http://127.0.0.1:9/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "ftp://example.org/hook",
    "not a url",
]


async def test_ssrf_refused_at_create_and_update(settings_for, run_notify, receivers):
    receiver = await receivers()
    async with run_notify(settings_for(allowed_networks=())) as notify:
        c, mine = notify.client, notify.as_agency("SO_XAY_DUNG")
        for url in REFUSED:
            got = await c.post("/v1/subscriptions", json={"url": url}, headers=mine)
            assert got.status_code == 422, url
            assert got.json()["error"] == "url_not_allowed", url
    async with run_notify(settings_for(allowed_networks=("127.0.0.0/8",))) as notify:
        c, mine = notify.client, notify.as_agency("SO_XAY_DUNG")
        created = await c.post("/v1/subscriptions", json={"url": receiver.url}, headers=mine)
        assert created.status_code == 201
        got = await c.patch(
            f"/v1/subscriptions/{created.json()['id']}",
            json={"url": "http://169.254.169.254/"},
            headers=mine,
        )
        assert got.status_code == 422
        assert got.json()["error"] == "url_not_allowed"


async def test_ssrf_refused_at_delivery(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    receiver = await receivers()
    write_subscriptions([{"agency": "SO_XAY_DUNG", "url": receiver.url, "secret": new_secret()}])
    rec = str(uuid.uuid4())
    async with run_notify(settings_for(allowed_networks=())) as notify:
        await publish(kafka_bootstrap, *case(rec, "SO_XAY_DUNG"))
        headers = notify.as_agency("SO_XAY_DUNG")

        async def dead() -> list[dict[str, object]]:
            got = await notify.client.get(
                "/v1/deliveries", params={"status": "failed"}, headers=headers
            )
            return list(got.json()["items"])

        items = await poll(dead)
    assert str(items[0]["last_error"]).startswith("url_not_allowed")
    assert items[0]["attempts"] == 1
    assert receiver.requests == []


async def test_rotation_sends_both_signatures_during_overlap(
    kafka_bootstrap, settings_for, run_notify, receivers
):
    receiver = await receivers()
    async with run_notify(settings_for()) as notify:
        c, mine = notify.client, notify.as_agency("SO_XAY_DUNG")
        created = (
            await c.post("/v1/subscriptions", json={"url": receiver.url}, headers=mine)
        ).json()
        old = created["secret"]
        rotated = await c.post(
            f"/v1/subscriptions/{created['id']}/rotate-secret",
            params={"overlap_seconds": 3600},
            headers=mine,
        )
        assert rotated.status_code == 200
        new = rotated.json()["secret"]
        assert new != old
        assert rotated.json()["previous_secret_expires_at"] is not None
        rec = str(uuid.uuid4())
        await publish(kafka_bootstrap, *case(rec, "SO_XAY_DUNG"))
        await poll(lambda: receiver.ok())
        hit = receiver.ok()[0]
        assert len(hit.headers["webhook-signature"].split(" ")) == 2
        Webhook(old).verify(hit.body, hit.headers)
        Webhook(new).verify(hit.body, hit.headers)
        # Without overlap the old secret stops signing at once.
        again = await c.post(
            f"/v1/subscriptions/{created['id']}/rotate-secret",
            params={"overlap_seconds": 0},
            headers=mine,
        )
        newest = again.json()["secret"]
        rec2 = str(uuid.uuid4())
        await publish(kafka_bootstrap, *case(rec2, "SO_XAY_DUNG"))
        await poll(lambda: len(receiver.ok()) == 2)
        hit = receiver.ok()[1]
        assert len(hit.headers["webhook-signature"].split(" ")) == 1
        Webhook(newest).verify(hit.body, hit.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(new).verify(hit.body, hit.headers)


async def test_health_readiness_metrics(
    kafka_bootstrap, settings_for, write_subscriptions, run_notify, receivers
):
    receiver = await receivers(script=[(500, {})])
    write_subscriptions([{"agency": "SO_XAY_DUNG", "url": receiver.url, "secret": new_secret()}])
    async with run_notify(settings_for()) as notify:
        assert (await notify.client.get("/healthz")).status_code == 200
        ready = await notify.client.get("/readyz")
        assert ready.status_code == 200, ready.text
        await publish(kafka_bootstrap, *case(str(uuid.uuid4()), "SO_XAY_DUNG"))
        await poll(lambda: receiver.ok())
        delivered = 'phoihop_notify_deliveries_total{channel="webhook",outcome="delivered"}'

        async def scraped() -> str | None:
            # counted once notify has read the answer, a moment after the receiver sent it
            text = (await notify.client.get("/metrics")).text
            return text if delivered in text else None

        text = await poll(scraped)
    assert 'phoihop_notify_deliveries_total{channel="webhook",outcome="retry_scheduled"}' in text
    assert "phoihop_notify_delivery_duration_seconds_bucket" in text
    assert "phoihop_notify_retry_queue_depth" in text
    assert "phoihop_notify_endpoints_disabled" in text
    assert "phoihop_notify_events_consumed_total" in text


async def test_malformed_requests_answer_error_and_detail(settings_for, run_notify):
    async with run_notify(settings_for()) as notify:
        c, mine = notify.client, notify.as_agency("SO_XAY_DUNG")
        json_type = mine | {"Content-Type": "application/json"}
        for body in (b"{broken", b"\xff\xfe", b"[" * 50_000, b'{"url": ' + b"1" * 5_000 + b"}"):
            got = await c.post("/v1/subscriptions", content=body, headers=json_type)
            assert got.status_code in (400, 422), got.text
            assert got.json()["error"] == "invalid_json", got.text
            assert got.json()["detail"]
        got = await c.post("/v1/subscriptions", content=b"null", headers=json_type)
        assert (got.status_code, got.json()["error"]) == (422, "invalid_request")
        got = await c.get("/v1/nothing-here", headers=mine)
        assert (got.status_code, got.json()["error"]) == (404, "not_found")
        got = await c.put("/v1/subscriptions", headers=mine)
        assert (got.status_code, got.json()["error"]) == (405, "method_not_allowed")
        got = await c.get("/v1/deliveries", params={"limit": "9" * 20}, headers=mine)
        assert (got.status_code, got.json()["error"]) == (422, "invalid_request")
