"""CloudEvents 1.0 Kafka binary-mode codec, built on the CNCF `cloudevents` SDK."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ValidationError

from phoihop_schemas import textpolicy
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
# The id of a new recommendation: uuid5 over the submitting agency and its idempotency key,
# so an agency can compute the id of what it sent (HTTP or Kafka) and a resend gets it again.
SUBMISSION_ID_NAMESPACE = uuid.UUID("0b6f5a3e-2c7d-4e41-8f0a-696e67657374")
MAX_KEY_CHARS = 200
_FORMAT = JSONFormat()
_JSON_CONTENT_TYPE = re.compile(r"^(application|text)/([a-zA-Z0-9\-\.]+\+)?json(;.*)?$")

INBOUND_MODELS: dict[str, type[BaseModel]] = {
    SUBMISSION_CE_TYPE: InboundSubmission,
    RESPONSE_CE_TYPE: Response,
}
JSON_REASONS: dict[str, str] = {
    "invalid_json": "bad_json",
    "json_too_deep": "json_too_deep",
    "json_number_too_large": "json_number_too_large",
}
_STANDARD_ATTRIBUTES = frozenset(
    {
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
)


def _printable(text: str) -> str:
    # a detail may quote the bad input itself (lone surrogates included)
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


class DecodeError(Exception):
    """A Kafka record is not a valid phoihop CloudEvent; `reason` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        detail = _printable(detail)
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EncodeError(ValueError):
    """A model or attribute cannot be put on the wire (text that is not valid UTF-8)."""


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


def submission_id(*, agency: str, key: str) -> str:
    """Recommendation id of a submission: its agency and idempotency key decide it."""
    return str(uuid.uuid5(SUBMISSION_ID_NAMESPACE, f"{agency}\x1f{key}"))


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
    data = model.model_dump(mode="json")
    event = CloudEvent(attributes, data)
    record_key = key if key is not None else subject
    try:
        message = ce_kafka.to_binary(event, _FORMAT, key_mapper=lambda _e: None)
        encoded_key = record_key.encode() if record_key else None
        # json.dumps escapes non-ASCII, lone surrogates included: only a `\ud…` escape
        # (an astral character, or a surrogate) needs the strict check.
        if b"\\ud" in message.value:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EncodeError(
            f"{type(model).__name__} is not encodable as UTF-8: {_printable(str(exc))[:300]}"
        ) from exc
    return Record(key=encoded_key, value=message.value, headers=list(message.headers.items()))


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
    """Decode and validate a binary-mode CloudEvent; raise DecodeError (and nothing else)."""
    if value is None:
        raise DecodeError("empty_value", "record has no value")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise DecodeError("bad_json", f"value is {type(value).__name__}, not bytes")
    if len(value) > MAX_MESSAGE_BYTES:
        raise DecodeError("oversized", f"{len(value)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        hdrs = _header_dict(headers)
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise DecodeError("bad_envelope", f"unreadable headers: {str(exc)[:300]}") from exc
    if "ce_type" not in hdrs or "ce_specversion" not in hdrs:
        raise DecodeError("not_cloudevent", "missing ce_type / ce_specversion headers")
    try:
        data = textpolicy.loads(value)
    except textpolicy.JsonPolicyError as exc:
        raise DecodeError(JSON_REASONS[exc.reason], exc.detail) from exc
    # The data was parsed above, by the bounded parser: the SDK reads the headers only. It
    # and dateutil raise assorted types on hostile headers; none of them may escape.
    try:
        event = ce_kafka.from_binary(ce_kafka.KafkaMessage(hdrs, key, b""), _FORMAT, CloudEvent)
    except Exception as exc:
        raise DecodeError("bad_envelope", str(exc)[:300]) from exc
    attrs = event.get_attributes()
    for attr, attr_value in attrs.items():
        if isinstance(attr_value, str):
            try:
                textpolicy.check_text(attr_value)
            except ValueError as exc:
                raise DecodeError("bad_envelope", f"{attr}: {exc}") from exc
    content_type = event.get_datacontenttype()
    if content_type and not _JSON_CONTENT_TYPE.match(content_type):
        raise DecodeError("bad_data", f"datacontenttype {content_type!r} is not JSON")
    ce_type = event.get_type()
    name = CE_TYPE_TO_EVENT.get(ce_type)
    model_cls = EVENT_MODELS[name] if name else INBOUND_MODELS.get(ce_type)
    if model_cls is None:
        raise DecodeError("unknown_type", ce_type)
    if not isinstance(data, dict):
        raise DecodeError("bad_data", "data is not a JSON object")
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        raise DecodeError("schema_violation", _short(exc)) from exc
    return Envelope(
        id=event.get_id(),
        type=ce_type,
        source=event.get_source(),
        subject=event.get_subject(),
        time=event.get_time(),
        data=model,
        extensions={k: v for k, v in attrs.items() if k not in _STANDARD_ATTRIBUTES},
    )


def _short(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5]]
    return "; ".join(parts)


def dead_letter_headers(
    *, reason: str, detail: str, topic: str, partition: int, offset: int, service: str
) -> list[tuple[str, bytes]]:
    """Headers added to a record sent to the dead-letter topic."""

    def enc(text: str, limit: int = 1000) -> bytes:
        # a detail may quote the bad input itself (lone surrogates included)
        return text[:limit].encode("utf-8", errors="backslashreplace")

    return [
        ("dlq_reason", enc(reason, 200)),
        ("dlq_detail", enc(detail)),
        ("dlq_topic", enc(topic, 300)),
        ("dlq_partition", str(partition).encode()),
        ("dlq_offset", str(offset).encode()),
        ("dlq_service", service.encode()),
        ("dlq_time", datetime.now(UTC).isoformat().encode()),
    ]
