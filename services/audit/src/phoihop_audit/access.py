"""Audit's glue to the one access policy (`phoihop_common.access`): caller, facts, SQL scopes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, select, true

from phoihop_audit.db import involvement, recommendations
from phoihop_audit.readmodel import Projection
from phoihop_common import access
from phoihop_common.access import Case, Resource
from phoihop_common.config import Reference


@dataclass(frozen=True)
class Caller:
    """An authenticated agency (its roles come from the reference data, through the policy)."""

    agency: str


def case_of(p: Projection, *, sources: frozenset[str]) -> Case:
    """The facts the policy decides on, from a projection and the agencies merged into it."""
    current = p.current_assignee
    return Case(
        kind=p.kind,
        submitted_by=p.submitted_by,
        assignee=current,
        past_assignees=p.assignees - {current} if current else p.assignees,
        sources=sources,
        duplicate_of=p.duplicate_of,
    )


def readable(*, reference: Reference, caller: Caller, case: Case) -> frozenset[Resource]:
    """What the caller may read of one case."""
    return access.readable(reference, agency=caller.agency, case=case)


def scope_clause(
    *, reference: Reference, caller: Caller, resource: Resource = Resource.STATUS
) -> ColumnElement[bool] | None:
    """A filter on `audit_recommendations` to the cases where `resource` is readable."""
    where = access.scope(reference, agency=caller.agency, resource=resource)
    if where.everything:
        return None
    return exists(
        select(involvement.c.recommendation_id).where(
            involvement.c.recommendation_id == recommendations.c.id,
            involvement.c.agency == caller.agency,
            involvement.c.relation.in_(sorted(where.via)),
        )
    )


def visible_expr(
    *, reference: Reference, caller: Caller, resource: Resource
) -> ColumnElement[bool]:
    """A boolean column: whether `resource` of the row is readable by the caller."""
    clause = scope_clause(reference=reference, caller=caller, resource=resource)
    return true() if clause is None else clause
