"""People correct duplicate decisions: `merge_into`, `unmerge`, `not_duplicate`.

A correction is a response on one case (A) that names another (B): `merge_into` (merge A
into B), `not_duplicate` (A does not repeat B; B is never suggested for A again) and
`unmerge` (A was merged into B by mistake; B is `A.duplicate_of`). Each partition only
writes its own case, so a correction is a short exchange of internal commands, each applied
on the partition of the case it changes, and each case's events keep a gap-free sequence:

```
merge_into / not_duplicate:  A ─PairRequest─► B ─PairConfirm─► A  (A emits merged / dismissed)
unmerge:                     A ─UnlinkRequest─► B ─Split─► A       (A emits unmerged, assigned)
```

B decides: it refuses (a dead letter with the reason) a merge into a case that is not open
or answered, a denunciation (`to_cao`) paired with another kind, or a caller that is
neither A's assignee, B's assignee nor a supervisor / triage body (`authorized` says that
A's side already found the caller entitled). Replays do nothing: each step remembers the
response id in `processed`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from phoihop_routing.exceptions import RejectedError
from phoihop_schemas.events import Kind

PairAction = Literal["merge_into", "not_duplicate"]


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    op: ClassVar[str] = ""
    agency: str  # who asked for the correction
    response_id: str
    reason: str | None = None


class Source(BaseModel):
    """A recommendation merged into a case, and who submitted it (it gets the answer)."""

    model_config = ConfigDict(frozen=True)
    recommendation_id: str
    submitted_by: str


class PairRequest(_Command):
    """On B: A (`source`) asks to be merged into B, or to be declared not a duplicate of B."""

    op: ClassVar[str] = "pair_request"
    action: PairAction
    source: str
    kind: Kind
    submitted_by: str
    sources: tuple[Source, ...] = ()  # A's own merged duplicates move along with it
    authorized: bool = False


class PairConfirm(_Command):
    """On A: B accepted the pair; A emits `merged` or `duplicate_dismissed`."""

    op: ClassVar[str] = "pair_confirm"
    action: PairAction
    target: str


class UnlinkRequest(_Command):
    """On B: take A (`merged_id`) and the sources it brought off B's merged list."""

    op: ClassVar[str] = "unlink_request"
    merged_id: str
    sources: tuple[str, ...] = ()
    authorized: bool = False


class Split(_Command):
    """On A: B let A go; A emits `unmerged` and is assigned again."""

    op: ClassVar[str] = "split"
    source_case: str


Correction = PairRequest | PairConfirm | UnlinkRequest | Split
CORRECTIONS: dict[str, type[Correction]] = {
    cls.op: cls for cls in (PairRequest, PairConfirm, UnlinkRequest, Split)
}


def check_kinds(a: Kind, b: Kind) -> None:
    """A denunciation pairs only with a denunciation (kept secret; its own legal track)."""
    if (a is Kind.TO_CAO) != (b is Kind.TO_CAO):
        raise RejectedError("kind_mismatch", f"a {a.value} cannot be merged with a {b.value}")


def check_entitled(*, agency: str, assignee: str | None, authorized: bool) -> None:
    """B's side: the caller is B's assignee unless A's side already entitled it."""
    if not authorized and agency != assignee:
        raise RejectedError(
            "not_assignee",
            f"{agency} is neither assignee of the two cases nor a supervisor or triage body",
        )


def decode(op: str, payload: dict[str, object]) -> Correction:
    """The correction command of an internal record (`op` plus the model's fields)."""
    cls = CORRECTIONS[op]
    fields = {k: v for k, v in payload.items() if k not in ("op", "recommendation_id")}
    return cls.model_validate(fields)
