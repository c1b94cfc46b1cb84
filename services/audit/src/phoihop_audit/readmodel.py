"""The status read model: a pure fold of one recommendation's lifecycle events by sequence.

Events of one recommendation arrive on several topics, so their arrival order is not their
order: the projection is recomputed from every stored event, sorted by sequence, each time a
new one arrives, and therefore converges whatever the arrival order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from phoihop_common.access import Relation
from phoihop_common.text import fold

OPEN_STATUSES = frozenset({"received", "assigned", "accepted", "declined", "triage", "reopened"})
OVERDUE_STATUSES = frozenset({"assigned", "accepted", "reopened"})
_STATUS_OF = {
    "received": "received",
    "merged": "merged",
    "assigned": "assigned",
    "accepted": "accepted",
    "declined": "declined",
    "answered": "answered",
    "reopened": "reopened",
    "closed": "closed",
}


def parse_time(value: Any) -> datetime | None:
    """An ISO timestamp as a naive UTC datetime (how the database stores times)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value)
        if len(text) == 10:  # a date only
            text += "T00:00:00+00:00"
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def iso(value: datetime | None) -> str | None:
    """A naive UTC datetime as ISO 8601 with `Z`."""
    return None if value is None else value.replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True)
class StoredEvent:
    """What the projection needs of one stored lifecycle event."""

    type: str
    sequence: int
    data: Mapping[str, Any]


@dataclass
class Projection:
    """Current state of one recommendation, plus its histories."""

    id: str
    status: str | None = None
    kind: str | None = None
    channel: str | None = None
    locality: str | None = None
    category: str | None = None
    level: str | None = None
    agency: str | None = None
    submitted_by: str | None = None
    source_ref: str | None = None  # the submitter's own reference
    submitted_at: str | None = None
    text: str | None = None
    received_at: datetime | None = None
    first_assigned_at: datetime | None = None
    accept_deadline: datetime | None = None
    deadline: datetime | None = None
    duplicate_of: str | None = None
    similarity: float | None = None
    sequence: int = 0
    escalation_level: int = 0
    answered_at: datetime | None = None
    answered_on_time: bool | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    missing_sequences: list[int] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    deadlines: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[dict[str, Any]] = field(default_factory=list)
    declines: list[dict[str, Any]] = field(default_factory=list)
    # the latest `duplicate_suggested`: open cases this one may repeat, best first
    suggestions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def assignees(self) -> frozenset[str]:
        """Every agency the recommendation was ever assigned to."""
        return frozenset(a["agency"] for a in self.assignments)

    @property
    def suggested_ids(self) -> list[str]:
        """Ids of the suggested duplicates, best first (not yet filtered to open cases)."""
        return [str(s["recommendation_id"]) for s in self.suggestions]

    @property
    def current_assignee(self) -> str | None:
        """The body settling it now (an agency that declined no longer is)."""
        return None if self.status == "declined" else self.agency

    @property
    def answer_days(self) -> float | None:
        """Days from receipt to the first answer."""
        if self.received_at is None or self.answered_at is None:
            return None
        return (self.answered_at - self.received_at).total_seconds() / 86400.0

    def overdue(self, now: datetime) -> bool:
        """Open with a passed answer deadline."""
        return self.status in OVERDUE_STATUSES and self.deadline is not None and self.deadline < now

    def row(self) -> dict[str, Any]:
        """Values of the `audit_recommendations` row."""
        return {
            "id": self.id,
            "status": self.status,
            "kind": self.kind,
            "channel": self.channel,
            "locality": self.locality,
            "category": self.category,
            "level": self.level,
            "agency": self.agency,
            "submitted_by": self.submitted_by,
            "source_ref": self.source_ref,
            "text": self.text,
            "text_folded": fold(self.text) if self.text else None,
            "received_at": self.received_at,
            "first_assigned_at": self.first_assigned_at,
            "deadline": self.deadline,
            "duplicate_of": self.duplicate_of,
            "sequence": self.sequence,
            "escalation_level": self.escalation_level,
            "answered_at": self.answered_at,
            "answered_on_time": self.answered_on_time,
            "answer_days": self.answer_days,
            "closed_at": self.closed_at,
            "has_gap": bool(self.missing_sequences),
        }

    def involvement(self) -> set[tuple[str, str, str]]:
        """(recommendation, agency, relation) rows this recommendation's events imply.

        Relations are the access policy's case relations; which of them open a case is the
        policy's decision (a `source` row opens nothing: a merge never opens a case).
        """
        rows: set[tuple[str, str, str]] = set()
        if self.submitted_by:
            rows.add((self.id, self.submitted_by, Relation.SUBMITTER.value))
            if self.duplicate_of:
                rows.add((self.duplicate_of, self.submitted_by, Relation.SOURCE.value))
        current = self.current_assignee
        for agency in self.assignees:
            rel = Relation.ASSIGNEE if agency == current else Relation.PAST_ASSIGNEE
            rows.add((self.id, agency, rel.value))
        return rows


