"""The one access policy: what an agency may read of one case, decided from data.

A caller's relations to a case come from its roles in `agencies.yaml` (supervisor, triage),
from `access.yaml`'s need-to-know list, and from the case's facts (its submitter, current
assignee, past assignees, and the agencies whose recommendations were merged into it).
`access.yaml` grants resources to relations; `readable` is the single function that
evaluates the table, and audit, ingest and notify all ask it.

Two rules are invariants, checked when the file is loaded rather than left to configuration:
a merge never opens a case (the `source` relation is granted nothing: a source reads its own
recommendation, whose status tells it where it went), and a confidential reporter (kinds whose
policy in `sla_policies.yaml` has `confidential_reporter: true`) is shown only to the body
settling the case, the submitting agency, and agencies named need-to-know.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, model_validator

from phoihop_schemas import lifecycle
from phoihop_schemas.events import Kind, ResponseAction

if TYPE_CHECKING:
    from phoihop_common.config import Reference


class Resource(StrEnum):
    """What can be read of one case."""

    STATUS = "status"  # status, kind, deadlines, assignments, escalations
    TEXT = "text"  # the recommendation's own text
    TRAIL = "trail"  # the stored events, and the ids of the cases merged into it
    ANSWERS = "answers"  # the answers given
    REPORTER = "reporter"  # the reporter's identity (name, phone, address)
    NOTIFICATIONS = "notifications"  # outcomes of the caller's OWN subscriptions only


class Relation(StrEnum):
    """How an agency relates to one case."""

    SUPERVISOR = lifecycle.SUPERVISOR  # role in agencies.yaml
    TRIAGE = lifecycle.TRIAGE  # role in agencies.yaml
    NEED_TO_KNOW = "need_to_know"  # named in access.yaml
    SUBMITTER = "submitter"  # submitted this very recommendation
    ASSIGNEE = "assignee"  # the body settling it now
    PAST_ASSIGNEE = "past_assignee"  # had it before (declined or re-assigned)
    SOURCE = "source"  # submitted a recommendation that was merged into it


# Relations an agency has to every case (from its roles or the need-to-know list).
WIDE_RELATIONS = frozenset({Relation.SUPERVISOR, Relation.TRIAGE, Relation.NEED_TO_KNOW})
# Relations that depend on the case (audit stores them per case).
CASE_RELATIONS = frozenset(
    {Relation.SUBMITTER, Relation.ASSIGNEE, Relation.PAST_ASSIGNEE, Relation.SOURCE}
)
# The only relations a confidential reporter may ever be shown to.
CONFIDENTIAL_REPORTER_MAX = frozenset(
    {Relation.SUBMITTER, Relation.ASSIGNEE, Relation.NEED_TO_KNOW}
)
# Who may respond to a case (the shared vocabulary of `phoihop_schemas.lifecycle`).
ASSIGNEE = lifecycle.ASSIGNEE
CORRECTOR = lifecycle.CORRECTOR
CORRECTION_ROLES = lifecycle.CORRECTION_ROLES
RESPONDERS: Mapping[ResponseAction, str] = lifecycle.RESPONDERS


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReporterRule(_Model):
    """Relations shown the reporter, for ordinary kinds and for confidential ones."""

    open: tuple[Relation, ...]
    confidential: tuple[Relation, ...]


class AccessRules(_Model):
    """`access.yaml`: resources granted to each relation, the reporter rule, need-to-know."""

    grants: dict[Relation, tuple[Resource, ...]]
    reporter: ReporterRule
    need_to_know: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _invariants(self) -> AccessRules:
        missing = set(Relation) - set(self.grants)
        if missing:
            raise ValueError(f"grants must name every relation; missing {sorted(missing)}")
        if any(Resource.REPORTER in g for g in self.grants.values()):
            raise ValueError("the reporter is granted by the `reporter` rule, not by `grants`")
        if self.grants[Relation.SOURCE]:
            raise ValueError("a merge never opens a case: grant `source` nothing")
        if Relation.SOURCE in self.reporter.open + self.reporter.confidential:
            raise ValueError("a source never sees the reporter of the case it was merged into")
        extra = set(self.reporter.confidential) - CONFIDENTIAL_REPORTER_MAX
        if extra:
            raise ValueError(
                f"a confidential reporter is for the settling body, the submitter and the "
                f"need-to-know list only; not {sorted(extra)}"
            )
        return self


@dataclass(frozen=True)
class Case:
    """The facts of one case the policy decides on."""

    kind: str | None
    submitted_by: str | None = None
    assignee: str | None = None
    past_assignees: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    duplicate_of: str | None = None


@dataclass(frozen=True)
class Scope:
    """Where a caller may read one resource: every case, or those it has one of `via` to."""

    everything: bool
    via: frozenset[Relation]


def roles(reference: Reference, agency: str) -> frozenset[str]:
    """Roles of an agency in agencies.yaml (none for an unknown code)."""
    try:
        return frozenset(reference.agency(agency).role)
    except KeyError:
        return frozenset()


def wide_relations(reference: Reference, *, agency: str) -> frozenset[Relation]:
    """The relations an agency has to every case."""
    held = roles(reference, agency)
    rels = {r for r in (Relation.SUPERVISOR, Relation.TRIAGE) if r.value in held}
    if agency in reference.access.need_to_know:
        rels.add(Relation.NEED_TO_KNOW)
    return frozenset(rels)


def relations(reference: Reference, *, agency: str, case: Case) -> frozenset[Relation]:
    """Every relation `agency` has to `case`."""
    rels = set(wide_relations(reference, agency=agency))
    if agency == case.submitted_by:
        rels.add(Relation.SUBMITTER)
    if agency == case.assignee:
        rels.add(Relation.ASSIGNEE)
    elif agency in case.past_assignees:
        rels.add(Relation.PAST_ASSIGNEE)
    if agency in case.sources:
        rels.add(Relation.SOURCE)
    return frozenset(rels)


def confidential(reference: Reference, kind: str | None) -> bool:
    """True when the kind's reporter is secret; an unknown kind counts as secret."""
    if kind not in {k.value for k in Kind}:
        return True
    policy = reference.sla.kinds.get(Kind(kind))
    return policy is None or policy.confidential_reporter


