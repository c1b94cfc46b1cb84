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
from phoihop_schemas import lifecycle

# the shared vocabulary, as the strings stored in `audit_recommendations.status`
OPEN_STATUSES = lifecycle.values(lifecycle.UNSETTLED)
OVERDUE_STATUSES = lifecycle.values(lifecycle.ANSWERABLE)
_STATUS_OF = {
    "received": "received",
    "merged": "merged",
    # its own case again, waiting for the `assigned` routing emits right after
    "unmerged": "received",
    "assigned": "assigned",
    "accepted": "accepted",
    "declined": "declined",
    "answered": "answered",
    "reopened": "reopened",
    "closed": "closed",
}


# Events that may carry a person's correction of a duplicate decision (`merged` only with
# `merged_by`), and the action each stands for.
CORRECTION_TYPES = ("merged", "unmerged", "duplicate_dismissed")
CORRECTION_ACTIONS = {
    "merged": "merge_into",
    "unmerged": "unmerge",
    "duplicate_dismissed": "not_duplicate",
}
_REASON = "reason="


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


def _merge_reason(decision: Mapping[str, Any]) -> str | None:
    """The reason of a merge by hand (routing keeps it as `reason=…` in the evidence)."""
    for item in decision.get("evidence") or ():
        if isinstance(item, str) and item.startswith(_REASON):
            return item[len(_REASON) :] or None
    return None


def correction_of(ev: StoredEvent) -> dict[str, Any] | None:
    """A person's correction of a duplicate decision carried by an event, or None.

    `{sequence, action, other, agency, reason, at}`: `action` is `merge_into` (a `merged`
    with `merged_by`), `unmerge` or `not_duplicate`; `other` the other case's id.
    """
    d = ev.data
    if ev.type == "merged":
        agency, other = d.get("merged_by"), d.get("duplicate_of")
        reason = _merge_reason(d.get("decision") or {})
    elif ev.type == "unmerged":
        agency, other, reason = d.get("agency"), d.get("duplicate_of"), d.get("reason")
    elif ev.type == "duplicate_dismissed":
        agency, other, reason = d.get("agency"), d.get("candidate"), d.get("reason")
    else:
        return None
    if not agency or not other:
        return None  # an automatic merge (or an incomplete record)
    return {
        "sequence": ev.sequence,
        "action": CORRECTION_ACTIONS[ev.type],
        "other": str(other),
        "agency": str(agency),
        "reason": reason,
        "at": iso(parse_time(d.get("occurred_at"))),
    }


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
    # the latest `duplicate_suggested`: open cases this one may repeat, best first (never
    # one a person said it does not repeat)
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    # cases a person said this one does not repeat (`duplicate_dismissed`, or a merge undone)
    dismissed: list[str] = field(default_factory=list)
    # people's corrections of duplicate decisions on this case, by sequence
    corrections: list[dict[str, Any]] = field(default_factory=list)

    @property
    def assignees(self) -> frozenset[str]:
        """Every agency the recommendation was ever assigned to."""
        return frozenset(a["agency"] for a in self.assignments)

    @property
    def suggested_ids(self) -> list[str]:
        """Ids of the suggested duplicates, best first (not yet filtered to open cases)."""
        gone = set(self.dismissed)
        return [
            str(s["recommendation_id"])
            for s in self.suggestions
            if str(s["recommendation_id"]) not in gone
        ]

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
        return lifecycle.is_overdue(self.status, self.deadline, now)

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
    correction = correction_of(ev) if ev.type in CORRECTION_TYPES else None
    if correction is not None:
        p.corrections.append(correction)
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
    elif ev.type == "unmerged":
        # a wrong merge undone: its own case again (the other case loses this source)
        undone = d.get("duplicate_of") or p.duplicate_of
        p.duplicate_of = None
        p.similarity = None
        if undone:
            _dismiss(p, str(undone))
    elif ev.type == "duplicate_dismissed":
        candidate = d.get("candidate")
        if candidate:
            _dismiss(p, str(candidate))
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
        gone = set(p.dismissed)
        p.suggestions = [
            {
                "recommendation_id": c.get("recommendation_id"),
                "similarity": c.get("similarity"),
                "sequence": ev.sequence,
            }
            for c in d.get("candidates") or ()
            if c.get("recommendation_id") and str(c.get("recommendation_id")) not in gone
        ]


def _dismiss(p: Projection, other: str) -> None:
    """`other` is not a duplicate of this case: never suggested for it again."""
    if other not in p.dismissed:
        p.dismissed.append(other)
    p.suggestions = [s for s in p.suggestions if str(s.get("recommendation_id")) != other]


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
