"""Poison on the inbound topics (and one canonical topic) lands in the dead-letter topic with
its reason; every service keeps running and keeps processing good input."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.bus import NOTIFY_ENV, SUBMITTER, SUPERVISOR, copy_config, key, new_secret
from bench.texts import generate
from phoihop_common.kafka import KafkaSettings, client_kwargs, producer_kwargs
from phoihop_common.stack import Stack
from phoihop_schemas.codec import encode
from phoihop_schemas.events import InboundSubmission, Response, ResponseAction
from phoihop_schemas.topics import CANONICAL, DEAD_LETTER, INBOUND_RESPONSES, INBOUND_SUBMISSIONS
from tests.webhook_receiver import WebhookReceiver

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
    """Dead-letter records whose key is in `keys`, read from the start without a group."""
    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, fetch_max_bytes=2**23, max_partition_fetch_bytes=2**22,
        **client_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)),
    )  # fmt: skip
    await consumer.start()
    found: dict[bytes, list[dict[str, str]]] = {}
    try:
        parts = [
            TopicPartition(DEAD_LETTER.name, p)
            for p in consumer.partitions_for_topic(DEAD_LETTER.name) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not keys <= set(found):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if r.key in keys:
                        hdrs = {k: v.decode(errors="replace") for k, v in r.headers}
                        found.setdefault(r.key, []).append(hdrs)
    finally:
        await consumer.stop()
    return found


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


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