def _apply(p: Projection, ev: StoredEvent) -> None:
    d = ev.data
    at = parse_time(d.get("occurred_at"))
    if ev.type in _STATUS_OF:
        p.status = _STATUS_OF[ev.type]
    if ev.type == "received":
        p.kind = d.get("kind") or p.kind
        p.channel = d.get("channel")
        p.locality = p.locality or d.get("locality")
        p.text = d.get("text")
        sub = d.get("submitted_at")
        p.submitted_at = str(sub) if sub is not None else None
        p.submitted_by = d.get("submitted_by")
        p.source_ref = d.get("source_ref")
        p.received_at = at
    elif ev.type == "merged":
        p.duplicate_of = d.get("duplicate_of")
        p.similarity = d.get("similarity")
        p.submitted_by = p.submitted_by or d.get("submitted_by")
    elif ev.type == "assigned":
        p.agency = d.get("agency")
        p.category = d.get("category")
        p.level = d.get("level")
        p.kind = d.get("kind") or p.kind
        p.locality = d.get("locality") or p.locality
        p.deadline = parse_time(d.get("deadline"))
        p.accept_deadline = parse_time(d.get("accept_deadline"))
        p.first_assigned_at = p.first_assigned_at or at
        decision = d.get("decision") or {}
        p.assignments.append(
            {
                "sequence": ev.sequence,
                "agency": p.agency,
                "category": p.category,
                "level": p.level,
                "assigned_at": iso(at),
                "accept_deadline": iso(p.accept_deadline),
                "deadline": iso(p.deadline),
                "hop": d.get("hop", 0),
                "previous_agency": d.get("previous_agency"),
                "rule": decision.get("rule"),
                "rule_version": decision.get("version"),
            }
        )
        p.deadlines.append(
            {"sequence": ev.sequence, "type": "assigned", "deadline": iso(p.deadline)}
        )
    elif ev.type == "declined":
        p.declines.append(
            {"sequence": ev.sequence, "agency": d.get("agency"), "reason": d.get("reason")}
        )
    elif ev.type == "answered":
        if p.answered_at is None:
            p.answered_at = at
            p.answered_on_time = bool(d.get("on_time"))
        p.answers.append(
            {
                "sequence": ev.sequence,
                "agency": d.get("agency"),
                "text": d.get("text"),
                "on_time": d.get("on_time"),
                "answered_at": iso(at),
            }
        )
    elif ev.type == "escalated":
        p.escalation_level = max(p.escalation_level, int(d.get("level") or 0))
        p.escalations.append(
            {
                "sequence": ev.sequence,
                "level": d.get("level"),
                "recipients": list(d.get("recipients") or ()),
                "escalated_at": iso(at),
            }
        )
    elif ev.type in ("extended", "reopened"):
        p.deadline = parse_time(d.get("deadline")) or p.deadline
        p.agency = d.get("agency") or p.agency
        p.deadlines.append({"sequence": ev.sequence, "type": ev.type, "deadline": iso(p.deadline)})
    elif ev.type == "closed":
        p.closed_at = at
        p.closed_by = d.get("closed_by")
    elif ev.type == "duplicate_suggested":
        p.suggestions = [
            {
                "recommendation_id": c.get("recommendation_id"),
                "similarity": c.get("similarity"),
                "sequence": ev.sequence,
            }
            for c in d.get("candidates") or ()
            if c.get("recommendation_id")
        ]


def project(recommendation_id: str, stored: Iterable[StoredEvent]) -> Projection:
    """Fold the lifecycle events of one recommendation in sequence order."""
    ordered = sorted(stored, key=lambda e: e.sequence)
    p = Projection(id=recommendation_id)
    for ev in ordered:
        _apply(p, ev)
    seen = {e.sequence for e in ordered}
    p.sequence = max(seen, default=0)
    p.missing_sequences = [s for s in range(1, p.sequence + 1) if s not in seen]
    return p
