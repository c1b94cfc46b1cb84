"""Generate JSON Schema for every event and an AsyncAPI 3 document from the models.

`python -m phoihop_schemas.export schemas/generated` (or `make schemas`) rewrites the
checked-in files; a test fails when they are stale, another parses the AsyncAPI document
with the official parser (`tests/contracts/node`).

The AsyncAPI document describes an agency's system as a client of the bus: it *sends* to
the inbound topics and *receives* from the canonical topics and the dead-letter topic. The
bus's internal topics (routing timers, duplicate buckets, routing commands, notify retries)
are its own plumbing, not a contract: they are left out and listed in `info.description`.
Every example is a real model instance put through `codec.encode`, so example headers and
payloads are exactly what the bus sends.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from phoihop_schemas.codec import (
    INBOUND_MODELS,
    MAX_KEY_CHARS,
    MAX_MESSAGE_BYTES,
    SUBMISSION_ID_NAMESPACE,
    DecodeError,
    Record,
    dead_letter_headers,
    decode,
    encode,
    lifecycle_event_id,
    submission_id,
)
from phoihop_schemas.events import (
    EVENT_MODELS,
    MAX_TEXT_CHARS,
    Accepted,
    Answered,
    Assigned,
    Channel,
    Closed,
    Decision,
    Declined,
    DuplicateSuggested,
    Escalated,
    Extended,
    InboundSubmission,
    Kind,
    Level,
    LifecycleEvent,
    Merged,
    NotificationOutcome,
    Received,
    Reminded,
    Reopened,
    Reporter,
    Response,
    ResponseAction,
    SuggestedDuplicate,
)
from phoihop_schemas.topics import (
    ALL_TOPICS,
    CE_TYPE_TO_EVENT,
    DEAD_LETTER,
    INBOUND_SUBMISSIONS,
    PREFIX,
    RESPONSE_CE_TYPE,
    SUBMISSION_CE_TYPE,
    Role,
    Topic,
    ce_type_for,
)

SCHEMA_BASE = "https://phoihop.example/schemas"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING = "0.5.0"
SCHEMA_REF = "#/components/schemas/{model}"

MAX_IDEMPOTENCY_KEY_CHARS = MAX_KEY_CHARS
REPORTER_REQUIRED_KINDS = (Kind.KHIEU_NAI, Kind.TO_CAO)
# Codes of deploy/config/admin_units.yaml (the sample province); a test pins them equal.
SAMPLE_LOCALITIES = (
    "phuong-trung-tam",
    "phuong-bac-son",
    "phuong-song-cong",
    "xa-an-binh",
    "xa-tan-phu",
    "xa-hoa-lac",
    "xa-dong-tien",
    "xa-phu-xuyen",
    "xa-na-hang",
    "dac-khu-dao-ngoc",
)

# Every `dlq_reason` a service writes; a test finds the reasons in the sources.
DEAD_LETTER_REASONS: dict[str, str] = {
    "empty_value": "the record has no value",
    "oversized": f"the value is over {MAX_MESSAGE_BYTES} bytes",
    "not_cloudevent": "no ce_type / ce_specversion header",
    "bad_envelope": "CloudEvents headers unreadable or violating the text policy",
    "bad_json": "the value is not UTF-8 JSON (or holds NaN / Infinity)",
    "json_too_deep": "JSON nested deeper than 32 levels",
    "json_number_too_large": "a JSON number too large",
    "bad_data": "the data is not a JSON object, or its content-type is not JSON",
    "unknown_type": "ce_type is not a phoihop type",
    "unexpected_type": "a known ce_type on a topic that does not carry it",
    "wrong_topic": "a known ce_type on a topic that does not carry it (audit)",
    "schema_violation": "the data does not match the message's JSON Schema",
    "unknown_agency": "submitted_by is not an agency code",
    "unknown_locality": "locality is not an administrative-unit code",
    "reporter_required": "a khieu_nai or to_cao without reporter",
    "empty_text": "text empty after trimming",
    "text_too_long": "text longer than the deployment's limit",
    "invalid_text": "text that no UTF-8 encoder accepts",
    "idempotency_key_reused": "the key was used before with a different submission",
    "key_mismatch": "a response whose Kafka key is not its recommendation_id",
    "unknown_recommendation": "a response about an unknown recommendation",
    "not_assignee": "a response from an agency the case is not assigned to",
    "invalid_transition": "a response the case's status does not allow",
    "extension_not_allowed": "an extension the time-limit policy does not allow",
    "answer_closed_case": "an answer to a closed case",
    "missing_text": "an answer without text",
    "not_triage": "classify from an agency without the triage role",
    "missing_classification": "classify without category and level",
    "unknown_category": "classify with an unknown category",
    "not_supervisor": "close or reopen from an agency without the supervisor role",
    "event_id_conflict": "an event id already stored with other content (audit)",
    "classification_failed": "routing could not classify the recommendation",
    "bad_internal_message": "a malformed message on an internal topic",
    "produce_failed": "routing could not produce the resulting events",
    "processing_failed": "the record kept failing after bounded retries",
    "internal_error": "an unexpected error while processing the record",
}

_INTERNAL_NOTE = (
    "Internal topics (the bus's own plumbing, not part of this contract; do not read or "
    "write them): {names}."
)


@dataclass(frozen=True)
class _Message:
    """One message of the document: its id, model, CloudEvents type and topic."""

    name: str
    model: type[BaseModel]
    ce_type: str
    topic: Topic

    @property
    def lifecycle(self) -> bool:
        """Whether the message carries a per-recommendation `sequence`."""
        return issubclass(self.model, LifecycleEvent)

    @property
    def inbound(self) -> bool:
        """Whether agencies write it."""
        return self.topic.role is Role.INBOUND


def _models() -> dict[str, tuple[type[BaseModel], str]]:
    """Every message model by file stem, with its CloudEvents type."""
    out: dict[str, tuple[type[BaseModel], str]] = {
        name: (model, ce_type_for(name)) for name, model in EVENT_MODELS.items()
    }
    out["inbound_submission"] = (INBOUND_MODELS[SUBMISSION_CE_TYPE], SUBMISSION_CE_TYPE)
    out["inbound_response"] = (INBOUND_MODELS[RESPONSE_CE_TYPE], RESPONSE_CE_TYPE)
    return out


def _messages() -> list[_Message]:
    """The messages of every inbound and canonical topic of the registry, in its order."""
    stem_of = {ce_type: stem for stem, (_model, ce_type) in _models().items()}
    out = []
    for topic in ALL_TOPICS:
        if topic.role not in (Role.INBOUND, Role.CANONICAL) or topic.ce_type is None:
            continue
        stem = stem_of[topic.ce_type]
        out.append(_Message(stem, _models()[stem][0], topic.ce_type, topic))
    return out


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12) of each message's `data`."""
    schemas: dict[str, dict[str, Any]] = {}
    for stem, (model, ce_type) in _models().items():
        schema = model.model_json_schema(mode="serialization")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{SCHEMA_BASE}/{stem}.json"
        schema["x-cloudevents-type"] = ce_type
        schemas[stem] = schema
    return schemas


