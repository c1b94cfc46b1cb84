"""The lifecycle of one recommendation as a pure state machine.

`apply(state, command, policy=..., now=...)` returns an `Outcome`: the new state, the
canonical events to emit (numbered `sequence` = previous + 1, + 2, ... so a case's events
never have gaps) and the internal effects the agents carry out (link a merged duplicate to
its open case, leave or join a duplicate bucket). An input that does not fit the state
raises `RejectedError(reason)`; the agent dead-letters it with that reason.

```
received ─► merged                                    (duplicate of an open case)
   └──────► assigned ─► accepted ─► answered ─► closed        (close: supervisor)
            │   ▲  └────────┴──► declined ─► assigned (category's provincial body)
            │   │                          └► triage   (after max_hops, or no body left)
            triage ─ classify (triage role) ─┘  answered ─► reopened (supervisor) ─► answered
   timers: reminded before the deadline, escalated level 1, 2 … after it (each once per
           deadline); extended (to_cao: at most `extensions` times; khieu_nai: once to
           `complex_days`) moves the deadline. An assigned case neither accepted nor
           declined by its accept deadline is escalated on the same ladder, `stage="accept"`.
```

Suggestions: a `Route` that is not a merge but carries open cases below the auto-merge bar
(`suggestions`, best first) emits `duplicate_suggested` right after `assigned` (next
sequence) for the assignee and the triage body; the status does not change.

Commands: `Route` (the verdict of the duplicate stage for a `received` event), `Respond`
(an agency's `Response`), `Tick` (a timer found a deadline due; re-checked here, so a
repeated or stale tick does nothing), `Link` (a duplicate was merged into this case) and
`AnswerOf` (the case this one was merged into had already been answered).
Replays are harmless: a second `Route` for a known case is ignored, a `Response` whose id
the case already applied is skipped, `Tick` only acts on what is still due, a `Link` of a
known duplicate and an `AnswerOf` already delivered do nothing.

Merged duplicates get the answer. A duplicate linked to an open case is one of the
recipients of that case's `Answered` (`recipients` = the case's submitter and every merged
source). A duplicate linked to a case that is *already* answered (or answered and then
closed) cannot be a recipient of an event that was emitted before it existed, so the case
sends the answer back with an `AnswerOf` command keyed by the duplicate (`ShareAnswer`
effect), and the duplicate's own partition emits an `Answered` event on the duplicate
itself: the answering agency, the case's answer text and timeliness, `recipients` = the
duplicate's submitting agency, and the duplicate's next sequence (it becomes `answered`).
Re-emitting on the answered case instead would write a second answer into that case's trail
(and its on-time figures); this way every recommendation is still written by its own
partition only and each keeps a gap-free sequence. A case closed without an answer has
nothing to share: its duplicates stay `merged`.

Complaints (`khieu_nai`): the law allows 45 days instead of 30 for complex cases. The
policy file says so with `answer: {days: 30, complex_days: 45}`; the assignee's
`request_extension` response switches the answer deadline, once per case, to
`complex_days` (same unit as the answer limit) counted from the start of the current answer
period (the assignment, or the reopening), emitting `Extended` (extension 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from phoihop_common.config import Duration, SlaPolicies
from phoihop_routing.deadlines import after
from phoihop_routing.escalation import Ladder
from phoihop_routing.exceptions import RejectedError
from phoihop_schemas.events import (
    Accepted,
    Answered,
    Assigned,
    Closed,
    Decision,
    Declined,
    DuplicateSuggested,
    Escalated,
    Extended,
    Kind,
    Level,
    LifecycleEvent,
    Merged,
    Received,
    Reminded,
    Reopened,
    Response,
    ResponseAction,
    Status,
    SuggestedDuplicate,
)

LIFECYCLE_VERSION = "lifecycle-1"
PROCESSED_KEPT = 64
OPEN_STATUSES = frozenset({Status.ASSIGNED, Status.ACCEPTED, Status.TRIAGE, Status.REOPENED})
ANSWERABLE = frozenset({Status.ASSIGNED, Status.ACCEPTED, Status.REOPENED})


class MergedSource(BaseModel):
    """A duplicate merged into a case, and who submitted it (it gets the answer too)."""

    model_config = ConfigDict(frozen=True)
    recommendation_id: str
    submitted_by: str


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


Command = Route | Respond | Tick | Link | AnswerOf


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


Effect = LinkCase | LeaveBucket | JoinBucket | ShareAnswer


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


def apply(state: CaseState | None, command: Command, *, policy: Policy, now: datetime) -> Outcome:
    """Apply one command to a case; raise RejectedError when it does not fit the state."""
    if isinstance(command, Route):
        return _route(state, command, policy=policy, now=now)
    if isinstance(command, Link):
        return _link(state, command)
    if isinstance(command, AnswerOf):
        return _answer_of(state, command, now=now)
    if isinstance(command, Tick):
        return tick(state, policy=policy, now=now)
    return _respond(state, command.response, policy=policy, now=now)


def _route(state: CaseState | None, cmd: Route, *, policy: Policy, now: datetime) -> Outcome:
    if state is not None:
        return Outcome(state=state)  # a second `received` for a known id: ignored
    rec = cmd.received
    initial = CaseState(
        recommendation_id=rec.recommendation_id,
        sequence=rec.sequence,
        status=Status.RECEIVED,
        kind=rec.kind,
        locality=rec.locality,
        submitted_by=rec.submitted_by,
        text=rec.text,
        received_at=rec.occurred_at,
        bucket=cmd.bucket,
        category=cmd.category,
        level=cmd.level,
    )
    steps = _Steps(initial, now)
    if cmd.duplicate_of:
        decision = cmd.merge_decision or Decision(
            rule="duplicate", version=LIFECYCLE_VERSION, confidence=cmd.similarity
        )
        steps.emit(
            Merged,
            duplicate_of=cmd.duplicate_of,
            similarity=max(0.0, min(1.0, cmd.similarity)),
            decision=decision,
            submitted_by=rec.submitted_by,
        )
        steps.update(status=Status.MERGED, duplicate_of=cmd.duplicate_of)
        steps.effects.append(
            LinkCase(
                target=cmd.duplicate_of,
                merged_id=rec.recommendation_id,
                submitted_by=rec.submitted_by,
            )
        )
        return steps.outcome()
    decision = cmd.decision
    agency = cmd.agency
    if decision.confidence < policy.triage_confidence:
        agency = policy.triage_agency
        decision = Decision(
            rule="triage:low_confidence",
            version=decision.version,
            evidence=(
                f"classifier_rule={cmd.decision.rule}",
                f"suggested_agency={cmd.agency}",
                f"threshold={policy.triage_confidence}",
                *decision.evidence,
            ),
            confidence=decision.confidence,
        )
    _assign(
        steps,
        policy=policy,
        agency=agency,
        category=cmd.category,
        level=cmd.level,
        decision=decision,
        base=rec.occurred_at,
        previous_agency=None,
    )
    if cmd.suggestions:
        _suggest(steps, cmd, policy=policy, agency=agency)
    return steps.outcome()


def _suggest(steps: _Steps, cmd: Route, *, policy: Policy, agency: str) -> None:
    """`duplicate_suggested` right after `assigned`: for the assignee and triage to decide."""
    best = max(c.similarity for c in cmd.suggestions)
    decision = cmd.suggest_decision or Decision(
        rule="duplicates.rank_candidates",
        version=LIFECYCLE_VERSION,
        evidence=tuple(f"suggested={c.recommendation_id}" for c in cmd.suggestions),
        confidence=max(0.0, min(1.0, best)),
    )
    steps.emit(
        DuplicateSuggested,
        agency=agency,
        candidates=cmd.suggestions,
        recipients=tuple(dict.fromkeys((agency, policy.triage_agency))),
        decision=decision,
    )


def _assign(
    steps: _Steps,
    *,
    policy: Policy,
    agency: str,
    category: str,
    level: Level,
    decision: Decision,
    base: datetime,
    previous_agency: str | None,
) -> None:
    kind = steps.state.kind
    accept_deadline = after(base, policy.accept_limit(kind), calendar=policy.ladder.calendar)
    deadline = after(base, policy.answer_limit(kind), calendar=policy.ladder.calendar)
    steps.emit(
        Assigned,
        agency=agency,
        category=category,
        level=level,
        kind=kind,
        locality=steps.state.locality,
        accept_deadline=accept_deadline,
        deadline=deadline,
        decision=decision,
        hop=steps.state.hops,
        previous_agency=previous_agency,
    )
    status = Status.TRIAGE if agency == policy.triage_agency else Status.ASSIGNED
    steps.update(
        status=status,
        agency=agency,
        category=category,
        level=level,
        accept_deadline=accept_deadline,
        deadline=deadline,
        deadline_start=base,
        reminded=False,
        escalated=(),
        accept_escalated=(),
    )


def _link(state: CaseState | None, cmd: Link) -> Outcome:
    if state is None or any(m.recommendation_id == cmd.merged_id for m in state.merged):
        return Outcome(state=state)
    source = MergedSource(recommendation_id=cmd.merged_id, submitted_by=cmd.submitted_by)
    effects: tuple[Effect, ...] = ()
    answered = state.status in (Status.ANSWERED, Status.CLOSED)
    if answered and state.answer_text is not None and state.answered_by is not None:
        # the answer was emitted before this duplicate existed: send it over (module doc)
        effects = (
            ShareAnswer(
                target=cmd.merged_id,
                source_case=state.recommendation_id,
                agency=state.answered_by,
                text=state.answer_text,
                on_time=bool(state.answered_on_time),
            ),
        )
    return Outcome(
        state=state.model_copy(update={"merged": (*state.merged, source)}),
        effects=effects,
        changed=True,
    )


def _answer_of(state: CaseState | None, cmd: AnswerOf, *, now: datetime) -> Outcome:
    if state is None:
        raise RejectedError("unknown_recommendation", "answer for an unknown duplicate")
    marker = f"answer_of:{cmd.source_case}"
    if marker in state.processed:
        return Outcome(state=state)  # replayed: already delivered
    if state.status != Status.MERGED or state.duplicate_of != cmd.source_case:
        raise RejectedError(
            "invalid_transition",
            f"answer of {cmd.source_case} not allowed in status {state.status.value}",
        )
    steps = _Steps(state, now)
    steps.emit(
        Answered,
        agency=cmd.agency,
        text=cmd.text,
        on_time=cmd.on_time,
        recipients=(state.submitted_by,),
    )
    steps.update(
        status=Status.ANSWERED,
        answer_text=cmd.text,
        answered_by=cmd.agency,
        answered_on_time=cmd.on_time,
        processed=(*state.processed, marker)[-PROCESSED_KEPT:],
    )
    return steps.outcome()


def _respond(
    state: CaseState | None, response: Response, *, policy: Policy, now: datetime
) -> Outcome:
    if state is None:
        raise RejectedError("unknown_recommendation", response.recommendation_id)
    if response.response_id in state.processed:
        return Outcome(state=state)  # replayed after a restart: already applied
    steps = _Steps(state, now)
    handler = _HANDLERS[response.action]
    handler(steps, response, policy)
    steps.update(processed=(*state.processed, response.response_id)[-PROCESSED_KEPT:])
    return steps.outcome()


def _require_assignee(state: CaseState, response: Response) -> None:
    if response.agency != state.agency:
        raise RejectedError(
            "not_assignee", f"{response.agency} is not the assignee ({state.agency})"
        )


def _invalid(state: CaseState, response: Response) -> RejectedError:
    return RejectedError(
        "invalid_transition", f"{response.action.value} not allowed in status {state.status.value}"
    )


def _accept(steps: _Steps, response: Response, policy: Policy) -> None:
    state = steps.state
    _require_assignee(state, response)
    if state.status != Status.ASSIGNED:
        raise _invalid(state, response)
    steps.emit(Accepted, agency=response.agency)
    steps.update(status=Status.ACCEPTED)


def _decline(steps: _Steps, response: Response, policy: Policy) -> None:
    state = steps.state
    _require_assignee(state, response)
    if state.status not in (Status.ASSIGNED, Status.ACCEPTED):
        raise _invalid(state, response)
    declined_by = (*state.declined_by, response.agency)
    steps.emit(Declined, agency=response.agency, reason=response.reason or "not competent")
    hops = state.hops + 1
    steps.update(status=Status.DECLINED, hops=hops, declined_by=declined_by)
    category = state.category or ""
    candidate = policy.category_agency.get(category)
    evidence: tuple[str, ...] = (
        f"declined_by={','.join(declined_by)}",
        f"category={category}",
        f"hop={hops}",
    )
    if candidate and candidate not in declined_by and hops < policy.max_hops:
        agency, rule = candidate, "declined:category_agency"
    else:
        agency, rule = policy.triage_agency, "declined:triage"
        evidence = (*evidence, f"max_hops={policy.max_hops}")
    _assign(
        steps,
        policy=policy,
        agency=agency,
        category=category,
        level=state.level or Level.TINH,
        decision=Decision(rule=rule, version=LIFECYCLE_VERSION, evidence=evidence, confidence=1.0),
        base=steps.now,
        previous_agency=response.agency,
    )


def _answer(steps: _Steps, response: Response, policy: Policy) -> None:
    state = steps.state
    _require_assignee(state, response)
    if state.status == Status.CLOSED:
        raise RejectedError("answer_closed_case", "the case is closed")
    if state.status not in ANSWERABLE:
        raise _invalid(state, response)
    if not response.text:
        raise RejectedError("missing_text", "an answer needs a text")
    recipients: list[str] = []
    for code in (state.submitted_by, *(m.submitted_by for m in state.merged)):
        if code not in recipients:
            recipients.append(code)
    on_time = state.deadline is None or steps.now <= state.deadline
    steps.emit(
        Answered,
        agency=response.agency,
        text=response.text,
        on_time=on_time,
        recipients=tuple(recipients),
    )
    steps.update(
        status=Status.ANSWERED,
        answer_text=response.text,
        answered_by=response.agency,
        answered_on_time=on_time,
    )


def _extend(steps: _Steps, response: Response, policy: Policy) -> None:
    state = steps.state
    _require_assignee(state, response)
    if state.status not in ANSWERABLE or state.deadline is None:
        raise _invalid(state, response)
    limit = policy.answer_limit(state.kind)
    if limit.complex_days:
        _complex(steps, response, policy, limit)
        return
    if state.extensions >= limit.extensions or not limit.extension_days:
        raise RejectedError(
            "extension_not_allowed",
            f"{state.kind.value}: {state.extensions} of {limit.extensions} extensions used",
        )
    deadline = after(
        state.deadline, Duration(days=limit.extension_days), calendar=policy.ladder.calendar
    )
    number = state.extensions + 1
    steps.emit(Extended, agency=response.agency, deadline=deadline, extension=number)
    steps.update(deadline=deadline, extensions=number, reminded=False, escalated=())


def _complex(steps: _Steps, response: Response, policy: Policy, limit: Duration) -> None:
    """khieu_nai: the answer deadline becomes `complex_days` from the period's start, once."""
    state = steps.state
    current = state.deadline
    if state.complex or not limit.complex_days or current is None:
        raise RejectedError(
            "extension_not_allowed", f"{state.kind.value}: already extended to complex_days"
        )
    if limit.working_days is not None:
        complex_limit = Duration(working_days=limit.complex_days)
    else:
        complex_limit = Duration(days=limit.complex_days)
    start = state.deadline_start or state.received_at
    deadline = after(start, complex_limit, calendar=policy.ladder.calendar)
    if deadline <= current:
        raise RejectedError(
            "extension_not_allowed", f"complex_days would not move the deadline {current}"
        )
    number = state.extensions + 1
    steps.emit(Extended, agency=response.agency, deadline=deadline, extension=number)
    steps.update(deadline=deadline, extensions=number, complex=True, reminded=False, escalated=())


