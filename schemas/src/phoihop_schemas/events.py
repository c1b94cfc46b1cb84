"""Canonical lifecycle events and inbound messages: frozen pydantic models."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from phoihop_schemas.textpolicy import check_submitted_at, check_text

MAX_TEXT_CHARS = 20_000


def nfc(value: str) -> str:
    """Text that passes the text policy, in NFC, without surrounding white space."""
    return check_text(value).strip()


NfcStr = Annotated[str, AfterValidator(nfc)]
Text = Annotated[str, AfterValidator(nfc), Field(min_length=1, max_length=MAX_TEXT_CHARS)]
# Text policy without stripping: identifiers and references sent by agencies, and the text
# of canonical events (a record already on a topic that violates it is dead-lettered).
Checked = Annotated[str, AfterValidator(check_text)]
SubmittedAt = Annotated[date | datetime | None, AfterValidator(check_submitted_at)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


class Kind(StrEnum):
    """Kind of submission; each carries its own time limits."""

    KIEN_NGHI = "kien_nghi"
    PHAN_ANH = "phan_anh"
    KHIEU_NAI = "khieu_nai"
    TO_CAO = "to_cao"
    TIEP_CONG_DAN = "tiep_cong_dan"


class Channel(StrEnum):
    """How the matter reached the bus."""

    TIEP_XUC_CU_TRI = "tiep_xuc_cu_tri"
    UBMTTQ_TONG_HOP = "ubmttq_tong_hop"
    TIEP_CONG_DAN = "tiep_cong_dan"
    DON_THU = "don_thu"
    CONG_THONG_TIN = "cong_thong_tin"


class Level(StrEnum):
    """Competence level: commune, province or central."""

    XA = "xa"
    TINH = "tinh"
    TRUNG_UONG = "trung_uong"


class Status(StrEnum):
    """Lifecycle status of one recommendation."""

    RECEIVED = "received"
    MERGED = "merged"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TRIAGE = "triage"
    ANSWERED = "answered"
    REOPENED = "reopened"
    CLOSED = "closed"


class Frozen(BaseModel):
    """Base for every contract model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class Reporter(Frozen):
    """Identity of the person who submitted; confidential for denunciations."""

    name: Annotated[NfcStr, Field(min_length=1, max_length=200)]
    phone: Annotated[str | None, Field(default=None, pattern=r"^\+?[0-9 .\-]{6,20}$")] = None
    address: Annotated[NfcStr | None, Field(default=None, max_length=500)] = None


Base64 = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")]


class EncryptedReporter(Frozen):
    """The reporter's identity sealed with AES-256-GCM under the bus's PII key (base64 fields).

    The plaintext is the `Reporter` as compact JSON; the additional authenticated data binds
    it to its recommendation. Only the bus's services hold the key.
    """

    alg: Literal["A256GCM"] = "A256GCM"
    key_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
    nonce: Annotated[Base64, Field(min_length=16, max_length=16)]
    ciphertext: Annotated[Base64, Field(min_length=24, max_length=8192)]


# --------------------------------------------------------------------------- inbound


class Submission(Frozen):
    """A new recommendation as an agency's system submits it (HTTP body or inbound topic)."""

    kind: Kind
    channel: Channel
    locality: Code
    text: Text
    submitted_at: SubmittedAt = None
    reporter: Reporter | None = None
    source_ref: Annotated[Checked | None, Field(default=None, max_length=200)] = None


class InboundSubmission(Submission):
    """A submission on the inbound topic: carries who sent it and its idempotency key."""

    submitted_by: Code
    idempotency_key: Annotated[Checked | None, Field(default=None, max_length=200)] = None


class ResponseAction(StrEnum):
    """What an agency says about a recommendation assigned to it."""

    ACCEPT = "accept"
    DECLINE = "decline"
    ANSWER = "answer"
    REQUEST_EXTENSION = "request_extension"
    CLASSIFY = "classify"
    CLOSE = "close"
    REOPEN = "reopen"
    # corrections of duplicate decisions (the case's assignee, the other case's, or a
    # supervisor / triage body): `target` names the other case where one is needed
    MERGE_INTO = "merge_into"
    UNMERGE = "unmerge"
    NOT_DUPLICATE = "not_duplicate"


# Actions that name another case in `Response.target`.
TARGETED_ACTIONS = frozenset({ResponseAction.MERGE_INTO, ResponseAction.NOT_DUPLICATE})


