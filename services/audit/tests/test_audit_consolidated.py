"""The consolidated list (tổng hợp ý kiến, kiến nghị cử tri) on a batch of real events.

May 2026, local time UTC+7. A is a road concern raised in Xã An Bình, assigned to Sở Xây
dựng and answered; B (Xã Tân Phú, sent by the commune committee) and C (Xã An Bình again)
repeat it and are merged into A: one row, two localities, three raisings, the answer once.
D is an environment concern of Xã Tân Phú (Sở Nông nghiệp và Môi trường, open). E is a
denunciation (to_cao) with a reporter, assigned to the provincial inspectorate and overdue.
G came through the Front's compilation (ubmttq_tong_hop). F arrives in June (outside).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import openpyxl
import pytest
from asgi_lifespan import LifespanManager

from phoihop_audit.app import create_app
from phoihop_audit.consolidated import HEADER_ROW, HEADERS, TITLE, Rec, root_of
from phoihop_audit.settings import AuditSettings
from phoihop_schemas.events import Channel, Reporter

ROUTE = "/v1/reports/consolidated"
MAY = {"from": "2026-05-01", "to": "2026-05-31"}
FUTURE = datetime(2030, 1, 1, tzinfo=UTC)
TEXT_A = "Đề nghị sửa chữa đường ĐT.753 đoạn qua xã An Bình bị xuống cấp, nhiều ổ gà"
TEXT_B = "cu tri xa tan phu de nghi sua duong DT753 doan qua xa vi xuong cap"
TEXT_C = "Cử tri thôn 2 tiếp tục kiến nghị sửa đường ĐT.753 qua xã An Bình"
TEXT_D = "Đề nghị xử lý cơ sở chăn nuôi gây ô nhiễm nguồn nước tại xã Tân Phú"
TEXT_E = "Tố cáo cán bộ địa chính xã Hòa Lạc nhận tiền khi làm thủ tục cấp giấy chứng nhận"
TEXT_G = "Đề nghị đầu tư trang thiết bị cho trạm y tế xã"
ANSWER = "Sở đã bố trí kinh phí sửa chữa trong quý III"  # conftest's answered text
REPORTER = Reporter(name="Lê Thị Tố Giác", phone="0912 345 678", address="Thôn 3, xã Hòa Lạc")
REPORTER_BITS = ("reporter", "Lê Thị Tố Giác", "0912 345 678", "Thôn 3, xã Hòa Lạc")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
async def http(settings: AuditSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The audit API as the service builds it."""
    app = create_app(settings, consume=False)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://audit"
        ) as client,
    ):
        yield client


@pytest.fixture
def batch(store, ev, new_id) -> dict[str, str]:
    """The events of the batch, stored as the consumer stores them."""
    r = {k: new_id() for k in "ABCDEFG"}
    xd = {"agency": "SO_XAY_DUNG", "category": "GIAO_THONG"}
    store(
        [
            ev.received(r["A"], at=utc(2026, 5, 4, 2), text=TEXT_A),
            ev.assigned(r["A"], at=utc(2026, 5, 4, 3), deadline=utc(2026, 6, 3, 9), **xd),
            ev.received(
                r["B"],
                at=utc(2026, 5, 6, 2),
                text=TEXT_B,
                locality="xa-tan-phu",
                submitted_by="UBND_XA_XA_TAN_PHU",
            ),
            ev.merged(r["B"], into=r["A"], submitted_by="UBND_XA_XA_TAN_PHU"),
            ev.received(r["C"], at=utc(2026, 5, 7, 2), text=TEXT_C),
            ev.merged(r["C"], into=r["A"], submitted_by="UBMTTQ_TINH"),
            ev.answered(r["A"], at=utc(2026, 5, 20, 2)),
            ev.received(r["D"], at=utc(2026, 5, 8, 2), text=TEXT_D, locality="xa-tan-phu"),
            ev.assigned(
                r["D"],
                agency="SO_NN_MT",
                category="MOI_TRUONG",
                locality="xa-tan-phu",
                at=utc(2026, 5, 8, 3),
                deadline=FUTURE,
            ),
            ev.received(
                r["E"],
                at=utc(2026, 5, 9, 2),
                kind="to_cao",
                text=TEXT_E,
                locality="xa-hoa-lac",
                reporter=REPORTER,
            ),
            ev.assigned(
                r["E"],
                agency="THANH_TRA_TINH",
                category="DAT_DAI",
                kind="to_cao",
                locality="xa-hoa-lac",
                at=utc(2026, 5, 9, 3),
                deadline=utc(2026, 5, 20, 3),
            ),
            ev.received(r["F"], at=utc(2026, 6, 2, 2), text=TEXT_A),
            ev.merged(r["F"], into=r["A"], submitted_by="UBMTTQ_TINH"),
            ev.received(r["G"], at=utc(2026, 5, 10, 2), text=TEXT_G).model_copy(
                update={"channel": Channel.UBMTTQ_TONG_HOP}
            ),
            ev.assigned(
                r["G"], agency="SO_Y_TE", category="Y_TE", at=utc(2026, 5, 10, 3), deadline=FUTURE
            ),
        ]
    )
    return r


