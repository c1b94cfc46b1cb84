"""A denouncer's identity is never in plain text on any topic or in any service's database.

The whole bus runs as real processes; a `to_cao` with a reporter goes in over HTTP; once it is
assigned and in the audit trail, every record of every topic and every column of every table
of notify, audit and ingest is searched for the reporter's name and phone in every spelling a
leak could take (NFC, NFD, JSON `\\uXXXX` escapes, folded to ASCII).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import create_engine, inspect, select, text
from unidecode import unidecode

from bench.bus import key
from phoihop_audit.db import events as audit_events
from phoihop_common.pii import DEV_KEY_FILE, PiiCipher, dev_key_dir, open_reporter, unb64
from phoihop_embedded.stack import Stack
from phoihop_schemas.codec import decode
from phoihop_schemas.events import Received
from phoihop_schemas.topics import ALL_TOPICS, CANONICAL, INBOUND_SUBMISSIONS, PREFIX
from phoihop_testkit.polling import poll
from phoihop_testkit.webhook_receiver import Delivery, WebhookReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(240)]

SUBMITTER = "UBMTTQ_TINH"

SUPERVISOR = "TT_HDND"
NAME = "Khúc Thị Nguyệt Ánh"
PHONE = "0987612345"
DENUNCIATION = (
    "Tố cáo cán bộ địa chính xã An Bình nhận tiền của người dân để làm nhanh thủ tục cấp "
    "giấy chứng nhận quyền sử dụng đất, trái quy định."
)


def _poll(fn: Callable[[], Any], *, what: str = "condition", timeout: float = 90.0) -> Any:
    return poll(fn, timeout=timeout, what=what)


def _spellings() -> dict[str, str]:
    """Every form in which the name or phone could leak, labelled."""
    forms: dict[str, str] = {"phone": PHONE, "phone without its 0": PHONE[1:]}
    for norm in ("NFC", "NFD"):
        name = unicodedata.normalize(norm, NAME)
        forms[f"name {norm}"] = name
        forms[f"name {norm} as \\uxxxx"] = json.dumps(name)[1:-1]
        forms[f"name {norm} as \\uXXXX"] = "".join(
            c if ord(c) < 128 else f"\\u{ord(c):04X}" for c in name
        )
    forms["name folded to ASCII"] = unidecode(NAME)
    forms["name folded to ASCII, lower case"] = unidecode(NAME).lower()
    return forms


def _leaks(haystack: str) -> list[str]:
    return [label for label, needle in _spellings().items() if needle in haystack]


def _database_url(stack: Stack, service: str) -> str:
    return stack.procs[service].env[f"PHOIHOP_{service.upper()}_DATABASE_URL"]


def _rows(url: str) -> Iterator[tuple[str, str, str]]:
    """(table, column, value as text) of every non-null cell of every table."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                result = conn.execute(text(f'SELECT * FROM "{table}"'))
                columns = list(result.keys())
                for row in result:
                    for column, value in zip(columns, row, strict=True):
                        if value is None:
                            continue
                        if isinstance(value, bytes | memoryview):
                            shown = bytes(value).decode("utf-8", errors="replace")
                        elif isinstance(value, dict | list):
                            shown = json.dumps(value, ensure_ascii=False) + json.dumps(value)
                        else:
                            shown = str(value)
                        yield table, column, shown
    finally:
        engine.dispose()


def _topic_name(stack: Stack, name: str) -> str:
    if stack.topic_prefix and name.startswith(f"{PREFIX}."):
        return stack.topic_prefix + name[len(PREFIX) :]
    return name


async def _read_everything(stack: Stack) -> dict[str, list[Any]]:
    """Every record of every topic (the registry's, and all others of an embedded broker)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        existing = await consumer.topics()
        wanted = {_topic_name(stack, t.name) for t in ALL_TOPICS}
        assert wanted <= existing, f"registry topics missing: {wanted - existing}"
        if stack.broker is not None:  # the whole broker is this test's: read all of it
            wanted |= {t for t in existing if not t.startswith("__")}
        # Before any `assign`: afterwards the client's metadata covers only assigned topics.
        layout = {t: sorted(consumer.partitions_for_topic(t) or ()) for t in wanted}
        assert all(layout.values()), f"topics without partitions: {layout}"
        out: dict[str, list[Any]] = {}
        for topic in sorted(wanted):
            tps = [TopicPartition(topic, p) for p in layout[topic]]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            records: list[Any] = []
            deadline = time.monotonic() + 30
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                assert time.monotonic() < deadline, f"could not read {topic} to its end"
                for part in (await consumer.getmany(*tps, timeout_ms=300)).values():
                    records.extend(part)
            out[topic] = records
        return out
    finally:
        await consumer.stop()


def _record_text(record: Any) -> str:
    parts = [record.value or b"", record.key or b""]
    parts += [v or b"" for _k, v in record.headers or ()]
    return " ".join(p.decode("utf-8", errors="replace") for p in parts)


def _stack_cipher(stack: Stack) -> PiiCipher:
    """The development keyring the stack's services generated and share."""
    path = dev_key_dir(_database_url(stack, "audit")) / DEV_KEY_FILE
    return PiiCipher(current=unb64(path.read_text()))


