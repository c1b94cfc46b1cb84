"""The edge decides once: hostile text, dates, JSON and media types are refused with a reason."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from ingest_testkit import ReadTopic, key

from phoihop_schemas.codec import decode
from phoihop_schemas.events import Received
from phoihop_schemas.topics import CANONICAL

RECEIVED = CANONICAL["received"].name
TEXT = "Cử tri thôn 3 đề nghị sửa chữa đường liên thôn bị xuống cấp"
JSON = {"Content-Type": "application/json"}
DEEP = b"[" * 50_000
HUGE_INT = b"1" * 5_000


def body(**changes: Any) -> dict[str, Any]:
    """A valid submission with some fields changed."""
    return {
        "kind": "kien_nghi",
        "channel": "tiep_xuc_cu_tri",
        "locality": "xa-an-binh",
        "text": TEXT,
        "submitted_at": "2026-01-08",
    } | changes


def raw(**changes: Any) -> bytes:
    """The submission as ASCII JSON: a lone surrogate travels as a `\\ud800` escape."""
    return json.dumps(body(**changes)).encode()


async def rejected_count(client: httpx.AsyncClient) -> float:
    """The rejected-submissions counter (the registry is shared by every test of the process)."""
    sample = 'phoihop_ingest_submissions_total{outcome="rejected"} '
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(sample):
            return float(line.removeprefix(sample))
    return 0.0


REFUSED: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("lone surrogate", raw(text="abc \ud800 def"), JSON, 422, "invalid_text"),
    ("NUL", raw(text="abc \x00 def"), JSON, 422, "invalid_text"),
    ("ESC", raw(text="\x1b[31m đỏ"), JSON, 422, "invalid_text"),
    ("C1 control", raw(text="abc \x85 def"), JSON, 422, "invalid_text"),
    ("NUL in reporter", raw(reporter={"name": "A\x00"}), JSON, 422, "invalid_text"),
    ("NUL in source_ref", raw(source_ref="KN\x00-1"), JSON, 422, "invalid_text"),
    ("year 9999", raw(submitted_at="9999-01-01"), JSON, 422, "invalid_submitted_at"),
    ("year 0001", raw(submitted_at="0001-01-01"), JSON, 422, "invalid_submitted_at"),
    ("far future", raw(submitted_at="2999-01-01T00:00:00Z"), JSON, 422, "invalid_submitted_at"),
    ("text/plain", raw(), {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ("form", raw(), {"Content-Type": "application/x-www-form-urlencoded"}, 415, ""),
    ("deep nesting", DEEP, JSON, 422, "json_too_deep"),
    ("deep and closed", DEEP + b"]" * 50_000, JSON, 422, "json_too_deep"),
    ("5,000 digits", b'{"text": ' + HUGE_INT + b"}", JSON, 422, "json_number_too_large"),
    ("bare 5,000 digits", HUGE_INT, JSON, 422, "json_number_too_large"),
    ("not UTF-8", b'{"text": "\xff"}', JSON, 400, "invalid_json"),
    ("NaN", b'{"text": NaN}', JSON, 400, "invalid_json"),
    ("surrogate key", json.dumps(body() | {"\ud800": 1}).encode(), JSON, 422, "invalid_text"),
    ("unknown key", json.dumps(body() | {"x\x00": 1}).encode(), JSON, 422, "unknown_field"),
]


async def test_hostile_submissions_are_refused_and_a_normal_one_right_after_is_received(
    ingest: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    rejected_before = await rejected_count(ingest)
    for name, content, headers, status, reason in REFUSED:
        resp = await ingest.post(
            "/v1/recommendations", content=content, headers=key("UBMTTQ_TINH") | headers
        )
        assert resp.status_code == status, (name, resp.text)
        error = resp.json()
        assert error["error"] == (reason or "unsupported_media_type"), name
        assert error["detail"], name
    # JSON media types, with parameters, and no Content-Type at all are accepted
    accepted = []
    for i, headers in enumerate(
        [
            {"Content-Type": "application/json; charset=utf-8"},
            {"Content-Type": "application/vnd.phoihop+json"},
            {},
        ]
    ):
        resp = await ingest.post(
            "/v1/recommendations",
            content=raw(source_ref=f"edge-{i}"),
            headers=key("UBMTTQ_TINH") | headers,
        )
        assert resp.status_code == 202, resp.text
        accepted.append(resp.json()["id"])

    records = await read_topic(RECEIVED, count=len(accepted))
    assert sorted(r.key.decode() for r in records if r.key) == sorted(accepted)
    for record in records:
        event = decode(value=record.value, headers=record.headers).data
        assert isinstance(event, Received)
        assert event.text == TEXT
    assert await rejected_count(ingest) - rejected_before == len(REFUSED)


async def test_response_routes_check_media_type_json_and_text(ingest: httpx.AsyncClient) -> None:
    url = f"/v1/recommendations/{uuid.uuid4()}/decline"
    headers = key("SO_XAY_DUNG")
    plain = await ingest.post(
        url, content=b'{"reason": "x"}', headers=headers | {"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415, plain.text
    assert plain.json()["error"] == "unsupported_media_type"
    for content, status, reason in [
        (json.dumps({"reason": "không \x00 thuộc thẩm quyền"}).encode(), 422, "invalid_text"),
        (json.dumps({"reason": "abc \ud800"}).encode(), 422, "invalid_text"),
        (DEEP, 422, "json_too_deep"),
        (b'{"reason": ' + HUGE_INT + b"}", 422, "json_number_too_large"),
        (b"{", 400, "invalid_json"),
    ]:
        resp = await ingest.post(url, content=content, headers=headers | JSON)
        assert (resp.status_code, resp.json()["error"]) == (status, reason), resp.text


async def test_bulk_jsonl_hostile_lines_are_row_errors(
    ingest: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    lines = [
        raw(source_ref="B-1"),  # 1 ok
        DEEP,  # 2
        b'{"text": ' + HUGE_INT + b"}",  # 3
        raw(source_ref="B-4", text="abc \ud800 def"),  # 4
        raw(source_ref="B-5", text="abc \x00 def"),  # 5
        raw(source_ref="B-6", text="\x1b[2J xoá màn hình"),  # 6
        raw(source_ref="B-7", submitted_at="9999-01-01"),  # 7
        raw(source_ref="B-8", submitted_at="0001-01-01"),  # 8
        b"[NaN]",  # 9
        raw(source_ref="B-10"),  # 10 ok
    ]
    payload = b"\n".join(lines) + b"\n"
    headers = key("UBMTTQ_TINH") | {"Content-Type": "application/x-ndjson"}
    resp = await ingest.post("/v1/recommendations/bulk", content=payload, headers=headers)
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert (result["accepted"], result["rejected"]) == (2, 8)
    errors = {r["row"]: r.get("error") for r in result["results"]}
    assert errors == {
        1: None,
        2: "json_too_deep",
        3: "json_number_too_large",
        4: "invalid_text",
        5: "invalid_text",
        6: "invalid_text",
        7: "invalid_submitted_at",
        8: "invalid_submitted_at",
        9: "bad_json",
        10: None,
    }
    records = await read_topic(RECEIVED, count=2)
    assert len(records) == 2
