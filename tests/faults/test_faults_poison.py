"""Poison on the inbound topics (and one canonical topic) lands in the dead-letter topic with
its reason; every service keeps running and keeps processing good input."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from bench.bus import NOTIFY_ENV, SUBMITTER, SUPERVISOR, copy_config, key, new_secret
from bench.texts import generate
from phoihop_common.kafka import KafkaSettings, producer_kwargs
from phoihop_embedded.stack import Stack
from phoihop_ingest.idempotency import recommendation_id
from phoihop_schemas.codec import encode
from phoihop_schemas.events import InboundSubmission, Response, ResponseAction
from phoihop_schemas.topics import CANONICAL, INBOUND_RESPONSES, INBOUND_SUBMISSIONS
from phoihop_testkit.webhook_receiver import WebhookReceiver
from tests.faults.dead_letters import read_dead_letters

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(150)]

Poison = tuple[str, bytes, bytes, list[tuple[str, bytes]], str | None]  # topic key value hdrs why


def _replace(headers: list[tuple[str, bytes]], name: str, value: bytes) -> list[tuple[str, bytes]]:
    return [(k, value if k == name else v) for k, v in headers]


def _poison(marker: str) -> list[Poison]:
    """(topic, key, value, headers, expected dlq_reason or None for any reason)."""
    body = next(iter(generate(1, seed=99))).body
    good_sub = encode(
        InboundSubmission(**body, submitted_by=SUBMITTER), source="/agency/test"
    ).headers
    good_resp = encode(
        Response(
            response_id=str(uuid.uuid4()), recommendation_id=str(uuid.uuid4()),
            agency="SO_XAY_DUNG", action=ResponseAction.ANSWER, text="Đã xử lý xong.",
            responded_at=datetime.now(UTC),
        ),
        source="/agency/test",
    )  # fmt: skip
    huge = json.dumps(body | {"text": "đường " * 60_000}, ensure_ascii=False).encode()
    out: list[Poison] = []
    for topic, headers in (
        (INBOUND_SUBMISSIONS.name, good_sub),
        (INBOUND_RESPONSES.name, good_resp.headers),
    ):
        k = f"{marker}-{topic.rsplit('.', 1)[-1]}"
        out += [
            (topic, f"{k}-badjson".encode(), b'{"kind": "kien_nghi", "te', headers, "bad_json"),
            (topic, f"{k}-unknown".encode(), json.dumps(body).encode(),
             _replace(headers, "ce_type", b"vn.phoihop.bogus.v1"), "unknown_type"),
            (topic, f"{k}-schema".encode(), json.dumps({"kind": "kien_nghi"}).encode(), headers,
             "schema_violation"),
            (topic, f"{k}-oversized".encode(), huge, headers, "oversized"),
            (topic, f"{k}-nothing".encode(), b"hello", [], "not_cloudevent"),
        ]  # fmt: skip
    # A well-formed answer to a recommendation nobody knows: rejected by routing with a reason.
    out.append(
        (
            INBOUND_RESPONSES.name,
            f"{marker}-unknown-rec".encode(),
            good_resp.value,
            good_resp.headers,
            None,
        )
    )
    # One broken record on a canonical topic: audit and notify must both survive it.
    out.append(
        (
            CANONICAL["assigned"].name,
            f"{marker}-canonical".encode(),
            b"{not json",
            _replace(good_resp.headers, "ce_type", b"vn.phoihop.recommendation.assigned.v1"),
            None,
        )
    )
    return out


async def _produce(bootstrap: str, records: list[tuple[str, bytes, bytes, list[Any]]]) -> None:
    producer = AIOKafkaProducer(
        **producer_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)), max_request_size=2**21
    )
    await producer.start()
    try:
        for topic, k, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=k, headers=headers)
    finally:
        await producer.stop()


async def _dead_letters(
    bootstrap: str, keys: set[bytes], *, within: float
) -> dict[bytes, list[dict[str, str]]]:
    """Dead-letter records whose key is in `keys`."""
    return await read_dead_letters(
        bootstrap, keys, within=within, identify=lambda record, _headers: record.key
    )


def test_poison_is_dead_lettered_with_reasons_and_services_keep_running(
    stack_factory: Callable[..., Stack], tmp_path: Path, receiver: WebhookReceiver
) -> None:
    config = copy_config(
        tmp_path / "config",
        [{"agency": SUPERVISOR, "url": receiver.url("/all"), "secret": new_secret(),
          "event_types": ["received", "assigned", "merged"], "scope": "jurisdiction"}],
    )  # fmt: skip
    stack = stack_factory(config_dir=config, extra_env=dict(NOTIFY_ENV))
    marker = f"poison-{uuid.uuid4().hex[:8]}"
    poison = _poison(marker)
    asyncio.run(_produce(stack.bootstrap, [(t, k, v, h) for t, k, v, h, _ in poison]))

    found = asyncio.run(_dead_letters(stack.bootstrap, {p[1] for p in poison}, within=60))
    for topic, k, _value, _headers, reason in poison:
        assert k in found, f"{k!r} (sent to {topic}) not dead-lettered; got {sorted(found)}"
        entry = found[k][0]
        assert entry.get("dlq_reason"), entry
        assert entry.get("dlq_topic") == topic, entry
        if reason is not None:
            reasons = {e["dlq_reason"] for e in found[k]}
            assert reason in reasons, f"{k!r}: reasons {reasons}, expected {reason}"

    # Every service is still alive and still does its work.
    for name, proc in stack.procs.items():
        assert proc.process is not None, name
        assert proc.process.poll() is None, f"{name} died"
        assert httpx.get(f"{proc.url}/healthz", timeout=10).status_code == 200, name
    body = next(iter(generate(1, seed=5, start=77))).body
    resp = httpx.post(
        f"{stack.url('ingest')}/v1/recommendations", json=body, headers=key(SUBMITTER), timeout=30
    )
    assert resp.status_code == 202, resp.text
    rec_id = resp.json()["id"]
    routed = receiver.wait_for(
        lambda d: (
            d.json().get("subject") == rec_id
            and str(d.json().get("type", "")).endswith((".assigned.v1", ".merged.v1"))
        ),
        timeout=60,
    )
    assert routed.status == 200
    # A good submission on the inbound topic after the poison is still taken in.
    text = f"Cử tri thôn 9 đề nghị sửa cống thoát nước đầu ngõ, mã phản ánh {marker}."
    good = encode(
        InboundSubmission(
            kind="kien_nghi", channel="ubmttq_tong_hop", locality="xa-tan-phu", text=text,
            submitted_by=SUBMITTER, source_ref=marker,
        ),
        source="/agency/test",
    )  # fmt: skip
    asyncio.run(_produce(stack.bootstrap, [(INBOUND_SUBMISSIONS.name, good.key or b"x",
                                            good.value, good.headers)]))  # fmt: skip
    received = receiver.wait_for(
        lambda d: (
            d.json().get("type", "").endswith(".received.v1")
            and d.json().get("data", {}).get("text") == text
        ),
        timeout=60,
    )
    assert received.json()["data"]["submitted_by"] == SUBMITTER


def _received_event(marker: str, text: str) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A canonical `received` event written past ingest (as a rogue producer could)."""
    from phoihop_schemas.events import Received

    rec_id = str(uuid.uuid5(uuid.NAMESPACE_URL, marker))
    event = Received(
        recommendation_id=rec_id, sequence=1, kind="kien_nghi", channel="ubmttq_tong_hop",
        locality="xa-tan-phu", text="placeholder", submitted_by=SUBMITTER,
        occurred_at=datetime.now(UTC),
    )  # fmt: skip
    rec = encode(event, source="/rogue")
    value = rec.value.replace(b'"placeholder"', json.dumps(text).encode())
    return rec.key or rec_id.encode(), value, rec.headers