# --------------------------------------------------------------------------- headers


def _ce_headers(*, ce_type: str | None, lifecycle: bool, inbound: bool) -> dict[str, Any]:
    """JSON Schema of the CloudEvents binary-mode Kafka headers (values as UTF-8 strings)."""
    type_schema: dict[str, Any] = {"type": "string", "description": "CloudEvents type"}
    if ce_type is None:
        known = sorted({*CE_TYPE_TO_EVENT, SUBMISSION_CE_TYPE, RESPONSE_CE_TYPE})
        type_schema["enum"] = known
    else:
        type_schema["const"] = ce_type
    if inbound:
        id_text = (
            "Unique per message (a UUID is recommended); a re-sent message keeps its id. "
            "Without idempotency_key and source_ref, `ce:<id>` is the submission's "
            "idempotency key."
        )
        content_type: dict[str, Any] = {
            "type": "string",
            "pattern": r"^(application|text)/([a-zA-Z0-9\-\.]+\+)?json(;.*)?$",
            "description": "a JSON media type; application/json recommended",
        }
    else:
        id_text = (
            "Event id, stable across replays: uuid5 of the recommendation id and sequence "
            "for lifecycle events. Consumers de-duplicate on it."
        )
        content_type = {"type": "string", "const": "application/json"}
    properties: dict[str, Any] = {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "minLength": 1, "description": id_text},
        "ce_source": {
            "type": "string",
            "minLength": 1,
            "format": "uri-reference",
            "description": "producer, e.g. /phoihop/ingest, /phoihop/routing, /agency/SO_Y_TE",
        },
        "ce_type": type_schema,
        "ce_time": {"type": "string", "format": "date-time", "description": "RFC 3339"},
        "ce_subject": {"type": "string", "description": "the recommendation id (= Kafka key)"},
        "content-type": content_type,
    }
    required = ["ce_specversion", "ce_id", "ce_source", "ce_type"]
    if lifecycle or ce_type is None:
        properties["ce_sequence"] = {
            "type": "string",
            "pattern": "^[1-9][0-9]*$",
            "description": "per-recommendation sequence 1, 2, 3 … without gaps "
            "(lifecycle events only; a gap means a lost event)",
        }
    if not inbound:
        required += ["ce_time", "content-type"]
    if lifecycle:
        required += ["ce_subject", "ce_sequence"]
    return {
        "type": "object",
        "description": "CloudEvents 1.0, Kafka protocol binding, binary content mode: "
        "attributes as ce_* headers (UTF-8 values), data as the record value. Other "
        "headers are CloudEvents extension attributes (ce_<name>) or transport metadata.",
        "properties": properties,
        "required": required,
        "additionalProperties": {"type": "string"},
    }