def _no_reporter(text: str) -> None:
    for bit in REPORTER_BITS:
        assert bit not in text


def _by_case(body: dict) -> dict[str, dict]:
    return {row["case_id"]: row for row in body["rows"]}


async def test_one_row_per_concern_with_every_source_and_the_answer_once(
    batch, http, as_agency
) -> None:
    resp = await http.get(ROUTE, params=MAY, headers=as_agency("TT_HDND"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["period"] == {"from": "2026-05-01", "to": "2026-05-31"}
    assert body["total"] == {"concerns": 4, "raised": 6}  # A+B+C, D, E, G; F is June's
    # Filed by field: Giao thông, Tài nguyên môi trường, Y tế, Đất đai (code-point order).
    assert [r["case_id"] for r in body["rows"]] == [batch[k] for k in "ADGE"]
    assert [r["stt"] for r in body["rows"]] == [1, 2, 3, 4]
    rows = _by_case(body)

    a = rows[batch["A"]]
    assert a["text"] == TEXT_A
    assert a["count"] == 3
    assert a["localities"] == [
        {"code": "xa-an-binh", "name": "Xã An Bình", "count": 2},
        {"code": "xa-tan-phu", "name": "Xã Tân Phú", "count": 1},
    ]
    assert a["submitters"] == [
        {"code": "UBMTTQ_TINH", "name": "Ủy ban Mặt trận Tổ quốc Việt Nam tỉnh", "count": 2},
        {"code": "UBND_XA_XA_TAN_PHU", "name": "Ủy ban nhân dân Xã Tân Phú", "count": 1},
    ]
    assert a["channels"] == [{"code": "tiep_xuc_cu_tri", "name": "Tiếp xúc cử tri", "count": 3}]
    assert sorted(a["recommendation_ids"]) == sorted(batch[k] for k in "ABC")
    assert (a["category"], a["category_name"]) == ("GIAO_THONG", "Giao thông")
    assert (a["agency"], a["agency_name"]) == ("SO_XAY_DUNG", "Sở Xây dựng")
    assert (a["deadline"], a["deadline_date"]) == ("2026-06-03T09:00:00Z", "2026-06-03")
    assert (a["status"], a["status_name"], a["overdue"]) == ("answered", "Đã trả lời", False)
    assert a["answer"]["text"] == ANSWER
    assert a["answer"]["answered_date"] == "2026-05-20"
    # The answer goes to every source but is shown once; B and C are not rows of their own.
    assert json.dumps(body, ensure_ascii=False).count(ANSWER) == 1
    assert batch["B"] not in rows
    assert batch["C"] not in rows

    d = rows[batch["D"]]
    assert (d["count"], d["agency"], d["status"], d["answer"]) == (1, "SO_NN_MT", "assigned", None)
    e = rows[batch["E"]]
    assert (e["kind"], e["agency_name"], e["category_name"]) == (
        "to_cao",
        "Thanh tra tỉnh",
        "Đất đai",
    )
    assert (e["overdue"], e["status_name"]) == (True, "Đã chuyển giao (quá hạn)")
    _no_reporter(resp.text)


async def test_no_reporter_even_for_the_body_cleared_to_read_it(batch, http, as_agency) -> None:
    sup = as_agency("THANH_TRA_TINH")  # settles the to_cao: cleared for its reporter
    status = await http.get(f"/v1/recommendations/{batch['E']}", headers=sup)
    assert status.json()["reporter"]["name"] == REPORTER.name  # the fixture does hold one
    for fmt in ("json", "csv"):
        resp = await http.get(ROUTE, params=MAY | {"format": fmt}, headers=sup)
        assert resp.status_code == 200
        assert TEXT_E.split(",")[0] in resp.content.decode("utf-8")
        _no_reporter(resp.content.decode("utf-8"))
    xlsx = await http.get(ROUTE, params=MAY | {"format": "xlsx"}, headers=sup)
    ws = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    cells = " ".join(str(c.value) for row in ws.iter_rows() for c in row if c.value is not None)
    assert TEXT_E in cells
    _no_reporter(cells)


async def test_channel_and_submitter_batches(batch, http, as_agency) -> None:
    sup = as_agency("TT_HDND")
    front = (await http.get(ROUTE, params=MAY | {"channel": "ubmttq_tong_hop"}, headers=sup)).json()
    assert [r["case_id"] for r in front["rows"]] == [batch["G"]]
    assert front["channel_name"] == "Ủy ban MTTQ tổng hợp"
    # The commune committee's own batch: the concern it raised, counted for it alone.
    commune = (
        await http.get(ROUTE, params=MAY | {"submitted_by": "UBND_XA_XA_TAN_PHU"}, headers=sup)
    ).json()
    assert [r["case_id"] for r in commune["rows"]] == [batch["A"]]
    row = commune["rows"][0]
    assert (row["count"], row["text"], row["agency"]) == (1, TEXT_A, "SO_XAY_DUNG")
    assert row["localities"] == [{"code": "xa-tan-phu", "name": "Xã Tân Phú", "count": 1}]
    # June: F alone, counted under the case it was merged into (received in May).
    june = (await http.get(ROUTE, params={"month": "2026-06"}, headers=sup)).json()
    assert [(r["case_id"], r["count"]) for r in june["rows"]] == [(batch["A"], 1)]
    unknown = await http.get(ROUTE, params=MAY | {"channel": "fax"}, headers=sup)
    assert unknown.status_code == 422


async def test_csv(batch, http, as_agency) -> None:
    resp = await http.get(ROUTE, params=MAY | {"format": "csv"}, headers=as_agency("TT_HDND"))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    assert "tong-hop-kien-nghi-2026-05-01-2026-05-31.csv" in resp.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.content.decode("utf-8"))))
    assert [r["case_id"] for r in rows] == [batch[k] for k in "ADGE"]
    a = rows[0]
    assert (a["stt"], a["count"], a["text"]) == ("1", "3", TEXT_A)
    assert a["locality_codes"] == "xa-an-binh:2;xa-tan-phu:1"
    assert a["localities"] == "Xã An Bình (2); Xã Tân Phú (1)"
    assert a["submitter_codes"] == "UBMTTQ_TINH:2;UBND_XA_XA_TAN_PHU:1"
    assert (a["agency"], a["deadline_date"], a["status"]) == (
        "SO_XAY_DUNG",
        "2026-06-03",
        "answered",
    )
    assert (a["answer_text"], a["answer_date"]) == (ANSWER, "2026-05-20")
    assert rows[1]["answer_text"] == ""
    assert resp.content.decode("utf-8").count(ANSWER) == 1


