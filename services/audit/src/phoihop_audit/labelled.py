"""Labelled pairs: the pairs of cases people decided were, or were not, duplicates.

Each correction of a duplicate decision (`corrections`) labels a pair: `merge_into` says
`duplicate`; `unmerge` and `not_duplicate` say `not_duplicate`. A pair (either order) counts
once, with its latest decision: a pair merged by hand and later unmerged is one
`not_duplicate` pair. A period lists the pairs whose latest decision was made in it, so the
pairs of consecutive periods never repeat one another and a later decision always wins.

Province-wide data (the texts of both cases): only agencies with the supervisor or triage
role may read it, and each text only where the access policy lets the caller read it.
`to_jsonl` is the form `make eval --pairs FILE` scores on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, select

from phoihop_audit import corrections
from phoihop_audit.access import Caller, scope_clause, visible_expr
from phoihop_audit.db import recommendations
from phoihop_audit.exceptions import ForbiddenError
from phoihop_audit.queries import period_bounds
from phoihop_audit.reports import Period
from phoihop_common import access
from phoihop_common.access import Resource
from phoihop_common.config import Reference
from phoihop_schemas import lifecycle

LABELS = {"merge_into": "duplicate", "unmerge": "not_duplicate", "not_duplicate": "not_duplicate"}
CHUNK = 500


@dataclass(frozen=True)
class _Case:
    text: str | None
    kind: str | None
    locality: str | None


def require_role(*, reference: Reference, caller: Caller) -> None:
    """ForbiddenError unless the caller has the supervisor or triage role."""
    if not lifecycle.may_correct(access.roles(reference, caller.agency)):
        raise ForbiddenError("labelled pairs need a supervisor's or a triage body's key")


def _cases(
    conn: Connection, ids: Iterable[str], *, caller: Caller, reference: Reference
) -> dict[str, _Case]:
    """The cases among `ids` the caller may read, their text only where it may read it."""
    r = recommendations
    scope = scope_clause(reference=reference, caller=caller)
    text_visible = visible_expr(reference=reference, caller=caller, resource=Resource.TEXT)
    wanted = sorted(set(ids))
    out: dict[str, _Case] = {}
    for i in range(0, len(wanted), CHUNK):
        conds: list[ColumnElement[bool]] = [r.c.id.in_(wanted[i : i + CHUNK])]
        if scope is not None:
            conds.append(scope)
        found = conn.execute(
            select(r.c.id, r.c.text, r.c.kind, r.c.locality, text_visible.label("tv")).where(*conds)
        )
        for row in found:
            out[row.id] = _Case(
                text=row.text if row.tv else None, kind=row.kind, locality=row.locality
            )
    return out


def build_pairs(
    engine: Engine,
    *,
    period: Period,
    caller: Caller,
    reference: Reference,
    tz: str = "Asia/Ho_Chi_Minh",
) -> dict[str, Any]:
    """`{"pairs": [...]}`: the pairs whose latest decision was made in the period, in order."""
    require_role(reference=reference, caller=caller)
    start, end = period_bounds(period.start, period.end, tz=tz)
    scope = scope_clause(reference=reference, caller=caller)
    with engine.connect() as conn:
        latest = corrections.latest_per_pair(corrections.stored(conn, scope=scope))
        chosen = [
            f
            for f in latest
            if f.at is not None and (start is None or f.at >= start) and (end is None or f.at < end)
        ]
        cases = _cases(
            conn,
            (i for f in chosen for i in (f.recommendation_id, f.other)),
            caller=caller,
            reference=reference,
        )
    pairs: list[dict[str, Any]] = []
    for f in chosen:
        a, b = cases.get(f.recommendation_id), cases.get(f.other)
        if a is None or b is None:
            continue  # a case the caller may not read
        pairs.append(
            {
                "a": f.recommendation_id,
                "b": f.other,
                "label": LABELS[f.action],
                "action": f.action,
                "decided_by": f.entry["agency"],
                "decided_at": f.entry["at"],
                "text_a": a.text,
                "text_b": b.text,
                "kind_a": a.kind,
                "kind_b": b.kind,
                "locality_a": a.locality,
                "locality_b": b.locality,
            }
        )
    return {"pairs": pairs}


def to_jsonl(data: dict[str, Any]) -> str:
    """JSON Lines: one pair per line (UTF-8 kept), each line ending in a newline."""
    return "".join(
        json.dumps(pair, ensure_ascii=False, separators=(",", ":")) + "\n" for pair in data["pairs"]
    )
