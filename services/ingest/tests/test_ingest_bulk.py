"""Bulk import: JSON lines, CSV and XLSX with bad rows; valid rows kept; idempotent per row."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
from ingest_testkit import ReadTopic, key, running_ingest
from openpyxl import Workbook

from phoihop_common.net import free_port
from phoihop_common.pii import open_reporter
from phoihop_ingest.settings import IngestSettings
from phoihop_schemas.codec import decode
from phoihop_schemas.events import Received
from phoihop_schemas.topics import CANONICAL
from phoihop_testkit.plugin import fixed_pii_cipher

RECEIVED = CANONICAL["received"].name
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
TEXT = "Cử tri đề nghị nâng cấp trạm y tế xã, bổ sung bác sĩ và thuốc thiết yếu."


def row(**changes: Any) -> dict[str, Any]:
    base = {"kind": "kien_nghi", "channel": "tiep_xuc_cu_tri", "locality": "xa-hoa-lac"}
    return base | {"text": TEXT} | changes


def by_row(result: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {r["row"]: r for r in result["results"]}


async def test_jsonl_import_keeps_valid_rows_and_is_idempotent(
    ingest: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    lines = [
        json.dumps(row(source_ref="KN-1"), ensure_ascii=False),  # 1 ok
        "{broken",  # 2 bad json
        json.dumps(row(source_ref="KN-3", locality="xa-khong-co")),  # 3 unknown locality
        "",  # 4 blank: skipped
        json.dumps(row(source_ref="KN-5", kind="khieu_nai")),  # 5 reporter required
        json.dumps(  # 6 ok, flat reporter columns, extra keys ignored
            row(
                source_ref="KN-6",
                kind="to_cao",
                reporter_name="Phạm Thị D",
                reporter_phone="0911222333",
                id="D042",
            ),
            ensure_ascii=False,
        ),
        json.dumps(row(source_ref="KN-7", text="")),  # 7 empty text
        json.dumps(row(source_ref="KN-8", text="Một kiến nghị khác: sửa cầu treo bản Mới.")),
    ]
    payload = ("\n".join(lines) + "\n").encode()
    headers = key("UBMTTQ_TINH") | {"Content-Type": "application/x-ndjson"}
    resp = await ingest.post("/v1/recommendations/bulk", content=payload, headers=headers)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert (result["accepted"], result["rejected"]) == (3, 4)
    rows = by_row(result)
    assert rows[2]["error"] == "bad_json"
    assert rows[3]["error"] == "unknown_locality"
    assert rows[5]["error"] == "reporter_required"
    assert rows[7]["error"] == "empty_text"
    ids = {n: rows[n]["id"] for n in (1, 6, 8)}

    records = await read_topic(RECEIVED, count=3)
    assert sorted(r.key.decode() for r in records if r.key) == sorted(ids.values())
    events = {
        e.recommendation_id: e
        for r in records
        if isinstance(e := decode(value=r.value, headers=r.headers).data, Received)
    }
    sealed = events[ids[6]].reporter
    assert sealed is not None
    reporter = open_reporter(sealed, recommendation_id=ids[6], cipher=fixed_pii_cipher())
    assert reporter.name == "Phạm Thị D"
    assert events[ids[6]].submitted_by == "UBMTTQ_TINH"

    # The same file again: same ids, nothing new on the topic.
    again = await ingest.post("/v1/recommendations/bulk", content=payload, headers=headers)
    assert again.status_code == 200
    rows_again = by_row(again.json())
    assert {n: rows_again[n]["id"] for n in (1, 6, 8)} == ids
    assert all(rows_again[n].get("duplicate") for n in (1, 6, 8))
    assert len(await read_topic(RECEIVED, count=3)) == 3


async def test_csv_as_exported_by_a_spreadsheet(
    ingest: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    text = (
        "kind;channel;locality;text;submitted_at;source_ref;reporter_name;reporter_phone\r\n"
        'kien_nghi;tiep_xuc_cu_tri;xa-na-hang;"Cử tri đề nghị:\r\n1) làm đường; 2) ""kè"" suối";'
        "08/01/2026;CSV-1;;\r\n"
        "phan_anh;fax;xa-na-hang;Sai kênh;2026-01-08;CSV-2;;\r\n"
        f"to_cao;don_thu;xa-dong-tien;{TEXT};2026-01-09;CSV-3;Hoàng Văn E;0977000111\r\n"
        "\r\n"
    )
    payload = "\ufeff".encode() + text.encode()  # Excel's "CSV UTF-8" starts with a BOM
    headers = key("TT_HDND") | {"Content-Type": "text/csv; charset=utf-8"}
    resp = await ingest.post("/v1/recommendations/bulk", content=payload, headers=headers)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert (result["accepted"], result["rejected"]) == (2, 1)
    rows = by_row(result)
    assert rows[3]["error"] == "unknown_channel"
    records = await read_topic(RECEIVED, count=2)
    events = {
        e.source_ref: e
        for r in records
        if isinstance(e := decode(value=r.value, headers=r.headers).data, Received)
    }
    assert events["CSV-1"].text == 'Cử tri đề nghị:\r\n1) làm đường; 2) "kè" suối'
    assert events["CSV-1"].submitted_at == date(2026, 1, 8)
    assert events["CSV-3"].reporter is not None


async def test_xlsx_upload(ingest: httpx.AsyncClient, read_topic: ReadTopic) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Kind", "Channel", "Locality", "Text", "Submitted At", "Source Ref",
                  "Reporter Name", "Reporter Phone", "Note"])  # fmt: skip
    sheet.append(["kien_nghi", "tiep_xuc_cu_tri", "xa-phu-xuyen", TEXT, date(2026, 1, 10),
                  "X-1", None, None, "ghi chú"])  # fmt: skip
    sheet.append(["khieu_nai", "don_thu", "xa-phu-xuyen", TEXT, date(2026, 1, 10), "X-2",
                  "Đỗ Thị G", 912345678, None])  # fmt: skip
    sheet.append(["kien_nghi", "tiep_xuc_cu_tri", "nowhere", TEXT, None, "X-3"])
    sheet.append([None] * 6)
    sheet.append(["kien_nghi", "tiep_xuc_cu_tri", "xa-phu-xuyen", None, None, "X-5"])
    buffer = io.BytesIO()
    book.save(buffer)

    resp = await ingest.post(
        "/v1/recommendations/bulk",
        files={"file": ("phien-hop-thang-1.xlsx", buffer.getvalue(), XLSX)},
        headers=key("DOAN_DBQH"),
    )
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert (result["accepted"], result["rejected"]) == (2, 2)
    rows = by_row(result)
    assert rows[4]["error"] == "unknown_locality"
    assert rows[6]["error"] == "text_required"
    records = await read_topic(RECEIVED, count=2)
    events = [decode(value=r.value, headers=r.headers).data for r in records]
    cipher = fixed_pii_cipher()
    phones = {
        e.source_ref: open_reporter(
            e.reporter, recommendation_id=e.recommendation_id, cipher=cipher
        ).phone
        for e in events
        if isinstance(e, Received) and e.reporter
    }
    assert phones == {"X-2": "912345678"}


async def test_bulk_refusals(ingest: httpx.AsyncClient) -> None:
    no_type = await ingest.post(
        "/v1/recommendations/bulk", content=b"a,b\n", headers=key("TT_HDND")
    )
    assert no_type.status_code == 415
    assert no_type.json()["error"] == "unsupported_format"
    no_columns = await ingest.post(
        "/v1/recommendations/bulk?format=csv", content=b"kind,text\nx,y\n", headers=key("TT_HDND")
    )
    assert no_columns.status_code == 422
    assert no_columns.json()["error"] == "missing_columns"
    not_xlsx = await ingest.post(
        "/v1/recommendations/bulk?format=xlsx", content=b"not a zip", headers=key("TT_HDND")
    )
    assert not_xlsx.status_code == 422
    assert not_xlsx.json()["error"] == "invalid_xlsx"
    anonymous = await ingest.post("/v1/recommendations/bulk?format=jsonl", content=b"{}")
    assert anonymous.status_code == 401


async def test_bulk_with_broker_down_answers_503_with_row_results(
    make_settings: Callable[..., IngestSettings],
) -> None:
    settings = make_settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    payload = "\n".join(
        [json.dumps(row(source_ref="D-1")), json.dumps(row(locality="nowhere"))]
    ).encode()
    async with running_ingest(settings, ready=False) as client:
        resp = await client.post(
            "/v1/recommendations/bulk?format=jsonl", content=payload, headers=key("TT_HDND")
        )
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "7"
    result = resp.json()
    assert result["error"] == "broker_unavailable"
    assert (result["accepted"], result["rejected"]) == (0, 2)
    assert by_row(result)[1]["error"] == "broker_unavailable"
    assert by_row(result)[2]["error"] == "unknown_locality"


def _rezipped(xlsx: bytes, *, replace: dict[str, bytes]) -> bytes:
    """The workbook with some of its parts replaced (b"" drops the part)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = replace.get(name, src.read(name))
            if data:
                dst.writestr(name, data)
    return out.getvalue()