def _dead_letter_headers() -> dict[str, Any]:
    """JSON Schema of the headers of a dead-letter record."""
    reasons = "; ".join(f"`{r}`: {text}" for r, text in DEAD_LETTER_REASONS.items())
    integer = {"type": "string", "pattern": "^-?[0-9]+$"}
    return {
        "type": "object",
        "description": "The original record's headers (ce_* included) plus dlq_* headers "
        "naming the reason and the original coordinates (UTF-8 values).",
        "properties": {
            "dlq_reason": {
                "type": "string",
                "maxLength": 200,
                "description": f"machine-readable reason: {reasons}",
                "examples": list(DEAD_LETTER_REASONS),
            },
            "dlq_detail": {
                "type": "string",
                "maxLength": 1000,
                "description": "human-readable detail (may quote the bad input)",
            },
            "dlq_topic": {"type": "string", "description": "topic of the original record"},
            "dlq_partition": {**integer, "description": "partition of the original record"},
            "dlq_offset": {**integer, "description": "offset of the original record"},
            "dlq_service": {
                "type": "string",
                "description": "the service that gave up",
                "examples": ["ingest", "routing", "notify", "audit"],
            },
            "dlq_time": {"type": "string", "format": "date-time"},
            "dlq_value_truncated": {
                "type": "string",
                "const": "1",
                "description": f"present when the original value was over {MAX_MESSAGE_BYTES} "
                "bytes: the value is then a DeadLetterSummary",
            },
            "dlq_key_sha256": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "present when the original key was over 1 KiB: its SHA-256; "
                "the key is cut to its first KiB",
            },
            "dlq_headers_dropped": {
                **integer,
                "description": "present when the original headers were over 16 KiB: how "
                "many were dropped",
            },
        },
        "required": [
            "dlq_reason",
            "dlq_detail",
            "dlq_topic",
            "dlq_partition",
            "dlq_offset",
            "dlq_service",
            "dlq_time",
        ],
        "additionalProperties": {"type": "string"},
    }


_DEAD_LETTER_SUMMARY: dict[str, Any] = {
    "type": "object",
    "description": "What replaces an oversized value on the dead-letter topic.",
    "properties": {
        "truncated": {"type": "boolean", "const": True},
        "size": {"type": "integer", "minimum": 0, "description": "original size in bytes"},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "head_base64": {"type": "string", "description": "the first KiB, base64"},
    },
    "required": ["truncated", "size", "sha256", "head_base64"],
    "additionalProperties": False,
}