def _classify(steps: _Steps, response: Response, policy: Policy) -> None:
    state = steps.state
    if not policy.has_role(response.agency, "triage"):
        raise RejectedError("not_triage", f"{response.agency} has no triage role")
    if state.status != Status.TRIAGE:
        raise _invalid(state, response)
    if not response.category or response.level is None:
        raise RejectedError("missing_classification", "classify needs category and level")
    if response.category not in policy.category_agency:
        raise RejectedError("unknown_category", response.category)
    agency = policy.agency_for(response.category, response.level, state.locality)
    _assign(
        steps,
        policy=policy,
        agency=agency,
        category=response.category,
        level=response.level,
        decision=Decision(
            rule="triage:classification",
            version=LIFECYCLE_VERSION,
            evidence=(f"classified_by={response.agency}",),
            confidence=1.0,
        ),
        base=steps.now,
        previous_agency=state.agency,
    )
    if state.bucket:
        steps.effects.append(
            LeaveBucket(bucket=state.bucket, recommendation_id=state.recommendation_id)
        )
    steps.effects.append(JoinBucket(recommendation_id=state.recommendation_id))


def _close(steps: _Steps, response: Response, policy: Policy) -> None:
    state = steps.state
    if not policy.has_role(response.agency, "supervisor"):
        raise RejectedError("not_supervisor", f"{response.agency} has no supervisor role")
    if state.status in (Status.CLOSED, Status.MERGED):
        raise _invalid(state, response)
    steps.emit(Closed, closed_by=response.agency)
    steps.update(status=Status.CLOSED)
    if state.bucket:
        steps.effects.append(
            LeaveBucket(bucket=state.bucket, recommendation_id=state.recommendation_id)
        )


