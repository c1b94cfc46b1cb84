"""The contract rules the generated documents state, shared with the services' own checks.

Tests pin each one equal to what the services enforce (`phoihop_ingest.validation`,
`phoihop_ingest.idempotency`, `deploy/config/admin_units.yaml`, the `dlq_reason` values
written in the sources).
"""

from __future__ import annotations

from phoihop_schemas.codec import MAX_KEY_CHARS, MAX_MESSAGE_BYTES
from phoihop_schemas.events import Kind

SCHEMA_BASE = "https://phoihop.example/schemas"

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
    "invalid_target": "a correction without another case (or naming the case itself)",
    "kind_mismatch": "a correction pairing a to_cao with another kind",
    "target_not_open": "merge_into a case that is neither open nor answered",
    "not_merged": "unmerge of a case that is not merged into the other",
    "event_id_conflict": "an event id already stored with other content (audit)",
    "classification_failed": "routing could not classify the recommendation",
    "bad_internal_message": "a malformed message on an internal topic",
    "produce_failed": "routing could not produce the resulting events",
    "processing_failed": "the record kept failing after bounded retries",
    "internal_error": "an unexpected error while processing the record",
}
