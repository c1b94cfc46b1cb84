"""People correct duplicate decisions: merge_into, unmerge, not_duplicate (pure exchange)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from phoihop_routing.corrections import PairRequest, decode
from phoihop_routing.exceptions import RejectedError
from phoihop_routing.lifecycle import (
    AnswerOf,
    CaseState,
    Command,
    Forward,
    JoinBucket,
    LeaveBucket,
    LinkCase,
    Policy,
    Respond,
    ShareAnswer,
    apply,
)
from phoihop_schemas.events import (
    Answered,
    Assigned,
    DuplicateDismissed,
    Kind,
    LifecycleEvent,
    Merged,
    Response,
    ResponseAction,
    Status,
    Unmerged,
)

from .test_routing_lifecycle import T0, make_policy, received, route

SUPERVISOR = "UBMTTQ_TINH"
TRIAGE = "TT_HDND"
OUTSIDER = "SO_Y_TE"


@pytest.fixture
def policy(reference: object) -> Policy:
    return make_policy(reference)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def reference() -> object:
    from phoihop_common.config import load_reference

    return load_reference()


@dataclass
class Bus:
    """Cases by id; commands applied on their own case, forwarded steps delivered in order."""

    policy: Policy
    cases: dict[str, CaseState] = field(default_factory=dict)
    events: list[LifecycleEvent] = field(default_factory=list)
    effects: list[object] = field(default_factory=list)

    def new(self, kind: Kind = Kind.KIEN_NGHI, **kw: object) -> CaseState:
        out = apply(None, route(received(kind), **kw), policy=self.policy, now=T0)
        assert out.state is not None
        self.cases[out.state.recommendation_id] = out.state
        self.events.extend(out.events)
        self._deliver(out.effects)
        return self.cases[out.state.recommendation_id]

    def send(self, target: str, command: Command) -> None:
        out = apply(self.cases.get(target), command, policy=self.policy, now=T0)
        if out.state is not None:
            self.cases[target] = out.state
        self.events.extend(out.events)
        self._deliver(out.effects)

    def respond(self, rec_id: str, agency: str, action: ResponseAction, **kw: object) -> str:
        response_id = str(uuid.uuid4())
        response = Response(
            response_id=response_id,
            recommendation_id=rec_id,
            agency=agency,
            action=action,
            responded_at=T0,
            **kw,  # type: ignore[arg-type]
        )
        self.send(rec_id, Respond(response))
        return response_id

    def _deliver(self, effects: tuple[object, ...]) -> None:
        for effect in effects:
            self.effects.append(effect)
            if isinstance(effect, Forward):
                self.send(effect.target, effect.command)
            elif isinstance(effect, LinkCase):
                from phoihop_routing.lifecycle import Link

                self.send(effect.target, Link(effect.merged_id, effect.submitted_by))
            elif isinstance(effect, ShareAnswer):
                self.send(
                    effect.target,
                    AnswerOf(effect.source_case, effect.agency, effect.text, effect.on_time),
                )

    def of(self, rec_id: str, cls: type[LifecycleEvent]) -> list[LifecycleEvent]:
        return [e for e in self.events if isinstance(e, cls) and e.recommendation_id == rec_id]


def test_merge_into_by_the_assignee_links_and_emits_merged(policy: Policy) -> None:
    bus = Bus(policy)
    b = bus.new()
    a = bus.new()
    assignee = a.agency or ""
    bus.respond(
        a.recommendation_id, assignee, ResponseAction.MERGE_INTO, target=b.recommendation_id
    )
    a_now = bus.cases[a.recommendation_id]
    assert a_now.status == Status.MERGED
    assert a_now.duplicate_of == b.recommendation_id
    (merged,) = bus.of(a.recommendation_id, Merged)
    assert isinstance(merged, Merged)
    assert merged.merged_by == assignee
    assert merged.decision.rule == "manual:merge_into"
    assert merged.sequence == a.sequence + 1  # no gap
    assert [m.recommendation_id for m in bus.cases[b.recommendation_id].merged] == [
        a.recommendation_id
    ]
    assert LeaveBucket(a.bucket or "", a.recommendation_id) in bus.effects
    # the answer of B now reaches A's submitter too
    bus.respond(b.recommendation_id, b.agency or "", ResponseAction.ANSWER, text="Đã sửa")
    (answer,) = bus.of(b.recommendation_id, Answered)
    assert isinstance(answer, Answered)
    assert a.submitted_by in answer.recipients


def test_the_other_cases_assignee_and_roles_may_merge_others_may_not(policy: Policy) -> None:
    bus = Bus(policy)
    b = bus.new(agency="SO_GD_DT", level="tinh")
    a = bus.new()
    with pytest.raises(RejectedError) as err:
        bus.respond(
            a.recommendation_id, OUTSIDER, ResponseAction.MERGE_INTO, target=b.recommendation_id
        )
    assert err.value.reason == "not_assignee"
    assert bus.cases[a.recommendation_id].status == Status.ASSIGNED
    assert bus.cases[b.recommendation_id].merged == ()
    bus.respond(
        a.recommendation_id, b.agency or "", ResponseAction.MERGE_INTO, target=b.recommendation_id
    )
    assert bus.cases[a.recommendation_id].status == Status.MERGED
    c = bus.new()
    bus.respond(c.recommendation_id, TRIAGE, ResponseAction.MERGE_INTO, target=b.recommendation_id)
    assert bus.cases[c.recommendation_id].duplicate_of == b.recommendation_id


def test_a_denunciation_is_never_merged_with_another_kind(policy: Policy) -> None:
    bus = Bus(policy)
    complaint = bus.new(Kind.KHIEU_NAI)
    denunciation = bus.new(Kind.TO_CAO)
    for a, b in ((denunciation, complaint), (complaint, denunciation)):
        with pytest.raises(RejectedError) as err:
            bus.respond(
                a.recommendation_id,
                SUPERVISOR,
                ResponseAction.MERGE_INTO,
                target=b.recommendation_id,
            )
        assert err.value.reason == "kind_mismatch"
    assert bus.of(complaint.recommendation_id, Merged) == []
    assert bus.of(denunciation.recommendation_id, Merged) == []
    other = bus.new(Kind.TO_CAO)
    bus.respond(
        other.recommendation_id,
        SUPERVISOR,
        ResponseAction.MERGE_INTO,
        target=denunciation.recommendation_id,
    )
    assert bus.cases[other.recommendation_id].duplicate_of == denunciation.recommendation_id


def test_merge_into_an_answered_case_shares_its_answer(policy: Policy) -> None:
    bus = Bus(policy)
    b = bus.new()
    bus.respond(b.recommendation_id, b.agency or "", ResponseAction.ANSWER, text="Đã sửa xong")
    a = bus.new()
    bus.respond(
        a.recommendation_id, SUPERVISOR, ResponseAction.MERGE_INTO, target=b.recommendation_id
    )
    a_now = bus.cases[a.recommendation_id]
    assert a_now.status == Status.ANSWERED
    assert a_now.answer_text == "Đã sửa xong"
    assert [type(e).__name__ for e in bus.events if e.recommendation_id == a.recommendation_id][
        -2:
    ] == ["Merged", "Answered"]


def test_merge_into_a_closed_or_merged_case_or_itself_is_refused(policy: Policy) -> None:
    bus = Bus(policy)
    b = bus.new()
    bus.respond(b.recommendation_id, SUPERVISOR, ResponseAction.CLOSE)
    a = bus.new()
    with pytest.raises(RejectedError) as err:
        bus.respond(
            a.recommendation_id, SUPERVISOR, ResponseAction.MERGE_INTO, target=b.recommendation_id
        )
    assert err.value.reason == "target_not_open"
    with pytest.raises(RejectedError) as err:
        bus.respond(
            a.recommendation_id, SUPERVISOR, ResponseAction.MERGE_INTO, target=a.recommendation_id
        )
    assert err.value.reason == "invalid_target"
    with pytest.raises(RejectedError) as err:
        bus.send(
            str(uuid.uuid4()),
            PairRequest(
                action="merge_into",
                source=a.recommendation_id,
                kind=Kind.KIEN_NGHI,
                submitted_by="X",
                agency=SUPERVISOR,
                authorized=True,
                response_id="r",
            ),
        )
    assert err.value.reason == "unknown_recommendation"


def test_unmerge_splits_the_case_reroutes_it_and_tells_its_submitter(policy: Policy) -> None:
    bus = Bus(policy)
    b = bus.new()
    dup = received()
    out = apply(
        None,
        route(dup, duplicate_of=b.recommendation_id, similarity=0.9),
        policy=policy,
        now=T0,
    )
    assert out.state is not None
    bus.cases[dup.recommendation_id] = out.state
    bus.events.extend(out.events)
    bus._deliver(out.effects)
    assert len(bus.cases[b.recommendation_id].merged) == 1
    with pytest.raises(RejectedError) as err:  # an outsider may not
        bus.respond(dup.recommendation_id, OUTSIDER, ResponseAction.UNMERGE, reason="khác")
    assert err.value.reason == "not_assignee"
    # the assignee of the case it was merged into may
    bus.respond(dup.recommendation_id, b.agency or "", ResponseAction.UNMERGE, reason="Khác tuyến")
    a_now = bus.cases[dup.recommendation_id]
    assert a_now.status == Status.ASSIGNED
    assert a_now.duplicate_of is None
    assert b.recommendation_id in a_now.dismissed
    assert bus.cases[b.recommendation_id].merged == ()
    kinds = [
        (type(e).__name__, e.sequence)
        for e in bus.events
        if e.recommendation_id == dup.recommendation_id
    ]
    assert kinds == [("Merged", 2), ("Unmerged", 3), ("Assigned", 4)]
    (unmerged,) = bus.of(dup.recommendation_id, Unmerged)
    assert isinstance(unmerged, Unmerged)
    assert unmerged.recipients == (dup.submitted_by,)
    assert unmerged.reason == "Khác tuyến"
    assert unmerged.duplicate_of == b.recommendation_id
    (assigned,) = bus.of(dup.recommendation_id, Assigned)
    assert isinstance(assigned, Assigned)
    assert assigned.decision.rule == "unmerge:reroute"
    assert JoinBucket(dup.recommendation_id) in bus.effects
    # B's answer no longer goes to the split case's submitter, unless another source has it
    bus.respond(b.recommendation_id, b.agency or "", ResponseAction.ANSWER, text="Đã sửa")
    (answer,) = bus.of(b.recommendation_id, Answered)
    assert isinstance(answer, Answered)
    assert answer.recipients == (b.submitted_by,)
    # unmerging a case that is not merged is refused
    with pytest.raises(RejectedError):
        bus.respond(dup.recommendation_id, SUPERVISOR, ResponseAction.UNMERGE, reason="x")


def test_not_duplicate_dismisses_once_and_replays_do_nothing(policy: Policy) -> None:
    bus = Bus(policy)
    b = bus.new()
    a = bus.new()
    rid = bus.respond(
        a.recommendation_id,
        a.agency or "",
        ResponseAction.NOT_DUPLICATE,
        target=b.recommendation_id,
    )
    (dismissed,) = bus.of(a.recommendation_id, DuplicateDismissed)
    assert isinstance(dismissed, DuplicateDismissed)
    assert dismissed.candidate == b.recommendation_id
    assert dismissed.sequence == a.sequence + 1
    assert b.recommendation_id in bus.cases[a.recommendation_id].dismissed
    assert a.recommendation_id in bus.cases[b.recommendation_id].dismissed
    assert bus.cases[a.recommendation_id].status == Status.ASSIGNED
    # the same response again (a replay) and the same pair again: nothing new
    replay = Response(
        response_id=rid,
        recommendation_id=a.recommendation_id,
        agency=a.agency or "",
        action=ResponseAction.NOT_DUPLICATE,
        target=b.recommendation_id,
        responded_at=T0,
    )
    bus.send(a.recommendation_id, Respond(replay))
    bus.respond(
        a.recommendation_id, SUPERVISOR, ResponseAction.NOT_DUPLICATE, target=b.recommendation_id
    )
    assert len(bus.of(a.recommendation_id, DuplicateDismissed)) == 1


def test_a_replayed_step_changes_nothing(policy: Policy) -> None:
    bus = Bus(policy)
    b = bus.new()
    a = bus.new()
    bus.respond(
        a.recommendation_id, SUPERVISOR, ResponseAction.MERGE_INTO, target=b.recommendation_id
    )
    request = next(
        e.command for e in bus.effects if isinstance(e, Forward) and e.target == b.recommendation_id
    )
    before = (bus.cases[b.recommendation_id], len(bus.events), len(bus.effects))
    bus.send(b.recommendation_id, request)
    assert (bus.cases[b.recommendation_id], len(bus.events), len(bus.effects)) == before


def test_correction_commands_round_trip_through_the_internal_json(policy: Policy) -> None:
    request = PairRequest(
        action="merge_into",
        source="a",
        kind=Kind.TO_CAO,
        submitted_by="UBMTTQ_TINH",
        agency="TT_HDND",
        authorized=True,
        response_id="r1",
        reason="trùng",
    )
    payload = {"op": request.op, "recommendation_id": "b", **request.model_dump(mode="json")}
    assert decode("pair_request", payload) == request