async def test_xlsx_in_the_vietnamese_layout(batch, http, as_agency) -> None:
    resp = await http.get(ROUTE, params=MAY | {"format": "xlsx"}, headers=as_agency("TT_HDND"))
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    ws = openpyxl.load_workbook(io.BytesIO(resp.content)).active
    assert ws["A1"].value == TITLE == "TỔNG HỢP Ý KIẾN, KIẾN NGHỊ CỬ TRI"
    assert ws["A2"].value == "Kỳ tổng hợp: từ ngày 01/05/2026 đến ngày 31/05/2026"
    assert ws["A3"].value == "Kênh: tất cả; Đơn vị gửi: tất cả"
    assert ws["A4"].value == "Tổng số: 4 nội dung kiến nghị (6 lượt ý kiến, kiến nghị)"
    header = [c.value for c in ws[HEADER_ROW]]
    assert header == list(HEADERS)
    assert header == [
        "STT",
        "Nội dung kiến nghị",
        "Địa phương / nguồn (số lượt)",
        "Lĩnh vực",
        "Cơ quan giải quyết",
        "Hạn giải quyết",
        "Trạng thái",
        "Kết quả trả lời",
    ]
    body = [[c.value for c in row] for row in ws.iter_rows(min_row=HEADER_ROW + 1)]
    assert len(body) == 4
    merged = body[0]
    assert merged[:2] == [1, TEXT_A]
    assert merged[2].splitlines() == [
        "Xã An Bình (2); Xã Tân Phú (1)",
        "Nguồn: Ủy ban Mặt trận Tổ quốc Việt Nam tỉnh (2); Ủy ban nhân dân Xã Tân Phú (1)",
    ]
    assert merged[3:7] == ["Giao thông", "Sở Xây dựng", "03/06/2026", "Đã trả lời"]
    assert merged[7] == f"{ANSWER}\n(Sở Xây dựng, ngày 20/05/2026)"
    assert body[1][:7] == [
        2,
        TEXT_D,
        "Xã Tân Phú (1)\nNguồn: Ủy ban Mặt trận Tổ quốc Việt Nam tỉnh (1)",
        "Tài nguyên, môi trường",
        "Sở Nông nghiệp và Môi trường",
        "01/01/2030",
        "Đã chuyển giao",
    ]
    assert body[1][7] is None
    assert body[3][3:7] == ["Đất đai", "Thanh tra tỉnh", "20/05/2026", "Đã chuyển giao (quá hạn)"]
    cells = [str(v) for row in body for v in row if v is not None]
    assert sum(ANSWER in c for c in cells) == 1


