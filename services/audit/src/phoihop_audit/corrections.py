"""People's corrections of duplicate decisions, as stored in the log.

A correction is one lifecycle event on the case it was made on (A), naming the other case
(B): a `merged` with `merged_by` (merged into B by hand), an `unmerged` (a wrong merge into B
undone) or a `duplicate_dismissed` (A does not repeat B). The period reports count them and
the labelled pairs are built from them; `readmodel.correction_of` reads one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, or_, select

from phoihop_audit.db import events, recommendations
from phoihop_audit.readmodel import CORRECTION_TYPES, StoredEvent, correction_of, parse_time

# A `merged` event is a correction only when it names who merged it by hand; the log keeps
# canonical JSON (sorted keys, no spaces), so this prefilter keeps every such record.
_BY_HAND = '%"merged_by":"%'


@dataclass(frozen=True)
class Found:
    """One correction, where it is in the log, and the corrected case's grouping columns."""

    recommendation_id: str
    position: int
    at: datetime | None
    entry: dict[str, Any]  # as the status lists it (`readmodel.correction_of`)
    agency: str | None
    category: str | None
    locality: str | None

    @property
    def other(self) -> str:
        """The other case's id."""
        return str(self.entry["other"])

    @property
    def action(self) -> str:
        """`merge_into`, `unmerge` or `not_duplicate`."""
        return str(self.entry["action"])

    @property
    def order(self) -> tuple[datetime, int]:
        """When it was decided (log position breaks ties and stands in for a missing time)."""
        return (self.at or datetime.min, self.position)


def stored(
    conn: Connection,
    *,
    scope: ColumnElement[bool] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Found]:
    """Every correction on a case within `scope`, decided in [start, end), by decision time."""
    e, r = events, recommendations
    conds: list[ColumnElement[bool]] = [
        e.c.type.in_(CORRECTION_TYPES),
        e.c.sequence.is_not(None),
        or_(e.c.type != "merged", e.c.data.like(_BY_HAND)),
    ]
    if scope is not None:
        conds.append(scope)
    rows = conn.execute(
        select(
            e.c.recommendation_id,
            e.c.position,
            e.c.type,
            e.c.sequence,
            e.c.data,
            r.c.agency,
            r.c.category,
            r.c.locality,
        )
        .select_from(e.join(r, r.c.id == e.c.recommendation_id))
        .where(*conds)
        .order_by(e.c.position)
    ).all()
    found: list[Found] = []
    for row in rows:
        data = json.loads(row.data)
        entry = correction_of(StoredEvent(type=row.type, sequence=row.sequence, data=data))
        if entry is None:
            continue
        at = parse_time(data.get("occurred_at"))
        if start is not None and (at is None or at < start):
            continue
        if end is not None and (at is None or at >= end):
            continue
        found.append(
            Found(
                recommendation_id=row.recommendation_id,
                position=int(row.position),
                at=at,
                entry=entry,
                agency=row.agency,
                category=row.category,
                locality=row.locality,
            )
        )
    found.sort(key=lambda f: f.order)
    return found


def latest_per_pair(found: Sequence[Found]) -> list[Found]:
    """The latest decision on each pair of cases (either order), by decision time."""
    latest: dict[frozenset[str], Found] = {}
    for f in sorted(found, key=lambda f: f.order):
        latest[frozenset({f.recommendation_id, f.other})] = f
    return sorted(latest.values(), key=lambda f: f.order)