async def test_broken_xlsx_is_422_invalid_xlsx(ingest: httpx.AsyncClient) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["kind", "channel", "locality", "text"])
    sheet.append(["kien_nghi", "tiep_xuc_cu_tri", "xa-phu-xuyen", TEXT])
    buffer = io.BytesIO()
    book.save(buffer)
    good = buffer.getvalue()
    broken = {
        "content types": _rezipped(good, replace={"[Content_Types].xml": b"<Types"}),
        "no content types": _rezipped(good, replace={"[Content_Types].xml": b""}),
        "sheet": _rezipped(good, replace={"xl/worksheets/sheet1.xml": b"<worksheet><row"}),
        "relations": _rezipped(good, replace={"xl/_rels/workbook.xml.rels": b"<x/>"}),
        "truncated": good[: len(good) // 2],
    }
    for name, body in broken.items():
        resp = await ingest.post(
            "/v1/recommendations/bulk?format=xlsx", content=body, headers=key("TT_HDND")
        )
        assert resp.status_code == 422, (name, resp.text)
        assert resp.json()["error"] == "invalid_xlsx", name
        assert resp.json()["detail"], name


CSV_HEADER = "kind,channel,locality,text\n"
CSV_LINE = f"kien_nghi,tiep_xuc_cu_tri,xa-hoa-lac,{TEXT}\n"


async def test_csv_quote_left_open_is_an_error_in_linear_time(ingest: httpx.AsyncClient) -> None:
    headers = key("TT_HDND") | {"Content-Type": "text/csv"}
    # Near the end: the rest of the file is one unclosed field, that row's error.
    near_end = CSV_HEADER + CSV_LINE.replace("xa-hoa-lac", "nowhere") * 3 + '"' + CSV_LINE * 5
    resp = await ingest.post("/v1/recommendations/bulk", content=near_end.encode(), headers=headers)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["accepted"], resp.json()["rejected"]) == (0, 4)
    rows = by_row(resp.json())
    assert rows[5] == {"row": 5, "error": "bad_csv", "detail": "a quoted field is never closed"}

    # At the start of 16k lines (1.6 MB): refused once the record passes its limit (the
    # reader never re-scans the buffer; it runs in a worker thread, off the event loop).
    at_start = (CSV_HEADER + '"' + CSV_LINE * 16_000).encode()
    assert len(at_start) > 1_600_000
    resp = await ingest.post("/v1/recommendations/bulk", content=at_start, headers=headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "csv_record_too_long"
    assert "row 2" in resp.json()["detail"]
    assert (await ingest.get("/healthz")).status_code == 200


async def test_csv_huge_line_and_field_are_refused(ingest: httpx.AsyncClient) -> None:
    headers = key("TT_HDND") | {"Content-Type": "text/csv"}
    huge_line = CSV_HEADER + CSV_LINE + "x" * 3_000_000 + "\n" + CSV_LINE
    resp = await ingest.post(
        "/v1/recommendations/bulk", content=huge_line.encode(), headers=headers
    )
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["error"] == "csv_record_too_long"
    assert body["accepted"] == 1  # the row before stands; the import stopped at row 3
    huge_field = CSV_HEADER + f'kien_nghi,tiep_xuc_cu_tri,xa-hoa-lac,"{"y" * 200_000}"\n'
    resp = await ingest.post(
        "/v1/recommendations/bulk", content=huge_field.encode(), headers=headers
    )
    assert resp.status_code == 422
    assert resp.json()["error"] == "csv_record_too_long"
    not_utf8 = CSV_HEADER.encode() + b"kien_nghi,tiep_xuc_cu_tri,xa-hoa-lac,\xff\xfe\n"
    resp = await ingest.post("/v1/recommendations/bulk", content=not_utf8, headers=headers)
    assert resp.status_code == 422
    assert resp.json()["error"] == "bad_encoding"
