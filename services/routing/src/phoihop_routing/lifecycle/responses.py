"""Agencies' responses: accept, decline, answer, extend, classify, close, reopen.

`_respond` skips a response id the case already applied and dispatches on the action
(`_HANDLERS`); the duplicate corrections (`merge_into`, `not_duplicate`, `unmerge`) start
in module `merging`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from phoihop_common.config import Duration
from phoihop_routing.deadlines import after
from phoihop_routing.exceptions import RejectedError
from phoihop_routing.lifecycle.merging import _pair, _unmerge
from phoihop_routing.lifecycle.model import (
    ANSWERABLE,
    LIFECYCLE_VERSION,
    PROCESSED_KEPT,
    CaseState,
    JoinBucket,
    LeaveBucket,
    Outcome,
    Policy,
    _invalid,
    _Steps,
)
from phoihop_routing.lifecycle.routing import _assign
from phoihop_schemas.events import (
    Accepted,
    Answered,
    Closed,
    Decision,
    Declined,
    Extended,
    Level,
    Reopened,
    Response,
    ResponseAction,
    Status,
)


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
    ResponseAction.MERGE_INTO: _pair,
    ResponseAction.NOT_DUPLICATE: _pair,
    ResponseAction.UNMERGE: _unmerge,
}