class Response(Frozen):
    """An agency's response (inbound topic, or forwarded by the ingest HTTP API)."""

    response_id: Annotated[Checked, Field(min_length=1, max_length=100)]
    recommendation_id: Annotated[Checked, Field(min_length=1, max_length=100)]
    agency: Code
    action: ResponseAction
    text: Annotated[NfcStr | None, Field(default=None, max_length=MAX_TEXT_CHARS)] = None
    reason: Annotated[NfcStr | None, Field(default=None, max_length=2000)] = None
    category: Code | None = None
    level: Level | None = None
    # the other case of `merge_into` (merge this one into it) and `not_duplicate`
    target: Annotated[Checked | None, Field(default=None, min_length=1, max_length=100)] = None
    responded_at: datetime


# --------------------------------------------------------------------------- canonical


class LifecycleEvent(Frozen):
    """Common part of every canonical event about one recommendation."""

    event_name: ClassVar[str] = ""
    recommendation_id: str
    sequence: Annotated[int, Field(ge=1)]
    occurred_at: datetime

    def addressees(self) -> frozenset[str]:
        """Agency codes this event concerns directly (used by notify)."""
        return frozenset()


class Decision(Frozen):
    """Why routing chose what it chose: rule or model, its version, evidence and confidence."""

    rule: str
    version: str
    evidence: tuple[str, ...] = ()
    confidence: Annotated[float, Field(ge=0.0, le=1.0)] = 1.0


class Received(LifecycleEvent):
    """A recommendation entered the bus (stamped sequence 1 by ingest)."""

    event_name: ClassVar[str] = "received"
    kind: Kind
    channel: Channel
    locality: str
    text: Checked
    submitted_at: date | datetime | None = None
    reporter: EncryptedReporter | None = None  # never in plain text on a canonical topic
    source_ref: Checked | None = None
    submitted_by: str

    def addressees(self) -> frozenset[str]:
        """The submitting agency."""
        return frozenset({self.submitted_by})


class Merged(LifecycleEvent):
    """A recommendation repeats an open case and is linked to it."""

    event_name: ClassVar[str] = "merged"
    duplicate_of: str
    similarity: Annotated[float, Field(ge=0.0, le=1.0)]
    decision: Decision
    submitted_by: str | None = None
    # the agency that merged it by hand (`merge_into`); None: routing merged it
    merged_by: str | None = None

    def addressees(self) -> frozenset[str]:
        """The submitting agency (and whoever merged it by hand)."""
        return frozenset(c for c in (self.submitted_by, self.merged_by) if c)


class Unmerged(LifecycleEvent):
    """A wrong merge was undone: the recommendation is its own case again.

    Emitted on the recommendation that had been merged (`duplicate_of` is the case it was
    split from); routing assigns it again right after (its next `assigned`). `recipients`:
    its submitting agency (told that it is handled on its own now).
    """

    event_name: ClassVar[str] = "unmerged"
    duplicate_of: str
    agency: str  # who undid it
    reason: Checked
    recipients: tuple[str, ...] = ()
    decision: Decision

    def addressees(self) -> frozenset[str]:
        """The submitting agency and the agency that undid the merge."""
        return frozenset({self.agency, *self.recipients})


class DuplicateDismissed(LifecycleEvent):
    """A person said this recommendation does not repeat `candidate` (never suggested again)."""

    event_name: ClassVar[str] = "duplicate_dismissed"
    candidate: str
    agency: str  # who dismissed it
    reason: Checked | None = None

    def addressees(self) -> frozenset[str]:
        """The agency that dismissed it."""
        return frozenset({self.agency})


class Assigned(LifecycleEvent):
    """Routing gave the recommendation to a competent agency with deadlines."""

    event_name: ClassVar[str] = "assigned"
    agency: str
    category: str
    level: Level
    kind: Kind
    locality: str
    accept_deadline: datetime | None = None
    deadline: datetime
    decision: Decision
    hop: Annotated[int, Field(ge=0)] = 0
    previous_agency: str | None = None

    def addressees(self) -> frozenset[str]:
        """The assignee."""
        return frozenset({self.agency})


class SuggestedDuplicate(Frozen):
    """An open case a new recommendation may repeat: its id, similarity and the evidence."""

    recommendation_id: str
    similarity: Annotated[float, Field(ge=0.0, le=1.0)]
    evidence: tuple[str, ...] = ()


