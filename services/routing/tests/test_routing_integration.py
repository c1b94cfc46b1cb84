"""The routing worker as a real process (`python -m phoihop_routing`) on the real broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from phoihop_common.kafka import KafkaSettings, client_kwargs, producer_kwargs
from phoihop_common.net import free_port
from phoihop_embedded.stack import tail
from phoihop_schemas import codec
from phoihop_schemas.events import Channel, Kind, Received, Response, ResponseAction
from phoihop_schemas.topics import CANONICAL, DEAD_LETTER, INBOUND_RESPONSES, LIFECYCLE_TOPICS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROAD = "Cử tri thôn 3 đề nghị sửa chữa đường liên thôn 3 - thôn 4 bị xuống cấp nghiêm trọng"
HEALTH = "Đề nghị sửa chữa trạm y tế xã đã xuống cấp, không đủ phòng khám cho người dân"
SCHOOL = "Cử tri đề nghị xây thêm phòng học cho trường tiểu học xã An Bình vì thiếu phòng"


@dataclass
class Worker:
    """One routing worker process."""

    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "phoihop_routing"],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    async def wait_ready(self, limit: float = 90.0) -> None:
        deadline = asyncio.get_running_loop().time() + limit
        async with httpx.AsyncClient() as client:
            while True:
                assert self.alive(), f"worker exited:\n{tail(self.log_path, 60)}"
                try:
                    r = await client.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)
                    if r.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"worker not ready:\n{tail(self.log_path, 60)}")
                await asyncio.sleep(0.3)


class Bus:
    """Produces with the codec and records everything routing writes."""

    def __init__(self, bootstrap: str) -> None:
        self.settings = KafkaSettings(kafka_bootstrap=bootstrap)
        self.producer = AIOKafkaProducer(**producer_kwargs(self.settings))
        self.consumer = AIOKafkaConsumer(
            *[t.name for t in LIFECYCLE_TOPICS],
            DEAD_LETTER.name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            **client_kwargs(self.settings),
        )
        self.records: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for msg in self.consumer:
            self.records.append(msg)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.consumer.stop()
        await self.producer.stop()

    async def send(self, topic: str, record: codec.Record) -> None:
        await self.producer.send_and_wait(
            topic, value=record.value, key=record.key, headers=record.headers
        )

    def events(self, rec_id: str) -> dict[int, tuple[str, Any]]:
        """Sequence -> (event id, event) of one recommendation (replays collapse by id)."""
        out: dict[int, tuple[str, Any]] = {}
        for msg in self.records:
            if msg.topic == DEAD_LETTER.name or msg.key != rec_id.encode():
                continue
            env = codec.decode(value=msg.value, headers=msg.headers, key=msg.key)
            seq = env.data.sequence
            assert out.get(seq, (env.id, None))[0] == env.id, f"two events with sequence {seq}"
            out[seq] = (env.id, env.data)
        return out

    def dead_letters(self, key: bytes) -> list[str]:
        return [
            dict(m.headers)["dlq_reason"].decode()
            for m in self.records
            if m.topic == DEAD_LETTER.name and m.key == key
        ]

    async def wait_for(self, what: str, check: Callable[[], Any], limit: float = 45.0) -> Any:
        deadline = asyncio.get_running_loop().time() + limit
        while True:
            value = check()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.2)


def received(text: str, kind: Kind, *, submitted_by: str = "UBMTTQ_TINH") -> Received:
    return Received(
        recommendation_id=str(uuid.uuid4()),
        sequence=1,
        occurred_at=datetime.now(UTC),
        kind=kind,
        channel=Channel.TIEP_XUC_CU_TRI,
        locality="xa-an-binh",
        text=text,
        submitted_by=submitted_by,
    )


def response(rec_id: str, agency: str, action: ResponseAction, **kw: Any) -> codec.Record:
    return codec.encode(
        Response(
            response_id=str(uuid.uuid4()),
            recommendation_id=rec_id,
            agency=agency,
            action=action,
            responded_at=datetime.now(UTC),
            **kw,
        ),
        source="/test",
    )


def of_type(events: dict[int, tuple[str, Any]], name: str) -> list[Any]:
    return [e for _, (_, e) in sorted(events.items()) if type(e).event_name == name]


def no_gaps(events: dict[int, tuple[str, Any]]) -> bool:
    return sorted(events) == list(range(1, len(events) + 1))


@pytest.fixture
def short_config(config_dir: Path) -> Path:
    """Complaints (khieu_nai) get a 3-second answer limit and a ladder in seconds."""
    path = config_dir / "sla_policies.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["kinds"]["khieu_nai"]["answer"] = {"seconds": 3}
    doc["escalation"]["remind_before"] = {"seconds": 1}
    doc["escalation"]["levels"][0]["after"] = {"seconds": 0}
    doc["escalation"]["levels"][1]["after"] = {"seconds": 2}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return config_dir


@pytest.fixture
def worker(kafka_bootstrap: str, short_config: Path, tmp_path: Path) -> Iterator[Worker]:
    port = free_port()
    env = dict(os.environ) | {
        "PYTHONUNBUFFERED": "1",
        "PHOIHOP_CONFIG_DIR": str(short_config),
        "PHOIHOP_ROUTING_HOST": "127.0.0.1",
        "PHOIHOP_ROUTING_PORT": str(port),
        "PHOIHOP_ROUTING_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PHOIHOP_ROUTING_DATA_DIR": str(tmp_path / "routing"),
        "PHOIHOP_ROUTING_TIMER_INTERVAL": "0.2",
    }
    w = Worker(env=env, log_path=tmp_path / "routing.log", port=port)
    w.start()
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
async def bus(kafka_bootstrap: str) -> AsyncIterator[Bus]:
    b = Bus(kafka_bootstrap)
    await b.start()
    try:
        yield b
    finally:
        await b.stop()


async def test_routing_worker_end_to_end(worker: Worker, bus: Bus) -> None:
    await worker.wait_ready()

    # received -> assigned (sequence 2, explained, with deadlines)
    road = received(ROAD, Kind.KIEN_NGHI)
    await bus.send(CANONICAL["received"].name, codec.encode(road, source="/phoihop/ingest"))
    events = await bus.wait_for(
        "assigned", lambda: of_type(bus.events(road.recommendation_id), "assigned")
    )
    (assigned,) = events
    assert assigned.sequence == 2
    assert assigned.agency == "UBND_XA_XA_AN_BINH"
    assert assigned.decision.rule
    assert assigned.decision.version
    assert assigned.decision.evidence
    assert 0 < assigned.decision.confidence <= 1
    assert assigned.accept_deadline is not None
    assert (assigned.deadline - road.occurred_at).days >= 29

    # another agency's answer -> dead letter; the assignee's answer -> answered, sequence 3
    rec_key = road.recommendation_id.encode()
    await bus.send(
        INBOUND_RESPONSES.name,
        response(road.recommendation_id, "SO_Y_TE", ResponseAction.ANSWER, text="Không phải tôi"),
    )
    await bus.wait_for("not_assignee", lambda: "not_assignee" in bus.dead_letters(rec_key))
    await bus.send(
        INBOUND_RESPONSES.name,
        response(road.recommendation_id, assigned.agency, ResponseAction.ANSWER, text="Đã sửa"),
    )
    (answered,) = await bus.wait_for(
        "answered", lambda: of_type(bus.events(road.recommendation_id), "answered")
    )
    assert (answered.sequence, answered.on_time, answered.agency) == (3, True, assigned.agency)
    assert answered.recipients == ("UBMTTQ_TINH",)

    # poison bytes on the responses topic -> dead letter, the worker keeps running
    await bus.producer.send_and_wait(INBOUND_RESPONSES.name, value=b"\x00\xffpoison", key=b"poison")
    reasons = await bus.wait_for("poison dead-lettered", lambda: bus.dead_letters(b"poison"))
    assert reasons == ["not_cloudevent"]
    assert worker.alive()

    # a complaint with a 3-second limit: reminded (if still in time), escalated level 1 and 2
    late = received(HEALTH, Kind.KHIEU_NAI)
    await bus.send(CANONICAL["received"].name, codec.encode(late, source="/phoihop/ingest"))
    levels = await bus.wait_for(
        "escalated twice",
        lambda: (
            len(of_type(bus.events(late.recommendation_id), "escalated")) == 2
            and of_type(bus.events(late.recommendation_id), "escalated")
        ),
    )
    (late_assigned,) = of_type(bus.events(late.recommendation_id), "assigned")
    first, second = levels
    assert (first.level, second.level) == (1, 2)
    assert first.agency == late_assigned.agency
    assert {"TT_HDND", "UBMTTQ_TINH"} <= set(first.recipients)
    if late_assigned.agency != "UBND_TINH":
        assert first.recipients[0] == "UBND_TINH"  # the assignee's superior
    assert second.recipients == ("UBND_TINH", "DOAN_DBQH")
    assert no_gaps(bus.events(late.recommendation_id))

    # metrics page carries routing's own metrics
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"http://127.0.0.1:{worker.port}/metrics")).text
        assert (await client.get(f"http://127.0.0.1:{worker.port}/healthz")).status_code == 200
    assert 'phoihop_routing_escalations_total{level="1"}' in metrics
    assert "phoihop_routing_assignments_total" in metrics
    assert "phoihop_routing_dead_lettered_total" in metrics

    # kill -9 and restart: state recovered from the changelog, sequences continue
    before = len(bus.events(late.recommendation_id))
    worker.kill()
    worker.start()
    await worker.wait_ready(limit=120)
    await bus.send(CANONICAL["received"].name, codec.encode(road, source="/phoihop/ingest"))
    await bus.send(
        INBOUND_RESPONSES.name,
        response(late.recommendation_id, late_assigned.agency, ResponseAction.ANSWER, text="Muộn"),
    )
    (late_answer,) = await bus.wait_for(
        "late answer", lambda: of_type(bus.events(late.recommendation_id), "answered"), 90
    )
    assert late_answer.sequence == before + 1
    assert late_answer.on_time is False
    assert no_gaps(bus.events(late.recommendation_id))
    school = received(SCHOOL, Kind.KIEN_NGHI)
    await bus.send(CANONICAL["received"].name, codec.encode(school, source="/phoihop/ingest"))
    await bus.wait_for(
        "new case assigned", lambda: of_type(bus.events(school.recommendation_id), "assigned")
    )
    # the re-sent `received` of a known case was ignored: still one assigned, sequence 1..3
    road_events = bus.events(road.recommendation_id)
    assert sorted(road_events) == [1, 2, 3]
    assert worker.alive()


def _rocksdb_files(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.name == "CURRENT"]


@pytest.fixture
def rocksdb_worker(worker: Worker) -> Worker:
    """The same worker, with the production store: rocksdb:// (rocksdict) under data_dir."""
    worker.stop()
    worker.env["PHOIHOP_ROUTING_STORE"] = "rocksdb://"
    worker.start()
    return worker


