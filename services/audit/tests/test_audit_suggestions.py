"""`duplicate_suggested` in the read model: status lists open suggested cases, best first,
only those the caller may read itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from phoihop_audit.readmodel import StoredEvent, project
from phoihop_schemas.events import Decision, DuplicateSuggested, SuggestedDuplicate

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def suggested(rec: str, *, seq: int, candidates: list[str]) -> DuplicateSuggested:
    return DuplicateSuggested(
        recommendation_id=rec,
        sequence=seq,
        occurred_at=T0 + timedelta(hours=2),
        agency="SO_XAY_DUNG",
        candidates=tuple(
            SuggestedDuplicate(
                recommendation_id=c, similarity=0.29 - n / 100, evidence=("words 0.30",)
            )
            for n, c in enumerate(candidates)
        ),
        recipients=("SO_XAY_DUNG", "TT_HDND"),
        decision=Decision(rule="duplicates.rank_candidates", version="1", confidence=0.29),
    )


def test_projection_keeps_the_latest_suggestions_without_changing_the_status() -> None:
    events = [
        StoredEvent("received", 1, {"occurred_at": T0.isoformat(), "submitted_by": "X"}),
        StoredEvent("assigned", 2, {"occurred_at": T0.isoformat(), "agency": "SO_XAY_DUNG"}),
        StoredEvent(
            "duplicate_suggested",
            3,
            {"candidates": [{"recommendation_id": "b", "similarity": 0.2}, {"similarity": 0.1}]},
        ),
    ]
    p = project("new", reversed(events))  # whatever the arrival order
    assert p.status == "assigned"
    assert p.suggested_ids == ["b"]
    assert p.sequence == 3


async def test_status_lists_open_suggestions_the_caller_may_read(
    store, ev, new_id, client, as_agency
) -> None:
    mine, other, gone, new = (new_id() for _ in range(4))
    store([ev.received(mine), ev.assigned(mine)])
    store([ev.received(other, submitted_by="DOAN_DBQH"), ev.assigned(other, agency="SO_Y_TE")])
    store([ev.received(gone), ev.merged(gone, into=mine)])
    store(
        [
            ev.received(new, submitted_by="DOAN_DBQH"),
            ev.assigned(new),
            suggested(new, seq=3, candidates=[other, gone, mine]),
        ]
    )

    async def status(agency: str) -> dict:
        got = await client.get(f"/v1/recommendations/{new}", headers=as_agency(agency))
        assert got.status_code == 200, got.text
        return got.json()

    # a supervisor reads every case: the open ones, best first (a merged case is not open)
    seen = await status("TT_HDND")
    assert seen["suggested_duplicates"] == [other, mine]
    assert (seen["status"], seen["sequence"]) == ("assigned", 3)
    # the assignee only names the cases it may read itself
    assert (await status("SO_XAY_DUNG"))["suggested_duplicates"] == [mine]
    # a case without suggestions lists none
    plain = await client.get(f"/v1/recommendations/{mine}", headers=as_agency("TT_HDND"))
    assert plain.json()["suggested_duplicates"] == []
    # the event is in the trail
    trail = await client.get(f"/v1/recommendations/{new}/trail", headers=as_agency("TT_HDND"))
    types = [e["type"] for e in trail.json()["events"]]
    assert types == ["received", "assigned", "duplicate_suggested"]
