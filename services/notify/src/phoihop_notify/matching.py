"""Which subscriptions an event goes to (one matcher over filter data) and what they may see."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from phoihop_common import access
from phoihop_common.config import Reference


class Scope(StrEnum):
    """How far a subscription reaches."""

    ADDRESSED = "addressed"  # events that concern the subscribing agency (`addressees()`)
    JURISDICTION = "jurisdiction"  # every event in its jurisdiction (supervisors, triage)


# Roles whose jurisdiction is the whole province (see agencies.yaml).
JURISDICTION_ROLES = frozenset({"supervisor", "triage"})


@dataclass(frozen=True)
class Filter:
    """A subscription's filter: whose it is, how far it reaches, which event types."""

    subscription_id: str
    agency: str
    scope: Scope
    event_types: frozenset[str]  # empty = every type


def matches(flt: Filter, *, event_type: str, addressees: frozenset[str]) -> bool:
    """True when an event of `event_type` addressed to `addressees` goes to this filter."""
    if flt.event_types and event_type not in flt.event_types:
        return False
    return flt.scope is Scope.JURISDICTION or flt.agency in addressees


def matching(
    filters: Iterable[Filter], *, event_type: str, addressees: frozenset[str]
) -> list[Filter]:
    """Every filter an event goes to."""
    return [f for f in filters if matches(f, event_type=event_type, addressees=addressees)]


def redact(data: Mapping[str, Any], *, viewer: str, reference: Reference) -> dict[str, Any]:
    """Event data as `viewer` may see it: the reporter only where the access policy allows."""
    out = dict(data)
    if out.get("reporter") is not None and not access.may_read_reporter_of_event(
        reference, agency=viewer, data=out
    ):
        out["reporter"] = None
    return out
