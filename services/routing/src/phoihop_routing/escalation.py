"""The reminder and escalation ladder of `sla_policies.yaml`, as pure functions.

```
escalation:
  remind_before: {working_days: 3}     # one reminder to the assignee before the deadline
  levels:
    - after: {days: 0}                 # level 1: at the deadline
      to: [superior, TT_HDND, UBMTTQ_TINH]
    - after: {working_days: 10}        # level 2: 10 working days later
      to: [UBND_TINH, DOAN_DBQH]
```

Each level fires once per deadline (an extension or a reopening sets a new deadline and
starts the ladder again). In `to`, agency codes are taken as they are and `superior` means
the superior of the body the case is assigned to: by default the provincial People's
Committee (UBND_TINH) for the departments, the commune committees and the other resolving
bodies; bodies that are themselves supervisors, forwarders or triage (UBND_TINH, TT_HDND,
DOAN_DBQH, ...) have no superior in the province and the word is dropped. The default
superior and per-agency overrides are settings (`PHOIHOP_ROUTING_SUPERIOR`,
`PHOIHOP_ROUTING_SUPERIORS` as JSON `{"AGENCY": "SUPERIOR"}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from phoihop_common.config import Duration, Reference, SlaPolicies
from phoihop_routing.deadlines import WorkCalendar, after, before

SUPERIOR = "superior"
_NO_SUPERIOR_ROLES = frozenset({"supervisor", "forwarder", "triage"})


@dataclass(frozen=True)
class Superiors:
    """Who is the superior of an assigned body."""

    default: str | None = "UBND_TINH"
    overrides: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_reference(
        cls,
        reference: Reference,
        *,
        default: str | None = "UBND_TINH",
        overrides: Mapping[str, str] | None = None,
    ) -> Superiors:
        """Superiors of the bodies of one deployment."""
        roles = {a.code: frozenset(a.role) for a in reference.agencies}
        return cls(default=default, overrides=dict(overrides or {}), roles=roles)

    def of(self, agency: str) -> str | None:
        """The superior of `agency`, or None when it has none in the province."""
        if agency in self.overrides:
            return self.overrides[agency] or None
        if self.roles.get(agency, frozenset()) & _NO_SUPERIOR_ROLES:
            return None
        if agency == self.default:
            return None
        return self.default


@dataclass(frozen=True)
class Level:
    """One rung: when (after the deadline) and who is told."""

    number: int
    after: Duration
    to: tuple[str, ...]


@dataclass(frozen=True)
class Ladder:
    """Reminder offset and escalation levels, with the calendar that measures them."""

    remind_before: Duration
    levels: tuple[Level, ...]
    calendar: WorkCalendar
    superiors: Superiors

    @classmethod
    def from_policies(
        cls, sla: SlaPolicies, *, calendar: WorkCalendar, superiors: Superiors
    ) -> Ladder:
        """The ladder configured in `sla_policies.yaml`."""
        levels = tuple(
            Level(number=i, after=lvl.after, to=lvl.to)
            for i, lvl in enumerate(sla.escalation.levels, start=1)
        )
        return cls(
            remind_before=sla.escalation.remind_before,
            levels=levels,
            calendar=calendar,
            superiors=superiors,
        )

    def remind_at(self, deadline: datetime) -> datetime:
        """When the reminder before `deadline` is due."""
        return before(deadline, self.remind_before, calendar=self.calendar)

    def level_at(self, level: Level, deadline: datetime) -> datetime:
        """When `level` is due for `deadline`."""
        return after(deadline, level.after, calendar=self.calendar)

    def recipients(self, level: Level, *, assigned: str) -> tuple[str, ...]:
        """Agencies told at `level` about a case assigned to `assigned` (no repeats)."""
        out: list[str] = []
        for target in level.to:
            code = self.superiors.of(assigned) if target == SUPERIOR else target
            if code and code not in out:
                out.append(code)
        return tuple(out)
