"""Fakes shared by routing's unit tests: a recording outbox that can fail, sample inputs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import REGISTRY

from phoihop_routing.agents import INTERNAL_HEADER, Incoming
from phoihop_routing.app import Routing, create_app
from phoihop_routing.settings import Settings
from phoihop_schemas import codec
from phoihop_schemas.events import Channel, Kind, Received, Response, ResponseAction
from phoihop_schemas.topics import CANONICAL, ROUTING_COMMANDS

ROAD = "Cử tri thôn 3 đề nghị sửa chữa đường liên thôn 3 - thôn 4 bị xuống cấp nghiêm trọng"
AGENCY = "UBND_XA_XA_AN_BINH"
PRODUCER_MAX_BYTES = 1024 * 1024  # aiokafka's default max_request_size
# Fails a send: (topic, value) -> an exception raised by `send`, or None to let it through.
Fault = Callable[[str, bytes], BaseException | None]


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]

    def header(self, name: str) -> bytes | None:
        return dict(self.headers).get(name)


@dataclass
class FaultyOutbox:
    """Records sends like a producer: too large refused at `send`, injected faults too."""

    sent: list[Sent] = field(default_factory=list)
    send_fault: Fault | None = None
    ack_fault: Fault | None = None

    async def send(self, *, topic: str, key: bytes | None, value: bytes, headers: Any = ()) -> Any:
        if len(value) > PRODUCER_MAX_BYTES:
            raise MessageSizeTooLargeError(f"{len(value)} bytes")
        exc = self.send_fault(topic, value) if self.send_fault else None
        if exc is not None:
            raise exc
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        exc = self.ack_fault(topic, value) if self.ack_fault else None
        if exc is not None:
            fut.set_exception(exc)
        else:
            self.sent.append(Sent(topic, key, value, list(headers)))
            fut.set_result(None)
        return fut

    def take(self, topic: str) -> list[Sent]:
        out = [s for s in self.sent if s.topic == topic]
        self.sent = [s for s in self.sent if s.topic != topic]
        return out

    def events(self, name: str) -> list[Any]:
        return [
            codec.decode(value=s.value, headers=s.headers, key=s.key).data
            for s in self.take(CANONICAL[name].name)
        ]


def once(exc: BaseException, *, topic: str, marker: bytes = b"") -> Fault:
    """A fault raised for the first send to `topic` whose value contains `marker`."""
    fired: list[bool] = []

    def fault(t: str, value: bytes) -> BaseException | None:
        if t == topic and marker in value and not fired:
            fired.append(True)
            return exc
        return None

    return fault


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def make_routing(tmp_path: Path) -> tuple[Routing, FaultyOutbox]:
    """A finalized worker (never started) whose pipeline sends into a `FaultyOutbox`."""
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1", store="memory://", data_dir=tmp_path / "routing"
    )
    r = create_app(settings)
    r.app.finalize()
    r.app.flow_control.resume()
    r.pipeline.retry_backoff = 0.01
    outbox = FaultyOutbox()
    r.pipeline.outbox = outbox
    return r, outbox


def received(text: str = ROAD, *, submitted_by: str = "UBMTTQ_TINH") -> Received:
    return Received(
        recommendation_id=str(uuid.uuid4()),
        sequence=1,
        occurred_at=datetime.now(UTC),
        kind=Kind.KIEN_NGHI,
        channel=Channel.TIEP_XUC_CU_TRI,
        locality="xa-an-binh",
        text=text,
        submitted_by=submitted_by,
    )


def response(
    rec_id: str, action: ResponseAction, *, agency: str = AGENCY, **kw: Any
) -> codec.Record:
    return codec.encode(
        Response(
            response_id=str(uuid.uuid4()),
            recommendation_id=rec_id,
            agency=agency,
            action=action,
            responded_at=datetime.now(UTC),
            **kw,
        ),
        source="/agency/test",
    )


def route(rec: Received, *, partition: int = 0, offset: int = 0) -> Incoming:
    """The `route` command stage 2 would send for a new case (assigned to AGENCY)."""
    payload = {
        "op": "route",
        "bucket": "local:xa-an-binh",
        "received": rec.model_dump(mode="json"),
        "classification": {
            "category": "GIAO_THONG",
            "level": "xa",
            "agency": AGENCY,
            "decision": {"rule": "test", "version": "1", "evidence": [], "confidence": 0.9},
        },
    }
    return Incoming(
        topic=ROUTING_COMMANDS.name,
        partition=partition,
        offset=offset,
        key=rec.recommendation_id.encode(),
        value=json.dumps(payload).encode(),
        headers=((INTERNAL_HEADER, b"1"),),
    )


class DeadActor:
    """What faust's supervisor leaves of an actor that crashed."""

    crashed = True
    crash_reason = RuntimeError("x")
    actor_task = None
