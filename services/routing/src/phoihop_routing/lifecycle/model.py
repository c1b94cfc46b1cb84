"""The lifecycle's vocabulary: the state of a case, commands, effects, policy, outcome.

`_Steps` collects the events of one command (consecutive sequence numbers) with the
state they lead to; every handler module writes through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from phoihop_common.config import Duration, SlaPolicies
from phoihop_routing.corrections import Correction
from phoihop_routing.corrections import Source as MergedSource
from phoihop_routing.escalation import Ladder
from phoihop_routing.exceptions import RejectedError
from phoihop_schemas import lifecycle
from phoihop_schemas.events import (
    Decision,
    Kind,
    Level,
    LifecycleEvent,
    Received,
    Response,
    Status,
    SuggestedDuplicate,
)

LIFECYCLE_VERSION = "lifecycle-1"
PROCESSED_KEPT = 64
OPEN_STATUSES = lifecycle.OPEN  # the shared vocabulary (`phoihop_schemas.lifecycle`)
ANSWERABLE = lifecycle.ANSWERABLE


class CaseState(BaseModel):
    """Everything routing remembers about one recommendation (a faust table value)."""

    model_config = ConfigDict(frozen=True)

    recommendation_id: str
    sequence: int
    status: Status
    kind: Kind
    locality: str
    submitted_by: str
    text: str
    received_at: datetime
    bucket: str | None = None
    category: str | None = None
    level: Level | None = None
    agency: str | None = None
    accept_deadline: datetime | None = None
    deadline: datetime | None = None
    deadline_start: datetime | None = None  # start of the current answer period
    hops: int = 0
    declined_by: tuple[str, ...] = ()
    extensions: int = 0
    complex: bool = False  # khieu_nai switched to `complex_days`
    reminded: bool = False
    escalated: tuple[int, ...] = ()
    accept_escalated: tuple[int, ...] = ()  # ladder levels sent for the accept deadline
    answer_text: str | None = None  # the latest answer (shared with late duplicates)
    answered_by: str | None = None
    answered_on_time: bool | None = None
    duplicate_of: str | None = None
    merged: tuple[MergedSource, ...] = ()
    dismissed: tuple[str, ...] = ()  # cases a person said this one does not repeat
    processed: tuple[str, ...] = ()
    partition: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form stored in the table."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseState:
        """Back from the table."""
        return cls.model_validate(data)

    @property
    def is_open(self) -> bool:
        """Still waiting for someone to act (deadlines run)."""
        return self.status in OPEN_STATUSES


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Route:
    """The duplicate stage's verdict for a received recommendation."""

    received: Received
    category: str
    level: Level
    agency: str
    decision: Decision
    bucket: str | None = None
    duplicate_of: str | None = None
    similarity: float = 0.0
    merge_decision: Decision | None = None
    # open cases below the merge bar, best first (only when not merged)
    suggestions: tuple[SuggestedDuplicate, ...] = ()
    suggest_decision: Decision | None = None


@dataclass(frozen=True)
class Respond:
    """An agency's response."""

    response: Response


@dataclass(frozen=True)
class Tick:
    """A timer saw a deadline of this case due."""


@dataclass(frozen=True)
class Link:
    """A duplicate was merged into this case."""

    merged_id: str
    submitted_by: str


@dataclass(frozen=True)
class AnswerOf:
    """The case this duplicate was merged into was already answered: take its answer."""

    source_case: str
    agency: str
    text: str
    on_time: bool


Command = Route | Respond | Tick | Link | AnswerOf | Correction


# --------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class LinkCase:
    """Tell the open case `target` that `merged_id` was merged into it."""

    target: str
    merged_id: str
    submitted_by: str


@dataclass(frozen=True)
class LeaveBucket:
    """Remove the case from its duplicate bucket (it no longer attracts duplicates)."""

    bucket: str
    recommendation_id: str


@dataclass(frozen=True)
class JoinBucket:
    """Put the case (with its current classification) into its duplicate bucket."""

    recommendation_id: str


@dataclass(frozen=True)
class ShareAnswer:
    """Send the answer of the answered case `source_case` to its late duplicate `target`."""

    target: str
    source_case: str
    agency: str
    text: str
    on_time: bool


@dataclass(frozen=True)
class Forward:
    """Send a correction step to the case `target` (its own partition applies it)."""

    target: str
    command: Correction


Effect = LinkCase | LeaveBucket | JoinBucket | ShareAnswer | Forward


@dataclass(frozen=True)
class Outcome:
    """Result of one command: new state, events to emit, effects; `changed` = write state."""

    state: CaseState | None
    events: tuple[LifecycleEvent, ...] = ()
    effects: tuple[Effect, ...] = ()
    changed: bool = False


@dataclass(frozen=True)
class Policy:
    """What the state machine needs from configuration."""

    sla: SlaPolicies
    ladder: Ladder
    roles: Mapping[str, frozenset[str]]
    category_agency: Mapping[str, str]
    agency_for: Callable[[str, Level, str], str] = field(repr=False)
    triage_agency: str = "TT_HDND"
    triage_confidence: float = 0.5
    max_hops: int = 3

    def has_role(self, agency: str, role: str) -> bool:
        """Whether `agency` has `role` in the agencies config."""
        return role in self.roles.get(agency, frozenset())

    def answer_limit(self, kind: Kind) -> Duration:
        """Answer time limit of a kind."""
        return self.sla.kinds[kind].answer

    def accept_limit(self, kind: Kind) -> Duration:
        """Accept time limit of a kind."""
        return self.sla.kinds[kind].accept


# --------------------------------------------------------------------------- machine


class _Steps:
    """Collects events with consecutive sequence numbers and the state they lead to."""

    def __init__(self, state: CaseState, now: datetime) -> None:
        self.state = state
        self.now = now
        self.events: list[LifecycleEvent] = []
        self.effects: list[Effect] = []

    def emit(self, cls: type[LifecycleEvent], **data: Any) -> None:
        seq = self.state.sequence + 1
        event = cls(
            recommendation_id=self.state.recommendation_id,
            sequence=seq,
            occurred_at=self.now,
            **data,
        )
        self.events.append(event)
        self.state = self.state.model_copy(update={"sequence": seq})

    def update(self, **changes: Any) -> None:
        self.state = self.state.model_copy(update=changes)

    def outcome(self) -> Outcome:
        return Outcome(
            state=self.state, events=tuple(self.events), effects=tuple(self.effects), changed=True
        )


def _invalid(state: CaseState, response: Response) -> RejectedError:
    return RejectedError(
        "invalid_transition", f"{response.action.value} not allowed in status {state.status.value}"
    )