def header_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema (draft 2020-12) of the Kafka headers: CloudEvents and dead letters."""
    out = {
        "cloudevents_headers": _ce_headers(ce_type=None, lifecycle=False, inbound=True),
        "dead_letter_headers": _dead_letter_headers(),
    }
    for stem, schema in out.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{SCHEMA_BASE}/{stem}.json"
    return out


# --------------------------------------------------------------------------- examples

_T0 = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 08:30 in Vietnam
_SUBMITTER = "UBMTTQ_TINH"
_IDEMPOTENCY_KEY = "MTTQ-2026-0042"


_REC = submission_id(agency=_SUBMITTER, key=_IDEMPOTENCY_KEY)
_DUP = submission_id(agency="DOAN_DBQH", key="DBQH-KN-2026-117")
_DECISION = Decision(
    rule="giao-thong-tinh-lo",
    version="2026.03",
    evidence=("đường liên thôn", "sạt lở"),
    confidence=0.93,
)


def _at(*, hours: float = 0, days: int = 0) -> datetime:
    return _T0 + timedelta(days=days, hours=hours)


def _example_events() -> dict[str, list[tuple[str, BaseModel]]]:
    """Message id → (summary, model instance) of one plausible case."""
    life: dict[str, Any] = {"recommendation_id": _REC}
    text = "Cử tri thôn 3 xã An Bình đề nghị sửa chữa đường liên thôn bị sạt lở sau mưa lũ."
    return {
        "inbound_submission": [
            (
                "A voters' recommendation with an idempotency key",
                InboundSubmission(
                    kind=Kind.KIEN_NGHI,
                    channel=Channel.TIEP_XUC_CU_TRI,
                    locality="xa-an-binh",
                    text=text,
                    submitted_at=date(2026, 3, 1),
                    source_ref="MTTQ/TXCT/2026/15",
                    submitted_by=_SUBMITTER,
                    idempotency_key=_IDEMPOTENCY_KEY,
                ),
            ),
            (
                "A denunciation: reporter required, neither idempotency_key nor source_ref "
                "(the key is then ce:<ce_id>)",
                InboundSubmission(
                    kind=Kind.TO_CAO,
                    channel=Channel.DON_THU,
                    locality="xa-na-hang",
                    text="Tố cáo cán bộ địa chính xã nhận tiền để cấp giấy chứng nhận trái phép.",
                    reporter=Reporter(
                        name="Nguyễn Văn A", phone="0912 345 678", address="Thôn Bản Lác"
                    ),
                    submitted_by="THANH_TRA_TINH",
                ),
            ),
        ],
        "inbound_response": [
            (
                "The assignee answers",
                Response(
                    response_id="SXD-TL-2026-0117",
                    recommendation_id=_REC,
                    agency="SO_XAY_DUNG",
                    action=ResponseAction.ANSWER,
                    text="Sở Xây dựng đã bố trí kinh phí khắc phục, thi công xong trước 30/6/2026.",
                    responded_at=_at(days=20),
                ),
            ),
        ],
        "received": [
            (
                "Ingest accepted the submission above; recommendation_id is derived from "
                "submitted_by and idempotency_key",
                Received(
                    **life,
                    sequence=1,
                    occurred_at=_at(hours=0.1),
                    kind=Kind.KIEN_NGHI,
                    channel=Channel.TIEP_XUC_CU_TRI,
                    locality="xa-an-binh",
                    text=text,
                    submitted_at=date(2026, 3, 1),
                    source_ref="MTTQ/TXCT/2026/15",
                    submitted_by=_SUBMITTER,
                ),
            )
        ],
        "merged": [
            (
                "The same matter raised by the National Assembly delegation is linked",
                Merged(
                    recommendation_id=_DUP,
                    sequence=2,
                    occurred_at=_at(days=1),
                    duplicate_of=_REC,
                    similarity=0.91,
                    decision=Decision(
                        rule="dedup-minhash", version="2026.03", evidence=("sạt lở",)
                    ),
                    submitted_by="DOAN_DBQH",
                ),
            )
        ],
        "assigned": [
            (
                "Routing assigns the case to the Department of Construction",
                Assigned(
                    **life,
                    sequence=2,
                    occurred_at=_at(hours=0.2),
                    agency="SO_XAY_DUNG",
                    category="GIAO_THONG",
                    level=Level.TINH,
                    kind=Kind.KIEN_NGHI,
                    locality="xa-an-binh",
                    accept_deadline=_at(days=3),
                    deadline=_at(days=30),
                    decision=_DECISION,
                ),
            )
        ],
        "duplicate_suggested": [
            (
                "A similar matter below the auto-merge bar: suggested to the assignee and triage",
                DuplicateSuggested(
                    recommendation_id=_DUP,
                    sequence=3,
                    occurred_at=_at(days=1),
                    agency="SO_XAY_DUNG",
                    candidates=(
                        SuggestedDuplicate(
                            recommendation_id=_REC,
                            similarity=0.28,
                            evidence=(
                                "similarity 0.280: suggested (>= 0.15, < 0.3)",
                                "words 0.40: sạt, lở, kè",
                            ),
                        ),
                    ),
                    recipients=("SO_XAY_DUNG", "TT_HDND"),
                    decision=Decision(
                        rule="duplicates.rank_candidates",
                        version="2026.03",
                        evidence=("bucket=xa-an-binh/GIAO_THONG", "suggestions=1"),
                        confidence=0.28,
                    ),
                ),
            )
        ],
        "accepted": [
            (
                "The assignee takes it on",
                Accepted(**life, sequence=3, occurred_at=_at(days=1), agency="SO_XAY_DUNG"),
            ),
        ],
        "declined": [
            (
                "Another assignee declines as not competent",
                Declined(
                    recommendation_id=_DUP,
                    sequence=3,
                    occurred_at=_at(days=1),
                    agency="SO_NN_MT",
                    reason="Nội dung thuộc thẩm quyền của Sở Xây dựng.",
                ),
            )
        ],
        "reminded": [
            (
                "Reminder before the answer deadline",
                Reminded(
                    **life,
                    sequence=4,
                    occurred_at=_at(days=25),
                    agency="SO_XAY_DUNG",
                    deadline=_at(days=30),
                ),
            )
        ],
        "escalated": [
            (
                "The answer deadline passed: first level of the ladder",
                Escalated(
                    **life,
                    sequence=5,
                    occurred_at=_at(days=31),
                    agency="SO_XAY_DUNG",
                    level=1,
                    deadline=_at(days=30),
                    recipients=("UBND_TINH",),
                ),
            )
        ],
        "extended": [
            (
                "The answer deadline is extended",
                Extended(
                    **life,
                    sequence=5,
                    occurred_at=_at(days=20),
                    agency="SO_XAY_DUNG",
                    deadline=_at(days=45),
                    extension=1,
                ),
            )
        ],
        "answered": [
            (
                "The answer, delivered to every source (merged ones too)",
                Answered(
                    **life,
                    sequence=6,
                    occurred_at=_at(days=20),
                    agency="SO_XAY_DUNG",
                    text="Sở Xây dựng đã bố trí kinh phí khắc phục, thi công xong trước 30/6/2026.",
                    on_time=True,
                    recipients=(_SUBMITTER, "DOAN_DBQH"),
                ),
            )
        ],
        "reopened": [
            (
                "A supervisor finds the answer unsatisfactory",
                Reopened(
                    **life,
                    sequence=7,
                    occurred_at=_at(days=22),
                    agency="SO_XAY_DUNG",
                    reason="Cử tri chưa đồng ý: chưa nêu rõ thời gian khởi công.",
                    deadline=_at(days=52),
                ),
            )
        ],
        "closed": [
            (
                "A supervisor closes the case",
                Closed(**life, sequence=8, occurred_at=_at(days=40), closed_by="TT_HDND"),
            ),
        ],
        "notification_outcome": [
            (
                "The assignment was delivered to the assignee's webhook",
                NotificationOutcome(
                    recommendation_id=_REC,
                    event_id=lifecycle_event_id(_REC, 2),
                    event_type=ce_type_for("assigned"),
                    subscription_id="so-xay-dung-webhook",
                    agency="SO_XAY_DUNG",
                    channel="webhook",
                    attempt=1,
                    outcome="delivered",
                    status_code=200,
                    latency_ms=84.0,
                    attempted_at=_at(hours=0.25),
                ),
            )
        ],
    }


def _source(model: BaseModel) -> str:
    if isinstance(model, InboundSubmission):
        return f"/agency/{model.submitted_by}"
    if isinstance(model, Response):
        return f"/agency/{model.agency}"
    if isinstance(model, NotificationOutcome):
        return "/phoihop/notify"
    if isinstance(model, Received):
        return "/phoihop/ingest"
    return "/phoihop/routing"


def _record(model: BaseModel, *, index: int) -> Record:
    """The record the bus (or a well-behaved agency) sends for `model`, made deterministic."""
    time = getattr(model, "occurred_at", None) or getattr(model, "attempted_at", None)
    event_id = None
    key = None
    if isinstance(model, InboundSubmission | Response):
        event_id = str(uuid.uuid5(SUBMISSION_ID_NAMESPACE, f"example/{index}"))
        time = _T0 if isinstance(model, InboundSubmission) else model.responded_at
    if isinstance(model, InboundSubmission):
        key = model.idempotency_key or model.source_ref or f"ce:{event_id}"
    return encode(model, source=_source(model), event_id=event_id, time=time, key=key)


def _example(*, name: str, summary: str, record: Record) -> dict[str, Any]:
    # an example object has no place for the key (nor extensions): the summary tells it
    key = "none" if record.key is None else record.key.decode("utf-8")
    return {
        "name": name,
        "summary": f"{summary}. Kafka key: {key}",
        "headers": {k: v.decode("utf-8") for k, v in record.headers},
        "payload": json.loads(record.value),
    }


def _dead_letter_example() -> dict[str, Any]:
    """A real decode failure: a submission whose `kind` is prose, dead-lettered by ingest."""
    sub = _example_events()["inbound_submission"][0][1]
    good = _record(sub, index=9)
    data = json.loads(good.value)
    data["kind"] = "kiến nghị"
    value = json.dumps(data).encode()
    try:
        decode(value=value, headers=good.headers, key=good.key)
    except DecodeError as exc:
        reason, detail = exc.reason, exc.detail
    else:  # pragma: no cover - the example must fail
        raise AssertionError("the dead-letter example decoded")
    extra = dead_letter_headers(
        reason=reason,
        detail=detail,
        topic=INBOUND_SUBMISSIONS.name,
        partition=7,
        offset=1532,
        service="ingest",
    )
    fixed = [(k, v if k != "dlq_time" else b"2026-03-02T01:30:04.512000+00:00") for k, v in extra]
    record = Record(key=good.key, value=value, headers=[*good.headers, *fixed])
    return _example(
        name="schema_violation",
        summary="ingest refused a submission whose kind is not a code",
        record=record,
    )


# --------------------------------------------------------------------------- asyncapi


def _submission_description() -> str:
    kinds = ", ".join(f"`{k.value}`" for k in REPORTER_REQUIRED_KINDS)
    localities = ", ".join(f"`{c}`" for c in SAMPLE_LOCALITIES)
    return f"""A new recommendation, complaint or denunciation sent by an agency's system.

