"""Agencies' responses: body rules per action, who may respond, the `Response` message."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from phoihop_common import access
from phoihop_common.config import Reference
from phoihop_ingest.exceptions import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from phoihop_ingest.validation import errors_of, reason_of
from phoihop_schemas import lifecycle
from phoihop_schemas.events import (
    MAX_TEXT_CHARS,
    Code,
    Level,
    NfcStr,
    Response,
    ResponseAction,
    Text,
)

RESPONSE_NAMESPACE = uuid.UUID("5d3b8f8e-0f6c-4b7a-9d1e-726573706f6e")

Reason = Annotated[NfcStr, Field(min_length=1, max_length=2000)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AnswerBody(_Body):
    """`/answer`."""

    text: Text


class AcceptBody(_Body):
    """`/accept`."""


class ReasonBody(_Body):
    """`/decline`, `/extension`, `/reopen`."""

    reason: Reason


class ClassifyBody(_Body):
    """`/classify`."""

    category: Code
    level: Level


class TargetBody(_Body):
    """`/merge_into` (merge this case into `target`), `/not_duplicate` (it does not repeat it)."""

    target: Annotated[str, Field(min_length=1, max_length=100)]
    reason: Annotated[NfcStr | None, Field(default=None, max_length=2000)] = None


class CloseBody(_Body):
    """`/close`."""

    reason: Annotated[NfcStr | None, Field(default=None, max_length=2000)] = None


_SEGMENTS: dict[str, tuple[ResponseAction, type[_Body]]] = {
    "answer": (ResponseAction.ANSWER, AnswerBody),
    "accept": (ResponseAction.ACCEPT, AcceptBody),
    "decline": (ResponseAction.DECLINE, ReasonBody),
    "extension": (ResponseAction.REQUEST_EXTENSION, ReasonBody),
    "classify": (ResponseAction.CLASSIFY, ClassifyBody),
    "close": (ResponseAction.CLOSE, CloseBody),
    "reopen": (ResponseAction.REOPEN, ReasonBody),
    "merge_into": (ResponseAction.MERGE_INTO, TargetBody),
    "unmerge": (ResponseAction.UNMERGE, ReasonBody),
    "not_duplicate": (ResponseAction.NOT_DUPLICATE, TargetBody),
}
# Statuses a case may be merged from (by hand) / into; `to_cao` pairs only with `to_cao`.
MERGEABLE_FROM = lifecycle.values(lifecycle.MERGEABLE_FROM)
MERGEABLE_INTO = lifecycle.values(lifecycle.MERGEABLE_INTO)
# URL segment -> (action, body model, who may do it: "assignee" or a role, from the policy)
ACTIONS: dict[str, tuple[ResponseAction, type[_Body], str]] = {
    segment: (action, model, access.responder(action))
    for segment, (action, model) in _SEGMENTS.items()
}


def parse_body(*, segment: str, payload: Any, reference: Reference, max_text_chars: int) -> _Body:
    """Validate the body of one response action."""
    _action, model, _who = ACTIONS[segment]
    if payload is None:
        payload = {}
    if not isinstance(payload, Mapping):
        raise InvalidInputError("invalid_body", "the body must be a JSON object")
    try:
        body = model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInputError(reason_of(exc), errors_of(exc)) from exc
    if isinstance(body, AnswerBody):
        if not body.text:
            raise InvalidInputError("empty_text", "text is empty")
        if len(body.text) > min(max_text_chars, MAX_TEXT_CHARS):
            raise InvalidInputError("text_too_long", f"text has {len(body.text)} characters")
    if isinstance(body, ReasonBody) and not body.reason:
        raise InvalidInputError("reason_required", "reason is empty")
    if isinstance(body, TargetBody):
        try:
            uuid.UUID(body.target)
        except ValueError as exc:
            raise InvalidInputError("invalid_target", "target is not a recommendation id") from exc
    if isinstance(body, ClassifyBody) and body.category not in {
        c.code for c in reference.categories
    }:
        raise InvalidInputError("unknown_category", f"no category {body.category!r}")
    return body


def check_role(*, segment: str, caller: str, reference: Reference) -> None:
    """Role-restricted actions: 403 `forbidden_role` when the caller lacks the role."""
    action, _model, who = ACTIONS[segment]
    if who in (access.ASSIGNEE, access.CORRECTOR):
        return
    if not access.may_respond(reference, agency=caller, action=action, assignee=None):
        raise ForbiddenError("forbidden_role", f"{segment} needs the {who} role; {caller} lacks it")


def check_assignee(
    *, segment: str, caller: str, status: Mapping[str, Any], reference: Reference
) -> None:
    """Assignee-only actions: 403 `not_assignee` unless audit names the caller as assignee."""
    action, _model, who = ACTIONS[segment]
    assignee = status.get("agency")
    if who != access.ASSIGNEE:
        return
    if not access.may_respond(reference, agency=caller, action=action, assignee=assignee):
        raise ForbiddenError(
            "not_assignee", f"recommendation is assigned to {assignee or 'nobody yet'}"
        )


def correction_other(*, segment: str, body: _Body, status: Mapping[str, Any]) -> str | None:
    """The other case a correction names: the `target`, or the case it was merged into."""
    if isinstance(body, TargetBody):
        return str(uuid.UUID(body.target))
    if segment == "unmerge":
        other = status.get("duplicate_of")
        if status.get("status") != "merged" or not other:
            raise ConflictError("not_merged", "only a merged recommendation can be unmerged")
        return str(other)
    return None


def check_correction(
    *,
    segment: str,
    caller: str,
    status: Mapping[str, Any],
    other: Mapping[str, Any],
    reference: Reference,
) -> None:
    """Corrections: who may (either assignee, supervisor, triage) and which pairs make sense."""
    action = ACTIONS[segment][0]
    if not access.may_respond(
        reference,
        agency=caller,
        action=action,
        assignee=status.get("agency"),
        other_assignee=other.get("agency"),
    ):
        raise ForbiddenError(
            "not_assignee",
            f"{segment} needs the assignee of either case, a supervisor or a triage body",
        )
    if status.get("id") == other.get("id"):
        raise InvalidInputError("invalid_target", "a case cannot be paired with itself")
    if action is ResponseAction.MERGE_INTO:
        if status.get("status") not in MERGEABLE_FROM:
            raise ConflictError("invalid_transition", f"the case is {status.get('status')}")
        if other.get("status") not in MERGEABLE_INTO:
            raise ConflictError("target_not_open", f"the target is {other.get('status')}")
    if action is not ResponseAction.UNMERGE and (status.get("kind") == "to_cao") != (
        other.get("kind") == "to_cao"
    ):
        raise InvalidInputError("kind_mismatch", "a denunciation pairs only with a denunciation")


def check_id(recommendation_id: str) -> str:
    """Recommendation ids are UUIDs; anything else cannot exist."""
    try:
        return str(uuid.UUID(recommendation_id))
    except ValueError as exc:
        raise NotFoundError("unknown_recommendation", recommendation_id) from exc


def response_id(*, agency: str, recommendation_id: str, segment: str, key: str | None) -> str:
    """Deterministic with an Idempotency-Key (a retry gets the same id), random otherwise."""
    if key is None:
        return str(uuid.uuid4())
    name = f"{agency}\x1f{recommendation_id}\x1f{segment}\x1f{key}"
    return str(uuid.uuid5(RESPONSE_NAMESPACE, name))


def build_response(
    *, segment: str, body: _Body, caller: str, recommendation_id: str, response_id: str
) -> Response:
    """The inbound `Response` message routing consumes."""
    action = ACTIONS[segment][0]
    fields = body.model_dump()
    return Response(
        response_id=response_id,
        recommendation_id=recommendation_id,
        agency=caller,
        action=action,
        text=fields.get("text"),
        reason=fields.get("reason"),
        category=fields.get("category"),
        level=fields.get("level"),
        target=str(uuid.UUID(fields["target"])) if fields.get("target") else None,
        responded_at=datetime.now(UTC),
    )
