"""What audit answers, as models: the OpenAPI document's response schemas.

The routes build their bodies as dicts (`queries`, `log`, `reports`); these models describe
them field by field, and the routes that return dicts are validated against them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

# ISO 8601 UTC times as the read side writes them (`2026-05-04T08:00:00Z`), kept as text.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]

DESCRIPTION = """\
The durable, hash-chained trail of every event on the bus, the status of each
recommendation, search, period reports, and the public proofs that the trail is complete.

Reads need the agency's `X-API-Key` and show what the access policy lets that agency see:
an agency sees the cases it submitted or is assigned; supervisors their jurisdiction. A
case one may not see is answered exactly as an unknown one (`404 not_found`). A
denouncer's identity is shown only to those cleared for it, and each such read is itself
written to the trail.

The proof endpoints (`/v1/audit/...`) are public: anyone can check the signed checkpoints
(Ed25519) and RFC 6962 inclusion and consistency proofs.
"""
TAGS = [
    {"name": "recommendations", "description": "Status, trail and search (X-API-Key)."},
    {
        "name": "reports",
        "description": "Period reports and the consolidated list of concerns (tổng hợp ý kiến,"
        " kiến nghị cử tri) as JSON, CSV or XLSX (X-API-Key).",
    },
    {"name": "proofs", "description": "Signed checkpoints and Merkle proofs (public)."},
    {"name": "operations", "description": "Liveness, readiness, metrics (no key)."},
]


class _Out(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


# --------------------------------------------------------------------------- status


class Assignment(_Out):
    """One assignment of the case, and the rule that chose it."""

    sequence: int
    agency: str | None
    category: str | None
    level: str | None
    assigned_at: Timestamp | None
    accept_deadline: Timestamp | None
    deadline: Timestamp | None
    hop: int = 0
    previous_agency: str | None = None
    rule: str | None = None
    rule_version: str | None = None


class DeadlineChange(_Out):
    """A deadline set by an assignment, an extension or a reopening."""

    sequence: int
    type: str
    deadline: Timestamp | None


class Answer(_Out):
    """An answer given (its text only where the caller may read answers)."""

    sequence: int | None = None
    agency: str | None
    text: str | None
    on_time: bool | None
    answered_at: Timestamp | None


class EscalationStep(_Out):
    """An escalation after a missed deadline."""

    sequence: int
    level: int | None
    recipients: list[str]
    escalated_at: Timestamp | None


class Decline(_Out):
    """An agency declined the case (not competent)."""

    sequence: int
    agency: str | None
    reason: str | None


class MergedInto(_Out):
    """The open case a merged recommendation was linked to (never its text or sources)."""

    id: str
    status: str | None
    agency: str | None
    deadline: Timestamp | None
    answered_at: Timestamp | None
    answers: list[Answer]


class Correction(_Out):
    """A person's correction of a duplicate decision on this case."""

    sequence: int
    action: Literal["merge_into", "unmerge", "not_duplicate"] = Field(
        description="`merge_into`: merged into `other` by hand; `unmerge`: a wrong merge into"
        " `other` undone; `not_duplicate`: it does not repeat `other`"
    )
    other: str = Field(description="the other case's id")
    agency: str = Field(description="who made the correction")
    reason: str | None
    at: Timestamp | None


class Reporter(_Out):
    """Who submitted it: shown only to those cleared for it (and logged)."""

    name: str
    phone: str | None = None
    address: str | None = None


class RecommendationStatus(_Out):
    """Current status of one recommendation and its histories."""

    id: str
    status: str | None = Field(description="received, merged, assigned, accepted, declined …")
    kind: str | None
    category: str | None
    level: str | None
    agency: str | None = Field(description="the assignee")
    deadline: Timestamp | None
    duplicate_of: str | None
    merged_into: MergedInto | None
    sequence: int = Field(description="the highest lifecycle sequence stored")
    channel: str | None
    locality: str | None
    text: str | None = Field(description="null where the caller may not read the text")
    submitted_by: str | None
    source_ref: str | None = Field(description="the submitter's own reference")
    submitted_at: str | None = Field(description="a date or a date-time, as submitted")
    received_at: Timestamp | None
    accept_deadline: Timestamp | None
    escalation_level: int
    overdue: bool
    answered_at: Timestamp | None
    answered_on_time: bool | None
    closed_at: Timestamp | None
    similarity: float | None
    duplicates: list[str] = Field(description="merged recommendations the caller may read")
    duplicate_count: int
    suggested_duplicates: list[str] = Field(
        default_factory=list,
        description="possible duplicates routing suggested (`duplicate_suggested`): open"
        " cases the caller may read, best first; never one a person said this case does not"
        " repeat (`duplicate_dismissed`, or a merge undone)",
    )
    corrections: list[Correction] = Field(
        default_factory=list,
        description="people's corrections of duplicate decisions on this case, by sequence"
        " (empty where the caller may not read the trail)",
    )
    assignments: list[Assignment]
    deadlines: list[DeadlineChange]
    answers: list[Answer]
    escalations: list[EscalationStep]
    declines: list[Decline]
    missing_sequences: list[int]
    reporter: Reporter | None
    reporter_withheld: bool = Field(description="a reporter exists and is not shown")


