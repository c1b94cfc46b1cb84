"""The lifecycle state machine: pure, every transition and every rejection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from phoihop_common.config import Duration, Reference, commune_agency_code, load_reference
from phoihop_routing.deadlines import WorkCalendar
from phoihop_routing.escalation import Ladder, Superiors
from phoihop_routing.exceptions import RejectedError
from phoihop_routing.lifecycle import (
    AnswerOf,
    CaseState,
    JoinBucket,
    LeaveBucket,
    Link,
    LinkCase,
    Policy,
    Respond,
    Route,
    ShareAnswer,
    Tick,
    apply,
    next_due,
)
from phoihop_schemas.events import (
    Accepted,
    Answered,
    Assigned,
    Channel,
    Closed,
    Decision,
    Declined,
    DuplicateSuggested,
    Escalated,
    Extended,
    Kind,
    Level,
    Merged,
    Received,
    Reminded,
    Reopened,
    Response,
    ResponseAction,
    Status,
    SuggestedDuplicate,
)

T0 = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)  # Monday 09:00 in Vietnam
DECISION = Decision(rule="cat:GIAO_THONG", version="test-1", evidence=("đường",), confidence=0.9)


@pytest.fixture(scope="module")
def reference() -> Reference:
    return load_reference()


def make_policy(reference: Reference, **overrides: object) -> Policy:
    cats = {c.code: c.agency for c in reference.categories}

    def agency_for(category: str, level: Level, locality: str) -> str:
        if level == Level.XA:
            return commune_agency_code(locality)
        if level == Level.TRUNG_UONG:
            return "DOAN_DBQH"
        return cats[category]

    calendar = WorkCalendar(extra_days_off=reference.sla.extra_days_off)
    ladder = Ladder.from_policies(
        reference.sla, calendar=calendar, superiors=Superiors.from_reference(reference)
    )
    kwargs: dict[str, object] = {
        "sla": reference.sla,
        "ladder": ladder,
        "roles": {a.code: frozenset(a.role) for a in reference.agencies},
        "category_agency": cats,
        "agency_for": agency_for,
        "triage_confidence": 0.5,
        "max_hops": 3,
    }
    kwargs.update(overrides)
    return Policy(**kwargs)  # type: ignore[arg-type]


@pytest.fixture
def policy(reference: Reference) -> Policy:
    return make_policy(reference)


def received(kind: Kind = Kind.KIEN_NGHI, rec_id: str | None = None) -> Received:
    return Received(
        recommendation_id=rec_id or str(uuid.uuid4()),
        sequence=1,
        occurred_at=T0,
        kind=kind,
        channel=Channel.TIEP_XUC_CU_TRI,
        locality="xa-an-binh",
        text="Cử tri đề nghị sửa chữa đường liên thôn 3 - thôn 4",
        submitted_by="UBMTTQ_TINH",
    )


def route(rec: Received, **kw: object) -> Route:
    args: dict[str, object] = {
        "received": rec,
        "category": "GIAO_THONG",
        "level": Level.XA,
        "agency": "UBND_XA_XA_AN_BINH",
        "decision": DECISION,
        "bucket": "xa-an-binh|GIAO_THONG",
    }
    args.update(kw)
    return Route(**args)  # type: ignore[arg-type]


def respond(state: CaseState, agency: str, action: ResponseAction, **kw: object) -> Respond:
    return Respond(
        Response(
            response_id=str(uuid.uuid4()),
            recommendation_id=state.recommendation_id,
            agency=agency,
            action=action,
            responded_at=T0,
            **kw,  # type: ignore[arg-type]
        )
    )


def assigned_case(policy: Policy, kind: Kind = Kind.KIEN_NGHI) -> CaseState:
    out = apply(None, route(received(kind)), policy=policy, now=T0)
    assert out.state is not None
    return out.state


def accepted_case(policy: Policy, kind: Kind = Kind.KIEN_NGHI) -> CaseState:
    state = assigned_case(policy, kind)
    out = apply(
        state, respond(state, state.agency or "", ResponseAction.ACCEPT), policy=policy, now=T0
    )
    assert out.state is not None
    assert out.state.status == Status.ACCEPTED
    return out.state


def test_route_assigns_with_deadlines_and_decision(policy: Policy) -> None:
    rec = received()
    out = apply(None, route(rec), policy=policy, now=T0)
    (event,) = out.events
    assert isinstance(event, Assigned)
    assert event.sequence == 2
    assert event.agency == "UBND_XA_XA_AN_BINH"
    assert event.decision == DECISION
    assert event.hop == 0
    # kien_nghi: accept 5 working days, answer 30 calendar days, counted from receipt
    assert event.accept_deadline is not None
    assert event.accept_deadline.date().isoformat() == "2027-03-08"
    assert event.deadline.date().isoformat() == "2027-03-31"
    assert out.state is not None
    assert out.state.status == Status.ASSIGNED
    assert out.state.sequence == 2


SUGGESTIONS = (
    SuggestedDuplicate(recommendation_id="open-1", similarity=0.28, evidence=("words 0.30",)),
    SuggestedDuplicate(recommendation_id="open-2", similarity=0.2),
)


def test_suggestions_follow_the_assignment_without_changing_the_status(policy: Policy) -> None:
    out = apply(None, route(received(), suggestions=SUGGESTIONS), policy=policy, now=T0)
    assigned, suggested = out.events
    assert isinstance(assigned, Assigned)
    assert isinstance(suggested, DuplicateSuggested)
    assert (assigned.sequence, suggested.sequence) == (2, 3)
    assert suggested.candidates == SUGGESTIONS  # best first, as ranked
    assert suggested.agency == "UBND_XA_XA_AN_BINH"
    assert suggested.recipients == ("UBND_XA_XA_AN_BINH", policy.triage_agency)
    assert suggested.addressees() == {"UBND_XA_XA_AN_BINH", policy.triage_agency}
    assert suggested.decision.rule == "duplicates.rank_candidates"
    assert suggested.decision.confidence == 0.28
    assert out.state is not None
    assert (out.state.status, out.state.sequence) == (Status.ASSIGNED, 3)
    # a replay of the same verdict emits nothing
    assert (
        apply(
            out.state, route(received(rec_id=out.state.recommendation_id)), policy=policy, now=T0
        ).events
        == ()
    )


def test_suggestions_to_a_triaged_case_go_to_triage_once(policy: Policy) -> None:
    low = DECISION.model_copy(update={"confidence": 0.2})
    out = apply(
        None, route(received(), decision=low, suggestions=SUGGESTIONS), policy=policy, now=T0
    )
    _, suggested = out.events
    assert isinstance(suggested, DuplicateSuggested)
    assert suggested.recipients == (policy.triage_agency,)


def test_a_merge_emits_no_suggestion(policy: Policy) -> None:
    out = apply(
        None,
        route(received(), duplicate_of="open-1", similarity=0.9, suggestions=SUGGESTIONS),
        policy=policy,
        now=T0,
    )
    (merged,) = out.events
    assert isinstance(merged, Merged)


def test_second_received_is_ignored(policy: Policy) -> None:
    rec = received()
    first = apply(None, route(rec), policy=policy, now=T0)
    again = apply(first.state, route(rec), policy=policy, now=T0)
    assert again.events == ()
    assert not again.changed


def test_low_confidence_goes_to_triage_and_classify_reroutes(policy: Policy) -> None:
    low = DECISION.model_copy(update={"confidence": 0.2})
    out = apply(None, route(received(), decision=low), policy=policy, now=T0)
    (event,) = out.events
    assert isinstance(event, Assigned)
    assert event.agency == "TT_HDND"
    assert event.decision.rule == "triage:low_confidence"
    assert out.state is not None
    assert out.state.status == Status.TRIAGE
    state = out.state

    with pytest.raises(RejectedError) as not_triage:
        apply(state, respond(state, "SO_Y_TE", ResponseAction.CLASSIFY), policy=policy, now=T0)
    assert not_triage.value.reason == "not_triage"

    cmd = respond(state, "TT_HDND", ResponseAction.CLASSIFY, category="Y_TE", level=Level.TINH)
    rerouted = apply(state, cmd, policy=policy, now=T0)
    (again,) = rerouted.events
    assert isinstance(again, Assigned)
    assert (again.agency, again.category, again.sequence) == ("SO_Y_TE", "Y_TE", 3)
    assert again.previous_agency == "TT_HDND"
    assert rerouted.state is not None
    assert rerouted.state.status == Status.ASSIGNED
    assert (
        LeaveBucket(bucket="xa-an-binh|GIAO_THONG", recommendation_id=state.recommendation_id)
        in rerouted.effects
    )
    assert JoinBucket(recommendation_id=state.recommendation_id) in rerouted.effects


def test_merged_duplicate_links_to_open_case_and_gets_the_answer(policy: Policy) -> None:
    open_case = assigned_case(policy)
    dup = received()
    dup = dup.model_copy(update={"submitted_by": "DOAN_DBQH"})
    out = apply(
        None,
        route(dup, duplicate_of=open_case.recommendation_id, similarity=0.93),
        policy=policy,
        now=T0,
    )
    (merged,) = out.events
    assert isinstance(merged, Merged)
    assert (merged.sequence, merged.duplicate_of) == (2, open_case.recommendation_id)
    assert out.state is not None
    assert out.state.status == Status.MERGED
    (link,) = out.effects
    assert isinstance(link, LinkCase)
    linked = apply(
        open_case,
        Link(merged_id=link.merged_id, submitted_by=link.submitted_by),
        policy=policy,
        now=T0,
    )
    assert linked.events == ()
    assert linked.state is not None
    answer = respond(linked.state, "UBND_XA_XA_AN_BINH", ResponseAction.ANSWER, text="Đã sửa")
    done = apply(linked.state, answer, policy=policy, now=T0)
    (answered,) = done.events
    assert isinstance(answered, Answered)
    assert answered.recipients == ("UBMTTQ_TINH", "DOAN_DBQH")
    assert answered.on_time is True
    assert answered.sequence == 3
    # answering the merged one is not possible: the open case answers
    assert out.state is not None
    with pytest.raises(RejectedError) as exc:
        apply(
            out.state,
            respond(out.state, "UBND_XA_XA_AN_BINH", ResponseAction.ANSWER, text="x"),
            policy=policy,
            now=T0,
        )
    assert exc.value.reason == "not_assignee"


def test_accept_then_answer_late(policy: Policy) -> None:
    state = assigned_case(policy)
    out = apply(
        state, respond(state, state.agency or "", ResponseAction.ACCEPT), policy=policy, now=T0
    )
    assert isinstance(out.events[0], Accepted)
    assert out.state is not None
    state = out.state
    late = T0 + timedelta(days=45)
    done = apply(
        state,
        respond(state, state.agency or "", ResponseAction.ANSWER, text="Trả lời"),
        policy=policy,
        now=late,
    )
    (answered,) = done.events
    assert isinstance(answered, Answered)
    assert answered.on_time is False
    assert answered.sequence == 4


def test_responses_that_do_not_fit_are_rejected(policy: Policy) -> None:
    state = assigned_case(policy)
    with pytest.raises(RejectedError) as exc:
        apply(
            state, respond(state, "SO_Y_TE", ResponseAction.ANSWER, text="x"), policy=policy, now=T0
        )
    assert exc.value.reason == "not_assignee"
    with pytest.raises(RejectedError) as exc:
        apply(
            None, respond(state, "SO_Y_TE", ResponseAction.ANSWER, text="x"), policy=policy, now=T0
        )
    assert exc.value.reason == "unknown_recommendation"
    with pytest.raises(RejectedError) as exc:
        apply(
            state,
            respond(state, "UBND_TINH", ResponseAction.REOPEN, reason="x"),
            policy=policy,
            now=T0,
        )
    assert exc.value.reason == "invalid_transition"
    with pytest.raises(RejectedError) as exc:
        apply(state, respond(state, "SO_Y_TE", ResponseAction.CLOSE), policy=policy, now=T0)
    assert exc.value.reason == "not_supervisor"

    closed = apply(state, respond(state, "TT_HDND", ResponseAction.CLOSE), policy=policy, now=T0)
    assert isinstance(closed.events[0], Closed)
    assert closed.state is not None
    with pytest.raises(RejectedError) as exc:
        apply(
            closed.state,
            respond(closed.state, state.agency or "", ResponseAction.ANSWER, text="x"),
            policy=policy,
            now=T0,
        )
    assert exc.value.reason == "answer_closed_case"


def test_replayed_response_is_skipped(policy: Policy) -> None:
    state = assigned_case(policy)
    cmd = respond(state, state.agency or "", ResponseAction.ACCEPT)
    first = apply(state, cmd, policy=policy, now=T0)
    replay = apply(first.state, cmd, policy=policy, now=T0)
    assert replay.events == ()
    assert not replay.changed


def test_decline_reassigns_then_triage_after_max_hops(reference: Reference) -> None:
    policy = make_policy(reference, max_hops=2)
    state = assigned_case(policy)
    out = apply(
        state,
        respond(
            state, "UBND_XA_XA_AN_BINH", ResponseAction.DECLINE, reason="không thuộc thẩm quyền"
        ),
        policy=policy,
        now=T0,
    )
    declined, reassigned = out.events
    assert isinstance(declined, Declined)
    assert declined.reason == "không thuộc thẩm quyền"
    assert isinstance(reassigned, Assigned)
    assert (reassigned.agency, reassigned.hop, reassigned.previous_agency) == (
        "SO_XAY_DUNG",
        1,
        "UBND_XA_XA_AN_BINH",
    )
    assert [e.sequence for e in out.events] == [3, 4]
    assert out.state is not None
    state = out.state
    out = apply(state, respond(state, "SO_XAY_DUNG", ResponseAction.DECLINE), policy=policy, now=T0)
    _, to_triage = out.events
    assert isinstance(to_triage, Assigned)
    assert to_triage.agency == "TT_HDND"
    assert to_triage.decision.rule == "declined:triage"
    assert out.state is not None
    assert out.state.status == Status.TRIAGE
    with pytest.raises(RejectedError) as exc:
        apply(
            out.state, respond(out.state, "TT_HDND", ResponseAction.DECLINE), policy=policy, now=T0
        )
    assert exc.value.reason == "invalid_transition"


def test_extensions_only_for_denunciations_at_most_twice(policy: Policy) -> None:
    state = assigned_case(policy, Kind.KIEN_NGHI)
    with pytest.raises(RejectedError) as exc:
        apply(
            state,
            respond(state, state.agency or "", ResponseAction.REQUEST_EXTENSION, reason="phức tạp"),
            policy=policy,
            now=T0,
        )
    assert exc.value.reason == "extension_not_allowed"

    state = assigned_case(policy, Kind.TO_CAO)
    assert state.deadline is not None
    first_deadline = state.deadline
    for number in (1, 2):
        out = apply(
            state,
            respond(state, state.agency or "", ResponseAction.REQUEST_EXTENSION, reason="phức tạp"),
            policy=policy,
            now=T0,
        )
        (ext,) = out.events
        assert isinstance(ext, Extended)
        assert ext.extension == number
        assert out.state is not None
        state = out.state
    assert state.deadline == first_deadline + timedelta(days=60)
    with pytest.raises(RejectedError) as exc:
        apply(
            state,
            respond(state, state.agency or "", ResponseAction.REQUEST_EXTENSION, reason="x"),
            policy=policy,
            now=T0,
        )
    assert exc.value.reason == "extension_not_allowed"


def test_reopen_and_close_by_supervisor(policy: Policy) -> None:
    state = assigned_case(policy)
    agency = state.agency or ""
    out = apply(
        state, respond(state, agency, ResponseAction.ANSWER, text="Đã xử lý"), policy=policy, now=T0
    )
    assert out.state is not None
    later = T0 + timedelta(days=3)
    out = apply(
        out.state,
        respond(out.state, "TT_HDND", ResponseAction.REOPEN, reason="chưa thỏa đáng"),
        policy=policy,
        now=later,
    )
    (reopened,) = out.events
    assert isinstance(reopened, Reopened)
    assert reopened.agency == agency
    assert reopened.deadline.date().isoformat() == "2027-04-03"
    assert out.state is not None
    out = apply(
        out.state,
        respond(out.state, agency, ResponseAction.ANSWER, text="Lần 2"),
        policy=policy,
        now=later,
    )
    assert out.state is not None
    out = apply(
        out.state, respond(out.state, "UBMTTQ_TINH", ResponseAction.CLOSE), policy=policy, now=later
    )
    (closed,) = out.events
    assert isinstance(closed, Closed)
    assert closed.closed_by == "UBMTTQ_TINH"
    assert closed.sequence == 6
    assert (
        LeaveBucket(bucket="xa-an-binh|GIAO_THONG", recommendation_id=state.recommendation_id)
        in out.effects
    )


def test_reminder_then_escalation_levels_each_once(policy: Policy) -> None:
    state = accepted_case(policy)  # accepted: only the answer deadline runs
    assert state.deadline is not None
    deadline = state.deadline  # end of 31 Mar 2027 (Wednesday)
    assert apply(state, Tick(), policy=policy, now=T0).events == ()
    due = next_due(state, policy=policy)
    assert due is not None
    assert due.date().isoformat() == "2027-03-26"  # Fri: Mon 29, Tue 30, Wed 31 remain

    out = apply(state, Tick(), policy=policy, now=due + timedelta(minutes=1))
    (reminded,) = out.events
    assert isinstance(reminded, Reminded)
    assert out.state is not None
    state = out.state
    assert apply(state, Tick(), policy=policy, now=due + timedelta(hours=1)).events == ()

    out = apply(state, Tick(), policy=policy, now=deadline + timedelta(seconds=1))
    (level1,) = out.events
    assert isinstance(level1, Escalated)
    assert level1.level == 1
    assert level1.recipients == ("UBND_TINH", "TT_HDND", "UBMTTQ_TINH")
    assert out.state is not None
    state = out.state
    assert apply(state, Tick(), policy=policy, now=deadline + timedelta(days=1)).events == ()
    out = apply(state, Tick(), policy=policy, now=deadline + timedelta(days=30))
    (level2,) = out.events
    assert isinstance(level2, Escalated)
    assert (level2.level, level2.recipients) == (2, ("UBND_TINH", "DOAN_DBQH"))
    assert (level1.stage, level2.stage) == ("answer", "answer")
    assert [reminded.sequence, level1.sequence, level2.sequence] == [4, 5, 6]
    assert out.state is not None
    assert next_due(out.state, policy=policy) is None


def test_seconds_limits_escalate_at_once_when_overdue(reference: Reference) -> None:
    sla = reference.sla.model_copy(
        update={
            "kinds": {
                k: v.model_copy(update={"answer": Duration(seconds=2)})
                for k, v in reference.sla.kinds.items()
            }
        }
    )
    policy = make_policy(reference, sla=sla)
    state = accepted_case(policy)
    assert state.deadline == T0 + timedelta(seconds=2)
    out = apply(state, Tick(), policy=policy, now=T0 + timedelta(days=40))
    assert [type(e).__name__ for e in out.events] == ["Escalated", "Escalated"]
    assert out.state is not None
    assert out.state.reminded  # too late for a reminder


def test_state_round_trips_through_json(policy: Policy) -> None:
    state = assigned_case(policy)
    assert CaseState.from_dict(state.to_dict()) == state


# --------------------------------------------------------------------------- late duplicates


def merge_into(policy: Policy, target: CaseState, submitted_by: str = "DOAN_DBQH") -> CaseState:
    dup = received().model_copy(update={"submitted_by": submitted_by})
    out = apply(
        None,
        route(dup, duplicate_of=target.recommendation_id, similarity=0.9),
        policy=policy,
        now=T0,
    )
    assert out.state is not None
    assert out.state.status == Status.MERGED
    return out.state


def test_duplicate_of_an_answered_case_gets_its_answer(policy: Policy) -> None:
    case = assigned_case(policy)
    agency = case.agency or ""
    answered = apply(
        case,
        respond(case, agency, ResponseAction.ANSWER, text="Đã sửa xong"),
        policy=policy,
        now=T0,
    )
    assert answered.state is not None
    case = answered.state
    dup = merge_into(policy, case)

    later = T0 + timedelta(days=2)
    linked = apply(case, Link(dup.recommendation_id, "DOAN_DBQH"), policy=policy, now=later)
    assert linked.events == ()  # nothing is written into the answered case's trail
    assert linked.state is not None
    assert linked.state.sequence == case.sequence
    (share,) = linked.effects
    assert share == ShareAnswer(
        target=dup.recommendation_id,
        source_case=case.recommendation_id,
        agency=agency,
        text="Đã sửa xong",
        on_time=True,
    )
    # a replayed link shares nothing twice
    again = apply(linked.state, Link(dup.recommendation_id, "DOAN_DBQH"), policy=policy, now=later)
    assert again.effects == ()
    assert not again.changed

    cmd = AnswerOf(
        source_case=share.source_case, agency=share.agency, text=share.text, on_time=share.on_time
    )
    out = apply(dup, cmd, policy=policy, now=later)
    (event,) = out.events
    assert isinstance(event, Answered)
    assert event.recommendation_id == dup.recommendation_id
    assert event.sequence == dup.sequence + 1 == 3
    assert (event.agency, event.text, event.on_time) == (agency, "Đã sửa xong", True)
    assert event.recipients == ("DOAN_DBQH",)
    assert event.addressees() == frozenset({"DOAN_DBQH"})
    assert out.state is not None
    assert out.state.status == Status.ANSWERED
    # delivered once: a replay does nothing
    replay = apply(out.state, cmd, policy=policy, now=later)
    assert replay.events == ()
    assert not replay.changed
    # the answering agency cannot answer the duplicate directly, nor reopen it
    with pytest.raises(RejectedError):
        apply(
            out.state,
            respond(out.state, "TT_HDND", ResponseAction.REOPEN, reason="x"),
            policy=policy,
            now=later,
        )


def test_answer_of_only_fits_a_merged_duplicate_of_that_case(policy: Policy) -> None:
    case = assigned_case(policy)
    cmd = AnswerOf(source_case="other", agency="SO_Y_TE", text="x", on_time=True)
    with pytest.raises(RejectedError) as exc:
        apply(case, cmd, policy=policy, now=T0)
    assert exc.value.reason == "invalid_transition"
    with pytest.raises(RejectedError) as unknown:
        apply(None, cmd, policy=policy, now=T0)
    assert unknown.value.reason == "unknown_recommendation"


def test_duplicate_of_an_answered_then_closed_case_gets_the_answer(policy: Policy) -> None:
    case = assigned_case(policy)
    out = apply(
        case,
        respond(case, case.agency or "", ResponseAction.ANSWER, text="Xong"),
        policy=policy,
        now=T0,
    )
    assert out.state is not None
    out = apply(
        out.state, respond(out.state, "TT_HDND", ResponseAction.CLOSE), policy=policy, now=T0
    )
    assert out.state is not None
    assert out.state.status == Status.CLOSED
    dup = merge_into(policy, out.state)
    linked = apply(out.state, Link(dup.recommendation_id, "DOAN_DBQH"), policy=policy, now=T0)
    (share,) = linked.effects
    assert isinstance(share, ShareAnswer)
    assert share.text == "Xong"


def test_duplicate_of_a_case_closed_unanswered_or_still_open_gets_no_share(
    policy: Policy,
) -> None:
    case = assigned_case(policy)
    dup = merge_into(policy, case)
    linked = apply(case, Link(dup.recommendation_id, "DOAN_DBQH"), policy=policy, now=T0)
    assert linked.effects == ()  # open: it will be a recipient of the case's `answered`
    closed = apply(case, respond(case, "TT_HDND", ResponseAction.CLOSE), policy=policy, now=T0)
    assert closed.state is not None
    linked = apply(closed.state, Link(dup.recommendation_id, "DOAN_DBQH"), policy=policy, now=T0)
    assert linked.effects == ()


def test_duplicate_of_a_reopened_case_is_a_recipient_of_the_new_answer(policy: Policy) -> None:
    case = assigned_case(policy)
    agency = case.agency or ""
    out = apply(case, respond(case, agency, ResponseAction.ANSWER, text="1"), policy=policy, now=T0)
    assert out.state is not None
    out = apply(
        out.state,
        respond(out.state, "TT_HDND", ResponseAction.REOPEN, reason="x"),
        policy=policy,
        now=T0,
    )
    assert out.state is not None
    dup = merge_into(policy, out.state)
    linked = apply(out.state, Link(dup.recommendation_id, "DOAN_DBQH"), policy=policy, now=T0)
    assert linked.effects == ()
    assert linked.state is not None
    out = apply(
        linked.state,
        respond(linked.state, agency, ResponseAction.ANSWER, text="2"),
        policy=policy,
        now=T0,
    )
    (answered,) = out.events
    assert isinstance(answered, Answered)
    assert answered.recipients == ("UBMTTQ_TINH", "DOAN_DBQH")


# --------------------------------------------------------------------------- accept deadline


def test_accept_deadline_escalates_on_the_ladder_until_accepted(policy: Policy) -> None:
    state = assigned_case(policy)
    accept_deadline = state.accept_deadline
    assert accept_deadline is not None
    assert accept_deadline.date().isoformat() == "2027-03-08"
    assert next_due(state, policy=policy) == accept_deadline
    assert (
        apply(state, Tick(), policy=policy, now=accept_deadline - timedelta(minutes=1)).events == ()
    )

    out = apply(state, Tick(), policy=policy, now=accept_deadline + timedelta(seconds=1))
    (level1,) = out.events
    assert isinstance(level1, Escalated)
    assert (level1.stage, level1.level, level1.sequence) == ("accept", 1, 3)
    assert level1.deadline == accept_deadline
    assert level1.agency == "UBND_XA_XA_AN_BINH"
    assert level1.recipients == ("UBND_TINH", "TT_HDND", "UBMTTQ_TINH")
    assert out.state is not None
    state = out.state
    assert apply(state, Tick(), policy=policy, now=accept_deadline + timedelta(days=1)).events == ()
    due = next_due(state, policy=policy)
    assert due is not None
    assert due.date().isoformat() == "2027-03-22"  # 10 working days after the accept deadline
    out = apply(state, Tick(), policy=policy, now=due + timedelta(seconds=1))
    (level2,) = out.events
    assert isinstance(level2, Escalated)
    assert (level2.stage, level2.level, level2.recipients) == (
        "accept",
        2,
        ("UBND_TINH", "DOAN_DBQH"),
    )
    assert out.state is not None
    # accepted at last: only the answer deadline runs from now on
    out = apply(
        out.state,
        respond(out.state, out.state.agency or "", ResponseAction.ACCEPT),
        policy=policy,
        now=due + timedelta(hours=1),
    )
    assert out.state is not None
    state = out.state
    due = next_due(state, policy=policy)
    assert due is not None
    assert due.date().isoformat() == "2027-03-26"  # the answer reminder
    out = apply(state, Tick(), policy=policy, now=due + timedelta(minutes=1))
    assert [type(e).__name__ for e in out.events] == ["Reminded"]


def test_accept_escalation_stops_when_accepted_in_time(policy: Policy) -> None:
    state = accepted_case(policy)
    assert state.accept_deadline is not None
    out = apply(state, Tick(), policy=policy, now=state.accept_deadline + timedelta(days=1))
    assert out.events == ()
    assert not out.changed


def test_declined_case_gets_a_new_accept_ladder(policy: Policy) -> None:
    state = assigned_case(policy)
    assert state.accept_deadline is not None
    late = state.accept_deadline + timedelta(seconds=1)
    out = apply(state, Tick(), policy=policy, now=late)
    assert out.state is not None
    assert out.state.accept_escalated == (1,)
    out = apply(
        out.state,
        respond(out.state, out.state.agency or "", ResponseAction.DECLINE, reason="không thuộc"),
        policy=policy,
        now=late,
    )
    assert out.state is not None
    assert (out.state.agency, out.state.accept_escalated) == ("SO_XAY_DUNG", ())
    assert out.state.accept_deadline is not None
    assert out.state.accept_deadline > late
    assert next_due(out.state, policy=policy) == out.state.accept_deadline


def test_triage_has_no_accept_stage(policy: Policy) -> None:
    low = DECISION.model_copy(update={"confidence": 0.2})
    out = apply(None, route(received(), decision=low), policy=policy, now=T0)
    assert out.state is not None
    assert out.state.status == Status.TRIAGE
    assert out.state.accept_deadline is not None
    tick = apply(
        out.state, Tick(), policy=policy, now=out.state.accept_deadline + timedelta(days=1)
    )
    assert tick.events == ()


# --------------------------------------------------------------------------- complex complaints


def test_complex_complaint_switches_to_complex_days_once(policy: Policy) -> None:
    state = accepted_case(policy, Kind.KHIEU_NAI)
    assert state.deadline is not None
    assert state.deadline.date().isoformat() == "2027-03-31"  # 30 days from receipt
    with pytest.raises(RejectedError) as not_yours:
        apply(
            state,
            respond(state, "SO_Y_TE", ResponseAction.REQUEST_EXTENSION, reason="phức tạp"),
            policy=policy,
            now=T0,
        )
    assert not_yours.value.reason == "not_assignee"
    later = T0 + timedelta(days=20)
    out = apply(
        state,
        respond(state, state.agency or "", ResponseAction.REQUEST_EXTENSION, reason="phức tạp"),
        policy=policy,
        now=later,
    )
    (ext,) = out.events
    assert isinstance(ext, Extended)
    # 45 days counted from the original start (receipt), not from the request
    assert ext.deadline.date().isoformat() == "2027-04-15"
    assert ext.deadline - state.deadline == timedelta(days=15)
    assert (ext.extension, ext.sequence) == (1, state.sequence + 1)
    assert out.state is not None
    assert out.state.complex
    assert out.state.deadline == ext.deadline
    with pytest.raises(RejectedError) as twice:
        apply(
            out.state,
            respond(out.state, state.agency or "", ResponseAction.REQUEST_EXTENSION, reason="x"),
            policy=policy,
            now=later,
        )
    assert twice.value.reason == "extension_not_allowed"


def test_complex_days_count_from_the_reopening(policy: Policy) -> None:
    state = assigned_case(policy, Kind.KHIEU_NAI)
    agency = state.agency or ""
    out = apply(
        state, respond(state, agency, ResponseAction.ANSWER, text="1"), policy=policy, now=T0
    )
    assert out.state is not None
    reopened_at = T0 + timedelta(days=10)
    out = apply(
        out.state,
        respond(out.state, "TT_HDND", ResponseAction.REOPEN, reason="x"),
        policy=policy,
        now=reopened_at,
    )
    assert out.state is not None
    assert out.state.deadline is not None
    assert out.state.deadline.date().isoformat() == "2027-04-10"  # 30 days from 11 Mar
    out = apply(
        out.state,
        respond(out.state, agency, ResponseAction.REQUEST_EXTENSION, reason="phức tạp"),
        policy=policy,
        now=reopened_at,
    )
    (ext,) = out.events
    assert isinstance(ext, Extended)
    assert ext.deadline.date().isoformat() == "2027-04-25"  # 45 days from 11 Mar
