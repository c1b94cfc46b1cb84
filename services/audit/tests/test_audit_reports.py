"""Period reports on a fixed set of events, numbers checked by hand; JSON, CSV and XLSX."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import openpyxl
import pytest

FUTURE = datetime(2030, 1, 1, tzinfo=UTC)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def may_2026(store, ev, new_id) -> dict[str, str]:
    """Nine recommendations around May 2026 (local time UTC+7).

    In May (local): R1..R7. R1 arrives 30/4 18:00 UTC = 1/5 01:00 local (inside);
    R8 arrives 30/4 16:30 UTC = 23:30 local (outside); R9 31/5 17:30 UTC = 1/6 00:30 local
    (outside). SO_XAY_DUNG: R1 answered on time after 2 days, R2 on time after 10, R3 late
    after 40 (escalated), R4 unanswered past its deadline (escalated twice). SO_NN_MT: R5
    open with a distant deadline, R6 on time after 4 days. R7 merged into R1, never assigned.
    """
    r = {f"R{i}": new_id() for i in range(1, 10)}
    xd, nn = (
        {"agency": "SO_XAY_DUNG"},
        {
            "agency": "SO_NN_MT",
            "category": "MOI_TRUONG",
            "locality": "xa-tan-phu",
        },
    )
    store(
        [
            ev.received(r["R1"], at=utc(2026, 4, 30, 18)),
            ev.assigned(r["R1"], at=utc(2026, 4, 30, 19), deadline=FUTURE, **xd),
            ev.answered(r["R1"], at=utc(2026, 5, 2, 18)),
            ev.received(r["R2"], at=utc(2026, 5, 5)),
            ev.assigned(r["R2"], at=utc(2026, 5, 5, 1), deadline=FUTURE, **xd),
            ev.answered(r["R2"], at=utc(2026, 5, 15)),
            ev.received(r["R3"], at=utc(2026, 5, 10)),
            ev.assigned(r["R3"], at=utc(2026, 5, 10, 1), deadline=utc(2026, 6, 9), **xd),
            ev.escalated(r["R3"], seq=3),
            ev.answered(r["R3"], seq=4, at=utc(2026, 6, 19), on_time=False),
            ev.received(r["R4"], at=utc(2026, 5, 12)),
            ev.assigned(r["R4"], at=utc(2026, 5, 12, 1), deadline=utc(2026, 6, 11), **xd),
            ev.escalated(r["R4"], seq=3),
            ev.escalated(r["R4"], seq=4, level=2),
            ev.received(r["R5"], at=utc(2026, 5, 20), locality="xa-tan-phu"),
            ev.assigned(r["R5"], at=utc(2026, 5, 20, 1), deadline=FUTURE, **nn),
            ev.received(r["R6"], at=utc(2026, 5, 21), locality="xa-tan-phu"),
            ev.assigned(r["R6"], at=utc(2026, 5, 21, 1), deadline=FUTURE, **nn),
            ev.answered(r["R6"], at=utc(2026, 5, 25), agency="SO_NN_MT"),
            ev.received(r["R7"], at=utc(2026, 5, 22), submitted_by="DOAN_DBQH"),
            ev.merged(r["R7"], into=r["R1"]),
            ev.received(r["R8"], at=utc(2026, 4, 30, 16, 30)),
            ev.assigned(r["R8"], at=utc(2026, 4, 30, 17), deadline=FUTURE, **xd),
            ev.received(r["R9"], at=utc(2026, 5, 31, 17, 30)),
            ev.assigned(r["R9"], at=utc(2026, 5, 31, 18), deadline=FUTURE, **xd),
        ]
    )
    return r


# No corrections of duplicate decisions in this fixture (test_audit_corrections counts them).
NO_CORRECTIONS = {"merged_by_hand": 0, "unmerged": 0, "dismissed": 0}
XD = {
    "key": "SO_XAY_DUNG",
    "name": "Sở Xây dựng",
    "received": 4,
    "merged": 0,
    "assigned": 4,
    "answered": 3,
    "answered_on_time": 2,
    "overdue": 1,
    "escalated": 2,
    "median_days": 10.0,
    "p90_days": 40.0,
    "on_time_ratio": 0.6667,
    **NO_CORRECTIONS,
}
NN = {
    "key": "SO_NN_MT",
    "name": "Sở Nông nghiệp và Môi trường",
    "received": 2,
    "merged": 0,
    "assigned": 2,
    "answered": 1,
    "answered_on_time": 1,
    "overdue": 0,
    "escalated": 0,
    "median_days": 4.0,
    "p90_days": 4.0,
    "on_time_ratio": 1.0,
    **NO_CORRECTIONS,
}
UNASSIGNED = {
    "key": None,
    "name": "Chưa giao",
    "received": 1,
    "merged": 1,
    "assigned": 0,
    "answered": 0,
    "answered_on_time": 0,
    "overdue": 0,
    "escalated": 0,
    "median_days": None,
    "p90_days": None,
    "on_time_ratio": None,
    **NO_CORRECTIONS,
}
TOTAL = {
    "key": None,
    "name": "Tổng cộng",
    "received": 7,
    "merged": 1,
    "assigned": 6,
    "answered": 4,
    "answered_on_time": 3,
    "overdue": 1,
    "escalated": 2,
    "median_days": 7.0,  # days 2, 4, 10, 40
    "p90_days": 40.0,  # nearest rank: ceil(0.9 * 4) = 4th
    "on_time_ratio": 0.75,
    **NO_CORRECTIONS,
}


async def test_report_by_agency_for_a_month(may_2026, client, as_agency) -> None:
    resp = await client.get(
        "/v1/reports",
        params={"month": "2026-05", "group_by": "agency"},
        headers=as_agency("TT_HDND"),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["period"] == {"from": "2026-05-01", "to": "2026-05-31"}
    assert body["rows"] == [NN, XD, UNASSIGNED]
    assert body["total"] == TOTAL


async def test_report_by_locality_quarter_and_scope(may_2026, client, as_agency) -> None:
    sup = as_agency("TT_HDND")
    by_place = (
        await client.get(
            "/v1/reports", params={"month": "2026-05", "group_by": "locality"}, headers=sup
        )
    ).json()
    an_binh = next(r for r in by_place["rows"] if r["key"] == "xa-an-binh")
    assert an_binh["name"] == "Xã An Bình"
    assert (an_binh["received"], an_binh["merged"], an_binh["answered"]) == (5, 1, 3)
    quarter = (await client.get("/v1/reports", params={"quarter": "2026-Q2"}, headers=sup)).json()
    assert quarter["period"] == {"from": "2026-04-01", "to": "2026-06-30"}
    assert quarter["total"]["received"] == 9
    # A resolver's report covers only what it handled or submitted.
    own = (
        await client.get("/v1/reports", params={"month": "2026-05"}, headers=as_agency("SO_NN_MT"))
    ).json()
    assert own["rows"] == [NN]
    bad = await client.get("/v1/reports", params={"month": "2026-13"}, headers=sup)
    assert bad.status_code == 400
    assert bad.json()["error"] == "bad_period"
    both = await client.get(
        "/v1/reports", params={"month": "2026-05", "quarter": "2026-Q2"}, headers=sup
    )
    assert both.status_code == 400


async def test_report_csv_and_xlsx_read_back(may_2026, client, as_agency) -> None:
    sup = as_agency("TT_HDND")
    params = {"from": "2026-05-01", "to": "2026-05-31", "group_by": "agency"}
    resp = await client.get("/v1/reports", params=params | {"format": "csv"}, headers=sup)
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8"))))
    assert [r["key"] for r in rows] == ["SO_NN_MT", "SO_XAY_DUNG", "", "TOTAL"]
    xd = rows[1]
    assert (xd["received"], xd["answered"], xd["answered_on_time"], xd["overdue"]) == (
        "4",
        "3",
        "2",
        "1",
    )
    assert (xd["median_days"], xd["p90_days"]) == ("10.0", "40.0")
    assert rows[3]["received"] == "7"
    assert rows[3]["median_days"] == "7.0"

    resp = await client.get("/v1/reports", params=params | {"format": "xlsx"}, headers=sup)
    assert resp.status_code == 200
    ws = openpyxl.load_workbook(io.BytesIO(resp.content)).active
    assert ws["A1"].value == "TỔNG HỢP KẾT QUẢ GIẢI QUYẾT KIẾN NGHỊ CỬ TRI"
    assert ws["A2"].value == "Kỳ báo cáo: từ ngày 01/05/2026 đến ngày 31/05/2026"
    header = [c.value for c in ws[5]]
    assert header[:6] == [
        "STT",
        "Cơ quan giải quyết",
        "Tổng số tiếp nhận",
        "Gộp trùng",
        "Đã chuyển giao",
        "Đã trả lời",
    ]
    assert "Trả lời đúng hạn" in header
    assert "Quá hạn (hiện tại)" in header
    body = [[c.value for c in row] for row in ws.iter_rows(min_row=6, max_row=9)]
    assert body[0][:3] == [1, "Sở Nông nghiệp và Môi trường", 2]
    assert body[1] == [2, "Sở Xây dựng", 4, 0, 4, 3, 2, 1, 2, 10.0, 40.0, 0, 0, 0]
    assert body[2][:4] == [3, "Chưa giao", 1, 1]
    assert body[3] == [None, "Tổng cộng", 7, 1, 6, 4, 3, 1, 2, 7.0, 40.0, 0, 0, 0]