def _trail_types(stack: Stack, rec_id: str) -> list[str]:
    resp = httpx.get(
        f"{stack.url('audit')}/v1/recommendations/{rec_id}/trail",
        headers=key(SUPERVISOR), timeout=10,
    )  # fmt: skip
    if resp.status_code != 200:
        return []
    body = resp.json()
    items = body.get("events", body) if isinstance(body, dict) else body
    return [str(e.get("type", "")) for e in items]


def _routed(stack: Stack, rec_id: str) -> bool:
    names = {t.split(".")[-2] if t.endswith(".v1") else t for t in _trail_types(stack, rec_id)}
    return "received" in names and bool(names & {"assigned", "merged"})


def _wait(condition: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        time.sleep(0.25)


def test_hostile_input_is_refused_or_dead_lettered_once_and_the_bus_keeps_going(
    stack_factory: Callable[..., Stack], tmp_path: Path
) -> None:
    """Each input of the poison issue, then a normal submission: assigned and in the trail."""
    stack = stack_factory()
    ingest, audit = stack.url("ingest"), stack.url("audit")
    good = next(iter(generate(1, seed=7, start=5))).body
    hdrs = key(SUBMITTER)

    # At the edge: a clear 4xx with a reason, nothing accepted.
    refused = {
        "lone surrogate": (json.dumps(good | {"text": "abc \ud800 def"}).encode(), 422),
        "NUL": (json.dumps(good | {"text": "abc \x00 def"}).encode(), 422),
        "ESC": (json.dumps(good | {"text": "abc \x1b[31m def"}).encode(), 422),
        "year 9999": (json.dumps(good | {"submitted_at": "9999-01-01T00:00:00Z"}).encode(), 422),
        "year 0001": (json.dumps(good | {"submitted_at": "0001-01-01"}).encode(), 422),
        "deep nesting": (b"[" * 50_000 + b"]" * 50_000, 422),
        "huge integer": (b'{"kind": ' + b"9" * 5000 + b"}", 422),
    }
    for what, (body, status) in refused.items():
        resp = httpx.post(
            f"{ingest}/v1/recommendations", content=body, timeout=30,
            headers=hdrs | {"Content-Type": "application/json"},
        )  # fmt: skip
        assert resp.status_code == status, (what, resp.status_code, resp.text)
        assert resp.json().get("error"), (what, resp.text)
    resp = httpx.post(
        f"{ingest}/v1/recommendations", content=json.dumps(good), timeout=30,
        headers=hdrs | {"Content-Type": "text/plain"},
    )  # fmt: skip
    assert resp.status_code == 415, resp.text
    for query in (
        "/v1/recommendations?page=99999999999999999999",
        "/v1/recommendations?to=9999-12-31",
        "/v1/recommendations?from=0001-01-01",
        "/v1/reports?month=9999-12",
        "/v1/audit/proof/consistency?first=99999999999999999999&second=99999999999999999999",
    ):
        resp = httpx.get(f"{audit}{query}", headers=key(SUPERVISOR), timeout=30)
        assert 400 <= resp.status_code < 500, (query, resp.status_code, resp.text)

    # Past the edge, straight onto the topics: each dead-lettered once, by each consumer.
    marker = f"hostile-{uuid.uuid4().hex[:8]}"
    body_sub = next(iter(generate(1, seed=11, start=3))).body
    sub = encode(InboundSubmission(**body_sub, submitted_by=SUBMITTER), source="/agency/test")
    # json.dumps escapes the lone surrogate as \ud800: valid JSON, invalid text
    surrogate_sub = json.dumps(json.loads(sub.value) | {"text": "abc \ud800 def"}).encode()
    assert b"\\ud800" in surrogate_sub
    big = b'{"text": "' + b"x" * 2_000_000 + b'"}'  # 2 MB: over the edge limit
    rk_nul, rv_nul, rh_nul = _received_event(f"{marker}-nul", "abc \x00 def")
    rk_sur, rv_sur, rh_sur = _received_event(f"{marker}-sur", "abc \ud800 def")
    # a valid record right behind the poison in the same partition and batch
    follow = encode(
        InboundSubmission(**(body_sub | {"source_ref": marker}), submitted_by=SUBMITTER),
        source="/agency/test",
    )
    records = [
        (INBOUND_SUBMISSIONS.name, f"{marker}-s-big".encode(), big, sub.headers),
        (INBOUND_SUBMISSIONS.name, f"{marker}-s-sur".encode(), surrogate_sub, sub.headers),
        (INBOUND_RESPONSES.name, f"{marker}-r-big".encode(), big, sub.headers),
        (CANONICAL["received"].name, rk_nul, rv_nul, rh_nul),
        (CANONICAL["received"].name, rk_sur, rv_sur, rh_sur),
        (INBOUND_SUBMISSIONS.name, f"{marker}-s-big".encode(), follow.value, follow.headers),
    ]
    asyncio.run(_produce(stack.bootstrap, [(t, k, v, h) for t, k, v, h in records]))
    poison_keys = {f"{marker}-s-big".encode(), f"{marker}-s-sur".encode(),
                   f"{marker}-r-big".encode(), rk_nul, rk_sur}  # fmt: skip
    found = asyncio.run(_dead_letters(stack.bootstrap, poison_keys, within=90))
    assert poison_keys <= set(found), sorted(found)
    time.sleep(5)  # a consumer looping on a record would dead-letter it again meanwhile
    found = asyncio.run(_dead_letters(stack.bootstrap, poison_keys, within=5))
    for k, entries in found.items():
        coords = [(e["dlq_service"], e["dlq_topic"], e["dlq_offset"]) for e in entries]
        assert len(coords) == len(set(coords)), f"{k!r} dead-lettered more than once: {coords}"
    services = {k: {e["dlq_service"] for e in v} for k, v in found.items()}
    assert services[f"{marker}-s-big".encode()] == {"ingest"}
    assert services[f"{marker}-r-big".encode()] == {"routing"}
    assert {"routing", "audit", "notify"} <= services[rk_nul], services[rk_nul]
    assert {"routing", "audit", "notify"} <= services[rk_sur], services[rk_sur]
    big_entry = found[f"{marker}-s-big".encode()][0]
    assert big_entry.get("dlq_value_truncated") == "1", big_entry

    # The bus keeps going: the valid record behind the poison and a new HTTP submission
    # are both assigned and in the trail, and every service is ready.
    resp = httpx.post(f"{ingest}/v1/recommendations", json=good, headers=hdrs, timeout=30)
    assert resp.status_code == 202, resp.text
    rec_id = resp.json()["id"]
    _wait(lambda: _routed(stack, rec_id), within=90, what=f"{rec_id} assigned, in the trail")
    follow_id = recommendation_id(agency=SUBMITTER, key=marker)  # source_ref is the key
    _wait(lambda: _routed(stack, follow_id), within=90, what="the record behind the poison")
    for name, proc in stack.procs.items():
        ready = httpx.get(f"{proc.url}/readyz", timeout=10)
        assert ready.status_code == 200, (name, ready.text)
    metrics = httpx.get(f"{ingest}/metrics", timeout=10).text
    assert 'phoihop_ingest_dead_lettered_total{reason="oversized"' in metrics or (
        "phoihop_ingest_dead_lettered_total" in metrics and "oversized" in metrics
    )
