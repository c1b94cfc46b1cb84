"""The evaluator's records and predictions, shared by `evaluate` (in process) and
`phoihop_testkit.evaluate_bus` (through the running bus)."""

from __future__ import annotations

from dataclasses import dataclass

from phoihop_schemas.events import Kind

TRIAGE_AGENCY = "TT_HDND"


@dataclass(frozen=True)
class Record:
    """One labelled recommendation."""

    id: str
    kind: Kind
    locality: str
    text: str
    category: str
    level: str
    agency: str
    group: str | None
    channel: str = "tiep_xuc_cu_tri"
    reporter: dict[str, str] | None = None
    submitted_at: str | None = None


@dataclass(frozen=True)
class Prediction:
    """What the pipeline decided for one record; `group` = the case it ended up in."""

    category: str
    level: str
    agency: str
    group: str
    rule: str = ""
    below_triage: bool = False
    # open cases suggested as possible duplicates (best first), when not merged
    suggested: tuple[str, ...] = ()