def _reopen(steps: _Steps, response: Response, policy: Policy) -> None:
    state = steps.state
    if not policy.has_role(response.agency, "supervisor"):
        raise RejectedError("not_supervisor", f"{response.agency} has no supervisor role")
    if state.status != Status.ANSWERED or state.agency is None:
        raise _invalid(state, response)
    deadline = after(steps.now, policy.answer_limit(state.kind), calendar=policy.ladder.calendar)
    steps.emit(
        Reopened,
        agency=state.agency,
        reason=response.reason or response.text or "answer not satisfactory",
        deadline=deadline,
    )
    steps.update(
        status=Status.REOPENED,
        deadline=deadline,
        deadline_start=steps.now,
        reminded=False,
        escalated=(),
    )


_HANDLERS: dict[ResponseAction, Callable[[_Steps, Response, Policy], None]] = {
    ResponseAction.ACCEPT: _accept,
    ResponseAction.DECLINE: _decline,
    ResponseAction.ANSWER: _answer,
    ResponseAction.REQUEST_EXTENSION: _extend,
    ResponseAction.CLASSIFY: _classify,
    ResponseAction.CLOSE: _close,
    ResponseAction.REOPEN: _reopen,
}


# --------------------------------------------------------------------------- timers


def _awaiting_accept(state: CaseState) -> bool:
    """Assigned, and neither accepted nor declined yet: the accept deadline runs."""
    return (
        state.status == Status.ASSIGNED
        and state.accept_deadline is not None
        and state.agency is not None
    )