async def test_access_like_the_period_reports(batch, http, as_agency) -> None:
    # The competent body of the merged concern: its row, every source of it, and the ids of
    # only the recommendations it may read itself.
    xd = (await http.get(ROUTE, params=MAY, headers=as_agency("SO_XAY_DUNG"))).json()
    assert [r["case_id"] for r in xd["rows"]] == [batch["A"]]
    (row,) = xd["rows"]
    assert (row["count"], row["text"], row["answer"]["text"]) == (3, TEXT_A, ANSWER)
    assert row["recommendation_ids"] == [batch["A"]]
    # Another resolver: only its own case.
    nn = (await http.get(ROUTE, params=MAY, headers=as_agency("SO_NN_MT"))).json()
    assert [r["case_id"] for r in nn["rows"]] == [batch["D"]]
    assert nn["total"] == {"concerns": 1, "raised": 1}
    # A source: a merge never opens the case. The commune sees its own recommendation and
    # what its status says of the case (body, deadline, status, answer), not the case's
    # text, field or other sources.
    commune = (await http.get(ROUTE, params=MAY, headers=as_agency("UBND_XA_XA_TAN_PHU"))).json()
    (own,) = commune["rows"]
    assert own["case_id"] == batch["A"]
    assert (own["count"], own["text"], own["recommendation_ids"]) == (1, TEXT_B, [batch["B"]])
    assert own["localities"] == [{"code": "xa-tan-phu", "name": "Xã Tân Phú", "count": 1}]
    assert (own["category"], own["agency"], own["status"]) == (None, "SO_XAY_DUNG", "answered")
    assert own["answer"]["text"] == ANSWER
    assert TEXT_A not in json.dumps(commune, ensure_ascii=False)
    # An agency with nothing in the batch: an empty list.
    empty = (await http.get(ROUTE, params=MAY, headers=as_agency("SO_TU_PHAP"))).json()
    assert (empty["rows"], empty["total"]) == ([], {"concerns": 0, "raised": 0})
    # No key, an unknown key, a bad period.
    missing = await http.get(ROUTE, params=MAY)
    assert (missing.status_code, missing.json()["error"]) == (401, "missing_api_key")
    wrong = await http.get(ROUTE, params=MAY, headers={"X-API-Key": "nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_api_key")
    bad = await http.get(
        ROUTE, params={"from": "2026-05-31", "to": "2026-05-01"}, headers=as_agency("TT_HDND")
    )
    assert (bad.status_code, bad.json()["error"]) == (400, "bad_period")


async def test_documented_in_openapi(http) -> None:
    doc = (await http.get("/openapi.json")).json()
    op = doc["paths"][ROUTE]["get"]
    assert op["security"]
    assert {"400", "401", "422"} <= set(op["responses"])
    assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody"
    )
    content = op["responses"]["200"]["content"]
    assert {"application/json", "text/csv"} <= set(content)
    assert {p["name"] for p in op["parameters"]} >= {"from", "to", "channel", "submitted_by"}


def _rec(rec_id: str, into: str | None = None) -> Rec:
    return Rec(
        id=rec_id,
        status="merged" if into else "assigned",
        kind="kien_nghi",
        channel="tiep_xuc_cu_tri",
        locality=None,
        category=None,
        level=None,
        agency=None,
        submitted_by=None,
        text=None,
        received_at=None,
        deadline=None,
        duplicate_of=into,
        see_status=True,
        see_text=True,
        see_answers=True,
    )


def test_root_of_follows_chains_and_stops_at_cycles() -> None:
    recs = {r.id: r for r in (_rec("a"), _rec("b", "a"), _rec("c", "b"), _rec("x", "y"))}
    assert [root_of(recs[k], recs) for k in "abc"] == ["a", "a", "a"]
    assert root_of(recs["x"], recs) == "y"  # merged into a case not held: counted under it
    loop = {"p": _rec("p", "q"), "q": _rec("q", "p")}
    assert root_of(loop["p"], loop) == "q"
