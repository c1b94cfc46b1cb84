"""Timers: reminders and escalations of the accept and answer deadlines; the next one due."""

from __future__ import annotations

from datetime import datetime

from phoihop_routing.lifecycle.model import CaseState, Outcome, Policy, _Steps
from phoihop_schemas.events import Escalated, Reminded, Status


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
