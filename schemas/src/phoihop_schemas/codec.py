"""CloudEvents 1.0 Kafka binary-mode codec, built on the CNCF `cloudevents` SDK."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ValidationError

from phoihop_schemas.events import (
    EVENT_MODELS,
    InboundSubmission,
    LifecycleEvent,
    NotificationOutcome,
    Response,
)
from phoihop_schemas.topics import (
    CE_TYPE_TO_EVENT,
    RESPONSE_CE_TYPE,
    SUBMISSION_CE_TYPE,
    ce_type_for,
)

MAX_MESSAGE_BYTES = 256 * 1024
EVENT_ID_NAMESPACE = uuid.UUID("6f1c3f52-5d0e-4c1b-9a57-70686f69686f")
_FORMAT = JSONFormat()

INBOUND_MODELS: dict[str, type[BaseModel]] = {
    SUBMISSION_CE_TYPE: InboundSubmission,
    RESPONSE_CE_TYPE: Response,
}


class DecodeError(Exception):
    """A Kafka record is not a valid phoihop CloudEvent; `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Record:
    """What goes on the wire: key, value and headers, ready for any Kafka client."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Envelope:
    """A decoded event: CloudEvents attributes plus the validated data model."""

    id: str
    type: str
    source: str
    subject: str | None
    time: datetime | None
    data: BaseModel
    extensions: Mapping[str, Any]

    @property
    def event_name(self) -> str:
        """Short name (`received`, `assigned`, ...) of a canonical event, or the inbound type."""
        return CE_TYPE_TO_EVENT.get(self.type, self.type)


def lifecycle_event_id(recommendation_id: str, sequence: int) -> str:
    """Deterministic event id: a replayed lifecycle step gets the id it had the first time."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{recommendation_id}/{sequence}"))


def outcome_event_id(event_id: str, subscription_id: str, attempt: int) -> str:
    """Deterministic id of one delivery attempt."""
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"outcome/{event_id}/{subscription_id}/{attempt}"))


def _ce_type(model: BaseModel) -> str:
    if isinstance(model, InboundSubmission):
        return SUBMISSION_CE_TYPE
    if isinstance(model, Response):
        return RESPONSE_CE_TYPE
    name = getattr(type(model), "event_name", "")
    if name not in EVENT_MODELS:
        raise TypeError(f"not an event model: {type(model).__name__}")
    return ce_type_for(name)


def _default_id(model: BaseModel) -> str:
    if isinstance(model, LifecycleEvent):
        return lifecycle_event_id(model.recommendation_id, model.sequence)
    if isinstance(model, NotificationOutcome):
        return outcome_event_id(model.event_id, model.subscription_id, model.attempt)
    return str(uuid.uuid4())


def _subject(model: BaseModel) -> str | None:
    rec = getattr(model, "recommendation_id", None)
    return str(rec) if rec else None


def encode(
    model: BaseModel,
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    key: str | None = None,
    extensions: Mapping[str, str] | None = None,
) -> Record:
    """Encode a model as a binary-mode CloudEvent; key and subject = recommendation id."""
    subject = _subject(model)
    attributes: dict[str, Any] = {
        "id": event_id or _default_id(model),
        "source": source,
        "type": _ce_type(model),
        "time": time or datetime.now(UTC),
        "datacontenttype": "application/json",
    }
    if subject:
        attributes["subject"] = subject
    if isinstance(model, LifecycleEvent):
        attributes["sequence"] = str(model.sequence)
    attributes.update(extensions or {})
    event = CloudEvent(attributes, model.model_dump(mode="json"))
    message = ce_kafka.to_binary(event, _FORMAT, key_mapper=lambda _e: None)
    record_key = key if key is not None else subject
    return Record(
        key=record_key.encode() if record_key else None,
        value=message.value,
        headers=list(message.headers.items()),
    )


def _header_dict(
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None,
) -> dict[str, bytes]:
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {k: (v if isinstance(v, bytes) else str(v).encode()) for k, v in items}


def decode(
    *,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None,
    key: bytes | None = None,
) -> Envelope:
    """Decode and validate a binary-mode CloudEvent; raise DecodeError with a reason."""
    if value is None:
        raise DecodeError("empty_value", "record has no value")
    if len(value) > MAX_MESSAGE_BYTES:
        raise DecodeError("oversized", f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    hdrs = _header_dict(headers)
    if "ce_type" not in hdrs or "ce_specversion" not in hdrs:
        raise DecodeError("not_cloudevent", "missing ce_type / ce_specversion headers")
    try:
        json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError("bad_json", str(exc)[:300]) from exc
    try:
        event = ce_kafka.from_binary(ce_kafka.KafkaMessage(hdrs, key, value), _FORMAT, CloudEvent)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise DecodeError("bad_envelope", str(exc)[:300]) from exc
    except Exception as exc:  # the SDK raises its own validation error types
        if type(exc).__module__.startswith("cloudevents"):
            raise DecodeError("bad_envelope", str(exc)[:300]) from exc
        raise
    ce_type = event.get_type()
    name = CE_TYPE_TO_EVENT.get(ce_type)
    model_cls = EVENT_MODELS[name] if name else INBOUND_MODELS.get(ce_type)
    if model_cls is None:
        raise DecodeError("unknown_type", ce_type)
    data = event.get_data()
    if not isinstance(data, dict):
        raise DecodeError("bad_data", "data is not a JSON object")
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        raise DecodeError("schema_violation", _short(exc)) from exc
    attrs = event.get_attributes()
    standard = {
        "id",
        "source",
        "type",
        "specversion",
        "time",
        "subject",
        "datacontenttype",
        "dataschema",
        "partitionkey",
    }
    return Envelope(
        id=event.get_id(),
        type=ce_type,
        source=event.get_source(),
        subject=event.get_subject(),
        time=event.get_time(),
        data=model,
        extensions={k: v for k, v in attrs.items() if k not in standard},
    )


def _short(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5]]
    return "; ".join(parts)


def dead_letter_headers(
    *, reason: str, detail: str, topic: str, partition: int, offset: int, service: str
) -> list[tuple[str, bytes]]:
    """Headers added to a record sent to the dead-letter topic."""
    return [
        ("dlq_reason", reason.encode()),
        ("dlq_detail", detail[:1000].encode()),
        ("dlq_topic", topic.encode()),
        ("dlq_partition", str(partition).encode()),
        ("dlq_offset", str(offset).encode()),
        ("dlq_service", service.encode()),
        ("dlq_time", datetime.now(UTC).isoformat().encode()),
    ]