# --------------------------------------------------------------------------- trail


class TrailEntry(_Out):
    """One stored record of the hash-chained log."""

    event_id: str
    type: str
    sequence: int | None
    time: str | None
    source: str
    data: dict[str, Any]
    position: int = Field(description="position in the log (its Merkle leaf index)")
    hash: str
    reporter_withheld: bool | None = None


class Trail(_Out):
    """Every stored event of one recommendation, by sequence."""

    id: str
    events: list[TrailEntry]
    notifications: list[TrailEntry] = Field(description="the caller's own delivery outcomes")
    disclosures: list[TrailEntry] = Field(description="who was shown the reporter, when")
    missing_sequences: list[int]


# --------------------------------------------------------------------------- search


class SearchItem(_Out):
    """One recommendation in a search result."""

    id: str
    status: str | None
    kind: str | None
    category: str | None
    level: str | None
    agency: str | None
    locality: str | None
    submitted_by: str | None
    source_ref: str | None
    deadline: Timestamp | None
    duplicate_of: str | None
    sequence: int
    received_at: Timestamp | None
    answered_at: Timestamp | None
    escalation_level: int
    overdue: bool
    text: str | None


class SearchPage(_Out):
    """A page of the recommendations the caller may read, newest first."""

    total: int
    page: int
    page_size: int
    items: list[SearchItem]


class Gap(_Out):
    """A recommendation whose sequence numbers have a hole."""

    id: str
    sequence: int
    missing: list[int]


class Reconciliation(_Out):
    """Sequence holes among the caller's recommendations."""

    checked: int
    gaps: list[Gap]
    gap_count: int


# --------------------------------------------------------------------------- proofs


class Checkpoint(_Out):
    """A signed statement of the log's size and Merkle root."""

    tree_size: int
    root_hash: str
    created_at: str
    key_id: str
    signature: str


class Verification(_Out):
    """`mode=checkpoint`: the last checkpoint's signature; `mode=full`: every record."""

    ok: bool
    mode: Literal["checkpoint", "full"]
    checkpoint: Checkpoint | None
    log_size: int | None = None
    signature_valid: bool | None = None
    tree_size: int | None = None
    root_hash: str | None = None
    created_at: str | None = None
    checked: int | None = None
    head_hash: str | None = None
    first_bad: dict[str, Any] | None = Field(default=None, description="where it breaks")


class Checkpoints(_Out):
    """Signed checkpoints, newest first, and the key that signs them."""

    origin: str
    key_id: str
    public_key: str = Field(description="Ed25519 public key, base64")
    algorithm: Literal["Ed25519"]
    checkpoints: list[Checkpoint]


class InclusionProof(_Out):
    """RFC 6962 audit path of one event."""

    event_id: str
    leaf_index: int
    tree_size: int
    leaf_hash: str
    root_hash: str
    audit_path: list[str]


class ConsistencyProof(_Out):
    """RFC 6962 consistency proof between two checkpoints."""

    first: Checkpoint
    second: Checkpoint
    proof: list[str]


# --------------------------------------------------------------------------- reports


class Period(_Out):
    """The report's calendar dates, inclusive."""

    start: str = Field(alias="from")
    end: str = Field(alias="to")


class ReportRow(_Out):
    """The numbers of one group (or of the total)."""

    key: str | None
    name: str
    received: int
    merged: int
    assigned: int
    answered: int
    answered_on_time: int
    overdue: int
    escalated: int
    median_days: float | None
    p90_days: float | None
    on_time_ratio: float | None
    merged_by_hand: int = Field(description="corrections in the period: merged by hand")
    unmerged: int = Field(description="corrections in the period: wrong merges undone")
    dismissed: int = Field(description="corrections in the period: suggestions dismissed")


class Report(_Out):
    """A period report grouped by agency, category or locality."""

    period: Period
    group_by: str
    timezone: str
    generated_at: Timestamp
    rows: list[ReportRow]
    total: ReportRow


class LabelledPair(_Out):
    """A pair of cases a person decided on: duplicates or not (its latest decision)."""

    a: str = Field(description="the case the correction was made on")
    b: str = Field(description="the other case")
    label: Literal["duplicate", "not_duplicate"]
    action: Literal["merge_into", "unmerge", "not_duplicate"]
    decided_by: str = Field(description="the agency that made the correction")
    decided_at: Timestamp | None
    text_a: str | None = Field(description="null where the caller may not read the text")
    text_b: str | None = Field(description="null where the caller may not read the text")
    kind_a: str | None
    kind_b: str | None
    locality_a: str | None
    locality_b: str | None


class LabelledPairs(_Out):
    """The pairs whose latest decision falls in the period, in the order they were decided."""

    pairs: list[LabelledPair]


JSONL_TYPE = "application/x-ndjson"  # JSON Lines, as ingest takes them
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REPORT_FILES: dict[str, Any] = {
    "text/csv": {
        "schema": {"type": "string"},
        "example": "key,name,received,...\n",
    },
    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}},
}
