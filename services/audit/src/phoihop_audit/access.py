"""Who may see what: agency scope and clearance for reporter identity."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, select

from phoihop_audit.db import involvement, recommendations
from phoihop_audit.readmodel import Projection
from phoihop_common.config import Reference
from phoihop_schemas.events import Kind

SEE_ALL_ROLES = frozenset({"supervisor", "triage"})


@dataclass(frozen=True)
class Caller:
    """An authenticated agency and its roles."""

    agency: str
    roles: frozenset[str]

    @property
    def sees_all(self) -> bool:
        """Supervisors and triage see every recommendation."""
        return bool(self.roles & SEE_ALL_ROLES)

    @property
    def supervisor(self) -> bool:
        """Has the supervisor role."""
        return "supervisor" in self.roles


def caller_for(agency: str, reference: Reference) -> Caller:
    """The caller with its roles from the reference data."""
    try:
        roles = frozenset(reference.agency(agency).role)
    except KeyError:
        roles = frozenset()
    return Caller(agency=agency, roles=roles)


def scope_clause(caller: Caller) -> ColumnElement[bool] | None:
    """A filter on `audit_recommendations` limiting rows to the caller's scope (None: all)."""
    if caller.sees_all:
        return None
    return exists(
        select(involvement.c.recommendation_id).where(
            involvement.c.recommendation_id == recommendations.c.id,
            involvement.c.agency == caller.agency,
        )
    )


def in_scope(caller: Caller, agencies: set[str]) -> bool:
    """True when the caller may see a recommendation involving `agencies`."""
    return caller.sees_all or caller.agency in agencies


def reporter_cleared(caller: Caller, p: Projection, *, reference: Reference) -> bool:
    """Reporter identity: the submitting agency and supervisors, never a denounced assignee."""
    if caller.agency == p.submitted_by:
        return True
    if not caller.supervisor:
        return False
    confidential = False
    if p.kind in {k.value for k in Kind}:
        policy = reference.sla.kinds.get(Kind(p.kind))
        confidential = bool(policy and policy.confidential_reporter)
    return not (confidential and caller.agency in p.assignees)
