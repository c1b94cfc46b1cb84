"""The lifecycle vocabulary every service shares: which statuses are open, what is overdue,
the roles, and who may send which response with which fields.

Routing decides transitions (`phoihop_routing.lifecycle`); ingest checks responses at the
HTTP edge; audit counts open and overdue cases; notify and audit name the roles. They all
read these sets, so a status or a role means the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from phoihop_schemas.events import Response, ResponseAction, Status

# Deadlines run: someone has to act (routing's timers, `is_open`).
OPEN = frozenset({Status.ASSIGNED, Status.ACCEPTED, Status.TRIAGE, Status.REOPENED})
# The assignee may answer, ask for more time; the answer deadline can be missed.
ANSWERABLE = frozenset({Status.ASSIGNED, Status.ACCEPTED, Status.REOPENED})
# Not settled yet, counting the moments between events (`received` before routing
# assigns it, `declined` before the next `assigned`): audit's "open" counts and gauges.
UNSETTLED = OPEN | {Status.RECEIVED, Status.DECLINED}
# A case may be merged into another by hand from these, into an open or answered one.
MERGEABLE_FROM = OPEN
MERGEABLE_INTO = OPEN | {Status.ANSWERED}


def values(statuses: frozenset[Status]) -> frozenset[str]:
    """The statuses as plain strings (database columns, JSON)."""
    return frozenset(s.value for s in statuses)


def is_overdue(status: str | None, deadline: datetime | None, now: datetime) -> bool:
    """Answerable with a passed answer deadline."""
    return status in ANSWERABLE and deadline is not None and deadline < now


# Roles of agencies.yaml.
SUPERVISOR = "supervisor"
TRIAGE = "triage"
# Who may respond: the case's assignee, an agency with a role, or for corrections of a
# duplicate decision the assignee of either case or a supervisor / triage body.
ASSIGNEE = "assignee"
CORRECTOR = "corrector"
CORRECTION_ROLES = frozenset({SUPERVISOR, TRIAGE})


def may_correct(roles: frozenset[str]) -> bool:
    """Whether an agency with these roles may correct any case (supervisor or triage)."""
    return bool(CORRECTION_ROLES & roles)


RESPONDERS: Mapping[ResponseAction, str] = {
    ResponseAction.ACCEPT: ASSIGNEE,
    ResponseAction.DECLINE: ASSIGNEE,
    ResponseAction.ANSWER: ASSIGNEE,
    ResponseAction.REQUEST_EXTENSION: ASSIGNEE,
    ResponseAction.CLASSIFY: TRIAGE,
    ResponseAction.CLOSE: SUPERVISOR,
    ResponseAction.REOPEN: SUPERVISOR,
    ResponseAction.MERGE_INTO: CORRECTOR,
    ResponseAction.UNMERGE: CORRECTOR,
    ResponseAction.NOT_DUPLICATE: CORRECTOR,
}
# Fields a response must carry, per action (empty text counts as missing).
REQUIRED: Mapping[ResponseAction, tuple[str, ...]] = {
    ResponseAction.ANSWER: ("text",),
    ResponseAction.DECLINE: ("reason",),
    ResponseAction.REQUEST_EXTENSION: ("reason",),
    ResponseAction.REOPEN: ("reason",),
    ResponseAction.UNMERGE: ("reason",),
    ResponseAction.CLASSIFY: ("category", "level"),
    ResponseAction.MERGE_INTO: ("target",),
    ResponseAction.NOT_DUPLICATE: ("target",),
}


def missing_fields(response: Response) -> tuple[str, ...]:
    """The required fields of `response.action` that are absent or empty."""
    return tuple(
        name for name in REQUIRED.get(response.action, ()) if getattr(response, name) in (None, "")
    )