def granted(
    reference: Reference, *, rels: Iterable[Relation], kind: str | None
) -> frozenset[Resource]:
    """The resources a set of relations opens on a case of `kind` (the table, evaluated)."""
    rules = reference.access
    held = frozenset(rels)
    out = {res for rel in held for res in rules.grants[rel]}
    shown_to = rules.reporter.confidential if confidential(reference, kind) else rules.reporter.open
    # The reporter only ever travels inside a status or trail the caller may read.
    if Resource.STATUS in out and held & set(shown_to):
        out.add(Resource.REPORTER)
    return frozenset(out)


def readable(reference: Reference, *, agency: str, case: Case) -> frozenset[Resource]:
    """What `agency` may read of `case`: the one access decision."""
    return granted(reference, rels=relations(reference, agency=agency, case=case), kind=case.kind)


def scope(reference: Reference, *, agency: str, resource: Resource) -> Scope:
    """Where `agency` may read `resource` (for queries over many cases; not the reporter)."""
    rules = reference.access
    wide = wide_relations(reference, agency=agency)
    everything = any(resource in rules.grants[r] for r in wide)
    via = frozenset(r for r in CASE_RELATIONS if resource in rules.grants[r])
    return Scope(everything=everything, via=via)


def may_read_reporter_of_event(
    reference: Reference, *, agency: str, data: Mapping[str, Any]
) -> bool:
    """Whether an event's payload may carry its reporter to `agency` (a `received` event)."""
    case = Case(kind=data.get("kind"), submitted_by=data.get("submitted_by"))
    return Resource.REPORTER in readable(reference, agency=agency, case=case)


def responder(action: ResponseAction) -> str:
    """Who may respond with `action`: `assignee` or a role."""
    return RESPONDERS[action]


def may_respond(
    reference: Reference,
    *,
    agency: str,
    action: ResponseAction,
    assignee: str | None,
    other_assignee: str | None = None,
) -> bool:
    """Whether `agency` may respond with `action` to a case assigned to `assignee`.

    `other_assignee`: for a correction, the assignee of the other case it names.
    """
    who = responder(action)
    if who == ASSIGNEE:
        return assignee is not None and agency == assignee
    if who == CORRECTOR:
        if agency in {a for a in (assignee, other_assignee) if a is not None}:
            return True
        return lifecycle.may_correct(roles(reference, agency))
    return who in roles(reference, agency)


# --------------------------------------------------------------------------- documentation

MATRIX_ROWS: tuple[tuple[str, frozenset[Relation]], ...] = (
    ("supervisor (role)", frozenset({Relation.SUPERVISOR})),
    ("triage (role)", frozenset({Relation.TRIAGE})),
    ("need-to-know (access.yaml)", frozenset({Relation.NEED_TO_KNOW})),
    ("submitter of the case", frozenset({Relation.SUBMITTER})),
    ("assignee now", frozenset({Relation.ASSIGNEE})),
    ("past assignee", frozenset({Relation.PAST_ASSIGNEE})),
    ("source merged into it", frozenset({Relation.SOURCE})),
    ("any other agency", frozenset()),
)
MATRIX_COLUMNS: tuple[tuple[str, Resource, bool], ...] = (
    ("status", Resource.STATUS, False),
    ("text", Resource.TEXT, False),
    ("trail", Resource.TRAIL, False),
    ("answers", Resource.ANSWERS, False),
    ("reporter", Resource.REPORTER, False),
    ("reporter (to_cao)", Resource.REPORTER, True),
    ("notifications (own only)", Resource.NOTIFICATIONS, False),
)


def matrix_markdown(reference: Reference) -> str:
    """The policy as a Markdown table (relations × resources), as the README shows it."""
    kinds = {
        False: next((k.value for k in Kind if not confidential(reference, k.value)), None),
        True: next((k.value for k in Kind if confidential(reference, k.value)), None),
    }
    head = ["who", *(c[0] for c in MATRIX_COLUMNS)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, rels in MATRIX_ROWS:
        cells = [label]
        for _name, resource, secret in MATRIX_COLUMNS:
            ok = resource in granted(reference, rels=rels, kind=kinds[secret])
            cells.append("yes" if ok else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
