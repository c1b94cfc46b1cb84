"""Validation at the edge: schema, then reference data (localities, agencies, categories)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from phoihop_common.config import Reference
from phoihop_ingest.exceptions import InvalidInputError
from phoihop_schemas.events import Kind, Submission

# Anonymous complaints and denunciations are not handled (Law on Complaints art. 8,
# Law on Denunciation art. 23): the reporter must be identified.
REPORTER_REQUIRED: frozenset[Kind] = frozenset({Kind.KHIEU_NAI, Kind.TO_CAO})

_FIELD_REASONS: dict[str, str] = {
    "kind": "unknown_kind",
    "channel": "unknown_channel",
    "locality": "unknown_locality",
    "reporter": "invalid_reporter",
    "submitted_at": "invalid_submitted_at",
    "source_ref": "invalid_source_ref",
    "category": "unknown_category",
    "level": "unknown_level",
}
# Reasons the text policy puts at the start of its ValueError messages.
_POLICY_REASONS = ("invalid_text", "invalid_submitted_at")


def _printable(text: str) -> str:
    # a field name or message may quote the input, lone surrogates included
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def errors_of(exc: ValidationError) -> list[dict[str, Any]]:
    """Compact, JSON-ready list of pydantic errors."""
    return [
        {"field": _printable(".".join(str(p) for p in e["loc"])), "message": _printable(e["msg"])}
        for e in exc.errors(include_url=False)[:10]
    ]


def reason_of(exc: ValidationError) -> str:
    """Machine reason of the first pydantic error."""
    first = exc.errors(include_url=False)[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    kind = first["type"]
    if kind == "string_unicode":  # pydantic's own refusal of lone surrogates, keys included
        return "invalid_text"
    if kind == "value_error":
        policy = str(first.get("ctx", {}).get("error", "")).partition(":")[0]
        if policy in _POLICY_REASONS:
            return policy
    if kind == "extra_forbidden":
        return "unknown_field"
    if kind == "missing":
        return "missing_field" if field not in ("text", "reason") else f"{field}_required"
    if field in ("text", "reason"):
        if kind in ("string_too_long", "too_long"):
            return f"{field}_too_long"
        if kind in ("string_too_short", "too_short"):
            return "empty_text" if field == "text" else "reason_required"
        return f"invalid_{field}"
    return _FIELD_REASONS.get(field, "invalid_field")


def parse_submission(payload: Any) -> Submission:
    """Parse a JSON object into a Submission, or raise InvalidInputError with a reason."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError("invalid_body", "the body must be a JSON object")
    try:
        return Submission.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInputError(reason_of(exc), errors_of(exc)) from exc


_unit_codes: dict[int, tuple[Reference, frozenset[str]]] = {}


def unit_codes(reference: Reference) -> frozenset[str]:
    """`reference.unit_codes`, computed once per reference (the property builds a new set)."""
    cached = _unit_codes.get(id(reference))
    if cached is None or cached[0] is not reference:
        if len(_unit_codes) > 16:  # tests build many apps; a service builds one
            _unit_codes.clear()
        cached = (reference, reference.unit_codes)
        _unit_codes[id(reference)] = cached
    return cached[1]


def check_submission(*, submission: Submission, reference: Reference, max_text_chars: int) -> None:
    """Reference-data and business checks a schema cannot express."""
    if not submission.text:
        raise InvalidInputError("empty_text", "text is empty")
    if len(submission.text) > max_text_chars:
        raise InvalidInputError(
            "text_too_long", f"text has {len(submission.text)} characters > {max_text_chars}"
        )
    if submission.locality not in unit_codes(reference):
        raise InvalidInputError(
            "unknown_locality", f"no administrative unit {submission.locality!r}"
        )
    if submission.kind in REPORTER_REQUIRED and submission.reporter is None:
        raise InvalidInputError(
            "reporter_required", f"a {submission.kind.value} must identify its reporter"
        )


def validate_submission(*, payload: Any, reference: Reference, max_text_chars: int) -> Submission:
    """Parse and check one submission."""
    submission = parse_submission(payload)
    check_submission(submission=submission, reference=reference, max_text_chars=max_text_chars)
    return submission
