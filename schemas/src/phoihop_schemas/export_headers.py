"""JSON Schema of the Kafka headers: CloudEvents binary mode and the dead-letter headers."""

from __future__ import annotations

from typing import Any

from phoihop_schemas.codec import MAX_MESSAGE_BYTES
from phoihop_schemas.export_rules import DEAD_LETTER_REASONS, SCHEMA_BASE
from phoihop_schemas.topics import CE_TYPE_TO_EVENT, RESPONSE_CE_TYPE, SUBMISSION_CE_TYPE


def ce_headers_schema(*, ce_type: str | None, lifecycle: bool, inbound: bool) -> dict[str, Any]:
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


def dead_letter_headers_schema() -> dict[str, Any]:
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


DEAD_LETTER_SUMMARY: dict[str, Any] = {
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
        "cloudevents_headers": ce_headers_schema(ce_type=None, lifecycle=False, inbound=True),
        "dead_letter_headers": dead_letter_headers_schema(),
    }
    for stem, schema in out.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{SCHEMA_BASE}/{stem}.json"
    return out
