"""POST /v1/recommendations against a real broker and database."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

import httpx
from ingest_testkit import ReadTopic, key, running_ingest

from phoihop_common.kafka import KafkaSettings, ensure_topics
from phoihop_common.net import free_port
from phoihop_common.pii import open_reporter
from phoihop_embedded.broker import EmbeddedBroker
from phoihop_ingest.idempotency import recommendation_id
from phoihop_ingest.settings import IngestSettings
from phoihop_schemas.codec import decode, lifecycle_event_id
from phoihop_schemas.events import Received
from phoihop_schemas.topics import CANONICAL
from phoihop_testkit.plugin import fixed_pii_cipher

RECEIVED = CANONICAL["received"].name
TEXT_NFD = unicodedata.normalize(
    "NFD", "Cử tri thôn 3 đề nghị sửa chữa đường liên thôn 3 - thôn 4 bị xuống cấp"
)


def body(**changes: Any) -> dict[str, Any]:
    """A valid submission with some fields changed (None removes a field)."""
    base: dict[str, Any] = {
        "kind": "kien_nghi",
        "channel": "tiep_xuc_cu_tri",
        "locality": "xa-an-binh",
        "text": TEXT_NFD,
        "submitted_at": "2026-01-08",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


async def test_submission_lands_as_received_cloudevent(
    ingest: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    resp = await ingest.post("/v1/recommendations", json=body(), headers=key("UBMTTQ_TINH"))
    assert resp.status_code == 202, resp.text
    rec_id = resp.json()["id"]

    [record] = await read_topic(RECEIVED, count=1)
    assert record.key == rec_id.encode()
    headers = dict(record.headers)
    assert headers["ce_type"] == b"vn.phoihop.recommendation.received.v1"
    assert headers["ce_subject"] == rec_id.encode()
    assert headers["ce_source"] == b"/phoihop/ingest"
    envelope = decode(value=record.value, headers=record.headers, key=record.key)
    assert envelope.id == lifecycle_event_id(rec_id, 1)
    event = envelope.data
    assert isinstance(event, Received)
    assert event.sequence == 1
    assert event.recommendation_id == rec_id
    assert event.submitted_by == "UBMTTQ_TINH"
    assert event.text == unicodedata.normalize("NFC", TEXT_NFD)
    assert event.text != TEXT_NFD

    assert (await ingest.get("/healthz")).json() == {"status": "ok"}
    metrics = (await ingest.get("/metrics")).text
    assert 'phoihop_ingest_submissions_total{outcome="accepted"}' in metrics
    assert "phoihop_ingest_events_produced_total" in metrics
    # the HTTP metrics middleware labels requests by route template
    route = 'method="POST",route="/v1/recommendations"'
    assert f'phoihop_ingest_http_requests_total{{{route},status="202"}}' in metrics
    assert f"phoihop_ingest_http_request_duration_seconds_count{{{route}}}" in metrics


async def test_idempotency_key_gives_one_case(
    ingest: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    headers = key("SO_XAY_DUNG") | {"Idempotency-Key": "batch-7/row-1"}
    first = await ingest.post("/v1/recommendations", json=body(), headers=headers)
    second = await ingest.post("/v1/recommendations", json=body(), headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["id"] == recommendation_id(agency="SO_XAY_DUNG", key="batch-7/row-1")
    assert second.headers["Idempotent-Replayed"] == "true"

    reused = await ingest.post(
        "/v1/recommendations", json=body(text="Một nội dung khác hẳn"), headers=headers
    )
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"

    # source_ref is the key when no header is given; another agency's key is its own.
    by_ref = body(source_ref="HDND-2026-001")
    a1 = await ingest.post("/v1/recommendations", json=by_ref, headers=key("SO_Y_TE"))
    a2 = await ingest.post("/v1/recommendations", json=by_ref, headers=key("SO_Y_TE"))
    b1 = await ingest.post("/v1/recommendations", json=by_ref, headers=key("SO_GD_DT"))
    assert a1.json()["id"] == a2.json()["id"] != b1.json()["id"]

    records = await read_topic(RECEIVED, count=3)
    ids = sorted(r.key.decode() for r in records if r.key)
    assert ids == sorted([first.json()["id"], a1.json()["id"], b1.json()["id"]])


async def test_concurrent_retries_agree_on_the_id(
    ingest: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    import asyncio

    headers = key("UBMTTQ_TINH") | {"Idempotency-Key": "concurrent-1"}
    answers = await asyncio.gather(
        *(ingest.post("/v1/recommendations", json=body(), headers=headers) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1
    records = await read_topic(RECEIVED, count=1)
    assert {r.key for r in records} == {answers[0].json()["id"].encode()}


BAD: list[tuple[dict[str, Any] | bytes, dict[str, str], int, str]] = [
    (body(), {}, 401, "missing_api_key"),
    (body(), {"X-API-Key": "not-a-key"}, 401, "invalid_api_key"),
    (body(locality="xa-khong-ton-tai"), {}, 422, "unknown_locality"),
    (body(locality="Xã An Bình"), {}, 422, "unknown_locality"),
    (body(kind="kien_nghi_x"), {}, 422, "unknown_kind"),
    (body(channel="fax"), {}, 422, "unknown_channel"),
    (body(text=""), {}, 422, "empty_text"),
    (body(text="   \n "), {}, 422, "empty_text"),
    (body(text="x" * 20_001), {}, 422, "text_too_long"),
    (body(text=None), {}, 422, "text_required"),
    (body(locality=None), {}, 422, "missing_field"),
    (body(kind="to_cao"), {}, 422, "reporter_required"),
    (body(kind="khieu_nai"), {}, 422, "reporter_required"),
    (body(reporter={"name": "Nguyễn Văn A", "phone": "abc"}), {}, 422, "invalid_reporter"),
    (body(submitted_at="08-01-2026x"), {}, 422, "invalid_submitted_at"),
    (body(priority="high"), {}, 422, "unknown_field"),
    (b"{not json", {}, 400, "invalid_json"),
    (b"[1, 2]", {}, 422, "invalid_body"),
    (body(), {"Idempotency-Key": "k" * 201}, 422, "invalid_idempotency_key"),
]


async def test_bad_input_is_refused_with_a_reason(
    make_settings: Callable[..., IngestSettings],
) -> None:
    # No broker needed: every refusal happens before producing.
    settings = make_settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    async with running_ingest(settings, ready=False) as client:
        for payload, extra, status, reason in BAD:
            headers = ({} if "X-API-Key" in extra or status == 401 else key("TT_HDND")) | extra
            if isinstance(payload, bytes):
                resp = await client.post(
                    "/v1/recommendations",
                    content=payload,
                    headers=headers | {"Content-Type": "application/json"},
                )
            else:
                resp = await client.post("/v1/recommendations", json=payload, headers=headers)
            assert resp.status_code == status, (reason, resp.text)
            assert resp.json()["error"] == reason, resp.text
            assert "detail" in resp.json()
        metrics = (await client.get("/metrics")).text
        assert 'phoihop_ingest_submissions_total{outcome="rejected"}' in metrics


async def test_denunciation_with_reporter_is_accepted(
    ingest: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    reporter = {"name": "Trần Thị B", "phone": "0912 345 678", "address": "Thôn 2, xã Tân Phú"}
    resp = await ingest.post(
        "/v1/recommendations",
        json=body(kind="to_cao", channel="don_thu", locality="xa-tan-phu", reporter=reporter),
        headers=key("THANH_TRA_TINH"),
    )
    assert resp.status_code == 202, resp.text
    [record] = await read_topic(RECEIVED)
    event = decode(value=record.value, headers=record.headers).data
    assert isinstance(event, Received)
    assert event.reporter is not None
    # On the canonical topic the identity is ciphertext only the bus's keyring opens.
    assert set(json.loads(record.value)["reporter"]) == {"alg", "key_id", "nonce", "ciphertext"}
    assert b"0912" not in record.value
    opened = open_reporter(
        event.reporter, recommendation_id=event.recommendation_id, cipher=fixed_pii_cipher()
    )
    assert (opened.name, opened.phone) == ("Trần Thị B", "0912 345 678")


async def test_broker_unreachable_gives_503_with_retry_after(
    make_settings: Callable[..., IngestSettings],
) -> None:
    settings = make_settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    async with running_ingest(settings, ready=False) as client:
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["producer"] is False
        assert ready.json()["status"] == "not_ready"
        resp = await client.post("/v1/recommendations", json=body(), headers=key("TT_HDND"))
        assert resp.status_code == 503
        assert resp.headers["Retry-After"] == "7"
        assert resp.json()["error"] == "broker_unavailable"
        metrics = (await client.get("/metrics")).text
        assert 'phoihop_ingest_submissions_total{outcome="unavailable"}' in metrics


async def test_broker_lost_after_start_gives_503(
    tmp_path: Any, make_settings: Callable[..., IngestSettings]
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "broker.log").start()
    try:
        await ensure_topics(KafkaSettings(kafka_bootstrap=broker.bootstrap))
        settings = make_settings(kafka_bootstrap=broker.bootstrap, produce_timeout=3.0)
        async with running_ingest(settings) as client:
            ok = await client.post("/v1/recommendations", json=body(), headers=key("TT_HDND"))
            assert ok.status_code == 202
            broker.stop()
            resp = await client.post(
                "/v1/recommendations",
                json=body(),
                headers=key("TT_HDND") | {"Idempotency-Key": "after-loss"},
            )
            assert resp.status_code == 503, resp.text
            assert resp.headers["Retry-After"] == "7"
    finally:
        broker.stop()
