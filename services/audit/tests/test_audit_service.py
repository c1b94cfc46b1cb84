"""The audit service as a real process consuming real events from the real broker."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from phoihop_audit import merkle
from phoihop_common.kafka import KafkaSettings, client_kwargs, producer_kwargs
from phoihop_common.net import free_port
from phoihop_schemas import codec
from phoihop_schemas.events import Reporter
from phoihop_schemas.topics import CANONICAL, DEAD_LETTER
from phoihop_testkit.plugin import TEST_PII_KEY

pytestmark = pytest.mark.integration


@pytest.fixture
def audit_url(
    kafka_bootstrap: str, database_url: str, tmp_path: Path, config_dir: Path
) -> Iterator[str]:
    """`python -m phoihop_audit` on a free port, ready."""
    port = free_port()
    env = os.environ | {
        "PHOIHOP_AUDIT_PORT": str(port),
        "PHOIHOP_AUDIT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PHOIHOP_AUDIT_DATABASE_URL": database_url,
        "PHOIHOP_AUDIT_DATA_DIR": str(tmp_path / "audit-data"),
        "PHOIHOP_AUDIT_PII_KEY": TEST_PII_KEY,
        "PHOIHOP_AUDIT_CONFIG_DIR": str(config_dir),
        "PHOIHOP_AUDIT_CHECKPOINT_INTERVAL": "0.5",
    }
    log_path = tmp_path / "audit.log"
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "phoihop_audit"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _produce(bootstrap: str, models, extra=()) -> None:  # type: ignore[no-untyped-def]
    producer = AIOKafkaProducer(**producer_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)))
    await producer.start()
    try:
        for model in models:
            record = codec.encode(model, source="/phoihop/routing")
            topic = CANONICAL[type(model).event_name].name
            await producer.send_and_wait(
                topic, value=record.value, key=record.key, headers=record.headers
            )
        for topic, value, headers in extra:
            await producer.send_and_wait(topic, value=value, key=b"x", headers=headers)
    finally:
        await producer.stop()


async def _poll(client: httpx.AsyncClient, path: str, ok, **kw):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 30
    while True:
        resp = await client.get(path, **kw)
        if ok(resp):
            return resp
        assert time.monotonic() < deadline, f"{path}: {resp.status_code} {resp.text[:500]}"
        await asyncio.sleep(0.2)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_consumes_real_events_once_and_dead_letters_bad_ones(  # type: ignore[no-untyped-def]
    audit_url: str, kafka_bootstrap: str, ev, new_id
) -> None:
    rec = new_id()
    reporter = Reporter(name="Nguyễn Văn An", phone="0912 345 678", address="Thôn 3, Xã An Bình")
    received = ev.received(rec, reporter=reporter)
    assigned, answered = ev.assigned(rec), ev.answered(rec)
    models = [received, assigned, answered, ev.outcome(rec, of=assigned)]
    garbage = [
        (CANONICAL["received"].name, b"{not json", [("ce_type", b"x"), ("ce_specversion", b"1.0")]),
        (CANONICAL["assigned"].name, b"{}", []),
    ]
    await _produce(kafka_bootstrap, models, garbage)
    sup = {"X-API-Key": "dev-TT_HDND"}
    # The assignee owns the subscription of the outcome; reads without the reporter log nothing.
    mine = {"X-API-Key": "dev-SO_XAY_DUNG"}
    quiet = {"reporter": "false"}
    async with httpx.AsyncClient(base_url=audit_url, timeout=10) as client:
        trail = await _poll(
            client,
            f"/v1/recommendations/{rec}/trail",
            lambda r: (
                r.status_code == 200
                and len(r.json()["events"]) == 3
                and len(r.json()["notifications"]) == 1
            ),
            headers=mine,
            params=quiet,
        )
        events = trail.json()["events"]
        assert [(e["type"], e["sequence"]) for e in events] == [
            ("received", 1),
            ("assigned", 2),
            ("answered", 3),
        ]
        assert events[0]["event_id"] == codec.lifecycle_event_id(rec, 1)
        assert events[0]["source"] == "/phoihop/routing"
        assert events[0]["reporter_withheld"] is True  # asked for without it
        status = (await client.get(f"/v1/recommendations/{rec}", headers=sup, params=quiet)).json()
        assert status["status"] == "answered"
        assert status["agency"] == "SO_XAY_DUNG"

        # The same events once more (a redelivery): skipped, proven identical.
        await _produce(kafka_bootstrap, models)
        await _poll(
            client,
            "/metrics",
            lambda r: _metric(r.text, "phoihop_audit_duplicate_deliveries_total") >= 4,
        )
        again = (
            await client.get(f"/v1/recommendations/{rec}/trail", headers=mine, params=quiet)
        ).json()
        assert len(again["events"]) == 3
        assert len(again["notifications"]) == 1
        metrics = (await client.get("/metrics")).text
        assert _metric(metrics, 'phoihop_audit_events_stored_total{type="received"}') == 1
        assert _metric(metrics, 'phoihop_audit_answered_on_time_ratio{agency="SO_XAY_DUNG"}') == 1

        # Checkpoints are signed in the background, one may predate the last records: wait for
        # one covering the whole log; the answer is provably in it, and nothing more was logged.
        cps = await _poll(
            client,
            "/v1/audit/checkpoints",
            lambda r: max((c["tree_size"] for c in r.json()["checkpoints"]), default=0) >= 4,
        )
        cp = cps.json()["checkpoints"][0]
        assert cp["tree_size"] == 4
        proof = (
            await client.get(
                "/v1/audit/proof/inclusion",
                params={"event_id": codec.lifecycle_event_id(rec, 3), "tree_size": 4},
            )
        ).json()
        assert merkle.verify_inclusion(
            index=proof["leaf_index"],
            tree_size=4,
            leaf=bytes.fromhex(proof["leaf_hash"]),
            proof=[bytes.fromhex(h) for h in proof["audit_path"]],
            root_hash=bytes.fromhex(cp["root_hash"]),
        )
        verify = (await client.get("/v1/audit/verify")).json()
        assert (verify["ok"], verify["mode"], verify["tree_size"]) == (True, "checkpoint", 4)
        full = await client.get("/v1/audit/verify", params={"full": "true"}, headers=sup)
        assert (full.json()["ok"], full.json()["checked"]) == (True, 4)

        # A supervisor is cleared for an ordinary reporter: shown, never cached, and logged;
        # the outcome of another agency's subscription is not shown to it.
        seen = await client.get(f"/v1/recommendations/{rec}/trail", headers=sup)
        assert seen.json()["events"][0]["data"]["reporter"]["name"] == "Nguyễn Văn An"
        assert seen.headers["cache-control"] == "no-store"
        assert seen.json()["notifications"] == []
        after = (await client.get(f"/v1/recommendations/{rec}/trail", headers=mine)).json()
        assert [d["data"]["agency"] for d in after["disclosures"]] == ["TT_HDND"]

    reasons = await _dead_letters(kafka_bootstrap, want=2)
    assert sorted(reasons) == ["bad_json", "not_cloudevent"]


async def _dead_letters(bootstrap: str, *, want: int) -> list[str]:
    consumer = AIOKafkaConsumer(
        DEAD_LETTER.name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        **client_kwargs(KafkaSettings(kafka_bootstrap=bootstrap)),
    )
    await consumer.start()
    reasons: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while len(reasons) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    headers = dict(r.headers)
                    if headers.get("dlq_service") == b"audit":
                        reasons.append(headers["dlq_reason"].decode())
    finally:
        await consumer.stop()
    return reasons
