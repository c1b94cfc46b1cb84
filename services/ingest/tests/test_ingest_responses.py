"""Responses: authorization through a fake audit server (real HTTP on loopback), real broker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiohttp import web
from ingest_testkit import ReadTopic, key, running_ingest

from phoihop_common.net import free_port
from phoihop_ingest.settings import IngestSettings
from phoihop_schemas.codec import decode
from phoihop_schemas.events import Response, ResponseAction
from phoihop_schemas.topics import INBOUND_RESPONSES

ASSIGNED = str(uuid.uuid4())
UNKNOWN = str(uuid.uuid4())


@dataclass
class FakeAudit:
    """Answers `GET /v1/recommendations/{id}` from a dict; records the keys it was given."""

    statuses: dict[str, dict[str, Any]]
    url: str = ""
    seen_keys: list[str] = field(default_factory=list)

    async def status(self, request: web.Request) -> web.Response:
        self.seen_keys.append(request.headers.get("X-API-Key", ""))
        found = self.statuses.get(request.match_info["rec_id"])
        if found is None:
            return web.json_response({"error": "unknown_recommendation"}, status=404)
        return web.json_response(found)


@pytest.fixture
async def audit() -> AsyncIterator[FakeAudit]:
    fake = FakeAudit(
        statuses={
            ASSIGNED: {
                "id": ASSIGNED,
                "status": "assigned",
                "kind": "kien_nghi",
                "category": "GIAO_THONG",
                "level": "tinh",
                "agency": "SO_XAY_DUNG",
                "deadline": "2026-02-07T00:00:00+07:00",
                "duplicate_of": None,
                "sequence": 2,
            }
        }
    )
    app = web.Application()
    app.router.add_get("/v1/recommendations/{rec_id}", fake.status)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(
    kafka_bootstrap: str, audit: FakeAudit, make_settings: Callable[..., IngestSettings]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(kafka_bootstrap=kafka_bootstrap, audit_url=audit.url)
    async with running_ingest(settings) as c:
        yield c


async def test_assignee_answers_and_response_reaches_the_topic(
    client: httpx.AsyncClient, audit: FakeAudit, read_topic: ReadTopic
) -> None:
    resp = await client.post(
        f"/v1/recommendations/{ASSIGNED}/answer",
        json={"text": "Sở Xây dựng đã bố trí vốn sửa chữa tuyến đường trong quý II."},
        headers=key("SO_XAY_DUNG"),
    )
    assert resp.status_code == 202, resp.text
    response_id = resp.json()["response_id"]
    assert audit.seen_keys == ["dev-SO_XAY_DUNG"]  # the caller's own key was forwarded

    [record] = await read_topic(INBOUND_RESPONSES.name)
    assert record.key == ASSIGNED.encode()
    envelope = decode(value=record.value, headers=record.headers, key=record.key)
    assert envelope.id == response_id
    message = envelope.data
    assert isinstance(message, Response)
    assert message.action is ResponseAction.ANSWER
    assert message.agency == "SO_XAY_DUNG"
    assert message.recommendation_id == ASSIGNED
    assert message.text is not None
    assert message.text.startswith("Sở Xây dựng")


async def test_authorization_and_validation(
    client: httpx.AsyncClient, read_topic: ReadTopic
) -> None:
    cases: list[tuple[str, str, dict[str, Any] | None, str, int, str | None]] = [
        (ASSIGNED, "answer", {"text": "Trả lời"}, "SO_Y_TE", 403, "not_assignee"),
        (ASSIGNED, "accept", {}, "SO_Y_TE", 403, "not_assignee"),
        (UNKNOWN, "answer", {"text": "Trả lời"}, "SO_XAY_DUNG", 404, "unknown_recommendation"),
        ("not-a-uuid", "answer", {"text": "x"}, "SO_XAY_DUNG", 404, "unknown_recommendation"),
        (ASSIGNED, "answer", {"text": ""}, "SO_XAY_DUNG", 422, "empty_text"),
        (ASSIGNED, "answer", {}, "SO_XAY_DUNG", 422, "text_required"),
        (ASSIGNED, "decline", {}, "SO_XAY_DUNG", 422, "reason_required"),
        (
            ASSIGNED,
            "classify",
            {"category": "GIAO_THONG", "level": "tinh"},
            "SO_XAY_DUNG",
            403,
            "forbidden_role",
        ),
        (
            ASSIGNED,
            "classify",
            {"category": "NOPE", "level": "tinh"},
            "TT_HDND",
            422,
            "unknown_category",
        ),
        (
            ASSIGNED,
            "classify",
            {"category": "GIAO_THONG", "level": "huyen"},
            "TT_HDND",
            422,
            "unknown_level",
        ),
        (ASSIGNED, "close", {}, "SO_XAY_DUNG", 403, "forbidden_role"),
        (ASSIGNED, "reopen", {"reason": "Chưa thỏa đáng"}, "SO_Y_TE", 403, "forbidden_role"),
        # allowed: the assignee accepts, declines, asks for more time; triage classifies;
        # a supervisor closes and reopens
        (ASSIGNED, "accept", None, "SO_XAY_DUNG", 202, None),
        (ASSIGNED, "decline", {"reason": "Không thuộc thẩm quyền"}, "SO_XAY_DUNG", 202, None),
        (ASSIGNED, "extension", {"reason": "Vụ việc phức tạp"}, "SO_XAY_DUNG", 202, None),
        (ASSIGNED, "classify", {"category": "GIAO_THONG", "level": "xa"}, "TT_HDND", 202, None),
        (ASSIGNED, "close", {"reason": "Đã giải quyết"}, "UBMTTQ_TINH", 202, None),
        (ASSIGNED, "reopen", {"reason": "Cử tri chưa đồng ý"}, "TT_HDND", 202, None),
    ]
    for rec_id, segment, payload, agency, status, reason in cases:
        resp = await client.post(
            f"/v1/recommendations/{rec_id}/{segment}", json=payload, headers=key(agency)
        )
        assert resp.status_code == status, (segment, agency, resp.text)
        if reason is not None:
            assert resp.json()["error"] == reason, resp.text
    unauthenticated = await client.post(f"/v1/recommendations/{ASSIGNED}/accept", json={})
    assert unauthenticated.status_code == 401

    records = await read_topic(INBOUND_RESPONSES.name, count=6)
    messages = [decode(value=r.value, headers=r.headers).data for r in records]
    actions = sorted(m.action for m in messages if isinstance(m, Response))
    assert actions == sorted(
        [
            ResponseAction.ACCEPT,
            ResponseAction.DECLINE,
            ResponseAction.REQUEST_EXTENSION,
            ResponseAction.CLASSIFY,
            ResponseAction.CLOSE,
            ResponseAction.REOPEN,
        ]
    )


async def test_idempotent_response_id(client: httpx.AsyncClient) -> None:
    headers = key("SO_XAY_DUNG") | {"Idempotency-Key": "answer-1"}
    first = await client.post(
        f"/v1/recommendations/{ASSIGNED}/answer", json={"text": "Trả lời"}, headers=headers
    )
    again = await client.post(
        f"/v1/recommendations/{ASSIGNED}/answer", json={"text": "Trả lời"}, headers=headers
    )
    assert first.json()["response_id"] == again.json()["response_id"]


async def test_audit_unreachable_gives_503(
    kafka_bootstrap: str, make_settings: Callable[..., IngestSettings]
) -> None:
    settings = make_settings(kafka_bootstrap=kafka_bootstrap)  # audit_url: a closed port
    async with running_ingest(settings) as c:
        resp = await c.post(
            f"/v1/recommendations/{ASSIGNED}/answer", json={"text": "x"}, headers=key("SO_Y_TE")
        )
        assert resp.status_code == 503
        assert resp.json()["error"] == "audit_unavailable"
        assert resp.headers["Retry-After"] == "7"


OTHER = str(uuid.uuid4())  # open, assigned to another agency
DENUNCIATION = str(uuid.uuid4())
MERGED = str(uuid.uuid4())  # merged into OTHER
CLOSED = str(uuid.uuid4())


async def test_corrections_who_may_and_which_pairs(
    client: httpx.AsyncClient, audit: FakeAudit, read_topic: ReadTopic
) -> None:
    base = audit.statuses[ASSIGNED]
    audit.statuses[OTHER] = base | {"id": OTHER, "agency": "SO_GD_DT"}
    audit.statuses[DENUNCIATION] = base | {"id": DENUNCIATION, "kind": "to_cao"}
    audit.statuses[MERGED] = base | {
        "id": MERGED,
        "status": "merged",
        "agency": None,
        "duplicate_of": OTHER,
    }
    audit.statuses[CLOSED] = base | {"id": CLOSED, "status": "closed"}
    cases: list[tuple[str, str, dict[str, Any] | None, str, int, str | None]] = [
        (ASSIGNED, "merge_into", {"target": OTHER}, "SO_Y_TE", 403, "not_assignee"),
        (ASSIGNED, "merge_into", {"target": UNKNOWN}, "SO_XAY_DUNG", 404, None),
        (ASSIGNED, "merge_into", {"target": "nope"}, "SO_XAY_DUNG", 422, "invalid_target"),
        (ASSIGNED, "merge_into", {}, "SO_XAY_DUNG", 422, None),
        (ASSIGNED, "merge_into", {"target": ASSIGNED}, "SO_XAY_DUNG", 422, "invalid_target"),
        (ASSIGNED, "merge_into", {"target": DENUNCIATION}, "TT_HDND", 422, "kind_mismatch"),
        (ASSIGNED, "merge_into", {"target": CLOSED}, "TT_HDND", 409, "target_not_open"),
        (CLOSED, "merge_into", {"target": OTHER}, "TT_HDND", 409, "invalid_transition"),
        (ASSIGNED, "unmerge", {"reason": "Khác nội dung"}, "TT_HDND", 409, "not_merged"),
        (MERGED, "unmerge", {"reason": "Khác nội dung"}, "SO_Y_TE", 403, "not_assignee"),
        (MERGED, "unmerge", {}, "TT_HDND", 422, "reason_required"),
        (ASSIGNED, "not_duplicate", {"target": OTHER}, "SO_Y_TE", 403, "not_assignee"),
        # allowed: this case's assignee, the other case's assignee, supervisor, triage
        (ASSIGNED, "merge_into", {"target": OTHER}, "SO_XAY_DUNG", 202, None),
        (ASSIGNED, "merge_into", {"target": OTHER}, "SO_GD_DT", 202, None),
        (MERGED, "unmerge", {"reason": "Khác nội dung"}, "SO_GD_DT", 202, None),
        (ASSIGNED, "not_duplicate", {"target": OTHER, "reason": "Khác"}, "UBMTTQ_TINH", 202, None),
    ]
    for rec_id, segment, payload, agency, status, reason in cases:
        resp = await client.post(
            f"/v1/recommendations/{rec_id}/{segment}", json=payload, headers=key(agency)
        )
        assert resp.status_code == status, (rec_id, segment, agency, resp.text)
        if reason is not None:
            assert resp.json()["error"] == reason, resp.text

    records = await read_topic(INBOUND_RESPONSES.name, count=4)
    messages = [decode(value=r.value, headers=r.headers).data for r in records]
    seen = sorted(
        (m.action.value, m.agency, m.target or "") for m in messages if isinstance(m, Response)
    )
    assert seen == sorted(
        [
            ("merge_into", "SO_XAY_DUNG", OTHER),
            ("merge_into", "SO_GD_DT", OTHER),
            ("unmerge", "SO_GD_DT", ""),
            ("not_duplicate", "UBMTTQ_TINH", OTHER),
        ]
    )
