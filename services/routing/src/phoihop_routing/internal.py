"""Routing's internal messages: one frozen type per `op`, and the codec of their wire format.

Routing's own topics (ROUTING_DEDUP, ROUTING_COMMANDS, ROUTING_TIMERS) carry plain JSON
objects `{"op": ..., ...}` with the header `phoihop_internal: 1` (the responses stage R
forwards to ROUTING_COMMANDS stay CloudEvents and are not decoded here):

- `candidate` (`CandidateMessage`): stage 1 → 2, ROUTING_DEDUP, keyed by bucket;
- `route` (`RouteMessage`): stage 2 → 3, ROUTING_COMMANDS, keyed by recommendation id;
- `leave`, `join` (`LeaveMessage`, `JoinMessage`): stage 3 → 2, ROUTING_DEDUP, by bucket;
- `link`, `answer_of` (`LinkMessage`, `AnswerOfMessage`) and the correction steps
  `pair_request`, `pair_confirm`, `unlink_request`, `split` (`CorrectionMessage`, carrying
  the `corrections` model): stage 3 → 3, ROUTING_COMMANDS, keyed by the target case;
- `tick` (`TickMessage`): deadline scan → stage 3, ROUTING_TIMERS, by recommendation id.

`encode` writes a message as it always was written (same field names and order; text kept
as UTF-8, so text that no UTF-8 encoder takes raises `UnicodeEncodeError`, which the stages
dead-letter as `invalid_text`); `decode` reads it back, `decode_dedup` and `decode_case`
accept only the ops of one stage. Anything malformed (not JSON, not an object, no or an
unknown op, a missing or mistyped field) raises `InternalMessageError`. The messages for
stage 3 turn into the `lifecycle` command they carry (`command()`), about the case `target`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from phoihop_routing import corrections
from phoihop_routing.classify import Classification
from phoihop_routing.corrections import Correction
from phoihop_routing.duplicates import CaseSignature
from phoihop_routing.exceptions import InternalMessageError
from phoihop_routing.lifecycle import AnswerOf, Link, Route, Tick
from phoihop_routing.tables import compact_signature
from phoihop_schemas import textpolicy
from phoihop_schemas.events import Decision, Level, Received, SuggestedDuplicate

INTERNAL_HEADER = "phoihop_internal"
HEADERS: tuple[tuple[str, bytes], ...] = ((INTERNAL_HEADER, b"1"),)

Payload = dict[str, Any]
_M = TypeVar("_M", bound=BaseModel)


# --------------------------------------------------------------------------- field checks


def _field(payload: Mapping[str, Any], name: str) -> Any:
    if name not in payload:
        raise InternalMessageError(f"missing field {name!r}")
    return payload[name]


def _str(payload: Mapping[str, Any], name: str) -> str:
    value = _field(payload, name)
    if not isinstance(value, str):
        raise InternalMessageError(f"field {name!r} is not a string")
    return value


def _opt_str(payload: Mapping[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise InternalMessageError(f"field {name!r} is not a string")
    return value


def _object(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InternalMessageError(f"field {name!r} is not an object")
    return value


def _model(cls: type[_M], value: Any, name: str) -> _M:
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        raise InternalMessageError(f"field {name!r}: {str(exc)[:300]}") from exc


def _opt_model(cls: type[_M], payload: Mapping[str, Any], name: str) -> _M | None:
    value = payload.get(name)
    return _model(cls, value, name) if value else None


def _signature(value: Any) -> CaseSignature:
    """A signature as stage 2 keeps it in memory (strings interned: `compact_signature`)."""
    data = _object(value, "signature")
    if not isinstance(data.get("recommendation_id"), str):
        raise InternalMessageError("field 'signature' has no recommendation_id")
    try:
        return compact_signature(dict(data))
    except (TypeError, ValueError) as exc:
        raise InternalMessageError(f"field 'signature': {exc}") from exc


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class RoutedClassification:
    """The classification a received recommendation is routed with (stages 1 → 2 → 3)."""

    category: str
    level: Level
    agency: str
    decision: Decision

    @classmethod
    def of(cls, c: Classification) -> RoutedClassification:
        """The part of a `classify.Classification` the later stages need."""
        return cls(category=c.category, level=c.level, agency=c.agency, decision=c.decision)

    def to_payload(self) -> Payload:
        """JSON form."""
        return {
            "category": self.category,
            "level": str(getattr(self.level, "value", self.level)),
            "agency": self.agency,
            "decision": self.decision.model_dump(mode="json"),
        }

    @classmethod
    def from_payload(cls, value: Any) -> RoutedClassification:
        """Inverse of `to_payload`."""
        data = _object(value, "classification")
        try:
            level = Level(_field(data, "level"))
        except (TypeError, ValueError) as exc:
            raise InternalMessageError(f"field 'level': {exc}") from exc
        return cls(
            category=_str(data, "category"),
            level=level,
            agency=_str(data, "agency"),
            decision=_model(Decision, _field(data, "decision"), "decision"),
        )


@dataclass(frozen=True, slots=True)
class CandidateMessage:
    """Stage 1 → 2: a received recommendation, classified, to check against its bucket."""

    op: ClassVar[str] = "candidate"
    bucket: str
    received: Received
    classification: RoutedClassification
    signature: CaseSignature

    def to_payload(self) -> Payload:
        """JSON form (with `op`)."""
        return {
            "op": self.op,
            "bucket": self.bucket,
            "received": self.received.model_dump(mode="json"),
            "classification": self.classification.to_payload(),
            "signature": self.signature.to_dict(),
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> CandidateMessage:
        """Inverse of `to_payload`."""
        return cls(
            bucket=_str(p, "bucket"),
            received=_model(Received, _field(p, "received"), "received"),
            classification=RoutedClassification.from_payload(_field(p, "classification")),
            signature=_signature(_field(p, "signature")),
        )


@dataclass(frozen=True, slots=True)
class RouteMessage:
    """Stage 2 → 3: the duplicate verdict (new case with its suggestions, or merged)."""

    op: ClassVar[str] = "route"
    bucket: str | None
    received: Received
    classification: RoutedClassification
    duplicate_of: str | None = None
    similarity: float = 0.0
    merge_decision: Decision | None = None
    suggestions: tuple[SuggestedDuplicate, ...] = ()
    suggest_decision: Decision | None = None

    @property
    def target(self) -> str:
        """The case the command is about."""
        return self.received.recommendation_id

    def command(self) -> Route:
        """The lifecycle command."""
        c = self.classification
        return Route(
            received=self.received,
            category=c.category,
            level=c.level,
            agency=c.agency,
            decision=c.decision,
            bucket=self.bucket,
            duplicate_of=self.duplicate_of,
            similarity=self.similarity,
            merge_decision=self.merge_decision,
            suggestions=self.suggestions,
            suggest_decision=self.suggest_decision,
        )

    def to_payload(self) -> Payload:
        """JSON form (with `op`)."""
        merge, suggest = self.merge_decision, self.suggest_decision
        return {
            "op": self.op,
            "bucket": self.bucket,
            "received": self.received.model_dump(mode="json"),
            "classification": self.classification.to_payload(),
            "duplicate_of": self.duplicate_of,
            "similarity": self.similarity,
            "merge_decision": None if merge is None else merge.model_dump(mode="json"),
            "suggestions": [s.model_dump(mode="json") for s in self.suggestions],
            "suggest_decision": None if suggest is None else suggest.model_dump(mode="json"),
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> RouteMessage:
        """Inverse of `to_payload` (only `received` and `classification` are required)."""
        similarity = p.get("similarity") or 0.0
        if isinstance(similarity, bool) or not isinstance(similarity, int | float):
            raise InternalMessageError("field 'similarity' is not a number")
        suggestions = p.get("suggestions") or ()
        if not isinstance(suggestions, list | tuple):
            raise InternalMessageError("field 'suggestions' is not a list")
        return cls(
            bucket=_opt_str(p, "bucket"),
            received=_model(Received, _field(p, "received"), "received"),
            classification=RoutedClassification.from_payload(_field(p, "classification")),
            duplicate_of=_opt_str(p, "duplicate_of"),
            similarity=float(similarity),
            merge_decision=_opt_model(Decision, p, "merge_decision"),
            suggestions=tuple(_model(SuggestedDuplicate, s, "suggestions") for s in suggestions),
            suggest_decision=_opt_model(Decision, p, "suggest_decision"),
        )


@dataclass(frozen=True, slots=True)
class LeaveMessage:
    """Stage 3 → 2: the case left its bucket (closed or re-classified)."""

    op: ClassVar[str] = "leave"
    bucket: str
    recommendation_id: str

    def to_payload(self) -> Payload:
        """JSON form (with `op`)."""
        return {"op": self.op, "bucket": self.bucket, "recommendation_id": self.recommendation_id}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> LeaveMessage:
        """Inverse of `to_payload`."""
        return cls(bucket=_str(p, "bucket"), recommendation_id=_str(p, "recommendation_id"))


@dataclass(frozen=True, slots=True)
class JoinMessage:
    """Stage 3 → 2: a triaged case joins the bucket of its real classification."""

    op: ClassVar[str] = "join"
    bucket: str
    signature: CaseSignature

    def to_payload(self) -> Payload:
        """JSON form (with `op`)."""
        return {"op": self.op, "bucket": self.bucket, "signature": self.signature.to_dict()}

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> JoinMessage:
        """Inverse of `to_payload`."""
        return cls(bucket=_str(p, "bucket"), signature=_signature(_field(p, "signature")))


@dataclass(frozen=True, slots=True)
class LinkMessage:
    """Stage 3 → 3: the duplicate `merged_id` was merged into the case `recommendation_id`."""

    op: ClassVar[str] = "link"
    recommendation_id: str
    merged_id: str
    submitted_by: str

    @property
    def target(self) -> str:
        """The case the command is about."""
        return self.recommendation_id

    def command(self) -> Link:
        """The lifecycle command."""
        return Link(merged_id=self.merged_id, submitted_by=self.submitted_by)

    def to_payload(self) -> Payload:
        """JSON form (with `op`)."""
        return {
            "op": self.op,
            "recommendation_id": self.recommendation_id,
            "merged_id": self.merged_id,
            "submitted_by": self.submitted_by,
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> LinkMessage:
        """Inverse of `to_payload`."""
        return cls(
            recommendation_id=_str(p, "recommendation_id"),
            merged_id=_str(p, "merged_id"),
            submitted_by=_str(p, "submitted_by"),
        )


@dataclass(frozen=True, slots=True)
class AnswerOfMessage:
    """Stage 3 → 3: the late duplicate `recommendation_id` takes the answer of `source_case`."""

    op: ClassVar[str] = "answer_of"
    recommendation_id: str
    source_case: str
    agency: str
    text: str
    on_time: bool

    @property
    def target(self) -> str:
        """The case the command is about."""
        return self.recommendation_id

    def command(self) -> AnswerOf:
        """The lifecycle command."""
        return AnswerOf(
            source_case=self.source_case, agency=self.agency, text=self.text, on_time=self.on_time
        )

    def to_payload(self) -> Payload:
        """JSON form (with `op`)."""
        return {
            "op": self.op,
            "recommendation_id": self.recommendation_id,
            "source_case": self.source_case,
            "agency": self.agency,
            "text": self.text,
            "on_time": self.on_time,
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> AnswerOfMessage:
        """Inverse of `to_payload`."""
        on_time = _field(p, "on_time")
        if not isinstance(on_time, bool):
            raise InternalMessageError("field 'on_time' is not a boolean")
        return cls(
            recommendation_id=_str(p, "recommendation_id"),
            source_case=_str(p, "source_case"),
            agency=_str(p, "agency"),
            text=_str(p, "text"),
            on_time=on_time,
        )


@dataclass(frozen=True, slots=True)
class TickMessage:
    """Deadline scan → 3: a deadline of the case was due at `due` (stage 3 checks again)."""

    op: ClassVar[str] = "tick"
    recommendation_id: str
    due: datetime | None = None  # informative: stage 3 decides from the case's own state

    @property
    def target(self) -> str:
        """The case the command is about."""
        return self.recommendation_id

    def command(self) -> Tick:
        """The lifecycle command."""
        return Tick()

    def to_payload(self) -> Payload:
        """JSON form (with `op`)."""
        payload: Payload = {"op": self.op, "recommendation_id": self.recommendation_id}
        if self.due is not None:
            payload["due"] = self.due.isoformat()
        return payload

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> TickMessage:
        """Inverse of `to_payload`."""
        due = _opt_str(p, "due")
        try:
            when = None if due is None else datetime.fromisoformat(due)
        except ValueError as exc:
            raise InternalMessageError(f"field 'due': {exc}") from exc
        return cls(recommendation_id=_str(p, "recommendation_id"), due=when)


@dataclass(frozen=True, slots=True)
class CorrectionMessage:
    """Stage 3 → 3: one step of a correction exchange (`corrections`), for the case `target`."""

    recommendation_id: str
    correction: Correction

    @property
    def op(self) -> str:
        """The correction's op (`pair_request`, `pair_confirm`, `unlink_request`, `split`)."""
        return self.correction.op

    @property
    def target(self) -> str:
        """The case the command is about."""
        return self.recommendation_id

    def command(self) -> Correction:
        """The lifecycle command (the correction model itself)."""
        return self.correction

    def to_payload(self) -> Payload:
        """JSON form: `op`, `recommendation_id`, then the correction model's fields."""
        return {
            "op": self.op,
            "recommendation_id": self.recommendation_id,
            **self.correction.model_dump(mode="json"),
        }

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> CorrectionMessage:
        """Inverse of `to_payload`."""
        target = _str(p, "recommendation_id")
        try:
            correction = corrections.decode(_str(p, "op"), dict(p))
        except ValidationError as exc:
            raise InternalMessageError(str(exc)[:300]) from exc
        return cls(recommendation_id=target, correction=correction)