def test_a_denouncers_name_and_phone_are_nowhere_in_plain_text(
    stack_factory: Callable[..., Stack], config_dir: Path, receiver: WebhookReceiver
) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    # A supervisor follows every event of the province: it must get the case, not the person.
    (config_dir / "subscriptions.yaml").write_text(
        yaml.safe_dump(
            {
                "subscriptions": [
                    {
                        "agency": SUPERVISOR,
                        "url": receiver.url("/supervisor"),
                        "secret": secret,
                        "scope": "jurisdiction",
                    }
                ]
            },
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    stack = stack_factory(
        config_dir=config_dir,
        extra_env={"PHOIHOP_NOTIFY_ALLOWED_NETWORKS": "127.0.0.0/8"},
    )
    body = {
        "kind": "to_cao",
        "channel": "don_thu",
        "locality": "xa-an-binh",
        "text": DENUNCIATION,
        "reporter": {"name": NAME, "phone": PHONE, "address": "Thôn 7, xã An Bình"},
    }
    resp = httpx.post(
        f"{stack.url('ingest')}/v1/recommendations", json=body, headers=key(SUBMITTER), timeout=30
    )
    assert resp.status_code == 202, resp.text
    rec_id = str(resp.json()["id"])

    def delivered(event: str) -> Delivery | None:
        for d in receiver.snapshot():
            payload = d.json()
            if payload.get("subject") == rec_id and payload["type"].endswith(f".{event}.v1"):
                return d
        return None

    _poll(lambda: delivered("received") and delivered("assigned"), what="supervisor's webhooks")
    audit_url = _database_url(stack, "audit")

    def in_audit() -> bool:
        engine = create_engine(audit_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(audit_events.c.type, audit_events.c.reporter_enc).where(
                        audit_events.c.recommendation_id == rec_id
                    )
                ).all()
        finally:
            engine.dispose()
        types = {t for t, _ in rows}
        return {"received", "assigned"} <= types and any(e for t, e in rows if t == "received")

    _poll(in_audit, what="the case in audit's trail")
    cipher = _stack_cipher(stack)

    # The webhook body of a recipient not allowed to see the reporter holds no trace of it.
    for d in receiver.snapshot():
        assert not _leaks(d.body.decode()), d.body
        assert json.loads(d.body)["data"].get("reporter") is None

    topics = asyncio.run(_read_everything(stack))
    # Over HTTP the submission never touches the inbound topic (which alone may carry it plain).
    assert topics[_topic_name(stack, INBOUND_SUBMISSIONS.name)] == []
    received_topic = _topic_name(stack, CANONICAL["received"].name)
    [record] = [r for r in topics[received_topic] if r.key == rec_id.encode()]
    event = decode(value=record.value, headers=record.headers, key=record.key).data
    assert isinstance(event, Received)
    assert event.reporter is not None
    # Not vacuous: the identity is there, as ciphertext the bus's keyring opens.
    opened = open_reporter(event.reporter, recommendation_id=rec_id, cipher=cipher)
    assert (opened.name, opened.phone) == (NAME, PHONE)
    leaks = {
        f"{topic}@{r.partition}:{r.offset}": found
        for topic, records in topics.items()
        for r in records
        if (found := _leaks(_record_text(r)))
    }
    assert not leaks, leaks
    assert len(topics) >= len(ALL_TOPICS)

    databases = {_database_url(stack, s) for s in ("notify", "audit", "ingest")}
    scanned = 0
    found_at: dict[str, list[str]] = {}
    for url in databases:
        for table, column, value in _rows(url):
            scanned += 1
            if hits := _leaks(value):
                found_at[f"{table}.{column}"] = hits
    assert not found_at, found_at
    assert scanned > 0
    # Nor in what the services log.
    for name, proc in stack.procs.items():
        assert not _leaks(proc.log_path.read_text(errors="replace")), f"{name}'s log"

    # Audit holds the identity encrypted (its read side can open it for those allowed).
    engine = create_engine(audit_url)
    try:
        with engine.connect() as conn:
            token = conn.execute(
                select(audit_events.c.reporter_enc).where(
                    audit_events.c.recommendation_id == rec_id, audit_events.c.type == "received"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert json.loads(cipher.decrypt(token))["name"] == NAME