Rules (a record breaking one goes to the dead-letter topic with the reason in `dlq_reason`):

- **Size**: the record value is at most {MAX_MESSAGE_BYTES} bytes (256 KiB,
  `phoihop_schemas.codec.MAX_MESSAGE_BYTES`); the topic refuses larger records
  (`max.message.bytes`) and consumers dead-letter them (`oversized`). `text` holds at most
  {MAX_TEXT_CHARS} characters, NFC-normalised; NUL, other control characters, lone
  surrogates and BMP noncharacters are refused, not cleaned.
- **reporter** is required for {kinds} (`reporter_required`); a denouncer's identity is
  encrypted at rest and never shown to the body denounced.
- **locality** is the code of an administrative unit of the deployment
  (`deploy/config/admin_units.yaml`; `unknown_locality` otherwise). The sample province:
  {localities}.
- **submitted_by** must be the sending agency's own code (`deploy/config/agencies.yaml`;
  `unknown_agency` otherwise): it is the source that receives the answer and the scope of
  the idempotency key.
- **submitted_at** (optional) lies between 2000-01-01 and ten minutes from now; a bare date
  or naive time is Vietnam time (UTC+7).

**Recommendation id.** The bus derives it, so the sender can compute it too:
`uuid5(ID_NAMESPACE, f"{{submitted_by}}\\x1f{{key}}")` with
`ID_NAMESPACE = {SUBMISSION_ID_NAMESPACE}` and `key` = `idempotency_key`, else
`source_ref`, else `ce:<ce_id header>`, cut to {MAX_IDEMPOTENCY_KEY_CHARS} characters. It is
returned as `recommendation_id` (and `ce_subject`, and Kafka key) of the `received` event on
`{_topic_of("received")}`. The same key sent again with the same content is a duplicate and
yields no second `received`; with different content it is dead-lettered
(`idempotency_key_reused`)."""


def _topic_of(event_name: str) -> str:
    """Topic name of a canonical event."""
    return next(t.name for t in ALL_TOPICS if t.ce_type == ce_type_for(event_name))


def _message_description(message: _Message) -> str:
    if message.name == "inbound_submission":
        return _submission_description()
    doc = (message.model.__doc__ or "").strip()
    if message.name == "inbound_response":
        return (
            f"{doc}\n\nKafka key = `recommendation_id` (records keyed otherwise are "
            "dead-lettered with `key_mismatch`). `response_id` is the agency's own id of the "
            "response: a response applied once is skipped when re-sent. The value is at most "
            f"{MAX_MESSAGE_BYTES} bytes; the outcome shows up as a canonical event "
            "(accepted, declined, answered, extended, closed, reopened) or a dead letter."
        )
    return doc


def _key_binding(topic: Topic) -> dict[str, Any]:
    if topic is INBOUND_SUBMISSIONS:
        key = {
            "type": "string",
            "description": "Free; the idempotency key is recommended. The bus derives the "
            "recommendation id itself (see the message description).",
        }
    elif topic.keyed_by_recommendation:
        key = {"type": "string", "description": "the recommendation id (UTF-8)"}
    else:
        key = {"type": "string", "description": "the original record's key, if any"}
    return {"kafka": {"key": key, "bindingVersion": KAFKA_BINDING}}


def _channel_id(topic: Topic) -> str:
    return topic.name.removeprefix(f"{PREFIX}.").replace(".", "_")


def _channel(topic: Topic, *, message_id: str, description: str) -> dict[str, Any]:
    kafka: dict[str, Any] = {"bindingVersion": KAFKA_BINDING}
    if topic.max_message_bytes is not None:
        kafka["topicConfiguration"] = {"max.message.bytes": topic.max_message_bytes}
    return {
        "address": topic.name,
        "title": topic.name,
        "description": description,
        "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        "bindings": {"kafka": kafka},
    }


def _operation(
    *, action: str, channel_id: str, message_id: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "summary": summary,
        "description": description,
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
    }


def _payload_schemas(messages: list[_Message]) -> tuple[dict[type[BaseModel], str], dict[str, Any]]:
    """Component name of each payload model, and every schema with refs into components."""
    # One generation for all models: pydantic gives colliding class names distinct keys.
    keys, top = models_json_schema(
        [(m.model, "validation" if m.inbound else "serialization") for m in messages],
        ref_template=SCHEMA_REF,
    )
    names: dict[type[BaseModel], str] = {}
    for (model, _mode), ref in keys.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            names[model] = ref["$ref"].rsplit("/", 1)[1]
    defs: dict[str, Any] = top.get("$defs", {})
    return names, defs


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0 document: channels = topics, messages = CloudEvents with JSON data."""
    messages = _messages()
    names, components_schemas = _payload_schemas(messages)
    examples = _example_events()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    component_messages: dict[str, Any] = {}

    def add_schema(name: str, schema: dict[str, Any]) -> str:
        if name in components_schemas:
            raise ValueError(f"component schema {name!r} defined twice")
        components_schemas[name] = schema
        return SCHEMA_REF.format(model=name)

    for index, message in enumerate(messages):
        payload_name = names[message.model]
        headers_ref = add_schema(
            f"{payload_name}Headers",
            _ce_headers(
                ce_type=message.ce_type, lifecycle=message.lifecycle, inbound=message.inbound
            ),
        )
        component_messages[message.name] = {
            "name": message.name,
            "title": message.ce_type,
            "summary": (message.model.__doc__ or "").strip().splitlines()[0],
            "description": _message_description(message),
            "contentType": "application/json",
            "headers": {"$ref": headers_ref},
            "payload": {"$ref": SCHEMA_REF.format(model=payload_name)},
            "bindings": _key_binding(message.topic),
            "examples": [
                _example(
                    name=f"{message.name}_{n}",
                    summary=summary,
                    record=_record(model, index=index * 10 + n),
                )
                for n, (summary, model) in enumerate(examples[message.name], start=1)
            ],
        }
        channel_id = _channel_id(message.topic)
        role = "Inbound" if message.inbound else "Canonical"
        writer = "agencies' systems (and the ingest HTTP API)" if message.inbound else "the bus"
        channels[channel_id] = _channel(
            message.topic,
            message_id=message.name,
            description=f"{role} topic carrying `{message.ce_type}`, written by {writer}.",
        )
        if message.inbound:
            operations[f"send_{message.name}"] = _operation(
                action="send",
                channel_id=channel_id,
                message_id=message.name,
                summary=f"An agency's system sends {message.name.replace('_', ' ')}s",
                description="Produce with acks=all; the outcome shows up as a canonical "
                "event or a dead letter.",
            )
        else:
            operations[f"receive_{message.name}"] = _operation(
                action="receive",
                channel_id=channel_id,
                message_id=message.name,
                summary=f"An agency's system receives `{message.name}` events",
                description="Consume in the agency's own consumer group; de-duplicate on "
                "ce_id (delivery is at least once). Events of one recommendation keep "
                "their order (key = recommendation id).",
            )

    dlq_headers = add_schema("DeadLetterHeaders", _dead_letter_headers())
    summary_ref = add_schema("DeadLetterSummary", _DEAD_LETTER_SUMMARY)
    component_messages["dead_letter"] = {
        "name": "dead_letter",
        "title": "dead letter",
        "summary": "A record some consumer could not process, with the reason in dlq_* headers",
        "description": "The original record, byte for byte, with its key and headers, plus "
        "dlq_* headers. Its value is usually JSON, but not when the reason is `bad_json`; "
        f"over {MAX_MESSAGE_BYTES} bytes it is replaced by a DeadLetterSummary "
        "(`dlq_value_truncated: 1`). A submission is dead-lettered by ingest with its "
        "reason: watch this topic for records whose `ce_source` is yours.",
        "headers": {"$ref": dlq_headers},
        "payload": {
            "description": "the original value, or a DeadLetterSummary",
            "anyOf": [{"$ref": summary_ref}, {"description": "the original value as sent"}],
        },
        "bindings": _key_binding(DEAD_LETTER),
        "examples": [_dead_letter_example()],
    }
    dlq_channel = _channel_id(DEAD_LETTER)
    channels[dlq_channel] = _channel(
        DEAD_LETTER,
        message_id="dead_letter",
        description="Records that could not be processed; the reason is in dlq_* headers.",
    )
    operations["receive_dead_letter"] = _operation(
        action="receive",
        channel_id=dlq_channel,
        message_id="dead_letter",
        summary="An agency's system watches the dead letters of what it sent",
        description="Filter on ce_source or submitted_by: the topic carries every "
        "service's dead letters.",
    )
    internal = ", ".join(f"`{t.name}`" for t in ALL_TOPICS if t.role is Role.INTERNAL)
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:phoihop:event-bus",
        "info": {
            "title": "phoihop event bus",
            "version": "1.0.0",
            "description": "Voters' recommendations and citizens' feedback, complaints and "
            "denunciations between provincial bodies. CloudEvents 1.0 over Kafka in binary "
            "content mode (ce_* headers, JSON data); Kafka key = recommendation id, so one "
            "recommendation's events keep their order.\n\n"
            "This document describes an agency's system as a client of the bus: it sends "
            "to the inbound topics and receives from the canonical topics and the "
            "dead-letter topic. Topic names carry the deployment's prefix "
            f"(`{PREFIX}` here, `PHOIHOP_TOPIC_PREFIX`). " + _INTERNAL_NOTE.format(names=internal),
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The embedded default (`make run`): a Kafka-protocol broker "
                "on loopback, PLAINTEXT, no authentication. For one machine only.",
            },
            "production": {
                "host": "kafka-0.example:9093",
                "protocol": "kafka-secure",
                "description": "Placeholder for a production cluster (Apache Kafka, 3+ "
                "brokers; bootstrap kafka-0.example:9093, kafka-1.example:9093, "
                "kafka-2.example:9093): SASL_SSL with SCRAM-SHA-512, one principal per agency.",
                "security": [{"$ref": "#/components/securitySchemes/saslScram"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": components_schemas,
            "messages": component_messages,
            "securitySchemes": {
                "saslScram": {
                    "type": "scramSha512",
                    "description": "SASL/SCRAM-SHA-512 over TLS (security.protocol=SASL_SSL), "
                    "one principal per agency.",
                }
            },
        },
    }


def render() -> dict[str, str]:
    """File name → content of every generated file."""
    schemas = {**json_schemas(), **header_schemas()}
    files = {
        f"jsonschema/{stem}.json": json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True)
        + "\n"
        for stem, schema in schemas.items()
    }
    files["asyncapi.json"] = json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n"
    return files


def write(target: Path) -> list[Path]:
    """Write every generated file under `target`."""
    written = []
    for rel, content in render().items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "schemas/generated")
    for p in write(out):
        print(p)