DedupMessage = CandidateMessage | LeaveMessage | JoinMessage
CaseMessage = RouteMessage | LinkMessage | AnswerOfMessage | TickMessage | CorrectionMessage
InternalMessage = DedupMessage | CaseMessage

_T = TypeVar("_T", bound=InternalMessage)
DEDUP_OPS: dict[str, Callable[[Mapping[str, Any]], DedupMessage]] = {
    CandidateMessage.op: CandidateMessage.from_payload,
    LeaveMessage.op: LeaveMessage.from_payload,
    JoinMessage.op: JoinMessage.from_payload,
}
CASE_OPS: dict[str, Callable[[Mapping[str, Any]], CaseMessage]] = {
    RouteMessage.op: RouteMessage.from_payload,
    LinkMessage.op: LinkMessage.from_payload,
    AnswerOfMessage.op: AnswerOfMessage.from_payload,
    TickMessage.op: TickMessage.from_payload,
    **dict.fromkeys(corrections.CORRECTIONS, CorrectionMessage.from_payload),
}
OPS: dict[str, Callable[[Mapping[str, Any]], InternalMessage]] = {**DEDUP_OPS, **CASE_OPS}


# --------------------------------------------------------------------------- codec


def encode(message: InternalMessage) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Value and headers of an internal message (compact JSON, UTF-8, `phoihop_internal`)."""
    value = json.dumps(message.to_payload(), ensure_ascii=False, separators=(",", ":"))
    return value.encode(), list(HEADERS)


def _decode(value: bytes | None, ops: Mapping[str, Callable[[Mapping[str, Any]], _T]]) -> _T:
    if value is None:
        raise InternalMessageError("empty value")
    try:
        payload = textpolicy.loads(value)
    except textpolicy.JsonPolicyError as exc:
        raise InternalMessageError(f"not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("op"), str):
        raise InternalMessageError("no op")
    op = payload["op"]
    decoder = ops.get(op)
    if decoder is None:
        raise InternalMessageError(f"unknown op {op!r}")
    return decoder(payload)


def decode(value: bytes | None) -> InternalMessage:
    """The internal message in a record's value, whatever its op, or InternalMessageError."""
    return _decode(value, OPS)


def decode_dedup(value: bytes | None) -> DedupMessage:
    """A message for stage 2 (ROUTING_DEDUP): `candidate`, `leave` or `join`."""
    return _decode(value, DEDUP_OPS)


def decode_case(value: bytes | None) -> CaseMessage:
    """A command for stage 3 (ROUTING_COMMANDS, ROUTING_TIMERS), not a forwarded response."""
    return _decode(value, CASE_OPS)
