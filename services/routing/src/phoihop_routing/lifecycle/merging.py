"""Duplicate corrections: `merge_into`, `not_duplicate`, `unmerge` as an exchange of steps.

The response on A starts the exchange (`_pair`, `_unmerge`); each step is a `Forward`
effect applied on the partition of the case it changes (`_correct`). The commands and
the checks live in module `phoihop_routing.corrections`.
"""

from __future__ import annotations

from datetime import datetime

from phoihop_routing import corrections
from phoihop_routing.corrections import (
    Correction,
    PairConfirm,
    PairRequest,
    Split,
    UnlinkRequest,
)
from phoihop_routing.corrections import Source as MergedSource
from phoihop_routing.exceptions import RejectedError
from phoihop_routing.lifecycle.model import (
    LIFECYCLE_VERSION,
    OPEN_STATUSES,
    PROCESSED_KEPT,
    CaseState,
    Forward,
    JoinBucket,
    LeaveBucket,
    Outcome,
    Policy,
    _invalid,
    _Steps,
)
from phoihop_routing.lifecycle.routing import _assign, _shared_answer
from phoihop_schemas import lifecycle
from phoihop_schemas.events import (
    Decision,
    DuplicateDismissed,
    Level,
    Merged,
    Response,
    ResponseAction,
    Status,
    Unmerged,
)


def _corrector(policy: Policy, agency: str) -> bool:
    return lifecycle.may_correct(policy.roles.get(agency, frozenset()))


def _target(state: CaseState, response: Response) -> str:
    target = response.target
    if not target or target == state.recommendation_id:
        raise RejectedError("invalid_target", f"{response.action.value} needs another case")
    return target


def _pair(steps: _Steps, response: Response, policy: Policy) -> None:
    """`merge_into` / `not_duplicate` on A: ask B (module `corrections`)."""
    state = steps.state
    target = _target(state, response)
    merging = response.action is ResponseAction.MERGE_INTO
    if merging and state.status not in OPEN_STATUSES:
        raise _invalid(state, response)
    if response.action is ResponseAction.NOT_DUPLICATE and target in state.dismissed:
        return  # said before
    steps.effects.append(
        Forward(
            target=target,
            command=PairRequest(
                action="merge_into" if merging else "not_duplicate",
                source=state.recommendation_id,
                kind=state.kind,
                submitted_by=state.submitted_by,
                sources=state.merged if merging else (),
                agency=response.agency,
                authorized=response.agency == state.agency or _corrector(policy, response.agency),
                response_id=response.response_id,
                reason=response.reason,
            ),
        )
    )


def _unmerge(steps: _Steps, response: Response, policy: Policy) -> None:
    """`unmerge` on A (merged into B): ask B to let it go."""
    state = steps.state
    if state.status != Status.MERGED or state.duplicate_of is None:
        raise _invalid(state, response)
    steps.effects.append(
        Forward(
            target=state.duplicate_of,
            command=UnlinkRequest(
                merged_id=state.recommendation_id,
                sources=tuple(m.recommendation_id for m in state.merged),
                agency=response.agency,
                authorized=_corrector(policy, response.agency),
                response_id=response.response_id,
                reason=response.reason,
            ),
        )
    )


def _correct(state: CaseState | None, cmd: Correction, *, policy: Policy, now: datetime) -> Outcome:
    if state is None:
        raise RejectedError("unknown_recommendation", f"{cmd.op}: no such case")
    marker = f"{cmd.op}:{cmd.response_id}"
    if marker in state.processed:
        return Outcome(state=state)  # replayed
    steps = _Steps(state, now)
    if isinstance(cmd, PairRequest):
        _pair_request(steps, cmd)
    elif isinstance(cmd, PairConfirm):
        _pair_confirm(steps, cmd)
    elif isinstance(cmd, UnlinkRequest):
        _unlink_request(steps, cmd)
    else:
        _split(steps, cmd, policy)
    steps.update(processed=(*steps.state.processed, marker)[-PROCESSED_KEPT:])
    return steps.outcome()