class DuplicateSuggested(LifecycleEvent):
    """Possible duplicates of a new case (below the auto-merge bar), best first.

    Emitted right after the case's `assigned`, for a person to confirm or dismiss; it does
    not change the case's status. `agency` is the assignee; `recipients` are the assignee
    and the triage body.
    """

    event_name: ClassVar[str] = "duplicate_suggested"
    agency: str
    candidates: Annotated[tuple[SuggestedDuplicate, ...], Field(min_length=1, max_length=10)]
    recipients: tuple[str, ...] = ()
    decision: Decision

    def addressees(self) -> frozenset[str]:
        """The assignee and the triage body."""
        return frozenset({self.agency, *self.recipients})


class Accepted(LifecycleEvent):
    """The assignee took the recommendation on."""

    event_name: ClassVar[str] = "accepted"
    agency: str

    def addressees(self) -> frozenset[str]:
        """The assignee."""
        return frozenset({self.agency})


class Declined(LifecycleEvent):
    """The assignee declined as not competent."""

    event_name: ClassVar[str] = "declined"
    agency: str
    reason: Checked

    def addressees(self) -> frozenset[str]:
        """The agency that declined."""
        return frozenset({self.agency})


class Answered(LifecycleEvent):
    """The assignee answered; the answer goes to the sources (merged ones too)."""

    event_name: ClassVar[str] = "answered"
    agency: str
    text: Checked
    on_time: bool
    recipients: tuple[str, ...] = ()

    def addressees(self) -> frozenset[str]:
        """Every source that should get the answer."""
        return frozenset(self.recipients)


class Reminded(LifecycleEvent):
    """A reminder before a deadline."""

    event_name: ClassVar[str] = "reminded"
    agency: str
    deadline: datetime

    def addressees(self) -> frozenset[str]:
        """The assignee."""
        return frozenset({self.agency})


class Escalated(LifecycleEvent):
    """A deadline passed: the ladder level and who is told.

    `stage` says which deadline: `answer` (the answer deadline) or `accept` (the case was
    neither accepted nor declined by its accept deadline).
    """

    event_name: ClassVar[str] = "escalated"
    agency: str
    level: Annotated[int, Field(ge=1)]
    deadline: datetime
    recipients: tuple[str, ...]
    stage: Literal["accept", "answer"] = "answer"

    def addressees(self) -> frozenset[str]:
        """The supervisors on this level of the ladder."""
        return frozenset(self.recipients)


class Extended(LifecycleEvent):
    """The answer deadline was extended (denunciations, per policy)."""

    event_name: ClassVar[str] = "extended"
    agency: str
    deadline: datetime
    extension: Annotated[int, Field(ge=1)]

    def addressees(self) -> frozenset[str]:
        """The assignee."""
        return frozenset({self.agency})


class Reopened(LifecycleEvent):
    """The answer was found unsatisfactory."""

    event_name: ClassVar[str] = "reopened"
    agency: str
    reason: Checked
    deadline: datetime

    def addressees(self) -> frozenset[str]:
        """The assignee."""
        return frozenset({self.agency})


class Closed(LifecycleEvent):
    """A supervisor closed the case."""

    event_name: ClassVar[str] = "closed"
    closed_by: str

    def addressees(self) -> frozenset[str]:
        """Nobody beyond the subscribers of closed events."""
        return frozenset()


class NotificationOutcome(Frozen):
    """One delivery attempt of one event to one endpoint."""

    event_name: ClassVar[str] = "notification_outcome"
    recommendation_id: str
    event_id: str
    event_type: str
    subscription_id: str
    agency: str
    channel: Literal["webhook", "email"]
    attempt: Annotated[int, Field(ge=1)]
    outcome: Literal["delivered", "failed", "retry_scheduled", "dead_lettered", "disabled"]
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    attempted_at: datetime


LIFECYCLE_EVENTS: tuple[type[LifecycleEvent], ...] = (
    Received,
    Merged,
    Unmerged,
    Assigned,
    DuplicateSuggested,
    DuplicateDismissed,
    Accepted,
    Declined,
    Answered,
    Reminded,
    Escalated,
    Extended,
    Reopened,
    Closed,
)

EVENT_MODELS: dict[str, type[BaseModel]] = {m.event_name: m for m in LIFECYCLE_EVENTS} | {
    NotificationOutcome.event_name: NotificationOutcome
}


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict of a model (dates as ISO strings)."""
    return model.model_dump(mode="json", exclude_none=False)