async def test_rocksdb_store_keeps_state_across_a_kill(rocksdb_worker: Worker, bus: Bus) -> None:
    worker = rocksdb_worker
    await worker.wait_ready()
    road = received(ROAD, Kind.KIEN_NGHI)
    await bus.send(CANONICAL["received"].name, codec.encode(road, source="/phoihop/ingest"))
    (assigned,) = await bus.wait_for(
        "assigned", lambda: of_type(bus.events(road.recommendation_id), "assigned")
    )
    assert _rocksdb_files(Path(worker.env["PHOIHOP_ROUTING_DATA_DIR"])), "no RocksDB files"
    worker.kill()
    worker.start()
    await worker.wait_ready(limit=120)
    await bus.send(
        INBOUND_RESPONSES.name,
        response(road.recommendation_id, assigned.agency, ResponseAction.ANSWER, text="Đã sửa"),
    )
    try:
        (answered,) = await bus.wait_for(
            "answered", lambda: of_type(bus.events(road.recommendation_id), "answered"), 90
        )
    except AssertionError:
        print(bus.dead_letters(road.recommendation_id.encode()), tail(worker.log_path, 80))
        raise
    assert answered.sequence == 3
    assert no_gaps(bus.events(road.recommendation_id))


async def test_a_2_mb_response_is_dead_lettered_summarised_and_the_next_case_flows(
    worker: Worker, bus: Bus
) -> None:
    await worker.wait_ready()
    big = AIOKafkaProducer(**producer_kwargs(bus.settings), max_request_size=4 * 2**20)
    await big.start()
    try:
        answer = response(str(uuid.uuid4()), "SO_Y_TE", ResponseAction.ANSWER, text="Xong")
        huge = answer.value[:-1] + b', "pad": "' + b"x" * (2 * 2**20) + b'"}'
        await big.send_and_wait(
            INBOUND_RESPONSES.name, value=huge, key=b"huge-response", headers=answer.headers
        )
    finally:
        await big.stop()
    road = received(ROAD, Kind.KIEN_NGHI)
    await bus.send(CANONICAL["received"].name, codec.encode(road, source="/phoihop/ingest"))
    (assigned,) = await bus.wait_for(
        "assigned after the poison",
        lambda: of_type(bus.events(road.recommendation_id), "assigned"),
        90,
    )
    await bus.send(
        INBOUND_RESPONSES.name,
        response(road.recommendation_id, assigned.agency, ResponseAction.ACCEPT),
    )
    await bus.wait_for(
        "accepted on the same topic after the poison",
        lambda: of_type(bus.events(road.recommendation_id), "accepted"),
    )
    (dead,) = [m for m in bus.records if m.topic == DEAD_LETTER.name and m.key == b"huge-response"]
    headers = dict(dead.headers)
    assert headers["dlq_reason"] == b"oversized"
    assert headers["dlq_value_truncated"] == b"1"
    assert headers["dlq_topic"] == INBOUND_RESPONSES.name.encode()
    summary = json.loads(dead.value)
    assert (summary["truncated"], summary["size"]) == (True, len(huge))
    assert worker.alive()
    async with httpx.AsyncClient() as client:
        ready = await client.get(f"http://127.0.0.1:{worker.port}/readyz")
    assert ready.status_code == 200, ready.text
    assert "agent_crashed" not in worker.log_path.read_text(errors="replace")
