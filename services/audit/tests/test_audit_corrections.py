"""People's corrections of duplicate decisions in audit: status, involvement, suggestions,
period reports and the labelled pairs (JSON and JSON Lines, supervisors and triage only)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import openpyxl
from sqlalchemy import select

from phoihop_audit.app import Runtime
from phoihop_audit.db import involvement
from phoihop_audit.openapi import RecommendationStatus
from phoihop_audit.readmodel import StoredEvent, project
from phoihop_schemas.events import (
    Decision,
    DuplicateDismissed,
    DuplicateSuggested,
    Merged,
    SuggestedDuplicate,
    Unmerged,
)

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)
SUPERVISOR = "TT_HDND"  # supervisor and triage
TEXT_A = "Cử tri đề nghị nâng cấp đường liên xã An Bình"
TEXT_B = "Cử tri phản ánh đường liên xã An Bình xuống cấp"


def merged_by_hand(
    rec: str, *, into: str, seq: int, by: str = SUPERVISOR, at: datetime = T0
) -> Merged:
    return Merged(
        recommendation_id=rec,
        sequence=seq,
        occurred_at=at,
        duplicate_of=into,
        similarity=1.0,
        decision=Decision(
            rule="manual:merge_into",
            version="lifecycle-1",
            evidence=(f"merged_by={by}", "response_id=r-1", "reason=cùng một tuyến đường"),
        ),
        submitted_by="SO_GD_DT",
        merged_by=by,
    )


def unmerged(
    rec: str, *, of: str, seq: int, by: str = "SO_XAY_DUNG", at: datetime = T0
) -> Unmerged:
    return Unmerged(
        recommendation_id=rec,
        sequence=seq,
        occurred_at=at,
        duplicate_of=of,
        agency=by,
        reason="hai tuyến đường khác nhau",
        recipients=("SO_GD_DT",),
        decision=Decision(rule="manual:unmerge", version="lifecycle-1"),
    )


def dismissed(
    rec: str, *, candidate: str, seq: int, by: str = "SO_XAY_DUNG", at: datetime = T0
) -> DuplicateDismissed:
    return DuplicateDismissed(
        recommendation_id=rec,
        sequence=seq,
        occurred_at=at,
        candidate=candidate,
        agency=by,
        reason="khác địa bàn",
    )


def suggested(rec: str, *, seq: int, candidates: list[str]) -> DuplicateSuggested:
    return DuplicateSuggested(
        recommendation_id=rec,
        sequence=seq,
        occurred_at=T0 + timedelta(hours=2),
        agency="SO_XAY_DUNG",
        candidates=tuple(
            SuggestedDuplicate(recommendation_id=c, similarity=0.29 - n / 100)
            for n, c in enumerate(candidates)
        ),
        recipients=("SO_XAY_DUNG", SUPERVISOR),
        decision=Decision(rule="duplicates.rank_candidates", version="1", confidence=0.29),
    )


def sources_of(rt: Runtime, rec: str) -> set[str]:
    """Agencies holding the `source` relation on a case."""
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(involvement.c.agency).where(
                involvement.c.recommendation_id == rec, involvement.c.relation == "source"
            )
        )
        return {a for (a,) in rows}


# --------------------------------------------------------------------------- read model


def test_projection_unmerged_is_not_merged_and_keeps_the_corrections() -> None:
    at = T0.isoformat()
    events = [
        StoredEvent("received", 1, {"occurred_at": at, "submitted_by": "SO_GD_DT"}),
        StoredEvent("assigned", 2, {"occurred_at": at, "agency": "SO_Y_TE"}),
        StoredEvent(
            "merged",
            3,
            {
                "occurred_at": at,
                "duplicate_of": "b",
                "similarity": 1.0,
                "merged_by": SUPERVISOR,
                "decision": {"evidence": ["reason=trùng"]},
            },
        ),
        StoredEvent(
            "unmerged",
            4,
            {"occurred_at": at, "duplicate_of": "b", "agency": "SO_XAY_DUNG", "reason": "khác"},
        ),
    ]
    p = project("a", reversed(events))  # whatever the arrival order
    assert (p.status, p.duplicate_of, p.similarity) == ("received", None, None)
    assert [c["action"] for c in p.corrections] == ["merge_into", "unmerge"]
    assert p.corrections[0] == {
        "sequence": 3,
        "action": "merge_into",
        "other": "b",
        "agency": SUPERVISOR,
        "reason": "trùng",
        "at": T0.replace(tzinfo=None).isoformat() + "Z",
    }
    assert ("b", "SO_GD_DT", "source") not in p.involvement()
    # the `assigned` that follows, in the same fold
    again = project("a", [*events, StoredEvent("assigned", 5, {"agency": "SO_Y_TE"})])
    assert again.status == "assigned"
    # an automatic merge is no correction
    auto = StoredEvent("merged", 2, {"duplicate_of": "b", "similarity": 0.95})
    assert project("c", [events[0], auto]).corrections == []


def test_projection_never_suggests_a_dismissed_case_again() -> None:
    candidates = [{"recommendation_id": "x"}, {"recommendation_id": "y"}]
    events = [
        StoredEvent("received", 1, {}),
        StoredEvent("duplicate_suggested", 2, {"candidates": candidates}),
        StoredEvent("duplicate_dismissed", 3, {"candidate": "x", "agency": "SO_XAY_DUNG"}),
    ]
    assert project("n", events).suggested_ids == ["y"]
    later = StoredEvent("duplicate_suggested", 4, {"candidates": candidates})
    assert project("n", [*events, later]).suggested_ids == ["y"]


# --------------------------------------------------------------------------- status


async def test_manual_merge_then_unmerge(rt: Runtime, store, ev, new_id, client, as_agency) -> None:
    a, b = new_id(), new_id()
    store([ev.received(b, text=TEXT_B), ev.assigned(b)])
    store(
        [
            ev.received(a, submitted_by="SO_GD_DT", text=TEXT_A),
            ev.assigned(a, agency="SO_Y_TE", category="Y_TE"),
            merged_by_hand(a, into=b, seq=3, at=T0 + timedelta(days=1)),
        ]
    )

    async def status(rec: str, agency: str = SUPERVISOR) -> dict:
        got = await client.get(f"/v1/recommendations/{rec}", headers=as_agency(agency))
        assert got.status_code == 200, got.text
        return got.json()

    seen = await status(a)
    assert (seen["status"], seen["duplicate_of"]) == ("merged", b)
    assert seen["merged_into"]["id"] == b
    assert [c["action"] for c in seen["corrections"]] == ["merge_into"]
    assert seen["corrections"][0]["reason"] == "cùng một tuyến đường"
    assert sources_of(rt, b) == {"SO_GD_DT"}
    assert (await status(b))["duplicates"] == [a]

    store([unmerged(a, of=b, seq=4, at=T0 + timedelta(days=2))])
    seen = await status(a)
    assert seen["status"] != "merged"
    assert (seen["duplicate_of"], seen["merged_into"], seen["similarity"]) == (None, None, None)
    assert seen["corrections"] == [
        {
            "sequence": 3,
            "action": "merge_into",
            "other": b,
            "agency": SUPERVISOR,
            "reason": "cùng một tuyến đường",
            "at": "2026-05-05T08:00:00Z",
        },
        {
            "sequence": 4,
            "action": "unmerge",
            "other": b,
            "agency": "SO_XAY_DUNG",
            "reason": "hai tuyến đường khác nhau",
            "at": "2026-05-06T08:00:00Z",
        },
    ]
    described = RecommendationStatus.model_validate(seen)  # the documented response model
    assert [c.action for c in described.corrections] == ["merge_into", "unmerge"]
    # the submitter of the unmerged case no longer relates to the other case
    assert sources_of(rt, b) == set()
    other = await status(b)
    assert (other["duplicates"], other["duplicate_count"]) == ([], 0)
    # its own submitter still reads it, corrections included
    assert len((await status(a, "SO_GD_DT"))["corrections"]) == 2

    store([ev.assigned(a, seq=5, agency="SO_Y_TE", category="Y_TE")])
    assert (await status(a))["status"] == "assigned"


async def test_dismissed_suggestion_disappears(store, ev, new_id, client, as_agency) -> None:
    x, y, n = new_id(), new_id(), new_id()
    store([ev.received(x), ev.assigned(x), suggested(x, seq=3, candidates=[n])])
    store([ev.received(y), ev.assigned(y)])
    store([ev.received(n), ev.assigned(n), suggested(n, seq=3, candidates=[x, y])])

    async def status(rec: str) -> dict:
        got = await client.get(f"/v1/recommendations/{rec}", headers=as_agency(SUPERVISOR))
        assert got.status_code == 200, got.text
        return got.json()

    assert (await status(n))["suggested_duplicates"] == [x, y]
    assert (await status(x))["suggested_duplicates"] == [n]
    store([dismissed(n, candidate=x, seq=4)])
    seen = await status(n)
    assert seen["suggested_duplicates"] == [y]
    assert seen["status"] == "assigned"
    assert seen["corrections"][0]["action"] == "not_duplicate"
    assert seen["corrections"][0]["other"] == x
    # the pair goes both ways: x no longer suggests n either
    assert (await status(x))["suggested_duplicates"] == []
    # a later suggestion never brings the dismissed case back
    store([suggested(n, seq=5, candidates=[x, y])])
    assert (await status(n))["suggested_duplicates"] == [y]


# --------------------------------------------------------------------------- reports


def _may(store, ev, new_id) -> dict[str, str]:
    """Corrections in May 2026 (local time), and one in June.

    A (SO_Y_TE) merged by hand into B (SO_XAY_DUNG) on 5/5, undone on 6/5; C (SO_XAY_DUNG)
    merged by hand into B on 7/5; N (SO_XAY_DUNG) dismissed as a duplicate of X on 8/5;
    D (SO_XAY_DUNG) merged by hand into X on 10/5 and undone on 2/6 (June).
    """
    r = {k: new_id() for k in "ABCNXD"}
    day = lambda d, m=5: datetime(2026, m, d, 3, tzinfo=UTC)  # noqa: E731
    store([ev.received(r["B"], text=TEXT_B), ev.assigned(r["B"])])
    store([ev.received(r["X"], locality="xa-tan-phu"), ev.assigned(r["X"], locality="xa-tan-phu")])
    store(
        [
            ev.received(r["A"], submitted_by="SO_GD_DT", text=TEXT_A),
            ev.assigned(r["A"], agency="SO_Y_TE", category="Y_TE"),
            merged_by_hand(r["A"], into=r["B"], seq=3, at=day(5)),
            unmerged(r["A"], of=r["B"], seq=4, at=day(6)),
            ev.assigned(r["A"], seq=5, agency="SO_Y_TE", category="Y_TE", at=day(6)),
        ]
    )
    store(
        [
            ev.received(r["C"]),
            ev.assigned(r["C"]),
            merged_by_hand(r["C"], into=r["B"], seq=3, at=day(7)),
        ]
    )
    store(
        [
            ev.received(r["N"]),
            ev.assigned(r["N"]),
            dismissed(r["N"], candidate=r["X"], seq=3, at=day(8)),
        ]
    )
    store(
        [
            ev.received(r["D"]),
            ev.assigned(r["D"]),
            merged_by_hand(r["D"], into=r["X"], seq=3, at=day(10)),
            unmerged(r["D"], of=r["X"], seq=4, at=day(2, 6)),
        ]
    )
    return r


async def test_report_counts_corrections(store, ev, new_id, client, as_agency) -> None:
    _may(store, ev, new_id)
    sup = as_agency(SUPERVISOR)
    params = {"month": "2026-05", "group_by": "agency"}
    body = (await client.get("/v1/reports", params=params, headers=sup)).json()
    counts = {r["key"]: (r["merged_by_hand"], r["unmerged"], r["dismissed"]) for r in body["rows"]}
    # A's corrections under SO_Y_TE; C and D merged, N's dismissal under SO_XAY_DUNG (D's
    # unmerge is June's)
    assert counts["SO_Y_TE"] == (1, 1, 0)
    assert counts["SO_XAY_DUNG"] == (2, 0, 1)
    total = body["total"]
    assert (total["merged_by_hand"], total["unmerged"], total["dismissed"]) == (3, 1, 1)
    june = (await client.get("/v1/reports", params={"month": "2026-06"}, headers=sup)).json()
    assert (june["total"]["unmerged"], june["total"]["merged_by_hand"]) == (1, 0)

    csv_text = (
        await client.get("/v1/reports", params=params | {"format": "csv"}, headers=sup)
    ).text
    lines = list(csv.reader(io.StringIO(csv_text)))
    assert lines[0][-4:] == ["on_time_ratio", "merged_by_hand", "unmerged", "dismissed"]
    assert lines[0][:3] == ["key", "name", "received"]
    assert lines[-1][0] == "TOTAL"
    assert lines[-1][-3:] == ["3", "1", "1"]

    xlsx = await client.get("/v1/reports", params=params | {"format": "xlsx"}, headers=sup)
    ws = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    header = [c.value for c in ws[5]]
    assert header[2:5] == ["Tổng số tiếp nhận", "Gộp trùng", "Đã chuyển giao"]
    assert header[-4:] == [
        "Số ngày trả lời (P90)",
        "Gộp trùng thủ công",
        "Hủy gộp trùng",
        "Xác nhận không trùng",
    ]
    total_row = [c.value for c in ws[5 + len(body["rows"]) + 1]]
    assert total_row[1] == "Tổng cộng"
    assert total_row[-3:] == [3, 1, 1]


# --------------------------------------------------------------------------- labelled pairs

PAIRS = "/v1/reports/labelled-pairs"


async def test_labelled_pairs_json_and_jsonl(store, ev, new_id, client, as_agency) -> None:
    r = _may(store, ev, new_id)
    sup = as_agency(SUPERVISOR)
    got = await client.get(PAIRS, params={"month": "2026-05"}, headers=sup)
    assert got.status_code == 200, got.text
    pairs = got.json()["pairs"]
    # (A, B): merged then unmerged, once with the latest decision; (D, X)'s latest is in June
    assert [(p["a"], p["b"], p["label"], p["action"]) for p in pairs] == [
        (r["A"], r["B"], "not_duplicate", "unmerge"),
        (r["C"], r["B"], "duplicate", "merge_into"),
        (r["N"], r["X"], "not_duplicate", "not_duplicate"),
    ]
    first = pairs[0]
    assert first == {
        "a": r["A"],
        "b": r["B"],
        "label": "not_duplicate",
        "action": "unmerge",
        "decided_by": "SO_XAY_DUNG",
        "decided_at": "2026-05-06T03:00:00Z",
        "text_a": TEXT_A,
        "text_b": TEXT_B,
        "kind_a": "kien_nghi",
        "kind_b": "kien_nghi",
        "locality_a": "xa-an-binh",
        "locality_b": "xa-an-binh",
    }
    assert pairs[2]["locality_b"] == "xa-tan-phu"

    june = (await client.get(PAIRS, params={"month": "2026-06"}, headers=sup)).json()["pairs"]
    assert [(p["a"], p["b"], p["label"]) for p in june] == [(r["D"], r["X"], "not_duplicate")]

    lines = await client.get(
        PAIRS, params={"from": "2026-05-01", "to": "2026-06-30", "format": "jsonl"}, headers=sup
    )
    assert lines.status_code == 200, lines.text
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert lines.text.endswith("\n")
    parsed = [json.loads(line) for line in lines.text.splitlines()]
    assert parsed == [*pairs, *june]
    assert TEXT_A in lines.text  # UTF-8 kept, not escaped

    empty = await client.get(PAIRS, params={"month": "2026-04", "format": "jsonl"}, headers=sup)
    assert (empty.status_code, empty.text) == (200, "")


async def test_labelled_pairs_access(store, ev, new_id, client, as_agency) -> None:
    _may(store, ev, new_id)
    params = {"month": "2026-05"}
    for agency in ("SO_XAY_DUNG", "SO_GD_DT"):  # plain agencies, even those involved
        refused = await client.get(PAIRS, params=params, headers=as_agency(agency))
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert (await client.get(PAIRS, params=params)).status_code == 401
    for agency in ("UBMTTQ_TINH", SUPERVISOR):  # supervisor; supervisor and triage
        ok = await client.get(PAIRS, params=params, headers=as_agency(agency))
        assert ok.status_code == 200
        assert len(ok.json()["pairs"]) == 3
    bad = await client.get(PAIRS, params={"month": "2026-13"}, headers=as_agency(SUPERVISOR))
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_period")


async def test_documented_in_openapi(client) -> None:
    doc = (await client.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert "corrections" in schemas["RecommendationStatus"]["properties"]
    assert {"merged_by_hand", "unmerged", "dismissed"} <= set(schemas["ReportRow"]["required"])
    op = doc["paths"][PAIRS]["get"]
    assert {"200", "400", "401", "403", "422"} <= set(op["responses"])
    assert {"application/json", "application/x-ndjson"} <= set(op["responses"]["200"]["content"])
    assert {p["name"] for p in op["parameters"]} >= {"from", "to", "month", "quarter", "format"}