def _pair_request(steps: _Steps, cmd: PairRequest) -> None:
    """On B: check the pair; link A for a merge; confirm to A."""
    state = steps.state
    corrections.check_entitled(agency=cmd.agency, assignee=state.agency, authorized=cmd.authorized)
    if cmd.action == "merge_into":
        if state.status not in OPEN_STATUSES | {Status.ANSWERED}:
            raise RejectedError(
                "target_not_open", f"{state.recommendation_id} is {state.status.value}"
            )
        corrections.check_kinds(cmd.kind, state.kind)
        linked = {m.recommendation_id for m in state.merged}
        added = tuple(
            s
            for s in (
                MergedSource(recommendation_id=cmd.source, submitted_by=cmd.submitted_by),
                *cmd.sources,
            )
            if s.recommendation_id not in linked and s.recommendation_id != state.recommendation_id
        )
        steps.update(merged=(*state.merged, *added))
    else:
        steps.update(dismissed=tuple(dict.fromkeys((*state.dismissed, cmd.source))))
    steps.effects.append(
        Forward(
            target=cmd.source,
            command=PairConfirm(
                action=cmd.action,
                target=state.recommendation_id,
                agency=cmd.agency,
                response_id=cmd.response_id,
                reason=cmd.reason,
            ),
        )
    )
    share = _shared_answer(state, cmd.source)
    if cmd.action == "merge_into" and state.status == Status.ANSWERED and share is not None:
        steps.effects.append(share)


def _pair_confirm(steps: _Steps, cmd: PairConfirm) -> None:
    """On A: B accepted; emit `merged` (and leave the bucket) or `duplicate_dismissed`."""
    state = steps.state
    if cmd.action == "not_duplicate":
        steps.emit(DuplicateDismissed, candidate=cmd.target, agency=cmd.agency, reason=cmd.reason)
        steps.update(dismissed=tuple(dict.fromkeys((*state.dismissed, cmd.target))))
        return
    if state.status not in OPEN_STATUSES:
        raise RejectedError(
            "invalid_transition", f"merge_into not allowed in status {state.status.value}"
        )
    evidence = (f"merged_by={cmd.agency}", f"response_id={cmd.response_id}")
    steps.emit(
        Merged,
        duplicate_of=cmd.target,
        similarity=1.0,
        decision=Decision(
            rule="manual:merge_into",
            version=LIFECYCLE_VERSION,
            evidence=(*evidence, *((f"reason={cmd.reason}",) if cmd.reason else ())),
            confidence=1.0,
        ),
        submitted_by=state.submitted_by,
        merged_by=cmd.agency,
    )
    steps.update(status=Status.MERGED, duplicate_of=cmd.target)
    if state.bucket:
        steps.effects.append(
            LeaveBucket(bucket=state.bucket, recommendation_id=state.recommendation_id)
        )


def _unlink_request(steps: _Steps, cmd: UnlinkRequest) -> None:
    """On B: take A (and what it brought) off the merged list; tell A to split off."""
    state = steps.state
    corrections.check_entitled(agency=cmd.agency, assignee=state.agency, authorized=cmd.authorized)
    if all(m.recommendation_id != cmd.merged_id for m in state.merged):
        raise RejectedError("not_merged", f"{cmd.merged_id} is not merged into this case")
    gone = {cmd.merged_id, *cmd.sources}
    steps.update(
        merged=tuple(m for m in state.merged if m.recommendation_id not in gone),
        dismissed=tuple(dict.fromkeys((*state.dismissed, cmd.merged_id))),
    )
    steps.effects.append(
        Forward(
            target=cmd.merged_id,
            command=Split(
                source_case=state.recommendation_id,
                agency=cmd.agency,
                response_id=cmd.response_id,
                reason=cmd.reason,
            ),
        )
    )


def _split(steps: _Steps, cmd: Split, policy: Policy) -> None:
    """On A: `unmerged` (its submitter is told), then assigned again on its own."""
    state = steps.state
    if state.status != Status.MERGED or state.duplicate_of != cmd.source_case:
        raise RejectedError(
            "invalid_transition", f"unmerge not allowed in status {state.status.value}"
        )
    steps.emit(
        Unmerged,
        duplicate_of=cmd.source_case,
        agency=cmd.agency,
        reason=cmd.reason or "not a duplicate",
        recipients=(state.submitted_by,),
        decision=Decision(
            rule="manual:unmerge",
            version=LIFECYCLE_VERSION,
            evidence=(f"unmerged_by={cmd.agency}", f"response_id={cmd.response_id}"),
            confidence=1.0,
        ),
    )
    steps.update(
        duplicate_of=None,
        dismissed=tuple(dict.fromkeys((*state.dismissed, cmd.source_case))),
    )
    category, level = state.category, state.level
    if category and level is not None and category in policy.category_agency:
        agency = policy.agency_for(category, level, state.locality)
        rule = "unmerge:reroute"
    else:
        agency, rule = policy.triage_agency, "unmerge:triage"
    _assign(
        steps,
        policy=policy,
        agency=agency,
        category=category or "",
        level=level or Level.TINH,
        decision=Decision(
            rule=rule,
            version=LIFECYCLE_VERSION,
            evidence=(f"split_from={cmd.source_case}", f"category={category}", f"level={level}"),
            confidence=1.0,
        ),
        base=steps.now,
        previous_agency=None,
    )
    steps.effects.append(JoinBucket(recommendation_id=state.recommendation_id))