def tick(state: CaseState | None, *, policy: Policy, now: datetime) -> Outcome:
    """Emit the reminder and escalation levels due at `now` (each once per deadline).

    Two deadlines run on the same ladder: the accept deadline while the case is assigned
    but neither accepted nor declined (`Escalated.stage = "accept"`, no reminder: the
    assignment itself is the notice), and the answer deadline while the case is open.
    """
    if state is None or state.agency is None:
        return Outcome(state=state)
    ladder = policy.ladder
    steps = _Steps(state, now)
    if _awaiting_accept(state):
        assert state.accept_deadline is not None
        accept_escalated = list(state.accept_escalated)
        for level in ladder.levels:
            if level.number in accept_escalated:
                continue
            if now < ladder.level_at(level, state.accept_deadline):
                continue
            steps.emit(
                Escalated,
                agency=state.agency,
                level=level.number,
                deadline=state.accept_deadline,
                recipients=ladder.recipients(level, assigned=state.agency),
                stage="accept",
            )
            accept_escalated.append(level.number)
        steps.update(accept_escalated=tuple(accept_escalated))
    if state.is_open and state.deadline is not None:
        deadline = state.deadline
        if not state.reminded:
            remind_at = ladder.remind_at(deadline)
            if now >= deadline:
                steps.update(reminded=True)  # too late for a reminder: the ladder takes over
            elif now >= remind_at:
                steps.emit(Reminded, agency=state.agency, deadline=deadline)
                steps.update(reminded=True)
        escalated = list(state.escalated)
        for level in ladder.levels:
            if level.number in escalated or now < ladder.level_at(level, deadline):
                continue
            steps.emit(
                Escalated,
                agency=state.agency,
                level=level.number,
                deadline=deadline,
                recipients=ladder.recipients(level, assigned=state.agency),
            )
            escalated.append(level.number)
        steps.update(escalated=tuple(escalated))
    if steps.state == state:
        return Outcome(state=state)
    return steps.outcome()


def next_due(state: CaseState, *, policy: Policy) -> datetime | None:
    """The next instant a timer should look at this case, None when nothing is pending."""
    ladder = policy.ladder
    pending: list[datetime] = []
    if _awaiting_accept(state):
        assert state.accept_deadline is not None
        pending.extend(
            ladder.level_at(level, state.accept_deadline)
            for level in ladder.levels
            if level.number not in state.accept_escalated
        )
    if state.is_open and state.deadline is not None:
        if not state.reminded:
            pending.append(min(ladder.remind_at(state.deadline), state.deadline))
        pending.extend(
            ladder.level_at(level, state.deadline)
            for level in ladder.levels
            if level.number not in state.escalated
        )
    return min(pending) if pending else None
