"""Routing and assignment: a received case is merged or assigned; links and late answers.

`_assign` (emit `assigned` with fresh accept and answer deadlines) is shared with the
response handlers (decline, classify) and with `unmerge` (module `merging`).
"""

from __future__ import annotations

from datetime import datetime

from phoihop_routing.corrections import Source as MergedSource
from phoihop_routing.deadlines import after
from phoihop_routing.exceptions import RejectedError
from phoihop_routing.lifecycle.model import (
    LIFECYCLE_VERSION,
    PROCESSED_KEPT,
    AnswerOf,
    CaseState,
    Effect,
    Link,
    LinkCase,
    Outcome,
    Policy,
    Route,
    ShareAnswer,
    _Steps,
)
from phoihop_schemas.events import (
    Answered,
    Assigned,
    Decision,
    DuplicateSuggested,
    Level,
    Merged,
    Status,
)


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


def _shared_answer(state: CaseState, target: str) -> ShareAnswer | None:
    """The case's latest answer, to send to a duplicate merged after it was given."""
    if state.answer_text is None or state.answered_by is None:
        return None
    return ShareAnswer(
        target=target,
        source_case=state.recommendation_id,
        agency=state.answered_by,
        text=state.answer_text,
        on_time=bool(state.answered_on_time),
    )


def _link(state: CaseState | None, cmd: Link) -> Outcome:
    if state is None or any(m.recommendation_id == cmd.merged_id for m in state.merged):
        return Outcome(state=state)
    source = MergedSource(recommendation_id=cmd.merged_id, submitted_by=cmd.submitted_by)
    effects: tuple[Effect, ...] = ()
    # the answer was emitted before this duplicate existed: send it over (module doc)
    share = _shared_answer(state, cmd.merged_id)
    if state.status in (Status.ANSWERED, Status.CLOSED) and share is not None:
        effects = (share,)
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
